"""Small hand-written stacks for the StreamPatternsChecks tests, plain aws-cdk-lib only.

Each rule has a failing stack (``<Rule>-Fail``) and a passing one (``<Rule>-Pass``);
:func:`build` puts them all in one app, so the suite pays for one synth.
"""

from __future__ import annotations

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_cloudwatch_actions as cw_actions
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_iam as iam
import aws_cdk.aws_kinesis as kinesis
import aws_cdk.aws_kms as kms
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_event_sources as sources
import aws_cdk.aws_logs as logs
import aws_cdk.aws_opensearchservice as opensearch
import aws_cdk.aws_pipes as pipes
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sqs as sqs
from constructs import Construct

IMPORTED_STREAM = "arn:aws:dynamodb:us-east-1:111122223333:table/Orders/stream/2024-01-01T00:00:00.000"


def function(scope: Construct, id: str, **kwargs) -> lambda_.Function:
    return lambda_.Function(
        scope,
        id,
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        **kwargs,
    )


def table(scope: Construct, id: str = "Table") -> dynamodb.Table:
    return dynamodb.Table(
        scope,
        id,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
    )


def safe_stream_source(table_: dynamodb.ITable, failures: sqs.IQueue) -> sources.DynamoEventSource:
    return sources.DynamoEventSource(
        table_,
        starting_position=lambda_.StartingPosition.TRIM_HORIZON,
        retry_attempts=3,
        max_record_age=cdk.Duration.hours(1),
        on_failure=sources.SqsDlq(failures),
        report_batch_item_failures=True,
    )


# -- DDB1: readers per stream ---------------------------------------------------------------


class ReadersFail(cdk.Stack):
    """Three readers on one table's stream: two event source mappings and a pipe."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.table = table(self)
        failures = sqs.Queue(self, "Failures")
        for name in ("First", "Second"):
            function(self, name).add_event_source(safe_stream_source(self.table, failures))
        role = iam.Role(self, "PipeRole", assumed_by=iam.ServicePrincipal("pipes.amazonaws.com"))
        pipes.CfnPipe(
            self,
            "Pipe",
            role_arn=role.role_arn,
            source=self.table.table_stream_arn,
            target=failures.queue_arn,
        )


class ReadersImported(cdk.Stack):
    """Three readers on an imported stream ARN: every reader is flagged."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        imported = dynamodb.Table.from_table_attributes(
            self, "Orders", table_name="Orders", table_stream_arn=IMPORTED_STREAM
        )
        failures = sqs.Queue(self, "Failures")
        for name in ("First", "Second", "Third"):
            function(self, name).add_event_source(safe_stream_source(imported, failures))


class ReadersTable(cdk.Stack):
    """A table whose readers live in another stack (ReadersCrossStack)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.table = table(self)


class ReadersCrossStack(cdk.Stack):
    """Three readers on ReadersTable's stream, through Fn::ImportValue."""

    def __init__(self, scope: Construct, id: str, *, source: dynamodb.ITable) -> None:
        super().__init__(scope, id)
        failures = sqs.Queue(self, "Failures")
        for name in ("First", "Second", "Third"):
            function(self, name).add_event_source(safe_stream_source(source, failures))


class ReadersPass(cdk.Stack):
    """Two readers on one stream: the most the quota allows."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        source = table(self)
        failures = sqs.Queue(self, "Failures")
        for name in ("First", "Second"):
            function(self, name).add_event_source(safe_stream_source(source, failures))


# -- ESM1-4: stream event source mappings ---------------------------------------------------


class MappingFail(cdk.Stack):
    """A DynamoDB and a Kinesis mapping with every default: infinite, no destination."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        reader = function(self, "Reader")
        lambda_.CfnEventSourceMapping(
            self,
            "DynamoMapping",
            function_name=reader.function_name,
            event_source_arn=table(self).table_stream_arn,
            starting_position="TRIM_HORIZON",
        )
        lambda_.CfnEventSourceMapping(
            self,
            "KinesisMapping",
            function_name=reader.function_name,
            event_source_arn=kinesis.Stream(self, "Stream").stream_arn,
            starting_position="LATEST",
            maximum_retry_attempts=-1,
            bisect_batch_on_function_error=False,
        )


class MappingPass(cdk.Stack):
    """Bounded retries and age, an on-failure queue, partial batch responses; and an
    SQS mapping, which the stream rules leave alone."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        reader = function(self, "Reader", timeout=cdk.Duration.seconds(10))
        reader.add_event_source(safe_stream_source(table(self), sqs.Queue(self, "Failures")))
        bisecting = function(self, "Bisecting")
        bisecting.add_event_source(
            sources.KinesisEventSource(
                kinesis.Stream(self, "Stream"),
                starting_position=lambda_.StartingPosition.LATEST,
                retry_attempts=2,
                max_record_age=cdk.Duration.minutes(5),
                bisect_batch_on_error=True,
                on_failure=sources.SqsDlq(sqs.Queue(self, "KinesisFailures")),
            )
        )
        reader.add_event_source(
            sources.SqsEventSource(sqs.Queue(self, "Work", visibility_timeout=cdk.Duration.minutes(1)))
        )


# -- SNS1: alarm topics ---------------------------------------------------------------------


def alarm(scope: Construct, id: str, topic: sns.ITopic) -> cloudwatch.Alarm:
    metric = cloudwatch.Metric(namespace="Fixture", metric_name=id)
    created = metric.create_alarm(scope, id, threshold=1, evaluation_periods=1)
    created.add_alarm_action(cw_actions.SnsAction(topic))
    return created


class AlarmsFail(cdk.Stack):
    """Three topics CloudWatch cannot publish to, each for one reason."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.managed = sns.Topic(
            self,
            "ManagedKeyTopic",
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
        )
        self.ungranted = sns.Topic(self, "UngrantedKeyTopic", master_key=kms.Key(self, "Key"))
        self.tls_only = sns.Topic(self, "TlsOnlyTopic", enforce_ssl=True)
        for name, topic in (
            ("ManagedKeyAlarm", self.managed),
            ("UngrantedKeyAlarm", self.ungranted),
            ("TlsOnlyAlarm", self.tls_only),
        ):
            alarm(self, name, topic)


class AlarmsPass(cdk.Stack):
    """A customer managed key and a topic policy that both let CloudWatch in; and a
    plain topic (SNS's default policy admits CloudWatch)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        key = kms.Key(self, "Key", enable_key_rotation=True)
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[cloudwatch_principal],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
            )
        )
        topic = sns.Topic(self, "Topic", master_key=key, enforce_ssl=True)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[cloudwatch_principal],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        alarm(self, "Alarm", topic)
        alarm(self, "PlainAlarm", sns.Topic(self, "PlainTopic"))


# -- SQS1-4: Lambda-polled queues -----------------------------------------------------------


class QueuesFail(cdk.Stack):
    """maxReceiveCount 3, visibility 2 min for a 1 min function, a DLQ keeping messages
    as long as its source, and max concurrency 5 over a reserved 2."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.queue = sqs.Queue(
            self,
            "Work",
            visibility_timeout=cdk.Duration.minutes(2),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=3, queue=sqs.Queue(self, "WorkDlq")
            ),
        )
        self.worker = function(
            self, "Worker", timeout=cdk.Duration.minutes(1), reserved_concurrent_executions=2
        )
        self.worker.add_event_source(sources.SqsEventSource(self.queue, max_concurrency=5))


class QueuesPass(cdk.Stack):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        queue = sqs.Queue(
            self,
            "Work",
            visibility_timeout=cdk.Duration.seconds(60),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=5,
                queue=sqs.Queue(self, "WorkDlq", retention_period=cdk.Duration.days(14)),
            ),
        )
        worker = function(
            self, "Worker", timeout=cdk.Duration.seconds(10), reserved_concurrent_executions=10
        )
        worker.add_event_source(sources.SqsEventSource(queue, max_concurrency=5))


# -- S31: lifecycle transitions of small objects -----------------------------------------


class BucketsFail(cdk.Stack):
    """Glacier IR with the default minimum size; Standard-IA with varies_by_storage_class
    (still 128 KB); and a Lambda on-failure bucket (small by construction)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        after_90_days = cdk.Duration.days(90)
        s3.Bucket(
            self,
            "Archive",
            lifecycle_rules=[
                s3.LifecycleRule(
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=after_90_days,
                        )
                    ]
                )
            ],
        )
        s3.Bucket(
            self,
            "Varies",
            transition_default_minimum_object_size=s3.TransitionDefaultMinimumObjectSize.VARIES_BY_STORAGE_CLASS,
            lifecycle_rules=[
                s3.LifecycleRule(
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=after_90_days,
                        )
                    ]
                )
            ],
        )
        failures = s3.Bucket(
            self,
            "Failures",
            lifecycle_rules=[
                s3.LifecycleRule(
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER, transition_after=after_90_days
                        )
                    ]
                )
            ],
        )
        function(self, "Reader").add_event_source(
            sources.DynamoEventSource(
                table(self),
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                retry_attempts=3,
                max_record_age=cdk.Duration.hours(1),
                on_failure=sources.S3OnFailureDestination(failures),
                report_batch_item_failures=True,
            )
        )


class BucketsPass(cdk.Stack):
    """Glacier with varies_by_storage_class; a size filter that states the intent; and a
    bucket that only expires objects."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        after_90_days = cdk.Duration.days(90)
        s3.Bucket(
            self,
            "Glacier",
            transition_default_minimum_object_size=s3.TransitionDefaultMinimumObjectSize.VARIES_BY_STORAGE_CLASS,
            lifecycle_rules=[
                s3.LifecycleRule(
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER, transition_after=after_90_days
                        )
                    ]
                )
            ],
        )
        s3.Bucket(
            self,
            "Filtered",
            lifecycle_rules=[
                s3.LifecycleRule(
                    object_size_greater_than=1024 * 1024,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=after_90_days,
                        )
                    ],
                )
            ],
        )
        s3.Bucket(self, "Expiring", lifecycle_rules=[s3.LifecycleRule(expiration=after_90_days)])


# -- OS1: OpenSearch log policy order -------------------------------------------------------


def domain_with_logs(scope: Construct, id: str) -> tuple[opensearch.CfnDomain, logs.LogGroup]:
    group = logs.LogGroup(scope, f"{id}Logs")
    domain = opensearch.CfnDomain(
        scope,
        id,
        log_publishing_options={
            "ES_APPLICATION_LOGS": opensearch.CfnDomain.LogPublishingOptionProperty(
                cloud_watch_logs_log_group_arn=group.log_group_arn, enabled=True
            )
        },
    )
    return domain, group


def log_policy(scope: Construct, id: str, group: logs.LogGroup) -> logs.ResourcePolicy:
    return logs.ResourcePolicy(
        scope,
        id,
        policy_statements=[
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("es.amazonaws.com")],
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[group.log_group_arn],
            )
        ],
    )


class SearchFail(cdk.Stack):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        _, group = domain_with_logs(self, "Domain")
        log_policy(self, "LogsPolicy", group)


class SearchPass(cdk.Stack):
    """The domain waits for its policy; another domain's stack has no policy to wait for."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        domain, group = domain_with_logs(self, "Domain")
        domain.node.add_dependency(log_policy(self, "LogsPolicy", group))


class SearchNoPolicy(cdk.Stack):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        domain_with_logs(self, "Domain")


# -- acknowledgments ----------------------------------------------------------------------


class Acknowledged(cdk.Stack):
    """QueuesFail's findings, each acknowledged in one of the ways the CDK records them."""

    REASONS = {
        "StreamPatterns-SQS1": "the handler is idempotent and retries itself; 3 receives are enough here",
        "StreamPatterns-SQS2": "acknowledged on the stack: every queue here is drained by a short function",
        "StreamPatterns-SQS3": "acknowledged in the plugin's namespace, as the validation report suggests",
        "StreamPatterns-SQS4": "acknowledged on the function, the resource the finding names",
    }

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        queue = sqs.Queue(
            self,
            "Work",
            visibility_timeout=cdk.Duration.minutes(2),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=3, queue=sqs.Queue(self, "WorkDlq")
            ),
        )
        worker = function(
            self, "Worker", timeout=cdk.Duration.minutes(1), reserved_concurrent_executions=2
        )
        worker.add_event_source(sources.SqsEventSource(queue, max_concurrency=5))
        reasons = self.REASONS
        acknowledge(queue, "StreamPatterns-SQS1", reasons["StreamPatterns-SQS1"])
        acknowledge(self, "StreamPatterns-SQS2", reasons["StreamPatterns-SQS2"])
        acknowledge(
            queue.dead_letter_queue.queue,
            "StreamPatterns::StreamPatterns-SQS3",
            reasons["StreamPatterns-SQS3"],
        )
        acknowledge(worker, "StreamPatterns-SQS4", reasons["StreamPatterns-SQS4"])


def acknowledge(construct: Construct, rule: str, reason: str) -> None:
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def build(app: cdk.App) -> cdk.App:
    """Every fixture stack in ``app``."""
    ReadersFail(app, "Readers-Fail")
    ReadersImported(app, "Readers-Imported")
    ReadersCrossStack(app, "Readers-CrossStack", source=ReadersTable(app, "Readers-Table").table)
    ReadersPass(app, "Readers-Pass")
    MappingFail(app, "Mapping-Fail")
    MappingPass(app, "Mapping-Pass")
    AlarmsFail(app, "Alarms-Fail")
    AlarmsPass(app, "Alarms-Pass")
    QueuesFail(app, "Queues-Fail")
    QueuesPass(app, "Queues-Pass")
    BucketsFail(app, "Buckets-Fail")
    BucketsPass(app, "Buckets-Pass")
    SearchFail(app, "Search-Fail")
    SearchPass(app, "Search-Pass")
    SearchNoPolicy(app, "Search-NoPolicy")
    Acknowledged(app, "Acknowledged")
    return app
