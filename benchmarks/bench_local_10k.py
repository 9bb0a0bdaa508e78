"""10,000 writes through the example ComplexController and AggregateCounter, locally.

Part of ``bench_local_cloud.py``'s question (how fast is the local cloud, and why):
``python benchmarks/bench_local_cloud.py --ten-thousand`` runs this. It synthesizes the
example app's ComplexController stack and a table with the example AggregateCounter
(``examples/app.py``'s props), starts a ``LocalCloud(clock_scale=--clock-scale)`` (the
StatusNotifier's 5 minute queue delay becomes 3 s at 0.01), deploys, and per pattern:

* writes ``--writes`` items with a single-threaded ``BatchWriteItem`` loop while nothing
  polls (DynamoDB Local's own write rate, printed), then
* runs the pollers (``Pollers.run_until_idle``) and times the drain: from the start of
  the pollers until every stream and queue is idle.

ComplexController: 60 % inserts, 30 % status changes (MODIFY), 10 % deletes, so the
three processors get 6,000 / 3,000 / 1,000. Each processor's successful invocations are
counted per stream ``eventID`` (read out of the SNS envelope in each SQS body): lost =
expected minus distinct, duplicated = distinct IDs seen more than once; DLQ depths read
from moto. AggregateCounter: 10,000 inserts into 3 lists; the counter table must hold
exactly each list's count and sum. Exits non-zero when a drain times out, anything is
lost or duplicated, a DLQ is not empty, or a count is wrong.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "constructs"), str(REPO / "lambda_src"), str(REPO / "examples")]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from ddb_stream_patterns.local import LocalCloud, deploy  # noqa: E402
from ddb_stream_patterns.local.pollers import Pollers, PollerTimeout  # noqa: E402

EVENT_ID = re.compile(r'eventID\\*"\s*:\s*\\*"([^"\\]+)')
BATCH = 25


def synthesize(outdir: Path) -> Path:
    import aws_cdk as cdk
    import aws_cdk.aws_dynamodb as dynamodb
    from app import ComplexControllerStack

    from ddb_stream_patterns import AggregateCounter, Monitoring, StreamTable

    app = cdk.App(outdir=str(outdir))
    ComplexControllerStack(app, "Bench10kComplex")
    stack = cdk.Stack(app, "Bench10kCounter")
    table = StreamTable(
        stack, "TodoListTask",
        partition_key=dynamodb.Attribute(name="ListId", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="TaskId", type=dynamodb.AttributeType.STRING),
    )
    AggregateCounter(stack, "TaskCountPerList", table=table, group_attribute="ListId",
                     sum_of="estimate", monitoring=Monitoring(alarms=False))
    return Path(app.synth().directory)


def batch_write(ddb: Any, table: str, requests: list[dict]) -> float:
    start = time.perf_counter()
    for first in range(0, len(requests), BATCH):
        pending: dict[str, Any] = {table: requests[first:first + BATCH]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return time.perf_counter() - start


class Seen:
    """Wraps a function's invoke: stream eventIDs of its successful invocations."""

    def __init__(self, function: Any) -> None:
        self.ids: collections.Counter[str] = collections.Counter()
        invoke = function.invoke

        def wrapped(event: Any) -> Any:
            response = invoke(event)
            failed = {f.get("itemIdentifier") for f in
                      ((response or {}).get("batchItemFailures") or [])} \
                if isinstance(response, dict) else set()
            for record in event["Records"]:
                if record.get("messageId") in failed:
                    continue
                found = EVENT_ID.search(record.get("body", ""))
                if found:
                    self.ids[found.group(1)] += 1
            return response

        function.invoke = wrapped


def drain(cloud: LocalCloud, mappings: list, timeout: float) -> float:
    pollers = Pollers(mappings, cloud.client, clock_scale=cloud.clock_scale)
    start = time.perf_counter()
    pollers.run_until_idle(timeout=timeout, wait_for_delayed=True, interval=0.05)
    return time.perf_counter() - start


def run_complex(cloud: LocalCloud, deployment: Any, n: int, timeout: float) -> list[str]:
    problems = []
    stack = "Bench10kComplex"
    table = deployment.by_path(f"{stack}/Customers").physical_id
    stream = deployment.by_path(f"{stack}/Customers").attributes["StreamArn"]
    mappings = [m for m in deployment.mappings
                if m.source_arn == stream or m.kind == "sqs" and "Bench10kComplex" in
                str(getattr(m.function, "name", ""))]
    queue_mappings = [m for m in mappings if m.kind == "sqs"]
    seen = {m.logical_id: Seen(m.function) for m in queue_mappings}
    inserts, modifies, deletes = int(n * 0.6), int(n * 0.3), n - int(n * 0.6) - int(n * 0.3)
    ddb = cloud.client("dynamodb")
    puts = [{"PutRequest": {"Item": {"customerId": {"S": f"c{i:06d}"}, "status": {"S": "new"}}}}
            for i in range(inserts)]
    seconds = batch_write(ddb, table, puts)
    start = time.perf_counter()
    for i in range(modifies):
        ddb.update_item(TableName=table, Key={"customerId": {"S": f"c{i:06d}"}},
                        UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":s": {"S": "shipped"}})
    seconds += time.perf_counter() - start
    dels = [{"DeleteRequest": {"Key": {"customerId": {"S": f"c{inserts - 1 - i:06d}"}}}}
            for i in range(deletes)]
    seconds += batch_write(ddb, table, dels)
    print(f"ComplexController: {n} writes ({inserts} put, {modifies} update, {deletes} "
          f"delete) into DynamoDB Local alone: {n / seconds:.0f} writes/s", flush=True)
    try:
        took = drain(cloud, mappings, timeout)
    except PollerTimeout as exc:
        print(f"  NOT drained: {exc}")
        return [f"complex: {exc}"]
    expected = {"Welcome": inserts, "StatusNotifier": modifies, "Audit": deletes}
    sqs = cloud.client("sqs")
    dlq_depth = 0
    for key, url in deployment.queues.items():
        if "DeadLetter" in key or "Dlq" in key or "DLQ" in key:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
            a = attributes["Attributes"]
            dlq_depth += sum(int(a[k]) for k in ("ApproximateNumberOfMessages",
                                                  "ApproximateNumberOfMessagesNotVisible"))
    print(f"  drained in {took:.1f} s ({n / took:.0f} writes/s end to end); "
          f"DLQ depth {dlq_depth}")
    for logical_id, s in seen.items():
        name = next((k for k in expected if k in logical_id), logical_id)
        want = expected.get(name)
        lost = (want - len(s.ids)) if want is not None else 0
        dup = sum(1 for c in s.ids.values() if c > 1)
        print(f"  {name:<15} processed {len(s.ids):>6} of {want}: lost {lost}, "
              f"duplicated {dup}")
        if lost or dup:
            problems.append(f"{name}: lost {lost}, duplicated {dup}")
    if dlq_depth:
        problems.append(f"DLQ depth {dlq_depth}")
    return problems


def run_counter(cloud: LocalCloud, deployment: Any, n: int, timeout: float) -> list[str]:
    stack = "Bench10kCounter"
    table = deployment.by_path(f"{stack}/TodoListTask").physical_id
    stream = deployment.by_path(f"{stack}/TodoListTask").attributes["StreamArn"]
    mappings = [m for m in deployment.mappings if m.source_arn == stream]
    ddb = cloud.client("dynamodb")
    puts = [{"PutRequest": {"Item": {"ListId": {"S": f"list-{i % 3}"},
                                     "TaskId": {"S": f"t{i:06d}"},
                                     "estimate": {"N": str(i % 7 + 1)}}}} for i in range(n)]
    seconds = batch_write(ddb, table, puts)
    print(f"AggregateCounter: {n} puts into DynamoDB Local alone: {n / seconds:.0f} writes/s",
          flush=True)
    try:
        took = drain(cloud, mappings, timeout)
    except PollerTimeout as exc:
        print(f"  NOT drained: {exc}")
        return [f"counter: {exc}"]
    want = {f"list-{g}": (sum(1 for i in range(n) if i % 3 == g),
                          sum(i % 7 + 1 for i in range(n) if i % 3 == g)) for g in range(3)}
    counter_fn = next(f for f in deployment.functions.values()
                      if "COUNTER_TABLE" in f.environment)
    counter_table = counter_fn.environment["COUNTER_TABLE"]
    pk = counter_fn.environment.get("COUNTER_PARTITION_KEY", "pk")
    got = {}
    for item in ddb.scan(TableName=counter_table)["Items"]:
        if item[pk]["S"] in want:
            got[item[pk]["S"]] = sorted(int(v["N"]) for v in item.values() if "N" in v)
    exact = all(count in got.get(g, []) and total in got.get(g, [])
                for g, (count, total) in want.items())
    print(f"  drained in {took:.1f} s ({n / took:.0f} writes/s end to end); counts "
          f"{'exact' if exact else 'WRONG'}: want {want}, counter table numbers {got}")
    return [] if exact else ["counter: wrong counts"]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--clock-scale", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--only", choices=["complex", "counter"])
    args = parser.parse_args(argv)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-10k-") as tmp:
        assembly = synthesize(Path(tmp) / "cdk.out")
        with LocalCloud(clock_scale=args.clock_scale) as cloud, \
                deploy(cloud, assembly, name_prefix="b10k-") as deployment:
            deployment.start_functions()
            print(f"{os.cpu_count()} cores, load average "
                  + " ".join(f"{x:.2f}" for x in os.getloadavg())
                  + f", clock scale {args.clock_scale:g}", flush=True)
            if args.only in (None, "complex"):
                problems += run_complex(cloud, deployment, args.writes, args.timeout)
            if args.only in (None, "counter"):
                problems += run_counter(cloud, deployment, args.writes, args.timeout)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
