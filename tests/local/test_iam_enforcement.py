"""IAM enforced on the local cloud: a missing grant fails locally as it would in AWS."""

from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sns_subscriptions as subscriptions
import aws_cdk.aws_sqs as sqs

from ddb_stream_patterns import (
    AggregateCounter,
    FailureDestination,
    SimpleController,
    StreamOptions,
    StreamTable,
)
from ddb_stream_patterns.local.deployer import QUEUE_DENIED_TAG, QUEUE_POLICY_TAG
from ddb_stream_patterns.local.pollers import Pollers
from ddb_stream_patterns.local.runner import RunReport, _denied, _sns_denied
from tests.support import REPO


class NoGrantStack(cdk.Stack):
    """The simple example (orders -> status notifier -> SNS), optionally without its grant."""

    def __init__(self, scope, id, *, grant: bool):
        super().__init__(scope, id)
        key = dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING)
        self.table = StreamTable(self, "Orders", partition_key=key)
        self.topic = sns.Topic(self, "StatusNotifications")
        self.controller = SimpleController(
            self, "StatusNotifier", table=self.table,
            code=lambda_.Code.from_asset(str(REPO / "examples" / "handlers" / "status_notifier")),
            handler="index.handler", retry_attempts=1,
            function_options=lambda_.FunctionOptions(
                environment={"TOPIC_ARN": self.topic.topic_arn}),
            failure_destination=FailureDestination.sqs(),
        )
        if grant:
            self.topic.grant_publish(self.controller.function)


def _change_status(cloud, deployment, stack):
    ddb = cloud.client("dynamodb")
    table = deployment.by_path(f"{stack}/Orders").physical_id
    ddb.put_item(TableName=table, Item={"orderId": {"S": "o-1"}, "status": {"S": "new"}})
    ddb.update_item(TableName=table, Key={"orderId": {"S": "o-1"}},
                    UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": "shipped"}})
    pollers = Pollers(deployment.mappings, cloud.client)
    pollers.run_until_idle(timeout=60)
    [mapping] = deployment.mappings
    return mapping


def test_missing_grant_publish_fails_with_access_denied(local_cloud, deploy_app):
    stack = NoGrantStack(cdk.App(), "NoGrant", grant=False)
    deployment = deploy_app(stack.node.root)
    assert local_cloud.enforce_iam
    roles = [r for r in deployment.resources if r.type == "AWS::IAM::Role"]
    assert roles and all(r.status == "enforced" for r in roles)
    assert " enforced, " in deployment.summary()
    mapping = _change_status(local_cloud, deployment, "NoGrant")
    topic = deployment.topics[next(iter(deployment.topics))]
    assert mapping.function.last_denied.startswith("AuthorizationError: User: ")
    # The run summary lists the denial (runner's report section).
    [key] = [k for k, f in deployment.functions.items() if f is mapping.function]
    report = RunReport("", [], {}, {}, denied={key: (mapping.function.denied,
                                                     mapping.function.last_denied)})
    section = _denied(report)
    assert "Denied by IAM" in section and f"{key}: " in section
    assert f"sns:Publish on resource: {topic}" in section

    stats = mapping.stats
    assert mapping.function.denied >= 2  # the first attempt and its retry
    # The handler reports the record as a batch item failure; its log shows the error.
    assert stats.failed_attempts >= 2
    [message, *_] = [line for line in mapping.function.logs if "AuthorizationError" in line]
    assert ("is not authorized to perform: sns:Publish on resource: " + topic
            + " because no identity-based policy allows the sns:Publish action") in message
    # After its retries the record went to the failure destination.
    # After its retries each record (the insert and the status change, both notified)
    # went to the failure destination.
    assert stats.sent_to_failure_destination == 2
    sqs = local_cloud.client("sqs")
    dlq = deployment.queues[next(k for k in deployment.queues if "FailureQueue" in k)]
    failed = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert len(failed) == 2
    assert {json.loads(m["Body"])["requestContext"]["condition"] for m in failed} == {
        "RetryAttemptsExhausted"}


def test_with_the_grant_it_publishes(local_cloud, deploy_app):
    stack = NoGrantStack(cdk.App(), "WithGrant", grant=True)
    deployment = deploy_app(stack.node.root)
    mapping = _change_status(local_cloud, deployment, "WithGrant")
    assert mapping.stats.succeeded >= 1
    assert (mapping.stats.errors, mapping.function.denied) == (0, 0)
    assert mapping.stats.sent_to_failure_destination == 0


def test_enforce_iam_false_is_the_old_behaviour(ddb_local, moto_server):
    from ddb_stream_patterns.local import LocalCloud
    from ddb_stream_patterns.local.deployer import deploy

    stack = NoGrantStack(cdk.App(), "NoGrantOff", grant=False)
    assembly = stack.node.root.synth()
    with LocalCloud(dynamodb=ddb_local, moto=moto_server, enforce_iam=False) as cloud, \
            deploy(cloud, assembly.directory, name_prefix="off-") as deployment:
        roles = [r for r in deployment.resources if r.type == "AWS::IAM::Role"]
        assert roles and all(r.status == "skipped" for r in roles)
        assert "enforced" not in deployment.summary()
        mapping = _change_status(cloud, deployment, "NoGrantOff")
        assert mapping.stats.succeeded == 2  # published without the grant
        assert (mapping.function.denied, mapping.stats.sent_to_failure_destination) == (0, 0)


class CounterStack(cdk.Stack):
    def __init__(self, scope, id):
        super().__init__(scope, id)
        key = dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING)
        self.table = StreamTable(self, "Orders", partition_key=key)
        self.counter = AggregateCounter(self, "PerList", table=self.table,
                                        group_attribute="list",
                                        stream_options=StreamOptions(retry_attempts=1))


def test_counter_whose_role_cannot_write_its_table_is_denied(local_cloud, deploy_app):
    """TransactWriteItems is authorized per item: UpdateItem/PutItem on the counter table."""
    deployment = deploy_app(CounterStack(cdk.App(), "CounterNoWrite").node.root)
    [function] = deployment.functions.values()
    [role] = [r for r in deployment.resources if r.type == "AWS::IAM::Role"
              and "PerList" in r.logical_id]
    assert deployment.role_policies[role.physical_id]  # the construct's grants were read
    # The role as if the construct had not granted writes to its counter table.
    deployment.role_policies[role.physical_id] = [{"Statement": [{
        "Effect": "Allow", "NotAction": ["dynamodb:UpdateItem", "dynamodb:PutItem"],
        "Resource": "*"}]}]
    ddb = local_cloud.client("dynamodb")
    orders = deployment.by_path("CounterNoWrite/Orders").physical_id
    ddb.put_item(TableName=orders, Item={"orderId": {"S": "o-1"}, "list": {"S": "l-1"}})
    Pollers(deployment.mappings, local_cloud.client).run_until_idle(timeout=60)

    counts = deployment.by_path("CounterNoWrite/PerList/CounterTable").physical_id
    counts_arn = ddb.describe_table(TableName=counts)["Table"]["TableArn"]
    assert function.denied >= 1
    assert function.last_denied.startswith("AccessDeniedException: User: ")
    assert f"on resource: {counts_arn} because no identity-based policy allows" in (
        function.last_denied)
    assert ddb.scan(TableName=counts)["Items"] == []  # nothing was counted
    [mapping] = deployment.mappings
    assert mapping.stats.sent_to_failure_destination == 1


class FanOutStack(cdk.Stack):
    """A topic delivering to a queue; ``queue_policy=False`` removes the queue policy."""

    def __init__(self, scope, id, *, queue_policy: bool):
        super().__init__(scope, id)
        self.topic = sns.Topic(self, "Events")
        self.queue = sqs.Queue(self, "Processor")
        self.topic.add_subscription(subscriptions.SqsSubscription(self.queue,
                                                                  raw_message_delivery=True))
        if not queue_policy:
            assert self.queue.node.try_remove_child("Policy")


def _publish_and_receive(cloud, deployment, stack):
    topic = deployment.by_path(f"{stack}/Events/Resource").physical_id
    cloud.client("sns").publish(TopicArn=topic, Message="hello")
    url = deployment.by_path(f"{stack}/Processor/Resource").physical_id
    sqs_client = cloud.client("sqs")
    received = sqs_client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    tags = sqs_client.list_queue_tags(QueueUrl=url).get("Tags", {})
    return topic, [m["Body"] for m in received], tags


def test_sns_delivers_to_a_queue_whose_policy_allows_it(local_cloud, deploy_app):
    deployment = deploy_app(FanOutStack(cdk.App(), "FanOut", queue_policy=True).node.root)
    [policy] = [r for r in deployment.resources if r.type == "AWS::SQS::QueuePolicy"]
    assert policy.status == "enforced"
    _, bodies, tags = _publish_and_receive(local_cloud, deployment, "FanOut")
    assert bodies == ["hello"]
    assert tags.get(QUEUE_POLICY_TAG) == "enforced" and QUEUE_DENIED_TAG not in tags
    assert _sns_denied(local_cloud, deployment) == {}


def test_sns_delivery_fails_without_the_queue_policy(local_cloud, deploy_app):
    deployment = deploy_app(FanOutStack(cdk.App(), "FanOutNoPolicy", queue_policy=False).node.root)
    assert not [r for r in deployment.resources if r.type == "AWS::SQS::QueuePolicy"]
    topic, bodies, tags = _publish_and_receive(local_cloud, deployment, "FanOutNoPolicy")
    assert bodies == []  # SNS dropped it: no queue policy allows sns.amazonaws.com
    assert tags[QUEUE_DENIED_TAG] == f"1 {topic}"
    # The run summary names the queue and the topic.
    found = _sns_denied(local_cloud, deployment)
    [key] = found
    section = _denied(RunReport("", [], {}, {}, sns_denied=found))
    assert f"{key}: 1 SNS delivery(ies) refused by the queue policy; last from {topic}" in section
