"""How much latency does a StreamFanOut add between a write and its handler, locally?

Builds an app here with two paths that run the SAME handler code:

* **direct**: ``StreamTable`` → ``SimpleController`` on the table's stream;
* **fan-out**: ``StreamTable`` → ``StreamFanOut`` (router function, SNS topic) → the
  consumer's SQS queue → ``SimpleController(source=fan_out)``.

The handler (written into a temporary directory, with a copy of ``ddb_stream_runtime``
to unwrap SQS/SNS records with ``intake.read_batch``) computes, for each record,
``time.time() - writtenAt`` where ``writtenAt`` is set by the writer just before its
``PutItem`` (DynamoDB Local truncates ``ApproximateCreationDateTime`` to the minute, so
it cannot be used), and prints one line per batch that the benchmark reads back from the
invocation's logs (``bench_local_cloud.Collector``).

Rounds are interleaved with a rotating order (round 1: direct then fan-out, round 2:
fan-out then direct, ...). In each case only that path's pollers run (``Pollers.start``
with ``--interval``), ``--records`` items are written one at a time at ``--rate`` writes
per second (a steady trickle, so the figures are latency, not queueing behind a burst),
and the case ends when the handler has seen them all. Reported: p50 / p90 / p99 / max
write → handler latency per path, pooled over the rounds, and the fan-out's added p50 and
p99 (the difference of the pooled percentiles); also the per-round p50s on stderr.

What the numbers mean: how long a test on the local cloud waits, NOT AWS's latency.
DynamoDB Local stands in for the stream, moto for SNS and SQS (moto delivers an SNS
publish to the subscribed queue synchronously), one local worker process per function,
and one poller thread per mapping that sleeps ``--interval`` s after an empty poll. The
fan-out path has two polls (the stream, then the queue) and one more function (the
router), so locally it adds about one poll interval plus a router invocation. On AWS,
Lambda's own pollers, SNS delivery and SQS long polling set the figures instead.

Exits non-zero (``_harness.fail``) when it cannot drive a path: a path that does not
deploy as described (no SQS mapping on the fan-out path), a record its handler never
sees, or a record seen twice.

Run: ``python benchmarks/bench_fan_out_latency.py [--records 200] [--rounds 4]
[--rate 20] [--interval 0.1]``. Starts DynamoDB Local and moto's server (as the local
cloud does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "constructs"), str(REPO / "lambda_src"), str(Path(__file__).parent)]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from _harness import fail, machine  # noqa: E402
from bench_local_cloud import Collector, percentile  # noqa: E402

from ddb_stream_patterns.local import LocalCloud, deploy  # noqa: E402
from ddb_stream_patterns.local.pollers import Pollers  # noqa: E402

STACK = "BenchFanOutLatency"
PATHS = ("direct", "fan-out")
WARM_UP_ITEMS = 10

HANDLER = '''\
"""For each record (from the stream or from the fan-out's queue): ms since it was written."""
import json
import time

from ddb_stream_runtime.intake import read_batch


def handler(event, context):
    now = time.time()
    runs = {}
    for entry in read_batch(event).entries:
        image = entry.get().raw_new_image or {}
        written = image.get("writtenAt", {}).get("N")
        if written is not None:
            run = image.get("run", {}).get("S", "?")
            runs.setdefault(run, []).append(round((now - float(written)) * 1000, 3))
    print("LATENCY " + json.dumps({"now": now, "runs": runs}), flush=True)
    return {"batchItemFailures": []}
'''


def write_handler(root: Path) -> Path:
    code = root / "latency"
    code.mkdir()
    (code / "index.py").write_text(HANDLER)
    shutil.copytree(REPO / "lambda_src" / "ddb_stream_runtime", code / "ddb_stream_runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return code


def synthesize(code: Path, outdir: Path, batch_size: int) -> Path:
    import aws_cdk as cdk
    import aws_cdk.aws_dynamodb as dynamodb
    import aws_cdk.aws_lambda as lambda_

    from ddb_stream_patterns import (
        Monitoring,
        QueueOptions,
        SimpleController,
        StreamFanOut,
        StreamTable,
    )

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, STACK)
    key = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    quiet = Monitoring(alarms=False)
    direct = StreamTable(stack, "DirectTable", partition_key=key)
    SimpleController(stack, "Direct", table=direct, code=lambda_.Code.from_asset(str(code)),
                     handler="index.handler", batch_size=batch_size, monitoring=quiet)
    fanned = StreamTable(stack, "FanOutTable", partition_key=key)
    fan_out = StreamFanOut(stack, "FanOut", table=fanned, monitoring=quiet)
    SimpleController(stack, "Fanned", table=fanned, code=lambda_.Code.from_asset(str(code)),
                     handler="index.handler", monitoring=quiet,
                     source=fan_out.with_queue(QueueOptions(batch_size=min(batch_size, 10))))
    return Path(app.synth().directory)


def path_mappings(deployment: Any) -> dict[str, list[Any]]:
    """Each path's event source mappings, by the table its records come from."""
    direct_stream = deployment.by_path(f"{STACK}/DirectTable").attributes["StreamArn"]
    fanned_stream = deployment.by_path(f"{STACK}/FanOutTable").attributes["StreamArn"]
    direct = [m for m in deployment.mappings if m.source_arn == direct_stream]
    router = [m for m in deployment.mappings if m.source_arn == fanned_stream]
    queue = [m for m in deployment.mappings if m.kind == "sqs"]
    if len(direct) != 1 or len(router) != 1 or len(queue) != 1:
        fail(f"expected 1 direct mapping, 1 router mapping and 1 SQS mapping, got "
             f"{len(direct)}, {len(router)}, {len(queue)}: the app did not deploy as described")
    return {"direct": direct, "fan-out": router + queue}


def write_trickle(ddb: Any, table: str, run: str, count: int, rate: float) -> None:
    """``count`` single PutItems, ``rate`` per second."""
    start = time.perf_counter()
    for i in range(count):
        pause = start + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        ddb.put_item(TableName=table, Item={
            "pk": {"S": f"{run}-{i:06d}"}, "run": {"S": run},
            "writtenAt": {"N": repr(time.time())}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200, help="items per path per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="writes per second")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.1,
                        help="Pollers.start: sleep after an empty poll (s)")
    args = parser.parse_args(argv)
    if args.records < 1 or args.rounds < 1 or args.rate <= 0:
        parser.error("--records and --rounds must be at least 1, --rate above 0")

    latencies: dict[str, list[float]] = {p: [] for p in PATHS}
    round_p50: dict[str, list[float]] = {p: [] for p in PATHS}
    timeout = 60 + args.records / args.rate * 3
    with tempfile.TemporaryDirectory(prefix="bench-fan-out-") as tmp:
        root = Path(tmp)
        assembly = synthesize(write_handler(root), root / "cdk.out", args.batch_size)
        with LocalCloud() as cloud, deploy(cloud, assembly, name_prefix="fo-") as deployment:
            mappings = path_mappings(deployment)
            tables = {"direct": deployment.by_path(f"{STACK}/DirectTable").physical_id,
                      "fan-out": deployment.by_path(f"{STACK}/FanOutTable").physical_id}
            collectors = {p: Collector(mappings[p][-1].function) for p in PATHS}
            pollers = {p: Pollers(mappings[p], cloud.client) for p in PATHS}
            ddb = cloud.client("dynamodb")
            deployment.start_functions()

            def case(path: str, run: str, count: int) -> list[float]:
                pollers[path].start(args.interval)
                try:
                    write_trickle(ddb, tables[path], run, count, args.rate)
                    try:
                        seen, _, _ = collectors[path].wait(run, count, timeout)
                    except TimeoutError as exc:
                        fail(f"{path}: {exc}")
                    time.sleep(2 * args.interval)  # a duplicate would show up by now
                    if len(collectors[path].latencies[run]) != count:
                        fail(f"{path}: {run} was handled "
                             f"{len(collectors[path].latencies[run])} times for {count} writes")
                    return list(seen)
                finally:
                    pollers[path].stop()

            for path in PATHS:  # warm-up: workers, clients, JITs; not counted
                case(path, f"warm-{path}", WARM_UP_ITEMS)
            for r in range(args.rounds):
                order = PATHS[r % 2:] + PATHS[:r % 2]
                for path in order:
                    seen = case(path, f"r{r}-{path}", args.records)
                    latencies[path].extend(seen)
                    round_p50[path].append(statistics.median(seen))
                print(f"round {r + 1}: " + ", ".join(
                    f"{p} p50 {round_p50[p][-1]:.0f} ms" for p in PATHS), file=sys.stderr)

    rows = {}
    for path in PATHS:
        values = sorted(latencies[path])
        rows[path] = {q: percentile(values, q) for q in (50, 90, 99)} | {"max": values[-1]}
    print(f"\nWrite → handler latency on the local cloud ({machine()})")
    print(f"{args.rounds} interleaved rounds x {args.records} records per path, "
          f"{args.rate:g} writes/s, poll interval {args.interval:g} s, batch size "
          f"{args.batch_size}\n")
    print(f"{'path':<10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for path in PATHS:
        r = rows[path]
        print(f"{path:<10} {r[50]:>8.0f} {r[90]:>8.0f} {r[99]:>8.0f} {r['max']:>8.0f}")
    added = {q: rows["fan-out"][q] - rows["direct"][q] for q in (50, 99)}
    print(f"\nadded by the fan-out: p50 +{added[50]:.0f} ms, p99 +{added[99]:.0f} ms "
          "(local stand-ins' polling, not AWS)")
    print("SUMMARY " + json.dumps({
        "key": "fan_out_latency", "records": args.records, "rounds": args.rounds,
        "interval_s": args.interval, "rate": args.rate,
        **{f"{p}_ms": {str(q): round(v, 1) for q, v in rows[p].items()} for p in PATHS},
        "added_p50_ms": round(added[50], 1), "added_p99_ms": round(added[99], 1),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
