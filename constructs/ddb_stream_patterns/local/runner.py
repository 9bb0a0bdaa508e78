"""One command, end to end: synthesize an app, start the local cloud, deploy every stack,
write sample items, run the pollers, and print what each pattern did.

``python -m ddb_stream_patterns.local`` runs it on ``cdk.json``'s app (the examples);
:func:`run` is the same from Python and returns a :class:`RunReport` for tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from ddb_stream_runtime.counter import MARKER_PREFIX

from .cloud import LocalCloud
from .deployer import Deployment, deploy
from .lifecycle import die_with_parent, exit_on_signals
from .model import MappingSpec, MappingStats
from .opensearch import FakeOpenSearch
from .pollers import Pollers

__all__ = [
    "RunReport",
    "TableWrites",
    "main",
    "render_errors",
    "run",
    "synthesize",
    "write_samples",
]


@dataclass
class TableWrites:
    """What :func:`write_samples` did to one table."""

    table: str
    inserted: int = 0
    modified: int = 0
    deleted: int = 0
    expiring: int = 0  # written with a TTL in the past: DynamoDB Local's sweep removes them


@dataclass
class RunReport:
    """Everything :func:`run` observed, for a person (``text``) or a test."""

    deployment_summary: str
    writes: list[TableWrites]
    flows: dict[str, MappingStats]  # mapping construct path -> what flowed through it
    queues: dict[str, dict[str, int]]  # queue path -> visible / delayed / in flight
    outcomes: dict[str, Any] = field(default_factory=dict)  # per-pattern results
    #: function path -> (calls IAM denied, the latest denial), for functions denied any
    denied: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: queue path -> "<count> <last topic ARN>": SNS deliveries its queue policy refused
    sns_denied: dict[str, str] = field(default_factory=dict)
    text: str = ""


def synthesize(app: str, outdir: Path, cwd: Path) -> Path:
    """Run the CDK app command (as ``cdk synth`` would) into ``outdir``."""
    env = {**os.environ, "CDK_OUTDIR": str(outdir)}
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    command = shlex.split(app)
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable  # the interpreter that has this library installed
    subprocess.run(command, cwd=cwd, env=env, check=True, preexec_fn=die_with_parent())  # noqa: PLW1509
    if not (outdir / "manifest.json").exists():
        raise RuntimeError(f"{app!r} wrote no cloud assembly to {outdir}")
    return outdir


def _app_command(project: Path) -> str:
    cdk_json = project / "cdk.json"
    if not cdk_json.exists():
        raise FileNotFoundError(f"no cdk.json in {project}: pass --app 'python your_app.py'")
    return json.loads(cdk_json.read_text())["app"]


# -- sample data ------------------------------------------------------------------


def _key_value(attribute_type: str, i: int, name: str) -> dict[str, str]:
    if attribute_type == "N":
        return {"N": str(i)}
    if name == "ListId":  # the counter example groups tasks by list
        return {"S": f"list-{i % 3}"}
    return {"S": f"{name.lower()}-{i:03d}"}


def write_samples(cloud: LocalCloud, table: str, items: int) -> TableWrites:
    """Insert ``items`` items, modify half, delete a few, and let a few expire by TTL.

    The item shape serves every example pattern: a ``status`` (routing, notifications),
    an ``estimate`` number (the counter's sum), an ``owner`` (the report), and the TTL
    attribute in the past for the expiring ones (the archiver).
    """
    ddb = cloud.client("dynamodb")
    description = ddb.describe_table(TableName=table)["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    keys = [k["AttributeName"] for k in description["KeySchema"]]
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    ttl_attribute = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None
    writes = TableWrites(table)

    def key(i: int) -> dict[str, dict[str, str]]:
        return {k: _key_value(types[k], i, k) for k in keys}

    expiring = set(range(items - 3, items)) if ttl_attribute and items >= 8 else set()
    deleted = set(range(items - 6, items - 3)) if items >= 8 else set()
    for i in range(items):
        item = {**key(i), "status": {"S": "new"}, "estimate": {"N": str(i + 1)},
                "owner": {"S": f"user-{i % 4}"}, "name": {"S": f"sample {i}"}}
        if i in expiring:
            item[ttl_attribute] = {"N": str(int(time.time()) - 3600)}
            writes.expiring += 1
        ddb.put_item(TableName=table, Item=item)
        writes.inserted += 1
    for i in range(0, items, 2):
        if i in expiring or i in deleted:
            continue
        ddb.update_item(
            TableName=table, Key=key(i), UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "shipped"}},
        )
        writes.modified += 1
    for i in sorted(deleted):
        ddb.delete_item(TableName=table, Key=key(i))
        writes.deleted += 1
    return writes


def _expired_left(cloud: LocalCloud, writes: TableWrites) -> int:
    if not writes.expiring:
        return 0
    ddb = cloud.client("dynamodb")
    ttl = ddb.describe_time_to_live(TableName=writes.table)["TimeToLiveDescription"]
    now = int(time.time())
    items = ddb.scan(TableName=writes.table)["Items"]
    name = ttl["AttributeName"]
    return sum(1 for item in items if name in item and int(item[name]["N"]) < now)


# -- the run ----------------------------------------------------------------------


def run(
    app: str | None = None,
    *,
    project: str | Path = ".",
    items: int = 20,
    timeout: float = 120,
    out: TextIO | None = None,
    before_polling: Callable[[Deployment], None] | None = None,
    data_dir: str | Path | None = None,
    enforce_iam: bool = True,
) -> RunReport:
    """Synthesize, deploy into a fresh local cloud, write samples, poll, report.

    ``before_polling`` gets the deployment after the writes (tests inject faults there).
    ``data_dir`` runs the cloud in persistent mode (see :class:`LocalCloud`).
    ``enforce_iam`` checks each function's calls against its role (default ``True``;
    see :class:`LocalCloud`); calls it denied are listed in the report.
    """
    out = out or sys.stdout
    project = Path(project).resolve()
    say = _Progress(out)
    with tempfile.TemporaryDirectory(prefix="ddb-stream-patterns-run-") as tmp:
        say(f"synthesizing {app or _app_command(project)!r}")
        assembly = synthesize(app or _app_command(project), Path(tmp) / "cdk.out", project)
        say("starting DynamoDB Local, moto's server and the OpenSearch stand-in")
        with LocalCloud(data_dir=data_dir, enforce_iam=enforce_iam) as cloud, \
                FakeOpenSearch() as search:
            host = search.endpoint.split("://", 1)[1]
            with deploy(
                cloud, assembly,
                stand_ins={"AWS::OpenSearchService::Domain": {"DomainEndpoint": host}},
            ) as deployment:
                _point_at_stand_in(deployment, host, search.endpoint)
                say("deployed:\n" + _indent(deployment.summary()))
                say("starting function workers")
                deployment.start_functions()
                sources = _stream_tables(deployment)
                writes = []
                for table in sources:
                    writes.append(write_samples(cloud, table, items))
                    w = writes[-1]
                    say(f"wrote {table}: {w.inserted} inserted, {w.modified} modified, "
                        f"{w.deleted} deleted, {w.expiring} set to expire")
                if before_polling is not None:
                    before_polling(deployment)
                say("running the event source mappings until every stream and queue is idle")
                pollers = Pollers(deployment.mappings, cloud.client,
                                  clock_scale=cloud.clock_scale)
                _poll(pollers, cloud, writes, timeout, say)
                report = RunReport(
                    deployment_summary=deployment.summary(),
                    writes=writes,
                    flows=_flows(deployment, pollers),
                    queues=_queues(cloud, deployment),
                    outcomes=_outcomes(cloud, deployment, search),
                    denied={key: (fn.denied, fn.last_denied or "")
                            for key, fn in deployment.functions.items() if fn.denied},
                    sns_denied=_sns_denied(cloud, deployment),
                )
                report.text = (_render(report) + _denied(report)
                               + _undeliverable(pollers, cloud))
                print(report.text, file=out)
                return report


def _denied(report: RunReport) -> str:
    """The calls IAM denied (enforced locally), per function: the latest error each."""
    if not report.denied and not report.sns_denied:
        return ""
    lines = ["", "Denied by IAM (policies enforced locally):"]
    for key, (count, last) in report.denied.items():
        lines.append(f"  {key}: {count} call(s) denied; last: {last}")
    for key, value in report.sns_denied.items():
        count, _, topic = value.partition(" ")
        lines.append(f"  {key}: {count} SNS delivery(ies) refused by the queue policy; "
                     f"last from {topic}")
    return "\n".join(lines) + "\n"


def _sns_denied(cloud: LocalCloud, deployment: Deployment) -> dict[str, str]:
    from .deployer import QUEUE_DENIED_TAG

    sqs = cloud.client("sqs")
    found = {}
    for key, url in deployment.queues.items():
        tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        if QUEUE_DENIED_TAG in tags:
            found[key] = tags[QUEUE_DENIED_TAG]
    return found


def _point_at_stand_in(deployment: Deployment, host: str, endpoint: str) -> None:
    # The template builds https://<DomainEndpoint>; the stand-in speaks plain http.
    for function in deployment.functions.values():
        if function.environment.get("SEARCH_ENDPOINT") == f"https://{host}":
            function.environment["SEARCH_ENDPOINT"] = endpoint


def _stream_tables(deployment: Deployment) -> list[str]:
    """Tables that some mapping reads, in deployment order."""
    streams = {m.source_arn for m in deployment.mappings if m.kind == "dynamodb"}
    return [t for key, t in deployment.tables.items() if deployment.streams.get(key) in streams]


def _poll(pollers: Pollers, cloud: LocalCloud, writes: list[TableWrites], timeout: float,
          say: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    pollers.run_until_idle(timeout=timeout, wait_for_delayed=False)
    # TTL deletions arrive when DynamoDB Local's sweep runs (about every 10 s).
    if any(w.expiring for w in writes):
        say("waiting for DynamoDB Local's TTL sweep to expire the sample items")
        while time.monotonic() < deadline and any(_expired_left(cloud, w) for w in writes):
            pollers.poll_once()
            time.sleep(0.5)
        pollers.run_until_idle(timeout=max(5.0, deadline - time.monotonic()),
                               wait_for_delayed=False)


def _label(deployment: Deployment, mapping: MappingSpec) -> str:
    """The pattern a mapping feeds, by construct path, and what it reads."""
    path = mapping.logical_id
    for resource in deployment.resources:
        if resource.local is mapping:
            path = resource.path or resource.key
    function_path = path.split("/DynamoDBEventSource", 1)[0].split("/SqsEventSource", 1)[0]
    pattern = function_path.removesuffix("/Function").removesuffix("Function")
    return f"{pattern} ({'stream' if mapping.kind == 'dynamodb' else 'queue'})"


def _flows(deployment: Deployment, pollers: Pollers) -> dict[str, MappingStats]:
    stats = pollers.stats()
    return {_label(deployment, m): stats[m.logical_id] for m in deployment.mappings}


def _queues(cloud: LocalCloud, deployment: Deployment) -> dict[str, dict[str, int]]:
    sqs = cloud.client("sqs")
    depths = {}
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
             "ApproximateNumberOfMessagesNotVisible"]
    for key, url in deployment.queues.items():
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        resource = next(r for r in deployment.resources if r.key == key)
        depths[(resource.path or key).rsplit("/Resource", 1)[0]] = {
            "visible": int(attributes[names[0]]),
            "delayed": int(attributes[names[1]]),
            "in_flight": int(attributes[names[2]]),
        }
    return depths


def _outcomes(cloud: LocalCloud, deployment: Deployment, search: FakeOpenSearch) -> dict:
    """What the data patterns left behind: archive objects, counts, reports, documents."""
    outcomes: dict[str, Any] = {}
    s3 = cloud.client("s3")
    for key, bucket in deployment.buckets.items():
        objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        if objects:
            outcomes[f"bucket {key}"] = sorted(o["Key"] for o in objects)
    ddb = cloud.client("dynamodb")
    sources = set(_stream_tables(deployment))
    # Counter tables, and their partition key, as the counter functions are configured.
    counter_keys = {
        f.environment["COUNTER_TABLE"]: f.environment.get("COUNTER_PARTITION_KEY", "pk")
        for f in deployment.functions.values()
        if "COUNTER_TABLE" in f.environment
    }
    for key, table in deployment.tables.items():
        if table in sources:
            continue
        items = ddb.scan(TableName=table)["Items"]
        pk = counter_keys.get(table)
        if pk is None:
            outcomes[f"table {key}"] = len(items)
            continue
        outcomes[f"table {key}"] = {
            i[pk]["S"]: {k: Decimal(v["N"]) for k, v in i.items() if "N" in v}
            for i in items
            if not i[pk]["S"].startswith(MARKER_PREFIX)
        }
    indexes = {f.environment.get("INDEX_NAME") for f in deployment.functions.values()}
    for index in sorted(i for i in indexes if i):
        outcomes[f"search index {index}"] = len(search.documents(index))
    return outcomes


# -- output -----------------------------------------------------------------------


class _Progress:
    def __init__(self, out: TextIO) -> None:
        self.out, self.start = out, time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", file=self.out, flush=True)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def _render(report: RunReport) -> str:
    lines = ["", "What each pattern did", "=" * 21]
    header = (f"{'read':>5} {'filtered':>8} {'ok':>5} {'failed':>6} {'to DLQ':>6} "
              f"{'calls':>5} {'errors':>6}")
    for stack, rows in _by_stack(report.flows).items():
        lines.append(f"{stack:<52} {header}")
        for name, s in rows:
            lines.append(f"  {name[-50:]:<50} {s.records_in:>5} {s.filtered_out:>8} "
                         f"{s.succeeded:>5} {s.failed_attempts:>6} "
                         f"{s.sent_to_failure_destination:>6} {s.invocations:>5} {s.errors:>6}")
    lines += render_errors(report.flows)
    lines += ["", "Queues (messages left: visible, delayed)"]
    for stack, rows in _by_stack(report.queues).items():
        lines.append(f"{stack}")
        for name, d in rows:
            lines.append(f"  {name[-50:]:<50} {d['visible']:>5} {d['delayed']:>8}")
    lines += ["", "Results"]
    for name, value in report.outcomes.items():
        if isinstance(value, list):
            more = " ..." if len(value) > 3 else ""
            value = f"{len(value)} object(s): {', '.join(value[:3])}{more}"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}: {dict((a, str(n)) for a, n in v.items())}"
                              for k, v in sorted(value.items()))
        lines.append(f"  {name}: {value}")
    return "\n".join(lines)


def render_errors(flows: dict[str, MappingStats]) -> list[str]:
    """Lines naming each mapping whose invocations failed: how often, and the last error."""
    failing = {name: s for name, s in sorted(flows.items()) if s.errors}
    if not failing:
        return []
    lines = ["", "Errors (failed invocations; the last error of each mapping)"]
    for name, s in failing.items():
        lines.append(f"  {name}: {s.errors} failed invocation(s), last: {s.last_error}")
    return lines


def _undeliverable(pollers: Pollers, cloud: LocalCloud) -> str:
    count = sum(getattr(p, "undeliverable", 0) for p in pollers.pollers.values())
    return (f"\n  on-failure records the destination did not take: {count}"
            f" (kept in {cloud.undeliverable_path})")


def _by_stack(values: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    grouped: dict[str, list[tuple[str, Any]]] = {}
    for path, value in sorted(values.items()):
        stack, _, rest = path.partition("/")
        grouped.setdefault(stack, []).append((rest, value))
    return grouped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ddb_stream_patterns.local",
        description="Deploy a CDK app onto local AWS stand-ins; run every pattern end to end.",
    )
    parser.add_argument("--app", help="the app command (default: cdk.json's app)")
    parser.add_argument("--project", default=".", help="directory with cdk.json (default: .)")
    parser.add_argument(
        "--items", type=int, default=20, help="sample items per table (default: 20)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for idle")
    parser.add_argument(
        "--data-dir",
        help="persistent mode: DynamoDB Local's database, the stream checkpoints and the "
             "undeliverable on-failure records live here; a DynamoDB Local that dies is "
             "restarted (default: in memory)",
    )
    parser.add_argument(
        "--no-enforce-iam", dest="enforce_iam", action="store_false",
        help="do not check functions' AWS calls against their roles' IAM policies "
             "(default: enforced, a missing grant fails with AccessDenied as in AWS)",
    )
    args = parser.parse_args(argv)
    exit_on_signals()  # SIGTERM / SIGHUP unwind like Ctrl-C: every server and worker stops
    if args.items < 1:
        parser.error(f"--items must be at least 1, got {args.items}")
    run(args.app, project=args.project, items=args.items, timeout=args.timeout,
        data_dir=args.data_dir, enforce_iam=args.enforce_iam)
    return 0
