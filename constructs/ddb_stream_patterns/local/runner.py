"""One command, end to end: synthesize an app, start the local cloud, deploy every stack,
write items (yours, or samples), run the pollers, and print what each pattern did.

``python -m ddb_stream_patterns.local`` runs it on ``cdk.json``'s app (yours, or the
examples in this repository); :func:`run` is the same from Python and returns a
:class:`RunReport` for tests. ``--items-file TABLE=FILE.jsonl`` and ``--items-from
module:function`` give your own items (see :func:`load_items_file`,
:func:`load_items_function`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
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
    "ItemsError",
    "RunReport",
    "TableWrites",
    "UserItem",
    "load_items_file",
    "load_items_function",
    "main",
    "render_errors",
    "run",
    "synthesize",
    "write_items",
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
    #: mapping (a ``flows`` key) -> its on-failure destination's ARN (queue, topic or
    #: bucket), for the mappings that have one
    failure_destinations: dict[str, str] = field(default_factory=dict)
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


def _table_shape(ddb: Any, table: str) -> tuple[dict[str, str], list[str], str | None]:
    """A deployed table's attribute types, key attribute names and TTL attribute (if on)."""
    description = ddb.describe_table(TableName=table)["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    keys = [k["AttributeName"] for k in description["KeySchema"]]
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    ttl_attribute = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None
    return types, keys, ttl_attribute


def write_samples(cloud: LocalCloud, table: str, items: int) -> TableWrites:
    """Insert ``items`` items, modify half, delete a few, and let a few expire by TTL.

    The item shape serves every example pattern: a ``status`` (routing, notifications),
    an ``estimate`` number (the counter's sum), an ``owner`` (the report), and the TTL
    attribute in the past for the expiring ones (the archiver).
    """
    ddb = cloud.client("dynamodb")
    types, keys, ttl_attribute = _table_shape(ddb, table)
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


# -- your own items ---------------------------------------------------------------


class ItemsError(ValueError):
    """A user item that cannot be written: the message names its file and line (or the
    function and index) and the problem."""


@dataclass(frozen=True)
class UserItem:
    """One item to write, as plain Python values (``{"orderId": "o-1", "total": 12}``),
    with where it came from (``"orders.jsonl line 3"``) for error messages."""

    item: Mapping[str, Any]
    origin: str


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number DynamoDB can store")


def load_items_file(path: str | Path) -> list[UserItem]:
    """The items of a JSON Lines file: one JSON object per line, in plain JSON
    (``{"orderId": "o-1", "total": 12.5, "tags": ["a"]}``), not DynamoDB JSON.

    Strings, numbers (kept exact, as ``Decimal``), booleans, null, lists and objects map to
    DynamoDB's S, N, BOOL, NULL, L and M. Blank lines are skipped. Raises
    :class:`ItemsError` naming the file, the line and the problem.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ItemsError(f"{path}: cannot read the items file: {exc.strerror or exc}") from exc
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        origin = f"{path} line {number}"
        try:
            value = json.loads(line, parse_float=Decimal, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ItemsError(f"{origin}: not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise ItemsError(f"{origin}: expected a JSON object (one item per line), got "
                             f"{type(value).__name__} {line.strip()[:60]}")
        if _looks_like_dynamodb_json(value):
            raise ItemsError(f"{origin}: this looks like DynamoDB JSON ({line.strip()[:60]}); "
                             f"write plain JSON, e.g. {{\"orderId\": \"o-1\"}} instead of "
                             f"{{\"orderId\": {{\"S\": \"o-1\"}}}}")
        items.append(UserItem(value, origin))
    return items


def _looks_like_dynamodb_json(item: Mapping[str, Any]) -> bool:
    tags = {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
    return bool(item) and all(
        isinstance(v, dict) and len(v) == 1 and next(iter(v)) in tags for v in item.values()
    )


def load_items_function(spec: str, project: str | Path = ".") -> dict[str, list[UserItem]]:
    """Call ``module:function`` (imported with ``project`` on ``sys.path``); it returns
    ``{table: [item, ...]}``, each table a construct path (``"MyStack/Orders"``) or a
    ``"Stack/LogicalId"``, each item a dict of Python values (``set``, ``bytes``, ``int``,
    ``float``, ``Decimal``, ``str``, ``bool``, ``None``, lists and dicts)."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ItemsError(f"--items-from must be module:function, got {spec!r}")
    project = str(Path(project).resolve())
    added = project not in sys.path
    if added:
        sys.path.insert(0, project)
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ItemsError(f"--items-from {spec}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(project)
    result = function()
    if not isinstance(result, Mapping):
        raise ItemsError(f"{spec}() must return {{table path: [items]}}, got "
                         f"{type(result).__name__}")
    loaded: dict[str, list[UserItem]] = {}
    for table, items in result.items():
        if not isinstance(table, str) or isinstance(items, (str, bytes, Mapping)) or \
                not isinstance(items, Iterable):
            raise ItemsError(f"{spec}() must return {{table path: [items]}}: got "
                             f"{table!r}: {type(items).__name__}")
        loaded[table] = []
        for index, item in enumerate(items):
            origin = f"{spec}()[{table!r}][{index}]"
            if not isinstance(item, Mapping):
                raise ItemsError(f"{origin}: an item must be a dict, got {type(item).__name__}")
            loaded[table].append(UserItem(item, origin))
    return loaded


def _to_dynamodb(value: Any) -> Any:
    """Python values → what boto3's TypeSerializer takes (floats as exact decimals)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{value} is not a number DynamoDB can store")
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _to_dynamodb(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamodb(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {_to_dynamodb(v) for v in value}
    return value


_KEY_TYPE_NAMES = {"S": "a string", "N": "a number", "B": "binary (bytes)"}


def write_items(cloud: LocalCloud, table: str, items: Iterable[UserItem | Mapping[str, Any]],
                label: str | None = None) -> TableWrites:
    """Put ``items`` into ``table`` in order (an item whose key was written before replaces
    it: a MODIFY on the stream). Each item's key attributes are checked against the
    table's key schema first; :class:`ItemsError` names the item's origin and the problem.
    Items whose TTL attribute is already past count as ``expiring``."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    ddb = cloud.client("dynamodb")
    types, keys, ttl_attribute = _table_shape(ddb, table)
    key_text = ", ".join(f"{k} ({types[k]})" for k in keys)
    writes = TableWrites(table)
    seen: set[tuple] = set()
    for index, entry in enumerate(items):
        user = entry if isinstance(entry, UserItem) else \
            UserItem(entry, f"{label or table} item {index}")
        try:
            item = {k: serializer.serialize(_to_dynamodb(v)) for k, v in user.item.items()}
        except (TypeError, ValueError) as exc:
            raise ItemsError(f"{user.origin}: cannot be written to DynamoDB: {exc}") from exc
        for name in keys:
            if name not in item:
                raise ItemsError(f"{user.origin}: no key attribute {name!r} (the key of "
                                 f"{label or table} is {key_text})")
            given = next(iter(item[name]))
            if given != types[name]:
                raise ItemsError(f"{user.origin}: key attribute {name!r} must be "
                                 f"{_KEY_TYPE_NAMES.get(types[name], types[name])}, got "
                                 f"{user.item[name]!r}")
        try:
            ddb.put_item(TableName=table, Item=item)
        except Exception as exc:  # the service's own validation (sizes, empty keys...)
            raise ItemsError(f"{user.origin}: DynamoDB refused the item: {exc}") from exc
        key = tuple(json.dumps(item[k], sort_keys=True) for k in keys)
        if key in seen:
            writes.modified += 1
        else:
            seen.add(key)
            writes.inserted += 1
        if ttl_attribute and "N" in item.get(ttl_attribute, {}) and \
                Decimal(item[ttl_attribute]["N"]) < int(time.time()):
            writes.expiring += 1
    return writes


def _resolve_table(deployment: Deployment, table: str) -> str:
    """The ``"Stack/LogicalId"`` of the table a user named by construct path, by
    ``"Stack/LogicalId"`` or by a bare logical ID."""
    try:
        deployment.tables[table]
    except KeyError:
        pass
    else:
        return next(k for k in deployment.tables
                    if k == table or k.split("/", 1)[1] == table)
    path = table.strip("/")
    candidates = [r for r in deployment.under(path) if r.key in deployment.tables]
    exact = [r for r in candidates if r.path in (path, f"{path}/Resource")]
    if len(exact) == 1 or len(candidates) == 1:
        return (exact or candidates)[0].key
    known = ", ".join(
        (next((r.path for r in deployment.resources if r.key == k), None) or k)
        .removesuffix("/Resource")
        for k in deployment.tables
    )
    raise ItemsError(f"no single table {table!r} in the app (tables: {known or 'none'})")


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
    table_items: Mapping[str, Iterable[UserItem | Mapping[str, Any]]] | None = None,
    sqs_redelivery_rate: float = 0.0,
) -> RunReport:
    """Synthesize, deploy into a fresh local cloud, write items, poll, report.

    ``table_items`` maps a table (its construct path, e.g. ``"MyStack/Orders"``, or
    ``"Stack/LogicalId"``) to the items to write into it, in order (see
    :func:`write_items`); every other table a mapping reads gets ``items`` sample items
    (none when ``items`` is 0).

    ``before_polling`` gets the deployment after the writes (tests inject faults there).
    ``data_dir`` runs the cloud in persistent mode (see :class:`LocalCloud`).
    ``enforce_iam`` checks each function's calls against its role (default ``True``;
    see :class:`LocalCloud`); calls it denied are listed in the report.
    ``sqs_redelivery_rate`` forces redelivery on every SQS event source (see
    :class:`LocalCloud`; default 0, off).
    """
    out = out or sys.stdout
    project = Path(project).resolve()
    say = _Progress(out)
    with tempfile.TemporaryDirectory(prefix="ddb-stream-patterns-run-") as tmp:
        say(f"synthesizing {app or _app_command(project)!r}")
        assembly = synthesize(app or _app_command(project), Path(tmp) / "cdk.out", project)
        say("starting DynamoDB Local, moto's server and the OpenSearch stand-in")
        with LocalCloud(data_dir=data_dir, enforce_iam=enforce_iam,
                        sqs_redelivery_rate=sqs_redelivery_rate) as cloud, \
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
                given = {_resolve_table(deployment, t): (t, v)
                         for t, v in (table_items or {}).items()}
                writes = []
                for key, (label, user_items) in given.items():
                    writes.append(write_items(cloud, deployment.tables[key], user_items,
                                              label=label))
                    say(_wrote(writes[-1], f"your items for {label}"))
                for key in _stream_table_keys(deployment):
                    if key in given or items < 1:
                        continue
                    writes.append(write_samples(cloud, deployment.tables[key], items))
                    say(_wrote(writes[-1], "sample items"))
                if before_polling is not None:
                    before_polling(deployment)
                say("running the event source mappings until every stream and queue is idle")
                pollers = Pollers(deployment.mappings, cloud.client,
                                  clock_scale=cloud.clock_scale,
                                  sqs_redelivery_rate=cloud.sqs_redelivery_rate)
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
                    failure_destinations={_label(deployment, m): m.on_failure_arn
                                          for m in deployment.mappings if m.on_failure_arn},
                )
                report.text = (_render(report) + _denied(report)
                               + _undeliverable(pollers, cloud))
                print(report.text, file=out)
                return report


def _denied(report: RunReport) -> str:
    """The calls IAM denied (enforced locally), per function: the latest error each."""
    mappings = {name: s for name, s in sorted(report.flows.items()) if s.denied}
    if not report.denied and not report.sns_denied and not mappings:
        return ""
    lines = ["", "Denied by IAM (policies enforced locally):"]
    for key, (count, last) in report.denied.items():
        lines.append(f"  {key}: {count} call(s) denied; last: {last}")
    for name, s in mappings.items():
        # The mapping's own reads and on-failure sends (made with the function's role).
        lines.append(f"  {name}: event source mapping denied {s.denied} time(s) "
                     f"({s.state_transition_reason or 'on-failure send'}); last: {s.last_denied}")
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


def _wrote(w: TableWrites, what: str) -> str:
    return (f"wrote {what} to {w.table}: {w.inserted} inserted, {w.modified} modified, "
            f"{w.deleted} deleted, {w.expiring} set to expire")


def _stream_table_keys(deployment: Deployment) -> list[str]:
    """``"Stack/LogicalId"`` of the tables that some mapping reads, in deployment order."""
    streams = {m.source_arn for m in deployment.mappings if m.kind == "dynamodb"}
    return [key for key in deployment.tables if deployment.streams.get(key) in streams]


def _stream_tables(deployment: Deployment) -> list[str]:
    """Tables that some mapping reads, in deployment order."""
    return [deployment.tables[key] for key in _stream_table_keys(deployment)]


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
    if path == mapping.logical_id and hasattr(mapping.function, "stream_name"):
        path = mapping.function.name  # the Kinesis feeder: DynamoDB's side, no construct
    function_path = re.split(r"/(?:DynamoDB|Sqs|Kinesis|KinesisConsumer)EventSource", path)[0]
    pattern = function_path.removesuffix("/Function").removesuffix("Function")
    kind = {"dynamodb": "stream", "sqs": "queue", "kinesis": "kinesis"}[mapping.kind]
    return f"{pattern} ({kind})"


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
    # Replica tables, and the attribute that marks a deleted item's tombstone (behind a
    # standard queue or Kinesis the replicator keeps one, so a late record cannot revive it).
    tombstones = {
        f.environment["TARGET_TABLE"]: f.environment.get("TOMBSTONE_ATTRIBUTE", "_deleted")
        for f in deployment.functions.values()
        if "TARGET_TABLE" in f.environment
    }
    for key, table in deployment.tables.items():
        if table in sources:
            continue
        items = ddb.scan(TableName=table)["Items"]
        pk = counter_keys.get(table)
        if pk is None:
            marker = tombstones.get(table)
            outcomes[f"table {key}"] = sum(1 for i in items if marker not in i)
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
              f"{'to S3':>5} {'dropped':>7} {'calls':>5} {'errors':>6}")
    for stack, rows in _by_stack(report.flows).items():
        lines.append(f"{stack:<52} {header}")
        for name, s in rows:
            path = f"{stack}/{name}" if name else stack  # the flows key, as _by_stack split it
            to_dlq, to_s3 = _delivered(s, report.failure_destinations.get(path))
            lines.append(f"  {name[-50:]:<50} {s.records_in:>5} {s.filtered_out:>8} "
                         f"{s.succeeded:>5} {s.failed_attempts:>6} {to_dlq:>6} {to_s3:>5} "
                         f"{s.dropped:>7} {s.invocations:>5} {s.errors:>6}")
    lines += ["  to DLQ, to S3: records given up on, delivered to the on-failure queue (or topic),",
              "  bucket (payload included); dropped: given up on and not delivered"]
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


def _delivered(stats: MappingStats, destination: str | None) -> tuple[int, int]:
    """The records ``stats``' mapping delivered on failure: (to a queue or topic, to a
    bucket), by its destination's ARN (``OnFailureDestinationDeliveredEventCount``)."""
    if destination is not None and destination.startswith("arn:aws:s3:"):
        return 0, stats.on_failure_delivered
    return stats.on_failure_delivered, 0


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
        "--items", type=int, default=20,
        help="sample items per stream table that has none of yours; 0: none (default: 20)"
    )
    parser.add_argument(
        "--items-file", action="append", default=[], metavar="TABLE=FILE.jsonl",
        help="write FILE's items into TABLE (a construct path such as MyStack/Orders, or "
             "Stack/LogicalId) instead of samples; one plain-JSON object per line, written "
             "in order (a repeated key is a MODIFY). Repeatable",
    )
    parser.add_argument(
        "--items-from", metavar="MODULE:FUNCTION",
        help="call FUNCTION of MODULE (importable from --project) for items: it returns "
             "{table path: [item dicts]}; combined with --items-file",
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
    parser.add_argument(
        "--sqs-redelivery-rate", type=float, default=0.0, metavar="RATE",
        help="forced redelivery on every SQS event source, in [0, 1): the share of "
             "processed messages that come back (a lost DeleteMessage, a duplicate SNS "
             "delivery), with standard-queue batches shuffled (default: 0, off)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.sqs_redelivery_rate < 1:
        parser.error(f"--sqs-redelivery-rate must be in [0, 1), got {args.sqs_redelivery_rate}")
    exit_on_signals()  # SIGTERM / SIGHUP unwind like Ctrl-C: every server and worker stops
    if args.items < 0:
        parser.error(f"--items must be 0 or more, got {args.items}")
    try:
        table_items = _load_items(args.items_file, args.items_from, args.project)
    except ItemsError as exc:
        parser.error(str(exc))
    try:
        run(args.app, project=args.project, items=args.items, timeout=args.timeout,
            data_dir=args.data_dir, enforce_iam=args.enforce_iam, table_items=table_items,
            sqs_redelivery_rate=args.sqs_redelivery_rate)
    except ItemsError as exc:  # known only once deployed: a table name, a key attribute
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _load_items(files: list[str], function: str | None,
                project: str) -> dict[str, list[UserItem]]:
    """``--items-file TABLE=FILE`` options and ``--items-from`` → ``{table: items}``."""
    loaded: dict[str, list[UserItem]] = {}
    for option in files:
        table, sep, path = option.partition("=")
        if not sep or not table or not path:
            raise ItemsError(f"--items-file must be TABLE=FILE.jsonl, got {option!r}")
        loaded.setdefault(table, []).extend(load_items_file(path))
    if function:
        for table, items in load_items_function(function, project).items():
            loaded.setdefault(table, []).extend(items)
    return loaded
