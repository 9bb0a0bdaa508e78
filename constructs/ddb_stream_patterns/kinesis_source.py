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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_kinesis as kinesis
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_event_sources as sources
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sqs as sqs
from constructs import Construct

from ._validation import (
    IFUNCTION,
    check_duration_range,
    check_range,
    check_type,
    check_types,
    is_token,
)
from .monitoring import AlarmFactory, Monitoring
from .simple_controller import DEFAULT_RUNTIME, FailureDestination, SimpleController, _mapping_of
from .stream_filter import StreamFilter, kinesis_filters
from .stream_table import ISTREAM, StreamTable

__all__ = [
    "KinesisSource",
    "KinesisController",
    "MAX_EFO_CONSUMERS",
    "MAX_EFO_CONSUMERS_ON_DEMAND_ADVANTAGE",
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
    """Where a consumer reads a table's changes from: a Kinesis data stream, and how.

    Parameters
    ----------
    stream
        The Kinesis data stream the table writes to (``StreamTable.kinesis_stream``, or
        any ``kinesis.IStream``). Required.
    enhanced_fan_out
        Read through an enhanced fan-out consumer (``AWS::Kinesis::StreamConsumer``, its
        own 2 MB/s per shard) rather than as a shared-throughput reader. Default: ``False``.
    consumer_name
        Name of the enhanced fan-out consumer: 1-128 characters of ``[a-zA-Z0-9_.-]``,
        unique per stream. Default: derived from the consumer construct's path.
    on_demand_advantage
        The account runs Kinesis On-demand Advantage mode, which allows 50 enhanced
        fan-out consumers per stream instead of 20. Default: ``False``.

    Examples
    --------
    >>> KinesisSource.of_table(table, enhanced_fan_out=True)     # doctest: +SKIP
    """

    stream: kinesis.IStream
    enhanced_fan_out: bool = False
    consumer_name: str | None = None
    on_demand_advantage: bool = False

    def __post_init__(self) -> None:
        check_type("KinesisSource", "stream", self.stream, ISTREAM, optional=False)
        check_type("KinesisSource", "enhanced_fan_out", self.enhanced_fan_out, bool)
        check_type("KinesisSource", "consumer_name", self.consumer_name, str)
        check_type("KinesisSource", "on_demand_advantage", self.on_demand_advantage, bool)
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
        return cls(stream=stream, **options)

    @property
    def max_consumers(self) -> int:
        """Enhanced fan-out consumers this stream may have."""
        return (MAX_EFO_CONSUMERS_ON_DEMAND_ADVANTAGE if self.on_demand_advantage
                else MAX_EFO_CONSUMERS)

    def bind(
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
    failing batch, 10 retries, records older than a day given up on, partial batch
    responses by Kinesis ``sequenceNumber``, an on-failure destination), the same alarms
    (iterator age, errors, throttles, failure queue), dashboard rows and metrics; it *is*
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
        60 s to 7 days. Default: 1 day.
    bisect_batch_on_error, report_batch_item_failures
        Default: ``True`` both.
    failure_destination
        Default: ``FailureDestination.sqs()``. Lambda sends the failed batch's coordinates
        (``KinesisBatchInfo``: shard, sequence range); an S3 destination also gets the
        records.
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
        Construct.__init__(self, scope, id)
        max_record_age = max_record_age or cdk.Duration.days(1)
        check_range("batch_size", batch_size, *_BATCH_SIZE)
        check_duration_range("max_batching_window", max_batching_window, *_BATCHING_WINDOW_S)
        check_range("parallelization_factor", parallelization_factor, *_PARALLELIZATION)
        check_range("retry_attempts", retry_attempts, *_RETRIES)
        check_duration_range("max_record_age", max_record_age, *_RECORD_AGE_S)
        filter_criteria = kinesis_filters(list(filters))

        if function is not None and (code is not None or handler is not None):
            raise ValueError(
                "give either function or code and handler, not both "
                f"(got function {function.node.path!r} and handler {handler!r})"
            )
        if function is not None and function_options is not None:
            raise ValueError(
                "function_options only apply to a function built from code and handler, "
                f"not to the given function {function.node.path!r}"
            )

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
            failure_destination or FailureDestination.sqs(), removal_policy
        )
        self.event_source, self.consumer = source.bind(
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
        )
        self.function.add_event_source(self.event_source)
        self.event_source_mapping: lambda_.EventSourceMapping = _mapping_of(self.function)
        if not source.enhanced_fan_out:
            _warn_about_shared_readers(self)

        alarms = AlarmFactory(self, monitoring or Monitoring())
        alarms.stream_handler("handler", self.function)
        if self.failure_queue is not None:
            alarms.dead_letters("failureQueue", self.failure_queue)
        self.alarms: dict[str, cloudwatch.Alarm] = alarms.alarms
        self.alarm_topic: sns.ITopic | None = alarms.alarm_topic


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
