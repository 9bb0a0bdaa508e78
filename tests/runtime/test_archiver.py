"""Archiver: TTL expiries -> one gzip JSON-lines object per batch in S3, or an archive table."""

from __future__ import annotations

import base64
import copy
import doctest
import gzip
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ddb_stream_runtime.archiver as archiver_module
from ddb_stream_runtime.archiver import (
    CONTENT_TYPE,
    Archiver,
    ArchiverConfig,
    archive_key,
    handler,
)

BUCKET = "ttl-archive"
ARCHIVE_TABLE = "sessions-archive"
LOGGER_NAME = "ddb_stream_runtime.archiver"
DAY = 86_400

Response = dict[str, Any]


class FakeS3:
    """Counts put_object calls and keeps what they wrote; optionally raises."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.puts: list[dict[str, Any]] = []

    def put_object(self, **params: Any) -> Response:
        if self.error is not None:
            raise self.error
        self.puts.append(params)
        return {"ETag": '"x"'}

    def lines(self, put: int = 0) -> list[dict[str, Any]]:
        text = gzip.decompress(self.puts[put]["Body"]).decode("ascii")
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]


class FakeDynamoDB:
    """Records batch_write_item calls; ``script(call, puts)`` returns the response."""

    def __init__(self, script: Callable[[int, list[dict[str, Any]]], Response] | None = None):
        self.script = script or (lambda call, puts: {"UnprocessedItems": {}})
        self.calls: list[list[dict[str, Any]]] = []

    def batch_write_item(self, RequestItems: dict[str, Any]) -> Response:  # noqa: N803
        [(table, requests)] = RequestItems.items()
        assert table == ARCHIVE_TABLE
        puts = [copy.deepcopy(r["PutRequest"]["Item"]) for r in requests]
        self.calls.append(puts)
        return self.script(len(self.calls), puts)

    @property
    def written(self) -> list[dict[str, Any]]:
        return [item for call in self.calls for item in call]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def unprocessed(items: list[dict[str, Any]]) -> Response:
    return {"UnprocessedItems": {ARCHIVE_TABLE: [{"PutRequest": {"Item": i}} for i in items]}}


@pytest.fixture
def make_expiry(ttl_event: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """A TTL expiry of ``sessions`` like the fixture's, with its own key and sequence number."""
    template = ttl_event["Records"][0]

    def build(i: int, *, pk: str | None = None, at: float = 1718049976.5) -> dict[str, Any]:
        record = copy.deepcopy(template)
        key = {"pk": {"S": pk or f"SESSION#{i:05d}"}}
        record["eventID"] = f"event-{i}"
        record["dynamodb"]["SequenceNumber"] = seq(i)
        record["dynamodb"]["Keys"] = key
        record["dynamodb"]["OldImage"] = {**record["dynamodb"]["OldImage"], **key}
        record["dynamodb"]["OldImage"]["n"] = {"N": str(i)}
        record["dynamodb"]["ApproximateCreationDateTime"] = at
        return record

    return build


@pytest.fixture
def make_event(make_expiry: Callable[..., dict[str, Any]]) -> Callable[[int], dict[str, Any]]:
    return lambda n: {"Records": [make_expiry(i) for i in range(n)]}


def seq(i: int) -> str:
    return str(4421584500000000017450439000 + i)


def s3_archiver(s3: FakeS3, prefix: str = "archive/") -> Archiver:
    return Archiver(ArchiverConfig(bucket=BUCKET, prefix=prefix), s3_client=s3)


def table_archiver(dynamodb: FakeDynamoDB, sleep: Sleeps | None = None) -> Archiver:
    return Archiver(
        ArchiverConfig(table=ARCHIVE_TABLE),
        dynamodb_client=dynamodb,
        sleep=sleep if sleep is not None else Sleeps(),
    )


OK: Response = {"batchItemFailures": []}


def failed(sequence_number: str) -> Response:
    return {"batchItemFailures": [{"itemIdentifier": sequence_number}]}


# --- S3 mode ----------------------------------------------------------------------------


def test_real_ttl_record(ttl_event: dict[str, Any]) -> None:
    s3 = FakeS3()
    assert s3_archiver(s3).archive(ttl_event) == OK
    [put] = s3.puts
    record = ttl_event["Records"][0]
    sequence_number = record["dynamodb"]["SequenceNumber"]
    assert put["Bucket"] == BUCKET
    assert put["Key"] == (
        f"archive/sessions/dt=2024-06-10/{sequence_number}-{sequence_number}.jsonl.gz"
    )
    assert put["ContentType"] == CONTENT_TYPE == "application/x-ndjson"
    assert put["ContentEncoding"] == "gzip"
    assert s3.lines() == [
        {
            "eventName": "REMOVE",
            "sequenceNumber": sequence_number,
            "approximateCreationTime": "2024-06-10T20:06:16.500Z",
            "ttlExpiry": True,
            "keys": record["dynamodb"]["Keys"],
            "oldImage": record["dynamodb"]["OldImage"],
        }
    ]


def test_key_from_first_record_date_and_sequence_range(
    make_expiry: Callable[..., dict[str, Any]],
) -> None:
    # The batch straddles midnight UTC: the first record's day names the partition.
    last_second = 1718063999.9  # 2024-06-10T23:59:59.9Z
    event = {"Records": [make_expiry(0, at=last_second), make_expiry(1, at=last_second + 1)]}
    s3 = FakeS3()
    assert s3_archiver(s3, prefix="ttl/v1/").archive(event) == OK
    assert s3.puts[0]["Key"] == f"ttl/v1/sessions/dt=2024-06-10/{seq(0)}-{seq(1)}.jsonl.gz"
    times = [line["approximateCreationTime"] for line in s3.lines()]
    assert times == ["2024-06-10T23:59:59.900Z", "2024-06-11T00:00:00.900Z"]


def test_archive_key_without_table_or_time() -> None:
    assert (
        archive_key("archive/", None, None, "1", "2") == "archive/_unknown/dt=unknown/1-2.jsonl.gz"
    )


def test_gzip_lines_are_the_raw_images(make_event: Callable[[int], dict[str, Any]]) -> None:
    event = make_event(3)
    # Binary and number values stay DynamoDB JSON exactly as the stream had them.
    event["Records"][1]["dynamodb"]["OldImage"]["blob"] = {"B": "AAH+/w=="}
    event["Records"][1]["dynamodb"]["OldImage"]["price"] = {"N": "129.950"}
    original = copy.deepcopy(event)
    s3 = FakeS3()
    assert s3_archiver(s3).archive(event) == OK
    lines = s3.lines()
    assert [line["sequenceNumber"] for line in lines] == [seq(0), seq(1), seq(2)]
    assert [line["oldImage"] for line in lines] == [
        r["dynamodb"]["OldImage"] for r in original["Records"]
    ]
    assert [line["keys"] for line in lines] == [r["dynamodb"]["Keys"] for r in original["Records"]]
    assert event == original  # the event is not changed


def test_images_are_never_deserialized(
    make_event: Callable[[int], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(image: Any) -> Any:
        raise AssertionError("the archiver must not deserialize images")

    monkeypatch.setattr("ddb_stream_runtime.records.deserialize_image", boom)
    assert s3_archiver(FakeS3()).archive(make_event(5)) == OK
    assert table_archiver(FakeDynamoDB()).archive(make_event(5)) == OK


def test_same_batch_same_key_and_bytes(make_event: Callable[[int], dict[str, Any]]) -> None:
    first, second = FakeS3(), FakeS3()
    assert s3_archiver(first).archive(make_event(50)) == OK
    assert s3_archiver(second).archive(make_event(50)) == OK
    assert first.puts[0]["Key"] == second.puts[0]["Key"]
    assert first.puts[0]["Body"] == second.puts[0]["Body"]
    # A fixed header: mtime 0 and OS 255 whatever the Python version.
    assert first.puts[0]["Body"][:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_thousand_records_make_exactly_one_put(
    make_event: Callable[[int], dict[str, Any]],
) -> None:
    s3 = FakeS3()
    assert s3_archiver(s3).archive(make_event(1000)) == OK
    assert len(s3.puts) == 1
    assert s3.puts[0]["Key"].endswith(f"/{seq(0)}-{seq(999)}.jsonl.gz")
    lines = s3.lines()
    assert len(lines) == 1000
    assert [line["oldImage"]["n"] for line in lines] == [{"N": str(i)} for i in range(1000)]


def test_manual_delete_is_archived_as_not_ttl(make_expiry: Callable[..., dict[str, Any]]) -> None:
    record = make_expiry(0)
    del record["userIdentity"]
    s3 = FakeS3()
    assert s3_archiver(s3).archive({"Records": [record]}) == OK
    assert s3.lines()[0]["ttlExpiry"] is False


def _not_remove(record: dict[str, Any]) -> None:
    record["eventName"] = "MODIFY"
    record["dynamodb"]["NewImage"] = record["dynamodb"]["OldImage"]


def _keys_only(record: dict[str, Any]) -> None:
    del record["dynamodb"]["OldImage"]
    record["dynamodb"]["StreamViewType"] = "KEYS_ONLY"


def _bad_event_name(record: dict[str, Any]) -> None:
    record["eventName"] = "EXPIRE"


def _bad_time(record: dict[str, Any]) -> None:
    record["dynamodb"]["ApproximateCreationDateTime"] = "yesterday"


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_not_remove, "is a MODIFY"),
        (_keys_only, "has no OldImage"),
        (_bad_event_name, "unknown eventName"),
        (_bad_time, "ApproximateCreationDateTime"),
    ],
)
def test_malformed_record_in_the_middle(
    make_event: Callable[[int], dict[str, Any]],
    spoil: Callable[[dict[str, Any]], None],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = make_event(5)
    spoil(event["Records"][2])
    s3 = FakeS3()
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        assert s3_archiver(s3).archive(event) == failed(seq(2))
    [put] = s3.puts  # only the records before it, in one object named after them
    assert put["Key"].endswith(f"/{seq(0)}-{seq(1)}.jsonl.gz")
    assert [line["sequenceNumber"] for line in s3.lines()] == [seq(0), seq(1)]
    [log] = caplog.records
    assert seq(2) in log.getMessage() and reason in log.getMessage()
    assert "user-42" not in log.getMessage()  # metadata, never the item


def test_malformed_first_record_writes_nothing(make_event: Callable[[int], dict[str, Any]]) -> None:
    event = make_event(3)
    _keys_only(event["Records"][0])
    s3 = FakeS3()
    assert s3_archiver(s3).archive(event) == failed(seq(0))
    assert s3.puts == []


def test_record_without_sequence_number_fails_the_whole_batch(
    make_event: Callable[[int], dict[str, Any]],
) -> None:
    event = make_event(3)
    del event["Records"][1]["dynamodb"]["SequenceNumber"]
    s3 = FakeS3()
    assert s3_archiver(s3).archive(event) == failed("")
    assert len(s3.puts) == 1 and len(s3.lines()) == 1


def test_put_failure_reports_the_first_record(
    make_event: Callable[[int], dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    event = make_event(4)
    _not_remove(event["Records"][3])  # the put failure comes first: it is the earliest
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = s3_archiver(FakeS3(error=ConnectionError("s3 is down"))).archive(event)
    assert response == failed(seq(0))
    assert "s3 is down" in caplog.records[0].getMessage()


@pytest.mark.parametrize("event", [{"Records": []}, {}])
def test_empty_batch_makes_no_call(event: dict[str, Any]) -> None:
    s3, dynamodb = FakeS3(), FakeDynamoDB()
    assert s3_archiver(s3).archive(event) == OK
    assert table_archiver(dynamodb).archive(event) == OK
    assert s3.puts == [] and dynamodb.calls == []


def test_not_a_stream_event_raises() -> None:
    with pytest.raises(TypeError, match="Records"):
        s3_archiver(FakeS3()).archive({"Records": "nope"})


# --- table mode -------------------------------------------------------------------------


def test_thousand_records_make_forty_batch_writes(
    make_event: Callable[[int], dict[str, Any]],
) -> None:
    event = make_event(1000)
    dynamodb = FakeDynamoDB()
    assert table_archiver(dynamodb).archive(event) == OK
    assert len(dynamodb.calls) == 40
    assert all(len(call) == 25 for call in dynamodb.calls)
    # The raw OldImage as is, in stream order.
    assert dynamodb.written == [r["dynamodb"]["OldImage"] for r in event["Records"]]


def test_repeated_key_in_a_call_keeps_the_later_image(
    make_expiry: Callable[..., dict[str, Any]],
) -> None:
    records = [make_expiry(i) for i in range(30)]
    records[3] = make_expiry(3, pk="SESSION#00001")  # repeats record 1's key
    # Record 25 fills the first call; record 26 has a key that call already holds,
    # so it joins it too (its image replaces the earlier one: the later image wins).
    records[26] = make_expiry(26, pk="SESSION#00001")
    records[28] = make_expiry(28, pk="SESSION#00027")  # a repeat within the second call
    dynamodb = FakeDynamoDB()
    assert table_archiver(dynamodb).archive({"Records": records}) == OK
    first, second = dynamodb.calls
    assert len(first) == 25 and len(second) == 2  # 30 records, 27 puts
    for call in dynamodb.calls:
        keys = [item["pk"]["S"] for item in call]
        assert len(keys) == len(set(keys))  # DynamoDB rejects a key twice in one call
    assert [item["n"]["N"] for item in first][:4] == ["0", "26", "2", "4"]
    assert [(item["pk"]["S"], item["n"]["N"]) for item in second] == [
        ("SESSION#00027", "28"),
        ("SESSION#00029", "29"),
    ]


def test_binary_values_are_sent_as_bytes(make_expiry: Callable[..., dict[str, Any]]) -> None:
    record = make_expiry(0)
    record["dynamodb"]["OldImage"]["blob"] = {"B": "AAH+/w=="}
    record["dynamodb"]["OldImage"]["nested"] = {"L": [{"BS": ["aGVsbG8="]}]}
    dynamodb = FakeDynamoDB()
    assert table_archiver(dynamodb).archive({"Records": [record]}) == OK
    [item] = dynamodb.written
    # The client base64-encodes bytes itself: base64 text would be stored encoded twice.
    assert item["blob"] == {"B": b"\x00\x01\xfe\xff"}
    assert item["nested"] == {"L": [{"BS": [b"hello"]}]}
    assert record["dynamodb"]["OldImage"]["blob"] == {"B": "AAH+/w=="}  # event untouched


def test_bad_binary_value_fails_its_record(make_event: Callable[[int], dict[str, Any]]) -> None:
    event = make_event(3)
    event["Records"][1]["dynamodb"]["OldImage"]["blob"] = {"B": "not base64!"}
    dynamodb = FakeDynamoDB()
    assert table_archiver(dynamodb).archive(event) == failed(seq(1))
    assert [[item["n"]["N"] for item in call] for call in dynamodb.calls] == [["0"]]


def test_unprocessed_items_are_retried_then_succeed(
    make_event: Callable[[int], dict[str, Any]],
) -> None:
    def script(call: int, puts: list[dict[str, Any]]) -> Response:
        return unprocessed(puts[3:5]) if call == 1 else {"UnprocessedItems": {}}

    dynamodb, sleeps = FakeDynamoDB(script), Sleeps()
    assert table_archiver(dynamodb, sleeps).archive(make_event(30)) == OK
    assert [len(call) for call in dynamodb.calls] == [25, 2, 5]
    assert [item["n"]["N"] for item in dynamodb.calls[1]] == ["3", "4"]
    assert sleeps == [0.05]


def test_unprocessed_binary_keys_are_matched(make_expiry: Callable[..., dict[str, Any]]) -> None:
    records = [make_expiry(i) for i in range(3)]
    for i, record in enumerate(records):
        key = {"pk": {"B": base64.b64encode(bytes([i, 255])).decode()}}
        record["dynamodb"]["Keys"] = key
        record["dynamodb"]["OldImage"].update(key)

    def script(call: int, puts: list[dict[str, Any]]) -> Response:
        return unprocessed(puts[1:]) if call == 1 else {"UnprocessedItems": {}}

    dynamodb = FakeDynamoDB(script)
    assert table_archiver(dynamodb).archive({"Records": records}) == OK
    assert [[item["pk"]["B"] for item in call] for call in dynamodb.calls] == [
        [b"\x00\xff", b"\x01\xff", b"\x02\xff"],
        [b"\x01\xff", b"\x02\xff"],
    ]


def test_permanently_unprocessed_reports_the_earliest_and_stops(
    make_event: Callable[[int], dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    def script(call: int, puts: list[dict[str, Any]]) -> Response:
        if call == 1:
            return {"UnprocessedItems": {}}
        return unprocessed([p for p in puts if p["n"]["N"] in ("31", "40")])  # call 2 on

    dynamodb, sleeps = FakeDynamoDB(script), Sleeps()
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        assert table_archiver(dynamodb, sleeps).archive(make_event(60)) == failed(seq(31))
    assert [len(call) for call in dynamodb.calls] == [25, 25, 2, 2]  # 3 attempts; no 3rd call
    assert sleeps == [0.05, 0.1]
    assert "still unprocessed after 3 attempts" in caplog.records[0].getMessage()


def test_unprocessed_repeated_key_reports_its_first_record(
    make_expiry: Callable[..., dict[str, Any]],
) -> None:
    records = [make_expiry(0), make_expiry(1), make_expiry(2), make_expiry(3, pk="SESSION#00001")]

    def script(call: int, puts: list[dict[str, Any]]) -> Response:
        return unprocessed([p for p in puts if p["pk"]["S"] == "SESSION#00001"])

    dynamodb = FakeDynamoDB(script)
    # The put carries record 3's image but stands for record 1 too: 1 is re-sent.
    assert table_archiver(dynamodb).archive({"Records": records}) == failed(seq(1))


def test_batch_write_exception_reports_the_earliest_pending(
    make_event: Callable[[int], dict[str, Any]],
) -> None:
    def script(call: int, puts: list[dict[str, Any]]) -> Response:
        if call == 1:
            return unprocessed(puts[10:12])
        raise ConnectionError("dynamodb is down")

    dynamodb = FakeDynamoDB(script)
    assert table_archiver(dynamodb).archive(make_event(30)) == failed(seq(10))
    assert len(dynamodb.calls) == 2  # the retry raised: no further attempt, no later call


def test_unknown_unprocessed_item_is_not_assumed_written(
    make_event: Callable[[int], dict[str, Any]],
) -> None:
    def script(call: int, puts: list[dict[str, Any]]) -> Response:
        return unprocessed([{"pk": {"S": "SOMETHING-ELSE"}}])

    assert table_archiver(FakeDynamoDB(script)).archive(make_event(3)) == failed(seq(0))


def test_table_mode_malformed_record(make_event: Callable[[int], dict[str, Any]]) -> None:
    event = make_event(30)
    _keys_only(event["Records"][27])
    dynamodb = FakeDynamoDB()
    assert table_archiver(dynamodb).archive(event) == failed(seq(27))
    assert [len(call) for call in dynamodb.calls] == [25, 2]


# --- configuration and the Lambda entry point -------------------------------------------


def test_config_from_env() -> None:
    assert ArchiverConfig.from_env({"ARCHIVE_BUCKET": BUCKET}) == ArchiverConfig(
        bucket=BUCKET, prefix="archive/"
    )
    assert ArchiverConfig.from_env({"ARCHIVE_BUCKET": BUCKET, "ARCHIVE_PREFIX": ""}).prefix == (
        "archive/"
    )
    config = ArchiverConfig.from_env({"ARCHIVE_TABLE": ARCHIVE_TABLE, "ARCHIVE_BUCKET": ""})
    assert (config.bucket, config.table) == (None, ARCHIVE_TABLE)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "got neither"),
        ({"ARCHIVE_BUCKET": BUCKET, "ARCHIVE_TABLE": ARCHIVE_TABLE}, "got both"),
        ({"ARCHIVE_BUCKET": BUCKET, "ARCHIVE_PREFIX": "archive"}, "end with '/', got 'archive'"),
        ({"ARCHIVE_BUCKET": BUCKET, "ARCHIVE_PREFIX": "/archive/"}, "relative"),
    ],
)
def test_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArchiverConfig.from_env(env)


@pytest.fixture
def fresh_archiver() -> Any:
    archiver_module._default_archiver.cache_clear()
    yield
    archiver_module._default_archiver.cache_clear()


def test_handler_reads_env_once(
    fresh_archiver: None, monkeypatch: pytest.MonkeyPatch, ttl_event: dict[str, Any]
) -> None:
    s3 = FakeS3()
    created: list[str] = []
    monkeypatch.setattr(archiver_module, "aws_client", lambda s: created.append(s) or s3)
    monkeypatch.setenv("ARCHIVE_BUCKET", BUCKET)
    monkeypatch.setenv("ARCHIVE_PREFIX", "expired/")
    monkeypatch.delenv("ARCHIVE_TABLE", raising=False)
    assert handler(ttl_event, None) == OK
    monkeypatch.setenv("ARCHIVE_BUCKET", "other")
    assert handler(ttl_event, None) == OK
    assert [put["Bucket"] for put in s3.puts] == [BUCKET, BUCKET]
    assert all(put["Key"].startswith("expired/sessions/") for put in s3.puts)
    assert created == ["s3"]


def test_handler_config_error_surfaces(
    fresh_archiver: None, monkeypatch: pytest.MonkeyPatch, ttl_event: dict[str, Any]
) -> None:
    monkeypatch.delenv("ARCHIVE_BUCKET", raising=False)
    monkeypatch.delenv("ARCHIVE_TABLE", raising=False)
    with pytest.raises(ValueError, match="ARCHIVE_BUCKET"):
        handler(ttl_event, None)


def test_import_loads_neither_boto3_nor_cdk() -> None:
    # A fresh interpreter: this test process may well have imported boto3 already.
    code = (
        "import json, sys, ddb_stream_runtime.archiver; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'boto3', 'botocore', 'aws_cdk', 'jsii'})))"
    )
    lambda_src = Path(archiver_module.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(lambda_src)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == []


def test_docstring_examples_run() -> None:
    result = doctest.testmod(archiver_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# --- moto (in process): a real S3 object and a real archive table --------------------------


def test_against_moto_s3_and_dynamodb(
    make_event: Callable[[int], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    import moto

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    event = make_event(60)
    event["Records"][7]["dynamodb"]["OldImage"]["blob"] = {"B": "AAH+/w=="}
    with moto.mock_aws():
        s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
        s3.create_bucket(Bucket=BUCKET)
        assert Archiver(ArchiverConfig(bucket=BUCKET), s3_client=s3).archive(event) == OK
        [listed] = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
        assert listed["Key"] == f"archive/sessions/dt=2024-06-10/{seq(0)}-{seq(59)}.jsonl.gz"
        obj = s3.get_object(Bucket=BUCKET, Key=listed["Key"])
        assert obj["ContentType"] == "application/x-ndjson"
        assert obj["ContentEncoding"] == "gzip"
        lines = gzip.decompress(obj["Body"].read()).decode().splitlines()
        assert [json.loads(line)["oldImage"] for line in lines] == [
            r["dynamodb"]["OldImage"] for r in event["Records"]
        ]

        dynamodb.create_table(
            TableName=ARCHIVE_TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        archiver = Archiver(ArchiverConfig(table=ARCHIVE_TABLE), dynamodb_client=dynamodb)
        assert archiver.archive(event) == OK
        items = dynamodb.scan(TableName=ARCHIVE_TABLE)["Items"]
        assert len(items) == 60
        by_key = {item["pk"]["S"]: item for item in items}
        assert by_key["SESSION#00007"]["blob"] == {"B": b"\x00\x01\xfe\xff"}  # stored once-encoded
        assert by_key["SESSION#00042"]["scopes"]["SS"] == ["read", "write"]
        assert by_key["SESSION#00042"]["n"] == {"N": "42"}
