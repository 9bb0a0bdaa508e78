"""Test helpers: deliver DynamoDB stream records as the SQS fan-out and Kinesis would.

* :func:`as_sqs` wraps stream records the way the router publishes them (the record
  itself as the SNS message), raw or in an SNS envelope, standard or FIFO queue,
  shaped like the Lambda developer guide's SQS event.
* :func:`to_kinesis_change` rewrites a stream record into the record DynamoDB writes
  to a Kinesis data stream (no ``SequenceNumber``, ``tableName``, ``recordFormat``,
  ``ApproximateCreationDateTime`` in epoch milliseconds or microseconds), and
  :func:`as_kinesis` wraps such records in a Lambda Kinesis event (base64 ``data``).
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

REGION = "us-east-2"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:orders-consumer"
FIFO_QUEUE_ARN = QUEUE_ARN + ".fifo"
TOPIC_ARN = f"arn:aws:sns:{REGION}:123456789012:orders-fanout"
KINESIS_ARN = f"arn:aws:kinesis:{REGION}:123456789012:stream/orders-changes"

_message_ids = itertools.count(1)
_kinesis_sequence = itertools.count(49590338271490256608559692538361571095921575989136588898)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def sns_envelope(record: dict[str, Any]) -> dict[str, Any]:
    """The SNS notification an SQS subscription without raw delivery receives."""
    return {
        "Type": "Notification",
        "MessageId": f"95df01b4-ee98-5cb9-9903-{next(_message_ids):012d}",
        "TopicArn": TOPIC_ARN,
        "Message": compact(record),
        "Timestamp": "2024-06-10T20:06:17.183Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0.pem",
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {"eventName": {"Type": "String", "Value": record["eventName"]}},
    }


def sqs_message(
    record: dict[str, Any],
    *,
    message_id: str | None = None,
    envelope: bool = False,
    fifo: bool = False,
    receive_count: int = 1,
) -> dict[str, Any]:
    """One SQS message carrying a stream record, as Lambda delivers it."""
    number = next(_message_ids)
    attributes = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": "1718049977183",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1718049977185",
    }
    if fifo:
        keys = record.get("dynamodb", {}).get("Keys", {})
        attributes.update(
            {
                "SequenceNumber": f"18627739064{number:014d}",
                "MessageGroupId": compact(keys)[:128],
                "MessageDeduplicationId": str(record.get("eventID")),
            }
        )
    return {
        "messageId": message_id or f"059f36b4-87a3-44ab-83d2-{number:012d}",
        "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{number}",
        "body": compact(sns_envelope(record) if envelope else record),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "098f6bcd4621d373cade4e832627b4f6",
        "eventSource": "aws:sqs",
        "eventSourceARN": FIFO_QUEUE_ARN if fifo else QUEUE_ARN,
        "awsRegion": REGION,
    }


def as_sqs(records: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """An SQS event, one message per stream record (new message ids)."""
    return {"Records": [sqs_message(r, **options) for r in records]}


def to_kinesis_change(
    record: dict[str, Any],
    *,
    micros: int | None = None,
    event_id: str | None = None,
    table_name: str = "tasks",
) -> dict[str, Any]:
    """The record DynamoDB writes to Kinesis for the change a stream record describes.

    The stream's ``ApproximateCreationDateTime`` (seconds) becomes epoch milliseconds,
    or ``micros`` (with ``ApproximateCreationDateTimePrecision`` ``MICROSECOND``).
    """
    source = record["dynamodb"]
    dynamodb: dict[str, Any] = {}
    if micros is not None:
        dynamodb["ApproximateCreationDateTime"] = micros
    elif "ApproximateCreationDateTime" in source:
        dynamodb["ApproximateCreationDateTime"] = round(
            source["ApproximateCreationDateTime"] * 1000
        )
    for name in ("Keys", "NewImage", "OldImage", "SizeBytes"):
        if name in source:
            dynamodb[name] = source[name]
    if micros is not None:
        dynamodb["ApproximateCreationDateTimePrecision"] = "MICROSECOND"
    return {
        "awsRegion": record.get("awsRegion", REGION),
        "eventID": event_id or record.get("eventID"),
        "eventName": record["eventName"],
        "userIdentity": record.get("userIdentity"),
        "recordFormat": "application/json",
        "tableName": table_name,
        "dynamodb": dynamodb,
        "eventSource": "aws:dynamodb",
    }


def kinesis_record(
    change: dict[str, Any],
    *,
    shard: str = "shardId-000000000006",
    partition_key: str | None = None,
    sequence_number: str | None = None,
) -> dict[str, Any]:
    """One record of a Lambda Kinesis event whose ``data`` is ``change``, base64."""
    seq = sequence_number or str(next(_kinesis_sequence))
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key or compact(change["dynamodb"].get("Keys"))[:256],
            "sequenceNumber": seq,
            "data": base64.b64encode(compact(change).encode()).decode(),
            "approximateArrivalTimestamp": 1718049977.187,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": REGION,
        "eventSourceARN": KINESIS_ARN,
    }


def as_kinesis(changes: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {"Records": [kinesis_record(c, **options) for c in changes]}
