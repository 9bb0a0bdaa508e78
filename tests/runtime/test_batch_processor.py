"""process_stream_batch / stream_handler: Lambda's ReportBatchItemFailures semantics for streams."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import pytest

from ddb_stream_runtime import StreamRecord, process_stream_batch, stream_handler

LOGGER_NAME = "ddb_stream_runtime.batch"


class Recorder:
    """A record handler that remembers what it saw and fails on chosen sequence numbers."""

    def __init__(self, fail_on: set[str] | None = None, read_images: bool = False) -> None:
        self.fail_on = fail_on or set()
        self.read_images = read_images
        self.seen: list[str] = []

    def __call__(self, record: StreamRecord) -> None:
        assert isinstance(record, StreamRecord)
        if self.read_images:
            _ = (record.new_image, record.old_image)
        self.seen.append(record.sequence_number)
        if record.sequence_number in self.fail_on:
            raise RuntimeError(f"downstream said no to {record.sequence_number}")


def test_all_records_succeed(sample_event: dict[str, Any]) -> None:
    handler = Recorder(read_images=True)
    response = process_stream_batch(sample_event, handler)
    assert response == {"batchItemFailures": []}
    assert handler.seen == ["111", "222", "333"]  # in order, each once


def test_failure_in_the_middle_stops_the_batch(
    sample_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    handler = Recorder(fail_on={"222"}, read_images=True)
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = process_stream_batch(sample_event, handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": "222"}]}
    assert handler.seen == ["111", "222"]  # 333 never handled: Lambda re-sends it
    [log] = [r for r in caplog.records if r.levelno == logging.ERROR]
    text = log.getMessage()
    for expected in ("222", "RuntimeError", "downstream said no to 222", "event id 2"):
        assert expected in text
    assert "This item has changed" not in text  # metadata, never the item
    assert log.exc_info is not None and log.exc_info[0] is RuntimeError
    structured = {k: getattr(log, k) for k in ("sequence_number", "event_id", "error_type")}
    assert structured == {"sequence_number": "222", "event_id": "2", "error_type": "RuntimeError"}


@pytest.mark.parametrize(("failing", "seen"), [("111", ["111"]), ("333", ["111", "222", "333"])])
def test_first_or_last_record_fails(
    sample_event: dict[str, Any], failing: str, seen: list[str]
) -> None:
    handler = Recorder(fail_on={failing})
    response = process_stream_batch(sample_event, handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": failing}]}
    assert handler.seen == seen


def test_only_the_first_failure_is_reported(sample_event: dict[str, Any]) -> None:
    handler = Recorder(fail_on={"222", "333"})
    response = process_stream_batch(sample_event, handler)
    assert response["batchItemFailures"] == [{"itemIdentifier": "222"}]


@pytest.mark.parametrize(
    "break_record",
    [
        lambda r: r.update(eventName="UPSERT"),  # unknown event name
        lambda r: r.pop("eventName"),
        lambda r: r["dynamodb"]["NewImage"].update(Id={"N": "not-a-number"}),  # bad DynamoDB JSON
        lambda r: r["dynamodb"]["NewImage"].update(Tag={"ZZ": "?"}),
    ],
)
def test_malformed_record_fails_only_that_record(
    make_record: Any, break_record: Any, caplog: pytest.LogCaptureFixture
) -> None:
    raws = [make_record(seq) for seq in ("100", "200", "300")]
    break_record(raws[1])
    handled: Counter[str] = Counter()

    def handler(record: StreamRecord) -> None:
        _ = record.new_image  # reading the bad image is what fails
        handled[record.sequence_number] += 1

    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = process_stream_batch({"Records": raws}, handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": "200"}]}
    assert handled == Counter({"100": 1})  # before it: exactly once; after it: not at all
    assert "200" in caplog.text


@pytest.mark.parametrize(
    "break_record",
    [
        lambda r: r.pop("dynamodb"),
        lambda r: r["dynamodb"].pop("SequenceNumber"),
        lambda r: r["dynamodb"].update(SequenceNumber=""),
    ],
)
def test_record_without_sequence_number_fails_whole_batch(
    make_record: Any, break_record: Any, caplog: pytest.LogCaptureFixture
) -> None:
    raws = [make_record(seq) for seq in ("100", "200", "300")]
    break_record(raws[1])
    handler = Recorder()
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = process_stream_batch({"Records": raws}, handler)
    # An empty identifier is Lambda's "whole batch failed": nothing is skipped.
    assert response == {"batchItemFailures": [{"itemIdentifier": ""}]}
    assert handler.seen == ["100"]
    assert "whole batch" in caplog.text
    assert "1 earlier records will be delivered again" in caplog.text


def test_non_object_record_fails_whole_batch(make_record: Any) -> None:
    handler = Recorder()
    response = process_stream_batch({"Records": ["garbage", make_record("200")]}, handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": ""}]}
    assert handler.seen == []


@pytest.mark.parametrize("event", [{"Records": []}, {}, {"Records": None}])
def test_empty_event_is_nothing_to_do(event: dict[str, Any]) -> None:
    handler = Recorder()
    assert process_stream_batch(event, handler) == {"batchItemFailures": []}
    assert handler.seen == []


@pytest.mark.parametrize(
    ("event", "message"),
    [(None, "got NoneType"), ([], "got list"), ({"Records": {"a": 1}}, "'Records' is a list")],
)
def test_not_a_stream_event_raises(event: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        process_stream_batch(event, Recorder())


def test_base_exceptions_are_not_swallowed(sample_event: dict[str, Any]) -> None:
    def handler(record: StreamRecord) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_stream_batch(sample_event, handler)


def test_handler_return_value_is_ignored(sample_event: dict[str, Any]) -> None:
    response = process_stream_batch(sample_event, lambda record: False)
    assert response == {"batchItemFailures": []}


def test_response_is_json(sample_event: dict[str, Any]) -> None:
    response = process_stream_batch(sample_event, Recorder(fail_on={"333"}))
    assert json.loads(json.dumps(response)) == {"batchItemFailures": [{"itemIdentifier": "333"}]}


def test_one_debug_summary_per_batch(
    sample_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        process_stream_batch(sample_event, Recorder())
    assert [r.getMessage() for r in caplog.records] == [
        "stream batch: 3 of 3 records processed, 0 failed"
    ]
    assert caplog.records[0].levelno == logging.DEBUG


def test_custom_logger(sample_event: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    mine = logging.getLogger("my.service")
    with caplog.at_level(logging.DEBUG, logger="my.service"):
        process_stream_batch(sample_event, Recorder(fail_on={"111"}), logger=mine)
    assert {r.name for r in caplog.records} == {"my.service"}
    assert "stream batch: 0 of 3 records processed, 1 failed" in caplog.text


def test_ttl_event_end_to_end(ttl_event: dict[str, Any]) -> None:
    archived: list[dict[str, Any]] = []

    @stream_handler
    def archive(record: StreamRecord) -> None:
        if record.is_ttl_expiry and record.old_image is not None:
            archived.append(record.old_image)

    assert archive(ttl_event, None) == {"batchItemFailures": []}
    assert [item["pk"] for item in archived] == ["SESSION#8f14e45f"]


def test_stream_handler_decorator(sample_event: dict[str, Any]) -> None:
    seen: list[tuple[str, Any]] = []

    @stream_handler
    def on_change(record: StreamRecord) -> None:
        """Remember new images; refuse REMOVEs."""
        if record.event_name == "REMOVE":
            raise ValueError("no deletes here")
        seen.append((record.event_name, record.new_image))

    assert on_change.__name__ == "on_change"
    assert on_change.__doc__ == "Remember new images; refuse REMOVEs."
    response = on_change(sample_event, object())
    assert response == {"batchItemFailures": [{"itemIdentifier": "333"}]}
    assert seen == [
        ("INSERT", {"Message": "New item!", "Id": 101}),
        ("MODIFY", {"Message": "This item has changed", "Id": 101}),
    ]
    assert on_change({"Records": []}, None) == {"batchItemFailures": []}


def test_stream_handler_with_logger(
    sample_event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    handler = stream_handler(Recorder(fail_on={"222"}), logger=logging.getLogger("svc"))
    with caplog.at_level(logging.ERROR, logger="svc"):
        assert handler(sample_event, None) == {"batchItemFailures": [{"itemIdentifier": "222"}]}
    assert [r.name for r in caplog.records] == ["svc"]


def test_sys_exit_in_a_record_handler_fails_that_record_only(sample_event: dict[str, Any]) -> None:
    seen: list[str] = []

    def exits_on_222(record: StreamRecord) -> None:
        seen.append(record.sequence_number)
        if record.sequence_number == "222":
            raise SystemExit(3)  # what sys.exit(3) raises

    response = process_stream_batch(sample_event, exits_on_222)
    assert seen == ["111", "222"]  # handled up to the exit, which did not end the invocation
    assert response == {"batchItemFailures": [{"itemIdentifier": "222"}]}


def test_keyboard_interrupt_is_never_swallowed(sample_event: dict[str, Any]) -> None:
    def interrupted(record: StreamRecord) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_stream_batch(sample_event, interrupted)
