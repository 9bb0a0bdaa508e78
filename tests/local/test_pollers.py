"""The local event source mappings, against a real DynamoDB Local and moto's server."""

from __future__ import annotations

import base64
import doctest
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from ddb_stream_patterns.local import pollers as pollers_module
from ddb_stream_patterns.local.model import MappingSpec
from ddb_stream_patterns.local.pollers import (
    TTL_USER_IDENTITY,
    Pollers,
    PollerTimeout,
    SqsPoller,
    StreamPoller,
    parse_batch_item_failures,
    rewrite_ttl_record,
    to_lambda_record,
)
from ddb_stream_patterns.stream_filter import StreamFilter
from ddb_stream_runtime.batch import process_stream_batch
from ddb_stream_runtime.records import StreamRecord

EVENTS = Path(__file__).resolve().parents[1] / "runtime" / "events"

# A TTL deletion exactly as DynamoDB Local 3.3.1 returned it (raw GetRecords JSON).
CAPTURED_DDB_LOCAL_TTL_RECORD = {
    "eventID": "13e084ba-8f5b-46ca-8aaa-312fb9be10e8",
    "eventName": "UNKNOWN_TO_SDK_VERSION",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "ddblocal",
    "dynamodb": {
        "ApproximateCreationDateTime": 1795444200.0,
        "Keys": {"pk": {"S": "fut"}},
        "OldImage": {"pk": {"S": "fut"}, "exp": {"N": "1795444221"}},
        "SequenceNumber": "000000000000000000012",
        "SizeBytes": 19,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
}


# --- helpers ------------------------------------------------------------------------------


class Recorder:
    """An Invocable: records each event, answers with ``behaviour(event)``."""

    def __init__(self, behaviour: Callable[[dict], Any] | None = None, name: str = "fn") -> None:
        self.name = name
        self.events: list[dict] = []
        self.behaviour = behaviour

    def invoke(self, event: Mapping[str, Any]) -> Any:
        self.events.append(event)  # type: ignore[arg-type]
        return self.behaviour(event) if self.behaviour else None

    @property
    def batches(self) -> list[list[dict]]:
        return [e["Records"] for e in self.events]


def keys_of(batch: list[dict]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in batch]


def make_table(client_factory, name: str, view: str = "NEW_AND_OLD_IMAGES") -> str:
    table = client_factory("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )
    return table["TableDescription"]["LatestStreamArn"]


def put(client_factory, table: str, pk: str, **attributes: Any) -> None:
    item = {"pk": {"S": pk}}
    for name, value in attributes.items():
        item[name] = value if isinstance(value, dict) else {"S": str(value)}
    client_factory("dynamodb").put_item(TableName=table, Item=item)


def make_queue(client_factory, name: str, **attributes: str) -> tuple[str, str]:
    sqs = client_factory("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


def drain(client_factory, url: str) -> list[dict]:
    sqs, out = client_factory("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  AttributeNames=["All"]).get("Messages", [])
        if not got:
            return out
        out.extend(got)


def run(poller, timeout: float = 15) -> None:
    """Poll one poller until it has been idle for a few rounds."""
    deadline, idle = time.monotonic() + timeout, 0
    while idle < 3:
        assert time.monotonic() < deadline, "poller did not become idle"
        idle = 0 if poller.poll_once() or poller.busy() else idle + 1


def stream_spec(function, stream_arn: str, **options: Any) -> MappingSpec:
    return MappingSpec(logical_id=options.pop("logical_id", "Mapping"), function=function,
                       kind="dynamodb", source_arn=stream_arn, **options)


def sqs_spec(function, url: str, arn: str, **options: Any) -> MappingSpec:
    return MappingSpec(logical_id=options.pop("logical_id", "QueueMapping"), function=function,
                       kind="sqs", source_arn=arn, queue_url=url, **options)


# --- pure functions -----------------------------------------------------------------------


def test_doctests():
    assert doctest.testmod(pollers_module).failed == 0


def test_captured_ddb_local_ttl_record_is_rewritten_as_aws_sends_it():
    record = to_lambda_record(CAPTURED_DDB_LOCAL_TTL_RECORD, "arn:aws:dynamodb:x:1:table/t/stream/s")
    aws = json.loads((EVENTS / "ttl_expiry.json").read_text())["Records"][0]
    assert record["eventName"] == "REMOVE"
    assert record["userIdentity"] == dict(TTL_USER_IDENTITY) == aws["userIdentity"]
    assert list(record) == list(aws)  # same fields, same order as a real TTL record
    assert set(record["dynamodb"]) == set(aws["dynamodb"])
    assert StreamRecord.from_lambda(record).is_ttl_expiry
    assert StreamFilter.ttl_expiry().matches(record)
    # An ordinary REMOVE is left alone.
    user_delete = {**CAPTURED_DDB_LOCAL_TTL_RECORD, "eventName": "REMOVE"}
    assert "userIdentity" not in rewrite_ttl_record(user_delete)


@pytest.mark.parametrize(
    ("response", "whole", "ids"),
    [
        (None, False, ()),
        ({}, False, ()),
        ({"batchItemFailures": None}, False, ()),
        ({"batchItemFailures": []}, False, ()),
        ('{"batchItemFailures": [{"itemIdentifier": "2"}]}', False, ("2",)),
        ({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}, False,
         ("3", "2")),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, True, ()),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, True, ()),
        ({"batchItemFailures": [{"itemId": "2"}]}, True, ()),
        ({"batchItemFailures": [{"itemIdentifier": "9"}]}, True, ()),
        ({"batchItemFailures": "2"}, True, ()),
        (["2"], True, ()),
        ("not json", True, ()),
    ],
)
def test_partial_batch_response_is_read_as_lambda_reads_it(response, whole, ids):
    result = parse_batch_item_failures(response, ["1", "2", "3"])
    assert (result.whole_batch, result.identifiers) == (whole, ids)


# --- DynamoDB streams ---------------------------------------------------------------------


def test_stream_records_have_lambdas_shape(client_factory, unique):
    table = unique("shape")
    stream = make_table(client_factory, table)
    put(client_factory, table, "a", blob={"B": b"\x00\xff"}, n={"N": "5"})
    put(client_factory, table, "a", blob={"B": b"\x00\xff"}, n={"N": "6"})
    client_factory("dynamodb").delete_item(TableName=table, Key={"pk": {"S": "a"}})
    fn = Recorder()
    run(StreamPoller(stream_spec(fn, stream), client_factory))

    records = [r for batch in fn.batches for r in batch]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    sample = json.loads((EVENTS / "lambda_dg_sample.json").read_text())["Records"][0]
    for record in records:
        assert set(record) == set(sample)  # no userIdentity on user writes
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventSourceARN"] == stream
        ddb = record["dynamodb"]
        assert isinstance(ddb["ApproximateCreationDateTime"], (int, float))
        assert abs(ddb["ApproximateCreationDateTime"] - time.time()) < 120
        assert ddb["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        parsed = StreamRecord.from_lambda(record)  # the runtime parses every record
        assert parsed.table_name == table
        assert parsed.keys == {"pk": "a"}
        json.dumps(record)  # plain JSON, as Lambda delivers it
    insert, modify, remove = (StreamRecord.from_lambda(r) for r in records)
    assert insert.raw_new_image["blob"] == {"B": base64.b64encode(b"\x00\xff").decode()}
    assert modify.old_image["n"] == 5 and modify.new_image["n"] == 6
    assert remove.old_image["n"] == 6 and remove.new_image is None
    assert not remove.is_ttl_expiry


def test_filter_criteria_skip_records_and_batch_size_is_respected(client_factory, unique):
    table = unique("filter")
    stream = make_table(client_factory, table)
    for i in range(10):
        put(client_factory, table, f"k{i}", kind="keep" if i % 2 == 0 else "drop")
    put(client_factory, table, "k0", kind="changed")  # MODIFY: filtered out by eventName
    fn = Recorder()
    spec = stream_spec(fn, stream, batch_size=2, filter_patterns=[
        {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["keep"]}}}},
    ])
    run(StreamPoller(spec, client_factory))

    assert [len(b) for b in fn.batches] == [2, 2, 1]
    assert [k for b in fn.batches for k in keys_of(b)] == ["k0", "k2", "k4", "k6", "k8"]
    assert (spec.stats.records_in, spec.stats.filtered_out, spec.stats.succeeded) == (11, 6, 5)
    assert spec.stats.invocations == 3


def test_latest_starting_position_skips_earlier_records(client_factory, unique):
    table = unique("latest")
    stream = make_table(client_factory, table)
    put(client_factory, table, "before")
    fn = Recorder()
    poller = StreamPoller(stream_spec(fn, stream, starting_position="LATEST"), client_factory)
    put(client_factory, table, "after")
    run(poller)
    assert [k for b in fn.batches for k in keys_of(b)] == ["after"]


def test_batching_window_gathers_records(client_factory, unique):
    table = unique("window")
    stream = make_table(client_factory, table)
    fn = Recorder()
    poller = StreamPoller(stream_spec(fn, stream, batch_size=10, max_batching_window_s=0.5),
                          client_factory)
    put(client_factory, table, "a")
    assert poller.poll_once() == 0 and poller.busy()  # waiting in the window
    put(client_factory, table, "b")
    run(poller)
    assert [keys_of(b) for b in fn.batches] == [["a", "b"]]


def test_partial_batch_failure_resumes_at_the_failed_record(client_factory, unique):
    table = unique("partial")
    stream = make_table(client_factory, table)
    for i in range(5):
        put(client_factory, table, f"k{i}")
    attempts: dict[str, int] = {}

    def handle(record: StreamRecord) -> None:
        key = record.keys["pk"]
        attempts[key] = attempts.get(key, 0) + 1
        if key == "k2" and attempts[key] == 1:
            raise RuntimeError("transient")

    fn = Recorder(lambda event: process_stream_batch(event, handle))
    spec = stream_spec(fn, stream, batch_size=5, report_batch_item_failures=True,
                       max_retry_attempts=2)
    run(StreamPoller(spec, client_factory))

    assert [keys_of(b) for b in fn.batches] == [
        ["k0", "k1", "k2", "k3", "k4"],
        ["k2", "k3", "k4"],  # checkpointed before k2: k0 and k1 are not sent again
    ]
    assert attempts == {"k0": 1, "k1": 1, "k2": 2, "k3": 1, "k4": 1}
    assert (spec.stats.succeeded, spec.stats.failed_attempts) == (5, 1)
    assert spec.stats.sent_to_failure_destination == 0


def test_whole_batch_failure_on_an_unknown_item_identifier(client_factory, unique):
    table = unique("unknown")
    stream = make_table(client_factory, table)
    for i in range(3):
        put(client_factory, table, f"k{i}")
    answers = iter([{"batchItemFailures": [{"itemIdentifier": "no-such-record"}]}, None])
    fn = Recorder(lambda event: next(answers))
    spec = stream_spec(fn, stream, report_batch_item_failures=True, max_retry_attempts=3)
    run(StreamPoller(spec, client_factory))
    assert [keys_of(b) for b in fn.batches] == [["k0", "k1", "k2"]] * 2


def _all_or_nothing(poison: str) -> Callable[[dict], Any]:
    """A handler that fails any batch holding the poison record, before doing anything."""

    def behaviour(event: dict) -> None:
        if poison in keys_of(event["Records"]):
            raise RuntimeError("poison")

    return behaviour


def _stop_at_poison(poison: str) -> Callable[[dict], Any]:
    """The runtime's partial-batch processor, failing on the poison record."""

    def handle(record: StreamRecord) -> None:
        if record.keys["pk"] == poison:
            raise RuntimeError("poison")

    return lambda event: process_stream_batch(event, handle)


@pytest.mark.parametrize("partial", [False, True], ids=["function-error", "item-failures"])
def test_poison_record_alone_reaches_the_on_failure_queue(client_factory, unique, partial):
    table = unique("poison")
    stream = make_table(client_factory, table)
    dlq_url, dlq_arn = make_queue(client_factory, unique("on-failure"))
    keys = [f"k{i}" for i in range(8)]
    for key in keys:
        put(client_factory, table, key)
    poison = "k5"
    fn = Recorder(_stop_at_poison(poison) if partial else _all_or_nothing(poison), name="worker")
    spec = stream_spec(fn, stream, batch_size=10, bisect_on_error=True, max_retry_attempts=2,
                       report_batch_item_failures=partial, on_failure_arn=dlq_arn)
    poller = StreamPoller(spec, client_factory)
    run(poller)

    # Every other record was processed exactly once: a record is processed when its batch
    # succeeded, or (item failures) when it came before the poison record in its batch.
    processed: list[str] = []
    for batch in fn.batches:
        batch_keys = keys_of(batch)
        if poison not in batch_keys:
            processed += batch_keys
        elif partial:
            processed += batch_keys[: batch_keys.index(poison)]
    assert sorted(processed) == [k for k in keys if k != poison]
    assert sum(keys_of(b) == [poison] for b in fn.batches) == 3  # 1 try + 2 retries, alone

    messages = drain(client_factory, dlq_url)
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    # AWS's SQS/SNS on-failure record: metadata only, the records are not in it.
    assert set(body) == {"requestContext", "responseContext", "version", "timestamp",
                         "DDBStreamBatchInfo"}
    assert "records" not in body and "payload" not in body
    assert body["version"] == "1.0"
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["requestContext"]["approximateInvokeCount"] == 3
    assert body["requestContext"]["functionArn"].endswith(":function:worker")
    assert body["responseContext"]["executedVersion"] == "$LATEST"
    assert body["responseContext"]["statusCode"] == 200
    assert ("functionError" in body["responseContext"]) is not partial
    # Its coordinates are those of the batch given up on: the poison record, alone.
    [failed] = poller.failure_records
    assert failed.record == body and failed.delivered and failed.destination == dlq_arn
    [poison_record] = failed.records  # kept locally, never sent to the queue
    last_try = next(b for b in reversed(fn.batches) if keys_of(b) == [poison])
    assert poison_record == last_try[0]  # as the function last received it
    info = body["DDBStreamBatchInfo"]
    assert set(info) == {"shardId", "startSequenceNumber", "endSequenceNumber",
                         "approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord",
                         "batchSize", "streamArn"}
    assert info["batchSize"] == 1
    assert info["streamArn"] == stream
    assert info["shardId"] in poller.shards
    assert info["startSequenceNumber"] == info["endSequenceNumber"] \
        == poison_record["dynamodb"]["SequenceNumber"]
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert keys_of(failed.records) == [poison]
    assert StreamRecord.from_lambda(poison_record).keys == {"pk": poison}
    assert spec.stats.sent_to_failure_destination == 1
    assert spec.stats.succeeded == len(keys) - 1

    # Not stuck: a later record flows through.
    put(client_factory, table, "later")
    run(poller)
    assert keys_of(fn.batches[-1]) == ["later"]


def test_old_records_are_given_up_on_with_record_age_exceeded(client_factory, unique):
    table = unique("age")
    stream = make_table(client_factory, table)
    dlq_url, dlq_arn = make_queue(client_factory, unique("on-failure"))
    put(client_factory, table, "stale")

    def fail(event: dict) -> None:
        raise TimeoutError("Task timed out after 3.00 seconds")

    fn = Recorder(fail)
    spec = stream_spec(fn, stream, max_retry_attempts=-1, max_record_age_s=1,
                       on_failure_arn=dlq_arn)
    poller = StreamPoller(spec, client_factory)
    run(poller, timeout=10)

    body = json.loads(drain(client_factory, dlq_url)[0]["Body"])
    assert body["requestContext"]["condition"] == "RecordAgeExceeded"
    assert body["requestContext"]["approximateInvokeCount"] == len(fn.events) > 1
    assert body["responseContext"]["functionError"] == "Unhandled"
    assert "records" not in body
    [failed] = poller.failure_records
    assert failed.record == body and keys_of(failed.records) == ["stale"]
    assert body["DDBStreamBatchInfo"]["startSequenceNumber"] \
        == failed.records[0]["dynamodb"]["SequenceNumber"]


def _reread(client_factory, info: Mapping[str, Any]) -> list[dict]:
    """What a replay tool does with an SQS/SNS on-failure record: read the batch back
    from the stream by its coordinates (while the stream still holds it)."""
    streams = client_factory("dynamodbstreams")
    iterator = streams.get_shard_iterator(
        StreamArn=info["streamArn"], ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"])["ShardIterator"]
    end, out = int(info["endSequenceNumber"]), []
    while iterator and len(out) < info["batchSize"]:
        page = streams.get_records(ShardIterator=iterator)
        out += [r for r in page["Records"] if int(r["dynamodb"]["SequenceNumber"]) <= end]
        if not page["Records"] or int(page["Records"][-1]["dynamodb"]["SequenceNumber"]) >= end:
            break
        iterator = page.get("NextShardIterator")
    return out


def test_sqs_on_failure_coordinates_re_read_the_failed_batch_from_the_stream(
        client_factory, unique):
    table = unique("reread")
    stream = make_table(client_factory, table)
    dlq_url, dlq_arn = make_queue(client_factory, unique("on-failure"))
    for key in ("a", "b", "c"):
        put(client_factory, table, key)

    def fail(event: dict) -> None:
        raise ValueError("always fails")

    poller = StreamPoller(stream_spec(Recorder(fail), stream, batch_size=10,
                                      max_retry_attempts=0, on_failure_arn=dlq_arn),
                          client_factory)
    run(poller)
    [message] = drain(client_factory, dlq_url)
    body = json.loads(message["Body"])
    assert "records" not in body
    info = body["DDBStreamBatchInfo"]
    assert info["batchSize"] == 3
    # The coordinates are enough to get the records back, as a replay tool on AWS must.
    again = _reread(client_factory, info)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in again] == ["a", "b", "c"]
    assert [r["dynamodb"]["SequenceNumber"] for r in again] \
        == [r["dynamodb"]["SequenceNumber"] for r in poller.failure_records[0].records]


def test_s3_on_failure_object_holds_the_metadata_and_the_invocation_record(
        client_factory, unique):
    table = unique("s3dest")
    stream = make_table(client_factory, table)
    bucket = unique("failures").lower()
    s3 = client_factory("s3")
    s3.create_bucket(Bucket=bucket)
    for key in ("ok", "poison"):
        put(client_factory, table, key)
    fn = Recorder(_all_or_nothing("poison"), name="worker")
    mapping_uuid = "f89f8514-cdd9-4602-9e1f-01a5b77d449b"
    spec = stream_spec(fn, stream, batch_size=10, bisect_on_error=True, max_retry_attempts=1,
                       on_failure_arn=f"arn:aws:s3:::{bucket}", uuid=mapping_uuid)
    poller = StreamPoller(spec, client_factory)
    run(poller)

    objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert len(objects) == 1  # the poison record's batch, and nothing else
    [failed] = poller.failure_records
    key = objects[0]["Key"]
    assert failed.delivered and failed.s3_key == key
    # AWS's key: aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<UUID>
    info = failed.record["DDBStreamBatchInfo"]
    stamp = failed.record["timestamp"]  # e.g. 2026-12-02T07:51:54.123Z
    day, clock = stamp[:10], stamp[11:19].replace(":", ".")
    assert re.fullmatch(
        rf"aws/lambda/{mapping_uuid}/{re.escape(info['shardId'])}/"
        rf"{day.replace('-', '/')}/{day}T{clock}-[0-9a-f-]{{36}}", key), key
    body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert set(body) == {"requestContext", "responseContext", "version", "timestamp",
                         "DDBStreamBatchInfo", "payload"}
    assert {k: v for k, v in body.items() if k != "payload"} == failed.record
    # "payload": the original invocation record, as an escaped JSON string.
    assert isinstance(body["payload"], str)
    event = json.loads(body["payload"])
    assert event == {"Records": failed.records}
    assert keys_of(event["Records"]) == ["poison"]
    assert event["Records"][0]["dynamodb"]["SequenceNumber"] == info["startSequenceNumber"] \
        == info["endSequenceNumber"]
    assert info["batchSize"] == 1
    assert StreamRecord.from_lambda(event["Records"][0]).keys == {"pk": "poison"}


def test_ttl_expiry_reaches_the_handler_as_aws_sends_it(client_factory, unique):
    table = unique("ttl")
    stream = make_table(client_factory, table, view="OLD_IMAGE")
    expired = str(int(time.time()) - 3600)
    put(client_factory, table, "session", expires_at={"N": expired})
    put(client_factory, table, "deleted-by-user")
    client_factory("dynamodb").delete_item(TableName=table, Key={"pk": {"S": "deleted-by-user"}})
    # Enabled after the write: DynamoDB Local's first TTL sweep of a table comes ~1 s
    # after UpdateTimeToLive, then every ~10 s.
    client_factory("dynamodb").update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    fn = Recorder()
    spec = stream_spec(fn, stream, filter_patterns=[StreamFilter.ttl_expiry().to_pattern()])
    poller = StreamPoller(spec, client_factory)

    deadline = time.monotonic() + 25
    while not fn.events:
        assert time.monotonic() < deadline, "no TTL record within 25 s"
        if not poller.poll_once():
            time.sleep(0.1)

    [record] = fn.batches[0]
    assert record["eventName"] == "REMOVE"
    assert record["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    parsed = StreamRecord.from_lambda(record)
    assert parsed.is_ttl_expiry
    assert parsed.old_image == {"pk": "session", "expires_at": int(expired)}
    assert spec.stats.filtered_out == 3  # two INSERTs and the user's REMOVE


def test_child_shards_are_read_after_their_parent():
    """Lineage, with a scripted Streams API (DynamoDB Local never splits a shard)."""

    def rec(seq: str) -> dict:
        return {"eventID": seq, "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "ddblocal",
                "dynamodb": {"Keys": {"pk": {"S": seq}}, "SequenceNumber": seq,
                             "SizeBytes": 1, "StreamViewType": "KEYS_ONLY"}}

    class FakeStreams:
        pages = {"child": [[rec("3")]], "parent": [[rec("1")], [rec("2")]]}
        closed = {"parent"}

        def describe_stream(self, StreamArn):  # noqa: N803 - boto3's names
            return {"StreamDescription": {"Shards": [  # the child first, on purpose
                {"ShardId": "child", "ParentShardId": "parent", "SequenceNumberRange": {}},
                {"ShardId": "parent", "SequenceNumberRange": {"EndingSequenceNumber": "2"}},
            ]}}

        def get_shard_iterator(self, StreamArn, ShardId, ShardIteratorType):  # noqa: N803
            return {"ShardIterator": f"{ShardId}:0"}

        def get_records(self, ShardIterator, Limit):  # noqa: N803
            shard, index = ShardIterator.split(":")
            pages, i = self.pages[shard], int(index)
            records = pages[i] if i < len(pages) else []
            if shard in self.closed and i + 1 >= len(pages):
                return {"Records": records}  # a closed shard, read to its end
            return {"Records": records, "NextShardIterator": f"{shard}:{min(i + 1, len(pages))}"}

    fn = Recorder()
    spec = stream_spec(fn, "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/x")
    run(StreamPoller(spec, lambda service: FakeStreams()))
    order = [r["dynamodb"]["SequenceNumber"] for b in fn.batches for r in b]
    assert order == ["1", "2", "3"]


def test_an_expired_iterator_is_reopened_after_the_last_record_read():
    from botocore.exceptions import ClientError

    def rec(seq: str) -> dict:
        return {"eventID": seq, "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "ddblocal",
                "dynamodb": {"Keys": {"pk": {"S": seq}}, "SequenceNumber": seq,
                             "SizeBytes": 1, "StreamViewType": "KEYS_ONLY"}}

    class ExpiringStreams:
        records = [rec("1"), rec("2"), rec("3")]
        opened: list[dict] = []
        expired = False

        def describe_stream(self, StreamArn):  # noqa: N803 - boto3's names
            return {"StreamDescription": {"Shards": [
                {"ShardId": "s", "SequenceNumberRange": {}}]}}

        def get_shard_iterator(self, **kwargs):
            self.opened.append(kwargs)
            after = kwargs.get("SequenceNumber")
            return {"ShardIterator": str(int(after) if after else 0)}

        def get_records(self, ShardIterator, Limit):  # noqa: N803
            position = int(ShardIterator)
            if position == 1 and not self.expired:
                self.expired = True
                raise ClientError({"Error": {"Code": "ExpiredIteratorException"}}, "GetRecords")
            page = self.records[position:position + 1]
            return {"Records": page, "NextShardIterator": str(position + len(page))}

    streams = ExpiringStreams()
    fn = Recorder()
    run(StreamPoller(stream_spec(fn, "arn:aws:dynamodb:x:0:table/t/stream/x"),
                     lambda service: streams))
    assert [r["dynamodb"]["SequenceNumber"] for b in fn.batches for r in b] == ["1", "2", "3"]
    assert streams.opened[-1]["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert streams.opened[-1]["SequenceNumber"] == "1"


# --- SQS ------------------------------------------------------------------------------------


def test_sqs_event_shape_and_partial_batch_response(client_factory, unique):
    url, arn = make_queue(client_factory, unique("partial"), VisibilityTimeout="180")
    sqs = client_factory("sqs")
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}), MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "test"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x01"},
        })

    def fail_odd(event: dict) -> dict:
        failed = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["n"] % 2]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    fn = Recorder(fail_odd)
    spec = sqs_spec(fn, url, arn, batch_size=10, report_batch_item_failures=True)
    assert SqsPoller(spec, client_factory).poll_once() == 5

    [batch] = fn.batches
    record = batch[0]
    assert list(record) == ["messageId", "receiptHandle", "body", "attributes",
                            "messageAttributes", "md5OfMessageAttributes", "md5OfBody",
                            "eventSource", "eventSourceARN", "awsRegion"]
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == \
        ("aws:sqs", arn, "us-east-1")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "test", "stringListValues": [], "binaryListValues": [],
                 "dataType": "String"},
        "raw": {"binaryValue": "AQ==", "stringListValues": [], "binaryListValues": [],
                "dataType": "Binary"},
    }
    assert (spec.stats.succeeded, spec.stats.failed_attempts) == (3, 2)
    # The rest deleted; the failures stay invisible for the queue's 180 s, as in Lambda.
    assert drain(client_factory, url) == []
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"],
            counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "2")


def test_sqs_invalid_item_identifier_deletes_nothing(client_factory, unique):
    url, arn = make_queue(client_factory, unique("invalid"))
    for i in range(3):
        client_factory("sqs").send_message(QueueUrl=url, MessageBody=str(i))
    fn = Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": ""}]})
    spec = sqs_spec(fn, url, arn, report_batch_item_failures=True)
    assert SqsPoller(spec, client_factory).poll_once() == 3
    assert spec.stats.succeeded == 0
    counts = client_factory("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "3"  # none deleted: in flight


def test_sqs_failing_message_reaches_the_dlq_through_moto_redrive(client_factory, unique):
    dlq_url, dlq_arn = make_queue(client_factory, unique("dlq"))
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    url, arn = make_queue(client_factory, unique("work"), VisibilityTimeout="180",
                          RedrivePolicy=redrive)
    sqs = client_factory("sqs")
    for body in ("ok-1", "poison", "ok-2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    processed: list[str] = []

    def behaviour(event: dict) -> None:
        bodies = [r["body"] for r in event["Records"]]
        if "poison" in bodies:
            raise RuntimeError("poison")
        processed.extend(bodies)

    fn = Recorder(behaviour)
    # 180 s x 0.01: the poison message comes back after 2 s, three times.
    pollers = Pollers([sqs_spec(fn, url, arn, batch_size=1)], client_factory, clock_scale=0.01)
    pollers.run_until_idle(timeout=30)

    assert sorted(processed) == ["ok-1", "ok-2"]
    assert sum(b[0]["body"] == "poison" for b in fn.batches) == 3  # maxReceiveCount
    [dead] = drain(client_factory, dlq_url)
    assert dead["Body"] == "poison"
    assert drain(client_factory, url) == []


def test_sqs_failed_batch_stays_invisible_for_its_scaled_timeout_and_batches_reform(
        client_factory, unique):
    # Seen before: a failed batch was visible again at once, so the same batch of 10 came
    # back together, again and again. In Lambda a failed message stays invisible for the
    # queue's visibility timeout; meanwhile batches form from what is visible.
    url, arn = make_queue(client_factory, unique("invisible"), VisibilityTimeout="300")
    sqs = client_factory("sqs")
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody="poison" if i == 2 else f"old-{i}")

    def behaviour(event: dict) -> None:
        if any(r["body"] == "poison" for r in event["Records"]):
            raise RuntimeError("poison in the batch")

    fn = Recorder(behaviour)
    poller = SqsPoller(sqs_spec(fn, url, arn, batch_size=10), client_factory, clock_scale=0.01)
    assert poller.failed_visibility_s() == 3  # 300 s x 0.01
    assert poller.poll_once() == 5
    assert poller.busy()  # the failed five are still to come back
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"new-{i}")
    assert poller.poll_once() == 3  # a batch of what is visible: the new ones only
    empty_polls = 0
    while not poller.poll_once():  # nothing visible until the scaled timeout ends
        empty_polls += 1
        time.sleep(0.1)
    assert empty_polls >= 3  # they stayed invisible (~3 s of polls every 0.1 s)

    bodies = [sorted(r["body"] for r in batch) for batch in fn.batches]
    old = sorted(["old-0", "old-1", "poison", "old-3", "old-4"])
    assert bodies == [old, ["new-0", "new-1", "new-2"], old]
    counts = [{r["attributes"]["ApproximateReceiveCount"] for r in b} for b in fn.batches]
    assert counts == [{"1"}, {"1"}, {"2"}]
    assert (poller.stats.succeeded, poller.stats.failed_attempts) == (3, 2)


def test_sqs_maximum_concurrency_bounds_concurrent_invocations(client_factory, unique):
    url, arn = make_queue(client_factory, unique("concurrency"))
    sqs = client_factory("sqs")
    for start in range(0, 30, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": str(start + i)} for i in range(10)])
    lock, running, peaks = threading.Lock(), [0], []

    def slow(event: dict) -> None:
        with lock:
            running[0] += 1
            peaks.append(running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1

    fn = Recorder(slow)
    spec = sqs_spec(fn, url, arn, batch_size=1, max_concurrency=2)
    Pollers([spec], client_factory).run_until_idle(timeout=60)
    assert sorted(int(r["body"]) for b in fn.batches for r in b) == list(range(30))
    assert max(peaks) == 2  # two at once (concurrent), never three (bounded)


def test_a_slow_processor_does_not_starve_another_mapping(client_factory, unique):
    # Seen before: the pollers shared one thread, round robin, so a slow function held
    # up every other mapping. Lambda polls each event source mapping on its own.
    slow_url, slow_arn = make_queue(client_factory, unique("slow"))
    fast_url, fast_arn = make_queue(client_factory, unique("fast"))
    sqs = client_factory("sqs")
    sqs.send_message(QueueUrl=slow_url, MessageBody="slow")
    for i in range(20):
        sqs.send_message(QueueUrl=fast_url, MessageBody=str(i))
    fast_done, slow_saw = threading.Event(), []
    fast = Recorder(lambda event: len(fast.events) >= 20 and fast_done.set(), "fast")
    # The slow one waits (at most 20 s) for the other mapping to finish all its work.
    slow = Recorder(lambda event: slow_saw.append(fast_done.wait(20)), "slow")
    pollers = Pollers([sqs_spec(slow, slow_url, slow_arn, logical_id="Slow", batch_size=1),
                       sqs_spec(fast, fast_url, fast_arn, logical_id="Fast", batch_size=1)],
                      client_factory)
    pollers.run_until_idle(timeout=60)
    assert len(fast.events) == 20 and len(slow.events) == 1
    assert slow_saw == [True]  # the fast mapping finished while the slow one was busy


def test_sqs_filter_criteria_delete_rejected_messages(client_factory, unique):
    url, arn = make_queue(client_factory, unique("filtered"))
    for kind in ("keep", "drop", "keep"):
        client_factory("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"kind": kind}))
    fn = Recorder()
    spec = sqs_spec(fn, url, arn, filter_patterns=[{"body": {"kind": ["keep"]}}])
    SqsPoller(spec, client_factory).poll_once()
    assert [json.loads(r["body"])["kind"] for r in fn.batches[0]] == ["keep", "keep"]
    assert spec.stats.filtered_out == 1 and drain(client_factory, url) == []


def test_run_until_idle_waits_for_delayed_messages(client_factory, unique):
    # A delay well above how long the first run can take on a loaded machine: with 4 s,
    # the message sometimes became visible before that run went idle.
    url, arn = make_queue(client_factory, unique("delayed"), DelaySeconds="10")
    client_factory("sqs").send_message(QueueUrl=url, MessageBody="late")
    fn = Recorder()
    pollers = Pollers([sqs_spec(fn, url, arn)], client_factory)
    pollers.run_until_idle(timeout=5, wait_for_delayed=False)
    assert fn.events == []  # idle at once: the message is still in its delay
    pollers.run_until_idle(timeout=30, wait_for_delayed=True)
    assert [r["body"] for r in fn.batches[0]] == ["late"]


# --- all together ---------------------------------------------------------------------------


def test_run_until_idle_terminates_and_reports_stats(client_factory, unique):
    table = unique("together")
    stream = make_table(client_factory, table)
    url, arn = make_queue(client_factory, unique("together"))
    sqs = client_factory("sqs")

    def forward(event: dict) -> None:  # stream -> queue, like the router
        for record in event["Records"]:
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))

    router, processor = Recorder(forward, "router"), Recorder(name="processor")
    pollers = Pollers([stream_spec(router, stream, logical_id="Stream"),
                       sqs_spec(processor, url, arn, logical_id="Queue")], client_factory)
    for i in range(20):
        put(client_factory, table, f"k{i}")
    # Terminating is the point: run_until_idle raises PollerTimeout past its timeout
    # (no wall-clock assertion: these machines are shared and noisy).
    assert pollers.run_until_idle(timeout=20, idle_rounds=3) == 40
    stats = pollers.stats()
    assert set(stats) == {"Stream", "Queue"}
    assert stats["Stream"].succeeded == stats["Queue"].succeeded == 20
    bodies = [json.loads(r["body"]) for b in processor.batches for r in b]
    assert sorted(StreamRecord.from_lambda(b).keys["pk"] for b in bodies) == \
        sorted(f"k{i}" for i in range(20))


def test_run_until_idle_times_out_on_a_shard_blocked_forever(client_factory, unique):
    table = unique("blocked")
    stream = make_table(client_factory, table)
    put(client_factory, table, "poison")
    fn = Recorder(_all_or_nothing("poison"))
    pollers = Pollers([stream_spec(fn, stream, logical_id="Blocked")], client_factory)
    with pytest.raises(PollerTimeout) as raised:
        pollers.run_until_idle(timeout=0.5)  # Lambda's defaults: retry until the record expires
    assert raised.value.busy == ["Blocked"]
    assert raised.value.stats["Blocked"].failed_attempts >= 1


# --- crashes and errors in plain sight (real function workers) ------------------------------

REPO = Path(__file__).resolve().parents[2]


def _function(tmp_path: Path, name: str, source: str, handler: str = "index.handler",
              **kwargs: Any):
    """A LocalFunction whose code is ``source``, with the runtime as its layer."""
    import shutil
    import textwrap

    from ddb_stream_patterns.local.functions import LocalFunction

    code = tmp_path / name
    code.mkdir()
    (code / "index.py").write_text(textwrap.dedent(source))
    layer = tmp_path / "runtime-layer"
    if not layer.exists():
        shutil.copytree(REPO / "lambda_src" / "ddb_stream_runtime",
                        layer / "python" / "ddb_stream_runtime",
                        ignore=shutil.ignore_patterns("__pycache__"))
    return LocalFunction(name, handler, code, layer_dirs=[layer], **kwargs)


def test_a_handler_typo_is_in_the_stats_and_logged_as_a_warning(
    client_factory, unique, tmp_path, caplog
):
    table = unique("typo")
    stream = make_table(client_factory, table)
    put(client_factory, table, "a")
    fn = _function(tmp_path, "typo", "def handler(event, context):\n    return None\n",
                   handler="index.handle")  # the typo: index.handle
    spec = stream_spec(fn, stream, logical_id="Typo", max_retry_attempts=1)
    try:
        with caplog.at_level(logging.WARNING, logger=pollers_module.__name__):
            run(StreamPoller(spec, client_factory))
    finally:
        fn.close()
    assert spec.stats.sent_to_failure_destination == 1  # given up on, as before
    assert spec.stats.errors == 2  # the first attempt and its one retry
    assert spec.stats.last_error_type == "Runtime.HandlerNotFound"
    assert spec.stats.last_error == (
        "Runtime.HandlerNotFound: Handler 'handle' missing on module 'index'"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("Runtime.HandlerNotFound" in w for w in warnings) == 3  # 2 failures + giving up
    [give_up] = [w for w in warnings if "giving up" in w]
    assert "RetryAttemptsExhausted; last error Runtime.HandlerNotFound" in give_up


SYS_EXIT_PROCESSOR = '''
import os
import sys

from ddb_stream_runtime import sqs_record_handler


def effect(record):
    key = record.keys["pk"]
    if (record.new_image or {}).get("poison"):
        sys.exit(1)  # a poison record makes the processor call sys.exit
    with open(os.environ["EFFECTS_FILE"], "a") as effects:
        effects.write(key + "\\n")


handler = sqs_record_handler(effect)
'''


def test_a_processor_that_calls_sys_exit_fails_only_the_poison_messages(
    client_factory, unique, tmp_path
):
    """30 writes, 3 poison records, an SQS processor that calls sys.exit on them."""
    dlq_url, dlq_arn = make_queue(client_factory, unique("exit-dlq"))
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    url, arn = make_queue(client_factory, unique("exit-work"), RedrivePolicy=redrive)
    sqs = client_factory("sqs")
    keys = [f"order-{i:02d}" for i in range(30)]
    poison = {"order-07", "order-15", "order-22"}
    for i, key in enumerate(keys):
        image = {"pk": {"S": key}, **({"poison": {"BOOL": True}} if key in poison else {})}
        record = {"eventName": "INSERT", "eventID": str(i),
                  "dynamodb": {"SequenceNumber": f"{i + 1:021d}", "Keys": {"pk": {"S": key}},
                               "NewImage": image}}
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
    effects = tmp_path / "effects.txt"
    fn = _function(tmp_path, "exits", SYS_EXIT_PROCESSOR,
                   environment={"EFFECTS_FILE": str(effects)})
    spec = sqs_spec(fn, url, arn, batch_size=10, report_batch_item_failures=True)
    try:
        Pollers([spec], client_factory, clock_scale=0.01).run_until_idle(timeout=60)
    finally:
        fn.close()
    processed = effects.read_text().split()
    assert sorted(processed) == sorted(set(keys) - poison)  # 27 of 27 good records, once each
    dead = [json.loads(m["Body"])["dynamodb"]["Keys"]["pk"]["S"]
            for m in drain(client_factory, dlq_url)]
    assert sorted(dead) == sorted(poison)  # only the poison ones are dead-lettered
    assert drain(client_factory, url) == []
    assert spec.stats.errors == 0  # each invocation answered, reporting its poison messages
    assert fn.cold_starts == 1  # the worker never died


def test_the_run_summary_names_each_failing_mapping_and_its_last_error():
    from ddb_stream_patterns.local.model import MappingStats
    from ddb_stream_patterns.local.runner import render_errors

    flows = {
        "Stack/Typo (stream)": MappingStats(invocations=3, errors=3,
                                            last_error_type="Runtime.HandlerNotFound",
                                            last_error_message="Handler 'handle' missing"),
        "Stack/Fine (queue)": MappingStats(invocations=5),
    }
    lines = render_errors(flows)
    assert lines[1].startswith("Errors")
    assert lines[2:] == ["  Stack/Typo (stream): 3 failed invocation(s), last: "
                         "Runtime.HandlerNotFound: Handler 'handle' missing"]
    assert render_errors({"Stack/Fine (queue)": MappingStats(invocations=5)}) == []


# --- forced redelivery (SqsPoller redelivery_rate) -------------------------------------------


def test_sqs_forced_redelivery_brings_processed_messages_back_and_shuffles(client_factory,
                                                                          unique):
    url, arn = make_queue(client_factory, unique("redeliver"), VisibilityTimeout="180")
    sqs = client_factory("sqs")
    bodies = [f"m-{i:02d}" for i in range(30)]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes={
            "eventName": {"DataType": "String", "StringValue": "INSERT"}})
    fn = Recorder()
    poller = SqsPoller(sqs_spec(fn, url, arn, batch_size=10), client_factory,
                       redelivery_rate=0.5, seed=7)
    run(poller)

    seen = [r["body"] for batch in fn.batches for r in batch]
    assert poller.redelivered["undeleted"] > 0 and poller.redelivered["resent"] > 0
    # Every message processed, some twice: exactly the forced ones.
    assert set(seen) == set(bodies)
    assert len(seen) == len(bodies) + sum(poller.redelivered.values())
    # A lost delete comes back as the same message (a second receive); a duplicate
    # delivery as another message with the same body and attributes.
    records = [r for batch in fn.batches for r in batch]
    again = [r for r in records if r["attributes"]["ApproximateReceiveCount"] == "2"]
    assert len(again) == poller.redelivered["undeleted"]
    ids = Counter(r["messageId"] for r in records)
    assert len(ids) == len(bodies) + poller.redelivered["resent"]  # copies: new IDs
    assert all(r["messageAttributes"]["eventName"]["stringValue"] == "INSERT"
               for r in records)
    assert seen != sorted(seen)  # batches shuffled (moto alone delivers in order)
    assert drain(client_factory, url) == []  # nothing left behind


def test_sqs_forced_redelivery_on_a_fifo_queue_keeps_group_order(client_factory, unique):
    url, arn = make_queue(client_factory, unique("redeliver") + ".fifo", FifoQueue="true",
                          ContentBasedDeduplication="true", VisibilityTimeout="180")
    sqs = client_factory("sqs")
    for i in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=f"{i % 2}-{i:02d}",
                         MessageGroupId=f"g{i % 2}")
    fn = Recorder()
    poller = SqsPoller(sqs_spec(fn, url, arn, batch_size=10), client_factory,
                       redelivery_rate=0.5, seed=3)
    run(poller)
    assert poller.fifo and poller.redelivered["undeleted"] > 0
    assert poller.redelivered["resent"] == 0  # a copy would be deduplicated by SQS
    seen = [r["body"] for batch in fn.batches for r in batch]
    for group in ("0", "1"):
        in_group = [b for b in seen if b.startswith(group)]
        # Each group's first deliveries in order, a redelivery never ahead of an earlier
        # message, and the last processing of each message in order too.
        firsts = list(dict.fromkeys(in_group))
        assert firsts == sorted(firsts) and len(firsts) == 6
        for k, body in enumerate(in_group):
            assert set(firsts[:firsts.index(body)]) <= set(in_group[:k])
        last = {b: k for k, b in enumerate(in_group)}
        assert sorted(firsts, key=last.__getitem__) == firsts, json.dumps([[r["body"] for r in b] for b in fn.batches])


@pytest.mark.parametrize("rate", [-0.1, 1, 1.5, True, "0.3"])
def test_sqs_redelivery_rate_must_be_a_probability_below_one(client_factory, unique, rate):
    url, arn = make_queue(client_factory, unique("rate"))
    with pytest.raises(ValueError, match=r"redelivery_rate must be a number in \[0, 1\), got"):
        SqsPoller(sqs_spec(Recorder(), url, arn), client_factory, redelivery_rate=rate)
    with pytest.raises(ValueError, match=r"sqs_redelivery_rate must be a number in \[0, 1\)"):
        Pollers([], client_factory, sqs_redelivery_rate=rate)
    from ddb_stream_patterns.local import LocalCloud

    with pytest.raises(ValueError, match=r"sqs_redelivery_rate must be a number in \[0, 1\)"):
        LocalCloud(sqs_redelivery_rate=rate)  # checked before any server starts


def test_the_command_refuses_a_redelivery_rate_outside_0_1(capsys):
    from ddb_stream_patterns.local.runner import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--sqs-redelivery-rate", "1"])
    assert exit_info.value.code == 2
    assert "--sqs-redelivery-rate must be in [0, 1), got 1.0" in capsys.readouterr().err
