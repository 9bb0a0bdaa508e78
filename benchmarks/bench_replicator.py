"""How much do concurrent conditional writes save the replicator when every call waits?

In production each conditional ``PutItem`` is a network round trip, and the
round trips, not the CPU, make up the replicator's time. This benchmark gives the
replicator a DynamoDB client that answers every call after a fixed ``--latency``
(5 ms by default; ``time.sleep``, which releases the GIL as a socket wait does)
and times, in interleaved rounds through ``_harness.py`` (GC off and on), the
1,000-record MODIFY batch of ``bench_deserialize.py``:

* ``write_concurrency=1``: one write at a time, the replicator as it was;
* ``write_concurrency=16`` (the default), and 64 (the maximum).

ratio = concurrent / sequential within a round: 0.125 is 8x faster. Both must make
exactly one call per record, else the script exits non-zero.

Run: ``python benchmarks/bench_replicator.py [--records 1000] [--repeat 3] [--latency 0.005]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda_src"))

import _harness  # noqa: E402
from bench_deserialize import make_event  # noqa: E402

from ddb_stream_runtime.replicator import (  # noqa: E402
    DEFAULT_WRITE_CONCURRENCY,
    MAX_WRITE_CONCURRENCY,
    Replicator,
    ReplicatorConfig,
)


class LatencyDynamoDB:
    """Answers put_item / delete_item with success after a fixed delay; counts calls."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0
        self._lock = threading.Lock()

    def _call(self, **params: Any) -> dict[str, Any]:
        time.sleep(self.latency)
        with self._lock:
            self.calls += 1
        return {}

    put_item = delete_item = _call


def run(replicator: Replicator, payload: str) -> None:
    response = replicator.replicate(json.loads(payload))
    if response["batchItemFailures"]:
        _harness.fail(f"replicator reported failures: {response['batchItemFailures'][:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--latency", type=float, default=0.005, help="seconds per call")
    args = parser.parse_args()

    payload = json.dumps(make_event(args.records), separators=(",", ":"))
    sequential = "write_concurrency=1 (sequential)"
    replicators: dict[str, tuple[Replicator, LatencyDynamoDB]] = {}
    for concurrency in (1, DEFAULT_WRITE_CONCURRENCY, MAX_WRITE_CONCURRENCY):
        client = LatencyDynamoDB(args.latency)
        name = sequential if concurrency == 1 else f"write_concurrency={concurrency}"
        if concurrency == DEFAULT_WRITE_CONCURRENCY:
            name += " (default)"
        config = ReplicatorConfig("orders-copy", write_concurrency=concurrency)
        replicators[name] = (Replicator(config, dynamodb_client=client), client)
    results = _harness.measure(
        {name: functools.partial(run, r, payload) for name, (r, _) in replicators.items()},
        sequential,
        rounds=args.repeat,
    )
    runs = 1 + 2 * args.repeat
    calls = {name: client.calls / runs for name, (_, client) in replicators.items()}
    _harness.print_results(
        f"replicator: {args.records} MODIFY records, {args.latency * 1000:g} ms per call; "
        f"calls per batch: {calls}",
        results,
        sequential,
    )
    if set(calls.values()) != {float(args.records)}:
        _harness.fail(f"expected {args.records} conditional writes per batch, got {calls}")
    default = next(name for name in replicators if name.endswith("(default)"))
    _harness.summary("replicator.parallel", results, default, latency_ms=args.latency * 1000)


if __name__ == "__main__":
    main()
