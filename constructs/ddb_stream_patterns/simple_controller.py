"""``SimpleController``: one Lambda function on a table's stream, with safe defaults."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_iam as iam
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_event_sources as sources
import aws_cdk.aws_logs as logs
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sqs as sqs
import jsii
from constructs import Construct

from ._nag import acknowledge
from ._resources import build_function, secure_bucket, secure_queue
from ._validation import (
    IBUCKET,
    IFUNCTION,
    IQUEUE,
    ITABLE,
    check_duration_range,
    check_range,
    check_type,
    check_types,
    duration,
)
from .monitoring import AlarmFactory, Monitoring, lambda_metric
from .runtime_assets import StreamRuntimeLayer
from .stream_filter import StreamFilter
from .stream_table import check_filters_on_table, require_stream

__all__ = ["SimpleController", "FailureDestination", "DEFAULT_RUNTIME"]

# The latest Python runtime: older ones reach end of support first (cdk-nag L1).
DEFAULT_RUNTIME = lambda_.Runtime.PYTHON_3_14

# Lambda's limits for DynamoDB stream event source mappings.
_BATCH_SIZE = (1, 10_000)
_BATCHING_WINDOW_S = (0, 300)
_PARALLELIZATION = (1, 10)
_RETRIES = (0, 10_000)
_RECORD_AGE_S = (60, 604_800)


@dataclass(frozen=True)
class FailureDestination:
    """Where Lambda sends the records it gives up on (after retries or max record age).

    Use the factories: ``FailureDestination.sqs()`` (the default: a new encrypted queue
    receiving the failed batch's metadata: shard, sequence range, reason) or
    ``FailureDestination.s3()`` (a new bucket receiving the *full* failed batch, records
    included). Pass an existing queue or bucket to use it instead.

    The function's role gets only what Lambda needs to deliver a failure record:
    ``sqs:SendMessage`` on the queue, or ``s3:PutObject`` on the bucket's objects and
    ``s3:ListBucket`` on the bucket (plus ``kms:GenerateDataKey`` on the bucket's key when it
    has one), per the Lambda Developer Guide's on-failure destination permissions. Never
    read or delete.
    """

    kind: Literal["sqs", "s3"]
    queue: sqs.IQueue | None = None
    bucket: s3.IBucket | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("sqs", "s3"):
            raise ValueError(f"FailureDestination: kind must be 'sqs' or 's3', got {self.kind!r}")
        check_type("FailureDestination", "queue", self.queue, IQUEUE)
        check_type("FailureDestination", "bucket", self.bucket, IBUCKET)

    @classmethod
    def sqs(cls, queue: sqs.IQueue | None = None) -> FailureDestination:
        """An SQS queue; ``None`` creates one (encrypted, TLS-only, 14-day retention)."""
        return cls("sqs", queue=queue)

    @classmethod
    def s3(cls, bucket: s3.IBucket | None = None) -> FailureDestination:
        """An S3 bucket; ``None`` creates one (encrypted, TLS-only, no public access)."""
        return cls("s3", bucket=bucket)


def _prop_types() -> dict[str, Any]:
    return {
        "table": ITABLE, "function": IFUNCTION, "code": lambda_.Code, "handler": str,
        "runtime": lambda_.Runtime, "function_options": lambda_.FunctionOptions,
        "filters": [StreamFilter], "starting_position": lambda_.StartingPosition,
        "batch_size": int, "max_batching_window": cdk.Duration,
        "parallelization_factor": int, "retry_attempts": int, "max_record_age": cdk.Duration,
        "bisect_batch_on_error": bool, "report_batch_item_failures": bool,
        "failure_destination": FailureDestination, "removal_policy": cdk.RemovalPolicy,
        "monitoring": Monitoring,
        # source: checked by change_source.check_source (a protocol, not a class)
    }


class SimpleController(Construct):
    """One Lambda function on a DynamoDB stream: the simple controller pattern.

    Defaults are the ones a shard needs to never block: bisect a failing batch, retry a
    finite number of times, drop records older than a day, report partial batch failures,
    and send what is given up on to a failure destination, so nothing is lost.

    Parameters
    ----------
    table
        The table whose stream is read: a ``StreamTable`` or any ``ITable`` with a stream
        (e.g. ``TableV2.from_table_attributes(..., table_stream_arn=...)``). Required.
    function
        Your function. Give this *or* ``code`` + ``handler``.
    code, handler
        Build the function from this code and handler. It gets the ``ddb_stream_runtime``
        layer (``from ddb_stream_runtime import stream_handler``), ARM64, 256 MB, 30 s
        timeout and a log group kept one month; override with ``function_options``.
    runtime
        Runtime of the built function. Default: Python 3.14.
    function_options
        ``lambda_.FunctionOptions`` merged over the defaults of the built function.
        Default: none.
    filters
        ``StreamFilter`` list (OR across filters, at most 5), applied by the event source
        mapping so unmatched records never invoke (or bill) the function. Default: none.
    starting_position
        Default: ``TRIM_HORIZON`` (nothing already in the stream is skipped).
    batch_size
        1-10,000. Default: 100.
    max_batching_window
        0-300 s. Default: none (invoke as soon as records arrive).
    parallelization_factor
        Concurrent batches per shard, 1-10 (order is kept per item key). Default: 1.
    retry_attempts
        0-10,000 (finite: an infinite retry blocks the shard). Default: 10.
    max_record_age
        60 s to 7 days. Default: 1 day.
    bisect_batch_on_error
        Split a failing batch in two and retry the halves. Default: ``True``.
    report_batch_item_failures
        The function returns ``batchItemFailures`` (``ddb_stream_runtime`` does).
        Default: ``True``.
    failure_destination
        Default: ``FailureDestination.sqs()`` (a new queue).
    removal_policy
        For the resources created here that hold data (failure queue or bucket, log
        group). Default: ``RETAIN``.
    monitoring
        Alarms (iterator age, errors, throttles, failure-queue messages) and where they
        notify. Default: ``Monitoring()``: alarms on, notifying the stack's ``AlarmTopic``.
    source
        Where the function gets the table's changes: ``None``, the table's stream (this
        controller is then a stream reader); or a ``StreamFanOut`` (``fan_out``, or
        ``fan_out.with_queue(QueueOptions(...))``): the function gets its own queue, DLQ,
        subscription (``filters`` become its filter policy) and alarms; the stream props
        above (``starting_position`` ... ``failure_destination``) go to the source, and a
        fan-out refuses them (its queue options come with ``with_queue``); or a
        ``KinesisSource``: the function reads the Kinesis stream the table writes to, with
        these props (the table then needs no DynamoDB stream). See
        ``ddb_stream_patterns.change_source``. Default: ``None``.

    Attributes
    ----------
    function (the handler, ``IFunction``), built_function (the ``lambda_.Function`` built from
    ``code`` + ``handler``, or ``None`` when ``function`` was given), event_source,
    event_source_mapping, failure_destination,
    failure_queue (or ``None``), failure_bucket (or ``None``), runtime_layer (or ``None``),
    log_group (or ``None``), alarms (a dict by purpose, empty when alarms are off),
    alarm_topic (the topic the alarms notify, or ``None``), reads_table_stream,
    source_binding (what ``source.bind`` returned, e.g. a ``FanOutConsumer``, or ``None``
    on the table's stream). On another source ``failure_queue`` is the binding's (a
    fan-out consumer's DLQ) and ``failure_destination`` is ``None``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.ITable,
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
        source: Any = None,
    ) -> None:
        check_types("SimpleController", _PROP_TYPES, locals())
        from .change_source import TableStream, check_source

        change_source = check_source("SimpleController", source, table)
        reads_stream = isinstance(change_source, TableStream)
        # The stream props given (not at their defaults): another source decides on them.
        stream_props = _changed_stream_props({
            "starting_position": starting_position, "batch_size": batch_size,
            "max_batching_window": max_batching_window,
            "parallelization_factor": parallelization_factor,
            "retry_attempts": retry_attempts, "max_record_age": max_record_age,
            "bisect_batch_on_error": bisect_batch_on_error,
            "report_batch_item_failures": report_batch_item_failures,
            "failure_destination": failure_destination,
        })
        super().__init__(scope, id)
        if reads_stream:
            require_stream(table)  # other sources read elsewhere (a fan-out's router checks)
        max_record_age = max_record_age or duration("days", 1)
        check_range("batch_size", batch_size, *_BATCH_SIZE)
        check_duration_range("max_batching_window", max_batching_window, *_BATCHING_WINDOW_S)
        check_range("parallelization_factor", parallelization_factor, *_PARALLELIZATION)
        check_range("retry_attempts", retry_attempts, *_RETRIES)
        check_duration_range("max_record_age", max_record_age, *_RECORD_AGE_S)
        filter_criteria = _filter_criteria(filters)
        check_filters_on_table(
            "SimpleController", filters, table,
            images=not getattr(change_source, "carries_both_images", False),
        )

        _check_function_choice(function, code, handler, function_options)

        self.table = table
        self.runtime_layer: StreamRuntimeLayer | None = None
        self.log_group: logs.ILogGroup | None = None
        #: The function this controller built (``None`` when ``function`` was given).
        self.built_function: lambda_.Function | None = None
        if function is None:
            self.built_function = self._build_function(
                code, handler, runtime, function_options, removal_policy
            )
        #: The handler: the given ``IFunction``, or ``built_function``.
        self.function: lambda_.IFunction = function or self.built_function
        #: Whether this controller is a reader of the table's stream (its default source).
        self.reads_table_stream = reads_stream
        self.source_binding: Any = None
        if not reads_stream:
            self._bind_source(change_source, filters, stream_props, monitoring, removal_policy)
            return

        self.failure_queue: sqs.IQueue | None = None
        self.failure_bucket: s3.IBucket | None = None
        self.failure_destination = self._failure_destination(
            failure_destination or FailureDestination.sqs(), removal_policy
        )
        self.event_source = sources.DynamoEventSource(
            table,
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
        _warn_about_readers(self, table)

        alarms = AlarmFactory(self, monitoring or Monitoring())
        alarms.stream_handler("handler", self.function)
        if self.failure_queue is not None:
            alarms.dead_letters("failureQueue", self.failure_queue)
        self.alarms: dict[str, cloudwatch.Alarm] = alarms.alarms
        self.alarm_topic: sns.ITopic | None = alarms.alarm_topic

    def _bind_source(
        self,
        change_source: Any,
        filters: Sequence[StreamFilter],
        stream_props: dict[str, Any],
        monitoring: Monitoring | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        from .change_source import ConsumerSpec

        binding = change_source.bind(
            self,
            "Source",
            function=self.function,
            consumer=ConsumerSpec(
                pattern="SimpleController",
                table=self.table,
                filters=tuple(filters),
                stream_props=stream_props,
                monitoring=monitoring,
                removal_policy=removal_policy,
            ),
        )
        self.source_binding = binding
        self.event_source = getattr(binding, "event_source", None)
        self.event_source_mapping = binding.event_source_mapping
        self.failure_destination = None
        self.failure_queue = binding.failure_queue
        self.failure_bucket = None
        self.alarms = binding.alarms
        self.alarm_topic = binding.alarm_topic

    # -- metrics -----------------------------------------------------------------

    def metric_iterator_age(self) -> cloudwatch.Metric:
        """Maximum iterator age of the handler (ms): how far behind the stream it is."""
        if self.source_binding is not None:
            return self.source_binding.metric_iterator_age()
        return lambda_metric(self.function, "IteratorAge", "Maximum")

    def metric_errors(self) -> cloudwatch.Metric:
        """Sum of the handler's errors."""
        return self.function.metric_errors(statistic="Sum")

    def metric_throttles(self) -> cloudwatch.Metric:
        """Sum of the handler's throttles."""
        return self.function.metric_throttles(statistic="Sum")

    def metric_invocations(self) -> cloudwatch.Metric:
        """Sum of the handler's invocations (one per batch)."""
        return self.function.metric_invocations(statistic="Sum")

    def metric_failure_queue_depth(self) -> cloudwatch.Metric:
        """Messages visible in the failure queue (``ValueError`` with an S3 destination)."""
        if self.failure_queue is None:
            raise ValueError(
                "metric_failure_queue_depth needs an SQS failure destination, "
                f"this controller's is the bucket {self.failure_bucket.node.path!r}"
            )
        return self.failure_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum"
        )

    def dashboard_rows(self) -> list[list[cloudwatch.IWidget]]:
        """Stream handler, then its failure destination: rows for a ``StreamDashboard``
        (on another source, that source's rows, e.g. queue, handler and DLQ)."""
        if self.source_binding is not None:
            return self.source_binding.dashboard_rows()
        rows: list[list[cloudwatch.IWidget]] = [[
            cloudwatch.GraphWidget(
                title=f"{self.node.path}: handler",
                left=[self.metric_invocations(), self.metric_errors(), self.metric_throttles()],
                right=[self.metric_iterator_age()],
                width=24,
            )
        ]]
        if self.failure_queue is not None:
            rows.append([
                cloudwatch.GraphWidget(
                    title=f"{self.node.path}: failure queue (records given up on)",
                    left=[self.metric_failure_queue_depth()],
                    width=24,
                )
            ])
        return rows

    def _build_function(
        self,
        code: lambda_.Code | None,
        handler: str | None,
        runtime: lambda_.Runtime,
        options: lambda_.FunctionOptions | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> lambda_.Function:
        if code is None or not handler:
            raise ValueError(
                "a function is required: give function, or code and handler "
                f"(got code={code!r}, handler={handler!r})"
            )
        self.runtime_layer = StreamRuntimeLayer(self, "RuntimeLayer")
        function = build_function(
            self,
            "Function",
            code=code,
            handler=handler,
            runtime=runtime,
            removal_policy=removal_policy,
            options=options,
            layers=[self.runtime_layer],
        )
        self.log_group = function.log_group
        return function

    def _failure_destination(
        self, destination: FailureDestination, removal_policy: cdk.RemovalPolicy
    ) -> lambda_.IEventSourceDlq:
        if destination.kind == "s3":
            if destination.bucket is None:
                destination = FailureDestination.s3(
                    secure_bucket(self, "FailureBucket", removal_policy=removal_policy)
                )
                acknowledge(
                    destination.bucket,
                    "AwsSolutions-S1",
                    "written only by Lambda's on-failure delivery for this mapping; "
                    "audit reads with CloudTrail data events rather than a second bucket",
                )
            self.failure_bucket = destination.bucket
            return _S3FailureRecords(self.failure_bucket)
        if destination.queue is None:
            destination = FailureDestination.sqs(
                secure_queue(self, "FailureQueue", removal_policy=removal_policy)
            )
            acknowledge(
                destination.queue,
                "AwsSolutions-SQS3",
                "this queue is itself a dead-letter queue: the stream mapping's "
                "on-failure destination",
            )
        self.failure_queue = destination.queue
        return sources.SqsDlq(self.failure_queue)


@jsii.implements(lambda_.IEventSourceDlq)
class _S3FailureRecords:
    """An S3 on-failure destination whose grant is write-only.

    CDK's ``S3OnFailureDestination`` calls ``bucket.grant_read_write`` (``s3:GetObject*``,
    ``s3:List*``, ``s3:DeleteObject*``, ``s3:Abort*`` ...). Lambda needs ``s3:PutObject``
    and ``s3:ListBucket`` for an S3 destination, and ``kms:GenerateDataKey`` when the bucket
    is encrypted with a customer managed key.
    """

    def __init__(self, bucket: s3.IBucket) -> None:
        self.bucket = bucket

    def bind(
        self, target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction
    ) -> lambda_.DlqDestinationConfig:
        target_handler.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects("*")]
            )
        )
        target_handler.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn])
        )
        if self.bucket.encryption_key is not None:
            self.bucket.encryption_key.grant(target_handler, "kms:GenerateDataKey")
        role = target_handler.role
        if role is not None and isinstance(self.bucket, s3.Bucket):
            stack = cdk.Stack.of(self.bucket)
            if stack is cdk.Stack.of(role):
                bucket_id = stack.get_logical_id(self.bucket.node.default_child)
                acknowledge(
                    role,
                    f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/*]",
                    "Lambda names each failure record object itself: s3:PutObject (write only, "
                    "no read or delete) needs a wildcard over the failure bucket's objects",
                )
        return lambda_.DlqDestinationConfig(destination=self.bucket.bucket_arn)


def _check_function_choice(
    function: lambda_.IFunction | None, code: lambda_.Code | None, handler: str | None,
    function_options: lambda_.FunctionOptions | None,
) -> None:
    """A controller runs a given function, or builds one from code and handler: not both."""
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


def _filter_criteria(filters: Sequence[StreamFilter]) -> list:
    return StreamFilter.to_filters(list(filters))


def _mapping_of(function: lambda_.IFunction) -> lambda_.EventSourceMapping:
    """The mapping ``DynamoEventSource`` just added (it is a child of the function)."""
    mappings = [c for c in function.node.children if isinstance(c, lambda_.EventSourceMapping)]
    return mappings[-1]


# DynamoDB throttles a shard read by more than two consumers (each mapping is one).
MAX_STREAM_READERS = 2


_STREAM_DEFAULTS: dict[str, Any] = {
    "starting_position": lambda_.StartingPosition.TRIM_HORIZON, "batch_size": 100,
    "max_batching_window": None, "parallelization_factor": 1, "retry_attempts": 10,
    "max_record_age": None, "bisect_batch_on_error": True,
    "report_batch_item_failures": True, "failure_destination": None,
}


def _changed_stream_props(given: dict[str, Any]) -> dict[str, Any]:
    """The stream props set to something else than their default."""
    return {k: v for k, v in given.items() if v != _STREAM_DEFAULTS[k]}


#: The stream-reading controllers of each table, in construction order: counting a table's
#: readers here costs no jsii round trip, where walking the stack's construct tree for
#: each controller cost one per construct of the stack (quadratic in the app's size).
_STREAM_READERS: weakref.WeakKeyDictionary[Any, list[SimpleController]] = (
    weakref.WeakKeyDictionary()
)


def _warn_about_readers(controller: SimpleController, table: dynamodb.ITable) -> None:
    known = _STREAM_READERS.setdefault(table, [])
    if controller not in known:
        known.append(controller)
    # Every reader of the table is registered here, in any stack (a superset of those the
    # warning counts: the stack's tree), so at most MAX_STREAM_READERS here means no
    # warning; above it, the stack's tree says exactly which, in its order.
    if sum(c.table is table and c.reads_table_stream for c in known) <= MAX_STREAM_READERS:
        return
    readers = [
        c.node.path
        for c in cdk.Stack.of(controller).node.find_all()
        if isinstance(c, SimpleController)
        and getattr(c, "reads_table_stream", True)
        and c.table is table
    ]
    if len(readers) > MAX_STREAM_READERS:
        warning_id = "ddb-stream-patterns:stream-readers"
        message = (
            f"table {table.node.path!r} now has {len(readers)} stream readers ({readers}); "
            f"more than {MAX_STREAM_READERS} per shard get throttled: read the stream through "
            "one StreamFanOut (source=fan_out), or accept the extra latency"
        )
        # add_warning_v2 records a Node stack trace with the entry, and the CDK CLI prints
        # its top frame (".../program.js:1:5591") in front of the message. So CDK decides,
        # on a throwaway child, whether the warning is acknowledged here or above (an
        # acknowledged warning adds nothing); the entry itself is written without a trace,
        # tagged as add_warning_v2 tags it, so acknowledging it later still removes it.
        probe = Construct(controller, "ReadersWarningProbe")
        cdk.Annotations.of(probe).add_warning_v2(warning_id, message)
        acknowledged = not probe.node.metadata
        controller.node.try_remove_child(probe.node.id)
        if not acknowledged:
            controller.node.add_metadata("aws:cdk:warning", f"{message} [ack: {warning_id}]")


_PROP_TYPES = _prop_types()
