"""What enforcing IAM costs the local cloud: the example app end to end, on ÷ off.

Runs :func:`ddb_stream_patterns.local.runner.run` on the example app (synthesize, start
DynamoDB Local + moto, deploy, write ``--items`` sample items per table, run every event
source mapping until idle, report) with ``enforce_iam=True`` and ``enforce_iam=False``,
alternating which goes first, ``--rounds`` times; prints the best wall time of each and
their ratio, plus how many AWS calls the functions made that were checked (every call a
function makes through botocore, or signs for OpenSearch, is one pipe round trip to the
parent, where the role's policies are evaluated) and how many checks the event source
mappings made of their own reads and on-failure sends (one per poll, in the parent).
The run includes the TTL wait (DynamoDB Local's sweep), which
is the same with and without enforcement, so the ratio is the share IAM adds to what a
user waits for, not the cost per call; ``--per-call`` adds the latter: a function that
makes ``--calls`` SQS ``GetQueueUrl`` calls to moto, allowed by its role, timed with and
without the authorizer.

Usage: ``.venv/bin/python benchmarks/bench_iam_overhead.py [--rounds 3] [--items 12]``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "constructs"), str(REPO / "lambda_src")]


class _Counted:
    """An authorizer that counts what it decides: function calls, and the event source
    mappings' own checks (``decide``, see ``pollers.check_mapping_permissions``)."""

    def __init__(self, inner, counts: dict[str, int]) -> None:
        self.inner, self.counts = inner, counts

    def __call__(self, request):
        self.counts["calls"] += 1
        return self.inner(request)

    def decide(self, *args, **kwargs):
        self.counts["mapping"] += 1
        return self.inner.decide(*args, **kwargs)


def end_to_end(enforce: bool, items: int) -> tuple[float, dict[str, int]]:
    from ddb_stream_patterns.local import runner

    counts = {"calls": 0, "mapping": 0}
    original = runner.deploy

    def counting_deploy(*args, **kwargs):
        deployment = original(*args, **kwargs)
        for fn in deployment.functions.values():
            if fn.authorizer is not None:
                fn.authorizer = _Counted(fn.authorizer, counts)
        return deployment

    runner.deploy = counting_deploy
    try:
        started = time.perf_counter()
        runner.run(project=REPO, items=items, out=io.StringIO(), timeout=120,
                   enforce_iam=enforce)
        return time.perf_counter() - started, counts
    finally:
        runner.deploy = original


def per_call(calls: int) -> tuple[float, float]:
    from ddb_stream_patterns.local import LocalCloud
    from ddb_stream_patterns.local.functions import LocalFunction
    from ddb_stream_patterns.local.iam import RoleAuthorizer

    code = Path(tempfile.mkdtemp())
    (code / "index.py").write_text(
        "import boto3, time\n"
        "sqs = boto3.client('sqs')\n"
        "def handler(event, context):\n"
        "    t = time.perf_counter()\n"
        "    for _ in range(event['n']):\n"
        "        sqs.get_queue_url(QueueName='bench')\n"
        "    return time.perf_counter() - t\n")
    policy = {"Statement": [{"Effect": "Allow", "Action": "sqs:GetQueueUrl", "Resource": "*"}]}
    times = {}
    with LocalCloud() as cloud:
        cloud.client("sqs").create_queue(QueueName="bench")
        for enforce in (False, True, False, True):
            auth = (RoleAuthorizer("arn:aws:iam::123456789012:role/R", "bench", lambda: [policy],
                                   cloud.region, cloud.account_id) if enforce else None)
            with LocalFunction("bench", "index.handler", code,
                               environment=cloud.function_environment(),
                               timeout_s=300, memory_mb=512, authorizer=auth) as fn:
                fn.invoke({"n": 5})
                elapsed = fn.invoke({"n": calls})
            times[enforce] = min(times.get(enforce, elapsed), elapsed)
    return times[False] / calls * 1000, times[True] / calls * 1000


def evaluation_us(number: int = 5000) -> float:
    import timeit

    from ddb_stream_patterns.local.iam import RoleAuthorizer

    policy = {"Statement": [
        {"Effect": "Allow", "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"], "Resource": "*"},
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "arn:aws:dynamodb:*:*:table/x"}]}
    auth = RoleAuthorizer("arn:aws:iam::123456789012:role/R", "f", lambda: [policy],
                          "us-east-1", "123456789012")
    request = {"prefix": "sqs", "operation": "GetQueueUrl", "params": {"QueueUrl": "h/1/q"}}
    return min(timeit.repeat(lambda: auth(request), number=number, repeat=3)) / number * 1e6


def mapping_check_us(number: int = 2000) -> float:
    """One stream poll's check of its own reads (4 actions on the stream ARN)."""
    import timeit

    from ddb_stream_patterns.local.iam import RoleAuthorizer
    from ddb_stream_patterns.local.model import MappingSpec
    from ddb_stream_patterns.local.pollers import STREAM_READ_ACTIONS, check_mapping_permissions

    stream = "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-01-01T00:00:00.000"
    policy = {"Statement": [
        {"Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": "*"},
        {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                                       "dynamodb:GetShardIterator"], "Resource": stream},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:*:*:dlq"}]}

    class Function:
        name = "f"
        authorizer = RoleAuthorizer("arn:aws:iam::123456789012:role/R", "f", lambda: [policy],
                                    "us-east-1", "123456789012")

    spec = MappingSpec("M", Function(), "dynamodb", stream)
    return min(timeit.repeat(lambda: check_mapping_permissions(spec, STREAM_READ_ACTIONS, stream),
                             number=number, repeat=3)) / number * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--per-call", action="store_true")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    best: dict[bool, float] = {}
    checked = {"calls": 0, "mapping": 0}
    for i in range(args.rounds):
        for enforce in ((True, False) if i % 2 else (False, True)):
            seconds, n = end_to_end(enforce, args.items)
            print(f"round {i + 1}: enforce_iam={enforce}: {seconds:.1f} s"
                  + (f", {n['calls']} function calls and {n['mapping']} mapping checks"
                     if enforce else ""), file=sys.stderr)
            best[enforce] = min(best.get(enforce, seconds), seconds)
            checked = {k: max(checked[k], n[k]) for k in checked}
    if best:
        print(f"example app end to end, {args.items} items per table, best of {args.rounds}:")
        print(f"  enforce_iam=False  {best[False]:7.1f} s")
        print(f"  enforce_iam=True   {best[True]:7.1f} s   ({checked['calls']} function calls, "
              f"{checked['mapping']} mapping reads/sends checked)")
        print(f"  on / off           {best[True] / best[False]:7.3f}x")
    print(f"one policy evaluation in the parent (2 statements): {evaluation_us():.1f} µs")
    print(f"one stream poll's check of its own reads (4 actions): {mapping_check_us():.1f} µs")
    if args.per_call:
        off, on = per_call(args.calls)
        print(f"one SQS call from a function ({args.calls} calls, best of 2): "
              f"{off:.2f} ms unchecked, {on:.2f} ms checked ({on / off:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
