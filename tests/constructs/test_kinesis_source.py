"""Kinesis Data Streams for DynamoDB: the table side (StreamTable(kinesis_stream=...)) and the
consumer side (KinesisSource, KinesisController), their limits and filters."""

from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_kinesis as kinesis
import aws_cdk.aws_lambda as lambda_
import pytest
from aws_cdk.assertions import Template
from syrupy.extensions.json import JSONSnapshotExtension

from ddb_stream_patterns import (
    FailureDestination,
    KinesisController,
    KinesisSource,
    Rule,
    SimpleController,
    StreamFilter,
    StreamTable,
)
from ddb_stream_patterns.kinesis_source import MAX_EFO_CONSUMERS
from ddb_stream_patterns.stream_filter import kinesis_pattern
from tests.support import mask_assets

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
CODE = lambda_.Code.from_inline("def handler(event, context):\n    return None\n")


def _table(stack: cdk.Stack, **kwargs) -> StreamTable:
    return StreamTable(stack, "Table", partition_key=PK, kinesis_stream=True, **kwargs)


def _resources(stack: cdk.Stack, kind: str) -> dict:
    return Template.from_stack(stack).find_resources(kind)


def _only(stack: cdk.Stack, kind: str) -> dict:
    found = _resources(stack, kind)
    assert len(found) == 1, found
    return next(iter(found.values()))


def _controller(stack, id="Consumer", *, efo=False, table=None, **kwargs) -> KinesisController:
    table = table or stack.node.try_find_child("Table") or _table(stack)
    return KinesisController(
        stack, id, source=KinesisSource.of_table(table, enhanced_fan_out=efo),
        code=CODE, handler="index.handler", **kwargs,
    )


# -- the table side --------------------------------------------------------------------


def test_created_stream_is_on_demand_encrypted_and_fed_by_the_table(stack):
    table = _table(stack)
    stream = _only(stack, "AWS::Kinesis::Stream")
    assert stream["Properties"]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert stream["Properties"]["StreamEncryption"] == {
        "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
    assert stream["DeletionPolicy"] == "Retain"
    replica = _only(stack, "AWS::DynamoDB::GlobalTable")["Properties"]["Replicas"][0]
    stream_id = stack.get_logical_id(table.kinesis_stream_created.node.default_child)
    assert replica["KinesisStreamSpecification"] == {
        "StreamArn": {"Fn::GetAtt": [stream_id, "Arn"]},
        "ApproximateCreationDateTimePrecision": "MICROSECOND",
    }
    assert table.kinesis_stream is table.kinesis_stream_created
    assert table.kinesis_precision == dynamodb.ApproximateCreationDateTimePrecision.MICROSECOND


def test_given_stream_and_millisecond_precision(stack):
    stream = kinesis.Stream.from_stream_arn(
        stack, "Given", "arn:aws:kinesis:us-east-1:123456789012:stream/changes")
    table = StreamTable(stack, "Table", partition_key=PK, kinesis_stream=stream,
                        kinesis_precision=dynamodb.ApproximateCreationDateTimePrecision.MILLISECOND)
    assert not _resources(stack, "AWS::Kinesis::Stream")
    replica = _only(stack, "AWS::DynamoDB::GlobalTable")["Properties"]["Replicas"][0]
    assert replica["KinesisStreamSpecification"] == {
        "StreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/changes",
        "ApproximateCreationDateTimePrecision": "MILLISECOND",
    }
    assert table.kinesis_stream is stream and table.kinesis_stream_created is None


def test_precision_lands_on_the_replica_with_the_stream_when_there_are_replicas():
    # TableV2 renders the primary replica last: with replicas=, index 0 is a secondary
    # replica without StreamArn, which CloudFormation rejects ("StreamArn: Required").
    app = cdk.App()
    stack = cdk.Stack(app, "Global", env=cdk.Environment(account="123456789012",
                                                        region="eu-west-1"))
    table = StreamTable(stack, "Table", partition_key=PK, kinesis_stream=True,
                        kinesis_precision=dynamodb.ApproximateCreationDateTimePrecision.MILLISECOND,
                        replicas=[dynamodb.ReplicaTableProps(region="us-east-1")])
    table.add_replica(region="us-west-2")  # added after the constructor: still found
    replicas = _only(stack, "AWS::DynamoDB::GlobalTable")["Properties"]["Replicas"]
    assert [r["Region"] for r in replicas] == ["us-east-1", "us-west-2", "eu-west-1"]
    with_spec = [r for r in replicas if "KinesisStreamSpecification" in r]
    assert [r["Region"] for r in with_spec] == ["eu-west-1"]
    assert with_spec[0]["KinesisStreamSpecification"]["StreamArn"]
    assert with_spec[0]["KinesisStreamSpecification"][
        "ApproximateCreationDateTimePrecision"] == "MILLISECOND"


def test_without_kinesis_nothing_changes(stack):
    table = StreamTable(stack, "Table", partition_key=PK)
    replica = _only(stack, "AWS::DynamoDB::GlobalTable")["Properties"]["Replicas"][0]
    assert "KinesisStreamSpecification" not in replica
    assert table.kinesis_stream is None and table.kinesis_precision is None


def test_fails_stream_in_another_region():
    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account="123456789012",
                                                          region="eu-west-1"))
    stream = kinesis.Stream.from_stream_arn(
        stack, "Given", "arn:aws:kinesis:us-east-1:123456789012:stream/changes")
    with pytest.raises(ValueError, match=r"kinesis_stream .* is in region 'us-east-1', but "
                                         r"table 'Table' is in region 'eu-west-1'"):
        StreamTable(stack, "Table", partition_key=PK, kinesis_stream=stream)


def test_fails_stream_in_another_account():
    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account="123456789012",
                                                          region="us-east-1"))
    stream = kinesis.Stream.from_stream_arn(
        stack, "Given", "arn:aws:kinesis:us-east-1:210987654321:stream/changes")
    with pytest.raises(ValueError, match="is in account '210987654321'"):
        StreamTable(stack, "Table", partition_key=PK, kinesis_stream=stream)


def test_fails_precision_without_stream(stack):
    with pytest.raises(ValueError, match="kinesis_precision 'MICROSECOND' needs a kinesis_stream"):
        StreamTable(stack, "Table", partition_key=PK,
                    kinesis_precision=dynamodb.ApproximateCreationDateTimePrecision.MICROSECOND)


def test_fails_kinesis_stream_of_wrong_type(stack):
    with pytest.raises(TypeError, match="kinesis_stream must be a bool or a kinesis.IStream"):
        StreamTable(stack, "Table", partition_key=PK, kinesis_stream="arn:aws:kinesis:x")


# -- the consumer side ------------------------------------------------------------------


def test_snapshot(stack, snapshot):
    table = _table(stack)
    _controller(stack, "Shared", table=table,
                filters=[StreamFilter(event_names=["INSERT", "MODIFY"])])
    _controller(stack, "Fanned", table=table, efo=True)
    template = Template.from_stack(stack).to_json()
    assert mask_assets(template) == snapshot(extension_class=JSONSnapshotExtension)


def test_shared_reader_defaults(stack):
    table = _table(stack)
    controller = _controller(stack)
    assert controller.consumer is None
    mapping = _only(stack, "AWS::Lambda::EventSourceMapping")["Properties"]
    stream_id = stack.get_logical_id(table.kinesis_stream_created.node.default_child)
    bucket_id = stack.get_logical_id(controller.failure_bucket.node.default_child)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [stream_id, "Arn"]}
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 10
    assert mapping["MaximumRecordAgeInSeconds"] == 72_000  # 20 h, below the 24 h retention
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    # The default destination keeps the records (a bucket); the mapping counts deliveries.
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": [bucket_id, "Arn"]}}}
    assert mapping["MetricsConfig"] == {"Metrics": ["EventCount"]}
    assert not _resources(stack, "AWS::Kinesis::StreamConsumer")
    assert isinstance(controller, SimpleController) and controller.table is None
    assert {"handlerIteratorAge", "handlerErrors", "failureDeliveries",
            "droppedRecords"} <= set(controller.alarms), controller.alarms
    delivered = _resources(stack, "AWS::CloudWatch::Alarm")[
        stack.get_logical_id(controller.alarms["failureDeliveries"].node.default_child)]
    assert delivered["Properties"]["MetricName"] == "OnFailureDestinationDeliveredEventCount"
    assert delivered["Properties"]["Dimensions"] == [{"Name": "EventSourceMappingUUID", "Value": {
        "Ref": stack.get_logical_id(controller.event_source_mapping.node.default_child)}}]
    assert len(controller.dashboard_rows()) == 2


def test_enhanced_fan_out_consumer(stack):
    table = _table(stack)
    controller = _controller(stack, "Fanned", efo=True)
    consumer = _only(stack, "AWS::Kinesis::StreamConsumer")["Properties"]
    stream_id = stack.get_logical_id(table.kinesis_stream_created.node.default_child)
    assert consumer == {"ConsumerName": "TestStack-Fanned",
                        "StreamARN": {"Fn::GetAtt": [stream_id, "Arn"]}}
    consumer_id = stack.get_logical_id(controller.consumer.node.default_child)
    mapping = _only(stack, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [consumer_id, "ConsumerARN"]}
    policy = json.dumps(_only(stack, "AWS::IAM::Policy"))
    assert "kinesis:SubscribeToShard" in policy and consumer_id in policy


def test_filters_are_wrapped_under_data(stack):
    _controller(stack, filters=[StreamFilter(new_image={"status": Rule.equals("done")}),
                                StreamFilter.ttl_expiry()])
    mapping = _only(stack, "AWS::Lambda::EventSourceMapping")["Properties"]
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [
        {"data": {"dynamodb": {"NewImage": {"status": {"S": ["done"]}}}}},
        {"data": {"eventName": ["REMOVE"], "userIdentity": {
            "type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}}},
    ]


def test_sqs_failure_destination_stays_available(stack):
    controller = _controller(stack, failure_destination=FailureDestination.sqs())
    assert controller.failure_queue is not None and controller.failure_bucket is None
    mapping = _only(stack, "AWS::Lambda::EventSourceMapping")["Properties"]
    queue_id = stack.get_logical_id(controller.failure_queue.node.default_child)
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [queue_id, "Arn"]}
    assert {"failureQueueMessages", "droppedRecords"} <= set(controller.alarms)
    assert "failureDeliveries" not in controller.alarms


def test_s3_failure_destination(stack):
    controller = _controller(stack, failure_destination=FailureDestination.s3())
    assert controller.failure_bucket is not None and controller.failure_queue is None
    mapping = _only(stack, "AWS::Lambda::EventSourceMapping")["Properties"]
    bucket_id = stack.get_logical_id(controller.failure_bucket.node.default_child)
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [bucket_id, "Arn"]}


def test_on_demand_advantage_allows_fifty_consumers(stack):
    table = _table(stack)
    for index in range(MAX_EFO_CONSUMERS + 1):
        KinesisController(
            stack, f"C{index}", code=CODE, handler="index.handler",
            source=KinesisSource.of_table(table, enhanced_fan_out=True, on_demand_advantage=True))
    assert len(_resources(stack, "AWS::Kinesis::StreamConsumer")) == MAX_EFO_CONSUMERS + 1


def test_fails_more_enhanced_fan_out_consumers_than_the_stream_allows(stack):
    table = _table(stack)
    for index in range(MAX_EFO_CONSUMERS):
        _controller(stack, f"C{index}", table=table, efo=True)
    with pytest.raises(ValueError, match=r"would have 21 enhanced fan-out consumers .* at "
                                         r"most 20 \(on-demand standard or provisioned"):
        _controller(stack, "OneTooMany", table=table, efo=True)


def test_fails_two_consumers_with_one_name_on_a_stream(stack):
    stream = _table(stack).kinesis_stream
    for id in ("A", "B"):
        source = KinesisSource(stream=stream, enhanced_fan_out=True, consumer_name="search")
        if id == "B":
            with pytest.raises(ValueError, match="consumer_name 'search' is already registered"):
                KinesisController(stack, id, source=source, code=CODE, handler="index.handler")
        else:
            KinesisController(stack, id, source=source, code=CODE, handler="index.handler")


def test_fails_filter_on_a_field_the_kinesis_record_lacks():
    flt = StreamFilter.from_pattern({"dynamodb": {"SequenceNumber": ["111"]}})
    with pytest.raises(ValueError, match=r"cannot apply to a kinesis source: pattern field "
                                         r"'dynamodb.SequenceNumber' is never in the record "
                                         r"dynamodb writes to kinesis"):
        kinesis_pattern(flt)


def test_fails_filter_on_creation_time(stack):
    with pytest.raises(ValueError, match="ApproximateCreationDateTime .* milliseconds or "
                                         "microseconds"):
        _controller(stack, filters=[StreamFilter(
            approximate_creation_time=Rule.numeric(">", 1_700_000_000))])


def test_fails_consumer_name_without_fan_out_or_invalid(stack):
    stream = _table(stack).kinesis_stream
    with pytest.raises(ValueError, match="consumer_name 'mine' needs enhanced_fan_out=True"):
        KinesisSource(stream=stream, consumer_name="mine")
    with pytest.raises(ValueError, match=r"consumer_name must be 1 to 128 .* got 'no spaces'"):
        KinesisSource(stream=stream, enhanced_fan_out=True, consumer_name="no spaces")


def test_fails_table_without_kinesis_stream(stack):
    table = StreamTable(stack, "Plain", partition_key=PK)
    with pytest.raises(ValueError, match="table 'TestStack/Plain' writes to no kinesis stream"):
        KinesisSource.of_table(table)


@pytest.mark.parametrize(("prop", "value", "message"), [
    ("batch_size", 10_001, "batch_size"),
    ("parallelization_factor", 11, "parallelization_factor"),
    ("retry_attempts", -1, "retry_attempts"),
    ("max_record_age", cdk.Duration.days(8), "max_record_age"),
    ("max_batching_window", cdk.Duration.seconds(301), "max_batching_window"),
])
def test_fails_limits(stack, prop, value, message):
    with pytest.raises(ValueError, match=message):
        _controller(stack, **{prop: value})


def test_cdk_nag_and_cfn_lint_have_no_finding():
    from cdk_nag import AwsSolutionsChecks
    from cfnlint.api import ManualArgs, lint

    app = cdk.App()
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = cdk.Stack(app, "Checked")
    table = _table(stack)
    _controller(stack, "Shared", table=table, filters=[StreamFilter(event_names=["MODIFY"])])
    _controller(stack, "Fanned", table=table, efo=True, failure_destination=FailureDestination.s3())
    template = app.synth().get_stack_by_name("Checked").template  # cdk-nag raises on findings
    assert "AWS::Kinesis::StreamConsumer" in {r["Type"] for r in template["Resources"].values()}
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches] == []


def _warnings(stack: cdk.Stack) -> list[str]:
    from aws_cdk.assertions import Annotations, Match

    found = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp(
        "shared-throughput readers"))
    return [w.entry.data for w in found]


def test_a_sixth_shared_reader_warns_and_fan_out_readers_do_not_count(stack):
    table = _table(stack)
    for index in range(5):
        _controller(stack, f"R{index}", table=table)
    _controller(stack, "Fanned", table=table, efo=True)
    assert _warnings(stack) == []
    _controller(stack, "Sixth", table=table)
    [warning] = _warnings(stack)
    assert "now has 6 shared-throughput readers" in warning
    assert "ddb-stream-patterns:kinesis-shared-readers" in warning


def test_the_shared_readers_warning_can_be_acknowledged(stack):
    table = _table(stack)
    cdk.Annotations.of(stack).acknowledge_warning(
        "ddb-stream-patterns:kinesis-shared-readers", "low traffic")
    for index in range(6):
        _controller(stack, f"R{index}", table=table)
    assert _warnings(stack) == []


def test_wrong_types_fail_at_entry_naming_the_prop(stack):
    table = _table(stack)
    with pytest.raises(TypeError, match="KinesisSource: stream must be a kinesis.IStream, got str"):
        KinesisSource(stream="arn:aws:kinesis:us-east-1:123456789012:stream/s")
    with pytest.raises(TypeError, match="KinesisController: source must be a KinesisSource, "
                                        "got StreamTable"):
        KinesisController(stack, "C", source=table, code=CODE, handler="index.handler")
    with pytest.raises(TypeError, match="KinesisController: batch_size must be an int, got str"):
        _controller(stack, "D", table=table, batch_size="100")
