"""Router: stream records -> SNS PublishBatch (bodies, attributes, batching, claim checks, retries)."""

from __future__ import annotations

import copy
import doctest
import io
import json
import logging
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

import ddb_stream_runtime.router as router_module
from ddb_stream_runtime import (
    Router,
    RouterConfig,
    StreamRecord,
    process_sqs_batch,
)
from ddb_stream_runtime.router import MAX_MESSAGE_BYTES, handler

TOPIC = "arn:aws:sns:us-east-2:123456789012:orders"
FIFO_TOPIC = TOPIC + ".fifo"
BUCKET = "claim-bucket"
LOGGER_NAME = "ddb_stream_runtime.router"

Response = dict[str, Any]
Script = Callable[[int, list[dict[str, Any]]], Response]


def all_ok(call: int, entries: list[dict[str, Any]]) -> Response:
    return {"Successful": [{"Id": e["Id"], "MessageId": f"m-{e['Id']}"} for e in entries]}


class FakeSns:
    """Records every publish_batch call; ``script(call_number, entries)`` makes the response."""

    def __init__(self, script: Script = all_ok, log: list[str] | None = None) -> None:
        self.script = script
        self.calls: list[list[dict[str, Any]]] = []
        self.topics: list[str] = []
        self.log = log if log is not None else []

    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[Any]) -> Response:  # noqa: N803
        entries = copy.deepcopy(PublishBatchRequestEntries)
        self.calls.append(entries)
        self.topics.append(TopicArn)
        self.log.append("publish " + ",".join(e["Id"] for e in entries))
        return self.script(len(self.calls), entries)

    @property
    def published(self) -> list[dict[str, Any]]:
        return [e for call in self.calls for e in call]


class FakeS3:
    """put_object / get_object on a dict; optionally failing puts."""

    def __init__(self, log: list[str] | None = None, fail_put: bool = False) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.puts: list[dict[str, Any]] = []
        self.log = log if log is not None else []
        self.fail_put = fail_put

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        if self.fail_put:
            raise ConnectionError("s3 is down")
        self.puts.append(kwargs)
        self.log.append(f"put {kwargs['Key']}")
        self.objects[(kwargs["Bucket"], kwargs["Key"])] = kwargs["Body"]
        return {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_router(
    sns: FakeSns,
    *,
    attributes: tuple[str, ...] = (),
    s3: FakeS3 | None = None,
    bucket: str | None = None,
    fifo: bool = False,
    sleep: Sleeps | None = None,
    ttl_expiry: bool = False,
) -> Router:
    config = RouterConfig(
        FIFO_TOPIC if fifo else TOPIC,
        attributes,
        claim_check_bucket=bucket,
        fifo=fifo,
        publish_ttl_expiry=ttl_expiry,
    )
    return Router(
        config,
        sns_client=sns,
        s3_client_factory=(lambda: s3) if s3 is not None else None,
        sleep=sleep if sleep is not None else Sleeps(),
    )


@pytest.fixture
def make_event(make_record: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """``n`` MODIFY records of my-table with sequence numbers 1000, 1001, ..."""

    def build(n: int, **dynamodb: Any) -> dict[str, Any]:
        return {"Records": [make_record(str(1000 + i), **dynamodb) for i in range(n)]}

    return build


def seq(index: int) -> str:
    return str(1000 + index)


def entry_bytes(entry: dict[str, Any]) -> int:
    """SNS's size of one message: body + attribute names, types and values (UTF-8)."""
    size = len(entry["Message"].encode("utf-8"))
    for name, value in entry["MessageAttributes"].items():
        size += len(name.encode()) + len(value["DataType"]) + len(value["StringValue"].encode())
    return size


def published_sequence_numbers(sns: FakeSns) -> list[str]:
    out = []
    for entry in sns.published:
        body = json.loads(entry["Message"])
        out.append(
            body["sequenceNumber"] if "claimCheck" in body else body["dynamodb"]["SequenceNumber"]
        )
    return out


# --- message bodies -------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["sample_event", "rich_event", "ttl_event"])
def test_body_is_the_untouched_record(fixture: str, request: pytest.FixtureRequest) -> None:
    event = request.getfixturevalue(fixture)
    original = copy.deepcopy(event)
    sns = FakeSns()
    assert make_router(sns).route(event) == {"batchItemFailures": []}
    assert event == original  # the router never mutates the event
    assert len(sns.published) == len(event["Records"])
    for entry, raw in zip(sns.published, event["Records"], strict=True):
        assert json.loads(entry["Message"]) == raw
        assert entry["Message"] == json.dumps(raw, separators=(",", ":"))  # compact, as-is
        assert entry["Message"].isascii()  # non-ASCII escaped: len() is the byte size
        rebuilt, expected = (
            StreamRecord.from_lambda(json.loads(entry["Message"])),
            StreamRecord.from_lambda(raw),
        )
        assert (rebuilt.sequence_number, rebuilt.event_name, rebuilt.table_name) == (
            expected.sequence_number,
            expected.event_name,
            expected.table_name,
        )
        assert (rebuilt.keys, rebuilt.new_image, rebuilt.old_image) == (
            expected.keys,
            expected.new_image,
            expected.old_image,
        )
        assert rebuilt.is_ttl_expiry == expected.is_ttl_expiry


def test_ids_are_unique_within_a_call(make_event: Callable[..., dict[str, Any]]) -> None:
    sns = FakeSns()
    assert make_router(sns).route(make_event(25)) == {"batchItemFailures": []}
    assert [len(call) for call in sns.calls] == [10, 10, 5]  # published, in full calls
    for call in sns.calls:
        ids = [e["Id"] for e in call]
        assert len(set(ids)) == len(ids)


# --- message attributes ---------------------------------------------------------------


def test_event_name_and_table_name(sample_event: dict[str, Any]) -> None:
    sns = FakeSns()
    make_router(sns).route(sample_event)
    assert [e["MessageAttributes"] for e in sns.published] == [
        {
            "eventName": {"DataType": "String", "StringValue": name},
            "tableName": {"DataType": "String", "StringValue": "my-table"},
        }
        for name in ("INSERT", "MODIFY", "REMOVE")
    ]
    assert sns.topics == [TOPIC]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("status", {"DataType": "String", "StringValue": "SHIPPED"}),
        ("unicode", {"DataType": "String", "StringValue": "Grüße, 世界 🚀"}),
        ("quantity", {"DataType": "Number", "StringValue": "3"}),
        ("price", {"DataType": "Number", "StringValue": "129.95"}),
        (
            "big_int",
            {"DataType": "Number", "StringValue": "12345678901234567890123456789012345678"},
        ),
        ("is_gift", {"DataType": "String", "StringValue": "true"}),
        ("is_paid", {"DataType": "String", "StringValue": "false"}),
        ("tags", {"DataType": "String.Array", "StringValue": '["red","blue"]'}),
        ("scores", {"DataType": "String.Array", "StringValue": "[1,2.5,-7]"}),
        # Not lifted: maps, lists, binary, binary sets, null, empty strings, missing.
        ("address", None),
        ("lines", None),
        ("thumbnail", None),
        ("checksums", None),
        ("note", None),
        ("empty_string", None),
        ("empty_map", None),
        ("no_such_attribute", None),
    ],
)
def test_routing_attribute_per_type(
    rich_event: dict[str, Any], name: str, expected: dict[str, str] | None
) -> None:
    sns = FakeSns()
    make_router(sns, attributes=(name,)).route(rich_event)
    [entry] = sns.published
    attrs = entry["MessageAttributes"]
    assert attrs.get(name) == expected
    assert set(attrs) == {"eventName", "tableName"} | ({name} if expected else set())


def test_number_set_is_a_json_array_of_numbers(rich_event: dict[str, Any]) -> None:
    sns = FakeSns()
    make_router(sns, attributes=("scores", "tags")).route(rich_event)
    attrs = sns.published[0]["MessageAttributes"]
    assert json.loads(attrs["scores"]["StringValue"]) == [1, 2.5, -7]  # numbers, not strings
    assert json.loads(attrs["tags"]["StringValue"]) == ["red", "blue"]


def test_insert_and_modify_use_new_image_remove_uses_old(sample_event: dict[str, Any]) -> None:
    sns = FakeSns()
    make_router(sns, attributes=("Message", "Id")).route(sample_event)
    assert [e["MessageAttributes"]["Message"]["StringValue"] for e in sns.published] == [
        "New item!",  # INSERT: NewImage
        "This item has changed",  # MODIFY: NewImage, not OldImage's "New item!"
        "This item has changed",  # REMOVE: OldImage
    ]
    assert {e["MessageAttributes"]["Id"]["DataType"] for e in sns.published} == {"Number"}


def test_attribute_missing_from_new_image_falls_back_to_old(
    make_record: Callable[..., dict[str, Any]],
) -> None:
    raw = make_record("500")
    raw["dynamodb"]["OldImage"]["status"] = {"S": "PACKED"}
    sns = FakeSns()
    make_router(sns, attributes=("status",)).route({"Records": [raw]})
    assert sns.published[0]["MessageAttributes"]["status"] == {
        "DataType": "String",
        "StringValue": "PACKED",
    }


def test_keys_only_stream_lifts_key_attributes(make_record: Callable[..., dict[str, Any]]) -> None:
    raw = make_record("500", StreamViewType="KEYS_ONLY")
    del raw["dynamodb"]["NewImage"], raw["dynamodb"]["OldImage"]
    sns = FakeSns()
    make_router(sns, attributes=("Id", "Message")).route({"Records": [raw]})
    attrs = sns.published[0]["MessageAttributes"]
    assert attrs["Id"] == {"DataType": "Number", "StringValue": "101"}
    assert "Message" not in attrs


def test_at_most_ten_attributes_on_the_wire(rich_event: dict[str, Any]) -> None:
    names = ("status", "quantity", "price", "is_gift", "is_paid", "tags", "scores", "unicode")
    sns = FakeSns()
    make_router(sns, attributes=names).route(rich_event)
    assert len(sns.published[0]["MessageAttributes"]) == 10


def test_attributes_are_not_deserialized(
    rich_event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hot path reads raw DynamoDB JSON only: deserializing an image would fail here.
    def boom(image: Any) -> Any:
        raise AssertionError("an image was deserialized")

    monkeypatch.setattr("ddb_stream_runtime.records.deserialize_image", boom)
    sns = FakeSns()
    assert make_router(sns, attributes=("status", "tags")).route(rich_event) == {
        "batchItemFailures": []
    }
    assert sns.published[0]["MessageAttributes"]["status"]["StringValue"] == "SHIPPED"


# --- batching ---------------------------------------------------------------------------


def test_thousand_records_make_exactly_100_calls(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    sns = FakeSns()
    response = make_router(sns, attributes=("Message",)).route(make_event(1000))
    assert response == {"batchItemFailures": []}
    assert len(sns.calls) == 100
    assert all(len(call) <= 10 for call in sns.calls)
    assert published_sequence_numbers(sns) == [seq(i) for i in range(1000)]  # order, once each


def test_size_based_split(make_event: Callable[..., dict[str, Any]]) -> None:
    event = make_event(10)
    for i, raw in enumerate(event["Records"]):
        raw["dynamodb"]["NewImage"]["blob"] = {"S": chr(ord("a") + i) * (100 * 1024)}
    sns = FakeSns()
    assert make_router(sns, attributes=("Message",)).route(event) == {"batchItemFailures": []}
    assert len(sns.calls) > 1
    for call in sns.calls:
        assert sum(entry_bytes(e) for e in call) <= MAX_MESSAGE_BYTES
        assert len(call) <= 10
    assert len(sns.calls) == 5  # two ~100 KiB records fit in 256 KiB, three do not
    assert published_sequence_numbers(sns) == [seq(i) for i in range(10)]


def test_multibyte_values_are_counted_in_bytes(make_event: Callable[..., dict[str, Any]]) -> None:
    # 17,500 × "é": 6 bytes each in the (ASCII-escaped) body, 2 in the attribute value.
    # Two such messages fit in 256 KiB if the attribute is counted in characters, not in bytes.
    event = make_event(4)
    for raw in event["Records"]:
        raw["dynamodb"]["NewImage"]["label"] = {"S": "é" * 17_500}
    sns = FakeSns()
    assert make_router(sns, attributes=("label",)).route(event) == {"batchItemFailures": []}
    assert [len(call) for call in sns.calls] == [1, 1, 1, 1]
    for call in sns.calls:
        assert sum(entry_bytes(e) for e in call) <= MAX_MESSAGE_BYTES
    [entry] = sns.calls[0]
    assert 2 * (entry_bytes(entry) - 17_500) <= MAX_MESSAGE_BYTES < 2 * entry_bytes(entry)


def test_empty_event_publishes_nothing() -> None:
    sns = FakeSns()
    for event in ({"Records": []}, {}):
        assert make_router(sns).route(event) == {"batchItemFailures": []}
    assert sns.calls == []


def test_not_a_stream_event_raises() -> None:
    with pytest.raises(TypeError, match="got list"):
        make_router(FakeSns()).route([])  # type: ignore[arg-type]


# --- claim checks -----------------------------------------------------------------------


def big_event(make_event: Callable[..., dict[str, Any]], big: int, n: int = 3) -> dict[str, Any]:
    event = make_event(n)
    event["Records"][big]["dynamodb"]["NewImage"]["blob"] = {"S": "x" * 300_000}
    return event


def test_claim_check_for_an_oversized_record(make_event: Callable[..., dict[str, Any]]) -> None:
    log: list[str] = []
    event = big_event(make_event, big=1)
    big_raw = copy.deepcopy(event["Records"][1])
    sns, s3 = FakeSns(log=log), FakeS3(log=log)
    response = make_router(sns, attributes=("Message",), s3=s3, bucket=BUCKET).route(event)
    assert response == {"batchItemFailures": []}

    key = f"claim-check/my-table/{seq(1)}.json"
    [put] = s3.puts
    assert (put["Bucket"], put["Key"], put["ContentType"]) == (BUCKET, key, "application/json")
    assert json.loads(put["Body"]) == big_raw
    assert log == [f"put {key}", "publish 0,1,2"]  # stored before it is announced

    pointer = sns.published[1]
    assert json.loads(pointer["Message"]) == {
        "claimCheck": {"bucket": BUCKET, "key": key},
        "eventName": "MODIFY",
        "keys": {"Id": {"N": "101"}},
        "sequenceNumber": seq(1),
    }
    assert pointer["MessageAttributes"] == sns.published[0]["MessageAttributes"]  # same routing
    assert entry_bytes(pointer) < 1024
    assert [json.loads(e["Message"]) for e in (sns.published[0], sns.published[2])] == [
        event["Records"][0],
        event["Records"][2],
    ]

    # The processor side fetches it back to an equal record.
    seen: list[StreamRecord] = []
    sqs_event = {"Records": [{"messageId": "m1", "body": pointer["Message"]}]}
    assert process_sqs_batch(sqs_event, seen.append, s3_client=s3) == {"batchItemFailures": []}
    [record] = seen
    expected = StreamRecord.from_lambda(big_raw)
    assert record.raw == big_raw
    assert record.new_image == expected.new_image and record.sequence_number == seq(1)


def test_claim_check_threshold_counts_attributes(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    # A body just under the limit goes over it once its attributes are counted.
    event = make_event(1)
    raw = event["Records"][0]
    raw["dynamodb"]["NewImage"]["blob"] = {"S": ""}
    base = len(json.dumps(raw, separators=(",", ":")))
    raw["dynamodb"]["NewImage"]["blob"] = {"S": "x" * (MAX_MESSAGE_BYTES - base)}
    assert len(json.dumps(raw, separators=(",", ":"))) == MAX_MESSAGE_BYTES
    sns, s3 = FakeSns(), FakeS3()
    make_router(sns, s3=s3, bucket=BUCKET).route(event)
    assert len(s3.puts) == 1
    assert "claimCheck" in json.loads(sns.published[0]["Message"])


def test_claim_check_without_bucket_fails_that_record(
    make_event: Callable[..., dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    sns = FakeSns()
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = make_router(sns).route(big_event(make_event, big=1))
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(1)}]}
    assert published_sequence_numbers(sns) == [seq(0)]  # before it: published; after: not
    assert "CLAIM_CHECK_BUCKET" in caplog.text and seq(1) in caplog.text
    assert "x" * 100 not in caplog.text  # never the item


def test_claim_check_put_failure_fails_that_record(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    sns, s3 = FakeSns(), FakeS3(fail_put=True)
    response = make_router(sns, s3=s3, bucket=BUCKET).route(big_event(make_event, big=1))
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(1)}]}
    assert published_sequence_numbers(sns) == [seq(0)]


# --- failures and retries ---------------------------------------------------------------


def failing(ids: set[str], *, sender_fault: bool = False, calls: set[int] | None = None) -> Script:
    """Fail entries with these Ids (on these call numbers, or always), succeed the rest."""

    def script(call: int, entries: list[dict[str, Any]]) -> Response:
        fail = {e["Id"] for e in entries if e["Id"] in ids and (calls is None or call in calls)}
        return {
            "Successful": [{"Id": e["Id"]} for e in entries if e["Id"] not in fail],
            "Failed": [
                {
                    "Id": i,
                    "Code": "InternalError",
                    "Message": "try again",
                    "SenderFault": sender_fault,
                }
                for i in sorted(fail)
            ],
        }

    return script


def test_partial_failure_is_retried_then_succeeds(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    sleeps = Sleeps()
    sns = FakeSns(failing({"3", "7"}, calls={1}))
    response = make_router(sns, sleep=sleeps).route(make_event(12))
    assert response == {"batchItemFailures": []}
    assert [[e["Id"] for e in call] for call in sns.calls] == [
        [str(i) for i in range(10)],
        ["3", "7"],  # only the failed entries, in stream order
        ["10", "11"],
    ]
    assert sleeps == [0.05]


def test_permanent_failure_reports_earliest_and_stops(
    make_event: Callable[..., dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps()
    sns = FakeSns(failing({"15", "12"}))
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = make_router(sns, sleep=sleeps).route(make_event(35))
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(12)}]}
    assert len(sns.calls) == 1 + 3  # first batch, then 3 attempts of the second
    assert [e["Id"] for e in sns.calls[-1]] == ["12", "15"]
    assert max(int(e["Id"]) for e in sns.published) == 19  # batches after it: not published
    assert sleeps == [0.05, 0.1]
    assert "InternalError" in caplog.text and seq(12) in caplog.text
    assert "the 22 records after it" in caplog.text
    assert "the 12 records before it were published" in caplog.text


def test_sender_fault_is_not_retried(make_event: Callable[..., dict[str, Any]]) -> None:
    sleeps = Sleeps()
    sns = FakeSns(failing({"4"}, sender_fault=True))
    response = make_router(sns, sleep=sleeps).route(make_event(25))
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(4)}]}
    assert len(sns.calls) == 1
    assert sleeps == []


def test_transient_failure_before_a_sender_fault_is_retried(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> Response:
        if call == 1:
            return {
                "Successful": [{"Id": e["Id"]} for e in entries if e["Id"] not in {"2", "5", "8"}],
                "Failed": [
                    {"Id": "2", "Code": "Throttled", "SenderFault": False},
                    {"Id": "5", "Code": "InvalidParameter", "SenderFault": True},
                    {"Id": "8", "Code": "Throttled", "SenderFault": False},
                ],
            }
        return all_ok(call, entries)

    sns = FakeSns(script)
    response = make_router(sns).route(make_event(10))
    # 2 is retried and succeeds; 8 is not retried (Lambda re-sends it after 5 anyway).
    assert [[e["Id"] for e in call] for call in sns.calls][1:] == [["2"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(5)}]}


def test_entry_missing_from_response_is_not_assumed_published(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    sns = FakeSns(lambda call, entries: {"Successful": [{"Id": e["Id"]} for e in entries[1:]]})
    response = make_router(sns).route(make_event(3))
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(0)}]}
    assert len(sns.calls) == 3


def test_client_exception_fails_the_first_record_of_the_call(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> Response:
        if call == 2:
            raise ConnectionError("endpoint unreachable")
        return all_ok(call, entries)

    sns = FakeSns(script)
    response = make_router(sns).route(make_event(30))
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(10)}]}
    assert len(sns.calls) == 2  # not retried (botocore already did), nothing after it


def test_client_exception_on_retry_reports_earliest_pending(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    def script(call: int, entries: list[dict[str, Any]]) -> Response:
        if call == 2:
            raise ConnectionError("endpoint unreachable")
        return failing({"6"})(call, entries)

    response = make_router(FakeSns(script)).route(make_event(10))
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(6)}]}


# --- malformed records ------------------------------------------------------------------


@pytest.mark.parametrize(
    "break_record",
    [
        lambda r: r.update(eventName="UPSERT"),
        lambda r: r.pop("eventName"),
        lambda r: r["dynamodb"]["NewImage"].update(Message={"S": 5}),  # bad routing attribute
        lambda r: r["dynamodb"]["NewImage"].update(Message={"S": "a", "N": "1"}),
        lambda r: r["dynamodb"]["NewImage"].update(Message={"NS": ["1", "one"]}),
    ],
)
def test_malformed_record_fails_with_its_sequence_number(
    make_event: Callable[..., dict[str, Any]], break_record: Any
) -> None:
    event = make_event(30)
    break_record(event["Records"][15])
    sns = FakeSns()
    response = make_router(sns, attributes=("Message",)).route(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(15)}]}
    assert published_sequence_numbers(sns) == [seq(i) for i in range(15)]
    assert [len(call) for call in sns.calls] == [10, 5]


def test_record_without_sequence_number_fails_whole_batch(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    event = make_event(3)
    del event["Records"][1]["dynamodb"]["SequenceNumber"]
    sns = FakeSns()
    assert make_router(sns).route(event) == {"batchItemFailures": [{"itemIdentifier": ""}]}
    assert published_sequence_numbers(sns) == [seq(0)]


def test_earlier_publish_failure_wins_over_later_malformed_record(
    make_event: Callable[..., dict[str, Any]],
) -> None:
    event = make_event(30)
    event["Records"][25]["eventName"] = "UPSERT"
    sns = FakeSns(failing({"3"}, sender_fault=True))
    assert make_router(sns).route(event) == {"batchItemFailures": [{"itemIdentifier": seq(3)}]}
    assert len(sns.calls) == 1


# --- FIFO -------------------------------------------------------------------------------


def test_fifo_group_and_deduplication_ids(sample_event: dict[str, Any]) -> None:
    sns = FakeSns()
    make_router(sns, fifo=True).route(sample_event)
    assert sns.topics == [FIFO_TOPIC]
    assert [e["MessageGroupId"] for e in sns.published] == ['{"Id":{"N":"101"}}'] * 3  # one item
    assert [e["MessageDeduplicationId"] for e in sns.published] == ["1", "2", "3"]  # eventID


def test_fifo_group_id_is_canonical_and_distinct_per_item(
    make_record: Callable[..., dict[str, Any]],
) -> None:
    a = make_record("1", Keys={"pk": {"S": "A"}, "sk": {"N": "1"}})
    a_reordered = make_record("2", Keys={"sk": {"N": "1"}, "pk": {"S": "A"}})
    b = make_record("3", Keys={"pk": {"S": "B"}, "sk": {"N": "1"}})
    sns = FakeSns()
    make_router(sns, fifo=True).route({"Records": [a, a_reordered, b]})
    groups = [e["MessageGroupId"] for e in sns.published]
    assert groups[0] == groups[1] == '{"pk":{"S":"A"},"sk":{"N":"1"}}'
    assert groups[2] != groups[0]


@pytest.mark.parametrize(
    "keys",
    [{"pk": {"S": "has spaces"}}, {"pk": {"S": "x" * 200}}],
)
def test_fifo_group_id_hashes_keys_that_are_not_valid_ids(
    make_record: Callable[..., dict[str, Any]], keys: dict[str, Any]
) -> None:
    sns = FakeSns()
    raws = [make_record("1", Keys=keys), make_record("2", Keys=copy.deepcopy(keys))]
    make_router(sns, fifo=True).route({"Records": raws})
    groups = {e["MessageGroupId"] for e in sns.published}
    [group] = groups  # stable for the same item
    assert group.startswith("sha256:") and len(group) <= 128
    assert all(33 <= ord(c) <= 126 for c in group)


def test_fifo_group_id_escapes_non_ascii(make_record: Callable[..., dict[str, Any]]) -> None:
    sns = FakeSns()
    make_router(sns, fifo=True).route({"Records": [make_record("1", Keys={"pk": {"S": "ü"}})]})
    assert sns.published[0]["MessageGroupId"] == '{"pk":{"S":"\\u00fc"}}'


def test_fifo_dedup_id_falls_back_to_sequence_number(
    make_record: Callable[..., dict[str, Any]],
) -> None:
    raw = make_record("777")
    raw["eventID"] = "not valid: has spaces"
    sns = FakeSns()
    make_router(sns, fifo=True).route({"Records": [raw]})
    assert sns.published[0]["MessageDeduplicationId"] == "777"


def test_standard_topic_has_no_fifo_ids(sample_event: dict[str, Any]) -> None:
    sns = FakeSns()
    assert make_router(sns).route(sample_event) == {"batchItemFailures": []}
    assert len(sns.published) == len(sample_event["Records"]) == 3
    assert not any({"MessageGroupId", "MessageDeduplicationId"} & set(e) for e in sns.published)


# --- configuration ----------------------------------------------------------------------


def test_config_from_env() -> None:
    config = RouterConfig.from_env(
        {
            "TOPIC_ARN": TOPIC,
            "ROUTING_ATTRIBUTES": '["status", "tenant"]',
            "CLAIM_CHECK_BUCKET": BUCKET,
            "FIFO": "false",
        }
    )
    assert config == RouterConfig(TOPIC, ("status", "tenant"), claim_check_bucket=BUCKET)
    assert RouterConfig.from_env({"TOPIC_ARN": FIFO_TOPIC}).fifo is True  # inferred
    assert RouterConfig.from_env({"TOPIC_ARN": TOPIC, "FIFO": "TRUE"}).fifo is True
    assert RouterConfig.from_env({"TOPIC_ARN": TOPIC}).routing_attributes == ()


def test_eight_routing_attributes_are_the_maximum() -> None:
    RouterConfig(TOPIC, tuple(f"a{i}" for i in range(8)))
    with pytest.raises(ValueError, match=r"at most 8 routing attributes .* got 9"):
        RouterConfig(TOPIC, tuple(f"a{i}" for i in range(9)))
    with pytest.raises(ValueError, match="at most 8"):
        RouterConfig.from_env(
            {"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": json.dumps([f"a{i}" for i in range(11)])}
        )


# --- ttlExpiry (the fan-out's TTL filter) -------------------------------------------------


TTL_FLAG = {"DataType": "String", "StringValue": "true"}


def test_ttl_expiry_attribute_marks_only_ttl_deletions(
    ttl_event: dict[str, Any], sample_event: dict[str, Any]
) -> None:
    sns = FakeSns()
    router = make_router(sns, ttl_expiry=True)
    assert router.route(ttl_event) == {"batchItemFailures": []}
    assert router.route(sample_event) == {"batchItemFailures": []}
    assert len(sns.published) == len(ttl_event["Records"]) + len(sample_event["Records"]) == 4
    ttl_entry, *others = sns.published
    assert ttl_entry["MessageAttributes"]["ttlExpiry"] == TTL_FLAG
    # INSERT, MODIFY and a user's REMOVE (no userIdentity) carry no ttlExpiry at all.
    assert [e["MessageAttributes"]["eventName"]["StringValue"] for e in others] == [
        "INSERT", "MODIFY", "REMOVE"]
    assert all("ttlExpiry" not in e["MessageAttributes"] for e in others)


def test_ttl_expiry_needs_the_dynamodb_service_identity(ttl_event: dict[str, Any]) -> None:
    event = copy.deepcopy(ttl_event)
    event["Records"][0]["userIdentity"] = {"type": "Service", "principalId": "other.amazonaws.com"}
    sns = FakeSns()
    assert make_router(sns, ttl_expiry=True).route(event) == {"batchItemFailures": []}
    assert len(sns.published) == 1
    assert "ttlExpiry" not in sns.published[0]["MessageAttributes"]


def test_ttl_expiry_is_off_by_default(ttl_event: dict[str, Any]) -> None:
    sns = FakeSns()
    assert make_router(sns).route(ttl_event) == {"batchItemFailures": []}
    assert len(sns.published) == 1
    assert set(sns.published[0]["MessageAttributes"]) == {"eventName", "tableName"}


def test_ttl_expiry_counts_in_the_message_size(ttl_event: dict[str, Any]) -> None:
    sns = FakeSns()
    assert make_router(sns, ttl_expiry=True).route(ttl_event) == {"batchItemFailures": []}
    [planned] = make_router(FakeSns(), ttl_expiry=True)._plan(ttl_event["Records"])[0][0]
    assert planned.size == entry_bytes(sns.published[0])


def test_ttl_expiry_leaves_room_for_seven_routing_attributes() -> None:
    RouterConfig(TOPIC, tuple(f"a{i}" for i in range(7)), publish_ttl_expiry=True)
    with pytest.raises(ValueError, match=r"at most 7 routing attributes .* 3 are built in\), got 8"):
        RouterConfig(TOPIC, tuple(f"a{i}" for i in range(8)), publish_ttl_expiry=True)
    with pytest.raises(ValueError, match="'ttlExpiry' is always sent"):
        RouterConfig(TOPIC, ("ttlExpiry",), publish_ttl_expiry=True)
    RouterConfig(TOPIC, ("ttlExpiry",))  # an ordinary item attribute when not published


def test_ttl_expiry_from_env() -> None:
    assert RouterConfig.from_env({"TOPIC_ARN": TOPIC}).publish_ttl_expiry is False
    config = RouterConfig.from_env({"TOPIC_ARN": TOPIC, "PUBLISH_TTL_EXPIRY": "true"})
    assert config.publish_ttl_expiry is True
    with pytest.raises(ValueError, match="PUBLISH_TTL_EXPIRY must be 'true' or 'false'"):
        RouterConfig.from_env({"TOPIC_ARN": TOPIC, "PUBLISH_TTL_EXPIRY": "1"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "TOPIC_ARN is required"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": "status"}, "json list of names, got 'status'"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": '{"a": 1}'}, "json list of names"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": "[1]"}, "json list of names"),
        ({"TOPIC_ARN": TOPIC, "FIFO": "yes"}, "FIFO must be 'true' or 'false', got 'yes'"),
        ({"TOPIC_ARN": FIFO_TOPIC, "FIFO": "false"}, "is a fifo topic but fifo is false"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": '["eventName"]'}, "always sent"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": '["a", "a"]'}, "unique"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": '["AWS.x"]'}, "reserved"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": '["a b"]'}, "'a b' is not a valid"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": '["a..b"]'}, "not a valid"),
        ({"TOPIC_ARN": TOPIC, "ROUTING_ATTRIBUTES": '[""]'}, "not a valid"),
    ],
)
def test_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        RouterConfig.from_env(env)


def test_config_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="at least 1, got 0"):
        RouterConfig(TOPIC, max_attempts=0)


# --- the Lambda entry point and boto3 -----------------------------------------------------


@pytest.fixture
def fresh_router() -> Any:
    router_module._default_router.cache_clear()
    yield
    router_module._default_router.cache_clear()


def test_handler_reads_env_once(
    fresh_router: None, monkeypatch: pytest.MonkeyPatch, sample_event: dict[str, Any]
) -> None:
    sns = FakeSns()
    created: list[str] = []

    def fake_client(service: str) -> Any:
        created.append(service)
        return sns

    monkeypatch.setattr(router_module, "aws_client", fake_client)
    monkeypatch.setenv("TOPIC_ARN", TOPIC)
    monkeypatch.setenv("ROUTING_ATTRIBUTES", '["Message"]')
    monkeypatch.delenv("FIFO", raising=False)
    monkeypatch.delenv("CLAIM_CHECK_BUCKET", raising=False)
    assert handler(sample_event, None) == {"batchItemFailures": []}
    monkeypatch.setenv("TOPIC_ARN", "arn:aws:sns:us-east-2:123456789012:other")
    assert handler(sample_event, None) == {"batchItemFailures": []}
    assert sns.topics == [TOPIC, TOPIC]  # configuration cached from the first call
    assert created == ["sns"]  # one client for both invocations
    assert "Message" in sns.published[0]["MessageAttributes"]


def test_handler_config_error_surfaces(
    fresh_router: None, monkeypatch: pytest.MonkeyPatch, sample_event: dict[str, Any]
) -> None:
    monkeypatch.delenv("TOPIC_ARN", raising=False)
    with pytest.raises(ValueError, match="TOPIC_ARN"):
        handler(sample_event, None)


def test_boto3_clients_are_created_once_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []
    fake_boto3 = types.ModuleType("boto3")
    fake_boto3.client = lambda service: created.append(service) or object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boto3", fake_boto3)
    router_module.aws_client.cache_clear()
    try:
        first = router_module.aws_client("sns")
        assert router_module.aws_client("sns") is first
        router_module.aws_client("s3")
        assert created == ["sns", "s3"]
    finally:
        router_module.aws_client.cache_clear()


def test_docstring_examples_run() -> None:
    result = doctest.testmod(router_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# --- moto (a dev dependency: a real SNS -> SQS with filter policy and raw delivery) -----------------------------------------------------------------------


def test_against_moto_sns_and_sqs(
    sample_event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    import moto
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="orders")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="removes")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={
                "RawMessageDelivery": "true",
                "FilterPolicy": json.dumps({"eventName": ["REMOVE"]}),
            },
        )
        router = Router(RouterConfig(topic, ("Message",)), sns_client=sns)
        assert router.route(sample_event) == {"batchItemFailures": []}
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
        assert [json.loads(m["Body"]) for m in messages] == [sample_event["Records"][2]]


# --- unknown type tags (issue 10, defect 6): fail the record, never drop the attribute ----------


@pytest.mark.parametrize("position", [1, 2])
def test_unknown_type_tag_fails_only_that_record_naming_the_tag(
    make_event: Callable[..., dict[str, Any]],
    position: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = make_event(3)
    event["Records"][position]["dynamodb"]["NewImage"]["Message"] = {"X": "1"}
    sns = FakeSns()
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = make_router(sns, attributes=("Message",)).route(event)
    # First what happened: exactly that record failed, the ones before it were published
    # with their routing attribute (Lambda re-sends the failed record and all after it).
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(position)}]}
    assert published_sequence_numbers(sns) == [seq(i) for i in range(position)]
    assert all("Message" in e["MessageAttributes"] for e in sns.published)
    # Then why: the log names the attribute and the unknown tag.
    [failure_log] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert seq(position) in failure_log.getMessage()
    assert "Message: unknown type tag 'X'" in failure_log.getMessage()


@pytest.mark.parametrize("tag", ["M", "L", "B", "BS", "NULL"])
def test_known_tags_that_are_not_lifted_are_omitted_without_failing(
    make_event: Callable[..., dict[str, Any]], tag: str
) -> None:
    values = {"M": {}, "L": [], "B": "AA==", "BS": ["AA=="], "NULL": True}
    event = make_event(2)
    event["Records"][1]["dynamodb"]["NewImage"]["Message"] = {tag: values[tag]}
    sns = FakeSns()
    assert make_router(sns, attributes=("Message",)).route(event) == {"batchItemFailures": []}
    assert published_sequence_numbers(sns) == [seq(0), seq(1)]
    assert "Message" not in sns.published[1]["MessageAttributes"]
