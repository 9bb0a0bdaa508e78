"""The intake: DynamoDB stream, SQS (SNS fan-out) and Kinesis events -> the same StreamRecord.

Fixtures under events/ are shaped as AWS documents each source: the Lambda developer
guide's SQS and Kinesis events, SNS's notification envelope, and the record DynamoDB
writes to a Kinesis data stream (base64 in ``kinesis.data``, no ``SequenceNumber``).
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddb_stream_runtime import StreamRecord, process_sqs_batch, process_stream_batch, stream_handler
from ddb_stream_runtime.intake import Batch, Entry, read_batch
from tests.runtime.sources import as_kinesis, as_sqs, to_kinesis_change

Loader = Callable[[str], dict[str, Any]]


class FakeS3:
    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self.objects = objects
        self.gets: list[tuple[str, str]] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self.gets.append((Bucket, Key))
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


class Recorder:
    def __init__(self, fail_on: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.seen: list[StreamRecord] = []
        self.fail_on = fail_on

    def __call__(self, record: StreamRecord) -> None:
        self.seen.append(record)
        if record.event_id in self.fail_on:
            raise RuntimeError(f"no to {record.event_id}")

    @property
    def ids(self) -> list[str | None]:
        return [r.event_id for r in self.seen]


def failures(*identifiers: str) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in identifiers]}


# --- the documented shapes, unwrapped --------------------------------------------------------


def test_kinesis_fixture_unwraps_into_the_stream_records(load_event: Loader) -> None:
    stream = load_event("lambda_dg_sample.json")["Records"]
    event = load_event("kinesis_dynamodb.json")
    batch = read_batch(event)
    assert batch.source == "aws:kinesis" and batch.ordered and not batch.rejected
    records = [entry.get() for entry in batch.entries]
    assert len(records) == 3
    for record, raw, entry in zip(records, stream, event["Records"], strict=True):
        assert record.source == "aws:kinesis"
        assert record.sequence_number is None  # DynamoDB's Kinesis format has none
        assert record.item_identifier == entry["kinesis"]["sequenceNumber"]
        assert record.partition_key == entry["kinesis"]["partitionKey"]
        assert record.event_source_arn == entry["eventSourceARN"]
        assert record.event_name == raw["eventName"]
        assert record.raw_keys == raw["dynamodb"]["Keys"]
        assert record.new_image == StreamRecord.from_lambda(raw).new_image
        assert record.old_image == StreamRecord.from_lambda(raw).old_image
        assert record.table_name == "my-table"
        assert not record.is_ttl_expiry
    # ApproximateCreationDateTime is epoch milliseconds on Kinesis.
    assert records[0].approximate_creation_micros == 1718049976512000
    assert records[0].approximate_creation_time == datetime(
        2024, 6, 10, 20, 6, 16, 512000, tzinfo=timezone.utc
    )


def test_kinesis_ttl_removal_at_microsecond_precision(load_event: Loader) -> None:
    [entry] = read_batch(load_event("kinesis_ttl_microsecond.json")).entries
    record = entry.get()
    assert record.event_name == "REMOVE" and record.is_ttl_expiry
    assert record.approximate_creation_micros == 1718049976512345
    assert record.approximate_creation_time is not None
    assert record.approximate_creation_time.microsecond == 512345
    assert record.table_name == "sessions"
    assert record.old_image is not None and record.old_image["user_id"] == "user-42"


@pytest.mark.parametrize("name", ["sqs_raw_delivery.json", "sqs_sns_envelope.json"])
def test_sqs_fixtures_give_back_the_published_stream_records(load_event: Loader, name: str) -> None:
    stream = load_event("lambda_dg_sample.json")["Records"]
    event = load_event(name)
    batch = read_batch(event)
    assert batch.source == "aws:sqs" and not batch.fifo and not batch.ordered
    assert [e.identifier for e in batch.entries] == [m["messageId"] for m in event["Records"]]
    for entry, raw in zip(batch.entries, stream, strict=True):
        record = entry.get()
        assert record.raw == raw  # the router's published record, unchanged
        assert record.source == "aws:sqs"
        assert record.sequence_number == raw["dynamodb"]["SequenceNumber"]
        assert record.item_identifier == entry.identifier
        assert record.table_name == "my-table"


def test_sqs_claim_check_is_followed(load_event: Loader) -> None:
    full = load_event("lambda_dg_sample.json")["Records"][1]
    event = load_event("sqs_claim_check.json")
    pointer = json.loads(event["Records"][0]["body"])["claimCheck"]
    s3 = FakeS3({(pointer["bucket"], pointer["key"]): json.dumps(full).encode()})
    [entry] = read_batch(event, s3_client=s3).entries
    assert s3.gets == [(pointer["bucket"], pointer["key"])]
    assert entry.get().raw == full


def test_claim_check_holding_another_record_fails_that_message(load_event: Loader) -> None:
    other = load_event("lambda_dg_sample.json")["Records"][2]
    event = load_event("sqs_claim_check.json")
    pointer = json.loads(event["Records"][0]["body"])["claimCheck"]
    s3 = FakeS3({(pointer["bucket"], pointer["key"]): json.dumps(other).encode()})
    response = process_stream_batch(event, Recorder(), s3_client=s3)
    assert response == failures(event["Records"][0]["messageId"])


# --- partial batch responses per source ---------------------------------------------------


def kinesis_event(sample: dict[str, Any]) -> dict[str, Any]:
    return as_kinesis([to_kinesis_change(r) for r in sample["Records"]])


def test_kinesis_stops_at_the_first_failure_and_reports_its_sequence_number(
    sample_event: dict[str, Any],
) -> None:
    event = kinesis_event(sample_event)
    handler = Recorder(fail_on={"2"})
    response = process_stream_batch(event, handler)
    assert handler.ids == ["1", "2"]  # the third is not attempted: Lambda re-sends it
    assert response == failures(event["Records"][1]["kinesis"]["sequenceNumber"])


def test_kinesis_data_that_is_not_a_change_record_fails_in_order(
    sample_event: dict[str, Any],
) -> None:
    event = kinesis_event(sample_event)
    event["Records"][1]["kinesis"]["data"] = base64.b64encode(b"not json").decode()
    handler = Recorder()
    assert process_stream_batch(event, handler) == failures(
        event["Records"][1]["kinesis"]["sequenceNumber"]
    )
    assert handler.ids == ["1"]


def test_kinesis_data_that_is_not_base64_fails(sample_event: dict[str, Any]) -> None:
    event = kinesis_event(sample_event)
    event["Records"][0]["kinesis"]["data"] = "%%% not base64 %%%"
    handler = Recorder()
    assert process_stream_batch(event, handler) == failures(
        event["Records"][0]["kinesis"]["sequenceNumber"]
    )
    assert handler.ids == []


def test_standard_queue_reports_each_failure_and_processes_the_others(
    sample_event: dict[str, Any],
) -> None:
    event = as_sqs(sample_event["Records"])
    handler = Recorder(fail_on={"1", "3"})
    response = process_stream_batch(event, handler)
    assert handler.ids == ["1", "2", "3"]
    ids = [m["messageId"] for m in event["Records"]]
    assert response == failures(ids[0], ids[2])


def test_standard_queue_poison_message_never_holds_up_the_others(
    sample_event: dict[str, Any],
) -> None:
    event = as_sqs(sample_event["Records"], envelope=True)
    event["Records"][0]["body"] = "not json"
    handler = Recorder()
    response = process_stream_batch(event, handler)
    assert handler.ids == ["2", "3"]
    assert response == failures(event["Records"][0]["messageId"])


def test_fifo_queue_stops_and_reports_the_failure_and_every_later_message(
    sample_event: dict[str, Any],
) -> None:
    event = as_sqs(sample_event["Records"], fifo=True)
    handler = Recorder(fail_on={"2"})
    response = process_stream_batch(event, handler)
    assert handler.ids == ["1", "2"]
    ids = [m["messageId"] for m in event["Records"]]
    assert response == failures(ids[1], ids[2])


def test_fifo_poison_message_stops_the_batch(sample_event: dict[str, Any]) -> None:
    event = as_sqs(sample_event["Records"], fifo=True)
    event["Records"][0]["body"] = "{}"
    handler = Recorder()
    ids = [m["messageId"] for m in event["Records"]]
    assert process_stream_batch(event, handler) == failures(*ids)
    assert handler.ids == []


def test_stream_path_is_unchanged(sample_event: dict[str, Any]) -> None:
    handler = Recorder(fail_on={"2"})
    assert process_stream_batch(sample_event, handler) == failures("222")
    assert handler.ids == ["1", "2"]


def test_stream_handler_takes_every_source(sample_event: dict[str, Any]) -> None:
    seen: list[tuple[str, str, Any]] = []

    @stream_handler
    def handler(record: StreamRecord) -> None:
        seen.append((record.source, record.event_name, record.keys))

    for event in (sample_event, as_sqs(sample_event["Records"]), kinesis_event(sample_event)):
        assert handler(event, None) == {"batchItemFailures": []}
    assert [s[0] for s in seen] == ["aws:dynamodb"] * 3 + ["aws:sqs"] * 3 + ["aws:kinesis"] * 3
    assert {(name, keys["Id"]) for _, name, keys in seen} == {
        ("INSERT", 101),
        ("MODIFY", 101),
        ("REMOVE", 101),
    }


def test_process_sqs_batch_reads_hand_made_messages_as_sqs(sample_event: dict[str, Any]) -> None:
    message = {"messageId": "m1", "body": json.dumps(sample_event["Records"][0])}
    handler = Recorder()
    assert process_sqs_batch({"Records": [message]}, handler) == {"batchItemFailures": []}
    assert handler.seen[0].source == "aws:sqs" and handler.seen[0].item_identifier == "m1"


def test_kinesis_failure_is_logged_with_its_identifier_never_the_item(
    sample_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    event = kinesis_event(sample_event)
    with caplog.at_level(logging.ERROR, logger="ddb_stream_runtime.batch"):
        process_stream_batch(event, Recorder(fail_on={"1"}))
    [log] = caplog.records
    assert event["Records"][0]["kinesis"]["sequenceNumber"] in log.getMessage()
    assert log.event_id == "1"  # type: ignore[attr-defined]  (the change's, unwrapped)
    assert "New item!" not in caplog.text


# --- record identity (what idempotency keys on) -------------------------------------------


def test_kinesis_duplicates_share_an_identity_whatever_their_event_id(
    sample_event: dict[str, Any],
) -> None:
    raw = sample_event["Records"][1]
    a = to_kinesis_change(raw, micros=1718049976512345, event_id="one")
    b = to_kinesis_change(raw, micros=1718049976512345, event_id="another")
    c = to_kinesis_change(raw, micros=1718049976512346, event_id="one")
    records = [entry.get() for entry in read_batch(as_kinesis([a, b, c])).entries]
    assert records[0].identity == records[1].identity  # a duplicate: same change
    assert records[0].identity != records[2].identity  # another change
    assert records[0].identity.startswith("sha256:")


def test_stream_and_sqs_identity_is_the_event_id(sample_event: dict[str, Any]) -> None:
    [entry] = read_batch(as_sqs(sample_event["Records"][:1])).entries
    assert (
        entry.get().identity == "1" == StreamRecord.from_lambda(sample_event["Records"][0]).identity
    )


# --- the failure rules, as properties -----------------------------------------------------


def batch_of(source: str, fifo: bool, size: int) -> Batch:
    def never() -> StreamRecord:
        raise AssertionError("not unwrapped")

    entries = [Entry(i, f"id-{i}", {}, never) for i in range(size)]
    return Batch(source, fifo, entries, [])  # type: ignore[arg-type]


@given(
    kind=st.sampled_from(["stream", "kinesis", "standard", "fifo"]),
    size=st.integers(1, 30),
    data=st.data(),
)
def test_failure_rules_per_source(kind: str, size: int, data: st.DataObject) -> None:
    source = {"stream": "aws:dynamodb", "kinesis": "aws:kinesis"}.get(kind, "aws:sqs")
    batch = batch_of(source, kind == "fifo", size)
    failed = data.draw(st.sets(st.integers(0, size - 1), min_size=1))
    reported = [f["itemIdentifier"] for f in batch.failures(failed)]
    first = min(failed)
    if kind in ("stream", "kinesis"):
        # Lambda checkpoints at the lowest: reporting it alone re-sends everything after.
        assert reported == [f"id-{first}"]
    elif kind == "fifo":
        assert reported == [f"id-{i}" for i in range(first, size)]
    else:
        assert reported == [f"id-{i}" for i in sorted(failed)]
    assert batch.failures() == []


def test_a_failure_without_identifier_fails_the_whole_batch() -> None:
    batch = batch_of("aws:sqs", False, 3)
    batch.entries[1].identifier = ""
    assert batch.failures([1, 2]) == [{"itemIdentifier": ""}]
