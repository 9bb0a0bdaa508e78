"""How much does reading both images of a stream batch cost on top of ``json.loads``?

Builds a 1,000-record MODIFY batch with NEW_AND_OLD_IMAGES (~1.9 MB of JSON,
~15 attributes per item: strings, integers, decimals, a nested map, a list of
maps, a string set, a number set, a boolean, a null), then times in one run,
best of ``--repeat`` rounds:

* ``json.loads`` of the event: the floor every Python stream Lambda pays;
* + boto3's ``TypeDeserializer`` on both images of every record;
* + ``ddb_stream_runtime.deserialize_image`` on both images;
* + ``ddb_stream_runtime.StreamRecord`` reading ``new_image`` and ``old_image``;
* + Powertools' ``DynamoDBStreamEvent`` reading both images (if installed).

Run: ``python benchmarks/bench_deserialize.py [--records 1000] [--repeat 15]``.
Prints ms per batch and the ratio to the floor; asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda_src"))

from ddb_stream_runtime import StreamRecord, deserialize_image  # noqa: E402

ARN = "arn:aws:dynamodb:us-east-2:123456789012:table/orders/stream/2024-06-10T19:26:16.525"


def make_item(i: int, version: int) -> dict[str, Any]:
    """One order item in DynamoDB JSON (~15 top-level attributes)."""
    lines = [
        {
            "M": {
                "sku": {"S": f"SKU-{(i * 7 + n) % 5000:05d}"},
                "qty": {"N": str(1 + (i + n) % 4)},
                "unit_price": {"N": f"{(i * 13 + n * 101) % 20000 / 100:.2f}"},
            }
        }
        for n in range(2)
    ]
    return {
        "pk": {"S": f"ORDER#{i:08d}"},
        "sk": {"S": "DETAILS"},
        "customer_id": {"S": f"CUSTOMER#{(i * 31) % 100000:06d}"},
        "status": {"S": "SHIPPED" if version else "PACKED"},
        "version": {"N": str(version + 1)},
        "created_at": {"N": str(1718049976 + i)},
        "updated_at": {"N": str(1718049976 + i + 60 * version)},
        "total": {"N": f"{(i * 1337) % 100000 / 100:.2f}"},
        "discount_rate": {"N": "0.15"},
        "is_gift": {"BOOL": i % 3 == 0},
        "gift_message": {"NULL": True},
        "tags": {"SS": ["priority", "fragile", f"region-{i % 12}"]},
        "warehouse_ids": {"NS": [str(100 + i % 7), str(200 + i % 5)]},
        "shipping_address": {
            "M": {
                "street": {"S": f"{i % 900 + 1} Main Street"},
                "city": {"S": "Springfield"},
                "postcode": {"S": f"{10000 + i % 89999}"},
                "country": {"S": "US"},
                "geo": {"M": {"lat": {"N": "39.7817"}, "lon": {"N": "-89.6501"}}},
            }
        },
        "lines": {"L": lines},
    }


def make_event(records: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventID": f"{i:032x}",
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-2",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1718049976 + i,
                    "Keys": {"pk": {"S": f"ORDER#{i:08d}"}, "sk": {"S": "DETAILS"}},
                    "NewImage": make_item(i, 1),
                    "OldImage": make_item(i, 0),
                    "SequenceNumber": str(4421584500000000017450439091 + i),
                    "SizeBytes": 1700,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": ARN,
            }
            for i in range(records)
        ]
    }


def floor(payload: str) -> None:
    json.loads(payload)


def with_boto3(payload: str) -> None:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    for record in json.loads(payload)["Records"]:
        dynamodb = record["dynamodb"]
        {k: deserializer.deserialize(v) for k, v in dynamodb["NewImage"].items()}
        {k: deserializer.deserialize(v) for k, v in dynamodb["OldImage"].items()}


def with_ours(payload: str) -> None:
    for record in json.loads(payload)["Records"]:
        dynamodb = record["dynamodb"]
        deserialize_image(dynamodb["NewImage"])
        deserialize_image(dynamodb["OldImage"])


def with_stream_record(payload: str) -> None:
    for raw in json.loads(payload)["Records"]:
        record = StreamRecord.from_lambda(raw)
        record.new_image  # noqa: B018
        record.old_image  # noqa: B018


def with_powertools(payload: str) -> None:
    from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

    for record in DynamoDBStreamEvent(json.loads(payload)).records:
        record.dynamodb.new_image  # noqa: B018
        record.dynamodb.old_image  # noqa: B018


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _check_same_result(image: dict[str, Any]) -> None:
    # Timing different results would be meaningless (int == Decimal compares by value).
    if not _importable("boto3.dynamodb.types"):
        return
    from boto3.dynamodb.types import TypeDeserializer

    theirs = {k: TypeDeserializer().deserialize(v) for k, v in image.items()}
    if deserialize_image(image) != theirs:
        raise SystemExit("ddb_stream_runtime and boto3 disagree on the benchmark item")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    payload = json.dumps(make_event(args.records), separators=(",", ":"))  # as Lambda sends it
    _check_same_result(json.loads(payload)["Records"][0]["dynamodb"]["NewImage"])

    cases: list[tuple[str, Callable[[str], None] | None]] = [
        ("json.loads (floor)", floor),
        (
            "+ boto3 TypeDeserializer",
            with_boto3 if _importable("boto3.dynamodb.types") else None,
        ),
        ("+ ddb_stream_runtime.deserialize_image", with_ours),
        ("+ ddb_stream_runtime.StreamRecord", with_stream_record),
        (
            "+ Powertools DynamoDBStreamEvent",
            with_powertools if _importable("aws_lambda_powertools") else None,
        ),
    ]

    print(
        f"{args.records} MODIFY records, NEW_AND_OLD_IMAGES, {len(payload) / 1e6:.2f} MB JSON; "
        f"best of {args.repeat}; Python {sys.version.split()[0]}"
    )
    print(f"{'case':<42} {'ms/batch':>9} {'x floor':>8}")
    base = None
    for name, fn in cases:
        if fn is None:
            print(f"{name:<42} {'skipped (not installed)':>18}")
            continue
        fn(payload)  # warm up: imports and caches are not what we measure
        best = min(timeit.repeat(functools.partial(fn, payload), number=1, repeat=args.repeat))
        base = base or best
        print(f"{name:<42} {best * 1000:>9.1f} {best / base:>8.2f}")


if __name__ == "__main__":
    main()
