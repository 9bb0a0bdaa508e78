"""What does the ComplexController's router cost on top of ``json.loads``?

Uses the 1,000-record MODIFY batch of ``bench_deserialize.py`` (NEW_AND_OLD_IMAGES,
~1.9 MB of JSON) and times, best of ``--repeat`` rounds:

* ``json.loads`` of the event: the floor every Python stream Lambda pays;
* + ``json.dumps`` of every record: the serialization any router must do, since
  each SNS message body is the untouched record (the floor of this pattern);
* + the full router path (validation, attribute lifting, sizing, batching into
  PublishBatch calls) with a no-op SNS client, with 0 and with 3 routing attributes,
  and FIFO (group and deduplication ids) with 3 attributes.

botocore's own work (query-protocol encoding, signing, HTTP) is not measured: it
is the same for every router.

Run: ``python benchmarks/bench_router.py [--records 1000] [--repeat 15]``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda_src"))

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
        raise SystemExit(f"router reported failures: {response}")


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

    print(
        f"{args.records} MODIFY records, NEW_AND_OLD_IMAGES, {len(payload) / 1e6:.2f} MB JSON; "
        f"best of {args.repeat}; Python {sys.version.split()[0]}"
    )
    print(f"{'case':<42} {'ms/batch':>9} {'x floor':>8} {'x loads+dumps':>14}")
    times: dict[str, float] = {}
    for name, fn in cases:
        fn(payload)  # warm up: imports and caches are not what we measure
        timer = functools.partial(fn, payload)
        times[name] = min(timeit.repeat(timer, number=1, repeat=args.repeat))
    base, serial = times["json.loads (floor)"], times["+ json.dumps of each record"]
    for name, best in times.items():
        print(f"{name:<42} {best * 1000:>9.1f} {best / base:>8.2f} {best / serial:>14.2f}")
    calls = {name: router._sns.calls for name, router in routers.items()}
    per_round = {name: n // (args.repeat + 1) for name, n in calls.items()}
    print(f"PublishBatch calls per batch: {sorted(set(per_round.values()))}")


if __name__ == "__main__":
    main()
