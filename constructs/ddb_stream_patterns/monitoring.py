"""Alarms and dashboards for the patterns: what to watch, at which threshold, and who hears.

Thresholds are data (:class:`AlarmThresholds`), the action strategy is one SNS topic per
stack that CloudWatch can publish to (:class:`Monitoring`: yours, or an
:class:`~ddb_stream_patterns.AlarmTopic` created once per stack), and alarm names follow
one strategy: CloudFormation generates them (unique per stack), and the description says
what fired and what to do.
Each pattern calls :class:`AlarmFactory` for its resources and exposes the result as
``.alarms``; :class:`StreamDashboard` lays out one stack's patterns along the data
flow: writes → stream → handlers → queues → DLQs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_cloudwatch_actions as cw_actions
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_opensearchservice as opensearch
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sqs as sqs
from constructs import Construct

from . import _validation as v
from ._validation import check_duration_range, check_range
from .alarm_topic import AlarmTopic, check_alarm_topic, refuse_aws_managed_key

__all__ = [
    "AlarmThresholds",
    "Monitoring",
    "AlarmFactory",
    "StreamDashboard",
    "DashboardSource",
    "lambda_metric",
]


@dataclass(frozen=True)
class AlarmThresholds:
    """When each alarm fires. Every alarm treats missing data as not breaching.

    Parameters
    ----------
    iterator_age
        Maximum stream iterator age (how far behind the handler is). Default: 1 minute.
    function_errors
        Function errors in one period. Default: 1.
    function_throttles
        Function throttles in one period. Default: 1.
    dead_letter_messages
        Messages visible in a DLQ or failure queue (every one is a lost-unless-handled
        record). Default: 1.
    queue_oldest_message
        Age of the oldest message in a processor queue, on top of its delay.
        Default: 15 minutes.
    notifications_failed
        SNS notifications that failed to be delivered, in one period. Default: 1.
    dropped_records
        Records a stream mapping gave up on and could not deliver to its on-failure
        destination (``DroppedEventCount``), in one period: each one is lost once the
        stream drops it. Default: 1.
    period
        Evaluation period of every alarm, 1 minute to 1 day. Default: 5 minutes.
    evaluation_periods
        Consecutive breaching periods before an alarm fires, 1-100. Default: 1. Not
        applied to the alarms on records a stream mapping gave up on (failure
        deliveries, drops): those counts come once, in one period, so they always fire
        on the first breaching period.
    """

    iterator_age: cdk.Duration = field(default_factory=lambda: v.duration("minutes", 1))
    function_errors: int = 1
    function_throttles: int = 1
    dead_letter_messages: int = 1
    queue_oldest_message: cdk.Duration = field(
        default_factory=lambda: v.duration("minutes", 15)
    )
    notifications_failed: int = 1
    dropped_records: int = 1
    period: cdk.Duration = field(default_factory=lambda: v.duration("minutes", 5))
    evaluation_periods: int = 1

    def __post_init__(self) -> None:
        v.check_types("AlarmThresholds", {
            "iterator_age": cdk.Duration, "function_errors": int, "function_throttles": int,
            "dead_letter_messages": int, "queue_oldest_message": cdk.Duration,
            "notifications_failed": int, "dropped_records": int, "period": cdk.Duration,
            "evaluation_periods": int,
        }, vars(self))
        for name in ("function_errors", "function_throttles", "dead_letter_messages",
                     "notifications_failed", "dropped_records"):
            check_range(f"thresholds.{name}", getattr(self, name), 1, 1_000_000)
        check_range("thresholds.evaluation_periods", self.evaluation_periods, 1, 100)
        check_duration_range("thresholds.iterator_age", self.iterator_age, 1, 7 * 86_400)
        check_duration_range(
            "thresholds.queue_oldest_message", self.queue_oldest_message, 1, 14 * 86_400
        )
        check_duration_range("thresholds.period", self.period, 60, 86_400)
        if v.duration_fact(self.period, "to_seconds") % 60:
            raise ValueError(
                f"thresholds.period must be a whole number of minutes, "
                f"got {v.duration_fact(self.period, 'to_seconds')} seconds"
            )


@dataclass(frozen=True)
class Monitoring:
    """Whether a pattern creates its alarms, and where they notify.

    Alarms that notify nobody are only seen by whoever opens the console, so by default
    every pattern of a stack sends its alarm and OK transitions to one
    :class:`~ddb_stream_patterns.AlarmTopic` per stack, created on first use (construct id
    ``DdbStreamPatternsAlarms``, one customer managed KMS key). Subscribe your on-call to
    it: ``AlarmTopic.of_stack(stack).topic.add_subscription(...)`` (or a pattern's
    ``.alarm_topic``).

    Parameters
    ----------
    alarms
        Create the alarms. Default: ``True``.
    alarm_topic
        Where every alarm and OK transition goes: an ``AlarmTopic`` (recommended), or any
        ``sns.ITopic`` that CloudWatch can publish to. Checked: a topic encrypted with SNS's
        AWS managed key ``alias/aws/sns`` is a ``ValueError``; a topic of this app whose
        topic policy does not allow ``cloudwatch.amazonaws.com`` to ``sns:Publish``, or
        whose key (of this app) does not allow it ``kms:GenerateDataKey*``/``kms:Decrypt``,
        fails synth; an imported topic gets a warning saying what must hold. Default: the
        stack's ``AlarmTopic`` (see ``create_alarm_topic``).
    create_alarm_topic
        Without ``alarm_topic``, create (once per stack) and use the stack's
        ``AlarmTopic``. ``False``: alarms without actions, visible in CloudWatch only.
        Default: ``True``.
    thresholds
        Default: :class:`AlarmThresholds` defaults.
    """

    alarms: bool = True
    alarm_topic: sns.ITopic | AlarmTopic | None = None
    create_alarm_topic: bool = True
    thresholds: AlarmThresholds = field(default_factory=AlarmThresholds)

    def __post_init__(self) -> None:
        v.check_types("Monitoring", {
            # alarm_topic: checked below (an ARN string is a ValueError naming it)
            "alarms": bool, "create_alarm_topic": bool,
            "thresholds": AlarmThresholds,
        }, vars(self))
        topic = self.alarm_topic
        if topic is None or isinstance(topic, AlarmTopic):
            return
        if not hasattr(topic, "topic_arn"):
            raise ValueError(
                f"monitoring.alarm_topic must be an AlarmTopic or an sns.ITopic, got {topic!r}"
            )
        refuse_aws_managed_key("monitoring.alarm_topic", topic)

    def action_topic(self, scope: Construct) -> sns.ITopic | None:
        """The topic ``scope``'s alarms notify (``None`` when alarms are off or have no
        action); creates the stack's ``AlarmTopic`` when it is the one to use."""
        if not self.alarms:
            return None
        if isinstance(self.alarm_topic, AlarmTopic):
            return self.alarm_topic.topic
        if self.alarm_topic is not None:
            check_alarm_topic("monitoring.alarm_topic", self.alarm_topic)
            return self.alarm_topic
        if self.create_alarm_topic:
            return AlarmTopic.of_stack(scope).topic
        return None


def lambda_metric(function: lambda_.IFunction, name: str, statistic: str) -> cloudwatch.Metric:
    """A Lambda metric of ``function`` (``IteratorAge`` has no helper on ``IFunction``)."""
    return function.metric(name, statistic=statistic)


def mapping_metric(mapping: lambda_.IEventSourceMapping, name: str) -> cloudwatch.Metric:
    """One of an event source mapping's own metrics, summed: namespace ``AWS/Lambda``,
    dimension ``EventSourceMappingUUID`` (the mapping's id). Lambda publishes them only for
    a mapping whose ``MetricsConfig`` asks for their group (``EventCount``)."""
    return cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name=name,
        dimensions_map={"EventSourceMappingUUID": mapping.event_source_mapping_id},
        statistic="Sum",
    )


class AlarmFactory:
    """Creates a pattern's alarms under ``scope`` into ``alarms`` (a dict the pattern exposes)."""

    def __init__(self, scope: Construct, monitoring: Monitoring) -> None:
        self.scope = scope
        self.monitoring = monitoring
        self.thresholds = monitoring.thresholds
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        #: Where the alarms notify (``None``: alarms off, or no action).
        self.alarm_topic: sns.ITopic | None = monitoring.action_topic(scope)
        # Computed once per pattern, not per alarm: each is a jsii round trip.
        self._path = scope.node.path if monitoring.alarms else ""
        self._action = (
            cw_actions.SnsAction(self.alarm_topic) if self.alarm_topic is not None else None
        )
        self._period_text = (
            v.duration_fact(self.thresholds.period, "to_human_string") if monitoring.alarms else ""
        )

    def _add(
        self, key: str, metric: cloudwatch.IMetric, threshold: float, what: str, todo: str,
        *, first_period: bool = False,
    ) -> None:
        if not self.monitoring.alarms:
            return
        alarm = cloudwatch.Alarm(
            self.scope,
            f"{key[0].upper()}{key[1:]}Alarm",
            metric=metric,
            threshold=threshold,
            # A one-off count (a batch given up on) breaches one period only: with N > 1
            # consecutive periods required, and missing data not breaching, it would
            # never alarm.
            evaluation_periods=1 if first_period else self.thresholds.evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{self._path}: {what}. {todo}",
        )
        if self._action is not None:  # one action object serves every alarm (same ARN)
            alarm.add_alarm_action(self._action)
            alarm.add_ok_action(self._action)
        self.alarms[key] = alarm

    def stream_handler(self, key: str, function: lambda_.IFunction) -> None:
        """Iterator age, errors and throttles of a function reading a stream."""
        if not self.monitoring.alarms:  # no metric objects to build either
            return
        t = self.thresholds
        self._add(
            f"{key}IteratorAge",
            lambda_metric(function, "IteratorAge", "Maximum").with_(period=t.period),
            v.duration_fact(t.iterator_age, "to_milliseconds"),
            f"stream iterator age >= {v.duration_fact(t.iterator_age, 'to_human_string')}",
            "The handler falls behind the stream: check errors, duration and batch size.",
        )
        self.function(key, function)

    def function(self, key: str, function: lambda_.IFunction) -> None:
        """Errors and throttles of any function."""
        if not self.monitoring.alarms:  # no metric objects to build either
            return
        t = self.thresholds
        self._add(
            f"{key}Errors",
            function.metric_errors(period=t.period, statistic="Sum"),
            t.function_errors,
            f"function errors >= {t.function_errors} in {self._period_text}",
            "Read the function's logs; failed records are retried, then sent to the DLQ.",
        )
        self._add(
            f"{key}Throttles",
            function.metric_throttles(period=t.period, statistic="Sum"),
            t.function_throttles,
            f"function throttles >= {t.function_throttles} in {self._period_text}",
            "Raise reserved concurrency or lower max concurrency / parallelization.",
        )

    def dead_letters(self, key: str, queue: sqs.IQueue) -> None:
        """Messages waiting in a DLQ or failure queue."""
        if not self.monitoring.alarms:  # no metric objects to build either
            return
        t = self.thresholds
        self._add(
            f"{key}Messages",
            queue.metric_approximate_number_of_messages_visible(
                period=t.period, statistic="Maximum"
            ),
            t.dead_letter_messages,
            f"dead-letter messages >= {t.dead_letter_messages}",
            "Records were given up on: inspect the messages, fix, and redrive them.",
        )

    def failure_deliveries(self, key: str, mapping: lambda_.IEventSourceMapping) -> None:
        """Records a stream mapping sent to its on-failure destination (a bucket: no
        queue depth to watch), from its ``OnFailureDestinationDeliveredEventCount``."""
        if not self.monitoring.alarms:  # no metric objects to build either
            return
        t = self.thresholds
        self._add(
            key,
            mapping_metric(mapping, "OnFailureDestinationDeliveredEventCount").with_(
                period=t.period
            ),
            t.dead_letter_messages,
            f"records sent to the failure destination >= {t.dead_letter_messages} "
            f"in {self._period_text}",
            "Records were given up on: read them (payload included) from the failure "
            "bucket, fix, and replay them.",
            first_period=True,
        )

    def dropped_records(self, key: str, mapping: lambda_.IEventSourceMapping) -> None:
        """Records a stream mapping gave up on and could not deliver to its on-failure
        destination (``DroppedEventCount``): lost, unless the stream still holds them."""
        if not self.monitoring.alarms:  # no metric objects to build either
            return
        t = self.thresholds
        self._add(
            key,
            mapping_metric(mapping, "DroppedEventCount").with_(period=t.period),
            t.dropped_records,
            f"records dropped (not delivered to the failure destination) >= "
            f"{t.dropped_records} in {self._period_text}",
            "Check the function's DestinationDeliveryFailures and its role's access to the "
            "destination; read the records back from the stream before its retention ends.",
            first_period=True,
        )

    def queue_age(self, key: str, queue: sqs.IQueue, delay: cdk.Duration | None) -> None:
        """Age of the oldest message in a processor queue, beyond its delay."""
        if not self.monitoring.alarms:  # no metric objects to build either
            return
        t = self.thresholds
        limit = v.duration_fact(t.queue_oldest_message, "to_seconds") + (
            v.duration_fact(delay, "to_seconds") if delay else 0
        )
        self._add(
            f"{key}OldestMessage",
            queue.metric_approximate_age_of_oldest_message(period=t.period, statistic="Maximum"),
            limit,
            f"oldest message age >= {limit:g} s",
            "The processor falls behind its queue: check its errors and max concurrency.",
        )

    def search_domain(self, key: str, domain: opensearch.IDomain) -> None:
        """OpenSearch cluster health: red, yellow, and index writes blocked (any is bad)."""
        if not self.monitoring.alarms:  # no metric objects to build either
            return
        t = self.thresholds
        checks = [
            ("ClusterRed", domain.metric_cluster_status_red, "cluster status red",
             "A primary shard is unassigned: searches miss data and writes fail."),
            ("ClusterYellow", domain.metric_cluster_status_yellow, "cluster status yellow",
             "Replica shards are unassigned: add nodes or lower the replica count."),
            ("WritesBlocked", domain.metric_cluster_index_writes_blocked, "index writes blocked",
             "The cluster refuses writes (storage or memory pressure): the indexer fails."),
        ]
        for suffix, metric, what, todo in checks:
            self._add(f"{key}{suffix}", metric(period=t.period, statistic="Maximum"), 1, what, todo)

    def topic(self, key: str, topic: sns.ITopic) -> None:
        """Failed SNS deliveries (to SQS, after SNS's own retries they go to the DLQ)."""
        if not self.monitoring.alarms:  # no metric objects to build either
            return
        t = self.thresholds
        self._add(
            f"{key}NotificationsFailed",
            topic.metric_number_of_notifications_failed(period=t.period, statistic="Sum"),
            t.notifications_failed,
            f"SNS notifications failed >= {t.notifications_failed} in "
            f"{self._period_text}",
            "Check the subscription DLQ and the queues' policies and keys.",
        )


class DashboardSource(Protocol):
    """A pattern that can lay out its part of a dashboard, one row per flow stage."""

    def dashboard_rows(self) -> list[list[cloudwatch.IWidget]]: ...


class StreamDashboard(Construct):
    """One CloudWatch dashboard for a table and the patterns reading its stream.

    Rows follow the data: the table's writes first, then each pattern's rows (stream
    handler → queues → DLQs).

    Parameters
    ----------
    table
        The source table. Required.
    patterns
        The patterns to show (each has ``dashboard_rows()``). At least one.
    dashboard_name
        Default: generated by CloudFormation.

    Attributes
    ----------
    dashboard
        The ``cloudwatch.Dashboard``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.ITable,
        patterns: Sequence[DashboardSource],
        dashboard_name: str | None = None,
    ) -> None:
        v.check_type("StreamDashboard", "table", table, v.ITABLE, optional=False)
        v.check_list("StreamDashboard", "patterns", patterns, object, optional=False)
        v.check_type("StreamDashboard", "dashboard_name", dashboard_name, str)
        super().__init__(scope, id)
        if not patterns:
            raise ValueError("patterns must list at least one pattern, got []")
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Table writes (consumed WCU)",
                left=[table.metric_consumed_write_capacity_units(statistic="Sum")],
                width=24,
            )
        )
        for pattern in patterns:
            for row in pattern.dashboard_rows():
                self.dashboard.add_widgets(*row)
