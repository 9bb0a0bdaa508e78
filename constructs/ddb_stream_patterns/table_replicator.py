"""``TableReplicator``: keep a second table in step with the source, order-safe."""

from __future__ import annotations

import re

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
from constructs import Construct

from . import _validation as v
from ._stream_pattern import ControllerPattern, StreamOptions, require_view_type, runtime_controller
from .change_source import ChangeSource
from .monitoring import Monitoring
from .runtime_assets import StreamRuntimeLayer

__all__ = ["TableReplicator"]

_TRANSFORM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


class TableReplicator(ControllerPattern, Construct):
    """Replicate the source table into a target table: a copy, or a reshaped view.

    INSERT/MODIFY put the item into the target, REMOVE deletes it. Every write is
    conditional on the source's stream order (``version_attribute`` on the target item
    holds the record's sequence number), so a retried or late record never overwrites
    newer data. An optional ``transform`` reshapes items or drops them (a dropped item
    is deleted from the target).

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
        stream_options: StreamOptions | None = None,
        function_options: lambda_.FunctionOptions | None = None,
        monitoring: Monitoring | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        source: ChangeSource | None = None,
    ) -> None:
        v.check_types("TableReplicator", {
            "table": v.ITABLE, "target_table": v.ITABLE, "transform": str,
            "transform_code": lambda_.Code, "version_attribute": str,
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
