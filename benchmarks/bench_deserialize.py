"""How much does reading both images of a stream batch cost on top of ``json.loads``?

Builds a 1,000-record MODIFY batch with NEW_AND_OLD_IMAGES (~1.9 MB of JSON,
~15 attributes per item: strings, integers, decimals, a nested map, a list of
maps, a string set, a number set, a boolean, a null), then times, in
interleaved rounds through ``_harness.py`` (GC off and on):

* ``json.loads`` of the event: the floor every Python stream Lambda pays;
* + boto3's ``TypeDeserializer`` on both images of every record;
* + ``ddb_stream_runtime.deserialize_image`` on both images;
* + ``ddb_stream_runtime.StreamRecord`` reading ``new_image`` and ``old_image``;
* + Powertools' ``DynamoDBStreamEvent`` reading both images (if installed);
* + code hand-written for these exact items, no dispatch and no checks: a lower bound
  for any DynamoDB-JSON walk that builds the same values (int, Decimal, sets, bytes).

Run: ``python benchmarks/bench_deserialize.py [--records 1000] [--repeat 15]``.
The same again on a "rich" event (binary, sets, nested maps and lists, ``-0``).
Prints ms per batch and the ratio to the floor; exits non-zero if ours and boto3 disagree.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import sys
from binascii import a2b_base64
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda_src"))

import _harness  # noqa: E402

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


def _hand_line(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "sku": m["sku"]["S"],
        "qty": int(m["qty"]["N"]),
        "unit_price": Decimal(m["unit_price"]["N"]),
    }


def _hand_orders(im: dict[str, Any]) -> dict[str, Any]:
    address = im["shipping_address"]["M"]
    geo = address["geo"]["M"]
    return {
        "pk": im["pk"]["S"],
        "sk": im["sk"]["S"],
        "customer_id": im["customer_id"]["S"],
        "status": im["status"]["S"],
        "version": int(im["version"]["N"]),
        "created_at": int(im["created_at"]["N"]),
        "updated_at": int(im["updated_at"]["N"]),
        "total": Decimal(im["total"]["N"]),
        "discount_rate": Decimal(im["discount_rate"]["N"]),
        "is_gift": im["is_gift"]["BOOL"],
        "gift_message": None,
        "tags": set(im["tags"]["SS"]),
        "warehouse_ids": set(map(int, im["warehouse_ids"]["NS"])),
        "shipping_address": {
            "street": address["street"]["S"],
            "city": address["city"]["S"],
            "postcode": address["postcode"]["S"],
            "country": address["country"]["S"],
            "geo": {"lat": Decimal(geo["lat"]["N"]), "lon": Decimal(geo["lon"]["N"])},
        },
        "lines": [_hand_line(av["M"]) for av in im["lines"]["L"]],
    }


def _hand_rich(im: dict[str, Any]) -> dict[str, Any]:
    config = im["config"]["M"]
    limits = config["limits"]["L"]
    owner = config["owner"]["M"]
    return {
        "pk": im["pk"]["S"],
        "version": int(im["version"]["N"]),
        "firmware": a2b_base64(im["firmware"]["B"]),
        "keys": set(map(a2b_base64, im["keys"]["BS"])),
        "labels": set(im["labels"]["SS"]),
        "ports": {int(x) if x.isdigit() else Decimal(x) for x in im["ports"]["NS"]},
        "online": im["online"]["BOOL"],
        "retired": None,
        "readings": [
            {"t": int(av["M"]["t"]["N"]), "v": Decimal(av["M"]["v"]["N"])}
            for av in im["readings"]["L"]
        ],
        "config": {
            "mode": config["mode"]["S"],
            "limits": [
                int(limits[0]["N"]),
                Decimal(limits[1]["N"]),
                [limits[2]["L"][0]["S"], None],
            ],
            "owner": {"team": owner["team"]["S"], "oncall": set(owner["oncall"]["SS"])},
            "checksum": a2b_base64(config["checksum"]["B"]),
        },
    }


def with_hand_written(convert: Callable[[dict[str, Any]], Any], payload: str) -> None:
    """A lower bound, not a deserializer: code written for these exact items (no dispatch,
    no checks) that only builds the same output objects (int, Decimal, sets, bytes, dicts).
    Any general DynamoDB-JSON walk pays at least this on top of ``json.loads``."""
    for record in json.loads(payload)["Records"]:
        dynamodb = record["dynamodb"]
        convert(dynamodb["NewImage"])
        convert(dynamodb["OldImage"])


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

    from ddb_stream_runtime._aws import client_image

    # boto3 deserializes what the client returns: binary already decoded to bytes.
    theirs = {k: TypeDeserializer().deserialize(v) for k, v in client_image(image).items()}
    if deserialize_image(image) != theirs:
        raise SystemExit("ddb_stream_runtime and boto3 disagree on the benchmark item")


def make_rich_item(i: int, version: int) -> dict[str, Any]:
    """An item heavy in the rarer tags: sets, binary, nested maps and lists."""
    blob = base64.b64encode(bytes((i + k) % 256 for k in range(24))).decode()
    return {
        "pk": {"S": f"DEVICE#{i:08d}"},
        "version": {"N": str(version + 1)},
        "firmware": {"B": blob},
        "keys": {"BS": [blob, base64.b64encode(f"k{i}".encode()).decode()]},
        "labels": {"SS": ["edge", f"zone-{i % 9}", "beta" if version else "ga"]},
        "ports": {"NS": [str(8000 + i % 50), "443", "-0", "1e3"]},
        "online": {"BOOL": bool(version)},
        "retired": {"NULL": True},
        "readings": {
            "L": [
                {"M": {"t": {"N": str(1718049976 + n)}, "v": {"N": f"{n * 0.5:.1f}"}}}
                for n in range(4)
            ]
        },
        "config": {
            "M": {
                "mode": {"S": "auto"},
                "limits": {"L": [{"N": "10"}, {"N": "20.5"}, {"L": [{"S": "x"}, {"NULL": True}]}]},
                "owner": {"M": {"team": {"S": "iot"}, "oncall": {"SS": ["a", "b"]}}},
                "checksum": {"B": blob},
            }
        },
    }


def make_rich_event(records: int) -> dict[str, Any]:
    event = make_event(records)
    for i, record in enumerate(event["Records"]):
        record["dynamodb"]["Keys"] = {"pk": {"S": f"DEVICE#{i:08d}"}}
        record["dynamodb"]["NewImage"] = make_rich_item(i, 1)
        record["dynamodb"]["OldImage"] = make_rich_item(i, 0)
    return event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15, help="interleaved rounds")
    args = parser.parse_args()

    for label, maker in (("orders", make_event), ("rich", make_rich_event)):
        payload = json.dumps(maker(args.records), separators=(",", ":"))  # as Lambda sends it
        for record in json.loads(payload)["Records"][:50]:
            _check_same_result(record["dynamodb"]["NewImage"])
            _check_same_result(record["dynamodb"]["OldImage"])
        hand = _hand_orders if label == "orders" else _hand_rich
        for record in json.loads(payload)["Records"][:50]:
            for image in (record["dynamodb"]["NewImage"], record["dynamodb"]["OldImage"]):
                if hand(image) != deserialize_image(image):
                    raise SystemExit("the hand-written lower bound builds other values")
        cases: dict[str, Callable[[], None]] = {
            "json.loads (floor)": functools.partial(floor, payload),
            "+ ddb_stream_runtime.deserialize_image": functools.partial(with_ours, payload),
            "+ ddb_stream_runtime.StreamRecord": functools.partial(with_stream_record, payload),
            "+ hand-written for these items (lower bound)": functools.partial(
                with_hand_written, hand, payload
            ),
        }
        # boto3 and Powertools only on the orders event: boto3's TypeDeserializer takes
        # bytes for B (what the client returns), not the stream's base64 text.
        if label == "orders" and _importable("boto3.dynamodb.types"):
            cases["+ boto3 TypeDeserializer"] = functools.partial(with_boto3, payload)
        if label == "orders" and _importable("aws_lambda_powertools"):
            cases["+ Powertools DynamoDBStreamEvent"] = functools.partial(with_powertools, payload)
        results = _harness.measure(cases, "json.loads (floor)", rounds=args.repeat)
        _harness.print_results(
            f"{label}: {args.records} MODIFY records, NEW_AND_OLD_IMAGES, "
            f"{len(payload) / 1e6:.2f} MB JSON",
            results,
            "json.loads (floor)",
        )
        for key, case in (
            ("deserialize", "+ ddb_stream_runtime.deserialize_image"),
            ("lower_bound", "+ hand-written for these items (lower bound)"),
            ("boto3", "+ boto3 TypeDeserializer"),
            ("powertools", "+ Powertools DynamoDBStreamEvent"),
        ):
            if case in cases:
                _harness.summary(f"{key}.{label}", results, case, mb=round(len(payload) / 1e6, 2))


if __name__ == "__main__":
    main()
