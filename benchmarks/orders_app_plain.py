"""``orders_app.py``'s topology written with plain aws-cdk-lib L2s: the twin it is timed against.

The same resources as the user app (``tests/benchmarks/test_orders_twin.py`` checks the
count per resource type, so the twin cannot be cheaper by leaving something out) and the
same settings wherever an L2 prop gives them: a stream table with TTL, PITR and an AWS
managed key; six functions (ARM64, 256 MB, a log group kept a month, a role of their
own); four stream event sources with the safe defaults (bisect, 10 retries, 20 hours,
partial batch responses, an S3 on-failure bucket with EventCount metrics); an SNS topic
with two filtered raw SQS subscriptions, a subscription DLQ, processor queues with DLQs;
a claim-check and an archive bucket; a counter table; two runtime layers; TLS-only
policies everywhere; an alarm topic with its customer managed key, and the 30 alarms.

Written as a user would write it with aws-cdk-lib alone: helpers for what repeats, no
lazy values, no validation of our own. Used by ``bench_synth.py``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_cloudwatch_actions as cw_actions
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_iam as iam
import aws_cdk.aws_kms as kms
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_event_sources as sources
import aws_cdk.aws_logs as logs
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sns_subscriptions as subs
import aws_cdk.aws_sqs as sqs
from constructs import Construct

REPO = Path(__file__).resolve().parents[1]
HANDLERS = REPO / "examples" / "handlers"
RUNTIME = REPO / "lambda_src" / "ddb_stream_runtime"
STACK_NAME = "OrdersPlain"
RETAIN = cdk.RemovalPolicy.RETAIN
FIVE_MINUTES = cdk.Duration.minutes(5)
LAYER_RUNTIMES = [
    lambda_.Runtime.PYTHON_3_11,
    lambda_.Runtime.PYTHON_3_12,
    lambda_.Runtime.PYTHON_3_13,
    lambda_.Runtime.PYTHON_3_14,
]


@cache
def staged_runtime(prefix: str) -> str:
    """The runtime package copied under ``<tmp>/<prefix>`` (a layer needs ``python/``)."""
    root = Path(tempfile.mkdtemp(prefix="orders-plain-runtime-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
    shutil.copytree(RUNTIME, root / prefix / RUNTIME.name, ignore=ignore)
    return str(root)


class OrdersPlainStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        # alarm topic: CloudWatch publishes to it, so a customer managed key it may use
        key = kms.Key(self, "AlarmsKey", enable_key_rotation=True, removal_policy=RETAIN)
        key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],
            )
        )
        alarm_topic = sns.Topic(self, "AlarmsTopic", master_key=key, enforce_ssl=True)
        alarm_topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[alarm_topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        self.alarm_action = cw_actions.SnsAction(alarm_topic)

        self.table = self.stream_table("Orders", "orderId")
        self.runtime_code = lambda_.Code.from_asset(staged_runtime(""))

        # SimpleController with a filter
        notifier_layer = self.layer("ShippedNotifierRuntimeLayer")
        self.stream_reader(
            "ShippedNotifier",
            code=lambda_.Code.from_asset(str(HANDLERS / "status_notifier")),
            handler="index.handler",
            layers=[notifier_layer],
            filters=[
                lambda_.FilterCriteria.filter(
                    {
                        "eventName": lambda_.FilterRule.is_equal("MODIFY"),
                        "dynamodb": {
                            "NewImage": {"status": {"S": lambda_.FilterRule.is_equal("shipped")}}
                        },
                    }
                )
            ],
        )

        # ComplexController: router -> topic -> two filtered queues -> processors
        topic = sns.Topic(
            self,
            "OrderEventsTopic",
            enforce_ssl=True,
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns"),
        )
        self.alarm(
            "OrderEventsTopicNotificationsFailedAlarm",
            topic.metric_number_of_notifications_failed(period=FIVE_MINUTES, statistic="Sum"),
        )
        subscription_dlq = self.queue("OrderEventsSubscriptionDlq")
        claim_check = self.bucket(
            "OrderEventsClaimCheckBucket",
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(15))],
        )
        events_layer = self.layer("OrderEventsRuntimeLayer")
        router, _ = self.stream_reader(
            "OrderEventsController",
            code=self.runtime_code,
            handler="ddb_stream_runtime.router.handler",
            timeout=cdk.Duration.seconds(60),
            environment={
                "CLAIM_CHECK_BUCKET": claim_check.bucket_name,
                "FIFO": "false",
                "ROUTING_ATTRIBUTES": '["status"]',
                "TOPIC_ARN": topic.topic_arn,
            },
        )
        topic.grant_publish(router)
        claim_check.grant_put(router, "claim-check/*")
        code = lambda_.Code.from_asset(str(HANDLERS / "customer_events"))
        routes = {
            "Confirmation": ("index.welcome_handler", {"eventName": ["INSERT"]}),
            "Cancellation": (
                "index.notify_handler",
                {"eventName": ["MODIFY"], "status": ["cancelled"]},
            ),
        }
        for name, (handler, policy) in routes.items():
            dlq = self.queue(f"OrderEvents{name}Dlq")
            queue = self.queue(
                f"OrderEvents{name}Queue",
                retention_period=cdk.Duration.days(4),
                visibility_timeout=cdk.Duration.seconds(180),
                dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5),
            )
            topic.add_subscription(
                subs.SqsSubscription(
                    queue,
                    raw_message_delivery=True,
                    dead_letter_queue=subscription_dlq,
                    filter_policy={
                        attr: sns.SubscriptionFilter.string_filter(allowlist=values)
                        for attr, values in policy.items()
                    },
                )
            )
            function = self.function(
                f"OrderEvents{name}Function",
                code=code,
                handler=handler,
                layers=[events_layer],
                environment={"CLAIM_CHECK_BUCKET": claim_check.bucket_name},
            )
            function.add_event_source(
                sources.SqsEventSource(queue, batch_size=10, report_batch_item_failures=True)
            )
            claim_check.grant_read(function, "claim-check/*")
            self.function_alarms(function, iterator_age=False)
            self.alarm(
                f"OrderEvents{name}QueueOldestMessageAlarm",
                queue.metric_approximate_age_of_oldest_message(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
                threshold=900,
            )

        # AggregateCounter
        counter_table = self.table_v2(
            "OrdersPerCustomerCounterTable", "pk", dynamodb.StreamViewType.NEW_AND_OLD_IMAGES
        )
        counter, _ = self.stream_reader(
            "OrdersPerCustomer",
            code=self.runtime_code,
            handler="ddb_stream_runtime.counter.handler",
            environment={
                "COUNTER_PARTITION_KEY": "pk",
                "COUNTER_TABLE": counter_table.table_name,
                "COUNT_ATTRIBUTE": "count",
                "GROUP_ATTRIBUTE": "customerId",
                "MARKER_TTL_ATTRIBUTE": "expiresAt",
            },
        )
        counter_table.grant(counter, "dynamodb:PutItem", "dynamodb:UpdateItem")

        # TtlArchiver
        archive = self.bucket("ExpiredOrdersArchiveBucket")
        archiver, _ = self.stream_reader(
            "ExpiredOrders",
            code=self.runtime_code,
            handler="ddb_stream_runtime.archiver.handler",
            environment={"ARCHIVE_BUCKET": archive.bucket_name, "ARCHIVE_PREFIX": "archive/"},
            filters=[
                lambda_.FilterCriteria.filter(
                    {
                        "eventName": lambda_.FilterRule.is_equal("REMOVE"),
                        "userIdentity": {
                            "type": lambda_.FilterRule.is_equal("Service"),
                            "principalId": lambda_.FilterRule.is_equal("dynamodb.amazonaws.com"),
                        },
                    }
                )
            ],
        )
        archive.grant_put(archiver, "archive/*")

    # -- helpers a user would write ------------------------------------------------
    def table_v2(
        self, id: str, key: str, view: dynamodb.StreamViewType, **extra
    ) -> dynamodb.TableV2:
        return dynamodb.TableV2(
            self,
            id,
            partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
            dynamo_stream=view,
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            removal_policy=RETAIN,
            **extra,
        )

    def stream_table(self, id: str, key: str) -> dynamodb.TableV2:
        return self.table_v2(id, key, dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)

    def layer(self, id: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            id,
            code=lambda_.Code.from_asset(staged_runtime("python")),
            compatible_runtimes=LAYER_RUNTIMES,
            description="ddb-stream-patterns runtime: stream record model and batch processor",
        )

    def queue(self, id: str, **extra) -> sqs.Queue:
        props = {
            "encryption": sqs.QueueEncryption.SQS_MANAGED,
            "enforce_ssl": True,
            "retention_period": cdk.Duration.days(14),
            "removal_policy": RETAIN,
            **extra,
        }
        queue = sqs.Queue(self, id, **props)
        if "dead_letter_queue" not in extra:  # a queue that receives what was given up on
            self.alarm(
                f"{id}MessagesAlarm",
                queue.metric_approximate_number_of_messages_visible(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
            )
        return queue

    def bucket(self, id: str, **extra) -> s3.Bucket:
        return s3.Bucket(
            self,
            id,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RETAIN,
            **extra,
        )

    def function(
        self, id: str, *, timeout: cdk.Duration | None = None, **props
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{id}Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RETAIN
        )
        role = iam.Role(self, f"{id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        return lambda_.Function(
            self,
            id,
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            memory_size=256,
            timeout=timeout or cdk.Duration.seconds(30),
            log_group=log_group,
            role=role,
            **props,
        )

    def stream_reader(
        self, id: str, *, filters: list | None = None, **props
    ) -> tuple[lambda_.Function, s3.Bucket]:
        """A function on the orders stream with the safe defaults and an on-failure bucket
        (it keeps the records given up on), with EventCount metrics and their alarms."""
        failure_bucket = self.bucket(
            f"{id}FailureBucket",
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(90))],
        )
        function = self.function(f"{id}Function", **props)
        source = sources.DynamoEventSource(
            self.table,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=100,
            bisect_batch_on_error=True,
            retry_attempts=10,
            max_record_age=cdk.Duration.hours(20),
            parallelization_factor=1,
            report_batch_item_failures=True,
            on_failure=sources.S3OnFailureDestination(failure_bucket),
            metrics_config=lambda_.MetricsConfig(metrics=[lambda_.MetricType.EVENT_COUNT]),
            filters=filters,
        )
        function.add_event_source(source)
        for name in ("OnFailureDestinationDeliveredEventCount", "DroppedEventCount"):
            self.alarm(
                f"{id}{name}Alarm",
                cloudwatch.Metric(
                    namespace="AWS/Lambda",
                    metric_name=name,
                    dimensions_map={"EventSourceMappingUUID": source.event_source_mapping_id},
                    statistic="Sum",
                    period=FIVE_MINUTES,
                ),
            )
        self.function_alarms(function, iterator_age=True)
        return function, failure_bucket

    def function_alarms(self, function: lambda_.Function, *, iterator_age: bool) -> None:
        id = function.node.id
        self.alarm(f"{id}ErrorsAlarm", function.metric_errors(period=FIVE_MINUTES))
        self.alarm(f"{id}ThrottlesAlarm", function.metric_throttles(period=FIVE_MINUTES))
        if iterator_age:
            self.alarm(
                f"{id}IteratorAgeAlarm",
                function.metric("IteratorAge", period=FIVE_MINUTES, statistic="Maximum"),
                threshold=60_000,
            )

    def alarm(self, id: str, metric: cloudwatch.Metric, threshold: float = 1) -> None:
        alarm = metric.create_alarm(
            self,
            id,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{id}: see the runbook",
        )
        alarm.add_alarm_action(self.alarm_action)
        alarm.add_ok_action(self.alarm_action)


STACKS = {STACK_NAME: OrdersPlainStack}


def build_app(app: cdk.App | None = None) -> cdk.App:
    """Add the plain-L2 Orders stack to ``app`` (a new ``App`` by default) and return it."""
    app = app or cdk.App()
    OrdersPlainStack(app, STACK_NAME)
    return app


if __name__ == "__main__":
    build_app().synth()
