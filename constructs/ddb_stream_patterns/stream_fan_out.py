"""``StreamFanOut``: one reader on a table's stream, fanning out to any number of consumers.

DynamoDB Streams lets at most two processes read a shard at once; each event source
mapping is one. A ``StreamFanOut`` is the single reader: its router function publishes
every record to an SNS topic (``PublishBatch``, a claim check in S3 for records over
256 KB, an on-failure bucket that keeps the records it gives up on, alarms), and each
consumer (a pattern or a plain function) gets its own SQS queue, DLQ, filter policy, event
source and alarms, and runs the SAME handler as it would on the stream::

    table stream ──► router λ ──PublishBatch──► SNS topic (eventName, tableName, ttlExpiry,
                                                  │        routing attributes)
                                    filter policy │ per consumer
                            ┌─────────────────────┼────────────────────┐
                            ▼                     ▼                    ▼
                   SQS queue (+ DLQ)      SQS queue (+ DLQ)     SQS queue (+ DLQ)
                            ▼                     ▼                    ▼
                     TtlArchiver λ       AggregateCounter λ     SimpleController λ

Example
-------
>>> fan_out = StreamFanOut(stack, "FanOut", table=table, routing_attributes=["status"])
>>> TtlArchiver(stack, "Archive", table=table, source=fan_out)
>>> AggregateCounter(stack, "Counts", table=table, group_attribute="ListId",
...                  source=fan_out.with_queue(QueueOptions(max_concurrency=5)))

Which ``StreamFilter`` rules become an SNS filter policy
--------------------------------------------------------
An SNS subscription filter policy (message-attribute scope) can only match the message
attributes the router publishes: ``eventName``, ``tableName``, ``ttlExpiry`` and the
fan-out's ``routing_attributes`` (lifted from the new image, else the old one, else the
keys). So, for ONE ``StreamFilter`` per consumer:

======================================  ============================================
filter                                  filter policy
======================================  ============================================
``event_names``                         ``eventName`` allowlist
``StreamFilter.ttl_expiry()``           ``eventName: REMOVE`` + ``ttlExpiry: "true"``
``keys[a]`` (``a`` routed)              a rule on ``a`` (keys are in every image)
``new_image[a]`` with ``event_names``   a rule on ``a``: only for INSERT, where the
  ``["INSERT"]`` (``a`` routed)         published value is the new image's
``old_image[a]`` with ``event_names``   a rule on ``a``: only for REMOVE, where the
  ``["REMOVE"]`` (``a`` routed)         published value is the old image's
======================================  ============================================

Rules on a routed attribute: ``equals`` (S, SS: strings; N: numbers within ±1e9 and 5
decimals; BOOL: ``"true"``/``"false"``), ``anything_but`` (S, N, BOOL), ``prefix``,
``suffix``, ``equals_ignore_case`` (S, SS), ``exists``/``not_exists`` (N, BOOL, SS, NS).
They are exact when the attribute always has the rule's type (the router publishes S and
BOOL both as SNS ``String``). Refused at synth, with the reason: several filters (one
subscription has one policy), ``new_image`` rules on MODIFY (the router publishes the old
value when an update removed the attribute) or REMOVE, ``old_image`` rules on INSERT or
MODIFY, attributes not in ``routing_attributes``, ``exists`` on S (empty strings are never
published), rules on B/BS/NULL/M/L (not published), NS values (SNS documents no numeric
matching on arrays), ``size_bytes``, ``approximate_creation_time`` and raw
``StreamFilter.from_pattern`` fields. SNS also limits a policy to 5 keys and 150 value
combinations (SNS Developer Guide, "Filter policy constraints").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_iam as iam
import aws_cdk.aws_kms as kms
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_event_sources as sources
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sns_subscriptions as subs
import aws_cdk.aws_sqs as sqs
from constructs import Construct

from . import _validation as v
from ._filter_policy import TTL_EXPIRY_ATTRIBUTE, filter_policy
from ._nag import acknowledge
from ._resources import build_function, secure_bucket, secure_queue
from ._validation import check_duration_range, check_range, duration, is_token
from .change_source import ConsumerSpec
from .monitoring import AlarmFactory, Monitoring
from .runtime_assets import runtime_code
from .simple_controller import DEFAULT_RUNTIME, FailureDestination, SimpleController
from .stream_filter import StreamFilter
from .stream_table import StreamTable, check_filters_on_table

__all__ = [
    "StreamFanOut",
    "QueueOptions",
    "FanOutConsumer",
    "PUBLISHED_ATTRIBUTES",
    "TTL_EXPIRY_ATTRIBUTE",
    "MAX_FIFO_SUBSCRIPTIONS",
    "MAX_FILTER_POLICIES",
    "CLAIM_CHECK_ROLE_WARNING",
]

# Where the router puts records too big for SNS (must match ddb_stream_runtime.router).
CLAIM_CHECK_PREFIX = "claim-check/"
#: Warning id: a function imported without its role cannot be granted claim-check access.
CLAIM_CHECK_ROLE_WARNING = "ddb-stream-patterns:claim-check-without-role"
# Message attributes the router always sets; routing attributes come on top.
PUBLISHED_ATTRIBUTES = ("eventName", "tableName")
MAX_MESSAGE_ATTRIBUTES = 10  # SNS raw delivery drops a message with more
#: Subscriptions per FIFO topic (SNS quotas, AWS General Reference).
MAX_FIFO_SUBSCRIPTIONS = 100
#: Filter policies per topic, by default ("Filter policy constraints").
MAX_FILTER_POLICIES = 200
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_SQS_VISIBILITY_MAX_S = 43_200
# AWS's guidance for queues Lambda polls: maxReceiveCount of at least 5, so that messages
# get several chances before they are dead-lettered (Lambda Developer Guide, "Using Lambda
# with Amazon SQS" / "Understanding SQS retries").
MIN_MAX_RECEIVE_COUNT = 5


# -- queue options (shared with ComplexController's Processor) ------------------------


@dataclass(frozen=True)
class QueueOptions:
    """How a fan-out consumer's queue feeds its function.

    Parameters
    ----------
    batch_size
        1-10,000 (more than 10 needs ``max_batching_window``; FIFO allows 10). Default: 10.
    max_batching_window
        0-300 s. Default: none.
    max_concurrency
        Event-source maximum concurrency, 2-1000: caps the load on downstream systems
        without throttling. Default: none (scales with the queue).
    max_receive_count
        Receives before a message goes to the DLQ, 5-1000 (AWS advises at least 5 for
        queues Lambda polls); below 5 only with ``acknowledge_low_max_receive_count``.
        Default: 5.
    acknowledge_low_max_receive_count
        Why a ``max_receive_count`` below 5 is wanted (recorded as an info annotation).
        Default: none.
    visibility_timeout
        At least 6 × the function timeout (AWS's guidance). Default: exactly 6 × the
        function timeout.
    delay
        Queue delay before a record is visible, up to 15 minutes. Default: none.
    """

    batch_size: int = 10
    max_batching_window: cdk.Duration | None = None
    max_concurrency: int | None = None
    max_receive_count: int = MIN_MAX_RECEIVE_COUNT
    acknowledge_low_max_receive_count: str | None = None
    visibility_timeout: cdk.Duration | None = None
    delay: cdk.Duration | None = None

    def __post_init__(self) -> None:
        v.check_types("QueueOptions", {
            "batch_size": int, "max_batching_window": cdk.Duration, "max_concurrency": int,
            "max_receive_count": int, "acknowledge_low_max_receive_count": str,
            "visibility_timeout": cdk.Duration, "delay": cdk.Duration,
        }, vars(self))
        check_queue_settings("queue_options", self, fifo=False)


def check_queue_settings(where: str, s: Any, *, fifo: bool) -> None:
    """The checks every queue-fed function shares (``Processor`` and ``QueueOptions``)."""
    check_duration_range(f"{where}.delay", s.delay, 0, 900)
    check_range(f"{where}.max_concurrency", s.max_concurrency, 2, 1000)
    check_range(f"{where}.max_receive_count", s.max_receive_count, 1, 1000)
    _check_max_receive_count(where, s)
    check_duration_range(f"{where}.max_batching_window", s.max_batching_window, 0, 300)
    check_range(f"{where}.batch_size", s.batch_size, 1, 10 if fifo else 10_000)
    if fifo and s.max_batching_window is not None:
        # Lambda, "Parameters for Amazon SQS event source mappings": "Batching window is
        # not supported for FIFO queues" (CDK would fail later, as a jsii RuntimeError).
        raise ValueError(
            f"{where}.max_batching_window is not supported for FIFO queues (Lambda), got "
            f"{v._show(s.max_batching_window)}: remove it"
        )
    if not is_token(s.batch_size) and s.batch_size > 10 and s.max_batching_window is None:
        raise ValueError(
            f"{where}.batch_size above 10 needs max_batching_window (SQS rule), "
            f"got batch_size={s.batch_size}"
        )


def _check_max_receive_count(where: str, p: Any) -> None:
    """Below AWS's 5 only with a written reason; a reason for nothing is stale, so an error."""
    reason = p.acknowledge_low_max_receive_count
    if reason is not None and (not isinstance(reason, str) or not reason.strip()):
        raise ValueError(
            f"{where}.acknowledge_low_max_receive_count must be a non-empty reason, got {reason!r}"
        )
    if is_token(p.max_receive_count):
        return
    if p.max_receive_count < MIN_MAX_RECEIVE_COUNT and reason is None:
        raise ValueError(
            f"{where}.max_receive_count must be at least {MIN_MAX_RECEIVE_COUNT} (AWS's guidance "
            "for queues Lambda polls, so messages get several chances before the DLQ), got "
            f"{p.max_receive_count!r}: raise it, or give acknowledge_low_max_receive_count="
            "'<why fewer receives are right here>'"
        )
    if p.max_receive_count >= MIN_MAX_RECEIVE_COUNT and reason is not None:
        raise ValueError(
            f"{where}.acknowledge_low_max_receive_count only applies to a max_receive_count "
            f"below {MIN_MAX_RECEIVE_COUNT}, got max_receive_count={p.max_receive_count!r}: "
            "remove it"
        )


def _timeout_of(function: lambda_.IFunction) -> cdk.Duration | None:
    """A function's timeout when it is a ``Function`` of this app (Lambda's default: 3 s)."""
    if isinstance(function, lambda_.Function):
        return function.timeout or cdk.Duration.seconds(3)
    return None


def _check_reserved_concurrency(prop: str, options: Any, function: lambda_.IFunction) -> None:
    """The event source ignores reserved concurrency: a higher maximum means throttles."""
    child = function.node.default_child if isinstance(function, lambda_.Function) else None
    reserved = getattr(child, "reserved_concurrent_executions", None)
    maximum = options.max_concurrency
    if maximum is None or reserved is None or is_token(maximum) or is_token(reserved):
        return
    if maximum > reserved:
        raise ValueError(
            f"{prop} ({maximum}) must not exceed the reserved concurrency of function "
            f"{function.node.path!r} ({reserved}): the event source ignores reserved "
            "concurrency and would be throttled; lower it, or raise reserved_concurrent_executions"
        )


def check_visibility(prop: str, visibility: cdk.Duration, timeout: cdk.Duration) -> None:
    if is_token(visibility.to_string()) or is_token(timeout.to_string()):
        return
    seconds, minimum = visibility.to_seconds(), 6 * timeout.to_seconds()
    if seconds < minimum:
        raise ValueError(
            f"{prop} must be at least 6 x the function timeout ({minimum:g} s), "
            f"got {seconds:g} s"
        )
    if seconds > _SQS_VISIBILITY_MAX_S:
        raise ValueError(f"{prop} must be at most 12 hours, got {seconds:g} s")


def _logical_id(construct: Construct) -> str:
    return cdk.Stack.of(construct).get_logical_id(construct.node.default_child)


@dataclass(frozen=True)
class _Queued:
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    subscription: subs.SqsSubscription
    event_source: sources.SqsEventSource


_ROUTER_TYPES = {
    "table": v.ITABLE, "routing_attributes": [str], "filters": [StreamFilter], "fifo": bool,
    "claim_check": bool, "router_options": lambda_.FunctionOptions, "batch_size": int,
    "max_batching_window": cdk.Duration, "parallelization_factor": int,
    "retry_attempts": int, "max_record_age": cdk.Duration,
    "router_failure_destination": FailureDestination,
    "removal_policy": cdk.RemovalPolicy, "monitoring": Monitoring,
    "queue_options": QueueOptions,
}


class StreamFanOut(Construct):
    """The single reader of a table's stream, and the topic its consumers subscribe to.

    Give it as ``source=`` to any pattern or ``SimpleController`` (see the module
    docstring); each becomes a :class:`FanOutConsumer` with its own queue.

    Parameters
    ----------
    table
        Any ``ITable`` with a stream. Required.
    routing_attributes
        Image attributes the router publishes as SNS message attributes, for consumers'
        filters to match (see the module docstring). At most 7 (``eventName``,
        ``tableName`` and ``ttlExpiry`` are built in; SNS raw delivery drops messages
        with more than 10 attributes). Default: none.
    filters
        ``StreamFilter`` list applied before the router (records no consumer wants need
        not be published). Default: none.
    fifo
        FIFO topic and FIFO queues, message group = item key: per-item order for every
        consumer, at FIFO throughput, at most 100 consumers (SNS quota). With per-item
        order a ``TableReplicator`` deletes on REMOVE; on standard queues (the default)
        it writes expiring tombstones instead (see ``TableReplicator``), and every
        consumer must bear redelivery and reordering (the patterns do). Default: ``False``.
    claim_check
        Records too big for SNS (256 KB) go through a new S3 bucket; without it such a
        record is given up on, to the router's failure destination. Default: ``True``.
    router_options
        ``lambda_.FunctionOptions`` merged over the router's defaults (ARM64, 256 MB, 60 s).
    batch_size, retry_attempts, max_record_age, parallelization_factor, max_batching_window
        The router's stream event source, as in ``SimpleController`` (defaults 100, 10,
        20 hours, 1, none; a ``max_record_age`` of 24 h or more, the stream's retention,
        is an error).
    router_failure_destination
        Where the router's stream mapping sends the records it gives up on (after its
        retries, or at once for a record it cannot publish). Default:
        ``FailureDestination.s3()``: a new bucket (construct ``Controller/FailureBucket``)
        that keeps each failed batch, records included, 90 days.
        ``FailureDestination.sqs()``: a queue that gets the batch's coordinates only.
    queue_options
        Default :class:`QueueOptions` of consumers bound to this fan-out directly
        (``fan_out.with_queue(...)`` overrides them per consumer). Default: ``QueueOptions()``.
    removal_policy
        For queues, buckets and log groups created here. Default: ``RETAIN``.
    monitoring
        Alarms of the router (iterator age, errors, throttles, records sent to its failure
        bucket or waiting in its failure queue, records dropped), the topic's failed
        notifications and the subscription DLQ. Default: ``Monitoring()``.

    Attributes
    ----------
    table, controller (the router's ``SimpleController``), controller_function, topic,
    claim_check_bucket (or ``None``), failure_destination, failure_bucket /
    failure_queue (the router's, the one in use; the other is ``None``),
    subscription_dead_letter_queue, consumers (the ``FanOutConsumer`` list), alarms,
    alarm_topic, routing_attributes, fifo.
    """

    #: Whether the router adds ``ttlExpiry`` (a ``ComplexController`` keeps 8 routing
    #: attributes and its router configuration unchanged).
    _PUBLISHES_TTL_EXPIRY = True

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.ITable,
        routing_attributes: Sequence[str] = (),
        filters: Sequence[StreamFilter] = (),
        fifo: bool = False,
        claim_check: bool = True,
        router_options: lambda_.FunctionOptions | None = None,
        batch_size: int = 100,
        max_batching_window: cdk.Duration | None = None,
        parallelization_factor: int = 1,
        retry_attempts: int = 10,
        max_record_age: cdk.Duration | None = None,
        router_failure_destination: FailureDestination | None = None,
        queue_options: QueueOptions | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        monitoring: Monitoring | None = None,
    ) -> None:
        v.check_types(type(self).__name__, _ROUTER_TYPES, locals())
        self._check_router_props(table, routing_attributes, filters)
        super().__init__(scope, id)
        self._build_router(
            table=table, routing_attributes=routing_attributes, filters=filters, fifo=fifo,
            claim_check=claim_check, router_options=router_options, batch_size=batch_size,
            max_batching_window=max_batching_window,
            parallelization_factor=parallelization_factor, retry_attempts=retry_attempts,
            max_record_age=max_record_age, failure_destination=router_failure_destination,
            removal_policy=removal_policy, monitoring=monitoring or Monitoring(),
        )
        if queue_options is not None and fifo:
            check_queue_settings("queue_options", queue_options, fifo=True)
        self._queue_options = queue_options or QueueOptions()
        self._finish_alarms()

    # -- the router (shared with ComplexController) ----------------------------------

    @classmethod
    def _built_in_attributes(cls) -> tuple[str, ...]:
        extra = (TTL_EXPIRY_ATTRIBUTE,) if cls._PUBLISHES_TTL_EXPIRY else ()
        return (*PUBLISHED_ATTRIBUTES, *extra)

    def _check_router_props(
        self,
        table: dynamodb.ITable,
        routing_attributes: Sequence[str],
        filters: Sequence[StreamFilter],
    ) -> None:
        _check_routing_attributes(routing_attributes, self._built_in_attributes())
        StreamFilter.to_filters(list(filters))
        check_filters_on_table(type(self).__name__, filters, table)

    def _build_router(
        self,
        *,
        table: dynamodb.ITable,
        routing_attributes: Sequence[str],
        filters: Sequence[StreamFilter],
        fifo: bool,
        claim_check: bool,
        router_options: lambda_.FunctionOptions | None,
        batch_size: int,
        max_batching_window: cdk.Duration | None,
        parallelization_factor: int,
        retry_attempts: int,
        max_record_age: cdk.Duration | None,
        failure_destination: FailureDestination | None,
        removal_policy: cdk.RemovalPolicy,
        monitoring: Monitoring,
    ) -> None:
        self.table = table
        self.removal_policy = removal_policy
        self.fifo = fifo
        self.routing_attributes = tuple(routing_attributes)
        self.monitoring = monitoring
        self.consumers: list[FanOutConsumer] = []
        self._subscription_count = 0
        self._filter_policy_count = 0
        self.topic = sns.Topic(
            self,
            "Topic",
            fifo=fifo or None,
            enforce_ssl=True,
            # SNS's AWS managed key: encrypted at rest, no key to manage or grant.
            master_key=kms.Alias.from_alias_name(self, "TopicKey", "alias/aws/sns"),
        )
        self.claim_check_bucket: s3.IBucket | None = None
        if claim_check:
            self.claim_check_bucket = secure_bucket(
                self,
                "ClaimCheckBucket",
                removal_policy=removal_policy,
                # Pointers in queues expire after 14 days: so can the payloads.
                lifecycle_rules=[s3.LifecycleRule(expiration=duration("days", 15))],
            )
            acknowledge(
                self.claim_check_bucket,
                "AwsSolutions-S1",
                "transient payloads written only by the router and read only by the "
                "processors (least-privilege roles); audit with CloudTrail data events",
            )
        self.controller_function = self._router_function(
            routing_attributes, router_options, removal_policy
        )
        self.controller = SimpleController(
            self,
            "Controller",
            table=table,
            function=self.controller_function,
            filters=filters,
            batch_size=batch_size,
            max_batching_window=max_batching_window,
            parallelization_factor=parallelization_factor,
            retry_attempts=retry_attempts,
            max_record_age=max_record_age,
            # None: SimpleController's default, FailureDestination.s3() (the same bucket,
            # statements, MetricsConfig and alarms as every stream mapping here).
            failure_destination=failure_destination,
            removal_policy=removal_policy,
            monitoring=monitoring,
        )
        self.failure_destination: lambda_.IEventSourceDlq = self.controller.failure_destination
        self.failure_bucket: s3.IBucket | None = self.controller.failure_bucket
        self.failure_queue: sqs.IQueue | None = self.controller.failure_queue
        self.subscription_dead_letter_queue = self._queue(self, "SubscriptionDlq")
        acknowledge(
            self.subscription_dead_letter_queue,
            "AwsSolutions-SQS3",
            "this queue is itself a dead-letter queue: the SNS subscriptions' DLQ",
        )

    def _finish_alarms(self) -> None:
        """The topic's and the subscription DLQ's alarms, after the router's."""
        alarms = AlarmFactory(self, self.monitoring)
        alarms.topic("topic", self.topic)
        alarms.dead_letters("subscriptionDlq", self.subscription_dead_letter_queue)
        self.alarms: dict[str, cloudwatch.Alarm] = {
            **{f"controller.{k}": a for k, a in self.controller.alarms.items()},
            **alarms.alarms,
        }
        self.alarm_topic: sns.ITopic | None = alarms.alarm_topic

    def _router_function(
        self,
        routing_attributes: Sequence[str],
        options: lambda_.FunctionOptions | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> lambda_.Function:
        environment = {
            "TOPIC_ARN": self.topic.topic_arn,
            "ROUTING_ATTRIBUTES": json.dumps(list(routing_attributes)),
            "FIFO": "true" if self.fifo else "false",
        }
        if self._PUBLISHES_TTL_EXPIRY:
            environment["PUBLISH_TTL_EXPIRY"] = "true"
        if self.claim_check_bucket is not None:
            environment["CLAIM_CHECK_BUCKET"] = self.claim_check_bucket.bucket_name
        function = build_function(
            self,
            "ControllerFunction",
            code=runtime_code(),
            handler="ddb_stream_runtime.router.handler",
            runtime=DEFAULT_RUNTIME,
            removal_policy=removal_policy,
            options=options,
            environment=environment,
            timeout=duration("seconds", 60),
        )
        self.topic.grant_publish(function)
        self._grant_claim_checks(function, "s3:PutObject")
        return function

    def _grant_claim_checks(self, function: lambda_.IFunction, action: str) -> None:
        """Only ``action`` on the claim-check prefix (``grant_put``/``grant_read`` add
        ``s3:Abort*``, ``s3:List*``, ``s3:GetBucket*``: none is needed)."""
        if self.claim_check_bucket is None:
            return
        role = function.role  # one round trip, not three
        if role is None:
            # add_to_role_policy does nothing then: records over 256 KB would arrive as
            # pointers the function may not read, retried into the DLQ with no other sign.
            cdk.Annotations.of(function).add_warning_v2(
                CLAIM_CHECK_ROLE_WARNING,
                f"function {function.node.path!r} was imported without its role, so it cannot "
                f"be granted {action} on {CLAIM_CHECK_PREFIX}* of the claim-check bucket "
                "(records too large for SNS are stored there): grant it to the function's "
                "role yourself and acknowledge this warning, import the function with "
                "role=..., or use claim_check=False",
            )
            return
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[action],
                resources=[self.claim_check_bucket.arn_for_objects(f"{CLAIM_CHECK_PREFIX}*")],
            )
        )
        if role is not None:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{_logical_id(self.claim_check_bucket)}.Arn>/"
                f"{CLAIM_CHECK_PREFIX}*]",
                "claim-check object keys are per record: S3 object ARNs need a wildcard "
                "under the claim-check prefix",
            )

    def _queue(self, scope: Construct, id: str, **props: object) -> sqs.Queue:
        if self.fifo:
            props.setdefault("fifo", True)
        return secure_queue(scope, id, removal_policy=self.removal_policy, **props)

    def _subscribe(
        self,
        scope: Construct,
        prefix: str,
        function: lambda_.IFunction,
        options: Any,
        policy: Mapping[str, sns.SubscriptionFilter],
        *,
        where: str,
        options_prop: str,
    ) -> _Queued:
        """A queue (+ DLQ) under ``scope`` subscribed with ``policy``, feeding ``function``."""
        self._count_subscription(bool(policy), where)
        _check_reserved_concurrency(f"{options_prop}.max_concurrency", options, function)
        visibility_prop = f"{options_prop}.visibility_timeout"
        timeout = _timeout_of(function)
        if timeout is None and options.visibility_timeout is None:
            raise ValueError(
                f"{visibility_prop} is required for the imported function "
                f"{function.node.path!r}: its timeout is unknown here"
            )
        visibility = options.visibility_timeout or cdk.Duration.seconds(
            6 * int(timeout.to_seconds())
        )
        if timeout is not None:
            check_visibility(visibility_prop, visibility, timeout)
        dlq = self._queue(scope, f"{prefix}Dlq")
        queue = self._queue(
            scope,
            f"{prefix}Queue",
            # Shorter than its DLQ's 14 days: a redriven message keeps its first
            # enqueue time, so an equal retention could expire it in the DLQ at once.
            retention_period=duration("days", 4),
            delivery_delay=options.delay,
            visibility_timeout=visibility,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dlq, max_receive_count=options.max_receive_count
            ),
        )
        if options.acknowledge_low_max_receive_count:
            cdk.Annotations.of(queue).add_info(
                f"max_receive_count {options.max_receive_count} is below AWS's "
                f"{MIN_MAX_RECEIVE_COUNT} for queues Lambda polls, acknowledged: "
                f"{options.acknowledge_low_max_receive_count}"
            )
        subscription = subs.SqsSubscription(
            queue,
            raw_message_delivery=True,
            filter_policy=dict(policy) or None,
            dead_letter_queue=self.subscription_dead_letter_queue,
        )
        self.topic.add_subscription(subscription)
        event_source = sources.SqsEventSource(
            queue,
            batch_size=options.batch_size,
            max_batching_window=options.max_batching_window,
            max_concurrency=options.max_concurrency,
            report_batch_item_failures=True,
        )
        function.add_event_source(event_source)  # grants consume (and decrypt, if keyed)
        self._grant_claim_checks(function, "s3:GetObject")
        return _Queued(queue, dlq, subscription, event_source)

    def _count_subscription(self, filtered: bool, where: str) -> None:
        self._subscription_count += 1
        self._filter_policy_count += int(filtered)
        if self.fifo and self._subscription_count > MAX_FIFO_SUBSCRIPTIONS:
            raise ValueError(
                f"{where}: {type(self).__name__} {self.node.path!r} is FIFO, and a FIFO topic "
                f"takes at most {MAX_FIFO_SUBSCRIPTIONS} subscriptions (SNS quota); this is "
                f"subscription {self._subscription_count}: use fifo=False, or a second fan-out"
            )
        if self._filter_policy_count > MAX_FILTER_POLICIES:
            raise ValueError(
                f"{where}: {type(self).__name__} {self.node.path!r} would have "
                f"{self._filter_policy_count} filter policies, SNS allows {MAX_FILTER_POLICIES} "
                "per topic by default: raise the quota first, or use a second fan-out"
            )

    # -- the ChangeSource protocol ----------------------------------------------------

    def describe(self) -> str:
        return f"{type(self).__name__} {self.node.path!r}"

    def with_queue(self, options: QueueOptions) -> _FanOutSource:
        """This fan-out as a source whose consumer's queue uses ``options``."""
        v.check_type("with_queue", "options", options, QueueOptions, optional=False)
        if self.fifo:
            check_queue_settings("queue_options", options, fifo=True)
        return _FanOutSource(self, options)

    def bind(
        self, scope: Construct, id: str, *, function: lambda_.IFunction, consumer: ConsumerSpec
    ) -> FanOutConsumer:
        """Subscribe ``function`` (see ``ChangeSource``); returns its ``FanOutConsumer``."""
        return self._bind(scope, id, function, consumer, self._queue_options)

    def _bind(
        self,
        scope: Construct,
        id: str,
        function: lambda_.IFunction,
        consumer: ConsumerSpec,
        options: QueueOptions,
    ) -> FanOutConsumer:
        from ._stream_pattern import require_view_type

        owner = f"{consumer.pattern} {scope.node.path}/{id}"
        if consumer.stream_options is not None:
            raise ValueError(
                f"{owner}: stream_options configure reading the table's stream, but source "
                f"{self.describe()} feeds the function from a queue: give its options as "
                "source=fan_out.with_queue(QueueOptions(batch_size=..., ...)) and remove "
                f"stream_options (got {consumer.stream_options!r})"
            )
        if consumer.stream_props:
            raise ValueError(
                f"{owner}: {', '.join(consumer.stream_props)} configure the event source "
                f"mapping on the table's stream, but source {self.describe()} feeds the "
                f"function from a queue: remove them (got {dict(consumer.stream_props)!r}); "
                "give queue options as source=fan_out.with_queue(QueueOptions(batch_size=...))"
            )
        if consumer.needs is not None:
            require_view_type(self.table, consumer.needs, consumer.pattern)
        policy = self.filter_policy(consumer.filters, where=f"{owner}: filters")
        consumer_construct = FanOutConsumer(
            scope, id, fan_out=self, function=function, policy=policy, options=options,
            consumer=consumer,
        )
        self.consumers.append(consumer_construct)
        return consumer_construct

    # -- StreamFilter -> filter policy -------------------------------------------------

    def filter_policy(
        self, filters: Sequence[StreamFilter], *, where: str = "filters"
    ) -> dict[str, sns.SubscriptionFilter]:
        """The SNS filter policy equal to ``filters``, or a ``ValueError`` saying why none is.

        See the module docstring for what translates.
        """
        return filter_policy(
            list(filters),
            published=self._built_in_attributes() + self.routing_attributes,
            key_types=_key_types(self.table),
            where=where,
        )

    # -- metrics -----------------------------------------------------------------

    def metric_iterator_age(self) -> cloudwatch.Metric:
        """Maximum iterator age of the router (ms)."""
        return self.controller.metric_iterator_age()

    def metric_failure_deliveries(self) -> cloudwatch.Metric:
        """Records the router's stream mapping sent to its failure destination (Lambda's
        ``OnFailureDestinationDeliveredEventCount``)."""
        return self.controller.metric_failure_deliveries()

    def metric_dropped_records(self) -> cloudwatch.Metric:
        """Records the router gave up on and could not deliver (``DroppedEventCount``)."""
        return self.controller.metric_dropped_records()

    def metric_notifications_failed(self) -> cloudwatch.Metric:
        """SNS notifications that could not be delivered to a queue."""
        return self.topic.metric_number_of_notifications_failed(statistic="Sum")

    def metric_messages_published(self) -> cloudwatch.Metric:
        """Messages the router published to the topic."""
        return self.topic.metric_number_of_messages_published(statistic="Sum")

    def dashboard_rows(self) -> list[list[cloudwatch.IWidget]]:
        """The router, then the topic (each consumer shows its own rows)."""
        rows = self.controller.dashboard_rows()
        rows.append([
            cloudwatch.GraphWidget(
                title=f"{self.node.path}: topic",
                left=[self.metric_messages_published(), self.metric_notifications_failed()],
                width=24,
            )
        ])
        return rows


class _FanOutSource:
    """A ``StreamFanOut`` with the queue options of one consumer (``with_queue``)."""

    def __init__(self, fan_out: StreamFanOut, options: QueueOptions) -> None:
        self.fan_out = fan_out
        self.options = options
        self.table = fan_out.table

    def describe(self) -> str:
        return self.fan_out.describe()

    def bind(
        self, scope: Construct, id: str, *, function: lambda_.IFunction, consumer: ConsumerSpec
    ) -> FanOutConsumer:
        return self.fan_out._bind(scope, id, function, consumer, self.options)


class FanOutConsumer(Construct):
    """A function fed by a ``StreamFanOut``: its queue, DLQ, subscription and alarms.

    The ``SourceBinding`` of the fan-out (see ``change_source``): patterns expose it as
    ``.controller``.

    Attributes
    ----------
    function, fan_out, queue, dead_letter_queue (also ``failure_queue``), subscription,
    queue_options (the ``QueueOptions`` in use), filter_policy (the policy dict, empty
    for all records), event_source, event_source_mapping, alarms (``handlerErrors``,
    ``handlerThrottles``, ``dlqMessages``, ``queueOldestMessage``), alarm_topic.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        fan_out: StreamFanOut,
        function: lambda_.IFunction,
        policy: Mapping[str, sns.SubscriptionFilter],
        options: QueueOptions,
        consumer: ConsumerSpec,
    ) -> None:
        super().__init__(scope, id)
        self.fan_out = fan_out
        self.function = function
        self.filter_policy = dict(policy)
        queued = fan_out._subscribe(
            self, "", function, options, policy,
            where=f"{consumer.pattern} {self.node.path}",
            options_prop="queue_options",
        )
        self.queue = queued.queue
        self.dead_letter_queue = queued.dead_letter_queue
        self.failure_queue: sqs.IQueue | None = queued.dead_letter_queue
        self.subscription = queued.subscription
        self.event_source = queued.event_source
        self.event_source_mapping: lambda_.EventSourceMapping = _mapping_of(function)
        self.delay = options.delay
        self.queue_options = options
        alarms = AlarmFactory(self, consumer.monitoring or Monitoring())
        alarms.function("handler", function)
        alarms.dead_letters("dlq", self.dead_letter_queue)
        alarms.queue_age("queue", self.queue, options.delay)
        self.alarms: dict[str, cloudwatch.Alarm] = alarms.alarms
        self.alarm_topic: sns.ITopic | None = alarms.alarm_topic

    def metric_errors(self) -> cloudwatch.Metric:
        """Sum of the function's errors."""
        return self.function.metric_errors(statistic="Sum")

    def metric_queue_depth(self) -> cloudwatch.Metric:
        """Messages visible in the consumer's queue."""
        return self.queue.metric_approximate_number_of_messages_visible(statistic="Maximum")

    def metric_oldest_message_age(self) -> cloudwatch.Metric:
        """Age (s) of the oldest message in the consumer's queue: how far behind it is."""
        return self.queue.metric_approximate_age_of_oldest_message(statistic="Maximum")

    def metric_failure_queue_depth(self) -> cloudwatch.Metric:
        """Messages given up on, waiting in the consumer's DLQ."""
        return self.dead_letter_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum"
        )

    def metric_iterator_age(self) -> cloudwatch.Metric:
        """A queue-fed function has no iterator age: a ``ValueError`` that says what to use."""
        raise ValueError(
            f"{self.node.path} reads a queue of {self.fan_out.describe()}, which has no "
            "iterator age: use metric_oldest_message_age() (or the fan-out's "
            "metric_iterator_age() for the router)"
        )

    def dashboard_rows(self) -> list[list[cloudwatch.IWidget]]:
        """Queue, function and DLQ, side by side."""
        function = self.function
        return [[
            cloudwatch.GraphWidget(
                title=f"{self.node.path}: queue",
                left=[self.metric_queue_depth()],
                right=[self.metric_oldest_message_age()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{self.node.path}: handler",
                left=[
                    function.metric_invocations(statistic="Sum"),
                    self.metric_errors(),
                    function.metric_throttles(statistic="Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{self.node.path}: DLQ", left=[self.metric_failure_queue_depth()], width=8
            ),
        ]]


def _mapping_of(function: lambda_.IFunction) -> lambda_.EventSourceMapping:
    mappings = [c for c in function.node.children if isinstance(c, lambda_.EventSourceMapping)]
    return mappings[-1]


# -- routing attributes and published types -------------------------------------------


def _check_routing_attributes(names: Sequence[str], built_in: Sequence[str]) -> None:
    if isinstance(names, str):
        raise ValueError(f"routing_attributes must be a list of names, got {names!r}")
    limit = MAX_MESSAGE_ATTRIBUTES - len(built_in)
    if len(names) > limit:
        raise ValueError(
            f"routing_attributes allows at most {limit} names (SNS raw delivery drops "
            f"messages with more than {MAX_MESSAGE_ATTRIBUTES} attributes), got {len(names)}: "
            f"{list(names)!r}"
        )
    for name in names:
        if name in built_in or not _ATTRIBUTE.match(str(name)):
            raise ValueError(
                f"routing_attributes has an invalid or reserved name {name!r} "
                f"(reserved: {', '.join(built_in)})"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"routing_attributes has duplicates: {list(names)!r}")


_ATTRIBUTE_TYPE_TAG = {"STRING": "S", "NUMBER": "N", "BINARY": "B"}  # AttributeType -> tag


def _key_types(table: dynamodb.ITable) -> dict[str, str]:
    """The table's primary key attributes and their types (S/N/B), when defined in this app."""
    if isinstance(table, StreamTable):  # its props say it all, without jsii round trips
        return {
            k.name: _ATTRIBUTE_TYPE_TAG[k.type.value]
            for k in (table.partition_key, table.sort_key)
            if k is not None
        }
    child = table.node.default_child if isinstance(table, Construct) else None
    if not isinstance(child, (dynamodb.CfnTable, dynamodb.CfnGlobalTable)):
        return {}  # an imported table: its schema is unknown at synth
    stack = cdk.Stack.of(table)
    keys = stack.resolve(child.key_schema) or []
    definitions = stack.resolve(child.attribute_definitions) or []
    types = {d.get("attributeName"): d.get("attributeType") for d in definitions}
    return {k["attributeName"]: types.get(k["attributeName"]) for k in keys if "attributeName" in k}
