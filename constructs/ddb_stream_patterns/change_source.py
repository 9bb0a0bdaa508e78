"""Where a pattern's handler gets the table's changes from: the ``ChangeSource`` protocol.

Every pattern (``TtlArchiver``, ``AggregateCounter``, ``SearchIndexer``,
``TableReplicator``) and ``SimpleController`` take ``source=``:

- ``None`` (the default): the table's own DynamoDB stream, read by an event source
  mapping of the handler (:class:`TableStream`; each such pattern is one stream reader);
- a :class:`~ddb_stream_patterns.StreamFanOut`: one router reads the stream and
  publishes to SNS; the handler gets its own SQS queue (``fan_out.with_queue(...)``
  sets that queue's options);
- a :class:`~ddb_stream_patterns.KinesisSource`: the Kinesis data stream the table writes
  its changes to, read by an event source mapping of the handler, shared-throughput or
  through an enhanced fan-out consumer (binding: a ``KinesisController``).

The handler is the same on every source (``ddb_stream_runtime.<pattern>.handler``): the
runtime recognizes each record's shape.

Adding a kind of source
-----------------------
A kind of source is ONE class that implements this protocol; no pattern changes:

``table``
    The ``ITable`` whose changes it carries. A pattern refuses a source on another table
    than its own ``table=``. ``None`` when the source is not tied to a table in this app
    (``KinesisSource(stream=...)``): its ``bind`` then checks that the pattern's table
    feeds it.
``describe() -> str``
    A short name for messages, e.g. ``"StreamFanOut 'Stack/FanOut'"``.
``bind(scope, id, *, function, consumer) -> SourceBinding``
    Attach ``function`` (built by the pattern, its handler and environment already set)
    under ``scope`` as construct ``id`` (patterns pass ``"Controller"``), honouring
    ``consumer`` (:class:`ConsumerSpec`: the pattern's name, table, filters, the images
    it reads, the stream options or props it was given, monitoring, removal policy). Refuse, with
    a ``ValueError`` naming the prop and value, whatever the source cannot honour (a
    filter it cannot express, stream options it does not use, images its table lacks).
    Return the binding.
``carries_both_images`` (optional class attribute, default ``False``)
    ``True`` when the source's records carry the item's old and new images whatever the
    table's stream view type (Kinesis): the patterns then skip their view type checks.

A ``SourceBinding`` (``SimpleController`` is the table stream's; ``FanOutConsumer`` the
fan-out's) exposes what the pattern derives its own public surface from:

``function``, ``alarms`` (dict by purpose), ``alarm_topic`` (or ``None``),
``event_source_mapping`` (the mapping that invokes ``function``), ``failure_queue``
(where records given up on wait, or ``None``), ``metric_errors()``,
``metric_failure_queue_depth()``, ``dashboard_rows()``; and, where it means something,
``metric_iterator_age()`` (stream-like sources) or ``metric_oldest_message_age()``
(queue-fed ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sqs as sqs
from constructs import Construct

from ._validation import _show
from .monitoring import Monitoring
from .stream_filter import StreamFilter

__all__ = ["ChangeSource", "ConsumerSpec", "SourceBinding", "TableStream", "check_source"]


@dataclass(frozen=True)
class ConsumerSpec:
    """What a pattern asks of its source when it binds its handler.

    Parameters
    ----------
    pattern
        The pattern's class name, for messages (``"TtlArchiver"``).
    table
        The pattern's ``table=``.
    filters
        The records the handler wants (OR across filters). Default: all.
    needs
        The images the handler reads: ``"old"``, ``"new"``, ``"both"`` or ``None``.
    stream_options
        The ``StreamOptions`` the pattern was given (``None``: not given). The table
        stream uses them; a source that cannot honour them refuses them.
    stream_props
        ``SimpleController``'s event-source props given with other values than their
        defaults, by prop name (``{"batch_size": 50}``); a source uses what applies to it
        and refuses the rest. Default: none.
    monitoring, removal_policy
        As given to the pattern.
    ordered
        The handler orders one item's changes (the replicator's conditional writes, the
        indexer's external versions): by ``SequenceNumber`` on a stream or queue, by
        ``ApproximateCreationDateTime`` on Kinesis. A source whose order key may be coarse
        says so. Default: ``False``.
    redelivery_env
        Name of an environment variable through which the handler learns for how long
        after a record's creation the source may still deliver it (seconds; the counter's
        ``MARKER_RETENTION_SECONDS``). A source whose bound is set by its own options (a
        Kinesis mapping's maximum record age) sets it; the others leave the handler's
        per-source default. Default: none.
    """

    pattern: str
    table: dynamodb.ITable
    filters: Sequence[StreamFilter] = ()
    needs: str | None = None
    stream_options: Any = None
    stream_props: Mapping[str, Any] = field(default_factory=dict)
    monitoring: Monitoring | None = None
    removal_policy: cdk.RemovalPolicy = field(default=cdk.RemovalPolicy.RETAIN)
    ordered: bool = False
    redelivery_env: str | None = None


@runtime_checkable
class SourceBinding(Protocol):
    """A handler attached to a source (see the module docstring)."""

    function: lambda_.IFunction
    alarms: dict[str, cloudwatch.Alarm]
    alarm_topic: sns.ITopic | None
    event_source_mapping: lambda_.EventSourceMapping
    failure_queue: sqs.IQueue | None

    def metric_errors(self) -> cloudwatch.Metric: ...

    def metric_failure_queue_depth(self) -> cloudwatch.Metric: ...

    def dashboard_rows(self) -> list[list[cloudwatch.IWidget]]: ...


@runtime_checkable
class ChangeSource(Protocol):
    """A kind of source of a table's changes (see the module docstring)."""

    table: dynamodb.ITable

    def describe(self) -> str: ...

    def bind(
        self, scope: Construct, id: str, *, function: lambda_.IFunction, consumer: ConsumerSpec
    ) -> SourceBinding: ...


class TableStream:
    """The table's own DynamoDB stream: the handler gets an event source mapping on it
    (a ``SimpleController``: bisect, finite retries, max record age, partial batch
    responses, a failure bucket that keeps the records given up on, alarms). The default
    source of every pattern."""

    def __init__(self, table: dynamodb.ITable) -> None:
        self.table = table

    def describe(self) -> str:
        return f"the stream of table {self.table.node.path!r}"

    def bind(
        self, scope: Construct, id: str, *, function: lambda_.IFunction, consumer: ConsumerSpec
    ) -> SourceBinding:
        from ._stream_pattern import StreamOptions, require_view_type
        from .simple_controller import SimpleController, check_table_stream_record_age

        if consumer.needs is not None:
            require_view_type(self.table, consumer.needs, consumer.pattern)
        options = consumer.stream_options or StreamOptions()
        # Named as the pattern's prop; SimpleController would name its own.
        check_table_stream_record_age(
            "stream_options.max_record_age", options.max_record_age, self.table
        )
        return SimpleController(
            scope,
            id,
            table=self.table,
            function=function,
            filters=consumer.filters,
            starting_position=options.starting_position,
            batch_size=options.batch_size,
            max_batching_window=options.max_batching_window,
            parallelization_factor=options.parallelization_factor,
            retry_attempts=options.retry_attempts,
            max_record_age=options.max_record_age,
            failure_destination=options.failure_destination,
            removal_policy=consumer.removal_policy,
            monitoring=consumer.monitoring,
        )


def check_source(owner: str, source: object, table: dynamodb.ITable) -> ChangeSource:
    """``source`` as a ``ChangeSource`` on ``table`` (``None``: the table's stream).

    Raises ``TypeError`` naming ``source`` when it is not a source, and ``ValueError``
    when it carries another table's changes than ``table`` (the pattern's ``table=``).
    """
    if source is None:
        return TableStream(table)
    if not isinstance(source, ChangeSource):
        raise TypeError(
            f"{owner}: source must be None (the table's stream) or a change source (a "
            f"StreamFanOut, fan_out.with_queue(...), or a KinesisSource), got {_show(source)}"
        )
    if source.table is None:  # not tied to a table here: its bind checks the table feeds it
        return source
    if not _same_table(source.table, table):
        raise ValueError(
            f"{owner}: source {source.describe()} carries the changes of table "
            f"{source.table.node.path!r}, not of this pattern's table {table.node.path!r}: "
            "give a fan-out (or source) on the same table, or table= that table"
        )
    return source


def _same_table(a: dynamodb.ITable, b: dynamodb.ITable) -> bool:
    if a is b:
        return True
    # Two imports of one table (from_table_name twice) are the same table.
    names = (a.table_name, b.table_name)
    return not any(cdk.Token.is_unresolved(n) for n in names) and names[0] == names[1]
