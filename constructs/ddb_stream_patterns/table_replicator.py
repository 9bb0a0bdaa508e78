"""``TableReplicator``: keep a second table in step with the source, order-safe."""

from __future__ import annotations

import re

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
from constructs import Construct

from . import _validation as v
from ._stream_pattern import ControllerPattern, StreamOptions, require_view_type, runtime_controller
from ._validation import check_duration_range, is_token
from .change_source import ChangeSource
from .monitoring import Monitoring
from .runtime_assets import StreamRuntimeLayer
from .stream_table import StreamTable

__all__ = ["TableReplicator", "TOMBSTONE_TTL_WARNING", "DEFAULT_TOMBSTONE_RETENTION"]

#: Id of the synth warning about a given target whose TTL is unknown (to acknowledge it).
TOMBSTONE_TTL_WARNING = "ddb-stream-patterns:replica-tombstones-without-ttl"
#: A tombstone's life by default: a standard queue's message lives at most 14 days from its
#: first enqueue, also in its DLQ (SQS Developer Guide, "Setting-up dead-letter queue
#: retention"); one DLQ redrive makes it a new message (new enqueue time, "Learn how to
#: configure a dead-letter queue redrive"): 2 x 14 days, plus 2 days of margin.
DEFAULT_TOMBSTONE_RETENTION_DAYS = 30
DEFAULT_TOMBSTONE_RETENTION = cdk.Duration.days(DEFAULT_TOMBSTONE_RETENTION_DAYS)
#: The shortest retention on a fan-out: a standard queue's DLQ keeps a message up to
#: 14 days from its first enqueue, so a tombstone must outlive that at least.
MIN_FAN_OUT_TOMBSTONE_RETENTION_S = 14 * 86_400
DEFAULT_TOMBSTONE_TTL_ATTRIBUTE = "_tombstoneExpiresAt"

_TRANSFORM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


class TableReplicator(ControllerPattern, Construct):
    """Replicate the source table into a target table: a copy, or a reshaped view.

    INSERT/MODIFY put the item into the target, REMOVE deletes it. Every write is
    conditional on the source's stream order (``version_attribute`` on the target item
    holds the record's sequence number), so a retried or late record never overwrites
    newer data. An optional ``transform`` reshapes items or drops them (a dropped item
    is deleted from the target).

    Tombstones (standard-queue fan-out, Kinesis)
    --------------------------------------------
    On the table's stream and on a FIFO fan-out (message group = item key) each item's
    records arrive in order, and a REMOVE deletes the target item. A standard SQS queue
    and Kinesis reorder and redeliver: a late INSERT after the REMOVE would bring the item
    back, so there a REMOVE writes a *tombstone* instead: the key, the version and
    ``_deleted: true``. **The target then holds tombstone items**: readers must skip
    items with ``_deleted`` (a scan's count includes them). Each tombstone carries an
    expiry, ``tombstone_retention`` after it is written, in the target's TTL attribute,
    so DynamoDB's TTL removes it once no late record can come any more:

    * a target table of this app (``TableV2``, ``Table``, ``StreamTable``) without TTL
      gets TTL enabled on ``tombstone_ttl_attribute`` (``_tombstoneExpiresAt``; an info
      annotation says so); one with TTL keeps it, and tombstones use its attribute;
    * a target given by name or ARN (imported: its TTL is unknown here) gets a synth
      warning (``ddb-stream-patterns:replica-tombstones-without-ttl``) naming the
      attribute to enable TTL on; acknowledge it with
      ``cdk.Annotations.of(replicator).acknowledge_warning(id, reason)`` once done.

    Parameters
    ----------
    table
        The source table; its stream must carry new images (both images with a
        ``transform``, which derives delete keys from the old image). Required.
    target_table
        Any ``ITable``, in this stack, another stack, another account or region
        (``TableV2.from_table_arn``). Only ``PutItem`` and ``DeleteItem`` are granted on
        it (plus ``DescribeTable`` with a ``transform``). A copy needs the source's key
        schema; with a transform, the target's key attributes must be in its output.
        Required.
    transform
        ``"module:function"`` in ``transform_code``: it takes the new image as plain
        Python values and returns the item to write, or ``None`` to drop it.
        Default: none (an exact copy).
    transform_code
        The code holding ``transform``; the function then runs it with the
        ``ddb_stream_runtime`` layer. Required with ``transform``.
    version_attribute
        Target attribute holding the last applied sequence number. Default:
        ``_streamSequence``.
    tombstone_retention
        Unordered sources only (see Tombstones): how long a tombstone stays before TTL
        removes it. It must be longer than any record can still arrive late: on a
        fan-out, a message lives at most 14 days from its first enqueue, also in the
        DLQ, but each DLQ redrive makes it a new message (another 14 days), so at least
        14 days here (30 covers one redrive); on Kinesis, at least the stream's
        retention. A late record after the tombstone expired would bring the item back.
        Default: 30 days.
    tombstone_ttl_attribute
        Unordered sources only: the attribute holding a tombstone's expiry (epoch
        seconds). Default: the target's TTL attribute when it has one, else
        ``_tombstoneExpiresAt``.
    stream_options, function_options, monitoring, removal_policy
        As for the other patterns.
    source
        Where the handler gets the table's changes: ``None``, the table's stream (one
        stream reader); or a ``StreamFanOut`` on the same table (``fan_out``, or
        ``fan_out.with_queue(QueueOptions(...))``): the same handler then reads its own SQS
        queue (DLQ, filter policy, alarms), and ``stream_options`` must not be given; or a
        ``KinesisSource`` (``KinesisSource.of_table(table, enhanced_fan_out=...)``): the
        handler reads the Kinesis stream the table writes to (``stream_options`` apply).
        Default: ``None``.

    Attributes
    ----------
    target_table, function, controller, alarms, runtime_layer (or ``None``).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.ITable,
        target_table: dynamodb.ITable,
        transform: str | None = None,
        transform_code: lambda_.Code | None = None,
        version_attribute: str = "_streamSequence",
        tombstone_retention: cdk.Duration = DEFAULT_TOMBSTONE_RETENTION,
        tombstone_ttl_attribute: str | None = None,
        stream_options: StreamOptions | None = None,
        function_options: lambda_.FunctionOptions | None = None,
        monitoring: Monitoring | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        source: ChangeSource | None = None,
    ) -> None:
        v.check_types("TableReplicator", {
            "table": v.ITABLE, "target_table": v.ITABLE, "transform": str,
            "transform_code": lambda_.Code, "version_attribute": str,
            "tombstone_retention": cdk.Duration, "tombstone_ttl_attribute": str,
            "stream_options": StreamOptions, "function_options": lambda_.FunctionOptions,
            "monitoring": Monitoring, "removal_policy": cdk.RemovalPolicy,
        }, locals())
        super().__init__(scope, id)
        if target_table is table:
            raise ValueError(
                f"target_table must differ from table, got {table.node.path!r} for both "
                "(replicating a table into itself would loop forever)"
            )
        if (transform is None) != (transform_code is None):
            raise ValueError(
                "transform and transform_code go together "
                f"(got transform={transform!r}, transform_code={transform_code!r})"
            )
        if transform is not None and not _TRANSFORM.match(transform):
            raise ValueError(f"transform must look like 'module:function', got {transform!r}")
        if not _ATTRIBUTE.match(version_attribute or ""):
            raise ValueError(
                f"version_attribute must be an attribute name, got {version_attribute!r}"
            )
        if tombstone_ttl_attribute is not None and (
            not _ATTRIBUTE.match(tombstone_ttl_attribute)
            or tombstone_ttl_attribute in (version_attribute, "_deleted")
        ):
            raise ValueError(
                "tombstone_ttl_attribute must be an attribute name other than the version and "
                f"tombstone attributes, got {tombstone_ttl_attribute!r}"
            )
        check_duration_range("tombstone_retention", tombstone_retention, 86_400, 3650 * 86_400)
        # A transform derives the delete key from the old image, so it needs both.
        if transform is None:
            require_view_type(table, "new", "TableReplicator", source=source)
        else:
            require_view_type(table, "both", "TableReplicator with a transform", source=source)

        environment = {
            "TARGET_TABLE": target_table.table_name,
            "VERSION_ATTRIBUTE": version_attribute,
        }
        self.runtime_layer: StreamRuntimeLayer | None = None
        if transform is not None:
            environment["TRANSFORM"] = transform
            self.runtime_layer = StreamRuntimeLayer(self, "RuntimeLayer")
        self.target_table = target_table
        self.controller = runtime_controller(
            self,
            table=table,
            handler="ddb_stream_runtime.replicator.handler",
            environment=environment,
            function_options=function_options,
            stream_options=stream_options,
            monitoring=monitoring,
            removal_policy=removal_policy,
            source=source,
            needs="new" if transform is None else "both",
            code=transform_code,
            layers=[self.runtime_layer] if self.runtime_layer else None,
        )
        writes = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
        if transform is not None:
            # The runtime reads the target's key names once to build delete keys.
            writes.append("dynamodb:DescribeTable")
        target_table.grant(self.function, *writes)
        #: Whether REMOVEs leave tombstones (standard-queue fan-out, Kinesis).
        self.writes_tombstones = _writes_tombstones(self.controller)
        #: The attribute holding a tombstone's expiry, or ``None`` (no tombstones).
        self.tombstone_ttl_attribute: str | None = None
        self.tombstone_retention: cdk.Duration | None = None
        if self.writes_tombstones:
            self._expire_tombstones(target_table, tombstone_retention, tombstone_ttl_attribute)

    def _expire_tombstones(
        self, target: dynamodb.ITable, retention: cdk.Duration, attribute: str | None
    ) -> None:
        """Give tombstones an expiry; make sure the target's TTL deletes them, or warn."""
        if getattr(self.controller, "fan_out", None) is not None and not is_token(
            retention.to_string()
        ) and retention.to_seconds() < MIN_FAN_OUT_TOMBSTONE_RETENTION_S:
            raise ValueError(
                "tombstone_retention must be at least 14 days on a fan-out (a standard queue's "
                "DLQ keeps a message 14 days from its first enqueue, and a late record after "
                f"the tombstone expired would bring the item back), got {retention.to_days()} days"
            )
        known, current = _ttl_of(target)
        if current is not None and attribute not in (None, current):
            raise ValueError(
                f"tombstone_ttl_attribute {attribute!r} differs from the target table's TTL "
                f"attribute {current!r} (a table has one): leave it unset to use {current!r}"
            )
        name = current or attribute or DEFAULT_TOMBSTONE_TTL_ATTRIBUTE
        self.tombstone_ttl_attribute = name
        self.tombstone_retention = retention
        self.function.add_environment("TOMBSTONE_TTL_ATTRIBUTE", name)
        self.function.add_environment(
            "TOMBSTONE_RETENTION_SECONDS", str(int(retention.to_seconds()))
        )
        if known and current is None:
            target.node.default_child.add_property_override(
                "TimeToLiveSpecification", {"AttributeName": name, "Enabled": True}
            )
            if isinstance(target, StreamTable):
                target.time_to_live_attribute = name
            cdk.Annotations.of(self).add_info(
                f"TableReplicator enabled TTL on attribute {name!r} of the target table "
                f"{target.node.path!r}: tombstones (items with _deleted) expire "
                f"{retention.to_days()} days after they are written"
            )
        elif not known:
            cdk.Annotations.of(self).add_warning_v2(
                TOMBSTONE_TTL_WARNING,
                f"target_table {target.node.path!r} is not defined in this app, so its TTL is "
                "unknown here: behind a standard queue or Kinesis the replicator leaves a "
                "tombstone item (_deleted: true) for every deleted item, with its expiry in "
                f"{name!r}. Enable TTL on {name!r} on that table, or the tombstones stay "
                "forever (readers must skip items with _deleted either way); then acknowledge "
                "this warning",
            )


def _writes_tombstones(binding: object) -> bool:
    """The stream and a FIFO fan-out keep each item's order; anything else reorders."""
    if getattr(binding, "reads_table_stream", False):
        return False
    fan_out = getattr(binding, "fan_out", None)
    return not (fan_out is not None and getattr(fan_out, "fifo", False))


def _ttl_of(table: dynamodb.ITable) -> tuple[bool, str | None]:
    """(whether the table is defined in this app, its enabled TTL attribute or None)."""
    if isinstance(table, StreamTable):
        return True, table.time_to_live_attribute
    cfn = table.node.default_child if isinstance(table, (dynamodb.TableV2, dynamodb.Table)) \
        else None
    if not isinstance(cfn, (dynamodb.CfnGlobalTable, dynamodb.CfnTable)):
        return False, None
    spec = cfn.time_to_live_specification
    if spec is None:
        return True, None
    if isinstance(spec, dict):
        enabled, name = spec.get("enabled"), spec.get("attributeName")
    else:
        enabled, name = getattr(spec, "enabled", None), getattr(spec, "attribute_name", None)
    if isinstance(name, str) and enabled is True:
        return True, name
    return True, None
