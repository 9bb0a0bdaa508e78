"""What does the ComplexController's router cost on top of ``json.loads``?

Uses the 1,000-record MODIFY batch of ``bench_deserialize.py`` (NEW_AND_OLD_IMAGES,
~1.9 MB of JSON) and times, in interleaved rounds through
``_harness.py`` (GC off and on):

* ``json.loads`` of the event: the floor every Python stream Lambda pays;
* + ``json.dumps`` of every record: the serialization any router must do, since
  each SNS message body is the untouched record (the floor of this pattern);
* + the full router path (validation, attribute lifting, sizing, batching into
  PublishBatch calls) with a no-op SNS client, with 0 and with 3 routing attributes,
  and FIFO (group and deduplication ids) with 3 attributes.

botocore's own work (query-protocol encoding, signing, HTTP) is not measured: it
is the same for every router.

Run: ``python benchmarks/bench_router.py [--records 1000] [--repeat 15]``.
Prints ms per batch and the ratio to the floor; exits non-zero if the PublishBatch count
is not one per 10 records.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda_src"))

import _harness  # noqa: E402
from bench_deserialize import make_event  # noqa: E402

from ddb_stream_runtime import Router, RouterConfig  # noqa: E402

TOPIC = "arn:aws:sns:us-east-2:123456789012:orders"
ATTRIBUTES = ("status", "total", "is_gift")


class NoOpSns:
    """Accepts every entry, counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[Any]) -> Any:  # noqa: N803
        self.calls += 1
        return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries]}


def floor(payload: str) -> None:
    json.loads(payload)


def with_dumps(payload: str) -> None:
    encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
    for record in json.loads(payload)["Records"]:
        encode(record)


def with_router(router: Router, payload: str) -> None:
    response = router.route(json.loads(payload))
    if response["batchItemFailures"]:
        _harness.fail(f"router reported failures: {response}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    payload = json.dumps(make_event(args.records), separators=(",", ":"))  # as Lambda sends it
    routers = {
        "+ router, no routing attributes": Router(RouterConfig(TOPIC), sns_client=NoOpSns()),
        f"+ router, {len(ATTRIBUTES)} routing attributes": Router(
            RouterConfig(TOPIC, ATTRIBUTES), sns_client=NoOpSns()
        ),
        f"+ router, {len(ATTRIBUTES)} attributes, FIFO": Router(
            RouterConfig(TOPIC + ".fifo", ATTRIBUTES, fifo=True), sns_client=NoOpSns()
        ),
    }
    cases: list[tuple[str, Callable[[str], None]]] = [
        ("json.loads (floor)", floor),
        ("+ json.dumps of each record", with_dumps),
        *((name, functools.partial(with_router, router)) for name, router in routers.items()),
    ]

    loads, serial = "json.loads (floor)", "+ json.dumps of each record"
    results = _harness.measure(
        {name: functools.partial(fn, payload) for name, fn in cases}, loads, rounds=args.repeat
    )
    _harness.print_results(
        f"{args.records} MODIFY records, NEW_AND_OLD_IMAGES, {len(payload) / 1e6:.2f} MB JSON",
        results,
        loads,
    )
    routed = f"+ router, {len(ATTRIBUTES)} routing attributes"
    _harness.summary("router", results, routed)
    runs = 1 + 2 * args.repeat
    per_batch = {name: router._sns.calls / runs for name, router in routers.items()}
    print(f"PublishBatch calls per batch: {sorted(set(per_batch.values()))}")
    if set(per_batch.values()) != {args.records / 10}:
        _harness.fail(f"expected {args.records // 10} PublishBatch calls per batch: {per_batch}")
    # The router re-serializes every record: loads + dumps is its true floor.
    results = _harness.measure(
        {
            serial: functools.partial(with_dumps, payload),
            routed: functools.partial(with_router, routers[routed], payload),
        },
        serial,
        rounds=args.repeat,
    )
    _harness.print_results("the same, against json.loads + json.dumps", results, serial)
    _harness.summary("router.dumps", results, routed)


if __name__ == "__main__":
    main()
