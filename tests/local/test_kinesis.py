"""Kinesis Data Streams for DynamoDB on the local cloud: the feeder writes DynamoDB's record
format, the poller has Lambda's Kinesis semantics, and a stack runs end to end."""

from __future__ import annotations

import base64
import doctest
import json
import re
import time
from collections import Counter
from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_

from ddb_stream_patterns import KinesisController, KinesisSource, StreamFilter, StreamTable
from ddb_stream_patterns.local import kinesis as local_kinesis
from ddb_stream_patterns.local.kinesis import (
    KinesisPoller,
    KinesisWriter,
    kinesis_change_record,
    partition_key,
)
from ddb_stream_patterns.local.model import MappingSpec
from ddb_stream_patterns.local.pollers import StreamPoller
from ddb_stream_patterns.local.pytest_plugin import run_pollers
from tests.local.test_pollers import Recorder, drain, make_queue, make_table, put, run
from tests.support import REPO

# The record DynamoDB writes to Kinesis, key by key in AWS's order (captured records of
# "Kinesis Data Streams for DynamoDB"; Powertools' KinesisDynamoDBStreamEvent schema).
TOP_KEYS = ["awsRegion", "eventID", "eventName", "userIdentity", "recordFormat", "tableName",
            "dynamodb", "eventSource"]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def test_doctests():
    assert doctest.testmod(local_kinesis).failed == 0


def _stream_record(name: str, **ddb: Any) -> dict:
    return {"eventID": "e1", "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000, "SequenceNumber": "1",
                         "StreamViewType": "NEW_AND_OLD_IMAGES", "SizeBytes": 20, **ddb},
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/T/stream/x"}


def test_change_record_has_dynamodbs_kinesis_shape():
    keys, old, new = {"pk": {"S": "a"}}, {"pk": {"S": "a"}, "n": {"N": "1"}}, {
        "pk": {"S": "a"}, "n": {"N": "2"}}
    record = kinesis_change_record(
        _stream_record("MODIFY", Keys=keys, OldImage=old, NewImage=new),
        table_name="Orders", created_at=1_700_000_000_123_456)
    assert list(record) == TOP_KEYS
    assert record == {
        "awsRegion": "us-east-1", "eventID": record["eventID"], "eventName": "MODIFY",
        "userIdentity": None, "recordFormat": "application/json", "tableName": "Orders",
        "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000_123_456, "Keys": keys,
                     "NewImage": new, "OldImage": old, "SizeBytes": 20,
                     "ApproximateCreationDateTimePrecision": "MICROSECOND"},
        "eventSource": "aws:dynamodb",
    }
    assert UUID.match(record["eventID"])
    # Milliseconds: no precision field; a TTL deletion keeps the service identity.
    ttl = kinesis_change_record(
        {**_stream_record("REMOVE", Keys=keys, OldImage=old), "userIdentity": TTL_IDENTITY},
        table_name="Orders", created_at=1_700_000_000_123, precision="MILLISECOND")
    assert ttl["userIdentity"] == TTL_IDENTITY
    assert ttl["dynamodb"] == {"ApproximateCreationDateTime": 1_700_000_000_123, "Keys": keys,
                               "OldImage": old, "SizeBytes": 20}


def test_partition_key_is_per_item_and_shaped_as_aws_writes_it():
    one = partition_key("Orders", {"pk": {"S": "a"}})
    assert re.fullmatch(r"[0-9A-F]{32}", one)
    assert one == partition_key("Orders", {"pk": {"S": "a"}})
    assert one != partition_key("Orders", {"pk": {"S": "b"}})


# -- against DynamoDB Local and moto ------------------------------------------------------


def _stream(client_factory, name: str, shards: int = 1) -> str:
    kinesis = client_factory("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "StreamARN"]


def _read_all(client_factory, name: str) -> dict[str, list[dict]]:
    """Every record of every shard: shard id -> [{"pk", "seq", "change"}]."""
    kinesis, out = client_factory("kinesis"), {}
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
        out[shard["ShardId"]] = [{"pk": r["PartitionKey"], "seq": r["SequenceNumber"],
                                  "change": json.loads(r["Data"])} for r in records]
    return out


def _feed(client_factory, table: str, stream_arn: str, stream: str, **options: Any
          ) -> KinesisWriter:
    writer = KinesisWriter(client_factory, stream_name=stream, table_name=table, **options)
    spec = MappingSpec(logical_id="Feed", function=writer, kind="dynamodb",
                       source_arn=stream_arn, batch_size=1000)
    run(StreamPoller(spec, client_factory))
    return writer


def test_feeder_copies_the_tables_changes_in_order_per_item(client_factory, unique):
    table, stream = unique("kt"), unique("ks")
    stream_arn = make_table(client_factory, table)
    _stream(client_factory, stream, shards=3)
    for i in range(6):
        put(client_factory, table, f"item-{i % 3}", n={"N": str(i)})
    client_factory("dynamodb").delete_item(TableName=table, Key={"pk": {"S": "item-0"}})
    writer = _feed(client_factory, table, stream_arn, stream)
    assert writer.written == 7 and writer.duplicates == 0
    shards = _read_all(client_factory, stream)
    records = [r for rs in shards.values() for r in rs]
    assert len(records) == 7
    for r in records:
        change = r["change"]
        assert list(change) == TOP_KEYS
        assert change["tableName"] == table and change["eventSource"] == "aws:dynamodb"
        assert change["recordFormat"] == "application/json" and change["userIdentity"] is None
        assert "SequenceNumber" not in change["dynamodb"]
        assert change["dynamodb"]["ApproximateCreationDateTimePrecision"] == "MICROSECOND"
        assert r["pk"] == partition_key(table, change["dynamodb"]["Keys"])
    # One item's changes sit in one shard, in the order they happened.
    per_item: dict[str, list[tuple[str, str]]] = {}
    for shard_id, rs in shards.items():
        for r in rs:
            key = r["change"]["dynamodb"]["Keys"]["pk"]["S"]
            per_item.setdefault(key, []).append(
                (shard_id, r["change"]["eventName"],
                 (r["change"]["dynamodb"].get("NewImage") or {}).get("n", {}).get("N")))
    assert [(e, n) for _, e, n in per_item["item-0"]] == [
        ("INSERT", "0"), ("MODIFY", "3"), ("REMOVE", None)]
    assert all(len({s for s, _, _ in v}) == 1 for v in per_item.values())
    times = [r["change"]["dynamodb"]["ApproximateCreationDateTime"] for rs in shards.values()
             for r in rs]
    assert all(t > 1_600_000_000_000_000 for t in times)  # microseconds since the epoch


def test_feeder_forces_duplicates(client_factory, unique):
    table, stream = unique("kt"), unique("ks")
    stream_arn = make_table(client_factory, table)
    _stream(client_factory, stream)
    for i in range(40):
        put(client_factory, table, f"item-{i}")
    writer = _feed(client_factory, table, stream_arn, stream, duplicate_rate=0.5, seed=7)
    records = next(iter(_read_all(client_factory, stream).values()))
    assert writer.duplicates > 5 and len(records) == 40 + writer.duplicates
    ids = Counter(r["change"]["eventID"] for r in records)
    assert sum(1 for c in ids.values() if c == 2) == writer.duplicates


def _put(client_factory, stream: str, *items: str, poison: set[str] = frozenset()) -> None:
    writer = KinesisWriter(client_factory, stream_name=stream, table_name="T")
    records = [_stream_record("INSERT", Keys={"pk": {"S": i}}, NewImage={
        "pk": {"S": i}, **({"poison": {"BOOL": True}} if i in poison else {})}) for i in items]
    writer.invoke({"Records": records})


def _spec(function, arn: str, **options: Any) -> MappingSpec:
    return MappingSpec(logical_id=options.pop("logical_id", "KinesisMapping"),
                       function=function, kind="kinesis", source_arn=arn, **options)


def _items(batch: list[dict]) -> list[str]:
    keys = [json.loads(base64.b64decode(r["kinesis"]["data"]))["dynamodb"]["Keys"] for r in batch]
    return [next(iter(k.values()))["S"] for k in keys]


def test_poller_delivers_lambdas_kinesis_event_in_shard_order(client_factory, unique):
    stream = unique("ks")
    arn = _stream(client_factory, stream)
    _put(client_factory, stream, *[f"i{n}" for n in range(7)])
    fn = Recorder()
    run(KinesisPoller(_spec(fn, arn, batch_size=3), client_factory))
    assert [len(b) for b in fn.batches] == [3, 3, 1]
    assert sum((_items(b) for b in fn.batches), []) == [f"i{n}" for n in range(7)]
    record = fn.batches[0][0]
    assert set(record) == {"kinesis", "eventSource", "eventVersion", "eventID", "eventName",
                           "invokeIdentityArn", "awsRegion", "eventSourceARN"}
    assert set(record["kinesis"]) == {"kinesisSchemaVersion", "partitionKey", "sequenceNumber",
                                      "data", "approximateArrivalTimestamp"}
    assert record["eventSource"] == "aws:kinesis" and record["eventName"] == "aws:kinesis:record"
    assert record["eventID"] == f"shardId-000000000000:{record['kinesis']['sequenceNumber']}"
    assert record["eventSourceARN"] == arn


def test_poller_keeps_order_per_shard_and_per_item_across_shards(client_factory, unique):
    stream = unique("ks")
    arn = _stream(client_factory, stream, shards=3)
    writer = KinesisWriter(client_factory, stream_name=stream, table_name="T")
    changes = [_stream_record("MODIFY", Keys={"pk": {"S": f"item-{i % 5}"}},
                              NewImage={"pk": {"S": f"item-{i % 5}"}, "n": {"N": str(i)}})
               for i in range(30)]
    writer.invoke({"Records": changes})
    fn = Recorder()
    run(KinesisPoller(_spec(fn, arn, batch_size=4), client_factory))
    shards_seen = set()
    per_item: dict[str, list[int]] = {}
    for batch in fn.batches:
        shard_ids = {r["eventID"].split(":")[0] for r in batch}
        assert len(shard_ids) == 1  # a batch holds one shard's records
        shards_seen |= shard_ids
        for r in batch:
            change = json.loads(base64.b64decode(r["kinesis"]["data"]))
            per_item.setdefault(change["dynamodb"]["Keys"]["pk"]["S"], []).append(
                int(change["dynamodb"]["NewImage"]["n"]["N"]))
    by_shard: dict[str, list[int]] = {}
    for batch in fn.batches:
        for r in batch:
            by_shard.setdefault(r["eventID"].split(":")[0], []).append(
                int(r["kinesis"]["sequenceNumber"]))
    assert all(seqs == sorted(seqs) for seqs in by_shard.values())  # shard order kept
    assert len(shards_seen) > 1  # the items spread over the shards
    assert per_item == {f"item-{k}": [i for i in range(30) if i % 5 == k] for k in range(5)}


def test_poller_gives_up_on_records_older_than_the_maximum_age(client_factory, unique):
    stream = unique("ks")
    arn = _stream(client_factory, stream)
    url, queue_arn = make_queue(client_factory, unique("kq"))
    _put(client_factory, stream, "old-1", "old-2")
    time.sleep(1.2)
    fn = Recorder()
    poller = KinesisPoller(_spec(fn, arn, max_record_age_s=1, on_failure_arn=queue_arn),
                           client_factory)
    run(poller)
    assert fn.events == [] and poller.stats.sent_to_failure_destination == 2
    [message] = drain(client_factory, url)
    body = json.loads(message["Body"])
    assert body["requestContext"]["condition"] == "RecordAgeExceeded"
    assert body["KinesisBatchInfo"]["batchSize"] == 2


def test_poller_filters_on_the_decoded_data(client_factory, unique):
    stream = unique("ks")
    arn = _stream(client_factory, stream)
    _put(client_factory, stream, "keep", "drop", poison={"drop"})
    fn = Recorder()
    pattern = {"data": {"dynamodb": {"NewImage": {"poison": {"BOOL": [{"exists": False}]}}}}}
    poller = KinesisPoller(_spec(fn, arn, filter_patterns=[pattern]), client_factory)
    run(poller)
    assert _items(fn.batches[0]) == ["keep"] and poller.stats.filtered_out == 1


def _fail_on_poison(event: dict) -> None:
    for record in event["Records"]:
        if json.loads(base64.b64decode(record["kinesis"]["data"]))["dynamodb"]["NewImage"].get(
                "poison"):
            raise ValueError("poison")


def test_poller_bisects_retries_and_sends_kinesis_on_failure_records(client_factory, unique):
    stream = unique("ks")
    arn = _stream(client_factory, stream)
    url, queue_arn = make_queue(client_factory, unique("kq"))
    _put(client_factory, stream, *[f"i{n}" for n in range(8)], poison={"i5"})
    fn = Recorder(_fail_on_poison)
    poller = KinesisPoller(_spec(fn, arn, batch_size=8, bisect_on_error=True,
                                 max_retry_attempts=1, on_failure_arn=queue_arn), client_factory)
    run(poller, timeout=30)
    delivered_ok = {i for b in fn.batches for i in _items(b) if "i5" not in _items(b)}
    assert delivered_ok == {f"i{n}" for n in range(8)} - {"i5"}
    assert poller.stats.sent_to_failure_destination == 1
    [message] = drain(client_factory, url)
    body = json.loads(message["Body"])
    # AWS's SQS/SNS on-failure record: metadata only, the records are not in it.
    assert set(body) == {"requestContext", "responseContext", "version", "timestamp",
                         "KinesisBatchInfo"}
    assert "records" not in body and "payload" not in body
    info = body["KinesisBatchInfo"]
    assert set(info) == {"shardId", "startSequenceNumber", "endSequenceNumber",
                         "approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord",
                         "batchSize", "streamArn"}
    [failed] = poller.failure_records  # the records stay local
    assert failed.record == body and failed.delivered
    poison_seq = failed.records[0]["kinesis"]["sequenceNumber"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison_seq
    assert info["batchSize"] == 1 and info["streamArn"] == arn
    assert info["shardId"] == "shardId-000000000000"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                        info["approximateArrivalOfFirstRecord"])
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["requestContext"]["approximateInvokeCount"] == 2  # first try + 1 retry
    assert body["responseContext"]["functionError"] == "Unhandled"
    assert _items(failed.records) == ["i5"]
    # The coordinates re-read the batch from the stream, as a replay tool on AWS must.
    assert [r["SequenceNumber"] for r in _reread(client_factory, stream, info)] == [poison_seq]


def _reread(client_factory, stream: str, info: dict) -> list[dict]:
    """Read a failed batch back from the Kinesis stream by its on-failure coordinates."""
    kinesis = client_factory("kinesis")
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=info["shardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=info["startSequenceNumber"])["ShardIterator"]
    end, out = int(info["endSequenceNumber"]), []
    while iterator and len(out) < info["batchSize"]:
        page = kinesis.get_records(ShardIterator=iterator)
        out += [r for r in page["Records"] if int(r["SequenceNumber"]) <= end]
        if not page["Records"] or int(page["Records"][-1]["SequenceNumber"]) >= end:
            break
        iterator = page.get("NextShardIterator")
    return out


def test_kinesis_s3_on_failure_object_holds_the_records(client_factory, unique):
    stream = unique("ks")
    arn = _stream(client_factory, stream)
    bucket = unique("kfail").lower()
    s3 = client_factory("s3")
    s3.create_bucket(Bucket=bucket)
    _put(client_factory, stream, "old-1", "old-2")
    time.sleep(1.2)
    fn = Recorder()
    poller = KinesisPoller(_spec(fn, arn, max_record_age_s=1, on_failure_arn=f"arn:aws:s3:::{bucket}",
                                 uuid="0b7c1b5e-6d0a-4c39-9d6e-3f1e8f5a2c11"), client_factory)
    run(poller)
    assert fn.events == []  # aged out before any invocation
    [obj] = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    [failed] = poller.failure_records
    assert obj["Key"] == failed.s3_key
    assert obj["Key"].startswith(
        "aws/lambda/0b7c1b5e-6d0a-4c39-9d6e-3f1e8f5a2c11/shardId-000000000000/")
    body = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    assert set(body) == {"requestContext", "responseContext", "version", "timestamp",
                         "KinesisBatchInfo", "payload"}
    assert body["requestContext"]["condition"] == "RecordAgeExceeded"
    records = json.loads(body["payload"])["Records"]  # an escaped JSON string
    assert _items(records) == ["old-1", "old-2"]
    info = body["KinesisBatchInfo"]
    assert info["batchSize"] == 2
    assert [info["startSequenceNumber"], info["endSequenceNumber"]] == [
        records[0]["kinesis"]["sequenceNumber"], records[-1]["kinesis"]["sequenceNumber"]]


def test_partial_batch_response_by_kinesis_sequence_number(client_factory, unique):
    stream = unique("ks")
    arn = _stream(client_factory, stream)
    _put(client_factory, stream, "a", "b", "c", "d")
    calls = []

    def fail_c_once(event):
        items = _items(event["Records"])
        calls.append(items)
        if len(calls) == 1:
            record = event["Records"][items.index("c")]
            return {"batchItemFailures": [{"itemIdentifier": record["kinesis"]["sequenceNumber"]}]}
        return None

    poller = KinesisPoller(_spec(Recorder(fail_c_once), arn, report_batch_item_failures=True),
                           client_factory)
    run(poller)
    assert calls == [["a", "b", "c", "d"], ["c", "d"]]  # resumed at the reported record
    assert poller.stats.succeeded == 4


def test_poller_reads_an_enhanced_fan_out_consumer_arn(client_factory, unique):
    stream = unique("ks")
    arn = _stream(client_factory, stream)
    consumer = client_factory("kinesis").register_stream_consumer(
        StreamARN=arn, ConsumerName="efo")["Consumer"]["ConsumerARN"]
    assert "/consumer/" in consumer
    _put(client_factory, stream, "x", "y")
    fn = Recorder()
    run(KinesisPoller(_spec(fn, consumer), client_factory))
    assert _items(fn.batches[0]) == ["x", "y"]
    assert fn.batches[0][0]["eventSourceARN"] == arn


# -- end to end --------------------------------------------------------------------------


class KinesisStack(cdk.Stack):
    def __init__(self, scope, id):
        super().__init__(scope, id)
        key = dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING)
        self.table = StreamTable(self, "Orders", partition_key=key, kinesis_stream=True)
        self.sink = dynamodb.TableV2(self, "Sink", partition_key=key)
        code = lambda_.Code.from_asset(str(REPO / "tests" / "local" / "handlers" / "kinesis_sink"))
        self.shared = KinesisController(
            self, "Shared", source=KinesisSource.of_table(self.table), code=code,
            handler="index.handler", retry_attempts=2, batch_size=10,
            function_options=lambda_.FunctionOptions(
                environment={"SINK_TABLE": self.sink.table_name}))
        self.sink.grant_read_write_data(self.shared.function)
        # A second consumer, on an enhanced fan-out consumer, that only sees REMOVEs.
        self.removals = KinesisController(
            self, "Removals", source=KinesisSource.of_table(self.table, enhanced_fan_out=True),
            code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
            handler="index.handler", filters=[StreamFilter(event_names=["REMOVE"])])


def test_a_table_feeds_two_kinesis_consumers_end_to_end_under_duplicates(
        local_cloud, deploy_app):
    stack = KinesisStack(cdk.App(), "Kin")
    deployment = deploy_app(stack.node.root)
    assert {r.type for r in deployment.resources if r.status == "deployed"} >= {
        "AWS::Kinesis::Stream", "AWS::Kinesis::StreamConsumer"}
    [writer] = local_kinesis.feeders(deployment).values()
    writer.duplicate_rate = 0.5  # forced duplicates
    ddb = local_cloud.client("dynamodb")
    table = deployment.by_path("Kin/Orders").physical_id
    n, poison = 24, {"o-05", "o-17"}
    for i in range(n):
        item = {"orderId": {"S": f"o-{i:02d}"}}
        if f"o-{i:02d}" in poison:
            item["poison"] = {"BOOL": True}
        ddb.put_item(TableName=table, Item=item)
    for i in range(0, n, 4):
        ddb.delete_item(TableName=table, Key={"orderId": {"S": f"o-{i:02d}"}})

    run_pollers(local_cloud, deployment, timeout=90)
    assert writer.duplicates > 0
    sink = deployment.by_path("Kin/Sink").physical_id
    rows = {i["orderId"]["S"]: i["event"]["S"] for i in ddb.scan(TableName=sink)["Items"]}
    deleted = {f"o-{i:02d}" for i in range(0, n, 4)}
    # Every item's last change wins, duplicates and all; the poison INSERTs alone failed.
    expected = {f"o-{i:02d}": "REMOVE" if f"o-{i:02d}" in deleted else "INSERT"
                for i in range(n) if f"o-{i:02d}" not in poison - deleted}
    assert rows == expected
    shared = deployment.stats_of(stack.shared)
    # Only the poison INSERTs were given up on (each copy of a duplicated one apart), and
    # the failure bucket (the default destination) holds Lambda's Kinesis on-failure
    # records for them: the coordinates and the records themselves.
    bucket = deployment.by_path("Kin/Shared/FailureBucket").physical_id
    s3 = local_cloud.client("s3")
    failed = [json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
              for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(failed) == shared.sent_to_failure_destination >= len(poison)
    assert shared.on_failure_delivered == len(failed) and shared.dropped == 0
    assert all(f["KinesisBatchInfo"]["batchSize"] == 1 for f in failed)
    payloads = [r for f in failed for r in json.loads(f["payload"])["Records"]]
    assert {json.loads(base64.b64decode(r["kinesis"]["data"]))["dynamodb"]["Keys"]["orderId"]["S"]
            for r in payloads} == poison
    # ... and the coordinates alone are enough to read them back while the stream has them.
    stream_name = failed[0]["KinesisBatchInfo"]["streamArn"].rsplit("/", 1)[-1]
    reread = [r for f in failed for r in _reread(local_cloud.client, stream_name,
                                                   f["KinesisBatchInfo"])]
    assert {json.loads(r["Data"])["dynamodb"]["Keys"]["orderId"]["S"] for r in reread} == poison
    removals = deployment.stats_of(stack.removals)
    assert removals.succeeded >= len(deleted) and removals.filtered_out > 0
    assert removals.records_in == shared.records_in  # both read the whole stream
