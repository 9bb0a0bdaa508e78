"""The complex controller example's processors, fed real-shaped SQS events (raw delivery)."""

from __future__ import annotations

import json

import pytest

from tests.support import REPO

from .conftest import load_module

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Customers/stream/2026-01-01T00:00:00.000"


def _stream_record(seq: str, event_name: str, old: dict | None, new: dict | None, ttl=False) -> dict:
    record = {
        "eventID": f"e{seq}", "eventName": event_name, "eventSource": "aws:dynamodb",
        "eventSourceARN": ARN, "awsRegion": "us-east-1",
        "dynamodb": {"Keys": {"customerId": {"S": "c1"}}, "SequenceNumber": seq,
                     "SizeBytes": 50, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    if old is not None:
        record["dynamodb"]["OldImage"] = old
    if new is not None:
        record["dynamodb"]["NewImage"] = new
    if ttl:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def _sqs_event(*bodies: str) -> dict:
    return {"Records": [
        {"messageId": f"m{i}", "receiptHandle": "h", "body": body, "attributes": {},
         "messageAttributes": {}, "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue"}
        for i, body in enumerate(bodies)
    ]}


@pytest.fixture(scope="module")
def handlers():
    return load_module(REPO / "examples" / "handlers" / "customer_events" / "index.py", "customer_events")


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_welcome_reads_the_new_item(handlers, capsys):
    body = json.dumps(_stream_record("1", "INSERT", None, {"customerId": {"S": "c1"}, "name": {"S": "Ada"}}))
    assert handlers.welcome_handler(_sqs_event(body), None) == {"batchItemFailures": []}
    assert _lines(capsys) == [{"action": "welcome", "keys": {"customerId": "c1"}, "name": "Ada"}]


def test_notifier_logs_only_real_changes(handlers, capsys):
    same = _stream_record("1", "MODIFY", {"status": {"S": "gold"}}, {"status": {"S": "gold"}})
    changed = _stream_record("2", "MODIFY", {"status": {"S": "gold"}}, {"status": {"S": "platinum"}})
    event = _sqs_event(json.dumps(same), json.dumps(changed))
    assert handlers.notify_handler(event, None) == {"batchItemFailures": []}
    assert _lines(capsys) == [{"action": "status-changed", "keys": {"customerId": "c1"},
                               "old": "gold", "new": "platinum"}]


def test_audit_marks_ttl_deletes_and_fails_only_a_bad_message(handlers, capsys):
    ttl = _stream_record("3", "REMOVE", {"customerId": {"S": "c1"}, "visits": {"N": "7"}}, None, ttl=True)
    event = _sqs_event(json.dumps(ttl), "{not json")
    assert handlers.audit_handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert _lines(capsys) == [{"action": "deleted", "keys": {"customerId": "c1"}, "ttl": True,
                               "item": {"customerId": "c1", "visits": 7}}]
