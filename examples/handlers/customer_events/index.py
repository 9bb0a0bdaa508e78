"""Processors of the complex controller example, one handler each, fed by SQS.

Each receives the untouched stream record (``StreamRecord``), whatever queue it
came through, and logs a structured line: replace the bodies with real work (an
email, a webhook, a write to an audit store).
"""

from __future__ import annotations

import json

from ddb_stream_runtime import StreamRecord, sqs_record_handler


def _log(action: str, record: StreamRecord, **fields: object) -> None:
    print(json.dumps({"action": action, "keys": record.keys, **fields}, default=str))


def welcome(record: StreamRecord) -> None:
    """INSERT: greet the new customer."""
    _log("welcome", record, name=(record.new_image or {}).get("name"))


def notify_status(record: StreamRecord) -> None:
    """MODIFY with a status (5 minutes later, at most 2 at a time): tell the customer."""
    old = (record.old_image or {}).get("status")
    new = (record.new_image or {}).get("status")
    if old != new:
        _log("status-changed", record, old=old, new=new)


def audit(record: StreamRecord) -> None:
    """REMOVE: keep what was deleted, and whether TTL deleted it."""
    _log("deleted", record, ttl=record.is_ttl_expiry, item=record.old_image)


welcome_handler = sqs_record_handler(welcome)
notify_handler = sqs_record_handler(notify_status)
audit_handler = sqs_record_handler(audit)
