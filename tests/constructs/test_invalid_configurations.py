"""Bad input, across the constructs: each row fails at synth with an error that names the
prop and shows the value. (Construct-specific cases that need more set-up live beside
their construct's tests.)"""

from __future__ import annotations

from collections.abc import Callable

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import pytest

from ddb_stream_patterns import (
    AggregateCounter,
    AlarmThresholds,
    ComplexController,
    Monitoring,
    Processor,
    Route,
    Rule,
    SearchIndexer,
    SimpleController,
    StreamDashboard,
    StreamFilter,
    StreamOptions,
    StreamTable,
    TableReplicator,
    TtlArchiver,
)

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def simple(**kwargs) -> Callable[[cdk.Stack], object]:
    def build(stack):
        kwargs.setdefault("code", CODE)
        kwargs.setdefault("handler", "index.handler")
        table = StreamTable(stack, "Table", partition_key=PK)
        return SimpleController(stack, "Simple", table=table, **kwargs)
    return build


def processor(routing_attributes=("status",), fifo=False, **kwargs) -> Callable[[cdk.Stack], object]:
    def build(stack):
        kwargs.setdefault("route", Route(event_names=["INSERT"]))
        kwargs.setdefault("code", CODE)
        kwargs.setdefault("handler", "index.handler")
        table = StreamTable(stack, "Table", partition_key=PK)
        return ComplexController(stack, "Complex", table=table, fifo=fifo,
                                 routing_attributes=list(routing_attributes),
                                 processors={"p": Processor(**kwargs)})
    return build


def complex_(**kwargs) -> Callable[[cdk.Stack], object]:
    def build(stack):
        table = StreamTable(stack, "Table", partition_key=PK)
        kwargs.setdefault("processors", {"p": Processor(route=Route(), code=CODE, handler="i.h")})
        return ComplexController(stack, "Complex", table=table, **kwargs)
    return build


def plain_table_simple(stack):
    plain = dynamodb.TableV2(stack, "Plain", partition_key=PK)
    return SimpleController(stack, "Simple", table=plain, code=CODE, handler="index.handler")


def function_and_options(stack):
    fn = lambda_.Function(stack, "Mine", code=CODE, handler="index.handler",
                          runtime=lambda_.Runtime.PYTHON_3_13)
    return simple(function=fn, code=None, handler=None,
                  function_options=lambda_.FunctionOptions(memory_size=512))(stack)


# (case, build(stack), the prop named, the value shown)
INVALID = [
    ("table-ttl-empty", lambda s: StreamTable(s, "T", partition_key=PK, time_to_live_attribute=""), "time_to_live_attribute", "''"),
    ("table-no-stream", lambda s: StreamTable(s, "T", partition_key=PK, stream_view_type=None), "stream_view_type", "None"),
    ("table-stream-override", lambda s: StreamTable(s, "T", partition_key=PK, dynamo_stream=dynamodb.StreamViewType.KEYS_ONLY), "dynamo_stream", "KEYS_ONLY"),
    ("table-without-stream", plain_table_simple, "table", "'TestStack/Plain'"),
    ("batch-size-zero", simple(batch_size=0), "batch_size", "0"),
    ("batch-size-too-big", simple(batch_size=10_001), "batch_size", "10001"),
    ("parallelization", simple(parallelization_factor=11), "parallelization_factor", "11"),
    ("retries-infinite", simple(retry_attempts=-1), "retry_attempts", "-1"),
    ("record-age-short", simple(max_record_age=cdk.Duration.seconds(30)), "max_record_age", "30 seconds"),
    ("record-age-long", simple(max_record_age=cdk.Duration.days(8)), "max_record_age", "691200 seconds"),
    ("batching-window", simple(max_batching_window=cdk.Duration.seconds(301)), "max_batching_window", "301 seconds"),
    ("no-function", simple(handler=None), "handler", "None"),
    ("function-and-its-props", function_and_options, "function_options", "'TestStack/Mine'"),
    ("too-many-filters", simple(filters=[StreamFilter(new_image={"n": Rule.equals(str(i))}) for i in range(6)]), "filters", "6"),
    ("numeric-on-n-attribute", lambda s: StreamFilter(new_image={"qty": Rule.numeric(">", 5)}), "qty", "numeric"),
    ("delay", processor(delay=cdk.Duration.seconds(901)), "processors['p'].delay", "901 seconds"),
    ("max-concurrency-low", processor(max_concurrency=1), "processors['p'].max_concurrency", "1"),
    ("max-concurrency-above-reserved", processor(max_concurrency=10, reserved_concurrency=5), "max_concurrency", "(10)"),
    ("max-receive-count", processor(max_receive_count=0), "processors['p'].max_receive_count", "0"),
    ("sqs-batch-without-window", processor(batch_size=50), "processors['p'].batch_size", "50"),
    ("fifo-batch-size", processor(fifo=True, batch_size=20, max_batching_window=cdk.Duration.seconds(1)), "processors['p'].batch_size", "20"),
    ("visibility-below-6x-timeout", processor(visibility_timeout=cdk.Duration.seconds(60)), "processors['p'].visibility_timeout", "60 s"),
    ("route-unpublished-attribute", processor(route=Route(attributes={"color": ["red"]})), "processors['p'].route", "'color'"),
    ("route-event-name", processor(route=Route(event_names=["UPSERT"])), "processors['p'].route.event_names", "'UPSERT'"),
    ("routing-attributes-too-many", complex_(routing_attributes=[f"a{i}" for i in range(9)]), "routing_attributes", "9"),
    ("routing-attribute-reserved", complex_(routing_attributes=["eventName"]), "routing_attributes", "'eventName'"),
    ("no-processors", complex_(processors={}), "processors", "{}"),
    ("processor-name", complex_(processors={"a b": Processor(route=Route(), code=CODE, handler="i.h")}), "processor name", "'a b'"),
    ("threshold-errors", lambda s: AlarmThresholds(function_errors=0), "thresholds.function_errors", "0"),
    ("threshold-dropped-records", lambda s: AlarmThresholds(dropped_records=0), "thresholds.dropped_records", "0"),
    ("threshold-period", lambda s: AlarmThresholds(period=cdk.Duration.seconds(90)), "thresholds.period", "90"),
    ("threshold-evaluation", lambda s: Monitoring(thresholds=AlarmThresholds(evaluation_periods=0)), "thresholds.evaluation_periods", "0"),
    ("stream-options-batch", lambda s: StreamOptions(batch_size=0), "stream_options.batch_size", "0"),
    ("archiver-prefix", lambda s: TtlArchiver(s, "A", table=StreamTable(s, "T", partition_key=PK, time_to_live_attribute="ttl"), prefix="/x/"), "prefix", "'/x/'"),
    ("archiver-no-ttl", lambda s: TtlArchiver(s, "A", table=StreamTable(s, "T", partition_key=PK)), "ttl_attribute", "'TestStack/T'"),
    ("counter-group", lambda s: AggregateCounter(s, "C", table=StreamTable(s, "T", partition_key=PK), group_attribute="a b"), "group_attribute", "'a b'"),
    ("replicator-transform", lambda s: TableReplicator(s, "R", table=StreamTable(s, "T", partition_key=PK), target_table=dynamodb.TableV2(s, "X", partition_key=PK), transform="nocolon", transform_code=CODE), "transform", "'nocolon'"),
    ("indexer-index-name", lambda s: SearchIndexer(s, "I", table=StreamTable(s, "T", partition_key=PK), index_name="Upper"), "index_name", "'Upper'"),
    ("dashboard-empty", lambda s: StreamDashboard(s, "D", table=StreamTable(s, "T", partition_key=PK), patterns=[]), "patterns", "[]"),
]


def test_the_table_is_large():
    assert len(INVALID) >= 20
    assert len({case for case, *_ in INVALID}) == len(INVALID)


@pytest.mark.parametrize(("case", "build", "prop", "value"), INVALID, ids=[row[0] for row in INVALID])
def test_fails_invalid_configuration(stack, case, build, prop, value):
    with pytest.raises(ValueError) as error:
        build(stack)
    message = str(error.value)
    assert prop in message, f"{case}: the error does not name {prop!r}: {message}"
    assert value in message, f"{case}: the error does not show {value!r}: {message}"
    assert message[0].islower() or message[0] in "'\"", f"{case}: errors start lowercase: {message}"
