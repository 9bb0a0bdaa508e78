"""process_sqs_batch / sqs_record_handler: SQS messages from the router back to StreamRecords."""

from __future__ import annotations

import copy
import doctest
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest

import ddb_stream_runtime.intake as intake_module
import ddb_stream_runtime.processor as processor_module
from ddb_stream_runtime import (
    Router,
    RouterConfig,
    StreamRecord,
    process_sqs_batch,
    sqs_record_handler,
)

LOGGER_NAME = "ddb_stream_runtime.processor"
QUEUE_ARN = "arn:aws:sqs:us-east-2:123456789012:orders-processor"
FIFO_QUEUE_ARN = QUEUE_ARN + ".fifo"
TOPIC = "arn:aws:sns:us-east-2:123456789012:orders"


def sqs_message(
    message_id: str, body: str, *, group: str | None = None, arn: str = QUEUE_ARN
) -> dict[str, Any]:
    """An SQS event record as Lambda delivers it."""
    attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": "1718049976000"}
    if group is not None:
        attributes["MessageGroupId"] = group
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "-",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-2",
    }


def raw_body(raw: dict[str, Any]) -> str:
    return json.dumps(raw, separators=(",", ":"))


class Recorder:
    """Remembers the records it saw; fails on chosen sequence numbers."""

    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.fail_on = fail_on or set()
        self.records: list[StreamRecord] = []

    def __call__(self, record: StreamRecord) -> None:
        assert isinstance(record, StreamRecord)
        self.records.append(record)
        if record.sequence_number in self.fail_on:
            raise RuntimeError(f"downstream said no to {record.sequence_number}")

    @property
    def seen(self) -> list[str]:
        return [r.sequence_number for r in self.records]


class FakeS3:
    def __init__(self, objects: dict[tuple[str, str], bytes] | None = None) -> None:
        self.objects = objects or {}
        self.gets: list[tuple[str, str]] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self.gets.append((Bucket, Key))
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


@pytest.fixture
def sqs_event(sample_event: dict[str, Any]) -> dict[str, Any]:
    """The three sample stream records as raw-delivery SQS messages m1, m2, m3."""
    return {
        "Records": [
            sqs_message(f"m{i + 1}", raw_body(raw)) for i, raw in enumerate(sample_event["Records"])
        ]
    }


def test_raw_delivery_unwrap(sqs_event: dict[str, Any], sample_event: dict[str, Any]) -> None:
    handler = Recorder()
    assert process_sqs_batch(sqs_event, handler) == {"batchItemFailures": []}
    assert handler.seen == ["111", "222", "333"]
    for record, raw in zip(handler.records, sample_event["Records"], strict=True):
        expected = StreamRecord.from_lambda(raw)
        assert record.raw == raw
        assert (record.event_name, record.keys, record.new_image, record.old_image) == (
            expected.event_name,
            expected.keys,
            expected.new_image,
            expected.old_image,
        )
        assert record.table_name == "my-table"


def test_every_failure_is_reported_by_message_id(
    sqs_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    handler = Recorder(fail_on={"111", "333"})
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = process_sqs_batch(sqs_event, handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}
    assert handler.seen == ["111", "222", "333"]  # independent: all processed
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.message_id for r in errors] == ["m1", "m3"]  # type: ignore[attr-defined]
    assert "downstream said no to 111" in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "",
        '{"eventName": "INSERT"}',  # JSON, not a stream record
        '["a list"]',
        '{"eventName": "UPSERT", "dynamodb": {"SequenceNumber": "9"}}',
        '{"claimCheck": "nowhere"}',
        None,  # no body at all
    ],
)
def test_malformed_body_fails_only_that_message(
    sqs_event: dict[str, Any], body: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sqs_event["Records"][1]["body"] = body
    handler = Recorder()
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = process_sqs_batch(sqs_event, handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert handler.seen == ["111", "333"]
    assert "sqs message m2 failed" in caplog.text


def test_body_is_not_logged(sqs_event: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    sqs_event["Records"][0]["body"] = '{"secret": "hunter2", ' + "x" * 50
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        process_sqs_batch(sqs_event, Recorder())
    assert "hunter2" not in caplog.text


def test_message_without_id_fails_the_whole_batch(sqs_event: dict[str, Any]) -> None:
    del sqs_event["Records"][1]["messageId"]
    sqs_event["Records"][1]["body"] = "not json"
    response = process_sqs_batch(sqs_event, Recorder())
    assert response == {"batchItemFailures": [{"itemIdentifier": ""}]}


def test_claim_check_is_fetched(sample_event: dict[str, Any]) -> None:
    raw = sample_event["Records"][1]
    s3 = FakeS3({("bucket", "claim-check/my-table/222.json"): raw_body(raw).encode()})
    pointer = {
        "claimCheck": {"bucket": "bucket", "key": "claim-check/my-table/222.json"},
        "eventName": "MODIFY",
        "keys": {"Id": {"N": "101"}},
        "sequenceNumber": "222",
    }
    handler = Recorder()
    event = {"Records": [sqs_message("m1", json.dumps(pointer))]}
    assert process_sqs_batch(event, handler, s3_client=s3) == {"batchItemFailures": []}
    assert s3.gets == [("bucket", "claim-check/my-table/222.json")]
    [record] = handler.records
    assert record.raw == raw and record.new_image == {"Message": "This item has changed", "Id": 101}


def test_claim_check_with_the_wrong_record_fails(sample_event: dict[str, Any]) -> None:
    s3 = FakeS3({("b", "k"): raw_body(sample_event["Records"][0]).encode()})  # seq 111
    pointer = {"claimCheck": {"bucket": "b", "key": "k"}, "sequenceNumber": "222"}
    handler = Recorder()
    event = {"Records": [sqs_message("m1", json.dumps(pointer))]}
    assert process_sqs_batch(event, handler, s3_client=s3) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }
    assert handler.seen == []


def test_claim_check_fetch_error_fails_only_that_message(sqs_event: dict[str, Any]) -> None:
    pointer = {"claimCheck": {"bucket": "b", "key": "gone"}, "sequenceNumber": "222"}
    sqs_event["Records"][1]["body"] = json.dumps(pointer)
    handler = Recorder()
    response = process_sqs_batch(sqs_event, handler, s3_client=FakeS3())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert handler.seen == ["111", "333"]


def test_s3_client_is_created_lazily(
    sqs_event: dict[str, Any], sample_event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    s3 = FakeS3({("b", "k"): raw_body(sample_event["Records"][1]).encode()})

    def fake_client(service: str) -> Any:
        created.append(service)
        return s3

    monkeypatch.setattr(intake_module, "aws_client", fake_client)  # the unwrap lives there
    process_sqs_batch(sqs_event, Recorder())
    assert created == []  # no claim check, no client
    sqs_event["Records"][1]["body"] = json.dumps({"claimCheck": {"bucket": "b", "key": "k"}})
    handler = Recorder()
    assert process_sqs_batch(sqs_event, handler) == {"batchItemFailures": []}
    assert created == ["s3"] and handler.seen == ["111", "222", "333"]


def test_sns_envelope_without_raw_delivery_is_opened(sample_event: dict[str, Any]) -> None:
    raw = sample_event["Records"][2]
    envelope = {
        "Type": "Notification",
        "MessageId": "sns-1",
        "TopicArn": TOPIC,
        "Message": raw_body(raw),
        "MessageAttributes": {"eventName": {"Type": "String", "Value": "REMOVE"}},
    }
    handler = Recorder()
    event = {"Records": [sqs_message("m1", json.dumps(envelope))]}
    assert process_sqs_batch(event, handler) == {"batchItemFailures": []}
    assert handler.records[0].raw == raw


# --- every delivery: raw / SNS envelope x inline / claim check, standard and FIFO ---------
# The router publishes to SNS; SNS delivers to SQS with or without raw message delivery
# (without it, the body is SNS's JSON envelope whose "Message" is what was published);
# a record over SNS's 256 KiB travels as a claim-check pointer to S3. The processor must
# open the envelope first, then the pointer, in all of these (moto: SNS, SQS, S3).

REGION = "us-east-1"
CLAIM_BUCKET = "claim-checks"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with moto.mock_aws():
        yield


def deliver(
    raws: list[dict[str, Any]], *, raw_delivery: bool, fifo: bool
) -> tuple[dict[str, Any], Any]:
    """Route ``raws`` through SNS to an SQS queue; the Lambda SQS event and the S3 client."""
    sns, sqs, s3 = (boto3.client(n, region_name=REGION) for n in ("sns", "sqs", "s3"))
    s3.create_bucket(Bucket=CLAIM_BUCKET)
    suffix = ".fifo" if fifo else ""
    topic = sns.create_topic(
        Name=f"orders{suffix}", Attributes={"FifoTopic": "true"} if fifo else {}
    )["TopicArn"]
    queue = sqs.create_queue(
        QueueName=f"orders-processor{suffix}", Attributes={"FifoQueue": "true"} if fifo else {}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true" if raw_delivery else "false"},
    )
    router = Router(
        RouterConfig(topic, ("Message",), claim_check_bucket=CLAIM_BUCKET, fifo=fifo),
        sns_client=sns,
        s3_client_factory=lambda: s3,
    )
    assert router.route({"Records": copy.deepcopy(raws)}) == {"batchItemFailures": []}
    received = sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", [])
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in received
        ]
    }
    return event, s3


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
@pytest.mark.parametrize("claim_checked", [False, True], ids=["inline", "claim-checked"])
@pytest.mark.parametrize("raw_delivery", [True, False], ids=["raw", "sns-envelope"])
def test_every_delivery_shape_gives_back_the_record(
    aws: None, sample_event: dict[str, Any], raw_delivery: bool, claim_checked: bool, fifo: bool
) -> None:
    raw = copy.deepcopy(sample_event["Records"][1])
    if claim_checked:
        raw["dynamodb"]["NewImage"]["blob"] = {"S": "x" * 300_000}  # over SNS's 256 KiB
    event, s3 = deliver([raw], raw_delivery=raw_delivery, fifo=fifo)

    # The shape under test is what arrived: one message, wrapped (or not) as asked ...
    [message] = event["Records"]
    body = json.loads(message["body"])
    published = json.loads(body["Message"]) if not raw_delivery else body
    assert (body.get("Type") == "Notification") is not raw_delivery
    assert ("claimCheck" in published) is claim_checked
    stored = s3.list_objects_v2(Bucket=CLAIM_BUCKET).get("Contents", [])
    assert len(stored) == (1 if claim_checked else 0)
    assert ("MessageGroupId" in message["attributes"]) is fifo

    # ... and the processor hands the record itself to the handler, whatever the shape.
    handler = Recorder()
    assert process_sqs_batch(event, handler, s3_client=s3) == {"batchItemFailures": []}
    [record] = handler.records
    assert record.raw == raw
    assert record.new_image == StreamRecord.from_lambda(raw).new_image


@pytest.mark.parametrize("raw_delivery", [True, False], ids=["raw", "sns-envelope"])
def test_fifo_group_of_inline_and_claim_checked_records_keeps_its_order(
    aws: None, sample_event: dict[str, Any], raw_delivery: bool
) -> None:
    raws = []
    for number, big in enumerate([False, True, False, True], start=1):
        raw = copy.deepcopy(sample_event["Records"][1])  # one item: one message group
        raw["eventID"] = f"e{number}"
        raw["dynamodb"]["SequenceNumber"] = str(number)
        if big:
            raw["dynamodb"]["NewImage"]["blob"] = {"S": "x" * 300_000}
        raws.append(raw)
    event, s3 = deliver(raws, raw_delivery=raw_delivery, fifo=True)
    assert len(event["Records"]) == 4
    assert len({m["attributes"]["MessageGroupId"] for m in event["Records"]}) == 1
    handler = Recorder(fail_on={"2"})  # a claim-checked record fails: the group stops there
    response = process_sqs_batch(event, handler, s3_client=s3)
    ids = [m["messageId"] for m in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in ids[1:]]}
    assert handler.seen == ["1", "2"]
    assert [r.raw for r in handler.records] == raws[:2]


# --- FIFO -------------------------------------------------------------------------------


def group_event(sample_event: dict[str, Any], arn: str) -> dict[str, Any]:
    """Five messages, groups A B A B A, sequence numbers 1..5."""
    template = sample_event["Records"][1]
    records = []
    for i, group in enumerate("ABABA", start=1):
        raw = json.loads(json.dumps(template))
        raw["dynamodb"]["SequenceNumber"] = str(i)
        records.append(sqs_message(f"m{i}", raw_body(raw), group=group, arn=arn))
    return {"Records": records}


def test_fifo_failure_stops_the_batch_and_reports_every_later_message(
    sample_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # The Lambda developer guide (services-sqs-errorhandling): with a FIFO queue "your
    # function should stop processing messages after the first failure and return all
    # failed and unprocessed messages in batchItemFailures".
    handler = Recorder(fail_on={"2"})
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        response = process_sqs_batch(group_event(sample_event, FIFO_QUEUE_ARN), handler)
    assert handler.seen == ["1", "2"]  # nothing after the failure ran, other groups included
    assert response == {"batchItemFailures": [{"itemIdentifier": m} for m in ("m2", "m3", "m4", "m5")]}
    assert "m2 failed; stopping (fifo)" in caplog.text


def test_fifo_malformed_message_also_stops_the_batch(sample_event: dict[str, Any]) -> None:
    event = group_event(sample_event, FIFO_QUEUE_ARN)
    event["Records"][1]["body"] = "not json"  # m2, group B
    handler = Recorder()
    response = process_sqs_batch(event, handler)
    assert handler.seen == ["1"]
    assert response == {"batchItemFailures": [{"itemIdentifier": m} for m in ("m2", "m3", "m4", "m5")]}


def test_standard_queue_ignores_groups(sample_event: dict[str, Any]) -> None:
    handler = Recorder(fail_on={"1"})
    response = process_sqs_batch(group_event(sample_event, QUEUE_ARN), handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert handler.seen == ["1", "2", "3", "4", "5"]


# --- shapes, decorator, end to end ---------------------------------------------------------


@pytest.mark.parametrize("event", [{"Records": []}, {}, {"Records": None}])
def test_empty_event_is_nothing_to_do(event: dict[str, Any]) -> None:
    handler = Recorder()
    assert process_sqs_batch(event, handler) == {"batchItemFailures": []}
    assert handler.seen == []


@pytest.mark.parametrize(
    ("event", "message"),
    [(None, "got NoneType"), ([], "got list"), ({"Records": {"a": 1}}, "'Records' is a list")],
)
def test_not_an_sqs_event_raises(event: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        process_sqs_batch(event, Recorder())


def test_base_exceptions_are_not_swallowed(sqs_event: dict[str, Any]) -> None:
    def handler(record: StreamRecord) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_sqs_batch(sqs_event, handler)


def test_decorator(sqs_event: dict[str, Any]) -> None:
    seen: list[str] = []

    @sqs_record_handler
    def my_processor(record: StreamRecord) -> None:
        """Doc of my processor."""
        seen.append(record.sequence_number)
        if record.event_name == "REMOVE":
            raise ValueError("no removes")

    assert my_processor.__name__ == "my_processor"
    assert my_processor.__doc__ == "Doc of my processor."
    assert my_processor(sqs_event, None) == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    assert seen == ["111", "222", "333"]


def test_decorator_passes_the_s3_client(sample_event: dict[str, Any]) -> None:
    s3 = FakeS3({("b", "k"): raw_body(sample_event["Records"][0]).encode()})
    handler = Recorder()
    lambda_handler = sqs_record_handler(handler, s3_client=s3)
    body = json.dumps({"claimCheck": {"bucket": "b", "key": "k"}, "sequenceNumber": "111"})
    assert lambda_handler({"Records": [sqs_message("m1", body)]}, None) == {"batchItemFailures": []}
    assert s3.gets == [("b", "k")] and handler.seen == ["111"]


def test_router_to_processor_round_trip(
    rich_event: dict[str, Any], sample_event: dict[str, Any], ttl_event: dict[str, Any]
) -> None:
    published: list[dict[str, Any]] = []

    class Sns:
        def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[Any]) -> Any:  # noqa: N803
            published.extend(PublishBatchRequestEntries)
            return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries]}

    raws = [*sample_event["Records"], *rich_event["Records"], *ttl_event["Records"]]
    Router(RouterConfig(TOPIC, ("status",)), sns_client=Sns()).route({"Records": raws})
    event = {"Records": [sqs_message(f"m{i}", e["Message"]) for i, e in enumerate(published)]}
    handler = Recorder()
    assert process_sqs_batch(event, handler) == {"batchItemFailures": []}
    for record, raw in zip(handler.records, raws, strict=True):
        expected = StreamRecord.from_lambda(raw)
        assert record.raw == raw
        assert (record.new_image, record.old_image, record.is_ttl_expiry) == (
            expected.new_image,
            expected.old_image,
            expected.is_ttl_expiry,
        )


def test_docstring_examples_run() -> None:
    result = doctest.testmod(processor_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_one_debug_summary_per_batch(
    sample_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        process_sqs_batch(group_event(sample_event, FIFO_QUEUE_ARN), Recorder(fail_on={"2"}))
    summaries = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert summaries == ["sqs batch: 1 of 5 messages processed, 1 failed, 3 skipped"]


def test_sys_exit_in_a_record_handler_fails_that_message_only(
    sqs_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def exits_on_222(record: StreamRecord) -> None:
        seen.append(record.sequence_number)
        if record.sequence_number == "222":
            raise SystemExit(3)  # what sys.exit(3) raises

    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = process_sqs_batch(sqs_event, exits_on_222)
    assert seen == ["111", "222", "333"]  # the messages after it are still processed
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert any("SystemExit" in r.getMessage() for r in caplog.records)


def test_keyboard_interrupt_is_never_swallowed(sqs_event: dict[str, Any]) -> None:
    def interrupted(record: StreamRecord) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_sqs_batch(sqs_event, interrupted)
