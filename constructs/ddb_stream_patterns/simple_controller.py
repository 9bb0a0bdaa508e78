"""``SimpleController``: one Lambda function on a table's stream, with safe defaults."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
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
    duration_fact,
    is_token,
)
from .monitoring import AlarmFactory, Monitoring, lambda_metric, mapping_metric
from .runtime_assets import StreamRuntimeLayer
from .stream_filter import StreamFilter
from .stream_table import check_filters_on_table, require_stream

__all__ = [
    "SimpleController", "FailureDestination", "DEFAULT_RUNTIME", "DEFAULT_FAILURE_EXPIRATION",
    "DEFAULT_MAX_RECORD_AGE", "DYNAMODB_STREAM_RETENTION", "MAPPING_METRICS",
]

# The latest Python runtime: older ones reach end of support first (cdk-nag L1).
DEFAULT_RUNTIME = lambda_.Runtime.PYTHON_3_14

# Lambda's limits for DynamoDB stream event source mappings.
_BATCH_SIZE = (1, 10_000)
_BATCHING_WINDOW_S = (0, 300)
_PARALLELIZATION = (1, 10)
_RETRIES = (0, 10_000)
_RECORD_AGE_S = (60, 604_800)

#: How long a DynamoDB stream keeps each record: 24 hours ("Change data capture for
#: DynamoDB Streams", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html;
#: "The data retention limit for DynamoDB Streams is 24 hours",
#: https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html).
DYNAMODB_STREAM_RETENTION = cdk.Duration.hours(24)
#: The maximum record age of every stream mapping here, unless given: 20 hours, clearly
#: below the 24 h a DynamoDB stream (and, by default and at least, a Kinesis stream,
#: https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html) keeps a
#: record. A record the mapping is still retrying when the stream trims it is never sent to
#: the failure destination, and ``DroppedEventCount`` does not count it either ("this
#: doesn't include the number of records that expire due to exceeding your event source's
#: retention settings", https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html#event-source-mapping-metrics):
#: it is lost without a trace. Giving up at 20 h leaves 4 h (a sixth of the retention) for
#: the invocation in flight when a record reaches the age (each bisected half is retried,
#: up to the function timeout each) and for the records queued behind a stuck batch on the
#: shard, which are read only once it moves on: they reach the failure destination too
#: (as too old) instead of being trimmed unseen.
DEFAULT_MAX_RECORD_AGE = cdk.Duration.hours(20)

#: How long a created failure bucket keeps each failure record (an S3 lifecycle rule).
DEFAULT_FAILURE_EXPIRATION = cdk.Duration.days(90)
_EXPIRATION_DAYS = (1, 3_650)
#: What every stream mapping here publishes: Lambda's ``EventCount`` group of event source
#: mapping metrics, with ``OnFailureDestinationDeliveredEventCount`` and
#: ``DroppedEventCount`` for Kinesis and DynamoDB streams (Lambda Developer Guide, "Types
#: of metrics for Lambda functions", event source mapping metrics).
MAPPING_METRICS = ("EventCount",)


def _check_record_age(
    prop: str, max_record_age: cdk.Duration | None, retention: cdk.Duration | None,
    source: Callable[[], str], fix: Callable[[], str],
) -> None:
    """Refuse a ``max_record_age`` at or above the retention of the stream it reads
    (``None`` or a token: unknown, nothing to check): the records the mapping would still
    be retrying when the stream trims them are lost, neither delivered to the failure
    destination nor counted in ``DroppedEventCount`` (see ``DEFAULT_MAX_RECORD_AGE``).
    ``source`` and ``fix`` name the stream and the fix, asked only for the error (each
    is a jsii round trip on every mapping otherwise)."""
    if max_record_age is None or retention is None:
        return
    if is_token(duration_fact(max_record_age, "to_string")) or is_token(
        duration_fact(retention, "to_string")
    ):
        return
    age = int(duration_fact(max_record_age, "to_seconds"))
    kept = int(duration_fact(retention, "to_seconds"))
    if age >= kept and not (
        is_token(duration_fact(max_record_age, "to_seconds"))
        or is_token(duration_fact(retention, "to_seconds"))
    ):  # a number token's amount prints as a double near -1.9e289: asked only here
        raise ValueError(
            f"{prop} must be below the {kept // 3600} h retention of {source()}, got {age} "
            f"seconds ({max_record_age.to_human_string()}): records still being retried "
            "when the stream trims them never reach the failure destination, and "
            f"DroppedEventCount does not count them; {fix()}"
        )


def check_table_stream_record_age(
    prop: str, max_record_age: cdk.Duration | None, table: dynamodb.ITable
) -> None:
    """:func:`_check_record_age` for a mapping on ``table``'s DynamoDB stream (24 h)."""
    _check_record_age(
        prop, max_record_age, DYNAMODB_STREAM_RETENTION,
        lambda: f"the DynamoDB stream of table {table.node.path!r}",
        lambda: (
            f"give less (e.g. {DEFAULT_MAX_RECORD_AGE.to_human_string()}, the default, "
            "leaving time to read the records behind a failing batch) or leave it unset"
        ),
    )


@dataclass(frozen=True)
class FailureDestination:
    """Where Lambda sends the records it gives up on (after retries or max record age).

    Use the factories: ``FailureDestination.s3()`` (the default: a new bucket receiving
    the *whole* failed batch, records included, one object per failed batch) or
    ``FailureDestination.sqs()`` (a new encrypted queue receiving the failed batch's
    *coordinates* only: shard, sequence range, reason; the records themselves must be read
    back from the stream before its retention ends, 24 hours for DynamoDB Streams). Pass an
    existing bucket or queue to use it instead.

    The function's role gets only what Lambda needs to deliver a failure record:
    ``s3:PutObject`` on the bucket's objects and ``s3:ListBucket`` on the bucket (plus
    ``kms:GenerateDataKey`` on the bucket's key when it has one), per the Lambda Developer
    Guide's on-failure destination permissions
    (https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html), with
    ``s3:ResourceAccount`` pinned to the bucket's owner when this app knows it: this
    stack's account for a bucket created here or in this stack, the ``env.account`` of a
    given bucket otherwise (``Bucket.from_bucket_attributes(account=...)``, or the stack's
    account when a stack with an account imports it by name); no condition for a bucket
    imported by name or ARN into a stack without an account (S3 ARNs carry none); or
    ``sqs:SendMessage`` on the queue. Never read or delete.

    A given bucket encrypted with a customer managed KMS key must come with that key
    (``s3.Bucket.from_bucket_attributes(..., encryption_key=key)``, or a ``s3.Bucket`` of
    this app): Lambda then needs ``kms:GenerateDataKey`` on it, which the role gets only
    for a key the bucket carries; a bucket imported without its key gets no KMS grant, and
    every delivery fails (``droppedRecords``). A key in another account must also trust
    the role in its key policy.

    Parameters
    ----------
    kind
        ``"s3"`` or ``"sqs"``.
    queue, bucket
        An existing queue or bucket (a bucket with a customer managed key: with its
        ``encryption_key``, see above). Default: a new one.
    expiration
        For a bucket created here: how long each failure record is kept (an S3 lifecycle
        expiration), whole days, 1 day to 10 years. Refused with a given bucket (its
        lifecycle is yours). Default: ``DEFAULT_FAILURE_EXPIRATION`` (90 days).
    """

    kind: Literal["sqs", "s3"]
    queue: sqs.IQueue | None = None
    bucket: s3.IBucket | None = None
    expiration: cdk.Duration | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("sqs", "s3"):
            raise ValueError(f"FailureDestination: kind must be 'sqs' or 's3', got {self.kind!r}")
        check_type("FailureDestination", "queue", self.queue, IQUEUE)
        check_type("FailureDestination", "bucket", self.bucket, IBUCKET)
        check_type("FailureDestination", "expiration", self.expiration, cdk.Duration)
        if self.expiration is None:
            return
        if self.kind != "s3" or self.bucket is not None:
            raise ValueError(
                "FailureDestination: expiration applies to a bucket created here only, got "
                f"expiration={self.expiration.to_human_string()!r} with "
                + (f"kind {self.kind!r}" if self.kind != "s3" else
                   f"the given bucket {self.bucket.node.path!r}")
            )
        if not cdk.Token.is_unresolved(self.expiration.to_string()):
            check_duration_range("expiration", self.expiration,
                                 _EXPIRATION_DAYS[0] * 86_400, _EXPIRATION_DAYS[1] * 86_400)
            if self.expiration.to_seconds() % 86_400:
                raise ValueError(
                    "FailureDestination: expiration must be a whole number of days, "
                    f"got {self.expiration.to_seconds()} seconds"
                )

    @classmethod
    def sqs(cls, queue: sqs.IQueue | None = None) -> FailureDestination:
        """An SQS queue; ``None`` creates one (encrypted, TLS-only, 14-day retention). It
        receives the failed batch's coordinates, not its records."""
        return cls("sqs", queue=queue)

    @classmethod
    def s3(
        cls, bucket: s3.IBucket | None = None, *, expiration: cdk.Duration | None = None
    ) -> FailureDestination:
        """An S3 bucket; ``None`` creates one (S3-managed encryption, TLS-only, no public
        access, bucket owner enforced, unversioned, each record expiring after
        ``expiration``, default 90 days). It receives the failed batch's records."""
        return cls("s3", bucket=bucket, expiration=expiration)


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
    finite number of times, give up on records older than 20 hours (before the stream's 24 h
    retention trims them), report partial batch failures,
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
        60 s to 7 days, and below the stream's 24 h retention (an error at synth
        otherwise: records the stream trims while they are retried are lost, unseen by
        the failure destination and by ``DroppedEventCount``). Default:
        ``DEFAULT_MAX_RECORD_AGE`` (20 hours).
    bisect_batch_on_error
        Split a failing batch in two and retry the halves. Default: ``True``.
    report_batch_item_failures
        The function returns ``batchItemFailures`` (``ddb_stream_runtime`` does).
        Default: ``True``.
    failure_destination
        Default: ``FailureDestination.s3()`` (a new bucket that keeps each failed batch's
        records for 90 days). ``FailureDestination.sqs()`` keeps their coordinates only.
    removal_policy
        For the resources created here that hold data (failure bucket or queue, log
        group). Default: ``RETAIN``.
    monitoring
        Alarms (iterator age, errors, throttles; records sent to the failure destination,
        from the mapping's ``OnFailureDestinationDeliveredEventCount``, or failure-queue
        messages; records dropped, ``DroppedEventCount``) and where they notify. The
        mapping publishes Lambda's ``EventCount`` metrics (``MAPPING_METRICS``).
        Default: ``Monitoring()``: alarms on, notifying the stack's ``AlarmTopic``.
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
        max_record_age = max_record_age or DEFAULT_MAX_RECORD_AGE
        check_range("batch_size", batch_size, *_BATCH_SIZE)
        check_duration_range("max_batching_window", max_batching_window, *_BATCHING_WINDOW_S)
        check_range("parallelization_factor", parallelization_factor, *_PARALLELIZATION)
        check_range("retry_attempts", retry_attempts, *_RETRIES)
        check_duration_range("max_record_age", max_record_age, *_RECORD_AGE_S)
        if reads_stream:  # another source checks against its own retention
            check_table_stream_record_age("max_record_age", max_record_age, table)
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
            failure_destination or FailureDestination.s3(), removal_policy
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
            metrics_config=mapping_metrics_config(),
        )
        self.function.add_event_source(self.event_source)
        self.event_source_mapping: lambda_.EventSourceMapping = _mapping_of(self.function)
        _warn_about_readers(self, table)
        self._add_alarms(monitoring)

    def _add_alarms(self, monitoring: Monitoring | None) -> None:
        """The handler's alarms, then the failure destination's: records sent to a bucket
        (the mapping's count) or waiting in a queue (its depth), and records dropped."""
        alarms = AlarmFactory(self, monitoring or Monitoring())
        alarms.stream_handler("handler", self.function)
        if self.failure_queue is not None:
            alarms.dead_letters("failureQueue", self.failure_queue)
        else:
            alarms.failure_deliveries("failureDeliveries", self.event_source_mapping)
        alarms.dropped_records("droppedRecords", self.event_source_mapping)
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
        self.failure_bucket = getattr(binding, "failure_bucket", None)  # a Kinesis binding's
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
        """Messages visible in the failure queue (``ValueError`` with an S3 destination:
        see ``metric_failure_deliveries``)."""
        if self.failure_queue is None:
            raise ValueError(
                "metric_failure_queue_depth needs an SQS failure destination, "
                f"this controller's is the bucket {self.failure_bucket.node.path!r}: "
                "use metric_failure_deliveries()"
            )
        return self.failure_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum"
        )

    def metric_failure_deliveries(self) -> cloudwatch.Metric:
        """Sum of the records the mapping sent to its failure destination (Lambda's
        ``OnFailureDestinationDeliveredEventCount``, by ``EventSourceMappingUUID``)."""
        if self.source_binding is not None:
            return self._binding_metric("metric_failure_deliveries")
        return mapping_metric(self.event_source_mapping, "OnFailureDestinationDeliveredEventCount")

    def metric_dropped_records(self) -> cloudwatch.Metric:
        """Sum of the records the mapping dropped: given up on and *not* delivered to the
        failure destination (Lambda's ``DroppedEventCount``). Each one is lost."""
        if self.source_binding is not None:
            return self._binding_metric("metric_dropped_records")
        return mapping_metric(self.event_source_mapping, "DroppedEventCount")

    def _binding_metric(self, name: str) -> cloudwatch.Metric:
        metric = getattr(self.source_binding, name, None)
        if metric is None:
            raise ValueError(
                f"{name} is a stream mapping's metric; {self.node.path} reads a queue "
                "(its source's): use metric_failure_queue_depth()"
            )
        return metric()

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
                    right=[self.metric_dropped_records()],
                    width=24,
                )
            ])
        else:
            rows.append([
                cloudwatch.GraphWidget(
                    title=f"{self.node.path}: failure bucket (records given up on)",
                    left=[self.metric_failure_deliveries(), self.metric_dropped_records()],
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
            owner = _bucket_account(self, destination.bucket)
            if destination.bucket is None:
                expiration = destination.expiration or DEFAULT_FAILURE_EXPIRATION
                bucket = secure_bucket(
                    self, "FailureBucket", removal_policy=removal_policy,
                    lifecycle_rules=[s3.LifecycleRule(
                        id="ExpireFailureRecords", expiration=expiration,
                    )],
                )
                acknowledge(
                    bucket,
                    "AwsSolutions-S1",
                    "written only by Lambda's on-failure delivery for this mapping; "
                    "audit reads with CloudTrail data events rather than a second bucket",
                )
                destination = FailureDestination.s3(bucket)
            self.failure_bucket = destination.bucket
            return _S3FailureRecords(self.failure_bucket, resource_account=owner)
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

    ``resource_account``: the account that must own the bucket (IAM's
    ``s3:ResourceAccount`` condition on both statements), so a bucket of the same name
    owned by someone else (after this one is deleted) never receives the records.
    ``None``: no condition (a given bucket whose owner is unknown at synth, see
    ``_bucket_account``).
    """

    def __init__(self, bucket: s3.IBucket, *, resource_account: str | None = None) -> None:
        self.bucket = bucket
        self.resource_account = resource_account

    def bind(
        self, target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction
    ) -> lambda_.DlqDestinationConfig:
        conditions = (
            {"StringEquals": {"s3:ResourceAccount": self.resource_account}}
            if self.resource_account is not None else None
        )
        target_handler.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects("*")],
                conditions=conditions,
            )
        )
        target_handler.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                conditions=conditions,
            )
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


def _bucket_account(scope: Construct, bucket: s3.IBucket | None) -> str | None:
    """The account that owns the failure ``bucket`` (``None``: one created here), for the
    role's ``s3:ResourceAccount`` condition, when this app knows it: this stack's account
    for a bucket built in this stack (a pseudo parameter when the stack has no
    account); else the bucket's ``env.account`` unless it is a token: a bucket built in a
    stack with an account, or imported with ``Bucket.from_bucket_attributes(account=...)``,
    or by name or ARN into a stack with an account (CDK then assumes the stack's account:
    "it's assumed the bucket belongs to the same account as the scope it's being imported
    into", ``BucketAttributes.account``). ``None`` (no condition) for a bucket imported by
    name or ARN into a stack without an account, or built in another such stack: S3 ARNs
    carry no account, so the owner is unknown at synth."""
    stack = cdk.Stack.of(scope)
    if bucket is None or (isinstance(bucket, s3.Bucket) and cdk.Stack.of(bucket) is stack):
        return stack.account
    account = bucket.env.account
    return None if is_token(account) else account


def mapping_metrics_config() -> lambda_.MetricsConfig:
    """The metrics every stream mapping here publishes (``MAPPING_METRICS``)."""
    return lambda_.MetricsConfig(metrics=[lambda_.MetricType.EVENT_COUNT])


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
