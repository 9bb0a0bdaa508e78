"""The example's handler, run against real-shaped stream events."""

from __future__ import annotations

import json

import pytest

from tests.support import REPO

from .conftest import load_module


class FakeSns:
    def __init__(self, fail_on: str | None = None) -> None:
        self.published: list[dict] = []
        self.fail_on = fail_on

    def publish(self, **kwargs) -> dict:
        if self.fail_on and self.fail_on in kwargs["Message"]:
            raise RuntimeError("sns is down")
        self.published.append(kwargs)
        return {"MessageId": str(len(self.published))}


def _record(seq: str, old: str | None, new: str) -> dict:
    def image(status):
        item = {"orderId": {"S": f"order-{seq}"}}
        if status is not None:
            item["status"] = {"S": status}
        return item

    return {
        "eventID": f"id-{seq}",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-01-01T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": 1764000000,
            "Keys": {"orderId": {"S": f"order-{seq}"}},
            "NewImage": image(new),
            "OldImage": image(old),
            "SequenceNumber": seq,
            "SizeBytes": 40,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


@pytest.fixture
def notifier(monkeypatch):
    module = load_module(REPO / "examples" / "handlers" / "status_notifier" / "index.py", "status_notifier")
    monkeypatch.setenv("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:status")
    return module


def test_publishes_only_real_status_changes(notifier, monkeypatch):
    sns = FakeSns()
    monkeypatch.setattr(notifier, "_client", lambda: sns)
    event = {"Records": [_record("100", "new", "paid"), _record("200", "paid", "paid"),
                         _record("300", None, "new")]}
    assert notifier.handler(event, None) == {"batchItemFailures": []}
    messages = [json.loads(p["Message"]) for p in sns.published]
    assert messages == [
        {"keys": {"orderId": "order-100"}, "from": "new", "to": "paid"},
        {"keys": {"orderId": "order-300"}, "from": None, "to": "new"},
    ]
    assert {p["TopicArn"] for p in sns.published} == {"arn:aws:sns:us-east-1:123456789012:status"}


def test_publish_failure_reports_that_record_and_stops(notifier, monkeypatch):
    sns = FakeSns(fail_on="order-200")
    monkeypatch.setattr(notifier, "_client", lambda: sns)
    event = {"Records": [_record("100", "new", "paid"), _record("200", "new", "paid"),
                         _record("300", "new", "paid")]}
    assert notifier.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "200"}]}
    assert [json.loads(p["Message"])["keys"]["orderId"] for p in sns.published] == ["order-100"]
