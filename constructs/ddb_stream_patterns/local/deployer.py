"""Deploy a synthesized cloud assembly (``cdk.out``) into the local cloud, with boto3.

moto's CloudFormation skips subscriptions, queue policies and alarms, and its DynamoDB
streams are unfaithful, so no CloudFormation engine runs here: :func:`deploy` reads
each stack's template and creates every resource itself, in dependency order, with
intrinsics resolved against what it already created.

- DynamoDB tables (``AWS::DynamoDB::GlobalTable`` / ``Table``) → DynamoDB Local,
  with their stream and TTL.
- SQS queues, SNS topics and subscriptions, S3 buckets, CloudWatch alarms and
  dashboards → moto's server.
- Lambda functions → :class:`~.functions.LocalFunction` workers (never moto's Lambda);
  layers add their ``python/`` directory to the function's path.
- Event source mappings → :class:`~.model.MappingSpec` objects for the pollers
  (never created in moto: that would empty the stream buffer).
- IAM roles and policies → *enforced* (with ``LocalCloud(enforce_iam=True)``, the
  default): each function's AWS calls, and its event source mappings' reads and
  on-failure sends, are checked against its role's identity policies
  (``iam.RoleAuthorizer``); *skipped* with ``enforce_iam=False``.
- Resource policies evaluated with ``enforce_iam`` → *enforced*: SQS queue policies (SNS
  delivery), S3 bucket policies (function and mapping calls), OpenSearch domain access
  policies (the runtime's SigV4 requests), SNS topic policies and KMS key policies
  (CloudWatch alarm actions, checked at deploy: :attr:`Deployment.alarm_action_findings`).
- Other resource policies, log groups, KMS aliases, CDK metadata → recorded as *skipped*.
- Anything that cannot run here (OpenSearch domains, VPCs, unknown types) → recorded
  as *unsupported*, with placeholder attributes so dependants still deploy.

>>> with LocalCloud() as cloud, deploy(cloud, "cdk.out") as deployment:   # doctest: +SKIP
...     deployment.by_path("DdbStreamPatterns-SimpleController/Orders").physical_id
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from . import kinesis, ttl_sweep
from .cloud import LocalCloud
from .functions import LocalFunction
from .iam import RoleAuthorizer, evaluate
from .intrinsics import NO_VALUE, Context, IntrinsicError, evaluate_condition, references, resolve
from .model import MappingSpec, MappingStats

__all__ = [
    "AlarmActionFinding",
    "DeployedResource",
    "Deployment",
    "DeploymentError",
    "ResourceMap",
    "alarm_action_findings",
    "deploy",
    "physical_name",
]

Status = Literal["deployed", "enforced", "skipped", "unsupported"]
V = TypeVar("V")
_LOGGER = logging.getLogger(__name__)


class DeploymentError(RuntimeError):
    """A resource could not be created (the message names stack, logical ID and type)."""


# ------------------------------------------------------------------------ results


@dataclass
class DeployedResource:
    """One template resource and what became of it locally."""

    stack: str
    logical_id: str
    type: str
    status: Status
    physical_id: str | None = None  # what Ref returns (placeholder when not deployed)
    reason: str | None = None  # why it was skipped / unsupported
    path: str | None = None  # construct path, e.g. "Stack/Orders/Resource"
    attributes: dict[str, Any] = field(default_factory=dict)  # Fn::GetAtt values
    notes: list[str] = field(default_factory=list)  # what is not emulated about it
    local: Any = None  # the local stand-in: LocalFunction, MappingSpec, layer dir...

    @property
    def key(self) -> str:
        """``"Stack/LogicalId"``: the key in the deployment's maps."""
        return f"{self.stack}/{self.logical_id}"


class ResourceMap(Mapping[str, V], Generic[V]):
    """A map keyed ``"Stack/LogicalId"`` that also answers a bare logical ID when unique.

    Logical IDs repeat across stacks (every example stack has ``AlarmsTopic3A2DFEBA``): a
    bare ID that matches several stacks raises ``KeyError`` naming them.
    """

    def __init__(self) -> None:
        self._items: dict[str, V] = {}

    def _set(self, stack: str, logical_id: str, value: V) -> None:
        self._items[f"{stack}/{logical_id}"] = value

    def __getitem__(self, key: str) -> V:
        if key in self._items:
            return self._items[key]
        if "/" not in key:
            matches = [k for k in self._items if k.split("/", 1)[1] == key]
            if len(matches) == 1:
                return self._items[matches[0]]
            if matches:
                raise KeyError(f"{key!r} is in several stacks: use one of {matches}")
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ResourceMap({self._items!r})"


class Deployment:
    """What :func:`deploy` created; close it (or use ``with``) to stop the functions.

    Attributes
    ----------
    stacks
        Stack name → every resource of its template, in creation order, any status.
    tables, streams, queues, topics, buckets
        ``"Stack/LogicalId"`` (or a unique bare logical ID) → table name, stream ARN,
        queue URL, topic ARN, bucket name.
    functions
        → :class:`LocalFunction`.
    mappings
        Every event source mapping, as :class:`MappingSpec` (for the pollers).
    unsupported, skipped
        Resources not deployed, each with its ``reason``.
    enforced
        IAM roles and policies not created in a service but enforced locally: their
        identity policies decide each function's calls (``role_policies``).
    role_policies
        Role name → the identity policy documents attached to it in the templates
        (inline, ``AWS::IAM::Policy``, customer-managed policies), intrinsics resolved.
    warnings
        Best-effort steps that failed (a lifecycle rule moto refused, a layer that is
        not in the assembly...).
    ttl_tables, ttl_sweep_overflow
        Every TTL-enabled table of the DynamoDB Local instance after this deploy (earlier
        deploys' tables included), and how many more than DynamoDB Local's TTL sweep
        serves (7). Past 7 the local cloud sweeps the left-out tables itself
        (``cloud.ttl_sweeper``, :mod:`~ddb_stream_patterns.local.ttl_sweep`): their
        expiries arrive 20-25 s after they expire, as TTL ``REMOVE`` records; a note
        says so. Checked when this deploy enables TTL on a table; empty and 0 otherwise.
    notes
        What the local cloud does differently for this app (such as the TTL sweep above).
    outputs, exports
        Stack outputs (stack → key → value) and exported values.
    """

    def __init__(self, cloud: LocalCloud, assembly_dir: Path) -> None:
        self.cloud = cloud
        self.assembly_dir = assembly_dir
        self.stacks: dict[str, list[DeployedResource]] = {}
        self.tables: ResourceMap[str] = ResourceMap()
        self.streams: ResourceMap[str] = ResourceMap()
        self.queues: ResourceMap[str] = ResourceMap()
        self.topics: ResourceMap[str] = ResourceMap()
        self.buckets: ResourceMap[str] = ResourceMap()
        self.functions: ResourceMap[LocalFunction] = ResourceMap()
        self.mappings: list[MappingSpec] = []
        self.warnings: list[str] = []
        self.ttl_tables: list[str] = []
        self.ttl_sweep_overflow = 0
        self.notes: list[str] = []
        self._ttl_enabled: list[str] = []  # tables this deploy enabled TTL on
        self.outputs: dict[str, dict[str, Any]] = {}
        self.exports: dict[str, Any] = {}
        self._functions_by_id: dict[str, LocalFunction] = {}  # name and ARN → function
        self._layers: dict[str, Path] = {}  # layer version ARN → unpacked layer dir
        self._queue_urls: dict[str, str] = {}  # queue ARN → URL
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.role_policies: dict[str, list[dict]] = {}
        self._table_arns: dict[str, str] = {}  # table name → ARN as DynamoDB Local gives it
        self._managed_policies: dict[str, dict] = {}  # customer-managed policy ARN → document
        self._managed_links: list[tuple[str, str]] = []  # (role name, managed policy ARN)
        # Resource policies (enforce_iam): what AWS evaluates besides identity policies.
        self.topic_policies: dict[str, list[dict]] = {}  # topic ARN → policy documents
        self.bucket_policies: dict[str, list[dict]] = {}  # bucket name → policy documents
        self.key_policies: dict[str, dict] = {}  # KMS key ARN → key policy
        self.domain_policies: dict[str, list[dict]] = {}  # OpenSearch domain ARN → policies
        self._key_arns: dict[str, str] = {}  # key ID, ARN or alias → key ARN
        self._domain_hosts: dict[str, str] = {}  # OpenSearch endpoint host → domain ARN
        self._topic_keys: dict[str, str] = {}  # topic ARN → its KmsMasterKeyId
        self._alarms: list[tuple[str, str, list[str]]] = []  # (key, alarm ARN, actions)
        #: Alarms whose notifications CloudWatch could not deliver (``enforce_iam``):
        #: see :func:`alarm_action_findings`.
        self.alarm_action_findings: list[AlarmActionFinding] = []

    # ------------------------------------------------------------------ queries

    @property
    def resources(self) -> list[DeployedResource]:
        return [r for rs in self.stacks.values() for r in rs]

    @property
    def deployed(self) -> list[DeployedResource]:
        return [r for r in self.resources if r.status == "deployed"]

    @property
    def unsupported(self) -> list[DeployedResource]:
        return [r for r in self.resources if r.status == "unsupported"]

    @property
    def enforced(self) -> list[DeployedResource]:
        return [r for r in self.resources if r.status == "enforced"]

    def policies_of(self, role_name: str) -> list[dict] | None:
        """The identity policies of a template's role, or None for a role not in them."""
        if role_name not in self.role_policies:
            return None
        linked = [self._managed_policies[arn] for name, arn in self._managed_links
                  if name == role_name and arn in self._managed_policies]
        return self.role_policies[role_name] + linked

    def resource_policies_for(self, resource: str) -> list[dict]:
        """The resource policies AWS evaluates with a function's call on ``resource``:
        the bucket policy of an S3 object or bucket ARN, the access policy of an
        OpenSearch domain path; ``[]`` for anything else (see the README's IAM list)."""
        if resource.startswith("arn:aws:s3:::"):
            bucket = resource[len("arn:aws:s3:::"):].split("/", 1)[0]
            return self.bucket_policies.get(bucket, [])
        if resource.startswith("arn:aws:es:"):
            for domain, policies in self.domain_policies.items():
                if resource == domain or resource.startswith(domain + "/"):
                    return policies
        return []

    def domain_for_host(self, host: str) -> str | None:
        """The ARN of the OpenSearch domain whose endpoint is ``host`` (``host:port``)."""
        return self._domain_hosts.get(host)

    @property
    def skipped(self) -> list[DeployedResource]:
        return [r for r in self.resources if r.status == "skipped"]

    def find(self, stack: str, logical_id_prefix: str) -> DeployedResource:
        """The resource of ``stack`` whose logical ID is ``logical_id_prefix`` + CDK's hash.

        Tries, in order: the exact ID; the prefix followed by an 8-character hash; a
        unique prefix match; the construct path ``stack/logical_id_prefix``.
        """
        resources = self._stack(stack)
        for r in resources:
            if r.logical_id == logical_id_prefix:
                return r
        hashed = re.compile(re.escape(logical_id_prefix) + r"[0-9A-F]{8}$")
        matches = [r for r in resources if hashed.match(r.logical_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            matches = [r for r in resources if r.logical_id.startswith(logical_id_prefix)]
            if len(matches) == 1:
                return matches[0]
        try:
            return self.by_path(f"{stack}/{logical_id_prefix}")
        except LookupError:
            pass
        found = ", ".join(r.logical_id for r in matches) or "none"
        raise LookupError(
            f"{stack}: no single resource for {logical_id_prefix!r} (matches: {found})"
        )

    def by_path(self, path: str) -> DeployedResource:
        """The resource at construct path ``path`` (or its ``/Resource`` child, or the
        only resource under it)."""
        path = path.strip("/")
        for candidate in (path, f"{path}/Resource"):
            for r in self.resources:
                if r.path == candidate:
                    return r
        under = self.under(path)
        if len(under) == 1:
            return under[0]
        listed = ", ".join(f"{r.path} ({r.type})" for r in under) or "none"
        raise LookupError(f"no single resource at construct path {path!r} (under it: {listed})")

    def under(self, path: str) -> list[DeployedResource]:
        """Every resource at or below construct path ``path``."""
        path = path.strip("/")
        return [r for r in self.resources if r.path and (r.path + "/").startswith(path + "/")]

    def path_of(self, mapping: MappingSpec) -> str:
        """The construct path of an event source mapping, without its ``/Resource`` leaf
        (``"Orders/ShippedNotifier/Function/DynamoDBEventSourceOrdersOrders1A2B3C4D"``);
        ``"Stack/LogicalId"`` when the assembly has no path metadata."""
        for r in self.resources:
            if r.local is mapping:
                return (r.path or r.key).removesuffix("/Resource")
        return mapping.logical_id

    def mapping_stats(self) -> dict[str, MappingStats]:
        """Construct path of each event source mapping → its live :class:`MappingStats`."""
        return {self.path_of(m): m.stats for m in self.mappings}

    def stats_under(self, construct: Any) -> dict[str, MappingStats]:
        """The stats of every mapping at or below ``construct`` (a construct, or its path
        string), keyed by mapping construct path."""
        path = _construct_path(construct)
        return {p: s for p, s in self.mapping_stats().items()
                if (p + "/").startswith(path + "/")}

    def stats_of(self, construct: Any) -> MappingStats:
        """The stats of the one event source mapping ``construct`` created (a construct
        such as a ``SimpleController``, or its path string): ``stats_of(stack.notifier)``.

        Raises ``LookupError`` naming the mappings found when there is not exactly one
        (a ``ComplexController`` has a stream mapping and one per queue route: pass the
        route's construct, or use :meth:`stats_under`).
        """
        found = self.stats_under(construct)
        if len(found) != 1:
            listed = ", ".join(found) or "none"
            raise LookupError(f"no single event source mapping under {_construct_path(construct)!r}"
                              f" (found: {listed}); use stats_under() for several")
        return next(iter(found.values()))

    def function_for(self, name_or_arn: str) -> LocalFunction | None:
        """The local function a name or ARN (optionally qualified) designates."""
        return self._functions_by_id.get(_unqualified(name_or_arn))

    def _stack(self, stack: str) -> list[DeployedResource]:
        if stack not in self.stacks:
            raise LookupError(f"no stack {stack!r} (deployed: {', '.join(self.stacks)})")
        return self.stacks[stack]

    # ------------------------------------------------------------------ lifecycle

    def start_functions(self) -> Deployment:
        """Start every function's worker now (they import their handlers in parallel)."""
        for fn in self.functions.values():
            fn.start()
        return self

    def close(self) -> None:
        """Stop every function worker; remove temporary code directories."""
        for fn in self.functions.values():
            fn.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tmp_dir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ddb-stream-patterns-local-")
        return Path(self._tmp.name)

    def summary(self) -> str:
        """A short text report: counts per stack, then what did not deploy and why."""
        lines = []
        for stack, resources in self.stacks.items():
            counts = {
                s: sum(r.status == s for r in resources)
                for s in ("deployed", "enforced", "skipped", "unsupported")
            }
            enforced = f"{counts['enforced']} enforced, " if counts["enforced"] else ""
            lines.append(
                f"{stack}: {counts['deployed']} deployed, {enforced}{counts['skipped']} skipped, "
                f"{counts['unsupported']} unsupported"
            )
        for r in self.unsupported:
            lines.append(f"  unsupported {r.key} ({r.type}): {r.reason}")
        for finding in self.alarm_action_findings:
            lines.append(f"  alarm action dropped: {finding}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)


def _construct_path(construct: Any) -> str:
    """A construct's path (``construct.node.path``), or a path string as given."""
    if isinstance(construct, str):
        return construct.strip("/")
    node = getattr(construct, "node", None)
    if node is None:
        raise TypeError(f"expected a construct or a construct path string, got "
                        f"{type(construct).__name__} {construct!r}")
    return str(node.path).strip("/")


# ------------------------------------------------------------------------ names


_NAME_RULES = {
    # type: (max length, disallowed characters, lower case)
    "table": (255, r"[^A-Za-z0-9_.-]", False),
    "queue": (80, r"[^A-Za-z0-9_-]", False),
    "topic": (256, r"[^A-Za-z0-9_-]", False),
    "bucket": (63, r"[^a-z0-9-]", True),
    "function": (64, r"[^A-Za-z0-9_-]", False),
    "generic": (255, r"[^A-Za-z0-9_.-]", False),
}


def physical_name(stack: str, logical_id: str, kind: str = "generic", suffix: str = "") -> str:
    """A valid name for ``kind`` derived from the stack and logical ID, as CloudFormation
    does when the template gives none (deterministic: no random suffix).

    Too-long names are cut and end with 8 hex characters of a hash of the full name.

    >>> physical_name("My-Stack", "OrdersA9B65338", "table")
    'My-Stack-OrdersA9B65338'
    >>> physical_name("My-Stack", "Jobs", "queue", suffix=".fifo")
    'My-Stack-Jobs.fifo'
    """
    max_len, disallowed, lower = _NAME_RULES[kind]
    base = f"{stack}-{logical_id}"
    if lower:
        base = base.lower()
    base = re.sub(disallowed, "-", base).strip("-.")
    limit = max_len - len(suffix)
    if len(base) > limit:
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        base = base[: limit - 9].rstrip("-.") + "-" + digest
    if len(base) < 3:  # DynamoDB and S3 want at least 3 characters
        base = (base + "-" + hashlib.sha256(base.encode()).hexdigest())[:8]
    return base + suffix


def _unqualified(name_or_arn: str) -> str:
    """A function name or ARN without its version / alias qualifier."""
    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        return ":".join(parts[:7])
    return name_or_arn.split(":", 1)[0]


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _attr_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _client_error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# ------------------------------------------------------------------------ assembly


@dataclass
class _Stack:
    artifact_id: str
    name: str
    directory: Path
    template: dict
    dependencies: list[str]
    paths: dict[str, str]  # logical ID → construct path


@dataclass
class _Assembly:
    stacks: list[_Stack]
    assets: dict[str, Path]  # object key (and asset hash) → source path


def _read_assembly(directory: Path) -> _Assembly:
    manifest_file = directory / "manifest.json"
    if not manifest_file.is_file():
        raise DeploymentError(f"{directory}: no manifest.json (is this a synthesized cdk.out?)")
    manifest = json.loads(manifest_file.read_text())
    stacks: list[_Stack] = []
    assets: dict[str, Path] = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        kind = artifact.get("type")
        props = artifact.get("properties", {})
        if kind == "cdk:cloud-assembly":  # a Stage: a nested assembly
            nested = _read_assembly(directory / props["directoryName"])
            stacks += nested.stacks
            assets.update(nested.assets)
        elif kind == "cdk:asset-manifest":
            assets.update(_read_assets(directory, directory / props["file"]))
        elif kind == "aws:cloudformation:stack":
            template = json.loads((directory / props["templateFile"]).read_text())
            stacks.append(
                _Stack(
                    artifact_id=artifact_id,
                    name=props.get("stackName") or artifact.get("displayName") or artifact_id,
                    directory=directory,
                    template=template,
                    dependencies=list(artifact.get("dependencies", [])),
                    paths=_construct_paths(directory, artifact, template),
                )
            )
    return _Assembly(stacks, assets)


def _read_assets(directory: Path, file: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for asset_hash, asset in json.loads(file.read_text()).get("files", {}).items():
        source = directory / asset["source"]["path"]
        found[asset_hash] = source
        for destination in asset.get("destinations", {}).values():
            if "objectKey" in destination:
                found[destination["objectKey"]] = source
    return found


def _construct_paths(directory: Path, artifact: dict, template: dict) -> dict[str, str]:
    """Logical ID → construct path, from the template's ``aws:cdk:path`` metadata or the
    assembly's ``aws:cdk:logicalId`` entries (CDK writes one or the other)."""
    paths: dict[str, str] = {}
    entries = dict(artifact.get("metadata", {}))
    extra = artifact.get("additionalMetadataFile")
    if extra and (directory / extra).is_file():
        entries.update(json.loads((directory / extra).read_text()))
    for path, items in entries.items():
        for item in items:
            if item.get("type") == "aws:cdk:logicalId" and isinstance(item.get("data"), str):
                paths[item["data"]] = path.strip("/")
    for logical_id, resource in template.get("Resources", {}).items():
        path = (resource.get("Metadata") or {}).get("aws:cdk:path")
        if isinstance(path, str):
            paths[logical_id] = path.strip("/")
    return paths


def _stack_order(stacks: list[_Stack]) -> list[_Stack]:
    by_id = {s.artifact_id: s for s in stacks}
    ordered: list[_Stack] = []
    state: dict[str, str] = {}

    def visit(stack: _Stack) -> None:
        if state.get(stack.artifact_id) == "done":
            return
        if state.get(stack.artifact_id) == "visiting":
            raise DeploymentError(f"stacks depend on each other in a cycle at {stack.name}")
        state[stack.artifact_id] = "visiting"
        for dep in stack.dependencies:
            if dep in by_id:
                visit(by_id[dep])
        state[stack.artifact_id] = "done"
        ordered.append(stack)

    for stack in stacks:
        visit(stack)
    return ordered


def _resource_order(resources: dict[str, dict]) -> list[str]:
    """Logical IDs so that each comes after what it references or DependsOn (stable)."""
    deps: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        depends_on = resource.get("DependsOn", [])
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        refs = references(resource.get("Properties", {})) | set(depends_on)
        deps[logical_id] = {r for r in refs if r in resources and r != logical_id}
    ordered: list[str] = []
    done: set[str] = set()
    pending = list(resources)
    while pending:
        ready = [r for r in pending if deps[r] <= done]
        if not ready:
            cycle = ", ".join(sorted(pending))
            raise DeploymentError(f"resources reference each other in a cycle: {cycle}")
        for r in ready:
            ordered.append(r)
            done.add(r)
        pending = [r for r in pending if r not in done]
    return ordered


# ------------------------------------------------------------------------ skipped / unsupported

_NOT_ENFORCED = "not enforced locally"
_ENFORCED = "identity policies enforced locally: each function's AWS calls are checked"

#: IAM types whose policies are enforced (``LocalCloud(enforce_iam=True)``).
IAM_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")

#: Resource-policy types read for evaluation with ``enforce_iam`` (status, reason).
RESOURCE_POLICY_TYPES: dict[str, tuple[Status, str]] = {
    "AWS::SNS::TopicPolicy": (
        "enforced", "topic policy enforced locally for CloudWatch alarm actions, checked "
        "at deploy (Deployment.alarm_action_findings)"),
    "AWS::S3::BucketPolicy": (
        "enforced", "bucket policy enforced locally with the S3 calls of functions and of "
        "event source mappings"),
    "AWS::KMS::Key": (
        "enforced", "key policy enforced locally for CloudWatch alarm actions to encrypted "
        "topics (encryption itself is not emulated)"),
    "AWS::KMS::Alias": (
        "skipped", "encryption is not enforced locally (the alias is followed to its key "
        "for alarm actions)"),
}

#: Types accepted as no-ops, with the reason recorded.
SKIPPED_TYPES: dict[str, str] = {
    "AWS::IAM::Role": f"IAM is {_NOT_ENFORCED}",
    "AWS::IAM::Policy": f"IAM is {_NOT_ENFORCED}",
    "AWS::IAM::ManagedPolicy": f"IAM is {_NOT_ENFORCED}",
    "AWS::IAM::InstanceProfile": f"IAM is {_NOT_ENFORCED}",
    "AWS::SQS::QueuePolicy": f"resource policies are {_NOT_ENFORCED}",
    "AWS::SNS::TopicPolicy": f"resource policies are {_NOT_ENFORCED}",
    "AWS::S3::BucketPolicy": f"resource policies are {_NOT_ENFORCED}",
    "AWS::Logs::ResourcePolicy": f"resource policies are {_NOT_ENFORCED}",
    "AWS::Lambda::Permission": f"resource policies are {_NOT_ENFORCED}",
    "AWS::KMS::Key": f"encryption is {_NOT_ENFORCED}",
    "AWS::KMS::Alias": f"encryption is {_NOT_ENFORCED}",
    "AWS::Logs::LogGroup": f"{_NOT_ENFORCED}: function logs are kept in LocalFunction.logs",
    "AWS::Lambda::Version": f"{_NOT_ENFORCED}: functions run $LATEST",
    "AWS::Lambda::Alias": f"{_NOT_ENFORCED}: functions run $LATEST",
    "AWS::Lambda::EventInvokeConfig": f"{_NOT_ENFORCED}: asynchronous invocation is not emulated",
    "AWS::CDK::Metadata": "CDK metadata",
}

_OPENSEARCH = "no OpenSearch server can run locally"

#: Types that cannot run here, with the reason recorded (unknown types get a generic one).
UNSUPPORTED_TYPES: dict[str, str] = {
    "AWS::OpenSearchService::Domain": _OPENSEARCH,
    "AWS::Elasticsearch::Domain": _OPENSEARCH,
    "AWS::EC2::VPC": "VPC networking is not emulated locally",
    "AWS::CloudFormation::Stack": "nested stacks are not deployed locally",
    "AWS::CloudFormation::CustomResource": "custom resources (provider functions) are not run",
}
_UNSUPPORTED_PREFIXES = {
    "AWS::OpenSearchServerless::": _OPENSEARCH,
    "AWS::EC2::": "VPC networking is not emulated locally",
    "Custom::": "custom resources (provider functions) are not run",
}


def _unsupported_reason(resource_type: str) -> str:
    if resource_type in UNSUPPORTED_TYPES:
        return UNSUPPORTED_TYPES[resource_type]
    for prefix, reason in _UNSUPPORTED_PREFIXES.items():
        if resource_type.startswith(prefix):
            return reason
    return f"no local implementation for {resource_type}"


_PLACEHOLDER_HOST = "unsupported.local"


def _placeholder(
    resource_type: str, name: str, attribute: str | None, region: str, account: str
) -> Any:
    """What Ref / Fn::GetAtt return for a resource that was not created."""
    service = resource_type.split("::")[1].lower() if "::" in resource_type else "local"
    arns = {
        "AWS::IAM::Role": f"arn:aws:iam::{account}:role/{name}",
        "AWS::IAM::ManagedPolicy": f"arn:aws:iam::{account}:policy/{name}",
        "AWS::IAM::InstanceProfile": f"arn:aws:iam::{account}:instance-profile/{name}",
        "AWS::Logs::LogGroup": f"arn:aws:logs:{region}:{account}:log-group:{name}:*",
        "AWS::KMS::Key": f"arn:aws:kms:{region}:{account}:key/{name}",
        "AWS::OpenSearchService::Domain": f"arn:aws:es:{region}:{account}:domain/{name}",
        "AWS::Elasticsearch::Domain": f"arn:aws:es:{region}:{account}:domain/{name}",
        "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{account}:function:{name}",
    }
    arn = arns.get(resource_type, f"arn:aws:{service}:{region}:{account}:{name}")
    if attribute is None:
        refs_are_arns = ("AWS::IAM::ManagedPolicy", "AWS::SNS::Topic", "AWS::Lambda::LayerVersion")
        return arn if resource_type in refs_are_arns else name
    if attribute in ("Arn", "DomainArn", "TopicArn"):
        return arn
    if attribute.endswith("Endpoint") or attribute.endswith("DomainName"):
        return _PLACEHOLDER_HOST
    if attribute.endswith("Endpoints"):
        return [_PLACEHOLDER_HOST]
    return f"{name}.{attribute}"


# ------------------------------------------------------------------------ deployer


@dataclass
class _Created:
    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    local: Any = None
    status: Status = "deployed"
    reason: str | None = None


class _StackDeployer:
    def __init__(
        self,
        cloud: LocalCloud,
        deployment: Deployment,
        assembly: _Assembly,
        stack: _Stack,
        parameters: Mapping[str, Any],
        name_prefix: str = "",
        stand_ins: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.cloud = cloud
        self.name_prefix = name_prefix
        self.stand_ins = stand_ins or {}
        self.deployment = deployment
        self.assembly = assembly
        self.stack = stack
        self.template = stack.template
        self.resources: dict[str, dict] = self.template.get("Resources", {})
        self.refs: dict[str, Any] = {}
        self.attributes: dict[str, dict[str, Any]] = {}
        self.placeholders: dict[str, tuple[str, str]] = {}  # logical ID → (type, name)
        self._iam_resources: list[str] = []  # enforced IAM resources, resolved at the end
        self.ctx = Context(
            refs=self.refs,
            attributes=self.attributes,
            stack_name=stack.name,
            region=cloud.region,
            account_id=cloud.account_id,
            conditions=self.template.get("Conditions", {}),
            mappings=self.template.get("Mappings", {}),
            exports=deployment.exports,
            fallback=self._fallback,
        )
        self._parameters(parameters)

    def _parameters(self, given: Mapping[str, Any]) -> None:
        for name, spec in self.template.get("Parameters", {}).items():
            if name in given:
                value = given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise DeploymentError(f"{self.stack.name}: parameter {name!r} has no value")
            kind = spec.get("Type", "String")
            if isinstance(value, str) and (
                kind.startswith("List<") or kind == "CommaDelimitedList"
            ):
                value = [v.strip() for v in value.split(",")]
            self.refs[name] = value

    def _fallback(self, logical_id: str, attribute: str | None) -> Any:
        if logical_id not in self.placeholders:
            raise KeyError(logical_id)
        resource_type, name = self.placeholders[logical_id]
        for key in (f"{self.stack.name}/{logical_id}", resource_type):
            values = self.stand_ins.get(key, {})
            if (attribute or "Ref") in values:
                return values[attribute or "Ref"]
        return _placeholder(
            resource_type, name, attribute, self.cloud.region, self.cloud.account_id
        )

    def name(self, logical_id: str, kind: str = "generic", suffix: str = "") -> str:
        return physical_name(self.name_prefix + self.stack.name, logical_id, kind, suffix)

    # -------------------------------------------------------------- main loop

    def deploy(self) -> list[DeployedResource]:
        results: list[DeployedResource] = []
        if self.template.get("Transform"):
            self.deployment.warnings.append(
                f"{self.stack.name}: Transform {self.template['Transform']!r} is not applied"
            )
        for logical_id in _resource_order(self.resources):
            resource = self.resources[logical_id]
            resource_type = resource.get("Type", "")
            record = DeployedResource(
                stack=self.stack.name,
                logical_id=logical_id,
                type=resource_type,
                status="deployed",
                path=self.stack.paths.get(logical_id),
            )
            results.append(record)
            try:
                self._deploy_one(logical_id, resource, record)
            except Exception as exc:
                raise DeploymentError(
                    f"{self.stack.name}/{logical_id} ({resource_type}): {exc}"
                ) from exc
        self._collect_policies()
        if getattr(self.cloud, "enforce_iam", False):
            self._collect_domains()
        self._outputs()
        return results

    def _collect_policies(self) -> None:
        """Record the identity policies of the template's roles (intrinsics resolved)."""
        dep = self.deployment
        for logical_id in self._iam_resources:
            resource = self.resources[logical_id]
            try:
                props = resolve(resource.get("Properties", {}), self.ctx)
            except IntrinsicError as exc:
                dep.warnings.append(f"{self.stack.name}/{logical_id}: its policy cannot be "
                                    f"resolved ({exc}): it allows nothing locally")
                continue
            props = props if isinstance(props, dict) else {}
            kind = resource.get("Type")
            if kind in RESOURCE_POLICY_TYPES:
                self._collect_resource_policy(logical_id, kind, props)
            elif kind == "AWS::IAM::Role":
                name = self.placeholders[logical_id][1]
                docs = dep.role_policies.setdefault(name, [])
                docs += [p["PolicyDocument"] for p in props.get("Policies") or []
                         if isinstance(p, dict) and isinstance(p.get("PolicyDocument"), dict)]
                for arn in props.get("ManagedPolicyArns") or []:
                    if isinstance(arn, str) and ":iam::aws:policy/" in arn:
                        if not arn.endswith("/AWSLambdaBasicExecutionRole"):
                            dep.warnings.append(
                                f"{self.stack.name}/{logical_id}: AWS managed policy {arn} "
                                "is not known locally: it allows nothing")
                        continue
                    dep._managed_links.append((name, str(arn)))
            else:
                document = props.get("PolicyDocument")
                if not isinstance(document, dict):
                    continue
                if kind == "AWS::IAM::ManagedPolicy":
                    dep._managed_policies[str(self.refs[logical_id])] = document
                    for role in props.get("Roles") or []:
                        dep._managed_links.append((str(role), str(self.refs[logical_id])))
                    continue
                for role in props.get("Roles") or []:
                    dep.role_policies.setdefault(str(role), []).append(document)

    def _collect_resource_policy(self, logical_id: str, kind: str, props: dict) -> None:
        dep = self.deployment
        document = props.get("PolicyDocument")
        if kind == "AWS::SNS::TopicPolicy" and isinstance(document, dict):
            for topic in props.get("Topics") or []:
                dep.topic_policies.setdefault(str(topic), []).append(document)
        elif kind == "AWS::S3::BucketPolicy" and isinstance(document, dict):
            dep.bucket_policies.setdefault(str(props.get("Bucket")), []).append(document)
        elif kind == "AWS::KMS::Key":
            arn = str(self._fallback(logical_id, "Arn"))
            dep._key_arns[str(self._fallback(logical_id, None))] = arn
            dep._key_arns[arn] = arn
            if isinstance(props.get("KeyPolicy"), dict):
                dep.key_policies[arn] = props["KeyPolicy"]
        elif kind == "AWS::KMS::Alias":
            alias, target = str(props.get("AliasName")), str(props.get("TargetKeyId"))
            key = dep._key_arns.get(target, target)
            dep._key_arns[alias] = key
            dep._key_arns[f"arn:aws:kms:{self.cloud.region}:{self.cloud.account_id}:{alias}"] = key

    def _collect_domains(self) -> None:
        """The access policy and endpoint of each OpenSearch domain (not deployed: its
        stand-in, if any, answers at the endpoint ``stand_ins`` gave)."""
        for logical_id, resource in self.resources.items():
            if resource.get("Type") not in ("AWS::OpenSearchService::Domain",
                                             "AWS::Elasticsearch::Domain"):
                continue
            if logical_id not in self.placeholders:
                continue
            arn = str(self._fallback(logical_id, "Arn"))
            self.deployment._domain_hosts[str(self._fallback(logical_id, "DomainEndpoint"))] = arn
            try:
                policy = resolve((resource.get("Properties") or {}).get("AccessPolicies"),
                                 self.ctx)
            except IntrinsicError as exc:
                self.deployment.warnings.append(
                    f"{self.stack.name}/{logical_id}: its access policy cannot be resolved "
                    f"({exc}): it allows nothing locally")
                policy = None
            self.deployment.domain_policies[arn] = [policy] if isinstance(policy, dict) else []

    def _deploy_one(self, logical_id: str, resource: dict, record: DeployedResource) -> None:
        resource_type = record.type
        condition = resource.get("Condition")
        if condition is not None and not evaluate_condition(condition, self.ctx):
            self._not_created(record, "skipped", f"condition {condition!r} is false")
            return
        creator = _CREATORS.get(resource_type)
        if resource_type == "AWS::SQS::QueuePolicy" and getattr(self.cloud, "enforce_iam", False):
            creator = _create_queue_policy
        elif resource_type in IAM_TYPES and getattr(self.cloud, "enforce_iam", False):
            self._not_created(record, "enforced", _ENFORCED)
            self._iam_resources.append(logical_id)
            return
        elif resource_type in RESOURCE_POLICY_TYPES and getattr(self.cloud, "enforce_iam", False):
            self._not_created(record, *RESOURCE_POLICY_TYPES[resource_type])
            self._iam_resources.append(logical_id)
            return
        if resource_type in SKIPPED_TYPES and creator is None:
            self._not_created(record, "skipped", SKIPPED_TYPES[resource_type])
            return
        if creator is None:
            self._not_created(record, "unsupported", _unsupported_reason(resource_type))
            return
        props = resolve(resource.get("Properties", {}), self.ctx)
        created = creator(self, logical_id, props if props is not NO_VALUE else {})
        record.status = created.status
        record.reason = created.reason
        record.physical_id = created.physical_id
        record.attributes = created.attributes
        record.notes = created.notes
        record.local = created.local
        if created.status == "deployed":
            self.refs[logical_id] = created.physical_id
            self.attributes[logical_id] = created.attributes
        else:
            self.placeholders[logical_id] = (resource_type, created.physical_id)
            self.refs[logical_id] = self._fallback(logical_id, None)
            record.physical_id = self.refs[logical_id]

    def _not_created(self, record: DeployedResource, status: Status, reason: str) -> None:
        kind = "bucket" if record.type.startswith("AWS::S3::") else "generic"
        name = self.name(record.logical_id, kind)
        self.placeholders[record.logical_id] = (record.type, name)
        record.status = status
        record.reason = reason
        record.physical_id = self._fallback(record.logical_id, None)

    def _outputs(self) -> None:
        outputs: dict[str, Any] = {}
        for key, output in self.template.get("Outputs", {}).items():
            try:
                condition = output.get("Condition")
                if condition is not None and not evaluate_condition(condition, self.ctx):
                    continue
                value = resolve(output.get("Value"), self.ctx)
                outputs[key] = value
                export = output.get("Export", {}).get("Name")
                if export is not None:
                    self.deployment.exports[resolve(export, self.ctx)] = value
            except IntrinsicError as exc:
                self.deployment.warnings.append(f"{self.stack.name} output {key}: {exc}")
        self.deployment.outputs[self.stack.name] = outputs

    # -------------------------------------------------------------- assets

    def asset_dir(self, location: Any, what: str) -> Path:
        """The unpacked asset an ``S3Key`` (or ``ZipFile``) designates."""
        if not isinstance(location, dict):
            raise DeploymentError(f"{what}: unsupported code location {location!r}")
        if "ZipFile" in location:
            directory = self.deployment._tmp_dir() / f"inline-{uuid.uuid4().hex[:8]}"
            directory.mkdir()
            (directory / "index.py").write_text(location["ZipFile"])
            return directory
        key = location.get("S3Key")
        if not isinstance(key, str):
            raise DeploymentError(f"{what}: no S3Key / ZipFile in {location!r}")
        source = self.assembly.assets.get(key) or self.assembly.assets.get(key.split(".", 1)[0])
        if source is None:
            candidate = self.stack.directory / f"asset.{key.split('.', 1)[0]}"
            source = candidate if candidate.exists() else None
        if source is None:
            raise DeploymentError(f"{what}: asset {key!r} is not in the assembly")
        if source.is_dir():
            return source
        if zipfile.is_zipfile(source):
            directory = self.deployment._tmp_dir() / source.stem
            if not directory.exists():
                with zipfile.ZipFile(source) as archive:
                    archive.extractall(directory)
            return directory
        raise DeploymentError(f"{what}: asset {source} is neither a directory nor a zip")


# ------------------------------------------------------------------------ creators


def _create_table(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    ddb = d.cloud.client("dynamodb")
    name = props.get("TableName") or d.name(logical_id, "table")
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    notes = []
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = [
            {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
            for index in props.get(key, [])
        ]
        if indexes:
            request[key] = indexes
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    if props.get("BillingMode") == "PROVISIONED" or "ProvisionedThroughput" in props:
        notes.append("created PAY_PER_REQUEST (capacity is not emulated)")
    if kinesis.streams_to_kinesis(props) and "StreamSpecification" not in request:
        # Hook (local/kinesis.py): the feeder reads the table's DynamoDB Local stream.
        request["StreamSpecification"] = {"StreamEnabled": True,
                                          "StreamViewType": "NEW_AND_OLD_IMAGES"}
    try:
        ddb.create_table(**request)
    except Exception as exc:
        if _client_error_code(exc) != "ResourceInUseException":
            raise
        d.deployment.warnings.append(f"{d.stack.name}/{logical_id}: table {name} existed: reused")
    ttl = props.get("TimeToLiveSpecification")
    if ttl and _truthy(ttl.get("Enabled", True)) and ttl.get("AttributeName"):
        try:
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        except Exception as exc:  # already enabled on a reused table
            if "already enabled" not in str(exc).lower():
                raise
        d.deployment._ttl_enabled.append(name)
    table = ddb.describe_table(TableName=name)["Table"]
    attributes = {"Arn": table["TableArn"], "TableId": table.get("TableId", name)}
    d.deployment._table_arns[name] = table["TableArn"]
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
        d.deployment.streams._set(d.stack.name, logical_id, table["LatestStreamArn"])
    d.deployment.tables._set(d.stack.name, logical_id, name)
    feeder = kinesis.feeder_spec(d, logical_id, props, name, table.get("LatestStreamArn"))
    if feeder is not None:  # hook (local/kinesis.py): DynamoDB -> Kinesis, as a stream mapping
        d.deployment.mappings.append(feeder)
        notes.append(f"changes fed to Kinesis stream {feeder.function.stream_name}")
    return _Created(name, attributes, notes)


_QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "RedrivePolicy",
    "RedriveAllowPolicy",
)


def _create_queue(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    sqs = d.cloud.client("sqs")
    fifo = _truthy(props.get("FifoQueue"))
    name = props.get("QueueName") or d.name(logical_id, "queue", ".fifo" if fifo else "")
    attributes = {k: _attr_string(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
    if "DelaySeconds" in attributes:  # the local cloud's clock scale (1: as written)
        attributes["DelaySeconds"] = str(
            d.cloud.scaled_seconds(int(attributes["DelaySeconds"]))
        )
    if not fifo:
        attributes.pop("FifoQueue", None)
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except Exception as exc:
        if _client_error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        settable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
        if settable:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
        d.deployment.warnings.append(f"{d.stack.name}/{logical_id}: queue {name} existed: reused")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    d.deployment.queues._set(d.stack.name, logical_id, url)
    d.deployment._queue_urls[arn] = url
    if getattr(d.cloud, "enforce_iam", False):
        # moto's SNS then delivers to it only if its queue policy allows (_moto_main.py).
        sqs.tag_queue(QueueUrl=url, Tags={QUEUE_POLICY_TAG: "enforced"})
    return _Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


#: Tag marking a queue whose policy moto's SNS evaluates (see ``_moto_main.py``).
QUEUE_POLICY_TAG = "ddb-stream-patterns:resource-policy"
#: Tag where moto's SNS counts deliveries the queue policy refused.
QUEUE_DENIED_TAG = "ddb-stream-patterns:sns-deliveries-denied"


def _create_queue_policy(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    """Set the policy on its queues (enforced for SNS delivery, see ``_moto_main.py``)."""
    document = props.get("PolicyDocument")
    sqs = d.cloud.client("sqs")
    for url in props.get("Queues") or []:
        sqs.set_queue_attributes(QueueUrl=str(url),
                                 Attributes={"Policy": json.dumps(document)})
    name = d.name(logical_id)
    return _Created(name, status="enforced",
                    reason="queue policy enforced locally for SNS → SQS delivery")


_TOPIC_ATTRIBUTES = (
    "FifoTopic",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "DisplayName",
    "SignatureVersion",
    "TracingConfig",
    "ArchivePolicy",
    "FifoThroughputScope",
)


def _create_topic(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    sns = d.cloud.client("sns")
    fifo = _truthy(props.get("FifoTopic"))
    name = props.get("TopicName") or d.name(logical_id, "topic", ".fifo" if fifo else "")
    attributes = {k: _attr_string(props[k]) for k in _TOPIC_ATTRIBUTES if k in props}
    if not fifo:
        attributes.pop("FifoTopic", None)
    arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
    for subscription in props.get("Subscription", []):
        sns.subscribe(
            TopicArn=arn,
            Protocol=subscription["Protocol"],
            Endpoint=subscription["Endpoint"],
            ReturnSubscriptionArn=True,
        )
    d.deployment.topics._set(d.stack.name, logical_id, arn)
    if props.get("KmsMasterKeyId"):
        d.deployment._topic_keys[arn] = str(props["KmsMasterKeyId"])
    return _Created(arn, {"TopicArn": arn, "TopicName": name})


_SUBSCRIPTION_JSON = ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy", "ReplayPolicy")
_SUBSCRIPTION_PLAIN = ("FilterPolicyScope", "RawMessageDelivery", "SubscriptionRoleArn")
_DELIVERED_PROTOCOLS = ("sqs", "http", "https", "email", "email-json", "sms")


def _create_subscription(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    protocol = props["Protocol"]
    if protocol not in _DELIVERED_PROTOCOLS:
        return _Created(
            d.name(logical_id),
            status="unsupported",
            reason=f"SNS → {protocol} delivery is not emulated locally",
        )
    attributes = {}
    for key in _SUBSCRIPTION_JSON:
        if key in props:
            value = props[key]
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
    for key in _SUBSCRIPTION_PLAIN:
        if key in props:
            attributes[key] = _attr_string(props[key])
    response = d.cloud.client("sns").subscribe(
        TopicArn=props["TopicArn"],
        Protocol=protocol,
        Endpoint=props["Endpoint"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    arn = response["SubscriptionArn"]
    return _Created(arn, {"Arn": arn})


def _create_bucket(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    s3 = d.cloud.client("s3")
    name = props.get("BucketName") or d.name(logical_id, "bucket")
    request: dict[str, Any] = {"Bucket": name}
    if d.cloud.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": d.cloud.region}
    try:
        s3.create_bucket(**request)
    except Exception as exc:
        if _client_error_code(exc) != "BucketAlreadyOwnedByYou":
            raise
    notes: list[str] = []
    key = f"{d.stack.name}/{logical_id}"
    versioning = (props.get("VersioningConfiguration") or {}).get("Status")
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
    rules = (props.get("LifecycleConfiguration") or {}).get("Rules")
    if rules:
        try:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in rules]}
            )
            notes.append("lifecycle rules stored, not executed")
        except Exception as exc:
            d.deployment.warnings.append(f"{key}: lifecycle configuration not applied: {exc}")
    notification = props.get("NotificationConfiguration") or {}
    if notification.get("LambdaConfigurations"):
        notes.append("S3 → Lambda notifications are not delivered locally")
    d.deployment.buckets._set(d.stack.name, logical_id, name)
    region = d.cloud.region
    return _Created(
        name,
        {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            "DualStackDomainName": f"{name}.s3.dualstack.{region}.amazonaws.com",
            "WebsiteURL": f"http://{name}.s3-website-{region}.amazonaws.com",
        },
        notes,
    )


def _lifecycle_rule(rule: dict) -> dict:
    """CloudFormation's lifecycle rule shape → the S3 API's."""
    out: dict[str, Any] = {"Status": rule.get("Status", "Enabled")}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    conditions: dict[str, Any] = {}
    if "Prefix" in rule:
        conditions["Prefix"] = rule["Prefix"]
    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in rule.get("TagFilters", [])]
    for key in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        if key in rule:
            conditions[key] = int(rule[key])
    if tags:
        conditions["Tags"] = tags
    if len(conditions) > 1:
        out["Filter"] = {"And": conditions}
    elif "Tags" in conditions:
        out["Filter"] = {"Tag": tags[0]}
    else:
        out["Filter"] = conditions or {"Prefix": ""}
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpirationDate" in rule:
        expiration["Date"] = rule["ExpirationDate"]
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = _truthy(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        out["Expiration"] = expiration
    transitions = list(rule.get("Transitions", []))
    if "Transition" in rule:
        transitions.append(rule["Transition"])
    if transitions:
        out["Transitions"] = [
            {
                "StorageClass": t["StorageClass"],
                **({"Days": int(t["TransitionInDays"])} if "TransitionInDays" in t else {}),
                **({"Date": t["TransitionDate"]} if "TransitionDate" in t else {}),
            }
            for t in transitions
        ]
    noncurrent = rule.get("NoncurrentVersionExpiration")
    if noncurrent:
        out["NoncurrentVersionExpiration"] = {
            k: int(v)
            for k, v in noncurrent.items()
            if k in ("NoncurrentDays", "NewerNoncurrentVersions")
        }
    elif "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])
        }
    nc_transitions = list(rule.get("NoncurrentVersionTransitions", []))
    if "NoncurrentVersionTransition" in rule:
        nc_transitions.append(rule["NoncurrentVersionTransition"])
    if nc_transitions:
        out["NoncurrentVersionTransitions"] = [
            {
                "StorageClass": t["StorageClass"],
                "NoncurrentDays": int(t["TransitionInDays"]),
                **(
                    {"NewerNoncurrentVersions": int(t["NewerNoncurrentVersions"])}
                    if "NewerNoncurrentVersions" in t
                    else {}
                ),
            }
            for t in nc_transitions
        ]
    abort = rule.get("AbortIncompleteMultipartUpload")
    if abort:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(abort["DaysAfterInitiation"])
        }
    return out


_ALARM_KEYS = (
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
)


def _create_alarm(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    name = props.get("AlarmName") or d.name(logical_id)
    arn = f"arn:aws:cloudwatch:{d.cloud.region}:{d.cloud.account_id}:alarm:{name}"
    request = {k: props[k] for k in _ALARM_KEYS if k in props}
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in request:
            request[key] = int(request[key])
    if "Threshold" in request:
        request["Threshold"] = float(request["Threshold"])
    try:
        d.cloud.client("cloudwatch").put_metric_alarm(AlarmName=name, **request)
    except Exception as exc:  # best effort: alarms only observe
        return _Created(
            name, {"Arn": arn}, status="skipped", reason=f"PutMetricAlarm failed: {exc}"
        )
    actions = [str(a) for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
               for a in props.get(key) or []]
    d.deployment._alarms.append((f"{d.stack.name}/{logical_id}", arn, actions))
    return _Created(name, {"Arn": arn}, ["stored in moto; never evaluated"])


def _create_dashboard(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    name = props.get("DashboardName") or d.name(logical_id)
    body = props.get("DashboardBody", "{}")
    if not isinstance(body, str):
        body = json.dumps(body)
    try:
        d.cloud.client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=body)
    except Exception as exc:  # best effort: dashboards only observe
        return _Created(name, status="skipped", reason=f"PutDashboard failed: {exc}")
    return _Created(name)


def _create_layer(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    name = props.get("LayerName") or d.name(logical_id, "function")
    arn = f"arn:aws:lambda:{d.cloud.region}:{d.cloud.account_id}:layer:{name}:1"
    directory = d.asset_dir(props.get("Content"), f"layer {logical_id}")
    d.deployment._layers[arn] = directory
    notes = [] if (directory / "python").is_dir() else ["no python/ directory: adds no module"]
    return _Created(arn, {"LayerVersionArn": arn}, notes, local=directory)


def _create_function(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    name = props.get("FunctionName") or d.name(logical_id, "function")
    arn = f"arn:aws:lambda:{d.cloud.region}:{d.cloud.account_id}:function:{name}"
    runtime = props.get("Runtime") or ""
    code = props.get("Code") or {}
    if props.get("PackageType") == "Image" or "ImageUri" in code:
        return _Created(name, status="unsupported", reason="container image functions need Docker")
    if not runtime.startswith("python"):
        return _Created(
            name, status="unsupported", reason=f"runtime {runtime or '?'} cannot run locally"
        )
    key = f"{d.stack.name}/{logical_id}"
    code_dir = d.asset_dir(code, f"function {logical_id}")
    layer_dirs = []
    for layer in props.get("Layers", []):
        directory = d.deployment._layers.get(layer)
        if directory is None:
            d.deployment.warnings.append(f"{key}: layer {layer} is not in the assembly: left out")
        else:
            layer_dirs.append(directory)
    variables = (props.get("Environment") or {}).get("Variables") or {}
    environment = {
        **d.cloud.function_environment(),
        **{k: _attr_string(v) for k, v in variables.items()},
    }
    authorizer = None
    role_arn = props.get("Role")
    if getattr(d.cloud, "enforce_iam", False) and isinstance(role_arn, str):
        authorizer = _role_authorizer(d, role_arn, name)
    function = LocalFunction(
        name,
        props["Handler"],
        code_dir,
        layer_dirs,
        environment,
        float(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
        runtime=runtime,
        function_arn=arn,
        authorizer=authorizer,
    )
    notes = []
    local_python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtime != local_python:
        notes.append(f"runs on the local {local_python} (template: {runtime})")
    if props.get("VpcConfig"):
        notes.append("VPC configuration ignored")
    if props.get("ReservedConcurrentExecutions") is not None:
        notes.append("reserved concurrency not enforced (one worker, one invocation at a time)")
    d.deployment.functions._set(d.stack.name, logical_id, function)
    d.deployment._functions_by_id[name] = function
    d.deployment._functions_by_id[arn] = function
    return _Created(name, {"Arn": arn}, notes, local=function)


def _role_authorizer(d: _StackDeployer, role_arn: str, function_name: str) -> RoleAuthorizer:
    """Checks a function's calls against its role (read when called: after deploy)."""
    deployment = d.deployment
    role_name = role_arn.rsplit("/", 1)[-1]
    warned: list[bool] = []

    def policies() -> list[dict]:
        found = deployment.policies_of(role_name)
        if found is None:
            if not warned:
                warned.append(True)
                deployment.warnings.append(
                    f"function {function_name}: its role {role_arn} is not in the templates: "
                    "its calls are not checked")
            return [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
        return found

    return RoleAuthorizer(role_arn, function_name, policies, d.cloud.region, d.cloud.account_id,
                          table_arn=deployment._table_arns.get,
                          resource_policies=deployment.resource_policies_for,
                          domain_arn=deployment.domain_for_host)


_UNEMULATED_MAPPING_PROPS = (
    "TumblingWindowInSeconds",
    "StartingPositionTimestamp",
    "MetricsConfig",
    "ProvisionedPollerConfig",
    "KmsKeyArn",
)


def _create_mapping(d: _StackDeployer, logical_id: str, props: dict) -> _Created:
    mapping_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{d.stack.name}/{logical_id}"))
    arn = f"arn:aws:lambda:{d.cloud.region}:{d.cloud.account_id}:event-source-mapping:{mapping_id}"
    attrs = {"Id": mapping_id, "EventSourceMappingArn": arn}
    function_ref = str(props.get("FunctionName", ""))
    function = d.deployment.function_for(function_ref)
    if function is None:
        target = _unqualified(function_ref)
        for logical, (resource_type, name) in d.placeholders.items():
            if resource_type == "AWS::Lambda::Function" and target in (
                name,
                _placeholder(resource_type, name, "Arn", d.cloud.region, d.cloud.account_id),
            ):
                return _Created(
                    mapping_id,
                    attrs,
                    status="unsupported",
                    reason=f"its function {logical} is not deployed locally",
                )
        raise DeploymentError(f"mapping {logical_id}: no local function {function_ref!r}")
    source = str(props.get("EventSourceArn", ""))
    if ":dynamodb:" in source and "/stream/" in source:
        kind = "dynamodb"
    elif source.startswith("arn:") and ":sqs:" in source:
        kind = "sqs"
    elif source.startswith("arn:") and ":kinesis:" in source:
        kind = "kinesis"  # hook: local/kinesis.py polls it
    else:
        return _Created(
            mapping_id,
            attrs,
            status="unsupported",
            reason=f"event source {source or props.get('SelfManagedEventSource')!r} "
            "is not emulated",
        )
    if props.get("Enabled") is False or str(props.get("Enabled")).lower() == "false":
        return _Created(mapping_id, attrs, status="skipped", reason="Enabled is false")
    queue_url = None
    if kind == "sqs":
        queue_url = (
            d.deployment._queue_urls.get(source)
            or d.cloud.client("sqs").get_queue_url(QueueName=source.rsplit(":", 1)[-1])["QueueUrl"]
        )
    filters = ((props.get("FilterCriteria") or {}).get("Filters")) or []
    destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    scaling = props.get("ScalingConfig") or {}
    spec = MappingSpec(
        logical_id=logical_id,
        function=function,
        kind=kind,
        source_arn=source,
        batch_size=int(props.get("BatchSize", 10 if kind == "sqs" else 100)),
        max_batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
        filter_patterns=[
            json.loads(f["Pattern"]) if isinstance(f["Pattern"], str) else f["Pattern"]
            for f in filters
            if "Pattern" in f
        ],
        bisect_on_error=_truthy(props.get("BisectBatchOnFunctionError", False)),
        max_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        max_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
        report_batch_item_failures="ReportBatchItemFailures"
        in (props.get("FunctionResponseTypes") or []),
        on_failure_arn=destination,
        uuid=mapping_id,
        max_concurrency=(
            int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None
        ),
        queue_url=queue_url,
    )
    notes = [f"{k} is not emulated" for k in _UNEMULATED_MAPPING_PROPS if k in props]
    if "MetricsConfig" in props:  # no CloudWatch here; the stats count two of its metrics
        notes[notes.index("MetricsConfig is not emulated")] = (
            "MetricsConfig is not emulated (no CloudWatch): MappingStats.on_failure_delivered "
            "and .dropped count OnFailureDestinationDeliveredEventCount and DroppedEventCount")
    if int(props.get("ParallelizationFactor", 1)) > 1:
        notes.append("ParallelizationFactor > 1 is not emulated (one poller per shard)")
    d.deployment.mappings.append(spec)
    return _Created(mapping_id, attrs, notes, local=spec)


_CREATORS: dict[str, Callable[[_StackDeployer, str, dict], _Created]] = {
    "AWS::DynamoDB::GlobalTable": _create_table,
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SQS::Queue": _create_queue,
    "AWS::SNS::Topic": _create_topic,
    "AWS::SNS::Subscription": _create_subscription,
    "AWS::S3::Bucket": _create_bucket,
    "AWS::CloudWatch::Alarm": _create_alarm,
    "AWS::CloudWatch::Dashboard": _create_dashboard,
    "AWS::Lambda::LayerVersion": _create_layer,
    "AWS::Lambda::Function": _create_function,
    "AWS::Lambda::EventSourceMapping": _create_mapping,
    **kinesis.CREATORS,  # AWS::Kinesis::Stream / StreamConsumer (local/kinesis.py)
}

#: The resource types :func:`deploy` creates.
DEPLOYED_TYPES = tuple(_CREATORS)


# ------------------------------------------------------------------------ alarm actions

#: CloudWatch publishes alarm notifications as this service principal.
CLOUDWATCH_PRINCIPAL = ("Service", "cloudwatch.amazonaws.com")
#: The AWS managed key for SNS: its key policy cannot be changed and does not allow
#: CloudWatch (SNS Developer Guide, "Enable compatibility between event sources from AWS
#: services and encrypted topics").
AWS_MANAGED_SNS_KEY = "alias/aws/sns"


@dataclass(frozen=True)
class AlarmActionFinding:
    """An alarm whose notification to an SNS topic would be dropped in AWS."""

    alarm: str  # "Stack/LogicalId"
    alarm_arn: str
    topic_arn: str
    problem: str  # the missing (or denying) statement, in words

    def __str__(self) -> str:
        return f"{self.alarm} → {self.topic_arn}: {self.problem}"


def alarm_action_findings(deployment: Deployment) -> list[AlarmActionFinding]:
    """Check every alarm action to an SNS topic of the templates as CloudWatch would be.

    The local cloud does not fire alarms; this checks at deploy time what AWS checks
    when one fires: CloudWatch (principal ``cloudwatch.amazonaws.com``, with
    ``aws:SourceArn`` the alarm's ARN and ``aws:SourceAccount`` its account) must be
    allowed ``sns:Publish`` by the topic policy (``AWS::SNS::TopicPolicy``), and, for a
    topic encrypted with ``KmsMasterKeyId``, ``kms:GenerateDataKey*`` and
    ``kms:Decrypt`` by the key policy (``AWS::KMS::Key``); a topic encrypted with the AWS
    managed key ``alias/aws/sns`` never receives alarms. Not judged (no finding): topics
    without a topic policy (SNS's default policy applies and is not modelled), actions
    to topics or keys outside the templates, and non-SNS actions.
    """
    findings: list[AlarmActionFinding] = []
    for alarm, alarm_arn, actions in deployment._alarms:
        account = alarm_arn.split(":")[4]
        context = {"aws:SourceArn": alarm_arn, "aws:SourceAccount": account,
                   "aws:SecureTransport": "true"}
        for topic in dict.fromkeys(a for a in actions if a.startswith("arn:aws:sns:")):
            problems = []
            policies = deployment.topic_policies.get(topic)
            if policies is not None:
                result = evaluate(policies, "sns:Publish", topic, context,
                                  principal=CLOUDWATCH_PRINCIPAL)
                if result.decision == "explicit-deny":
                    sid = (result.statement or {}).get("Sid", "a statement")
                    problems.append(f"its topic policy denies cloudwatch.amazonaws.com "
                                    f"sns:Publish ({sid})")
                elif not result.allowed:
                    problems.append(
                        "no statement of its topic policy allows cloudwatch.amazonaws.com "
                        f"sns:Publish with aws:SourceArn {alarm_arn} and aws:SourceAccount "
                        f"{account}")
            key = deployment._topic_keys.get(topic)
            if key is not None:
                problems += _key_problems(deployment, key, context)
            findings += [AlarmActionFinding(alarm, alarm_arn, topic, p) for p in problems]
    return findings


def _key_problems(deployment: Deployment, key: str, context: Mapping[str, str]) -> list[str]:
    if key == AWS_MANAGED_SNS_KEY or key.endswith(":" + AWS_MANAGED_SNS_KEY):
        return [f"it is encrypted with the AWS managed key {AWS_MANAGED_SNS_KEY}, whose key "
                "policy does not allow cloudwatch.amazonaws.com (use a customer managed key)"]
    key_arn = deployment._key_arns.get(key, key)
    policy = deployment.key_policies.get(key_arn)
    if policy is None:
        return []  # a key outside the templates: not judged
    missing = [action for action in ("kms:GenerateDataKey", "kms:Decrypt")
               if not evaluate([policy], action, key_arn, context,
                               principal=CLOUDWATCH_PRINCIPAL).allowed]
    if not missing:
        return []
    wanted = ", ".join(m + ("*" if m.endswith("GenerateDataKey") else "") for m in missing)
    return [f"the key policy of its key {key_arn} does not allow cloudwatch.amazonaws.com "
            f"{wanted}"]


def _check_ttl_sweep(deployment: Deployment) -> None:
    """Past DynamoDB Local's 7 swept TTL tables, start the local sweep and say so."""
    tables = ttl_sweep.ttl_tables(deployment.cloud.client("dynamodb"))
    deployment.ttl_tables = tables
    deployment.ttl_sweep_overflow = overflow = max(0, len(tables) - ttl_sweep.SWEEP_LIMIT)
    if not overflow:
        return
    sweeper = ttl_sweep.ensure_sweeper(deployment.cloud)
    earlier = [t for t in tables if t not in set(deployment._ttl_enabled)]
    message = (
        f"DynamoDB Local now holds {len(tables)} TTL-enabled tables ({len(earlier)} from "
        f"earlier deploys) and its TTL sweep serves only {ttl_sweep.SWEEP_LIMIT} (which ones "
        f"cannot be told in advance): the local cloud deletes the expired items it leaves, "
        f"as TTL REMOVE records, {sweeper.grace:.0f}-{sweeper.grace + sweeper.interval:.0f} s "
        "after they expire. Delete the tables you no longer use for DynamoDB Local's own "
        "timing")
    deployment.notes.append(message)
    _LOGGER.info("%s", message)


# ------------------------------------------------------------------------ entry point


def deploy(
    cloud: LocalCloud,
    assembly_dir: str | Path,
    *,
    stacks: Iterable[str] | None = None,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    name_prefix: str = "",
    stand_ins: Mapping[str, Mapping[str, Any]] | None = None,
) -> Deployment:
    """Create every resource of a synthesized cloud assembly in ``cloud``.

    Parameters
    ----------
    cloud
        A started :class:`LocalCloud`.
    assembly_dir
        The synthesized assembly (``cdk.out``, or ``App(outdir=...)`` after ``synth()``).
    stacks
        Stack names (or artifact IDs) to deploy; default: all, dependencies first.
    parameters
        Stack name → parameter values (defaults from the template otherwise).
    name_prefix
        Prepended to every generated physical name: deploy the same assembly twice
        into one cloud without the copies sharing tables, queues or topics. Without
        it a redeploy reuses existing tables and queues (with a warning).
    stand_ins
        Values for the attributes (``"Ref"`` for Ref) of resources that are not
        deployed, keyed by resource type or ``"Stack/LogicalId"``: e.g.
        ``{"AWS::OpenSearchService::Domain": {"DomainEndpoint": "127.0.0.1:9200"}}``
        to point dependants at a local stand-in. The resource stays *unsupported*.

    Returns
    -------
    Deployment
        What was created; close it to stop the function workers.

    Raises
    ------
    DeploymentError
        A resource could not be created; the message names it.
    """
    directory = Path(assembly_dir)
    assembly = _read_assembly(directory)
    selected = set(stacks) if stacks is not None else None
    ordered = [
        s
        for s in _stack_order(assembly.stacks)
        if selected is None or s.name in selected or s.artifact_id in selected
    ]
    if selected is not None:
        missing = selected - {s.name for s in ordered} - {s.artifact_id for s in ordered}
        if missing:
            names = ", ".join(s.name for s in assembly.stacks)
            raise DeploymentError(f"no stack named {sorted(missing)} (assembly has: {names})")
    deployment = Deployment(cloud, directory)
    try:
        for stack in ordered:
            deployer = _StackDeployer(
                cloud,
                deployment,
                assembly,
                stack,
                (parameters or {}).get(stack.name, {}),
                name_prefix,
                stand_ins,
            )
            deployment.stacks[stack.name] = deployer.deploy()
        if getattr(cloud, "enforce_iam", False):
            deployment.alarm_action_findings = alarm_action_findings(deployment)
        if deployment._ttl_enabled:
            _check_ttl_sweep(deployment)
    except BaseException:
        deployment.close()
        raise
    return deployment
