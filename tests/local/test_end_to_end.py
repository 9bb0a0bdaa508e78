"""End to end on the local cloud: the example app through the README's command, and
fault injection (poison records, forced redelivery) through the constructs."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import pytest

from ddb_stream_patterns import (
    AggregateCounter,
    FailureDestination,
    SimpleController,
    StreamFanOut,
    StreamOptions,
    StreamTable,
)
from ddb_stream_patterns.local.pollers import Pollers
from ddb_stream_patterns.local.runner import run
from tests.support import REPO

ITEMS = 12  # per table: 3 user deletes and, where TTL is on, 3 TTL expiries


@pytest.fixture(scope="module")
def example_run():
    out = io.StringIO()
    report = run(project=REPO, items=ITEMS, out=out, timeout=90)
    return report, out.getvalue()


def _flow(report, suffix):
    [(_, stats)] = [(k, v) for k, v in report.flows.items() if k.endswith(suffix)]
    return stats


def test_every_example_pattern_works(example_run):
    report, text = example_run
    live = ITEMS - 3 - 3  # minus user deletes and TTL expiries
    # Simple controller: only MODIFYs with a status reach the notifier (3 of 21 records).
    notifier = _flow(report, "SimpleController/StatusNotifier (stream)")
    assert (notifier.records_in, notifier.filtered_out, notifier.succeeded) == (21, 18, 3)
    # Complex controller: inserts -> Welcome, deletes -> Audit, modifies wait 5 min in their queue.
    assert _flow(report, "CustomerEvents/Welcome (queue)").succeeded == ITEMS
    assert _flow(report, "CustomerEvents/Audit (queue)").succeeded == 3
    assert report.queues["DdbStreamPatterns-ComplexController/CustomerEvents/StatusNotifierQueue"]["delayed"] == 4
    # Data patterns on the todoListTask table, behind one StreamFanOut: each reads its queue.
    assert _flow(report, "DataPatterns/ExpiredTasks (queue)").succeeded == 3  # TTL only
    [archive] = [v for k, v in report.outcomes.items() if "DataPatterns/" in k and "ArchiveBucket" in k]
    # Behind a queue the archiver writes one object per record (keyed by the record, so a
    # redelivered one lands on the same key): three expiries, three objects.
    assert len(archive) == 3 and all(key.endswith(".json.gz") for key in archive)
    [counts] = [v for k, v in report.outcomes.items() if "DataPatterns/" in k and "CounterTable" in k]
    assert {k: v["count"] for k, v in counts.items()} == {f"list-{i}": Decimal(2) for i in range(3)}
    [report_rows] = [v for k, v in report.outcomes.items() if "DataPatterns/" in k and "TaskReport" in k]
    assert report_rows == live
    assert report.outcomes["search index tasks"] == live
    # KinesisPatterns: the same patterns through Kinesis (two enhanced fan-out consumers,
    # one shared reader) leave the same results.
    for name in ("TaskCountPerList", "TaskReporting", "ExpiredTasks"):
        assert _flow(report, f"KinesisPatterns/{name} (kinesis)").records_in > 0
    assert _flow(report, "KinesisPatterns/ExpiredTasks (kinesis)").succeeded == 3
    [kinesis_archive] = [v for k, v in report.outcomes.items()
                         if "KinesisPatterns/" in k and "ArchiveBucket" in k]
    assert len(kinesis_archive) == 3
    [kinesis_counts] = [v for k, v in report.outcomes.items()
                        if "KinesisPatterns/" in k and "CounterTable" in k]
    assert kinesis_counts == counts
    [kinesis_rows] = [v for k, v in report.outcomes.items()
                      if "KinesisPatterns/" in k and "TaskReport" in k]
    assert kinesis_rows == live
    # Nothing failed, nothing reached a DLQ; the summary says so for a person.
    assert all(s.sent_to_failure_destination == 0 for s in report.flows.values())
    assert all(q["visible"] == 0 for q in report.queues.values())
    assert "What each pattern did" in text and "unsupported" in text
    # IAM is enforced and every example's roles allow what its functions do.
    assert report.denied == {} and report.sns_denied == {} and "Denied by IAM" not in text
    assert " enforced, " in report.deployment_summary


class FaultStack(cdk.Stack):
    """A handler that fails on poison records (and a counter on the same stream); its
    failure destination is ``failure_destination`` (``None``: the default bucket)."""

    def __init__(self, scope, id, *, failure_destination=None):
        super().__init__(scope, id)
        key = dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING)
        self.table = StreamTable(self, "Orders", partition_key=key)
        self.effects = dynamodb.TableV2(self, "Effects", partition_key=key)
        self.controller = SimpleController(
            self, "EffectsHandler", table=self.table,
            code=lambda_.Code.from_asset(str(REPO / "tests" / "local" / "handlers" / "poison")),
            handler="index.handler", retry_attempts=2, batch_size=10,
            function_options=lambda_.FunctionOptions(
                environment={"EFFECTS_TABLE": self.effects.table_name}),
            failure_destination=failure_destination,
        )
        # The handler writes its side effects to this table: without the grant the
        # local cloud denies it, as AWS would (IAM is enforced).
        self.effects.grant_write_data(self.controller.function)
        self.counter = AggregateCounter(self, "PerList", table=self.table, group_attribute="list",
                                        stream_options=StreamOptions(batch_size=7))


def test_poison_records_go_to_the_dlq_and_nothing_is_lost_or_duplicated(local_cloud, deploy_app):
    stack = FaultStack(cdk.App(), "Faults", failure_destination=FailureDestination.sqs())
    deployment = deploy_app(stack.node.root)
    ddb = local_cloud.client("dynamodb")
    table = deployment.by_path("Faults/Orders").physical_id
    n, poison = 30, {"order-07", "order-15", "order-22"}
    for i in range(n):
        key = f"order-{i:02d}"
        item = {"orderId": {"S": key}, "list": {"S": f"list-{i % 3}"}}
        if key in poison:
            item["poison"] = {"BOOL": True}
        ddb.put_item(TableName=table, Item=item)

    # Forced redelivery: every counter batch is delivered twice.
    counter = next(f for k, f in deployment.functions.items() if "PerList" in k)
    invoke = counter.invoke
    counter.invoke = lambda event: (invoke(event), invoke(event))[1]

    pollers = Pollers(deployment.mappings, local_cloud.client)
    pollers.run_until_idle(timeout=60)

    effects = deployment.by_path("Faults/Effects").physical_id
    seen = {i["orderId"]["S"]: int(i["seen"]["N"]) for i in ddb.scan(TableName=effects)["Items"]}
    assert set(seen) == {f"order-{i:02d}" for i in range(n)} - poison  # N-K processed
    assert set(seen.values()) == {1}  # no side effect duplicated

    sqs = local_cloud.client("sqs")
    queue = deployment.queues[next(k for k in deployment.queues if "EffectsHandlerFailureQueue" in k)]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    failed = [json.loads(m["Body"]) for m in messages]
    assert len(failed) == len(poison)  # K in the DLQ
    # As in AWS, an SQS on-failure record holds the batch's coordinates, not the records:
    # they are read back from the stream (within its 24 h retention).
    assert all("records" not in f and f["DDBStreamBatchInfo"]["batchSize"] == 1 for f in failed)
    streams = local_cloud.client("dynamodbstreams")
    reread = set()
    for f in failed:
        info = f["DDBStreamBatchInfo"]
        iterator = streams.get_shard_iterator(
            StreamArn=info["streamArn"], ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=info["startSequenceNumber"])["ShardIterator"]
        [record, *_] = streams.get_records(ShardIterator=iterator, Limit=1)["Records"]
        assert record["dynamodb"]["SequenceNumber"] == info["endSequenceNumber"]
        reread.add(record["dynamodb"]["Keys"]["orderId"]["S"])
    assert reread == poison
    assert {f["requestContext"]["condition"] for f in failed} == {"RetryAttemptsExhausted"}

    counts = deployment.by_path("Faults/PerList/CounterTable").physical_id
    rows = {i["pk"]["S"]: int(i["count"]["N"]) for i in ddb.scan(TableName=counts)["Items"]
            if not i["pk"]["S"].startswith("__applied__#")}
    assert rows == {"list-0": 10, "list-1": 10, "list-2": 10}  # exact despite redelivery
    assert counter.invocations >= 2 * 5  # 30 records in batches of 7, each delivered twice

    # Each construct's stats, from the construct; keyed by construct path, not logical ID.
    handler = deployment.stats_of(stack.controller)
    assert handler.sent_to_failure_destination == len(poison)
    assert deployment.stats_of("Faults/EffectsHandler") is handler
    assert deployment.stats_of(stack.counter).succeeded == n
    assert all(k.startswith(("Faults/EffectsHandler/", "Faults/PerList/"))
               for k in deployment.mapping_stats())


def test_a_poison_record_lands_in_the_failure_bucket_with_its_payload(local_cloud, deploy_app):
    # The default failure destination: a bucket that keeps what the stream will drop
    # after 24 h. IAM is enforced: the role's s3:PutObject and s3:ListBucket (with
    # s3:ResourceAccount) are what lets the mapping write there.
    stack = FaultStack(cdk.App(), "PoisonToS3")
    deployment = deploy_app(stack.node.root)
    assert local_cloud.enforce_iam
    ddb = local_cloud.client("dynamodb")
    table = deployment.by_path("PoisonToS3/Orders").physical_id
    for key in ("order-1", "order-2", "order-3"):
        item = {"orderId": {"S": key}, "list": {"S": "l"}, "status": {"S": "new"}}
        if key == "order-2":
            item["poison"] = {"BOOL": True}
        ddb.put_item(TableName=table, Item=item)
    Pollers(deployment.mappings, local_cloud.client).run_until_idle(timeout=60)

    stats = deployment.stats_of(stack.controller)
    assert stats.sent_to_failure_destination == 1  # only the poison record was given up on
    # The mapping's counts, as Lambda's OnFailureDestinationDeliveredEventCount and
    # DroppedEventCount (the alarms' metrics) would show them.
    assert (stats.on_failure_delivered, stats.dropped, stats.denied) == (1, 0, 0)
    bucket = deployment.by_path("PoisonToS3/EffectsHandler/FailureBucket").physical_id
    s3 = local_cloud.client("s3")
    [obj] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    mapping = deployment.by_path(
        stack.controller.event_source_mapping.node.default_child.node.path)
    assert obj["Key"].startswith(f"aws/lambda/{mapping.physical_id}/")
    body = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["DDBStreamBatchInfo"]["batchSize"] == 1
    # The payload: the record itself, not just its coordinates, so it outlives the stream.
    [record] = json.loads(body["payload"])["Records"]
    assert record["dynamodb"]["Keys"] == {"orderId": {"S": "order-2"}}
    assert record["dynamodb"]["NewImage"]["poison"] == {"BOOL": True}
    assert record["dynamodb"]["SequenceNumber"] == body["DDBStreamBatchInfo"]["startSequenceNumber"]
    effects = deployment.by_path("PoisonToS3/Effects").physical_id
    done = {i["orderId"]["S"] for i in ddb.scan(TableName=effects)["Items"]}
    assert done == {"order-1", "order-3"}  # the others went through


class RouterFaultStack(cdk.Stack):
    """A fan-out without a claim check: its router cannot publish a record over SNS's
    256 KiB, so it fails that record every time; a consumer writes the others' effects."""

    def __init__(self, scope, id):
        super().__init__(scope, id)
        key = dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING)
        self.table = StreamTable(self, "Orders", partition_key=key)
        self.effects = dynamodb.TableV2(self, "Effects", partition_key=key)
        self.fan_out = StreamFanOut(self, "FanOut", table=self.table, claim_check=False,
                                    retry_attempts=1)
        self.consumer = SimpleController(
            self, "EffectsHandler", table=self.table, source=self.fan_out,
            code=lambda_.Code.from_asset(str(REPO / "tests" / "local" / "handlers" / "poison")),
            handler="index.handler",
            function_options=lambda_.FunctionOptions(
                environment={"EFFECTS_TABLE": self.effects.table_name}),
        )
        self.effects.grant_write_data(self.consumer.function)


def test_a_record_the_router_gives_up_on_lands_in_its_failure_bucket(local_cloud, deploy_app):
    # The router's default failure destination is a bucket too: the record it cannot
    # publish is kept with its payload, not only its stream coordinates (IAM enforced).
    stack = RouterFaultStack(cdk.App(), "RouterFaults")
    deployment = deploy_app(stack.node.root)
    assert local_cloud.enforce_iam
    ddb = local_cloud.client("dynamodb")
    table = deployment.by_path("RouterFaults/Orders").physical_id
    for key in ("order-1", "order-2"):
        ddb.put_item(TableName=table, Item={"orderId": {"S": key}})
    big = "x" * 300_000  # over SNS's 256 KiB, under DynamoDB's 400 KB item limit
    ddb.put_item(TableName=table, Item={"orderId": {"S": "order-big"}, "blob": {"S": big}})
    Pollers(deployment.mappings, local_cloud.client).run_until_idle(timeout=60)

    router = deployment.stats_of(stack.fan_out.controller_function)  # its stream mapping
    assert router.records_in == 3 and router.failed_attempts >= 1
    # Given up on once, delivered to the destination (OnFailureDestinationDeliveredEventCount
    # counts it), nothing dropped.
    assert (router.sent_to_failure_destination, router.on_failure_delivered, router.dropped,
            router.denied) == (1, 1, 0, 0)
    bucket = deployment.by_path("RouterFaults/FanOut/Controller/FailureBucket").physical_id
    s3 = local_cloud.client("s3")
    [obj] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    mapping = deployment.by_path(
        stack.fan_out.controller.event_source_mapping.node.default_child.node.path)
    assert obj["Key"].startswith(f"aws/lambda/{mapping.physical_id}/")
    body = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    assert body["DDBStreamBatchInfo"]["batchSize"] == 1
    [record] = json.loads(body["payload"])["Records"]
    assert record["dynamodb"]["Keys"] == {"orderId": {"S": "order-big"}}
    assert record["dynamodb"]["NewImage"]["blob"] == {"S": big}  # the payload itself
    # The other records went through the topic to the consumer, once each.
    effects = deployment.by_path("RouterFaults/Effects").physical_id
    seen = {i["orderId"]["S"]: int(i["seen"]["N"]) for i in ddb.scan(TableName=effects)["Items"]}
    assert seen == {"order-1": 1, "order-2": 1}
