"""StreamRecord: attributes from real-shaped events, lazy images, TTL detection, validation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import ddb_stream_runtime.records as records_module
from ddb_stream_runtime import DeserializationError, MalformedRecordError, StreamRecord

ARN = "arn:aws:dynamodb:us-east-2:123456789012:table/my-table/stream/2024-06-10T19:26:16.525"


def _records(event: dict[str, Any]) -> list[StreamRecord]:
    return [StreamRecord.from_lambda(raw) for raw in event["Records"]]


@pytest.mark.parametrize(
    ("index", "event_id", "event_name", "sequence_number", "size_bytes", "new_image", "old_image"),
    [
        (0, "1", "INSERT", "111", 26, {"Message": "New item!", "Id": 101}, None),
        (
            1,
            "2",
            "MODIFY",
            "222",
            59,
            {"Message": "This item has changed", "Id": 101},
            {"Message": "New item!", "Id": 101},
        ),
        (2, "3", "REMOVE", "333", 38, None, {"Message": "This item has changed", "Id": 101}),
    ],
)
def test_sample_event_attributes(
    sample_event: dict[str, Any],
    index: int,
    event_id: str,
    event_name: str,
    sequence_number: str,
    size_bytes: int,
    new_image: dict[str, Any] | None,
    old_image: dict[str, Any] | None,
) -> None:
    raw = sample_event["Records"][index]
    record = StreamRecord.from_lambda(raw)
    assert record.event_id == event_id
    assert record.event_name == event_name
    assert record.event_source_arn == ARN
    assert record.table_name == "my-table"
    assert record.sequence_number == sequence_number
    assert record.size_bytes == size_bytes
    assert record.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert record.approximate_creation_time is None  # the sample has none
    assert record.is_ttl_expiry is False
    assert record.keys == {"Id": 101}
    assert record.new_image == new_image
    assert record.old_image == old_image
    # The raw views are the very DynamoDB-JSON objects Lambda delivered.
    assert record.raw is raw
    assert record.raw_keys is raw["dynamodb"]["Keys"]
    assert record.raw_new_image is raw["dynamodb"].get("NewImage")
    assert record.raw_old_image is raw["dynamodb"].get("OldImage")


def test_ttl_record(ttl_event: dict[str, Any]) -> None:
    [record] = _records(ttl_event)
    assert record.is_ttl_expiry is True
    assert record.event_name == "REMOVE"
    assert record.table_name == "sessions"
    assert record.sequence_number == "4421584500000000017450439091"
    assert record.new_image is None
    assert record.old_image == {
        "pk": "SESSION#8f14e45f",
        "user_id": "user-42",
        "expires_at": 1718049600,
        "scopes": {"read", "write"},
    }
    when = record.approximate_creation_time
    assert when == datetime(2024, 6, 10, 20, 6, 16, 500000, tzinfo=timezone.utc)
    assert when is not None and when.utcoffset() == timedelta(0)


def test_manual_remove_is_not_ttl(sample_event: dict[str, Any]) -> None:
    remove = _records(sample_event)[2]
    assert remove.event_name == "REMOVE"
    assert "userIdentity" not in remove.raw
    assert remove.is_ttl_expiry is False


@pytest.mark.parametrize(
    ("event_name", "identity"),
    [
        ("MODIFY", {"type": "Service", "principalId": "dynamodb.amazonaws.com"}),
        ("INSERT", {"type": "Service", "principalId": "dynamodb.amazonaws.com"}),
        ("REMOVE", {"type": "Service", "principalId": "lambda.amazonaws.com"}),
        ("REMOVE", {"type": "IAMUser", "principalId": "dynamodb.amazonaws.com"}),
        ("REMOVE", "dynamodb.amazonaws.com"),
        ("REMOVE", None),
    ],
)
def test_not_ttl_unless_remove_by_dynamodb_service(
    ttl_event: dict[str, Any], event_name: str, identity: Any
) -> None:
    raw = ttl_event["Records"][0]
    raw["eventName"] = event_name
    raw["userIdentity"] = identity
    assert StreamRecord.from_lambda(raw).is_ttl_expiry is False


def test_integer_creation_time(rich_event: dict[str, Any]) -> None:
    [record] = _records(rich_event)
    assert record.approximate_creation_time == datetime(2024, 6, 10, 20, 6, 16, tzinfo=timezone.utc)
    assert record.keys == {"pk": "ORDER#000123", "sk": 7}


@pytest.mark.parametrize("bad", ["2024-06-10T20:06:16Z", True, [1]])
def test_bad_creation_time_is_malformed(make_record: Any, bad: Any) -> None:
    record = StreamRecord.from_lambda(make_record("9", ApproximateCreationDateTime=bad))
    with pytest.raises(MalformedRecordError, match="ApproximateCreationDateTime"):
        record.approximate_creation_time  # noqa: B018


@pytest.mark.parametrize(
    ("arn", "table"),
    [
        (ARN, "my-table"),
        ("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/t.1_x-y/stream/2024", "t.1_x-y"),
        ("sourcearn", None),  # the placeholder of older docs samples
        ("arn:aws:sqs:us-east-1:123456789012:queue", None),
        (None, None),
    ],
)
def test_table_name_from_arn(make_record: Any, arn: str | None, table: str | None) -> None:
    raw = make_record("1")
    raw["eventSourceARN"] = arn
    assert StreamRecord.from_lambda(raw).table_name == table


def test_table_name_none_when_arn_absent(make_record: Any) -> None:
    raw = make_record("1")
    del raw["eventSourceARN"]
    record = StreamRecord.from_lambda(raw)
    assert record.event_source_arn is None
    assert record.table_name is None


class _Spy:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[Any] = []

    def __call__(self, image: Any) -> Any:
        self.calls.append(image)
        return self.real(image)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    spy = _Spy(records_module.deserialize_image)
    monkeypatch.setattr(records_module, "deserialize_image", spy)
    return spy


def test_images_are_deserialized_lazily_and_cached(sample_event: dict[str, Any], spy: _Spy) -> None:
    raw = sample_event["Records"][1]
    record = StreamRecord.from_lambda(raw)
    # Everything a router touches: no image is converted.
    _ = (record.event_name, record.sequence_number, record.table_name, record.is_ttl_expiry)
    _ = (record.raw_new_image, record.raw_old_image, record.raw_keys, repr(record))
    assert spy.calls == []

    first = record.new_image
    assert spy.calls == [raw["dynamodb"]["NewImage"]]
    assert record.new_image is first  # cached, not converted again
    assert len(spy.calls) == 1

    assert record.old_image == {"Message": "New item!", "Id": 101}
    assert record.keys == {"Id": 101}
    assert len(spy.calls) == 3
    _ = (record.old_image, record.keys)
    assert len(spy.calls) == 3


def test_absent_image_is_cached_too(sample_event: dict[str, Any], spy: _Spy) -> None:
    record = StreamRecord.from_lambda(sample_event["Records"][0])  # INSERT: no OldImage
    assert record.old_image is None
    assert record.old_image is None
    assert spy.calls == [None]


def test_bad_image_fails_only_when_read(make_record: Any) -> None:
    record = StreamRecord.from_lambda(make_record("5", NewImage={"Id": {"N": "one"}}))
    assert record.keys == {"Id": 101}  # building and other images are fine
    with pytest.raises(DeserializationError, match="Id: type tag 'N'"):
        record.new_image  # noqa: B018


def test_keys_only_record(make_record: Any) -> None:
    raw = make_record("7", StreamViewType="KEYS_ONLY")
    del raw["dynamodb"]["NewImage"], raw["dynamodb"]["OldImage"]
    record = StreamRecord.from_lambda(raw)
    assert record.stream_view_type == "KEYS_ONLY"
    assert (record.keys, record.new_image, record.old_image) == ({"Id": 101}, None, None)


def test_missing_keys_is_an_empty_dict(make_record: Any) -> None:
    raw = make_record("8")
    del raw["dynamodb"]["Keys"]
    record = StreamRecord.from_lambda(raw)
    assert record.raw_keys == {}
    assert record.keys == {}


def test_repr_has_metadata_but_no_item_data(sample_event: dict[str, Any]) -> None:
    text = repr(StreamRecord.from_lambda(sample_event["Records"][1]))
    assert text == "StreamRecord(event_name='MODIFY', sequence_number='222', table_name='my-table')"
    assert "changed" not in text


def _without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    target = raw
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return raw


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: _without(r, "dynamodb"), "no 'dynamodb' object \\(eventID 'id-222'\\)"),
        (lambda r: {**r, "dynamodb": "oops"}, "no 'dynamodb' object"),
        (lambda r: _without(r, "dynamodb", "SequenceNumber"), "no 'dynamodb.SequenceNumber'"),
        (lambda r: {**r, "dynamodb": {**r["dynamodb"], "SequenceNumber": ""}}, "SequenceNumber"),
        (lambda r: {**r, "dynamodb": {**r["dynamodb"], "SequenceNumber": 222}}, "got 222"),
        (lambda r: {**r, "eventName": "UPDATE"}, "record 222 has unknown eventName 'UPDATE'"),
        (lambda r: {**r, "eventName": ["INSERT"]}, "unknown eventName \\['INSERT'\\]"),
        (lambda r: _without(r, "eventName"), "record 222 has no 'eventName'"),
        (lambda r: "not a record", "a stream record is an object, got str"),
    ],
)
def test_from_lambda_validates_cheaply(make_record: Any, mutate: Any, message: str) -> None:
    raw = mutate(make_record("222"))
    with pytest.raises(MalformedRecordError, match=message) as caught:
        StreamRecord.from_lambda(raw)
    assert isinstance(caught.value, ValueError)
