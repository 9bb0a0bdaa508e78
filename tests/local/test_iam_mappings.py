"""IAM on what the services do for a function: the event source mapping's own reads and
on-failure sends (the function's role), bucket policies, OpenSearch, alarm actions."""

from __future__ import annotations

import copy
import json

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_cloudwatch_actions as cw_actions
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_iam as iam
import aws_cdk.aws_kms as kms
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
import pytest

from ddb_stream_patterns import FailureDestination, SimpleController, StreamTable, TtlArchiver
from ddb_stream_patterns.local.pollers import AUTHZ_ERROR, Pollers
from ddb_stream_patterns.local.runner import RunReport, _denied
from tests.support import REPO


def _without(deployment, role_key: str, action: str) -> None:
    """Take ``action`` out of every statement of a role's policies (as if never granted)."""
    [role] = [r for r in deployment.resources if r.type == "AWS::IAM::Role"
              and role_key in r.logical_id]
    docs = copy.deepcopy(deployment.role_policies[role.physical_id])
    removed = 0
    for doc in docs:
        for statement in doc["Statement"]:
            actions = statement.get("Action")
            actions = actions if isinstance(actions, list) else [actions]
            if action in actions:
                statement["Action"] = [a for a in actions if a != action] or ["none:None"]
                removed += 1
    assert removed, f"{action} was not granted to {role.physical_id}"
    deployment.role_policies[role.physical_id] = docs


class NotifierStack(cdk.Stack):
    """A stream -> function -> SNS (not granted: every invocation fails) with an SQS
    on-failure destination (``s3=True``: the default, a bucket)."""

    def __init__(self, scope, id, *, s3: bool = False):
        super().__init__(scope, id)
        key = dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING)
        self.table = StreamTable(self, "Orders", partition_key=key)
        topic = sns.Topic(self, "StatusNotifications")
        self.controller = SimpleController(
            self, "StatusNotifier", table=self.table,
            code=lambda_.Code.from_asset(str(REPO / "examples" / "handlers" / "status_notifier")),
            handler="index.handler", retry_attempts=0,
            function_options=lambda_.FunctionOptions(environment={"TOPIC_ARN": topic.topic_arn}),
            failure_destination=None if s3 else FailureDestination.sqs(),
        )


def _write(cloud, deployment, stack, n=1):
    ddb = cloud.client("dynamodb")
    table = deployment.by_path(f"{stack}/Orders").physical_id
    for i in range(n):
        ddb.put_item(TableName=table, Item={"orderId": {"S": f"o-{i}"}, "status": {"S": "new"}})


def test_stream_mapping_whose_role_lacks_get_records_does_not_invoke(local_cloud, deploy_app):
    deployment = deploy_app(NotifierStack(cdk.App(), "NoGetRecords").node.root)
    granted = copy.deepcopy(deployment.role_policies)
    _without(deployment, "StatusNotifier", "dynamodb:GetRecords")
    [mapping] = deployment.mappings
    _write(local_cloud, deployment, "NoGetRecords")
    pollers = Pollers(deployment.mappings, local_cloud.client)
    pollers.run_until_idle(timeout=30)

    stats = mapping.stats
    assert stats.denied >= 1  # the mapping asked, as the function's role, and was refused
    assert (stats.invocations, stats.records_in) == (0, 0)  # nothing read, nothing invoked
    assert f"dynamodb:GetRecords on resource: {mapping.source_arn} because no " \
           "identity-based policy allows the dynamodb:GetRecords action" in stats.last_denied
    assert stats.state_transition_reason == AUTHZ_ERROR
    assert stats.last_processing_result.startswith("PROBLEM: (local)")
    assert "dynamodb:GetRecords" in stats.last_processing_result
    # The run summary names the mapping and the denied action.
    section = _denied(RunReport("", [], {"NoGetRecords/StatusNotifier (stream)": stats}, {}))
    assert "NoGetRecords/StatusNotifier (stream): event source mapping denied" in section
    assert "dynamodb:GetRecords on resource: " in section
    # The record was not lost: it waits on the stream until the role may read it.
    deployment.role_policies.update(granted)
    Pollers(deployment.mappings, local_cloud.client).run_until_idle(timeout=30)
    assert stats.records_in == 1 and stats.invocations >= 1


def test_on_failure_send_denied_without_send_message_is_kept(local_cloud, deploy_app, tmp_path):
    deployment = deploy_app(NotifierStack(cdk.App(), "NoSendMessage").node.root)
    _without(deployment, "StatusNotifier", "sqs:SendMessage")
    [mapping] = deployment.mappings
    # The mapping carries its Id (CloudFormation's Ref), which names S3 on-failure objects.
    [resource] = [r for r in deployment.resources if r.type == "AWS::Lambda::EventSourceMapping"]
    assert mapping.uuid == resource.physical_id and len(mapping.uuid) == 36
    _write(local_cloud, deployment, "NoSendMessage", n=2)
    undeliverable = tmp_path / "undeliverable.jsonl"
    pollers = Pollers(deployment.mappings, local_cloud.client)
    pollers[mapping.logical_id].undeliverable_path = undeliverable
    pollers.run_until_idle(timeout=30)

    stats = mapping.stats
    assert stats.invocations >= 2 and stats.failed_attempts >= 2  # no sns:Publish: it failed
    assert stats.sent_to_failure_destination == 2  # given up on after its retries
    assert stats.denied == 2  # each on-failure send was refused
    dlq_arn = mapping.on_failure_arn
    assert f"sqs:SendMessage on resource: {dlq_arn} because no identity-based policy" in (
        stats.last_denied)
    assert stats.state_transition_reason is None  # reading was fine
    # Nothing reached the queue; nothing was lost either: both are in the undeliverable log.
    dlq = deployment.queues[next(k for k in deployment.queues if "FailureQueue" in k)]
    assert local_cloud.client("sqs").receive_message(QueueUrl=dlq).get("Messages", []) == []
    lines = [json.loads(line) for line in undeliverable.read_text().splitlines()]
    assert len(lines) == 2 and pollers[mapping.logical_id].undeliverable == 2
    assert all("sqs:SendMessage" in line["error"] and line["destination"] == dlq_arn
               for line in lines)
    # The line holds what the queue would have got (metadata only) and the records.
    assert all("records" not in line["payload"] and line["records"] for line in lines)
    assert all(line["payload"]["DDBStreamBatchInfo"]["batchSize"] == len(line["records"])
               for line in lines)
    # Lambda's counts: nothing delivered, both dropped.
    assert (stats.on_failure_delivered, stats.dropped) == (0, 2)


def _failure_objects(cloud, deployment, stack: str) -> list[str]:
    bucket = deployment.by_path(f"{stack}/StatusNotifier/FailureBucket").physical_id
    return [o["Key"] for o in cloud.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_s3_on_failure_send_needs_list_bucket_too(local_cloud, deploy_app, tmp_path):
    # "For an S3 destination: s3:PutObject and s3:ListBucket": without the second, the
    # record does not reach the bucket, though s3:PutObject is granted.
    deployment = deploy_app(NotifierStack(cdk.App(), "NoListBucket", s3=True).node.root)
    _without(deployment, "StatusNotifier", "s3:ListBucket")
    [mapping] = deployment.mappings
    _write(local_cloud, deployment, "NoListBucket", n=1)
    pollers = Pollers(deployment.mappings, local_cloud.client)
    pollers[mapping.logical_id].undeliverable_path = tmp_path / "undeliverable.jsonl"
    pollers.run_until_idle(timeout=30)

    stats = mapping.stats
    assert stats.sent_to_failure_destination == 1 and stats.denied == 1
    assert f"s3:ListBucket on resource: {mapping.on_failure_arn} because no identity-based" \
        in stats.last_denied
    assert (stats.on_failure_delivered, stats.dropped) == (0, 1)
    assert _failure_objects(local_cloud, deployment, "NoListBucket") == []
    [line] = [json.loads(x) for x in (tmp_path / "undeliverable.jsonl").read_text().splitlines()]
    assert json.loads(line["payload"]["payload"])["Records"] == line["records"]


def test_s3_on_failure_send_checks_the_bucket_owner(local_cloud, deploy_app):
    # The role's S3 statements hold only for buckets of the stack's account
    # (s3:ResourceAccount): with another account there, the send is denied.
    deployment = deploy_app(NotifierStack(cdk.App(), "OtherOwner", s3=True).node.root)
    [role] = [r for r in deployment.resources if r.type == "AWS::IAM::Role"
              and "StatusNotifier" in r.logical_id]
    docs = copy.deepcopy(deployment.role_policies[role.physical_id])
    conditions = [s["Condition"]["StringEquals"] for d in docs for s in d["Statement"]
                  if "s3:ResourceAccount" in json.dumps(s.get("Condition", {}))]
    assert len(conditions) == 2  # s3:PutObject and s3:ListBucket
    for condition in conditions:
        condition["s3:ResourceAccount"] = "999999999999"
    deployment.role_policies[role.physical_id] = docs
    [mapping] = deployment.mappings
    _write(local_cloud, deployment, "OtherOwner", n=1)
    Pollers(deployment.mappings, local_cloud.client).run_until_idle(timeout=30)

    assert mapping.stats.denied == 1 and mapping.stats.dropped == 1
    assert _failure_objects(local_cloud, deployment, "OtherOwner") == []


class ArchiverStack(cdk.Stack):
    def __init__(self, scope, id, *, deny_role: bool):
        super().__init__(scope, id)
        key = dynamodb.Attribute(name="taskId", type=dynamodb.AttributeType.STRING)
        table = StreamTable(self, "Tasks", partition_key=key, time_to_live_attribute="ttl")
        self.archiver = TtlArchiver(self, "Expired", table=table)
        if deny_role:
            self.archiver.bucket.add_to_resource_policy(iam.PolicyStatement(
                effect=iam.Effect.DENY, principals=[self.archiver.function.role],
                actions=["s3:PutObject"], resources=[self.archiver.bucket.arn_for_objects("*")]))


def _ttl_event(stream_arn):
    return {"Records": [{
        "eventID": "1", "eventName": "REMOVE", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {"ApproximateCreationDateTime": 1718049960, "Keys": {"taskId": {"S": "t-1"}},
                     "OldImage": {"taskId": {"S": "t-1"}, "ttl": {"N": "1"}},
                     "SequenceNumber": "100", "SizeBytes": 20,
                     "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "eventSourceARN": stream_arn}]}


@pytest.mark.parametrize("deny_role", [False, True])
def test_bucket_policy_denying_the_role_fails_the_archiver_write(local_cloud, deploy_app,
                                                                 deny_role):
    stack = f"Archive{'Denied' if deny_role else 'Allowed'}"
    deployment = deploy_app(ArchiverStack(cdk.App(), stack, deny_role=deny_role).node.root)
    # The archive bucket (the stream mapping's failure bucket is the other one).
    archive = deployment.by_path(f"{stack}/Expired/ArchiveBucket")
    policy = deployment.by_path(f"{stack}/Expired/ArchiveBucket/Policy")
    assert (policy.type, policy.status) == ("AWS::S3::BucketPolicy", "enforced")
    bucket = archive.physical_id
    assert bucket in deployment.buckets.values()
    assert deployment.bucket_policies[bucket]  # the bucket policy (enforce_ssl, ...) was read
    [mapping] = deployment.mappings
    function = mapping.function
    function.invoke(_ttl_event(mapping.source_arn))
    objects = local_cloud.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    if not deny_role:  # the enforce_ssl deny spares the function's (TLS) calls
        assert len(objects) == 1 and function.denied == 0
        return
    assert objects == [] and function.denied >= 1
    assert function.last_denied.startswith("AccessDenied: User: ")
    assert f"s3:PutObject on resource: arn:aws:s3:::{bucket}/" in function.last_denied
    assert function.last_denied.endswith("with an explicit deny in a resource-based policy")


class AlarmStack(cdk.Stack):
    """An alarm -> an SNS topic, broken in one of the ways AWS silently drops it."""

    def __init__(self, scope, id, *, broken: str):
        super().__init__(scope, id)
        key = None
        if broken != "aws-managed-key":
            key = kms.Key(self, "Key")
            if broken != "key-policy":
                key.add_to_resource_policy(iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["kms:GenerateDataKey*", "kms:Decrypt"], resources=["*"]))
        master = key or kms.Alias.from_alias_name(self, "Managed", "alias/aws/sns")
        self.topic = sns.Topic(self, "Alarms", master_key=master)
        source = {"aws:SourceArn": f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:*"}
        if broken == "source-arn":
            source = {"aws:SourceArn": "arn:aws:cloudwatch:us-west-2:111111111111:alarm:*"}
        if broken != "topic-policy":
            self.topic.add_to_resource_policy(iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"], resources=[self.topic.topic_arn],
                conditions={"ArnLike": source}))
        else:  # a topic policy that exists but leaves CloudWatch out
            self.topic.add_to_resource_policy(iam.PolicyStatement(
                principals=[iam.AccountRootPrincipal()], actions=["sns:Publish"],
                resources=[self.topic.topic_arn]))
        metric = cloudwatch.Metric(namespace="Local", metric_name="Errors")
        alarm = metric.create_alarm(self, "Errors", threshold=1, evaluation_periods=1)
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))


@pytest.mark.parametrize(("broken", "expected"), [
    ("none", None),
    ("topic-policy", "no statement of its topic policy allows cloudwatch.amazonaws.com "
                     "sns:Publish"),
    ("source-arn", "no statement of its topic policy allows cloudwatch.amazonaws.com"),
    ("key-policy", "does not allow cloudwatch.amazonaws.com kms:GenerateDataKey*, kms:Decrypt"),
    ("aws-managed-key", "encrypted with the AWS managed key alias/aws/sns"),
])
def test_alarm_actions_need_the_topic_and_key_policies(local_cloud, deploy_app, broken,
                                                       expected):
    stack = f"Alarm-{broken}"
    deployment = deploy_app(AlarmStack(cdk.App(), stack, broken=broken).node.root)
    [(alarm, alarm_arn, actions)] = deployment._alarms  # the alarm and its action were read
    topic = deployment.topics[next(iter(deployment.topics))]
    assert actions == [topic]
    findings = deployment.alarm_action_findings
    if expected is None:
        assert findings == [] and "alarm action dropped" not in deployment.summary()
        return
    [finding] = findings
    assert (finding.alarm, finding.alarm_arn, finding.topic_arn) == (alarm, alarm_arn, topic)
    assert expected in finding.problem
    assert f"alarm action dropped: {alarm} → {topic}: " in deployment.summary()


_SIGNED_BULK = '''
import json, urllib.error, urllib.request
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def handler(event, context):
    body = b'{"index": {"_index": "tasks", "_id": "1"}}\\n{"title": "a"}\\n'
    request = AWSRequest(method="POST", url=event["url"] + "/tasks/_bulk", data=body,
                         headers={"Content-Type": "application/x-ndjson"})
    SigV4Auth(Credentials("AKID", "secret"), "es", "us-east-1").add_auth(request)
    sent = urllib.request.Request(request.url, data=body, method="POST",
                                  headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(sent) as response:
            return [response.status, json.loads(response.read())]
    except urllib.error.HTTPError as exc:
        return [exc.code, json.loads(exc.read())]
'''


@pytest.mark.parametrize("allowed_by", ["domain policy", "identity policy", "nothing"])
def test_signed_opensearch_requests_are_authorized(tmp_path, allowed_by):
    """The runtime signs its OpenSearch requests itself (no botocore client call): the
    request is authorized as es:ESHttpPost on the domain path, and the stand-in refuses
    a denied one with 403."""
    from ddb_stream_patterns.local.functions import LocalFunction
    from ddb_stream_patterns.local.iam import RoleAuthorizer
    from ddb_stream_patterns.local.opensearch import FakeOpenSearch

    account, role = "123456789012", "arn:aws:iam::123456789012:role/Indexer"
    (tmp_path / "index.py").write_text(_SIGNED_BULK)
    writer = {"Effect": "Allow", "Action": "es:ESHttpPost",
              "Resource": "arn:aws:es:us-east-1:123456789012:domain/search/tasks/_bulk"}
    identity = [{"Statement": [writer]}] if allowed_by == "identity policy" else []
    access = ([{"Statement": [{**writer, "Principal": {"AWS": role}}]}]
              if allowed_by == "domain policy" else [])
    with FakeOpenSearch() as search:
        host = search.endpoint.split("://", 1)[1]
        domain = f"arn:aws:es:us-east-1:{account}:domain/search"
        auth = RoleAuthorizer(role, "indexer", lambda: identity, "us-east-1", account,
                              resource_policies=lambda arn: access if arn.startswith(domain)
                              else [], domain_arn={host: domain}.get)
        with LocalFunction("indexer", "index.handler", tmp_path, authorizer=auth,
                           environment={"AWS_CONFIG_FILE": "/dev/null"}) as fn:
            status, body = fn.invoke({"url": search.endpoint})
        assert search.requests  # the request reached the domain either way
        if allowed_by != "nothing":
            assert status == 200 and not body["errors"]
            assert search.document("tasks", "1") is not None and fn.denied == 0
            return
        assert status == 403 and search.state.denied == 1
        assert body["Message"] == (
            f"User: arn:aws:sts::{account}:assumed-role/Indexer/indexer is not authorized to "
            f"perform: es:ESHttpPost on resource: {domain}/tasks/_bulk because no "
            "identity-based policy allows the es:ESHttpPost action")
        assert search.document("tasks", "1") is None and fn.denied == 1


def test_example_stacks_alarms_are_all_deliverable(local_cloud, tmp_path):
    """Every alarm of the example app notifies a topic CloudWatch may publish to."""
    from ddb_stream_patterns.local.deployer import deploy
    from ddb_stream_patterns.local.runner import synthesize

    assembly = synthesize("python examples/app.py", tmp_path / "cdk.out", REPO)
    with deploy(local_cloud, assembly, name_prefix="alarms-") as deployment:
        assert len(deployment._alarms) >= 10  # the alarms and their actions were read
        assert all(actions for _, _, actions in deployment._alarms)
        assert deployment.topic_policies and deployment.key_policies
        assert deployment.alarm_action_findings == []
        assert "alarm action dropped" not in deployment.summary()


def test_sqs_mapping_whose_role_cannot_receive_leaves_the_message(client_factory, unique):
    from ddb_stream_patterns.local.iam import RoleAuthorizer
    from ddb_stream_patterns.local.model import MappingSpec
    from ddb_stream_patterns.local.pollers import SqsPoller

    sqs = client_factory("sqs")
    url = sqs.create_queue(QueueName=unique("iam-q"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    granted = ["sqs:DeleteMessage", "sqs:GetQueueAttributes"]

    class Function:
        name = "processor"
        calls: list = []
        authorizer = RoleAuthorizer(
            "arn:aws:iam::123456789012:role/Processor", "processor",
            lambda: [{"Statement": [{"Effect": "Allow", "Action": granted, "Resource": arn}]}],
            "us-east-1", "123456789012")

        def invoke(self, event):
            self.calls.append(event)

    spec = MappingSpec("Processor", Function(), "sqs", arn, queue_url=url)
    poller = SqsPoller(spec, client_factory)
    assert poller.poll_once() == 0 and Function.calls == []
    assert spec.stats.denied == 1 and spec.stats.state_transition_reason == AUTHZ_ERROR
    assert f"sqs:ReceiveMessage on resource: {arn}" in spec.stats.last_denied
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"  # still there, never received
    granted.append("sqs:ReceiveMessage")
    assert poller.poll_once() == 1 and len(Function.calls) == 1


def test_kinesis_mapping_whose_role_lacks_get_records_does_not_invoke(local_cloud, deploy_app):
    from ddb_stream_patterns.local.kinesis import KINESIS_READ_ACTIONS
    from tests.local.test_kinesis import KinesisStack

    assert "kinesis:GetRecords" in KINESIS_READ_ACTIONS
    stack = KinesisStack(cdk.App(), "KinNoRead")
    deployment = deploy_app(stack.node.root)
    granted = copy.deepcopy(deployment.role_policies)
    _without(deployment, "Shared", "kinesis:GetRecords")
    ddb = local_cloud.client("dynamodb")
    table = deployment.by_path("KinNoRead/Orders").physical_id
    ddb.put_item(TableName=table, Item={"orderId": {"S": "o-1"}})
    from ddb_stream_patterns.local.pytest_plugin import run_pollers

    run_pollers(local_cloud, deployment, timeout=60)
    shared, removals = deployment.stats_of(stack.shared), deployment.stats_of(stack.removals)
    assert removals.records_in >= 1  # the stream has the change: the other reader saw it
    assert shared.denied >= 1 and (shared.invocations, shared.records_in) == (0, 0)
    assert "kinesis:GetRecords on resource: arn:aws:kinesis:" in shared.last_denied
    assert shared.state_transition_reason == AUTHZ_ERROR
    # Granted again, the waiting change is read: nothing was lost.
    deployment.role_policies.update(granted)
    run_pollers(local_cloud, deployment, timeout=60)
    assert shared.records_in >= 1 and shared.invocations >= 1
