"""The default failure destination of every stream mapping: a bucket that keeps the records
given up on, the mapping's EventCount metrics, and alarms on them that reach the alarm topic.
Every pattern, on the table's stream and on Kinesis, and the fan-out routers
(``StreamFanOut``, ``ComplexController``)."""

from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_lambda as lambda_
import pytest
from aws_cdk.assertions import Template

from ddb_stream_patterns import (
    AggregateCounter,
    ComplexController,
    FailureDestination,
    KinesisSource,
    Processor,
    Route,
    SearchIndexer,
    SimpleController,
    StreamFanOut,
    StreamTable,
    TableReplicator,
    TtlArchiver,
)
from tests.constructs.data_support import KEY, actions, mapping_of, role_statements, tasks

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return None\n")

PATTERNS = {
    "archiver": lambda stack, table, source: TtlArchiver(
        stack, "Archive", table=table, source=source),
    "counter": lambda stack, table, source: AggregateCounter(
        stack, "Counts", table=table, group_attribute="ListId", source=source),
    "indexer": lambda stack, table, source: SearchIndexer(
        stack, "Search", table=table, index_name="tasks", source=source),
    "replicator": lambda stack, table, source: TableReplicator(
        stack, "Copy", table=table, target_table=StreamTable(stack, "Target", **KEY),
        source=source),
    "controller": lambda stack, table, source: SimpleController(
        stack, "User", table=table, code=CODE, handler="index.handler", source=source),
}


def _binding(pattern):
    """The stream mapping's owner: the controller itself, or a pattern's ``.controller``."""
    return pattern if isinstance(pattern, SimpleController) else pattern.controller


@pytest.mark.parametrize("kinesis", [False, True], ids=["table stream", "kinesis"])
@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_pattern_keeps_what_it_gives_up_on_and_alarms(stack, name, kinesis):
    table = tasks(stack, kinesis_stream=True) if kinesis else tasks(stack)
    source = KinesisSource.of_table(table) if kinesis else None
    binding = _binding(PATTERNS[name](stack, table, source))
    mapping = mapping_of(stack, binding)
    source_arn = mapping["EventSourceArn"]["Fn::GetAtt"]
    if kinesis:
        assert source_arn == [
            stack.get_logical_id(table.kinesis_stream_created.node.default_child), "Arn"]
    else:
        assert source_arn == [stack.get_logical_id(table.node.default_child), "StreamArn"]
    _assert_keeps_records_and_alarms(stack, binding)


def _assert_keeps_records_and_alarms(stack, binding):
    """``binding``'s stream mapping sends what it gives up on to its own secure, expiring
    bucket, with write-only statements, EventCount metrics and both alarms to the topic."""
    template = Template.from_stack(stack).to_json()["Resources"]
    mapping = mapping_of(stack, binding)
    # Given up on after 20 hours, before the stream's 24 h retention trims the records.
    assert mapping["MaximumRecordAgeInSeconds"] == 20 * 3600
    # The destination: the binding's own bucket, secure, expiring records after 90 days.
    bucket = binding.failure_bucket
    assert bucket is not None and binding.failure_queue is None
    bucket_id = stack.get_logical_id(bucket.node.default_child)
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": [bucket_id, "Arn"]}}}
    props = template[bucket_id]["Properties"]
    assert template[bucket_id]["DeletionPolicy"] == "Retain"
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["LifecycleConfiguration"]["Rules"] == [
        {"Id": "ExpireFailureRecords", "ExpirationInDays": 90, "Status": "Enabled"}]
    [policy] = [r for r in template.values() if r["Type"] == "AWS::S3::BucketPolicy"
                and r["Properties"]["Bucket"] == {"Ref": bucket_id}]
    assert {"Bool": {"aws:SecureTransport": "false"}} in [
        s.get("Condition") for s in policy["Properties"]["PolicyDocument"]["Statement"]]

    # The role may write failure records there, on a bucket of this account, and nothing else.
    statements = [s for s in role_statements(stack, binding.function)
                  if bucket_id in json.dumps(s["Resource"])]
    owner = {"StringEquals": {"s3:ResourceAccount": {"Ref": "AWS::AccountId"}}}
    assert sorted((s["Action"], json.dumps(s["Condition"])) for s in statements) == [
        ("s3:ListBucket", json.dumps(owner)), ("s3:PutObject", json.dumps(owner))]

    # The mapping counts what it sends there; the alarms on those counts reach the topic.
    assert mapping["MetricsConfig"] == {"Metrics": ["EventCount"]}
    mapping_ref = {"Ref": stack.get_logical_id(binding.event_source_mapping.node.default_child)}
    topic = {"Ref": stack.get_logical_id(binding.alarm_topic.node.default_child)}
    for key, metric in (("failureDeliveries", "OnFailureDestinationDeliveredEventCount"),
                        ("droppedRecords", "DroppedEventCount")):
        alarm = template[stack.get_logical_id(binding.alarms[key].node.default_child)]
        assert alarm["Properties"]["MetricName"] == metric
        assert alarm["Properties"]["Namespace"] == "AWS/Lambda"
        assert alarm["Properties"]["Dimensions"] == [
            {"Name": "EventSourceMappingUUID", "Value": mapping_ref}]
        assert (alarm["Properties"]["Statistic"], alarm["Properties"]["Threshold"]) == ("Sum", 1)
        assert alarm["Properties"]["AlarmActions"] == [topic]
    assert "failureQueueMessages" not in binding.alarms


def test_a_given_bucket_of_this_stack_gets_its_owner_condition_and_no_lifecycle(stack):
    import aws_cdk.aws_s3 as s3

    from ddb_stream_patterns import FailureDestination, StreamOptions

    mine = s3.Bucket(stack, "Mine", enforce_ssl=True)
    archiver = TtlArchiver(stack, "Archive", table=tasks(stack), stream_options=StreamOptions(
        failure_destination=FailureDestination.s3(mine)))
    assert archiver.controller.failure_bucket is mine
    mine_id = stack.get_logical_id(mine.node.default_child)
    statements = [s for s in role_statements(stack, archiver.function)
                  if mine_id in json.dumps(s["Resource"])]
    owner = {"StringEquals": {"s3:ResourceAccount": {"Ref": "AWS::AccountId"}}}
    assert sorted((s["Action"], json.dumps(s.get("Condition"))) for s in statements) == [
        ("s3:ListBucket", json.dumps(owner)), ("s3:PutObject", json.dumps(owner))]
    resource = Template.from_stack(stack).to_json()["Resources"][mine_id]
    assert "LifecycleConfiguration" not in resource.get("Properties", {})
    assert "failureDeliveries" in archiver.alarms
    Template.from_stack(stack).resource_count_is("AWS::S3::Bucket", 2)  # mine, the archive


def test_removal_policy_reaches_the_failure_bucket(stack):
    controller = SimpleController(stack, "C", table=tasks(stack), code=CODE,
                                  handler="index.handler",
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
    resource = Template.from_stack(stack).to_json()["Resources"][
        stack.get_logical_id(controller.failure_bucket.node.default_child)]
    assert resource["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("kinesis", [False, True], ids=["table stream", "kinesis"])
def test_a_pattern_can_still_choose_the_failure_queue(stack, kinesis):
    from ddb_stream_patterns import FailureDestination, StreamOptions

    table = tasks(stack, kinesis_stream=True) if kinesis else tasks(stack)
    counter = AggregateCounter(
        stack, "Counts", table=table, group_attribute="ListId",
        source=KinesisSource.of_table(table) if kinesis else None,
        stream_options=StreamOptions(failure_destination=FailureDestination.sqs()))
    queue = counter.controller.failure_queue
    assert queue is not None and counter.controller.failure_bucket is None
    assert mapping_of(stack, counter.controller)["DestinationConfig"]["OnFailure"] == {
        "Destination": {"Fn::GetAtt": [stack.get_logical_id(queue.node.default_child), "Arn"]}}
    assert {"failureQueueMessages", "droppedRecords"} <= set(counter.alarms)
    Template.from_stack(stack).resource_count_is("AWS::S3::Bucket", 0)


ROUTERS = {
    "fan-out": lambda stack, table, **kw: StreamFanOut(stack, "FanOut", table=table, **{
        ("router_failure_destination" if k == "destination" else k): v for k, v in kw.items()}),
    "complex": lambda stack, table, **kw: ComplexController(
        stack, "Complex", table=table, processors={"p": Processor(
            route=Route(event_names=["INSERT"]), code=CODE, handler="index.handler")},
        **{("controller_failure_destination" if k == "destination" else k): v
           for k, v in kw.items()}),
}


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_the_router_keeps_what_it_gives_up_on_and_alarms(stack, name):
    router = ROUTERS[name](stack, tasks(stack))
    binding = router.controller
    # The router's mapping is a SimpleController's: the same bucket, statements, metrics
    # config and alarms as every other stream mapping (one helper, not a second copy).
    assert binding.function is router.controller_function
    assert binding.failure_bucket is not None
    assert binding.failure_bucket.node.path == f"{router.node.path}/Controller/FailureBucket"
    _assert_keeps_records_and_alarms(stack, binding)
    # The router exposes its destination; its alarms (prefixed) include both failure alarms.
    assert router.failure_bucket is binding.failure_bucket and router.failure_queue is None
    assert router.failure_destination is binding.failure_destination
    assert {"controller.failureDeliveries", "controller.droppedRecords"} <= set(router.alarms)
    assert "controller.failureQueueMessages" not in router.alarms
    delivered = router.metric_failure_deliveries()
    assert delivered.metric_name == "OnFailureDestinationDeliveredEventCount"
    assert stack.resolve(delivered.dimensions) == {"EventSourceMappingUUID": {
        "Ref": stack.get_logical_id(binding.event_source_mapping.node.default_child)}}
    assert router.metric_dropped_records().metric_name == "DroppedEventCount"
    # The claim-check bucket and the failure bucket: two buckets, no failure queue.
    buckets = Template.from_stack(stack).find_resources("AWS::S3::Bucket")
    assert set(buckets) == {stack.get_logical_id(b.node.default_child)
                            for b in (router.claim_check_bucket, router.failure_bucket)}
    # Its dashboard rows show the bucket (delivered and dropped), not a queue depth.
    widgets = json.dumps([stack.resolve(w.to_json()) for row in router.dashboard_rows()
                          for w in row])
    assert f"{router.node.path}/Controller: failure bucket (records given up on)" in widgets
    assert "OnFailureDestinationDeliveredEventCount" in widgets and "failure queue" not in widgets


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_the_router_can_still_choose_the_failure_queue(stack, name):
    router = ROUTERS[name](stack, tasks(stack), destination=FailureDestination.sqs(),
                           claim_check=False)
    queue = router.failure_queue
    assert queue is not None and router.failure_bucket is None
    assert queue is router.controller.failure_queue
    # The construct id it always had: a deployed router keeps its queue (no replacement).
    assert queue.node.path == f"{router.node.path}/Controller/FailureQueue"
    assert mapping_of(stack, router.controller)["DestinationConfig"]["OnFailure"] == {
        "Destination": {"Fn::GetAtt": [stack.get_logical_id(queue.node.default_child), "Arn"]}}
    assert mapping_of(stack, router.controller)["MetricsConfig"] == {"Metrics": ["EventCount"]}
    assert {"controller.failureQueueMessages", "controller.droppedRecords"} <= set(router.alarms)
    assert "controller.failureDeliveries" not in router.alarms
    Template.from_stack(stack).resource_count_is("AWS::S3::Bucket", 0)


BUCKET_ARN = "arn:aws:s3:::failed-records-bucket"


def _bucket_statements(stack, controller) -> list[dict]:
    """The role's statements on the failure bucket (by its ARN), or on its key."""
    return [s for s in role_statements(stack, controller.function)
            if "failed-records-bucket" in json.dumps(s["Resource"])
            or "kms" in json.dumps(s["Action"])]


def _given(stack, bucket) -> SimpleController:
    from ddb_stream_patterns import FailureDestination

    return SimpleController(stack, "C", table=tasks(stack), code=CODE, handler="index.handler",
                            failure_destination=FailureDestination.s3(bucket))


@pytest.mark.parametrize(("env", "imported", "owner"), [
    (None, lambda s, s3: s3.Bucket.from_bucket_attributes(
        s, "B", bucket_arn=BUCKET_ARN, account="222222222222"), "222222222222"),
    ("111111111111", lambda s, s3: s3.Bucket.from_bucket_attributes(
        s, "B", bucket_arn=BUCKET_ARN, account="222222222222"), "222222222222"),
    # CDK's model: a bucket imported without an account is the importing stack's.
    ("111111111111", lambda s, s3: s3.Bucket.from_bucket_arn(s, "B", BUCKET_ARN),
     "111111111111"),
    # An S3 ARN carries no account, and this stack has none: the owner is unknown.
    (None, lambda s, s3: s3.Bucket.from_bucket_arn(s, "B", BUCKET_ARN), None),
], ids=["given account", "given account, stack with account", "stack's account", "unknown"])
def test_a_given_bucket_gets_its_owner_condition_when_its_account_is_known(env, imported, owner):
    import aws_cdk.aws_s3 as s3

    stack = cdk.Stack(cdk.App(), "TestStack", env=env and cdk.Environment(
        account=env, region="eu-west-1"))
    controller = _given(stack, imported(stack, s3))
    statements = _bucket_statements(stack, controller)
    assert sorted(s["Action"] for s in statements) == ["s3:ListBucket", "s3:PutObject"]
    expected = ({"StringEquals": {"s3:ResourceAccount": owner}} if owner else None)
    assert [s.get("Condition") for s in statements] == [expected, expected]


KEY_ARN = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_a_bucket_imported_with_its_key_gets_generate_data_key(stack):
    import aws_cdk.aws_kms as kms
    import aws_cdk.aws_s3 as s3

    key = kms.Key.from_key_arn(stack, "Key", KEY_ARN)
    controller = _given(stack, s3.Bucket.from_bucket_attributes(
        stack, "B", bucket_arn=BUCKET_ARN, encryption_key=key))
    assert controller.failure_bucket.encryption_key.key_arn == KEY_ARN
    kms_statements = [s for s in _bucket_statements(stack, controller)
                      if "kms" in json.dumps(s["Action"])]
    assert [(s["Action"], s["Resource"]) for s in kms_statements] == [
        ("kms:GenerateDataKey", KEY_ARN)]


def test_a_bucket_imported_without_its_key_gets_no_kms_grant(stack):
    # What the docstring and README warn of: the role cannot know the key, so an import of
    # a bucket encrypted with a customer managed key must carry it (encryption_key=).
    import aws_cdk.aws_s3 as s3

    controller = _given(stack, s3.Bucket.from_bucket_arn(stack, "B", BUCKET_ARN))
    statements = role_statements(stack, controller.function)
    assert {"s3:PutObject", "s3:ListBucket"} <= actions(statements)
    assert not any(a.startswith("kms:") for a in actions(statements))
