"""Example app: one stack per pattern, deployable as is (``cdk synth`` / ``cdk deploy``).

Tests import :func:`build_app` to synthesize every stack in-process.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_kms as kms
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sns as sns
from constructs import Construct

from ddb_stream_patterns import (
    AggregateCounter,
    AlarmTopic,
    ComplexController,
    KinesisSource,
    Monitoring,
    Processor,
    Route,
    Rule,
    SearchIndexer,
    SimpleController,
    StreamDashboard,
    StreamFanOut,
    StreamFilter,
    StreamTable,
    TableReplicator,
    TtlArchiver,
)

HANDLERS = Path(__file__).resolve().parent / "handlers"


def alarm_topic(stack: cdk.Stack) -> AlarmTopic:
    """One topic per stack for alarm actions that CloudWatch can publish to (customer
    managed key and topic policy that allow it; TLS-only): subscribe your on-call to its
    ``.topic``, e.g. ``add_subscription(aws_sns_subscriptions.EmailSubscription(...))``.

    Without ``alarm_topic``, ``Monitoring()`` creates the same thing once per stack.
    """
    return AlarmTopic(stack, "Alarms")


class SimpleControllerStack(cdk.Stack):
    """Orders table; a function notifies an SNS topic when an order's ``status`` changes."""

    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.table = StreamTable(
            self,
            "Orders",
            partition_key=dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiresAt",
        )
        self.topic = sns.Topic(
            self,
            "StatusNotifications",
            enforce_ssl=True,
            # SNS's AWS managed key: encrypted at rest with no key to manage. Fine for a
            # topic only IAM principals of this account publish to (the function's role);
            # never for alarm actions, which CloudWatch publishes (see alarm_topic above).
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns"),
        )
        self.controller = SimpleController(
            self,
            "StatusNotifier",
            table=self.table,
            code=lambda_.Code.from_asset(str(HANDLERS / "status_notifier")),
            handler="index.handler",
            # Only MODIFY records whose new image has a status reach the function; the
            # handler itself compares old and new status (a filter cannot).
            filters=[StreamFilter(event_names=["MODIFY"], new_image={"status": Rule.exists()})],
            function_options=lambda_.FunctionOptions(
                environment={"TOPIC_ARN": self.topic.topic_arn},
            ),
            monitoring=Monitoring(alarm_topic=alarm_topic(self)),
        )
        self.topic.grant_publish(self.controller.function)
        StreamDashboard(self, "Dashboard", table=self.table, patterns=[self.controller])


class ComplexControllerStack(cdk.Stack):
    """Customers table; three processors, each with its own queue, routing and pace."""

    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.table = StreamTable(
            self,
            "Customers",
            partition_key=dynamodb.Attribute(
                name="customerId", type=dynamodb.AttributeType.STRING
            ),
        )
        code = lambda_.Code.from_asset(str(HANDLERS / "customer_events"))
        self.controller = ComplexController(
            self,
            "CustomerEvents",
            table=self.table,
            routing_attributes=["status"],
            processors={
                "Welcome": Processor(
                    route=Route(event_names=["INSERT"]),
                    code=code,
                    handler="index.welcome_handler",
                ),
                "StatusNotifier": Processor(
                    route=Route(
                        event_names=["MODIFY"],
                        attributes={"status": sns.SubscriptionFilter.exists_filter()},
                    ),
                    code=code,
                    handler="index.notify_handler",
                    delay=cdk.Duration.minutes(5),
                    max_concurrency=2,
                ),
                "Audit": Processor(
                    route=Route(event_names=["REMOVE"]),
                    code=code,
                    handler="index.audit_handler",
                ),
            },
            monitoring=Monitoring(alarm_topic=alarm_topic(self)),
        )
        StreamDashboard(self, "Dashboard", table=self.table, patterns=[self.controller])


class DataPatternsStack(cdk.Stack):
    """A todoListTask table (ListId, TaskId) feeding the four data patterns.

    Four patterns read the stream through one ``StreamFanOut``: the stream has a single
    reader (the fan-out's router; DynamoDB throttles more than two per shard), and each
    pattern runs its usual handler on its own SQS queue, with its own DLQ and alarms.
    """

    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        key = {
            "partition_key": dynamodb.Attribute(name="ListId", type=dynamodb.AttributeType.STRING),
            "sort_key": dynamodb.Attribute(name="TaskId", type=dynamodb.AttributeType.STRING),
        }
        self.table = StreamTable(self, "TodoListTask", time_to_live_attribute="expiresAt", **key)
        monitoring = Monitoring(alarm_topic=alarm_topic(self))
        # One stream reader for the four patterns (each gets its own queue and DLQ).
        self.fan_out = StreamFanOut(
            self, "TodoListTaskFanOut", table=self.table, monitoring=monitoring
        )
        self.archiver = TtlArchiver(
            self,
            "ExpiredTasks",
            table=self.table,
            transition_to=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
            transition_after=cdk.Duration.days(90),
            monitoring=monitoring,
            source=self.fan_out,
        )
        small_batches_stay = (
            "behind the fan-out each archive object is one record: records under 128 KB stay "
            "in S3 Standard on purpose, only large items are worth a transition request"
        )
        cdk.Annotations.of(self.archiver).acknowledge_warning(
            TtlArchiver.TRANSITION_MINIMUM_WARNING, small_batches_stay
        )
        # The same finding, as StreamPatternsChecks reports it (rule S31).
        cdk.Validations.of(self.archiver).acknowledge(
            cdk.Acknowledgment(id="StreamPatterns-S31", reason=small_batches_stay)
        )
        self.counter = AggregateCounter(
            self,
            "TaskCountPerList",
            table=self.table,
            group_attribute="ListId",
            sum_of="estimate",
            monitoring=monitoring,
            source=self.fan_out,
        )
        self.indexer = SearchIndexer(
            self,
            "TaskSearch",
            table=self.table,
            index_name="tasks",
            monitoring=monitoring,
            source=self.fan_out,
        )
        self.reporting_table = StreamTable(self, "TaskReport", **key)
        self.replicator = TableReplicator(
            self,
            "TaskReporting",
            table=self.table,
            target_table=self.reporting_table,
            transform="transform:to_report_row",
            transform_code=lambda_.Code.from_asset(str(HANDLERS / "reporting")),
            monitoring=monitoring,
            source=self.fan_out,
        )
        StreamDashboard(
            self,
            "Dashboard",
            table=self.table,
            patterns=[self.fan_out, self.archiver, self.counter, self.indexer, self.replicator],
        )


class KinesisPatternsStack(cdk.Stack):
    """A todoListTask table whose changes reach three patterns through Kinesis Data Streams.

    The table writes every change to a Kinesis data stream (on-demand, encrypted,
    ``MICROSECOND`` timestamps). The counter and the replicator each read it through their
    own enhanced fan-out consumer (a dedicated 2 MB/s per shard, pushed); the TTL archiver
    reads it as a shared-throughput reader. The table's own DynamoDB stream has no reader.
    Each pattern runs its usual handler, correct on Kinesis's duplicates and cross-shard
    order (see the README, "Choosing a source").
    """

    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        key = {
            "partition_key": dynamodb.Attribute(name="ListId", type=dynamodb.AttributeType.STRING),
            "sort_key": dynamodb.Attribute(name="TaskId", type=dynamodb.AttributeType.STRING),
        }
        self.table = StreamTable(
            self, "TodoListTask", time_to_live_attribute="expiresAt", kinesis_stream=True, **key
        )
        monitoring = Monitoring(alarm_topic=alarm_topic(self))
        self.counter = AggregateCounter(
            self,
            "TaskCountPerList",
            table=self.table,
            group_attribute="ListId",
            sum_of="estimate",
            monitoring=monitoring,
            source=KinesisSource.of_table(self.table, enhanced_fan_out=True),
        )
        self.reporting_table = StreamTable(self, "TaskReport", **key)
        self.replicator = TableReplicator(
            self,
            "TaskReporting",
            table=self.table,
            target_table=self.reporting_table,
            transform="transform:to_report_row",
            transform_code=lambda_.Code.from_asset(str(HANDLERS / "reporting")),
            monitoring=monitoring,
            source=KinesisSource.of_table(self.table, enhanced_fan_out=True),
        )
        self.archiver = TtlArchiver(
            self,
            "ExpiredTasks",
            table=self.table,
            monitoring=monitoring,
            source=KinesisSource.of_table(self.table),
        )
        StreamDashboard(
            self,
            "Dashboard",
            table=self.table,
            patterns=[self.counter, self.replicator, self.archiver],
        )


def build_app(app: cdk.App | None = None) -> cdk.App:
    """Add every example stack to ``app`` (a new ``App`` by default) and return it."""
    app = app or cdk.App()
    SimpleControllerStack(app, "DdbStreamPatterns-SimpleController")
    ComplexControllerStack(app, "DdbStreamPatterns-ComplexController")
    DataPatternsStack(app, "DdbStreamPatterns-DataPatterns")
    KinesisPatternsStack(app, "DdbStreamPatterns-KinesisPatterns")
    return app


if __name__ == "__main__":
    build_app().synth()
