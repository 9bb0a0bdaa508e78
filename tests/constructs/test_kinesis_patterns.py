"""KinesisSource as a change source: every pattern and SimpleController take
``source=KinesisSource...``; settings agree with the runtime (marker retention, order key,
images); bad input fails at synth naming the prop and value."""

from __future__ import annotations

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_kinesis as kinesis
import aws_cdk.aws_lambda as lambda_
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from ddb_stream_patterns import (
    AggregateCounter,
    KinesisController,
    KinesisSource,
    Rule,
    SearchIndexer,
    SimpleController,
    StreamFilter,
    StreamOptions,
    StreamTable,
    TableReplicator,
    TtlArchiver,
)
from ddb_stream_patterns.kinesis_source import MAX_EFO_CONSUMERS, PRECISION_WARNING
from tests.constructs.data_support import KEY, env_of, mapping_of, patterns, tasks

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return None\n")
PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
DAY = 86_400


def _kinesis_tasks(stack: cdk.Stack, **kwargs) -> StreamTable:
    return tasks(stack, kinesis_stream=True, **kwargs)


def _arn_of(stack: cdk.Stack, construct, attribute: str) -> dict:
    return {"Fn::GetAtt": [stack.get_logical_id(construct.node.default_child), attribute]}


def _counter(stack, table, source=None, **kwargs) -> AggregateCounter:
    return AggregateCounter(stack, kwargs.pop("id", "Counts"), table=table,
                            group_attribute="ListId",
                            source=source or KinesisSource.of_table(table), **kwargs)


def _precision_warnings(stack: cdk.Stack) -> list[str]:
    found = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("orders one item's kinesis records"))
    return [w.entry.data for w in found]


# -- every pattern on Kinesis -----------------------------------------------------------


def test_every_pattern_and_a_user_function_read_the_tables_kinesis_stream(stack):
    table = _kinesis_tasks(stack)
    stream = table.kinesis_stream_created
    efo = KinesisSource.of_table(table, enhanced_fan_out=True)
    built = {
        "archiver": TtlArchiver(stack, "Archive", table=table, source=efo),
        "counter": _counter(stack, table, KinesisSource.of_table(table, enhanced_fan_out=True)),
        "indexer": SearchIndexer(stack, "Search", table=table, index_name="tasks",
                                 source=KinesisSource.of_table(table)),
        "replicator": TableReplicator(stack, "Copy", table=table,
                                      target_table=StreamTable(stack, "Target", **KEY),
                                      source=KinesisSource.of_table(table)),
        "user": SimpleController(stack, "User", table=table, code=CODE,
                                 handler="index.handler", source=KinesisSource.of_table(table)),
    }
    template = Template.from_stack(stack)
    # Five mappings, none of them on the table's DynamoDB stream.
    mappings = template.find_resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 5
    assert "StreamArn" not in str(mappings)  # the table's DynamoDB stream has no reader
    consumers = template.find_resources("AWS::Kinesis::StreamConsumer")
    assert len(consumers) == 2
    for name, pattern in built.items():
        binding = pattern.source_binding if name == "user" else pattern.controller
        assert isinstance(binding, KinesisController), name
        mapping = mapping_of(stack, binding)
        if binding.consumer is not None:
            assert mapping["EventSourceArn"] == _arn_of(stack, binding.consumer, "ConsumerARN")
        else:
            assert mapping["EventSourceArn"] == _arn_of(stack, stream, "Arn")
        # The stream path's safe defaults.
        assert mapping["BisectBatchOnFunctionError"] is True
        assert mapping["MaximumRetryAttempts"] == 10
        assert mapping["MaximumRecordAgeInSeconds"] == 20 * 3600  # below the 24 h retention
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["StartingPosition"] == "TRIM_HORIZON"
        assert "OnFailure" in mapping["DestinationConfig"]
        # The default failure destination keeps the records: a bucket, and its alarm.
        assert {"handlerIteratorAge", "handlerErrors", "failureDeliveries",
                "droppedRecords"} <= set(binding.alarms), (name, binding.alarms)
        assert mapping["MetricsConfig"] == {"Metrics": ["EventCount"]}
        assert binding.failure_bucket is not None and binding.failure_queue is None
    # The archiver keeps its TTL filter, under the Kinesis record's data.
    assert patterns(mapping_of(stack, built["archiver"].controller)) == [{"data": {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}}}]
    # The patterns derive their surface from the binding.
    assert built["counter"].metric_iterator_age().metric_name == "IteratorAge"
    assert built["user"].failure_queue is built["user"].source_binding.failure_queue


def test_enhanced_fan_out_limit_counts_pattern_consumers_too(stack):
    table = _kinesis_tasks(stack)
    for index in range(MAX_EFO_CONSUMERS):
        SimpleController(stack, f"U{index}", table=table, code=CODE, handler="index.handler",
                         source=KinesisSource.of_table(table, enhanced_fan_out=True))
    with pytest.raises(ValueError, match="would have 21 enhanced fan-out consumers"):
        _counter(stack, table, KinesisSource.of_table(table, enhanced_fan_out=True))


# -- the mapping's settings ---------------------------------------------------------------


def test_settings_come_from_the_source_or_the_patterns_stream_options(stack):
    table = _kinesis_tasks(stack)
    on_source = _counter(stack, table, KinesisSource.of_table(
        table, batch_size=500, parallelization_factor=4, retry_attempts=3,
        max_record_age=cdk.Duration.hours(6), bisect_batch_on_error=False,
        starting_position=lambda_.StartingPosition.LATEST,
        max_batching_window=cdk.Duration.seconds(5)))
    on_pattern = _counter(stack, table, id="Other", stream_options=StreamOptions(
        batch_size=50, max_record_age=cdk.Duration.hours(2)))
    user = SimpleController(stack, "User", table=table, code=CODE, handler="index.handler",
                            batch_size=20, source=KinesisSource.of_table(table))
    mapping = mapping_of(stack, on_source.controller)
    assert (mapping["BatchSize"], mapping["ParallelizationFactor"],
            mapping["MaximumRetryAttempts"], mapping["MaximumRecordAgeInSeconds"],
            mapping["BisectBatchOnFunctionError"], mapping["StartingPosition"],
            mapping["MaximumBatchingWindowInSeconds"]) == (500, 4, 3, 6 * 3600, False,
                                                           "LATEST", 5)
    mapping = mapping_of(stack, on_pattern.controller)
    assert (mapping["BatchSize"], mapping["MaximumRecordAgeInSeconds"]) == (50, 7200)
    assert mapping_of(stack, user.source_binding)["BatchSize"] == 20


def test_fails_a_setting_given_twice(stack):
    table = _kinesis_tasks(stack)
    with pytest.raises(ValueError, match=r"AggregateCounter TestStack/Counts/Controller: "
                                         r"batch_size is given twice, 500 on the KinesisSource "
                                         r"and 50 as stream_options.batch_size"):
        _counter(stack, table, KinesisSource.of_table(table, batch_size=500),
                 stream_options=StreamOptions(batch_size=50))


@pytest.mark.parametrize(("prop", "value"), [
    ("batch_size", 0), ("parallelization_factor", 11), ("retry_attempts", -1),
    ("max_record_age", cdk.Duration.days(8)), ("max_batching_window", cdk.Duration.minutes(6)),
])
def test_fails_source_settings_out_of_range(stack, prop, value):
    table = _kinesis_tasks(stack)
    with pytest.raises(ValueError, match=prop):
        KinesisSource.of_table(table, **{prop: value})


# -- consistent with the runtime ---------------------------------------------------------


@pytest.mark.parametrize(("age", "retention"), [
    (None, 20 * 3600 + DAY), (cdk.Duration.days(7), 8 * DAY),
    (cdk.Duration.hours(1), 3600 + DAY)])
def test_counter_markers_outlive_the_maximum_record_age(stack, age, retention):
    # A 7-day age needs a stream that keeps records longer (refused below its retention).
    table = tasks(stack, kinesis_stream=kinesis.Stream(
        stack, "Changes", encryption=kinesis.StreamEncryption.MANAGED,
        retention_period=cdk.Duration.days(8)))
    counter = _counter(stack, table, KinesisSource.of_table(table, max_record_age=age))
    assert mapping_of(stack, counter.controller)["MaximumRecordAgeInSeconds"] == (
        age.to_seconds() if age else 20 * 3600)
    assert env_of(stack, counter.function)["MARKER_RETENTION_SECONDS"] == str(retention)


def test_counter_on_the_stream_keeps_the_runtimes_default_retention(stack):
    counter = AggregateCounter(stack, "Counts", table=tasks(stack), group_attribute="ListId")
    assert "MARKER_RETENTION_SECONDS" not in env_of(stack, counter.function)


def test_fails_counter_marker_retention_shorter_than_the_maximum_record_age(stack):
    table = _kinesis_tasks(stack)
    options = lambda_.FunctionOptions(environment={"MARKER_RETENTION_SECONDS": "3600"})
    with pytest.raises(ValueError, match=r"MARKER_RETENTION_SECONDS=3600 is shorter than the "
                                         r"kinesis mapping's max_record_age \(72000 s\)"):
        _counter(stack, table, function_options=options)


def test_a_longer_given_marker_retention_is_kept(stack):
    table = _kinesis_tasks(stack)
    options = lambda_.FunctionOptions(environment={"MARKER_RETENTION_SECONDS": "999999"})
    counter = _counter(stack, table, function_options=options)
    assert env_of(stack, counter.function)["MARKER_RETENTION_SECONDS"] == "999999"


def test_images_are_in_every_kinesis_record_whatever_the_view_type(stack):
    table = StreamTable(stack, "Keys", **KEY, kinesis_stream=True,
                        stream_view_type=dynamodb.StreamViewType.KEYS_ONLY)
    counter = _counter(stack, table)  # needs both images: Kinesis has them
    assert isinstance(counter.controller, KinesisController)
    archiver = TtlArchiver(stack, "Archive", table=table, ttl_attribute="expiresAt",
                           source=KinesisSource.of_table(table))
    assert isinstance(archiver.controller, KinesisController)  # reads old images: there too
    user = SimpleController(stack, "User", table=table, code=CODE, handler="index.handler",
                            filters=[StreamFilter(new_image={"status": Rule.exists()})],
                            source=KinesisSource.of_table(table))
    assert patterns(mapping_of(stack, user.source_binding)) == [
        {"data": {"dynamodb": {"NewImage": {"status": {"S": [{"exists": True}]}}}}}]
    # On the table's own stream the same counter is refused.
    with pytest.raises(ValueError, match="streams KEYS_ONLY, but AggregateCounter reads both"):
        AggregateCounter(stack, "OnStream", table=table, group_attribute="ListId")


def test_precision_warning_for_ordered_patterns_on_a_table_that_may_write_milliseconds(stack):
    micro = _kinesis_tasks(stack)
    TableReplicator(stack, "Micro", table=micro, target_table=StreamTable(stack, "T1", **KEY),
                    source=KinesisSource.of_table(micro))
    assert _precision_warnings(stack) == []
    stream = kinesis.Stream(stack, "Changes")
    plain = dynamodb.TableV2(stack, "Plain", **KEY, kinesis_stream=stream,
                             dynamo_stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    TableReplicator(stack, "Copy", table=plain, target_table=StreamTable(stack, "T2", **KEY),
                    source=KinesisSource(stream=stream))
    [warning] = _precision_warnings(stack)
    assert "TestStack/Copy/Controller" in warning and "may not write MICROSECOND" in warning
    assert PRECISION_WARNING in warning
    milli = StreamTable(stack, "Milli", **KEY, kinesis_stream=True,
                        kinesis_precision=dynamodb.ApproximateCreationDateTimePrecision.MILLISECOND)
    SearchIndexer(stack, "Search", table=milli, index_name="t",
                  source=KinesisSource.of_table(milli))
    assert any("writes MILLISECOND timestamps" in w for w in _precision_warnings(stack))
    # The counter does not order: no warning for it.
    _counter(stack, milli)
    assert len(_precision_warnings(stack)) == 2


# -- bad input ----------------------------------------------------------------------------


def test_fails_a_source_whose_stream_the_table_does_not_write_to(stack):
    table = _kinesis_tasks(stack)
    other = kinesis.Stream(stack, "Other")
    with pytest.raises(ValueError, match=r"AggregateCounter TestStack/Counts/Controller: source "
                                         r"KinesisSource on kinesis stream 'TestStack/Other' .* "
                                         r"table 'TestStack/Tasks' writes its changes to another "
                                         r"kinesis stream"):
        _counter(stack, table, KinesisSource(stream=other))


def test_fails_a_source_on_a_table_that_writes_to_no_kinesis_stream(stack):
    table = tasks(stack)  # a StreamTable without kinesis_stream
    stream = kinesis.Stream(stack, "Lonely")
    with pytest.raises(ValueError, match=r"table 'TestStack/Tasks' writes its changes to no "
                                         r"kinesis stream, so the handler would never get them"):
        TtlArchiver(stack, "Archive", table=table, source=KinesisSource(stream=stream))
    plain = dynamodb.TableV2(stack, "Plain", partition_key=PK,
                             dynamo_stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    with pytest.raises(ValueError, match="table 'TestStack/Plain' writes its changes to no"):
        SimpleController(stack, "User", table=plain, code=CODE, handler="index.handler",
                         source=KinesisSource(stream=stream))


def test_a_given_stream_the_table_writes_to_is_accepted(stack):
    stream = kinesis.Stream(stack, "Changes")
    table = dynamodb.TableV2(stack, "Plain", partition_key=PK, kinesis_stream=stream)
    user = SimpleController(stack, "User", table=table, code=CODE, handler="index.handler",
                            source=KinesisSource(stream=stream))
    # No DynamoDB stream is needed to read the Kinesis one.
    assert mapping_of(stack, user.source_binding)["EventSourceArn"] == _arn_of(
        stack, stream, "Arn")


def test_fails_a_source_on_another_table(stack):
    other = StreamTable(stack, "Other", partition_key=PK, kinesis_stream=True)
    table = _kinesis_tasks(stack)
    with pytest.raises(ValueError, match=r"carries the changes of table 'TestStack/Other', not "
                                         r"of this pattern's table 'TestStack/Tasks'"):
        _counter(stack, table, KinesisSource.of_table(other))


def test_fails_filters_that_cannot_apply_to_kinesis_data(stack):
    table = _kinesis_tasks(stack)
    with pytest.raises(ValueError, match=r"SimpleController TestStack/User/Source: filters: "
                                         r"filter on dynamodb.ApproximateCreationDateTime"):
        SimpleController(stack, "User", table=table, code=CODE, handler="index.handler",
                         filters=[StreamFilter(approximate_creation_time=Rule.numeric(">", 1))],
                         source=KinesisSource.of_table(table))
    with pytest.raises(ValueError, match=r"filters: filter .* cannot apply to a kinesis source: "
                                         r"pattern field 'dynamodb.SequenceNumber'"):
        SimpleController(stack, "User2", table=table, code=CODE, handler="index.handler",
                         filters=[StreamFilter.from_pattern(
                             {"dynamodb": {"SequenceNumber": ["1"]}})],
                         source=KinesisSource.of_table(table))


def test_fails_a_key_filter_on_an_attribute_that_is_no_key(stack):
    table = _kinesis_tasks(stack)
    with pytest.raises(ValueError, match="keys condition on 'status', which is not a key"):
        SimpleController(stack, "User", table=table, code=CODE, handler="index.handler",
                         filters=[StreamFilter(keys={"status": Rule.equals("x")})],
                         source=KinesisSource.of_table(table))


def test_a_kinesis_controller_takes_the_sources_settings_and_refuses_a_conflict(stack):
    table = _kinesis_tasks(stack)
    source = KinesisSource.of_table(table, batch_size=500, retry_attempts=2)
    controller = KinesisController(stack, "C", source=source, code=CODE,
                                   handler="index.handler", parallelization_factor=3)
    mapping = mapping_of(stack, controller)
    assert (mapping["BatchSize"], mapping["MaximumRetryAttempts"],
            mapping["ParallelizationFactor"]) == (500, 2, 3)
    with pytest.raises(ValueError, match=r"KinesisController TestStack/D: batch_size is given "
                                         r"twice, 500 on the KinesisSource and 10 as batch_size"):
        KinesisController(stack, "D", source=source, code=CODE, handler="index.handler",
                          batch_size=10)
