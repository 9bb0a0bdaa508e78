"""Wrong *types* fail at construct entry with a TypeError naming the prop, the expected
type and the value given (not deep inside CDK or jsii)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import pytest

from ddb_stream_patterns import (
    AggregateCounter,
    AlarmThresholds,
    AlarmTopic,
    ComplexController,
    FailureDestination,
    Monitoring,
    Processor,
    QueueOptions,
    Route,
    Rule,
    SearchIndexer,
    SimpleController,
    StreamDashboard,
    StreamFanOut,
    StreamFilter,
    StreamOptions,
    StreamRuntimeLayer,
    StreamTable,
    TableReplicator,
    TtlArchiver,
)
from ddb_stream_patterns._validation import check_type

from .data_support import tasks

CODE = lambda_.Code.from_inline("def handler(event, context): pass")
KEY = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)


def simple(stack: cdk.Stack, **kwargs: Any) -> SimpleController:
    props = {"table": tasks(stack), "code": CODE, "handler": "index.handler", **kwargs}
    return SimpleController(stack, "Simple", **props)


def complex_(stack: cdk.Stack, **kwargs: Any) -> ComplexController:
    route = Processor(route=Route(event_names=["INSERT"]), code=CODE, handler="index.handler")
    props = {"table": tasks(stack), "processors": {"p": route}, **kwargs}
    return ComplexController(stack, "Complex", **props)


def processor(**kwargs: Any) -> Processor:
    return Processor(**{"route": Route(), "code": CODE, "handler": "index.handler", **kwargs})


Make = Callable[[cdk.Stack], Any]

# (id, build, prop, expected type as printed, given value as printed)
ROWS: list[tuple[str, Make, str, str, str]] = [
    ("simple-batch-size-str", lambda s: simple(s, batch_size="100"),
     "batch_size", "an int", "str '100'"),
    ("simple-batch-size-bool", lambda s: simple(s, batch_size=True),
     "batch_size", "an int", "bool True"),
    ("simple-max-record-age-int", lambda s: simple(s, max_record_age=3600),
     "max_record_age", "a cdk.Duration (e.g. Duration.seconds(3600))", "int 3600"),
    ("simple-filters-not-a-list",
     lambda s: simple(s, filters=StreamFilter(event_names=["INSERT"])),
     "filters", "a list of StreamFilter", "StreamFilter"),
    ("simple-filters-dict-item", lambda s: simple(s, filters=[{"eventName": ["INSERT"]}]),
     "filters[0]", "a StreamFilter", "dict {'eventName': ['INSERT']}"),
    ("simple-function-options-dict", lambda s: simple(s, function_options={"memory_size": 512}),
     "function_options", "a lambda_.FunctionOptions (use lambda_.FunctionOptions(memory_size=512))",
     "dict {'memory_size': 512}"),
    ("simple-table-name", lambda s: SimpleController(s, "C", table="Orders", code=CODE,
                                                     handler="index.handler"),
     "table", "a dynamodb.ITable", "str 'Orders'"),
    ("simple-handler-int", lambda s: simple(s, handler=42), "handler", "a str", "int 42"),
    ("simple-starting-position-str", lambda s: simple(s, starting_position="LATEST"),
     "starting_position", "a lambda_.StartingPosition", "str 'LATEST'"),
    ("simple-bisect-str", lambda s: simple(s, bisect_batch_on_error="yes"),
     "bisect_batch_on_error", "a bool", "str 'yes'"),
    ("simple-failure-destination-str", lambda s: simple(s, failure_destination="sqs"),
     "failure_destination", "a FailureDestination", "str 'sqs'"),
    ("simple-removal-policy-str", lambda s: simple(s, removal_policy="destroy"),
     "removal_policy", "a cdk.RemovalPolicy", "str 'destroy'"),
    ("simple-monitoring-dict", lambda s: simple(s, monitoring={"alarms": False}),
     "monitoring", "a Monitoring", "dict {'alarms': False}"),
    ("failure-destination-queue", lambda s: FailureDestination.sqs("my-queue"),
     "queue", "a sqs.IQueue", "str 'my-queue'"),
    ("failure-destination-expiration-int", lambda s: FailureDestination.s3(expiration=90),
     "expiration", "a cdk.Duration", "int 90"),
    ("failure-destination-bucket-str", lambda s: FailureDestination.s3("my-bucket"),
     "bucket", "a s3.IBucket", "str 'my-bucket'"),
    ("complex-processors-list", lambda s: complex_(s, processors=[processor()]),
     "processors", "a dict of name -> Processor", "list [Processor("),
    ("complex-processor-item", lambda s: complex_(s, processors={"p": Route()}),
     "processors['p']", "a Processor", "Route Route("),
    ("complex-routing-attributes-str", lambda s: complex_(s, routing_attributes="status"),
     "routing_attributes", "a list of str", "str 'status'"),
    ("complex-fifo-str", lambda s: complex_(s, fifo="true"), "fifo", "a bool", "str 'true'"),
    ("complex-controller-options-dict",
     lambda s: complex_(s, controller_options={"timeout": 5}),
     "controller_options", "a lambda_.FunctionOptions", "dict {'timeout': 5}"),
    ("complex-retry-float", lambda s: complex_(s, retry_attempts=2.5),
     "retry_attempts", "an int", "float 2.5"),
    ("processor-route-dict", lambda s: Processor(route={"event_names": ["INSERT"]}),
     "route", "a Route", "dict {'event_names': ['INSERT']}"),
    ("processor-delay-int", lambda s: processor(delay=30),
     "delay", "a cdk.Duration (e.g. Duration.seconds(30))", "int 30"),
    ("processor-batch-size-str", lambda s: processor(batch_size="10"),
     "batch_size", "an int", "str '10'"),
    ("route-event-names-str", lambda s: Route(event_names="INSERT"),
     "event_names", "a list of str", "str 'INSERT'"),
    ("route-attributes-list", lambda s: Route(attributes=["status"]),
     "attributes", "a dict", "list ['status']"),
    ("stream-table-key-str", lambda s: StreamTable(s, "T", partition_key="pk"),
     "partition_key", "a dynamodb.Attribute", "str 'pk'"),
    ("stream-table-view-type-str",
     lambda s: StreamTable(s, "T", partition_key=KEY, stream_view_type="NEW_IMAGE"),
     "stream_view_type", "a dynamodb.StreamViewType", "str 'NEW_IMAGE'"),
    ("stream-table-pitr-str",
     lambda s: StreamTable(s, "T", partition_key=KEY, point_in_time_recovery="no"),
     "point_in_time_recovery", "a bool", "str 'no'"),
    ("stream-filter-keys-str", lambda s: StreamFilter(keys={"pk": "ORDER#1"}),
     "keys['pk']", "a Rule", "str 'ORDER#1'"),
    ("stream-filter-new-image-list", lambda s: StreamFilter(new_image=[Rule.equals("a")]),
     "new_image", "a dict", "list [Rule("),
    ("rule-attribute-type-int", lambda s: Rule.equals("a", attribute_type=1),
     "attribute_type", "a str", "int 1"),
    ("ttl-archiver-prefix-int", lambda s: TtlArchiver(s, "A", table=tasks(s), prefix=3),
     "prefix", "a str", "int 3"),
    ("ttl-archiver-transition-after-int",
     lambda s: TtlArchiver(s, "A", table=tasks(s), transition_after=30),
     "transition_after", "a cdk.Duration", "int 30"),
    ("ttl-archiver-stream-options-dict",
     lambda s: TtlArchiver(s, "A", table=tasks(s), stream_options={"batch_size": 10}),
     "stream_options", "a StreamOptions", "dict {'batch_size': 10}"),
    ("counter-group-attribute-list",
     lambda s: AggregateCounter(s, "C", table=tasks(s), group_attribute=["status"]),
     "group_attribute", "a str", "list ['status']"),
    ("counter-counter-table-str",
     lambda s: AggregateCounter(s, "C", table=tasks(s), group_attribute="status",
                                counter_table="Counts"),
     "counter_table", "a dynamodb.ITable", "str 'Counts'"),
    ("indexer-index-name-int",
     lambda s: SearchIndexer(s, "I", table=tasks(s), index_name=1),
     "index_name", "a str", "int 1"),
    ("replicator-target-table-str",
     lambda s: TableReplicator(s, "R", table=tasks(s), target_table="Copy"),
     "target_table", "a dynamodb.ITable", "str 'Copy'"),
    ("stream-options-batch-size-str", lambda s: StreamOptions(batch_size="100"),
     "batch_size", "an int", "str '100'"),
    ("stream-options-max-record-age-int", lambda s: StreamOptions(max_record_age=3600),
     "max_record_age", "a cdk.Duration (e.g. Duration.seconds(3600))", "int 3600"),
    ("monitoring-alarms-str", lambda s: Monitoring(alarms="off"), "alarms", "a bool", "str 'off'"),
    ("monitoring-thresholds-dict", lambda s: Monitoring(thresholds={"function_errors": 5}),
     "thresholds", "an AlarmThresholds", "dict {'function_errors': 5}"),
    ("thresholds-errors-str", lambda s: AlarmThresholds(function_errors="5"),
     "function_errors", "an int", "str '5'"),
    ("thresholds-period-int", lambda s: AlarmThresholds(period=300),
     "period", "a cdk.Duration (e.g. Duration.seconds(300))", "int 300"),
    ("alarm-topic-display-name-int", lambda s: AlarmTopic(s, "Alarms", display_name=7),
     "display_name", "a str", "int 7"),
    ("dashboard-table-str",
     lambda s: StreamDashboard(s, "D", table="Orders", patterns=[simple(s)]),
     "table", "a dynamodb.ITable", "str 'Orders'"),
    ("dashboard-patterns-not-a-list",
     lambda s: StreamDashboard(s, "D", table=tasks(s), patterns=7),
     "patterns", "a list of", "int 7"),
    ("runtime-layer-description-int", lambda s: StreamRuntimeLayer(s, "L", description=1),
     "description", "a str", "int 1"),
    ("fan-out-fifo-str", lambda s: StreamFanOut(s, "F", table=tasks(s), fifo="yes"),
     "fifo", "a bool", "str 'yes'"),
    ("fan-out-queue-options-dict",
     lambda s: StreamFanOut(s, "F", table=tasks(s), queue_options={"batch_size": 5}),
     "queue_options", "a QueueOptions", "dict {'batch_size': 5}"),
    ("fan-out-router-failure-destination-str",
     lambda s: StreamFanOut(s, "F", table=tasks(s), router_failure_destination="s3"),
     "router_failure_destination", "a FailureDestination", "str 's3'"),
    ("complex-controller-failure-destination-str",
     lambda s: complex_(s, controller_failure_destination="s3"),
     "controller_failure_destination", "a FailureDestination", "str 's3'"),
    ("thresholds-dropped-records-str", lambda s: AlarmThresholds(dropped_records="2"),
     "dropped_records", "an int", "str '2'"),
    ("queue-options-batch-size-str", lambda s: QueueOptions(batch_size="5"),
     "batch_size", "an int", "str '5'"),
    ("queue-options-delay-int", lambda s: QueueOptions(delay=30),
     "delay", "a cdk.Duration (e.g. Duration.seconds(30))", "int 30"),
    ("stream-table-kinesis-precision-str",
     lambda s: StreamTable(s, "K", partition_key=dynamodb.Attribute(
         name="pk", type=dynamodb.AttributeType.STRING), kinesis_stream=True,
         kinesis_precision="MICROSECOND"),
     "kinesis_precision", "a dynamodb.ApproximateCreationDateTimePrecision",
     "str 'MICROSECOND'"),
    ("replicator-tombstone-retention-int",
     lambda s: TableReplicator(s, "R", table=tasks(s), target_table=StreamTable(s, "Target", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)),
                               tombstone_retention=30),
     "tombstone_retention", "a cdk.Duration (e.g. Duration.seconds(30))", "int 30"),
    ("replicator-tombstone-ttl-attribute-int",
     lambda s: TableReplicator(s, "R", table=tasks(s), target_table=StreamTable(s, "Target", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)),
                               tombstone_ttl_attribute=5),
     "tombstone_ttl_attribute", "a str", "int 5"),
    ("ttl-archiver-source-str", lambda s: TtlArchiver(s, "A", table=tasks(s), source="stream"),
     "source", "None (the table's stream) or a change source", "str 'stream'"),
]

OWNERS = {
    "simple": "SimpleController", "failure": "FailureDestination", "complex": "ComplexController",
    "processor": "Processor", "route": "Route", "stream-table": "StreamTable",
    "stream-filter": "StreamFilter", "rule": "Rule.equals", "ttl": "TtlArchiver",
    "counter": "AggregateCounter", "indexer": "SearchIndexer", "replicator": "TableReplicator",
    "stream-options": "StreamOptions", "monitoring": "Monitoring",
    "thresholds": "AlarmThresholds", "alarm-topic": "AlarmTopic", "dashboard": "StreamDashboard",
    "runtime-layer": "StreamRuntimeLayer", "fan-out": "StreamFanOut",
    "queue-options": "QueueOptions",
}


def owner_of(row_id: str) -> str:
    return OWNERS[max((k for k in OWNERS if row_id.startswith(k)), key=len)]


def test_there_are_at_least_30_rows_across_all_constructs() -> None:
    assert len(ROWS) >= 30
    assert {owner_of(row[0]) for row in ROWS} == set(OWNERS.values())


@pytest.mark.parametrize(("build", "prop", "expected", "given"),
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_wrong_type_names_prop_expected_type_and_value(
    request: pytest.FixtureRequest, stack: cdk.Stack, build: Make, prop: str, expected: str,
    given: str
) -> None:
    owner = owner_of(request.node.callspec.id)
    with pytest.raises(TypeError) as error:
        build(stack)
    message = str(error.value)
    assert message.startswith(f"{owner}: {prop} must be ")
    assert f" must be {expected}" in message
    assert f"got {given}" in message


def test_tokens_pass_where_numbers_and_strings_are_expected(stack: cdk.Stack) -> None:
    size = cdk.Token.as_number(cdk.Fn.ref("BatchSize"))
    handler = cdk.Token.as_string(cdk.Fn.ref("Handler"))
    controller = simple(stack, batch_size=size, handler=handler)
    assert controller.event_source_mapping is not None
    check_type("X", "count", size, int)  # a number token is a float: still accepted


def test_float_int_and_bool_are_told_apart() -> None:
    check_type("X", "ratio", 3, float)
    with pytest.raises(TypeError, match=re.escape("X: ratio must be a float, got bool True")):
        check_type("X", "ratio", True, float)
