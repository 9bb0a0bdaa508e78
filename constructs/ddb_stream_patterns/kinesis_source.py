"""Kinesis Data Streams for DynamoDB as a source: ``KinesisSource`` and ``KinesisController``.

A table can write every change to a Kinesis data stream (``StreamTable(kinesis_stream=...)``).
Its consumers then read that stream instead of the table's DynamoDB stream, either as
*shared-throughput* readers (Lambda polls each shard; all such readers share the shard's
read throughput) or through an *enhanced fan-out* consumer (``AWS::Kinesis::StreamConsumer``:
each gets its own 2 MB/s per shard, pushed over HTTP/2).

Limits checked at synth (AWS documentation):

* enhanced fan-out consumers per stream: 20; 50 when the account runs On-demand Advantage
  mode, an account-level setting a template cannot see (``on_demand_advantage=True``)
  (Kinesis Data Streams developer guide, "Develop enhanced fan-out consumers with dedicated
  throughput"); consumer names 1-128 characters of ``[a-zA-Z0-9_.-]``
  (Kinesis API reference, ``RegisterStreamConsumer``);
* event source mapping (Lambda developer guide, "Lambda parameters for Amazon Kinesis Data
  Streams event source mappings"): batch size 1-10,000, parallelization factor 1-10,
  retries -1-10,000 (finite here: 0-10,000), maximum record age -1 or up to 604,800 s
  (CDK takes 60 s to 7 days), batching window 0-300 s.

Records arrive as Kinesis records whose base64 ``kinesis.data`` holds the DynamoDB change
record; event filtering applies to that decoded ``data``
(:func:`~ddb_stream_patterns.stream_filter.kinesis_filters`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_kinesis as kinesis
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_event_sources as sources
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sqs as sqs
import jsii
from constructs import Construct

from ._validation import (
    IFUNCTION,
    ITABLE,
    check_duration_range,
    check_range,
    check_type,
    check_types,
    is_token,
)
from .monitoring import Monitoring
from .simple_controller import (
    DEFAULT_MAX_RECORD_AGE,
    DEFAULT_RUNTIME,
    FailureDestination,
    SimpleController,
    _check_function_choice,
    _check_record_age,
    _mapping_of,
    mapping_metrics_config,
)
from .stream_filter import StreamFilter, kinesis_filters
from .stream_table import ISTREAM, StreamTable, check_filters_on_table

__all__ = [
    "KinesisSource",
    "KinesisController",
    "MAX_EFO_CONSUMERS",
    "MAX_EFO_CONSUMERS_ON_DEMAND_ADVANTAGE",
    "PRECISION_WARNING",
    "REDELIVERY_MARGIN",
]

#: Enhanced fan-out consumers per stream (On-demand Standard and Provisioned streams).
MAX_EFO_CONSUMERS = 20
#: ... and with the account in On-demand Advantage mode.
MAX_EFO_CONSUMERS_ON_DEMAND_ADVANTAGE = 50
_CONSUMER_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")

# Lambda's limits for Kinesis event source mappings.
_BATCH_SIZE = (1, 10_000)
_BATCHING_WINDOW_S = (0, 300)
_PARALLELIZATION = (1, 10)
_RETRIES = (0, 10_000)
_RECORD_AGE_S = (60, 604_800)


@dataclass(frozen=True)
class KinesisSource:
    """A change source (``source=`` of every pattern and ``SimpleController``): the Kinesis
    data stream a table writes its changes to, and how one consumer reads it.

    Each pattern given a ``KinesisSource`` gets its own event source mapping on the stream
    (its binding is a :class:`KinesisController`: bisect, finite retries, maximum record
    age, partial batch responses, an on-failure bucket that keeps the records, alarms on
    iterator age, errors, throttles, records sent to that bucket and records dropped,
    dashboard rows), runs its usual handler, and stays correct
    on Kinesis's duplicates and cross-shard order (see ``ddb_stream_runtime``).

    Parameters
    ----------
    stream
        The Kinesis data stream the table writes to (``StreamTable.kinesis_stream``, or
        any ``kinesis.IStream``). Required.
    table
        The table that writes to ``stream`` (``of_table`` sets it). A pattern refuses a
        source on another table than its ``table=``. Default: none: the pattern's
        ``table=``, which must then write to ``stream`` when it is a table of this app.
    enhanced_fan_out
        Read through an enhanced fan-out consumer (``AWS::Kinesis::StreamConsumer``, its
        own 2 MB/s per shard) rather than as a shared-throughput reader. Default: ``False``.
    consumer_name
        Name of the enhanced fan-out consumer: 1-128 characters of ``[a-zA-Z0-9_.-]``,
        unique per stream. Default: derived from the consumer construct's path.
    on_demand_advantage
        The account runs Kinesis On-demand Advantage mode, which allows 50 enhanced
        fan-out consumers per stream instead of 20. Default: ``False``.
    batch_size, max_batching_window, parallelization_factor, retry_attempts,
    max_record_age, starting_position, bisect_batch_on_error
        This consumer's event source mapping, with the limits and defaults of
        ``SimpleController`` on a table's stream: 100 records, no batching window, 1
        batch per shard, 10 retries (finite: 0-10,000), ``DEFAULT_MAX_RECORD_AGE`` (20
        hours; 60 s to 7 days: never infinite), ``TRIM_HORIZON``, bisect on. A
        ``max_record_age`` at or above the stream's retention is an error at synth when
        that retention is known: a ``kinesis.Stream`` of this app (its
        ``retention_period``, 24 hours unless set, e.g. ``StreamTable(kinesis_stream=True)``);
        an imported stream's retention is unknown here, so keep ``max_record_age`` below it
        yourself (records the stream trims while they are retried are lost, unseen by the
        failure destination and by ``DroppedEventCount``). A pattern's ``stream_options`` (or
        ``SimpleController``'s own props) give the same settings; give each at most once.
        Default: none (the pattern's, else the defaults above).

    Images and order
    ----------------
    DynamoDB writes every change to Kinesis with the item's key and its images before
    and after the change, whatever the table's stream view type ("Using Kinesis Data
    Streams to capture changes to DynamoDB"): a pattern's view type requirement does not
    apply (``carries_both_images``). The records may arrive out of order and more than
    once; ``ApproximateCreationDateTime`` orders them. The replicator and the indexer
    order by it: a table that may not write ``MICROSECOND`` precision gets a synth warning
    (``PRECISION_WARNING``). The counter's idempotency markers live
    ``max_record_age`` + 1 day (``MARKER_RETENTION_SECONDS`` on its function): past the
    maximum record age the mapping never delivers a record, whatever the stream's
    retention (up to 365 days).

    Examples
    --------
    >>> KinesisSource.of_table(table, enhanced_fan_out=True)     # doctest: +SKIP
    >>> AggregateCounter(stack, "Counts", table=table, group_attribute="ListId",
    ...     source=KinesisSource.of_table(table, enhanced_fan_out=True, batch_size=500))
    ...                                                          # doctest: +SKIP
    """

    stream: kinesis.IStream
    enhanced_fan_out: bool = False
    consumer_name: str | None = None
    on_demand_advantage: bool = False
    table: dynamodb.ITable | None = None
    batch_size: int | None = None
    max_batching_window: cdk.Duration | None = None
    parallelization_factor: int | None = None
    retry_attempts: int | None = None
    max_record_age: cdk.Duration | None = None
    starting_position: lambda_.StartingPosition | None = None
    bisect_batch_on_error: bool | None = None

    #: Kinesis records carry both images whatever the table's stream view type.
    carries_both_images: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_type("KinesisSource", "stream", self.stream, ISTREAM, optional=False)
        check_types("KinesisSource", {
            "enhanced_fan_out": bool, "consumer_name": str, "on_demand_advantage": bool,
            "table": ITABLE, "batch_size": int, "max_batching_window": cdk.Duration,
            "parallelization_factor": int, "retry_attempts": int,
            "max_record_age": cdk.Duration, "starting_position": lambda_.StartingPosition,
            "bisect_batch_on_error": bool,
        }, vars(self))
        check_range("batch_size", self.batch_size, *_BATCH_SIZE)
        check_duration_range("max_batching_window", self.max_batching_window,
                             *_BATCHING_WINDOW_S)
        check_range("parallelization_factor", self.parallelization_factor, *_PARALLELIZATION)
        check_range("retry_attempts", self.retry_attempts, *_RETRIES)
        check_duration_range("max_record_age", self.max_record_age, *_RECORD_AGE_S)
        name = self.consumer_name
        if name is not None and not is_token(name):
            if not self.enhanced_fan_out:
                raise ValueError(
                    f"consumer_name {name!r} needs enhanced_fan_out=True: a shared-throughput "
                    "reader registers no consumer"
                )
            if not _CONSUMER_NAME.match(name):
                raise ValueError(
                    f"consumer_name must be 1 to 128 characters of [a-zA-Z0-9_.-], got {name!r}"
                )

    @classmethod
    def of_table(cls, table: StreamTable, **options: Any) -> KinesisSource:
        """The Kinesis stream a ``StreamTable`` writes to (``ValueError`` if it has none)."""
        stream = getattr(table, "kinesis_stream", None)
        if stream is None:
            path = getattr(getattr(table, "node", None), "path", table)
            raise ValueError(
                f"table {path!r} writes to no kinesis stream: create it with "
                "StreamTable(kinesis_stream=True) or pass KinesisSource(stream=...)"
            )
        return cls(stream=stream, table=table, **options)

    @property
    def max_consumers(self) -> int:
        """Enhanced fan-out consumers this stream may have."""
        return (MAX_EFO_CONSUMERS_ON_DEMAND_ADVANTAGE if self.on_demand_advantage
                else MAX_EFO_CONSUMERS)

    # -- the ChangeSource protocol ------------------------------------------------------

    def describe(self) -> str:
        how = "enhanced fan-out" if self.enhanced_fan_out else "shared throughput"
        return f"KinesisSource on kinesis stream {self.stream.node.path!r} ({how})"

    def bind(
        self, scope: Construct, id: str, *, function: lambda_.IFunction, consumer: Any
    ) -> KinesisController:
        """Attach ``function`` (see ``ChangeSource``): a :class:`KinesisController` under
        ``scope`` as ``id``. Refuses a table that does not write to this stream, a filter
        that cannot apply to Kinesis data, a setting given twice, a counter function whose
        ``MARKER_RETENTION_SECONDS`` would not outlive the maximum record age."""
        owner = f"{consumer.pattern} {scope.node.path}/{id}"
        _check_table_feeds(owner, self, consumer.table)
        settings = self._settings(owner, consumer)
        try:
            kinesis_filters(list(consumer.filters))
        except ValueError as exc:
            raise ValueError(f"{owner}: filters: {exc}") from None
        check_filters_on_table(consumer.pattern, consumer.filters, consumer.table, images=False)
        if consumer.redelivery_env:
            _set_redelivery_bound(owner, function, consumer.redelivery_env,
                                  settings["max_record_age"])
        controller = KinesisController(
            scope, id, source=self, function=function, filters=consumer.filters,
            removal_policy=consumer.removal_policy, monitoring=consumer.monitoring,
            **settings,
        )
        if consumer.ordered:
            _warn_about_precision(controller, owner, consumer.table)
        return controller

    def _settings(self, owner: str, consumer: Any) -> dict[str, Any]:
        """The mapping's props: this source's, the pattern's ``stream_options`` or
        ``SimpleController``'s props, else the defaults; each given at most once. Refuses
        a ``max_record_age`` at or above the stream's known retention, named as given."""
        mine = {k: getattr(self, k) for k in _MAPPING_DEFAULTS if hasattr(self, k)}
        mine = {k: v for k, v in mine.items() if v is not None}
        theirs: dict[str, tuple[str, Any]] = {}
        options = consumer.stream_options
        if options is not None:
            from ._stream_pattern import StreamOptions

            default = StreamOptions()
            for name in vars(options):
                value = getattr(options, name)
                if not _same(value, getattr(default, name)):
                    theirs[name] = (f"stream_options.{name}", value)
        for name, value in (consumer.stream_props or {}).items():
            theirs[name] = (name, value)
        settings = dict(_MAPPING_DEFAULTS)
        age_given_as = ("KinesisSource max_record_age" if "max_record_age" in mine else
                        theirs.get("max_record_age", ("max_record_age",))[0])
        for name, (where, value) in theirs.items():
            if name in mine and not _same(mine[name], value):
                raise ValueError(
                    f"{owner}: {name} is given twice, {_plain(mine[name])} on the "
                    f"KinesisSource and {_plain(value)} as {where}: give it once"
                )
            settings[name] = value
        settings.update(mine)
        settings["max_record_age"] = settings["max_record_age"] or DEFAULT_MAX_RECORD_AGE
        check_duration_range(age_given_as, settings["max_record_age"], *_RECORD_AGE_S)
        _check_record_age(
            f"{owner}: {age_given_as}", settings["max_record_age"],
            stream_retention(self.stream), lambda: f"kinesis stream {self.stream.node.path!r}",
            lambda: "give less, or raise the stream's retention_period",
        )
        return settings

    def _event_source(
        self, scope: Construct, *, starting_position: lambda_.StartingPosition,
        **options: Any,
    ) -> tuple[sources.StreamEventSource, kinesis.StreamConsumer | None]:
        """The event source for a consumer built in ``scope``: a ``KinesisEventSource``, or
        a ``KinesisConsumerEventSource`` on a new ``StreamConsumer`` (id ``Consumer``).
        ``options`` are the ``KinesisEventSourceProps``. Refuses a consumer beyond the
        stream's limit (counted over the app's ``AWS::Kinesis::StreamConsumer`` resources
        on the same stream)."""
        if not self.enhanced_fan_out:
            return sources.KinesisEventSource(
                self.stream, starting_position=starting_position, **options
            ), None
        name = self.consumer_name or _default_consumer_name(scope)
        consumer = kinesis.StreamConsumer(
            scope, "Consumer", stream=self.stream, stream_consumer_name=name
        )
        _check_consumer_count(self, consumer)
        return sources.KinesisConsumerEventSource(
            consumer, starting_position=starting_position, **options
        ), consumer


def stream_retention(stream: kinesis.IStream) -> cdk.Duration | None:
    """How long ``stream`` keeps a record, when this app says: a ``kinesis.Stream`` built
    here has ``RetentionPeriodHours`` (CDK writes 24 unless ``retention_period`` is given;
    absent, Kinesis keeps 24 hours, "Change the data retention period",
    https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html).
    ``None`` for an imported stream or a token."""
    resource = stream.node.default_child if isinstance(stream, kinesis.Stream) else None
    if not isinstance(resource, kinesis.CfnStream):
        return None
    hours = resource.retention_period_hours
    if hours is None:
        return cdk.Duration.hours(24)
    if is_token(hours):
        return None
    return cdk.Duration.hours(hours)


#: The event source mapping's settings and their defaults (as ``SimpleController``'s).
_MAPPING_DEFAULTS: dict[str, Any] = {
    "starting_position": lambda_.StartingPosition.TRIM_HORIZON, "batch_size": 100,
    "max_batching_window": None, "parallelization_factor": 1, "retry_attempts": 10,
    "max_record_age": None, "bisect_batch_on_error": True,
    "report_batch_item_failures": True, "failure_destination": None,
}
#: How much longer than the maximum record age a counter's markers live: DynamoDB's
#: delay in writing to Kinesis and a batch in flight when its records reach that age
#: (44 hours with ``DEFAULT_MAX_RECORD_AGE``; the table stream's markers keep the runtime's
#: 2 days, twice its 24 h retention, which a record can never outlive there).
REDELIVERY_MARGIN = cdk.Duration.days(1)
#: Id of the synth warning about a table that may not write MICROSECOND timestamps.
PRECISION_WARNING = "ddb-stream-patterns:kinesis-precision"


@dataclass(frozen=True)
class _Given:
    """The settings a ``KinesisController`` was given, as a ``ConsumerSpec`` has them."""

    stream_options: Any
    stream_props: Mapping[str, Any]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, cdk.Duration) and isinstance(b, cdk.Duration):
        if is_token(a.to_string()) or is_token(b.to_string()):
            return a is b
        return a.to_seconds() == b.to_seconds()
    return a is b or a == b


def _plain(value: Any) -> str:
    if isinstance(value, cdk.Duration) and not is_token(value.to_string()):
        return f"{value.to_seconds():g} s"
    return repr(getattr(value, "value", value)) if isinstance(
        value, lambda_.StartingPosition) else repr(value)


def _kinesis_destination(table: dynamodb.ITable) -> tuple[bool, Any, str | None]:
    """(known, stream ARN or ``None``, precision or ``None``) of a table's Kinesis
    destination: known for a ``StreamTable`` and any table defined in this app, unknown
    for an imported one."""
    if isinstance(table, StreamTable):
        stream = table.kinesis_stream
        precision = table.kinesis_precision.value if table.kinesis_precision else None
        return True, (stream.stream_arn if stream is not None else None), precision
    resource = table.node.default_child if isinstance(table, Construct) else None
    stack = cdk.Stack.of(table) if isinstance(table, Construct) else None
    spec: Any = None
    if isinstance(resource, dynamodb.CfnGlobalTable):
        replicas = stack.resolve(resource.replicas) or []
        here = stack.resolve(stack.region)
        for replica in replicas if isinstance(replicas, list) else []:
            if isinstance(replica, Mapping) and replica.get("region") in (here, None):
                spec = replica.get("kinesisStreamSpecification")
                break
    elif isinstance(resource, dynamodb.CfnTable):
        spec = stack.resolve(resource.kinesis_stream_specification)
    else:
        return False, None, None
    if not isinstance(spec, Mapping) or not spec.get("streamArn"):
        return True, None, None
    precision = spec.get("approximateCreationDateTimePrecision")
    return True, spec["streamArn"], precision if isinstance(precision, str) else None


def _check_table_feeds(owner: str, source: KinesisSource, table: dynamodb.ITable) -> None:
    """The pattern's table must write to the source's stream (a table of this app; an
    imported table's destination is unknown at synth)."""
    if isinstance(table, StreamTable) and table.kinesis_stream is source.stream:
        return
    known, arn, _ = _kinesis_destination(table)
    if not known:
        return
    stream_path = source.stream.node.path
    if arn is None:
        raise ValueError(
            f"{owner}: source {source.describe()} carries the changes of a table that writes "
            f"to it, but table {table.node.path!r} writes its changes to no kinesis stream, "
            f"so the handler would never get them: give the table kinesis_stream= that "
            f"stream (StreamTable(kinesis_stream=...), TableV2(kinesis_stream=...)), or "
            "use KinesisSource.of_table(table)"
        )
    stack = cdk.Stack.of(table)
    if _stream_key(stack, arn) != _stream_key(stack, source.stream.stream_arn):
        raise ValueError(
            f"{owner}: source {source.describe()} reads kinesis stream {stream_path!r}, but "
            f"table {table.node.path!r} writes its changes to another kinesis stream "
            f"({stack.resolve(arn)!r}; a table streams to one only): use "
            "KinesisSource.of_table(table), or KinesisSource(stream=<the table's stream>)"
        )


def _environment(function: lambda_.IFunction) -> dict[str, Any] | None:
    """The environment variables of a function built in this app (``None``: unknown)."""
    resource = function.node.default_child if isinstance(function, lambda_.Function) else None
    if not isinstance(resource, lambda_.CfnFunction):
        return None
    # The public ``environment`` getter loses CDK's lazy value crossing jsii; the
    # protected ``cfnProperties`` keeps it as a token that resolves to the variables.
    props = cdk.Stack.of(resource).resolve(jsii.get(resource, "cfnProperties")) or {}
    resolved = props.get("environment") if isinstance(props, Mapping) else None
    return dict(resolved.get("variables") or {}) if isinstance(resolved, Mapping) else {}


def _set_redelivery_bound(owner: str, function: lambda_.IFunction, env: str,
                          max_record_age: cdk.Duration) -> None:
    """Tell the handler (``env``) how long after its creation a record may still come:
    the mapping's maximum record age plus :data:`REDELIVERY_MARGIN`."""
    if is_token(max_record_age.to_string()):
        return  # unknown here: the handler keeps its Kinesis default (8 days > 7 days)
    needed = int(max_record_age.to_seconds() + REDELIVERY_MARGIN.to_seconds())
    variables = _environment(function)
    if variables is None:
        return
    given = variables.get(env)
    if given is None:
        function.add_environment(env, str(needed))
        return
    if is_token(given) or not str(given).strip().isdigit():
        return
    if int(given) < needed:
        raise ValueError(
            f"{owner}: function environment {env}={given} is shorter than the kinesis "
            f"mapping's max_record_age ({max_record_age.to_seconds():g} s) + "
            f"{REDELIVERY_MARGIN.to_seconds():g} s: a record redelivered after its marker "
            f"expired would count twice; raise {env} to at least {needed} or remove it "
            "(it is then set from max_record_age)"
        )


def _warn_about_precision(controller: KinesisController, owner: str,
                          table: dynamodb.ITable) -> None:
    """The replicator and indexer order one item's Kinesis records by
    ``ApproximateCreationDateTime``: warn when the table may write milliseconds."""
    known, _, precision = _kinesis_destination(table)
    if precision == "MICROSECOND":
        return
    written = (f"writes {precision} timestamps" if precision else
               "may not write MICROSECOND timestamps (none is set in this app, and "
               "CloudFormation documents no default)" if known else
               "is imported: its ApproximateCreationDateTimePrecision is unknown here")
    cdk.Annotations.of(controller).add_warning_v2(
        PRECISION_WARNING,
        f"{owner} orders one item's kinesis records by ApproximateCreationDateTime, but "
        f"table {table.node.path!r} {written}: two changes of one item within one "
        "millisecond then tie, and the one delivered last wins; use a StreamTable "
        "(MICROSECOND by default) or set the table's KinesisStreamSpecification "
        "ApproximateCreationDateTimePrecision to MICROSECOND, or acknowledge this warning",
    )


def _default_consumer_name(scope: Construct) -> str:
    """A stable, unique, valid consumer name from the construct path."""
    name = re.sub(r"[^a-zA-Z0-9_.-]", "-", scope.node.path)
    if len(name) > 128:
        name = f"{name[:110]}-{scope.node.addr[:16]}"
    return name


def _stream_key(stack: cdk.Stack, arn: str) -> str:
    return json.dumps(stack.resolve(arn), sort_keys=True)


def _check_consumer_count(source: KinesisSource, consumer: kinesis.StreamConsumer) -> None:
    stack = cdk.Stack.of(consumer)
    mine = _stream_key(stack, source.stream.stream_arn)
    consumers = [
        c for c in stack.node.find_all()
        if isinstance(c, kinesis.CfnStreamConsumer)
        and _stream_key(stack, c.stream_arn) == mine
    ]
    mine_name = stack.resolve(consumer.node.default_child.consumer_name)
    same = [c.node.path for c in consumers if stack.resolve(c.consumer_name) == mine_name]
    if len(same) > 1 and not is_token(mine_name):
        raise ValueError(
            f"consumer_name {mine_name!r} is already registered on kinesis stream "
            f"{source.stream.node.path!r} ({same}): a stream's consumer names are unique"
        )
    if len(consumers) > source.max_consumers:
        mode = ("in on-demand advantage mode" if source.on_demand_advantage
                else "(on-demand standard or provisioned; 50 with on_demand_advantage=True)")
        raise ValueError(
            f"kinesis stream {source.stream.node.path!r} would have {len(consumers)} enhanced "
            f"fan-out consumers ({[c.node.path for c in consumers]}); a stream takes at most "
            f"{source.max_consumers} {mode}: read with enhanced_fan_out=False (shared "
            "throughput) or put consumers behind one fan-out"
        )


def _prop_types() -> dict[str, Any]:
    return {
        "source": KinesisSource, "function": IFUNCTION, "code": lambda_.Code, "handler": str,
        "runtime": lambda_.Runtime, "function_options": lambda_.FunctionOptions,
        "filters": [StreamFilter], "starting_position": lambda_.StartingPosition,
        "batch_size": int, "max_batching_window": cdk.Duration,
        "parallelization_factor": int, "retry_attempts": int, "max_record_age": cdk.Duration,
        "bisect_batch_on_error": bool, "report_batch_item_failures": bool,
        "failure_destination": FailureDestination, "removal_policy": cdk.RemovalPolicy,
        "monitoring": Monitoring,
    }


class KinesisController(SimpleController):
    """One Lambda function on the Kinesis data stream a table writes its changes to.

    The simple controller pattern with a Kinesis source: the same safe defaults (bisect a
    failing batch, 10 retries, records older than 20 hours given up on, partial batch
    responses by Kinesis ``sequenceNumber``, an on-failure destination), the same alarms
    (iterator age, errors, throttles, failure deliveries, dropped records), dashboard rows
    and metrics; it *is*
    a ``SimpleController`` for everything but its source (``table`` is ``None``).

    Each record the function gets is a Kinesis record whose base64 ``kinesis.data`` is
    the DynamoDB change record (``eventName``, ``dynamodb.Keys``/``NewImage``/``OldImage``,
    ``ApproximateCreationDateTime`` in ms or µs, no ``SequenceNumber``); Kinesis may deliver
    it twice, and orders records only per shard.

    Parameters
    ----------
    source
        The stream, and whether to read it through an enhanced fan-out consumer
        (:class:`KinesisSource`). Required.
    function, code, handler, runtime, function_options
        As for ``SimpleController``.
    filters
        ``StreamFilter`` list (OR, at most 5), applied to the decoded ``data`` of each
        record; refused when a filter names a field the Kinesis record lacks, or compares
        ``ApproximateCreationDateTime``. Default: none.
    starting_position
        Default: ``TRIM_HORIZON``.
    batch_size
        1-10,000. Default: 100.
    max_batching_window
        0-300 s. Default: none.
    parallelization_factor
        Concurrent batches per shard, 1-10. Default: 1.
    retry_attempts
        0-10,000 (finite). Default: 10.
    max_record_age
        60 s to 7 days, and below the stream's retention when it is known (see
        :class:`KinesisSource`). Default: ``DEFAULT_MAX_RECORD_AGE`` (20 hours).
    bisect_batch_on_error, report_batch_item_failures
        Default: ``True`` both.
    failure_destination
        Default: ``FailureDestination.s3()``: a new bucket that gets the failed batch's
        coordinates (``KinesisBatchInfo``: shard, sequence range) *and* its records, kept
        90 days. ``FailureDestination.sqs()`` gets the coordinates only: the records must
        be read back from the stream within its retention.
    removal_policy
        Default: ``RETAIN``.
    monitoring
        Default: ``Monitoring()``.

    Attributes
    ----------
    Those of ``SimpleController``, plus ``source`` and ``consumer`` (the
    ``kinesis.StreamConsumer``, or ``None`` for a shared-throughput reader).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source: KinesisSource,
        function: lambda_.IFunction | None = None,
        code: lambda_.Code | None = None,
        handler: str | None = None,
        runtime: lambda_.Runtime = DEFAULT_RUNTIME,
        function_options: lambda_.FunctionOptions | None = None,
        filters: Sequence[StreamFilter] = (),
        starting_position: lambda_.StartingPosition = lambda_.StartingPosition.TRIM_HORIZON,
        batch_size: int = 100,
        max_batching_window: cdk.Duration | None = None,
        parallelization_factor: int = 1,
        retry_attempts: int = 10,
        max_record_age: cdk.Duration | None = None,
        bisect_batch_on_error: bool = True,
        report_batch_item_failures: bool = True,
        failure_destination: FailureDestination | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        monitoring: Monitoring | None = None,
    ) -> None:
        check_types("KinesisController", _PROP_TYPES, locals())
        if source is None:
            raise ValueError("source is required: a KinesisSource, got None")
        # The mapping settings given here, merged with the source's (each given once).
        given = {k: v for k, v in {
            "starting_position": starting_position, "batch_size": batch_size,
            "max_batching_window": max_batching_window,
            "parallelization_factor": parallelization_factor,
            "retry_attempts": retry_attempts, "max_record_age": max_record_age,
            "bisect_batch_on_error": bisect_batch_on_error,
            "report_batch_item_failures": report_batch_item_failures,
            "failure_destination": failure_destination,
        }.items() if not _same(v, _MAPPING_DEFAULTS[k])}
        settings = source._settings(
            f"KinesisController {scope.node.path}/{id}",
            _Given(stream_options=None, stream_props=given),
        )
        starting_position = settings["starting_position"]
        batch_size = settings["batch_size"]
        max_batching_window = settings["max_batching_window"]
        parallelization_factor = settings["parallelization_factor"]
        retry_attempts = settings["retry_attempts"]
        max_record_age = settings["max_record_age"]
        bisect_batch_on_error = settings["bisect_batch_on_error"]
        report_batch_item_failures = settings["report_batch_item_failures"]
        failure_destination = settings["failure_destination"]
        Construct.__init__(self, scope, id)
        check_range("batch_size", batch_size, *_BATCH_SIZE)
        check_duration_range("max_batching_window", max_batching_window, *_BATCHING_WINDOW_S)
        check_range("parallelization_factor", parallelization_factor, *_PARALLELIZATION)
        check_range("retry_attempts", retry_attempts, *_RETRIES)
        check_duration_range("max_record_age", max_record_age, *_RECORD_AGE_S)
        filter_criteria = kinesis_filters(list(filters))

        _check_function_choice(function, code, handler, function_options)

        #: No table: this controller reads the Kinesis stream (see ``source``).
        self.table = None
        self.source = source
        self.reads_table_stream = False
        self.source_binding = None  # this controller is its own binding
        self.runtime_layer = None
        self.log_group = None
        self.built_function: lambda_.Function | None = None
        if function is None:
            self.built_function = self._build_function(
                code, handler, runtime, function_options, removal_policy
            )
        self.function: lambda_.IFunction = function or self.built_function

        self.failure_queue: sqs.IQueue | None = None
        self.failure_bucket: s3.IBucket | None = None
        self.failure_destination = self._failure_destination(
            failure_destination or FailureDestination.s3(), removal_policy
        )
        self.event_source, self.consumer = source._event_source(
            self,
            starting_position=starting_position,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            parallelization_factor=parallelization_factor,
            retry_attempts=retry_attempts,
            max_record_age=max_record_age,
            bisect_batch_on_error=bisect_batch_on_error,
            report_batch_item_failures=report_batch_item_failures,
            on_failure=self.failure_destination,
            filters=filter_criteria or None,
            metrics_config=mapping_metrics_config(),
        )
        self.function.add_event_source(self.event_source)
        self.event_source_mapping: lambda_.EventSourceMapping = _mapping_of(self.function)
        if not source.enhanced_fan_out:
            _warn_about_shared_readers(self)
        self._add_alarms(monitoring)


#: Read transactions (GetRecords) a shard serves per second, shared by every
#: shared-throughput reader (Kinesis developer guide, "Quotas and limits"); Lambda polls each
#: shard about once per second per mapping ("Using Lambda to process records from Amazon
#: Kinesis Data Streams").
MAX_SHARED_READERS = 5
SHARED_READERS_WARNING = "ddb-stream-patterns:kinesis-shared-readers"


def _warn_about_shared_readers(controller: KinesisController) -> None:
    stack = cdk.Stack.of(controller)
    mine = _stream_key(stack, controller.source.stream.stream_arn)
    readers = [
        c.node.path for c in stack.node.find_all()
        if isinstance(c, KinesisController) and not c.source.enhanced_fan_out
        and _stream_key(stack, c.source.stream.stream_arn) == mine
    ]
    if len(readers) <= MAX_SHARED_READERS:
        return
    message = (
        f"kinesis stream {controller.source.stream.node.path!r} now has {len(readers)} "
        f"shared-throughput readers ({readers}); a shard serves {MAX_SHARED_READERS} reads "
        "a second and 2 MB/s to all of them: read through enhanced fan-out "
        "(KinesisSource(enhanced_fan_out=True)), or accept throttling and latency"
    )
    # As SimpleController's readers warning: CDK decides on a throwaway child whether the
    # warning is acknowledged; the entry is written without a Node stack trace.
    probe = Construct(controller, "SharedReadersWarningProbe")
    cdk.Annotations.of(probe).add_warning_v2(SHARED_READERS_WARNING, message)
    acknowledged = not probe.node.metadata
    controller.node.try_remove_child(probe.node.id)
    if not acknowledged:
        controller.node.add_metadata(
            "aws:cdk:warning", f"{message} [ack: {SHARED_READERS_WARNING}]")


_PROP_TYPES = _prop_types()
