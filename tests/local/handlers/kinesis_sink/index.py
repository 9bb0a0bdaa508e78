"""A plain function on a Kinesis stream fed by a table: decodes each record's data (the
DynamoDB change record) and writes the item's latest change to SINK_TABLE, keeping the
newest by ApproximateCreationDateTime (Kinesis may deliver duplicates and, across
shards, out of order). A record whose NewImage has poison=true fails alone."""

import base64
import json
import os

import boto3

_DDB = boto3.client("dynamodb")


def handler(event, context):
    failures = []
    for record in event["Records"]:
        change = json.loads(base64.b64decode(record["kinesis"]["data"]))
        image = change["dynamodb"].get("NewImage") or {}
        if image.get("poison", {}).get("BOOL"):
            failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
            continue
        at = change["dynamodb"]["ApproximateCreationDateTime"]
        try:
            _DDB.put_item(
                TableName=os.environ["SINK_TABLE"],
                Item={"orderId": change["dynamodb"]["Keys"]["orderId"],
                      "event": {"S": change["eventName"]}, "at": {"N": str(at)}},
                ConditionExpression="attribute_not_exists(orderId) OR #at < :at",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":at": {"N": str(at)}},
            )
        except _DDB.exceptions.ConditionalCheckFailedException:
            pass  # a duplicate, or an older change arriving late
    return {"batchItemFailures": failures}
