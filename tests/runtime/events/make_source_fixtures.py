"""Writes the SQS and Kinesis fixtures from the stream fixtures (run once; kept for review)."""

import base64
import json
from pathlib import Path

EV = Path("tests/runtime/events")
dg = json.loads((EV / "lambda_dg_sample.json").read_text())
ttl = json.loads((EV / "ttl_expiry.json").read_text())
REGION = "us-east-2"
QUEUE = f"arn:aws:sqs:{REGION}:123456789012:orders-archiver"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:orders-fanout"


def compact(o):
    return json.dumps(o, separators=(",", ":"))


def sqs_message(i, body, arn=QUEUE, group=None):
    attrs = {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": str(1718049977183 + i),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str(1718049977185 + i),
    }
    if group is not None:
        attrs.update(
            {
                "SequenceNumber": f"1862773906400000000{i:02d}",
                "MessageGroupId": group,
                "MessageDeduplicationId": f"dedup-{i}",
            }
        )
    return {
        "messageId": f"059f36b4-87a3-44ab-83d2-66197583{i:04d}",
        "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{i}",
        "body": body,
        "attributes": attrs,
        "messageAttributes": {},
        "md5OfBody": "098f6bcd4621d373cade4e832627b4f6",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": REGION,
    }


def envelope(i, record):
    return {
        "Type": "Notification",
        "MessageId": f"95df01b4-ee98-5cb9-9903-4c221d41{i:04d}",
        "TopicArn": TOPIC,
        "Message": compact(record),
        "Timestamp": "2024-06-10T20:06:17.183Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
        "SigningCertURL": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC}:2bcfbf39",
        "MessageAttributes": {
            "eventName": {"Type": "String", "Value": record["eventName"]},
            "tableName": {"Type": "String", "Value": "my-table"},
        },
    }


records = dg["Records"]
(EV / "sqs_raw_delivery.json").write_text(
    json.dumps({"Records": [sqs_message(i, compact(r)) for i, r in enumerate(records)]}, indent=2)
    + "\n"
)
(EV / "sqs_sns_envelope.json").write_text(
    json.dumps(
        {"Records": [sqs_message(i, compact(envelope(i, r))) for i, r in enumerate(records)]},
        indent=2,
    )
    + "\n"
)
big = records[1]
pointer = {
    "claimCheck": {
        "bucket": "orders-claim-checks",
        "key": f"claim-check/my-table/{big['dynamodb']['SequenceNumber']}.json",
    },
    "eventName": big["eventName"],
    "keys": big["dynamodb"]["Keys"],
    "sequenceNumber": big["dynamodb"]["SequenceNumber"],
}
(EV / "sqs_claim_check.json").write_text(
    json.dumps({"Records": [sqs_message(0, compact(pointer))]}, indent=2) + "\n"
)

# Kinesis: the DynamoDB-to-Kinesis record format (no SequenceNumber, tableName,
# recordFormat, ApproximateCreationDateTime in epoch milliseconds), base64 in kinesis.data.
KSTREAM = f"arn:aws:kinesis:{REGION}:123456789012:stream/my-table-changes"


def change(r, micros=None, ms=None, ttl_removal=False):
    d = {
        k: v for k, v in r["dynamodb"].items() if k in ("Keys", "NewImage", "OldImage", "SizeBytes")
    }
    if micros is not None:
        d = {
            "ApproximateCreationDateTime": micros,
            **d,
            "ApproximateCreationDateTimePrecision": "MICROSECOND",
        }
    else:
        d = {"ApproximateCreationDateTime": ms, **d}
    return {
        "awsRegion": REGION,
        "eventID": f"{r['eventID']}e0b4d8c-3c7a-4f86-9a2c-2b5e6f0a1c{int(r['dynamodb']['SequenceNumber'][-1]):02d}",
        "eventName": r["eventName"],
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        if ttl_removal
        else None,
        "recordFormat": "application/json",
        "tableName": "my-table",
        "dynamodb": d,
        "eventSource": "aws:dynamodb",
    }


def kinesis_record(i, data, shard="shardId-000000000006", pk="DF3A0E2A4B9C4B8E8F3C6D9A0B1C2D3E"):
    seq = str(49590338271490256608559692538361571095921575989136588898 + i * 1000)
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": pk,
            "sequenceNumber": seq,
            "data": base64.b64encode(compact(data).encode()).decode(),
            "approximateArrivalTimestamp": 1718049977.187 + i / 1000,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": REGION,
        "eventSourceARN": KSTREAM,
    }


ms = [1718049976512, 1718049976713, 1718049977020]
k_records = [kinesis_record(i, change(r, ms=ms[i])) for i, r in enumerate(records)]
(EV / "kinesis_dynamodb.json").write_text(json.dumps({"Records": k_records}, indent=2) + "\n")
# A TTL removal at MICROSECOND precision (the table's Kinesis destination can set it).
t = ttl["Records"][0]
tchange = change(t, micros=1718049976512345, ttl_removal=True)
tchange["eventID"] = "a4f1b2c3-9d8e-4f70-8a6b-5c4d3e2f1a0b"
tchange["tableName"] = "sessions"
(EV / "kinesis_ttl_microsecond.json").write_text(
    json.dumps(
        {"Records": [kinesis_record(0, tchange, pk="8F14E45FCEEA167A5A36DEDD4BEA2543")]}, indent=2
    )
    + "\n"
)
