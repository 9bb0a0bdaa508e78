"""``ComplexController``: stream → router Lambda → SNS → filtered SQS queues → processors.

Each processor is written, deployed and scaled apart from the others: its queue
buffers (and optionally delays) its share of the records, and its event-source
concurrency protects slow downstream systems. The table's stream has a single reader
(the router), whatever the number of processors.

::

    table stream ──► router λ ──PublishBatch──► SNS topic (eventName, tableName, routing attrs)
                                                  │ filter policy per processor
                                       ┌──────────┼──────────┐
                                       ▼          ▼          ▼
                                   SQS queue  SQS queue  SQS queue (delay, DLQ)
                                       ▼          ▼          ▼
                                  processor λ processor λ processor λ (max concurrency)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_event_sources as sources
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sns_subscriptions as subs
import aws_cdk.aws_sqs as sqs
from constructs import Construct

from . import _validation as v
from ._filter_policy import check_policy_limits
from ._resources import build_function, struct_values
from ._validation import check_range, is_token
from .monitoring import AlarmFactory, Monitoring
from .runtime_assets import StreamRuntimeLayer
from .simple_controller import DEFAULT_RUNTIME, FailureDestination
from .stream_fan_out import (  # noqa: F401 (CLAIM_CHECK_PREFIX, MIN_...: kept importable here)
    CLAIM_CHECK_PREFIX,
    MIN_MAX_RECEIVE_COUNT,
    PUBLISHED_ATTRIBUTES,
    QueueOptions,
    StreamFanOut,
    _key_types,
    check_queue_settings,
)
from .stream_filter import EVENT_NAMES, StreamFilter

__all__ = ["ComplexController", "Processor", "Route", "PUBLISHED_ATTRIBUTES"]

T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Route:
    """Which records a processor receives: it becomes its SNS subscription filter policy.

    Parameters
    ----------
    event_names
        Subset of INSERT/MODIFY/REMOVE. Default: all.
    attributes
        Routing attribute name → the values it may take, or any ``sns.SubscriptionFilter``
        (numeric ranges, prefixes, exists...). Names must be in the controller's
        ``routing_attributes`` (or ``tableName``). A list of values becomes a filter of
        the type the router publishes for them (see the table below): strings → a string
        filter, numbers → a numeric filter (``numeric =``), booleans → a string filter on
        ``"true"`` / ``"false"``. Mixing kinds in one list is an error. Default: none.

    What the router publishes (SNS message attribute ``DataType``) for each DynamoDB type,
    and which values of a route match it:

    =====  ==========================  ==========================================
    type   published as                route values
    =====  ==========================  ==========================================
    S      ``String``                  strings: ``["shipped"]``
    N      ``Number``                  numbers: ``[1, 2]``, not ``["1", "2"]``
    BOOL   ``String`` ``true/false``   booleans: ``[True]``
    SS     ``String.Array``            strings (matches if any element matches)
    NS     ``String.Array`` of numbers SNS does not document numeric filters on
                                       arrays: route on an N attribute instead
    other  not published               no route can match
    =====  ==========================  ==========================================

    SNS documents string matching against ``String`` / ``String.Array`` attributes and
    numeric matching against ``Number`` attributes (whose text it normalizes: ``2.0`` is
    ``2``), so a route must use the type of the item's attribute. Where that type is
    known at synth (``eventName``, ``tableName`` and the table's key attributes) a rule
    of the other type is an error; for other attributes it is the data that decides:
    store a routed attribute with one type.
    Numbers must lie within ±1,000,000,000 with at most 5 decimals (SNS's numeric range).

    Example
    -------
    >>> Route(event_names=["MODIFY"], attributes={"status": ["shipped", "delivered"]})
    >>> Route(attributes={"priority": [1, 2], "express": [True]})
    """

    event_names: Sequence[str] = ()
    attributes: Mapping[str, Sequence[str | int | float | bool] | sns.SubscriptionFilter] = (
        field(default_factory=dict)
    )

    def __post_init__(self) -> None:
        v.check_list("Route", "event_names", self.event_names, str)
        v.check_type("Route", "attributes", self.attributes, Mapping,
                     "a dict of attribute -> allowed values")

    def filter_policy(self) -> dict[str, sns.SubscriptionFilter]:
        """The SNS filter policy (message-attribute scope) of this route.

        Raises
        ------
        ValueError
            If a list of values is empty or mixes kinds (checked with the prop's full
            name when the controller validates its processors).
        """
        policy: dict[str, sns.SubscriptionFilter] = {}
        if self.event_names:
            policy["eventName"] = sns.SubscriptionFilter.string_filter(
                allowlist=list(self.event_names)
            )
        for name, rule in self.attributes.items():
            policy[name] = (
                rule
                if isinstance(rule, sns.SubscriptionFilter)
                else _values_filter(f"route.attributes[{name!r}]", rule)
            )
        return policy


@dataclass(frozen=True)
class Processor:
    """One processor: its routing rule, its function, and how its queue feeds it.

    Parameters
    ----------
    route
        The records it receives. Required.
    function
        Your function (``IFunction``). Give this *or* ``code`` + ``handler``.
    code, handler, runtime, function_options
        Build the function (Python 3.14, ARM64, 256 MB, 30 s, the ``ddb_stream_runtime``
        layer; ``from ddb_stream_runtime import sqs_record_handler``).
    delay
        Queue delay before a record is visible, up to 15 minutes. Default: none.
    max_concurrency
        Event-source maximum concurrency, 2-1000: caps the load on downstream systems
        without throttling. Default: none (scales with the queue).
    reserved_concurrency
        Reserved concurrency of the built function; ``max_concurrency`` must not exceed
        it (the event source ignores it, so a higher value means throttled retries).
        Default: none.
    batch_size
        1-10,000 (more than 10 needs ``max_batching_window``; FIFO allows 10). Default: 10.
    max_batching_window
        0-300 s. Default: none.
    max_receive_count
        Receives before a message goes to the processor's DLQ, 5-1000 (AWS advises at least
        5 for queues Lambda polls, so messages get several chances before the DLQ); below 5
        only with ``acknowledge_low_max_receive_count``. Default: 5.
    acknowledge_low_max_receive_count
        Why a ``max_receive_count`` below 5 is wanted here (a non-empty reason, recorded as
        an info annotation on the queue). Only valid with ``max_receive_count`` below 5.
        Default: none.
    visibility_timeout
        At least 6 × the function timeout (AWS's guidance, so retries by the event source
        are not seen as failures). Default: exactly 6 × the function timeout.
    """

    route: Route
    function: lambda_.IFunction | None = None
    code: lambda_.Code | None = None
    handler: str | None = None
    runtime: lambda_.Runtime = DEFAULT_RUNTIME
    function_options: lambda_.FunctionOptions | None = None
    delay: cdk.Duration | None = None
    max_concurrency: int | None = None
    reserved_concurrency: int | None = None
    batch_size: int = 10
    max_batching_window: cdk.Duration | None = None
    max_receive_count: int = MIN_MAX_RECEIVE_COUNT
    visibility_timeout: cdk.Duration | None = None
    acknowledge_low_max_receive_count: str | None = None

    def __post_init__(self) -> None:
        v.check_type("Processor", "route", self.route, Route, optional=False)
        v.check_types("Processor", _PROCESSOR_TYPES, vars(self))


_PROCESSOR_TYPES = {
    "function": v.IFUNCTION, "code": lambda_.Code, "handler": str, "runtime": lambda_.Runtime,
    "function_options": lambda_.FunctionOptions, "delay": cdk.Duration,
    "max_concurrency": int, "reserved_concurrency": int, "batch_size": int,
    "max_batching_window": cdk.Duration, "max_receive_count": int,
    "visibility_timeout": cdk.Duration, "acknowledge_low_max_receive_count": str,
}
_CONTROLLER_TYPES = {
    "table": v.ITABLE, "processors": {str: Processor}, "routing_attributes": [str],
    "filters": [StreamFilter], "fifo": bool, "claim_check": bool,
    "controller_options": lambda_.FunctionOptions, "batch_size": int,
    "max_batching_window": cdk.Duration, "parallelization_factor": int,
    "retry_attempts": int, "max_record_age": cdk.Duration,
    "controller_failure_destination": FailureDestination,
    "removal_policy": cdk.RemovalPolicy, "monitoring": Monitoring,
}


class ComplexController(StreamFanOut):
    """The complex controller pattern, as one construct: a ``StreamFanOut`` whose
    consumers are processors defined here.

    Parameters
    ----------
    table
        Any ``ITable`` with a stream. Required.
    processors
        Name → :class:`Processor`. Names are construct ids (letters, digits, ``-``, ``_``):
        keep them stable. At least one.
    routing_attributes
        Image attributes the router publishes as SNS message attributes (from the new
        image, or the old one for REMOVE), for routes to filter on. At most 8
        (``eventName`` and ``tableName`` are always published; SNS raw delivery drops
        messages with more than 10 attributes). Default: none.
    filters
        ``StreamFilter`` list applied before the router (records no route wants need not
        be published). Default: none.
    fifo
        FIFO topic and queues, message group = item key: per-item ordering for every
        processor, at FIFO throughput (at most 100 processors: SNS's FIFO subscription
        quota). Default: ``False``.
    claim_check
        Records too big for SNS (256 KB) go through a new S3 bucket; without it such a
        record is given up on, to the controller's failure destination. Default: ``True``.
    controller_options
        ``lambda_.FunctionOptions`` merged over the router's defaults (ARM64, 256 MB, 60 s).
    batch_size, retry_attempts, max_record_age, parallelization_factor, max_batching_window
        The router's stream event source, as in ``SimpleController`` (``max_record_age``
        default 20 hours; 24 h or more, the stream's retention, is an error).
    controller_failure_destination
        Where the router's stream mapping sends the records it gives up on. Default:
        ``FailureDestination.s3()``: a new bucket (construct ``Controller/FailureBucket``)
        that keeps each failed batch, records included, 90 days.
        ``FailureDestination.sqs()``: a queue that gets the batch's coordinates only.
    removal_policy
        For queues, buckets and log groups created here. Default: ``RETAIN``.
    monitoring
        Alarms and where they notify. Default: ``Monitoring()``: the router's (iterator
        age, errors, throttles, records sent to its failure bucket or waiting in its
        failure queue, records dropped), the topic's failed notifications, the
        subscription DLQ, and per processor its errors, throttles, DLQ and queue age.

    Attributes
    ----------
    controller (the ``SimpleController``), controller_function, failure_destination,
    failure_bucket / failure_queue (the router's, the one in use; the other is ``None``),
    topic, queues,
    dead_letter_queues, processor_functions, event_sources (each a dict by processor
    name), subscription_dead_letter_queue, claim_check_bucket (or ``None``),
    runtime_layer (or ``None`` when every processor brings its function), alarms (a dict
    by purpose; the router's are prefixed ``controller.``), alarm_topic (where they
    notify, or ``None``). Being a ``StreamFanOut``, it is also a ``source=`` for the
    patterns (without ``ttlExpiry``: its router keeps its configuration).
    """

    _PUBLISHES_TTL_EXPIRY = False

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.ITable,
        processors: Mapping[str, Processor],
        routing_attributes: Sequence[str] = (),
        filters: Sequence[StreamFilter] = (),
        fifo: bool = False,
        claim_check: bool = True,
        controller_options: lambda_.FunctionOptions | None = None,
        batch_size: int = 100,
        max_batching_window: cdk.Duration | None = None,
        parallelization_factor: int = 1,
        retry_attempts: int = 10,
        max_record_age: cdk.Duration | None = None,
        controller_failure_destination: FailureDestination | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        monitoring: Monitoring | None = None,
    ) -> None:
        v.check_types("ComplexController", _CONTROLLER_TYPES, locals())
        Construct.__init__(self, scope, id)
        monitoring = monitoring or Monitoring()
        self._check_router_props(table, routing_attributes, filters)
        if not processors:
            raise ValueError("processors must name at least one Processor, got {}")
        published = _published_types(table, routing_attributes)
        for name, processor in processors.items():
            _check_processor(name, processor, published, fifo)

        # The same construct ids as before StreamFanOut existed: logical ids stay stable.
        self._build_router(
            table=table, routing_attributes=routing_attributes, filters=filters, fifo=fifo,
            claim_check=claim_check, router_options=controller_options, batch_size=batch_size,
            max_batching_window=max_batching_window,
            parallelization_factor=parallelization_factor, retry_attempts=retry_attempts,
            max_record_age=max_record_age, failure_destination=controller_failure_destination,
            removal_policy=removal_policy, monitoring=monitoring,
        )
        self._queue_options = QueueOptions()

        self.runtime_layer: StreamRuntimeLayer | None = None
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        self.processor_functions: dict[str, lambda_.IFunction] = {}
        self.event_sources: dict[str, sources.SqsEventSource] = {}
        self.subscriptions: dict[str, subs.SqsSubscription] = {}
        self.delays: dict[str, cdk.Duration | None] = {}
        for name, processor in processors.items():
            self._add_processor(name, processor)

        alarms = AlarmFactory(self, monitoring)
        alarms.topic("topic", self.topic)
        alarms.dead_letters("subscriptionDlq", self.subscription_dead_letter_queue)
        for name in processors:
            alarms.function(f"{name}Function", self.processor_functions[name])
            alarms.dead_letters(f"{name}Dlq", self.dead_letter_queues[name])
            alarms.queue_age(f"{name}Queue", self.queues[name], self.delays[name])
        self.alarms: dict[str, cloudwatch.Alarm] = {
            **{f"controller.{k}": v for k, v in self.controller.alarms.items()},
            **alarms.alarms,
        }
        self.alarm_topic: sns.ITopic | None = alarms.alarm_topic

    # -- metrics -----------------------------------------------------------------

    def metric_queue_depth(self, name: str) -> cloudwatch.Metric:
        """Messages visible in processor ``name``'s queue."""
        queue = self._processor_part(self.queues, name)
        return queue.metric_approximate_number_of_messages_visible(statistic="Maximum")

    def metric_oldest_message_age(self, name: str) -> cloudwatch.Metric:
        """Age (s) of the oldest message in processor ``name``'s queue."""
        queue = self._processor_part(self.queues, name)
        return queue.metric_approximate_age_of_oldest_message(statistic="Maximum")

    def metric_dead_letters(self, name: str) -> cloudwatch.Metric:
        """Messages visible in processor ``name``'s DLQ."""
        dlq = self._processor_part(self.dead_letter_queues, name)
        return dlq.metric_approximate_number_of_messages_visible(statistic="Maximum")

    def metric_processor_errors(self, name: str) -> cloudwatch.Metric:
        """Sum of processor ``name``'s function errors."""
        return self._processor_part(self.processor_functions, name).metric_errors(
            statistic="Sum"
        )

    def _processor_part(self, parts: Mapping[str, T], name: str) -> T:
        if name not in parts:
            raise ValueError(f"no processor named {name!r}; processors: {sorted(parts)!r}")
        return parts[name]

    def dashboard_rows(self) -> list[list[cloudwatch.IWidget]]:
        """Router → topic → each processor's queue, function and DLQ."""
        rows = super().dashboard_rows()
        for name, function in self.processor_functions.items():
            rows.append([
                cloudwatch.GraphWidget(
                    title=f"{name}: queue",
                    left=[self.metric_queue_depth(name)],
                    right=[self.metric_oldest_message_age(name)],
                    width=8,
                ),
                cloudwatch.GraphWidget(
                    title=f"{name}: processor",
                    left=[
                        function.metric_invocations(statistic="Sum"),
                        self.metric_processor_errors(name),
                        function.metric_throttles(statistic="Sum"),
                    ],
                    width=8,
                ),
                cloudwatch.GraphWidget(
                    title=f"{name}: DLQ", left=[self.metric_dead_letters(name)], width=8
                ),
            ])
        return rows

    # -- processors --------------------------------------------------------------

    def _add_processor(self, name: str, processor: Processor) -> None:
        function = processor.function or self._processor_function(name, processor)
        queued = self._subscribe(
            self,
            name,
            function,
            processor,
            processor.route.filter_policy(),
            where=f"processors[{name!r}]",
            options_prop=f"processors[{name!r}]",
        )
        self.queues[name] = queued.queue
        self.delays[name] = processor.delay
        self.dead_letter_queues[name] = queued.dead_letter_queue
        self.processor_functions[name] = function
        self.event_sources[name] = queued.event_source
        self.subscriptions[name] = queued.subscription

    def _processor_function(self, name: str, processor: Processor) -> lambda_.Function:
        if self.runtime_layer is None:
            self.runtime_layer = StreamRuntimeLayer(self, "RuntimeLayer")
        options = struct_values(processor.function_options)
        if processor.reserved_concurrency is not None:
            options["reserved_concurrent_executions"] = processor.reserved_concurrency
        environment = {}
        if self.claim_check_bucket is not None:
            environment["CLAIM_CHECK_BUCKET"] = self.claim_check_bucket.bucket_name
        return build_function(
            self,
            f"{name}Function",
            code=processor.code,
            handler=processor.handler,
            runtime=processor.runtime,
            removal_policy=self.removal_policy,
            options=lambda_.FunctionOptions(**options),
            layers=[self.runtime_layer],
            environment=environment,
        )


# -- route values and published types ----------------------------------------------

# The SNS DataType the router publishes for each DynamoDB type of a key attribute
# (ddb_stream_runtime.router; S/N/B are the only key types).
_NOT_PUBLISHED = "not published"
_PUBLISHED_TYPE = {"S": "String", "N": "Number", "B": _NOT_PUBLISHED}
_STRING, _NUMERIC = "string", "numeric"
# SNS numeric matching: -1e9..1e9, five digits after the decimal point.
_SNS_NUMBER_LIMIT = 1_000_000_000
_SNS_NUMBER_DECIMALS = 5


def _value_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _values_filter(prop: str, values: object) -> sns.SubscriptionFilter:
    """A list of route values → the filter of the type the router publishes for them."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(
            f"{prop} must be a non-empty list of values or an sns.SubscriptionFilter, "
            f"got {values!r}"
        )
    kinds = {_value_kind(v) for v in values}
    if len(kinds) > 1 or not kinds <= {"boolean", "number", "string"}:
        raise ValueError(
            f"{prop} must hold only strings, only numbers or only booleans (it becomes one "
            f"sns filter of that type), got {list(values)!r}"
        )
    [kind] = kinds
    if kind == "number":
        for value in values:
            _check_sns_number(prop, value)
        return sns.SubscriptionFilter.numeric_filter(allowlist=list(values))
    if kind == "boolean":  # the router publishes BOOL as the String "true" / "false"
        return sns.SubscriptionFilter.string_filter(
            allowlist=["true" if v else "false" for v in values]
        )
    return sns.SubscriptionFilter.string_filter(allowlist=list(values))


def _check_sns_number(prop: str, value: float) -> None:
    # Finite first: jsii cannot pass inf or nan to Token.is_unresolved.
    if math.isfinite(value) and is_token(value):
        return
    exponent = Decimal(repr(value)).as_tuple().exponent if math.isfinite(value) else 0
    if (
        not math.isfinite(value)
        or abs(value) > _SNS_NUMBER_LIMIT
        or (isinstance(exponent, int) and -exponent > _SNS_NUMBER_DECIMALS)
    ):
        raise ValueError(
            f"{prop} has {value!r}: sns numeric filters take numbers from -1e9 to 1e9 "
            f"with at most {_SNS_NUMBER_DECIMALS} decimals"
        )


def _condition_kinds(condition: object) -> set[str]:
    """Whether one filter policy condition matches strings, numbers, or either (exists)."""
    if isinstance(condition, bool) or condition is None:
        return set()
    if isinstance(condition, (int, float)):
        return {_NUMERIC}
    if isinstance(condition, str):
        return {_STRING}
    if isinstance(condition, Mapping) and len(condition) == 1:
        [(operator, argument)] = condition.items()
        if operator == "numeric":
            return {_NUMERIC}
        if operator in ("prefix", "suffix", "equals-ignore-case", "cidr"):
            return {_STRING}
        if operator == "anything-but":
            arguments = argument if isinstance(argument, list) else [argument]
            return set().union(*(_condition_kinds(a) for a in arguments))
    return set()


def _published_types(
    table: dynamodb.ITable, routing_attributes: Sequence[str]
) -> dict[str, str | None]:
    """Each published attribute → the SNS DataType the router gives it, where synth knows it.

    ``eventName`` and ``tableName`` are Strings; a routing attribute that is one of the
    table's key attributes has the key's type (DynamoDB enforces it on every item).
    Other routing attributes map to None: their type is the data's.
    """
    types: dict[str, str | None] = dict.fromkeys(PUBLISHED_ATTRIBUTES, "String")
    types.update(dict.fromkeys(routing_attributes))
    for name, key_type in _key_types(table).items():
        if name in types and key_type in _PUBLISHED_TYPE:
            types[name] = _PUBLISHED_TYPE[key_type]
    return types


# -- validation (pure functions: they run before any resource is created) ---------


def _check_processor(
    name: str, p: Processor, published: Mapping[str, str | None], fifo: bool
) -> None:
    where = f"processors[{name!r}]"
    if not _NAME.match(name):
        raise ValueError(
            f"processor name {name!r} must be 1-64 letters, digits, '-' or '_' "
            "(it becomes part of construct ids)"
        )
    if not isinstance(p, Processor):
        raise ValueError(f"{where} must be a Processor, got {p!r}")
    if p.function is not None and (p.code is not None or p.handler is not None):
        raise ValueError(f"{where}: give either function or code and handler, not both")
    if p.function is None and (p.code is None or not p.handler):
        raise ValueError(
            f"{where}: a function is required: give function, or code and handler "
            f"(got code={p.code!r}, handler={p.handler!r})"
        )
    if p.function is not None and (p.function_options or p.reserved_concurrency is not None):
        raise ValueError(
            f"{where}: function_options and reserved_concurrency only apply to a function "
            "built from code and handler"
        )
    _check_route(where, p.route, published)
    check_range(f"{where}.reserved_concurrency", p.reserved_concurrency, 1, 1_000_000)
    check_queue_settings(where, p, fifo=fifo)
    if (
        p.max_concurrency is not None
        and p.reserved_concurrency is not None
        and not is_token(p.max_concurrency)
        and not is_token(p.reserved_concurrency)
        and p.max_concurrency > p.reserved_concurrency
    ):
        raise ValueError(
            f"{where}.max_concurrency ({p.max_concurrency}) must not exceed "
            f"reserved_concurrency ({p.reserved_concurrency}): the event source ignores "
            "reserved concurrency and would be throttled"
        )


def _check_route(where: str, route: Route, published: Mapping[str, str | None]) -> None:
    if not isinstance(route, Route):
        raise ValueError(f"{where}.route must be a Route, got {route!r}")
    bad_events = [e for e in route.event_names if e not in EVENT_NAMES]
    if bad_events or isinstance(route.event_names, str):
        raise ValueError(
            f"{where}.route.event_names must be a list of {', '.join(EVENT_NAMES)}, "
            f"got {route.event_names!r}"
        )
    unknown = sorted(set(route.attributes) - set(published))
    if unknown:
        raise ValueError(
            f"{where}.route filters on {unknown!r}, which the controller never publishes "
            f"(published: {sorted(published)!r}): add it to routing_attributes"
        )
    for key, rule in route.attributes.items():
        prop = f"{where}.route.attributes[{key!r}]"
        policy_filter = rule if isinstance(rule, sns.SubscriptionFilter) else _values_filter(
            prop, rule
        )
        _check_rule_type(prop, key, rule, policy_filter, published.get(key))
    check_policy_limits(f"{where}.route", route.filter_policy())


def _check_rule_type(
    prop: str,
    name: str,
    rule: object,
    policy_filter: sns.SubscriptionFilter,
    published_type: str | None,
) -> None:
    """Refuse a rule that can never match the type the router publishes for ``name``."""
    shown = rule.conditions if isinstance(rule, sns.SubscriptionFilter) else list(rule)
    if published_type == _NOT_PUBLISHED:
        raise ValueError(
            f"{prop} filters on {name!r}, a binary (B) key of the table, which the router "
            f"never publishes, so {shown!r} can never match: route on another attribute"
        )
    kinds = set().union(*(_condition_kinds(c) for c in policy_filter.conditions))
    if published_type == "String" and _NUMERIC in kinds:
        raise ValueError(
            f"{prop} is a numeric rule {shown!r}, but the router publishes {name!r} as an "
            "sns String attribute, which numeric rules do not match: give strings"
        )
    if published_type == "Number" and _STRING in kinds:
        raise ValueError(
            f"{prop} is a string rule {shown!r}, but {name!r} is a number (N) key of the "
            "table, which the router publishes as an sns Number attribute, which string "
            "rules do not match: give numbers"
        )
