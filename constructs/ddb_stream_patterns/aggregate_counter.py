"""``AggregateCounter``: per-group counts (and an optional sum) kept exactly once."""

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
from .stream_table import StreamTable

__all__ = ["AggregateCounter", "MARKER_TTL_ATTRIBUTE"]

#: TTL attribute of the counter table: idempotency markers expire through it.
MARKER_TTL_ATTRIBUTE = "expiresAt"
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


class AggregateCounter(ControllerPattern, Construct):
    """Keep a count of items per group (e.g. tasks per ``ListId``) in a counter table.

    INSERT adds 1 to the new item's group, REMOVE subtracts 1 from the old item's group,
    a MODIFY that moves an item between groups does -1/+1, any other MODIFY adds 0.
    ``sum_of`` keeps a second aggregate: the sum of a numeric attribute per group.

    Exactly once under retries and redelivery: each batch is aggregated in memory and
    applied in DynamoDB transactions together with one idempotency marker per
    contributing record (``__applied__#<eventID>``, expiring after 2 days through the
    counter table's TTL), each conditional on the marker not existing. A redelivered
    record finds its marker and is not counted again. (A per-shard checkpoint cannot be
    used: Lambda's stream events do not say which shard a batch came from.)

    Parameters
    ----------
    table
        The source table; its stream must carry both images. Required.
    group_attribute
        The item attribute that names the group (string or number). Required.
    counter_table
        Where counts live. Default: a new table (partition key ``pk`` string, TTL on
        ``expiresAt``, on-demand, PITR, ``removal_policy``). One you give must have a
        string partition key named ``counter_partition_key`` and TTL on ``expiresAt``.
    counter_partition_key
        Partition key name of a given ``counter_table``. Default: ``pk``.
    count_attribute
        Default: ``count``.
    sum_of, sum_attribute
        Also sum this numeric attribute per group, into ``sum_attribute`` (default
        ``sum``). Default: no sum.
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
    counter_table, function, controller, alarms.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.ITable,
        group_attribute: str,
        counter_table: dynamodb.ITable | None = None,
        counter_partition_key: str = "pk",
        count_attribute: str = "count",
        sum_of: str | None = None,
        sum_attribute: str = "sum",
        stream_options: StreamOptions | None = None,
        function_options: lambda_.FunctionOptions | None = None,
        monitoring: Monitoring | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        source: ChangeSource | None = None,
    ) -> None:
        v.check_types("AggregateCounter", {
            "table": v.ITABLE, "group_attribute": str, "counter_table": v.ITABLE,
            "counter_partition_key": str, "count_attribute": str, "sum_of": str,
            "sum_attribute": str,
            "stream_options": StreamOptions, "function_options": lambda_.FunctionOptions,
            "monitoring": Monitoring, "removal_policy": cdk.RemovalPolicy,
        }, locals())
        super().__init__(scope, id)
        names = {
            "group_attribute": group_attribute,
            "counter_partition_key": counter_partition_key,
            "count_attribute": count_attribute,
            "sum_attribute": sum_attribute,
        }
        if sum_of is not None:
            names["sum_of"] = sum_of
        for prop, value in names.items():
            if not isinstance(value, str) or not _ATTRIBUTE.match(value):
                raise ValueError(f"{prop} must be an attribute name, got {value!r}")
        stored = [counter_partition_key, count_attribute, MARKER_TTL_ATTRIBUTE]
        if sum_of is not None:
            stored.append(sum_attribute)
        if len(set(stored)) != len(stored):
            raise ValueError(
                "counter_partition_key, count_attribute, sum_attribute and the marker TTL "
                f"attribute {MARKER_TTL_ATTRIBUTE!r} must differ, got {stored!r}"
            )
        require_view_type(table, "both", "AggregateCounter", source=source)

        self.counter_table = counter_table or StreamTable(
            self,
            "CounterTable",
            partition_key=dynamodb.Attribute(
                name=counter_partition_key, type=dynamodb.AttributeType.STRING
            ),
            # The counter table's own stream lets users chain patterns on the counts.
            time_to_live_attribute=MARKER_TTL_ATTRIBUTE,
            removal_policy=removal_policy,
        )
        environment = {
            "COUNTER_TABLE": self.counter_table.table_name,
            "GROUP_ATTRIBUTE": group_attribute,
            "COUNTER_PARTITION_KEY": counter_partition_key,
            "COUNT_ATTRIBUTE": count_attribute,
            "MARKER_TTL_ATTRIBUTE": MARKER_TTL_ATTRIBUTE,
        }
        if sum_of is not None:
            environment.update(SUM_SOURCE_ATTRIBUTE=sum_of, SUM_ATTRIBUTE=sum_attribute)
        self.controller = runtime_controller(
            self,
            table=table,
            handler="ddb_stream_runtime.counter.handler",
            environment=environment,
            function_options=function_options,
            stream_options=stream_options,
            monitoring=monitoring,
            removal_policy=removal_policy,
            source=source,
            needs="both",
        )
        # TransactWriteItems needs the action of each item it holds: markers are
        # conditional puts, counts are updates. Nothing is read.
        self.counter_table.grant(self.function, "dynamodb:PutItem", "dynamodb:UpdateItem")
