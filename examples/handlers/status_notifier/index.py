"""Notify an SNS topic when an order's status changes (the simple controller example).

The event source mapping already filters to MODIFY records that carry a status;
the handler skips modifications that left the status as it was.
"""

from __future__ import annotations

import json
import os

from ddb_stream_runtime import StreamRecord, stream_handler

_sns = None


def _client():
    # Created on first use: boto3 costs ~230 ms of cold start, and a batch of
    # unchanged statuses never needs it.
    global _sns
    if _sns is None:
        import boto3

        _sns = boto3.client("sns")
    return _sns


def notify(record: StreamRecord) -> None:
    old = (record.old_image or {}).get("status")
    new = (record.new_image or {}).get("status")
    if old == new:
        return
    _client().publish(
        TopicArn=os.environ["TOPIC_ARN"],
        Subject="order status changed",
        Message=json.dumps({"keys": record.keys, "from": old, "to": new}, default=str),
        MessageAttributes={"status": {"DataType": "String", "StringValue": str(new)}},
    )


handler = stream_handler(notify)
