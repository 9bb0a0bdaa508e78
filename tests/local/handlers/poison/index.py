"""Fault-injection handler: records a side effect per order, fails on poison ones.

Each side effect is an ADD of 1 to the order's ``seen`` counter in EFFECTS_TABLE, so a
duplicated side effect shows as ``seen == 2``.
"""

import os

import boto3

from ddb_stream_runtime import StreamRecord, stream_handler

_table = None


def effect(record: StreamRecord) -> None:
    global _table
    if (record.new_image or {}).get("poison"):
        raise ValueError(f"poison record {record.keys}")
    if _table is None:
        _table = boto3.resource("dynamodb").Table(os.environ["EFFECTS_TABLE"])
    _table.update_item(
        Key={"orderId": record.keys["orderId"]},
        UpdateExpression="ADD seen :one",
        ExpressionAttributeValues={":one": 1},
    )


handler = stream_handler(effect)
