"""Fixtures for the Lambda runtime tests: real-shaped stream events from events/*.json."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EVENTS_DIR = Path(__file__).parent / "events"


def _load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture
def load_event() -> Callable[[str], dict[str, Any]]:
    """Load ``events/<name>`` afresh (tests may mutate what they get)."""
    return _load


@pytest.fixture
def sample_event() -> dict[str, Any]:
    """The example event of the Lambda developer guide: INSERT, MODIFY, REMOVE of Id 101."""
    return _load("lambda_dg_sample.json")


@pytest.fixture
def ttl_event() -> dict[str, Any]:
    """One REMOVE made by DynamoDB's TTL process (userIdentity = the DynamoDB service)."""
    return _load("ttl_expiry.json")


@pytest.fixture
def rich_event() -> dict[str, Any]:
    """One MODIFY whose NewImage uses every type tag, nested maps and lists."""
    return _load("rich_modify.json")


@pytest.fixture
def rich_image(rich_event: dict[str, Any]) -> dict[str, Any]:
    return rich_event["Records"][0]["dynamodb"]["NewImage"]


@pytest.fixture
def make_record() -> Callable[..., dict[str, Any]]:
    """Build a Lambda-shaped stream record around one of the sample event's records."""
    template = _load("lambda_dg_sample.json")["Records"][1]

    def build(sequence_number: str, event_name: str = "MODIFY", **dynamodb: Any) -> dict[str, Any]:
        record = copy.deepcopy(template)
        record["eventID"] = f"id-{sequence_number}"
        record["eventName"] = event_name
        record["dynamodb"]["SequenceNumber"] = sequence_number
        record["dynamodb"].update(dynamodb)
        return record

    return build
