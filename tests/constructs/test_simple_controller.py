from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_kms as kms
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_event_sources as sources
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sqs as sqs
import pytest
from aws_cdk.assertions import Match, Template

from ddb_stream_patterns import (
    DEFAULT_FAILURE_EXPIRATION,
    FailureDestination,
    Rule,
    SimpleController,
    StreamFilter,
    StreamRuntimeLayer,
    StreamTable,
)

from .data_support import role_statements

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def _controller(stack: cdk.Stack, **kwargs) -> SimpleController:
    table = kwargs.pop("table", None) or StreamTable(stack, "Table", partition_key=PK)
    if "function" not in kwargs:
        kwargs.setdefault("code", CODE)
        kwargs.setdefault("handler", "index.handler")
    return SimpleController(stack, "Controller", table=table, **kwargs)


def _mapping(stack: cdk.Stack) -> dict:
    mappings = Template.from_stack(stack).find_resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 1
    return next(iter(mappings.values()))["Properties"]


def test_event_source_defaults(stack):
    _controller(stack)
    props = _mapping(stack)
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["BatchSize"] == 100
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == 10
    assert props["MaximumRecordAgeInSeconds"] == 72000  # 20 h, below the 24 h retention
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ParallelizationFactor"] == 1
    assert "FilterCriteria" not in props
    assert "MaximumBatchingWindowInSeconds" not in props
    destination = props["DestinationConfig"]["OnFailure"]["Destination"]
    # The default keeps the records given up on (an S3 bucket), not just their coordinates.
    assert destination["Fn::GetAtt"][0].startswith("ControllerFailureBucket")
    assert props["MetricsConfig"] == {"Metrics": ["EventCount"]}
    source = props["EventSourceArn"]["Fn::GetAtt"]
    assert source[0].startswith("Table") and source[1] == "StreamArn"


def test_built_function_defaults(stack):
    controller = _controller(stack)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Handler": "index.handler",
            "Architectures": ["arm64"],
            "MemorySize": 256,
            "Timeout": 30,
            "Layers": [{"Ref": Match.string_like_regexp("^ControllerRuntimeLayer")}],
            "LoggingConfig": {"LogGroup": {"Ref": Match.string_like_regexp("^ControllerFunctionLogs")}},
        },
    )
    template.has_resource("AWS::Logs::LogGroup", {
        "Properties": {"RetentionInDays": 30}, "DeletionPolicy": "Retain",
    })
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.11", "python3.12", "python3.13", "python3.14"]},
    )
    assert isinstance(controller.runtime_layer, StreamRuntimeLayer)
    assert isinstance(controller.function, lambda_.Function)


def test_failure_queue_is_encrypted_tls_only_and_retained(stack):
    controller = _controller(stack, failure_destination=FailureDestination.sqs())
    template = Template.from_stack(stack)
    template.has_resource("AWS::SQS::Queue", {
        "Properties": {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 1209600},
        "DeletionPolicy": "Retain",
    })
    template.has_resource_properties("AWS::SQS::QueuePolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])},
    })
    assert isinstance(controller.failure_queue, sqs.Queue)
    assert controller.failure_bucket is None


def test_least_privilege_role_reads_stream_and_sends_to_dlq(stack):
    _controller(stack, failure_destination=FailureDestination.sqs())
    policies = Template.from_stack(stack).find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "dynamodb:GetRecords" in actions and "dynamodb:GetShardIterator" in actions
    assert "sqs:SendMessage" in actions
    assert not any(a.endswith("*") and ":" not in a for a in actions)
    assert not any(a in ("*", "dynamodb:*", "sqs:*") for a in actions)


def test_filters_become_filter_criteria(stack):
    status_done = StreamFilter(event_names=["MODIFY"], new_image={"status": Rule.equals("done")})
    _controller(stack, filters=[status_done, StreamFilter.ttl_expiry()])
    filters = _mapping(stack)["FilterCriteria"]["Filters"]
    assert [json.loads(f["Pattern"]) for f in filters] == [
        {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"status": {"S": ["done"]}}}},
        StreamFilter.ttl_expiry().to_pattern(),
    ]


def test_options_reach_the_mapping(stack):
    _controller(
        stack,
        batch_size=500,
        max_batching_window=cdk.Duration.seconds(5),
        parallelization_factor=4,
        retry_attempts=0,
        max_record_age=cdk.Duration.hours(2),
        bisect_batch_on_error=False,
        report_batch_item_failures=False,
        starting_position=lambda_.StartingPosition.LATEST,
    )
    props = _mapping(stack)
    assert props["BatchSize"] == 500
    assert props["MaximumBatchingWindowInSeconds"] == 5
    assert props["ParallelizationFactor"] == 4
    assert props["MaximumRetryAttempts"] == 0
    assert props["MaximumRecordAgeInSeconds"] == 7200
    assert props["BisectBatchOnFunctionError"] is False
    assert "FunctionResponseTypes" not in props
    assert props["StartingPosition"] == "LATEST"


@pytest.mark.parametrize("destination", [None, FailureDestination.s3()], ids=["default", "s3()"])
def test_s3_failure_destination_gets_a_secure_bucket(stack, destination):
    controller = _controller(stack, failure_destination=destination)
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::SQS::Queue", 0)
    template.resource_count_is("AWS::S3::Bucket", 1)
    template.has_resource("AWS::S3::Bucket", {
        "Properties": {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True, "BlockPublicPolicy": True,
                "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            # Each failure record is kept 90 days (DEFAULT_FAILURE_EXPIRATION), then expires.
            "LifecycleConfiguration": {"Rules": [
                {"Id": "ExpireFailureRecords", "ExpirationInDays": 90, "Status": "Enabled"}]},
            "VersioningConfiguration": Match.absent(),
        },
        "DeletionPolicy": "Retain",
    })
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])},
    })
    destination = _mapping(stack)["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination["Fn::GetAtt"][0].startswith("ControllerFailureBucket")
    assert isinstance(controller.failure_bucket, s3.Bucket)
    assert controller.failure_queue is None


def test_failure_bucket_expiration_is_a_prop(stack):
    assert DEFAULT_FAILURE_EXPIRATION.to_days() == 90  # the documented default
    controller = _controller(
        stack, failure_destination=FailureDestination.s3(expiration=cdk.Duration.days(400)),
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    assert controller.failure_bucket is not None
    template = Template.from_stack(stack)
    template.has_resource("AWS::S3::Bucket", {
        "Properties": {"LifecycleConfiguration": {"Rules": [
            {"Id": "ExpireFailureRecords", "ExpirationInDays": 400, "Status": "Enabled"}]}},
        "DeletionPolicy": "Delete",
    })


@pytest.mark.parametrize(("make", "message"), [
    (lambda stack: FailureDestination.s3(expiration=cdk.Duration.hours(36)),
     "expiration must be a whole number of days, got 129600 seconds"),
    (lambda stack: FailureDestination.s3(expiration=cdk.Duration.days(0)),
     "expiration must be between 86400 and 315360000 seconds, got 0 seconds"),
    (lambda stack: FailureDestination.s3(s3.Bucket(stack, "Mine"), expiration=cdk.Duration.days(5)),
     "expiration applies to a bucket created here only, got expiration='5 days' with the "
     "given bucket 'TestStack/Mine'"),
    (lambda stack: FailureDestination("sqs", expiration=cdk.Duration.days(5)),
     "expiration applies to a bucket created here only, got expiration='5 days' with kind 'sqs'"),
])
def test_failure_bucket_expiration_is_checked(stack, make, message):
    import re

    with pytest.raises(ValueError, match=re.escape(message)):
        make(stack)


def test_existing_queue_and_bucket_are_used_not_created(stack):
    queue = sqs.Queue(stack, "MyDlq")
    controller = _controller(stack, failure_destination=FailureDestination.sqs(queue))
    assert controller.failure_queue is queue
    Template.from_stack(stack).resource_count_is("AWS::SQS::Queue", 1)

    other = cdk.Stack(cdk.App(), "Other")
    bucket = s3.Bucket(other, "MyBucket")
    controller = _controller(other, failure_destination=FailureDestination.s3(bucket))
    assert controller.failure_bucket is bucket
    Template.from_stack(other).resource_count_is("AWS::S3::Bucket", 1)


def test_user_function_is_used_as_is(stack):
    fn = lambda_.Function(stack, "Mine", code=CODE, handler="index.handler",
                          runtime=lambda_.Runtime.PYTHON_3_13)
    controller = _controller(stack, function=fn)
    assert controller.function is fn
    assert controller.runtime_layer is None and controller.log_group is None
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Lambda::Function", 1)
    template.resource_count_is("AWS::Lambda::LayerVersion", 0)
    assert _mapping(stack)["FunctionName"] == {"Ref": stack.get_logical_id(fn.node.default_child)}
    assert isinstance(controller.event_source_mapping, lambda_.EventSourceMapping)
    assert controller.event_source_mapping.node.scope is fn


def test_imported_table_with_stream_arn(stack):
    table = dynamodb.TableV2.from_table_attributes(
        stack, "Imported", table_name="orders",
        table_stream_arn="arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000",
    )
    _controller(stack, table=table)
    assert _mapping(stack)["EventSourceArn"].endswith("table/orders/stream/2024-01-01T00:00:00.000")


def test_function_options_override_defaults(stack):
    _controller(stack, function_options=lambda_.FunctionOptions(
        memory_size=1024, environment={"MODE": "test"}, reserved_concurrent_executions=5,
    ))
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::Function", {
        "MemorySize": 1024, "Environment": {"Variables": {"MODE": "test"}},
        "ReservedConcurrentExecutions": 5, "Timeout": 30,
    })


def test_exposes_its_resources(stack):
    controller = _controller(stack)
    assert isinstance(controller.event_source_mapping, lambda_.EventSourceMapping)
    assert controller.event_source_mapping.node.scope is controller.function
    assert controller.failure_bucket is not None and controller.failure_queue is None
    assert stack.resolve(controller.failure_destination.bind(
        controller.event_source_mapping, controller.function).destination) == {
        "Fn::GetAtt": [stack.get_logical_id(controller.failure_bucket.node.default_child), "Arn"]}
    sqs_stack = cdk.Stack(cdk.App(), "Sqs")
    queued = _controller(sqs_stack, failure_destination=FailureDestination.sqs())
    assert isinstance(queued.failure_destination, sources.SqsDlq)
    # The event source is the one that made the mapping: its id is the mapping's Ref.
    mapping = controller.event_source_mapping.node.default_child
    assert stack.resolve(controller.event_source.event_source_mapping_id) == {
        "Ref": stack.get_logical_id(mapping)
    }


# ---- invalid props (the common ones are in test_invalid_configurations.py) ------------


def test_fails_function_and_code(stack):
    fn = lambda_.Function(stack, "Mine", code=CODE, handler="index.handler",
                          runtime=lambda_.Runtime.PYTHON_3_12)
    with pytest.raises(ValueError, match="give either function or code and handler, not both"):
        _controller(stack, function=fn, code=CODE, handler="index.handler")


def test_tokens_are_not_validated(stack):
    size = cdk.Token.as_number(cdk.CfnParameter(stack, "Size", type="Number").value_as_number)
    _controller(stack, batch_size=size)
    assert _mapping(stack)["BatchSize"] == {"Ref": "Size"}


def test_built_role_writes_only_its_own_logs_and_has_no_managed_policy(stack):
    controller = _controller(stack)
    template = Template.from_stack(stack)
    roles = template.find_resources("AWS::IAM::Role")
    assert len(roles) == 1
    assert "ManagedPolicyArns" not in next(iter(roles.values()))["Properties"]
    log_group = stack.get_logical_id(controller.log_group.node.default_child)
    statements = [
        s for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    logs = [s for s in statements if "logs:PutLogEvents" in s["Action"]]
    assert logs == [{
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [log_group, "Arn"]},
    }]
    function = template.to_json()["Resources"][stack.get_logical_id(controller.function.node.default_child)]
    policy = next(iter(template.find_resources("AWS::IAM::Policy")))
    assert function["DependsOn"] == [policy]


def test_warns_when_a_table_gets_more_than_two_stream_readers(stack):
    from aws_cdk.assertions import Annotations

    table = StreamTable(stack, "Table", partition_key=PK)
    for i in range(2):
        SimpleController(stack, f"C{i}", table=table, code=CODE, handler="index.handler")
    assert Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("stream readers")) == []
    SimpleController(stack, "C2", table=table, code=CODE, handler="index.handler")
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("stream readers"))
    assert len(warnings) == 1
    assert "now has 3 stream readers" in json.dumps(warnings[0].entry.data)


def test_built_function_keeps_dependencies_added_later(stack):
    controller = _controller(stack)
    extra = sqs.Queue(stack, "Extra")
    controller.function.node.add_dependency(extra)
    template = Template.from_stack(stack)
    function = template.to_json()["Resources"][stack.get_logical_id(controller.function.node.default_child)]
    policy = next(iter(template.find_resources("AWS::IAM::Policy")))
    role = stack.get_logical_id(controller.function.role.node.default_child)
    assert function["DependsOn"] == sorted([policy, stack.get_logical_id(extra.node.default_child)])
    assert role not in function["DependsOn"]  # read through Fn::GetAtt already (cfn-lint W3005)


def _s3_statements(stack: cdk.Stack, controller: SimpleController) -> list[dict]:
    return [s for s in role_statements(stack, controller.function) if "s3:" in json.dumps(s["Action"])]


def test_s3_failure_destination_grants_write_only(stack):
    controller = _controller(stack)  # the default destination
    bucket = stack.get_logical_id(controller.failure_bucket.node.default_child)
    statements = _s3_statements(stack, controller)
    assert statements, "the function must be allowed to deliver failure records"
    # What Lambda needs for an S3 on-failure destination: s3:PutObject and s3:ListBucket,
    # on a bucket this stack's account owns (s3:ResourceAccount: the bucket was made here).
    owner = {"StringEquals": {"s3:ResourceAccount": {"Ref": "AWS::AccountId"}}}
    assert statements == [
        {"Action": "s3:PutObject", "Effect": "Allow", "Condition": owner,
         "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/*"]]}},
        {"Action": "s3:ListBucket", "Effect": "Allow", "Condition": owner,
         "Resource": {"Fn::GetAtt": [bucket, "Arn"]}},
    ]
    every_action = [a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert not any("*" in a or "Get" in a or "Delete" in a or "Abort" in a for a in every_action)


def test_s3_failure_destination_with_a_customer_managed_key(stack):
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "Failures", encryption=s3.BucketEncryption.KMS, encryption_key=key)
    controller = _controller(stack, failure_destination=FailureDestination.s3(bucket))
    kms_statements = [s for s in role_statements(stack, controller.function) if "kms:" in json.dumps(s["Action"])]
    assert kms_statements == [{
        "Action": "kms:GenerateDataKey", "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [stack.get_logical_id(key.node.default_child), "Arn"]},
    }]
    given = _s3_statements(stack, controller)
    assert [s["Action"] for s in given] == ["s3:PutObject", "s3:ListBucket"]
    # A given bucket built in this stack: its owner is this stack's account.
    owner = {"StringEquals": {"s3:ResourceAccount": {"Ref": "AWS::AccountId"}}}
    assert [s.get("Condition") for s in given] == [owner, owner]


def test_a_given_function_on_a_fan_out_gets_a_queue_not_a_stream_mapping(stack):
    from aws_cdk.assertions import Template

    from ddb_stream_patterns import FanOutConsumer, StreamFanOut

    table = StreamTable(stack, "T", partition_key=dynamodb.Attribute(
        name="pk", type=dynamodb.AttributeType.STRING))
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    function = lambda_.Function(stack, "Mine", code=lambda_.Code.from_inline("x = 1"),
                                handler="index.handler", runtime=lambda_.Runtime.PYTHON_3_13)
    controller = SimpleController(stack, "C", table=table, function=function, source=fan_out)
    assert isinstance(controller.source_binding, FanOutConsumer)
    assert controller.failure_destination is None
    assert controller.failure_queue is controller.source_binding.dead_letter_queue
    assert controller.event_source_mapping is controller.source_binding.event_source_mapping
    assert set(controller.alarms) == {"handlerErrors", "handlerThrottles", "dlqMessages",
                                      "queueOldestMessage"}
    mappings = Template.from_stack(stack).find_resources("AWS::Lambda::EventSourceMapping")
    mine = stack.get_logical_id(function.node.default_child)
    [props] = [m["Properties"] for m in mappings.values()
               if m["Properties"]["FunctionName"] == {"Ref": mine}]
    assert "StartingPosition" not in props  # an SQS mapping
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert len(controller.dashboard_rows()) == 1
