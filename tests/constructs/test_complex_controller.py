from __future__ import annotations

import json
import re

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from ddb_stream_patterns import (
    ComplexController,
    FailureDestination,
    Processor,
    Route,
    SimpleController,
    StreamRuntimeLayer,
    StreamTable,
)

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def _processor(**kwargs) -> Processor:
    kwargs.setdefault("route", Route(event_names=["INSERT"]))
    if "function" not in kwargs:
        kwargs.setdefault("code", CODE)
        kwargs.setdefault("handler", "index.handler")
    return Processor(**kwargs)


def _controller(stack: cdk.Stack, processors=None, **kwargs) -> ComplexController:
    table = kwargs.pop("table", None) or StreamTable(stack, "Table", partition_key=PK)
    processors = processors or {
        "welcome": _processor(),
        "notifier": _processor(
            route=Route(event_names=["MODIFY"], attributes={"status": ["shipped", "done"]}),
            delay=cdk.Duration.minutes(5),
            max_concurrency=2,
        ),
    }
    kwargs.setdefault("routing_attributes", ["status"])
    return ComplexController(stack, "Complex", table=table, processors=processors, **kwargs)


def _resources(stack: cdk.Stack, type_: str) -> dict:
    return Template.from_stack(stack).find_resources(type_)


def _by_id(stack: cdk.Stack, construct) -> dict:
    logical = stack.get_logical_id(construct.node.default_child)
    return Template.from_stack(stack).to_json()["Resources"][logical]


def test_one_stream_reader_the_router(stack):
    controller = _controller(stack)
    mappings = _resources(stack, "AWS::Lambda::EventSourceMapping").values()
    stream_mappings = [m for m in mappings if "StartingPosition" in m["Properties"]]
    assert len(stream_mappings) == 1
    props = stream_mappings[0]["Properties"]
    assert props["FunctionName"] == {"Ref": stack.get_logical_id(controller.controller_function.node.default_child)}
    assert props["BisectBatchOnFunctionError"] is True
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert isinstance(controller.controller, SimpleController)


def test_router_function_config_and_grants(stack):
    controller = _controller(stack, routing_attributes=["status", "tier"])
    fn = _by_id(stack, controller.controller_function)["Properties"]
    assert fn["Handler"] == "ddb_stream_runtime.router.handler"
    assert "Layers" not in fn  # the runtime is the function's own code
    env = fn["Environment"]["Variables"]
    assert env["TOPIC_ARN"] == {"Ref": stack.get_logical_id(controller.topic.node.default_child)}
    assert json.loads(env["ROUTING_ATTRIBUTES"]) == ["status", "tier"]
    assert env["FIFO"] == "false"
    assert env["CLAIM_CHECK_BUCKET"] == {"Ref": stack.get_logical_id(controller.claim_check_bucket.node.default_child)}
    statements = [
        s for p in _resources(stack, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    publish = [s for s in statements if s["Action"] == "sns:Publish"]
    assert publish and all(s["Resource"] == env["TOPIC_ARN"] for s in publish)
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert not {"*", "sns:*", "sqs:*", "s3:*"} & actions


def test_topic_is_encrypted_and_tls_only(stack):
    _controller(stack)
    template = Template.from_stack(stack)
    topic = next(iter(template.find_resources("AWS::SNS::Topic").values()))
    assert "alias/aws/sns" in json.dumps(topic["Properties"]["KmsMasterKeyId"])
    template.has_resource_properties("AWS::SNS::TopicPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])},
    })


def test_subscriptions_raw_with_filter_policy_and_dlq(stack):
    controller = _controller(stack)
    subscriptions = {
        s["Properties"]["Endpoint"]["Fn::GetAtt"][0]: s["Properties"]
        for s in _resources(stack, "AWS::SNS::Subscription").values()
    }
    welcome = subscriptions[stack.get_logical_id(controller.queues["welcome"].node.default_child)]
    notifier = subscriptions[stack.get_logical_id(controller.queues["notifier"].node.default_child)]
    assert welcome["FilterPolicy"] == {"eventName": ["INSERT"]}
    assert notifier["FilterPolicy"] == {"eventName": ["MODIFY"], "status": ["shipped", "done"]}
    sub_dlq = stack.get_logical_id(controller.subscription_dead_letter_queue.node.default_child)
    for sub in (welcome, notifier):
        assert sub["RawMessageDelivery"] is True
        assert sub["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [sub_dlq, "Arn"]}}


def test_queues_delay_visibility_dlq_and_encryption(stack):
    controller = _controller(stack)
    notifier = _by_id(stack, controller.queues["notifier"])
    props = notifier["Properties"]
    assert props["DelaySeconds"] == 300
    assert props["VisibilityTimeout"] == 180  # 6 x the 30 s function timeout
    assert props["SqsManagedSseEnabled"] is True
    assert props["RedrivePolicy"]["maxReceiveCount"] == 5  # AWS: at least 5 for Lambda-polled queues
    dlq = stack.get_logical_id(controller.dead_letter_queues["notifier"].node.default_child)
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    assert props["MessageRetentionPeriod"] < _by_id(stack, controller.dead_letter_queues["notifier"])["Properties"]["MessageRetentionPeriod"]
    assert notifier["DeletionPolicy"] == "Retain"
    assert "DelaySeconds" not in _by_id(stack, controller.queues["welcome"])["Properties"]
    policies = _resources(stack, "AWS::SQS::QueuePolicy").values()
    tls_denied = {
        q["Ref"] for p in policies for q in p["Properties"]["Queues"]
        if any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
               for s in p["Properties"]["PolicyDocument"]["Statement"])
    }
    all_queues = set(_resources(stack, "AWS::SQS::Queue"))
    assert tls_denied == all_queues


def test_processor_event_sources(stack):
    controller = _controller(stack)
    mappings = {
        m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m["Properties"]
        for m in _resources(stack, "AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" not in m["Properties"]
    }
    notifier = mappings[stack.get_logical_id(controller.queues["notifier"].node.default_child)]
    assert notifier["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert notifier["BatchSize"] == 10
    assert notifier["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    welcome = mappings[stack.get_logical_id(controller.queues["welcome"].node.default_child)]
    assert "ScalingConfig" not in welcome


def test_processor_functions_get_runtime_layer_and_claim_check_read(stack):
    controller = _controller(stack)
    assert isinstance(controller.runtime_layer, StreamRuntimeLayer)
    layer = stack.get_logical_id(controller.runtime_layer.node.default_child)
    for name in ("welcome", "notifier"):
        fn = _by_id(stack, controller.processor_functions[name])["Properties"]
        assert fn["Layers"] == [{"Ref": layer}]
        assert fn["Runtime"] == "python3.14"
        assert "CLAIM_CHECK_BUCKET" in fn["Environment"]["Variables"]
    Template.from_stack(stack).resource_count_is("AWS::Lambda::LayerVersion", 1)


def test_reserved_concurrency_and_overrides(stack):
    _controller(stack, processors={"slow": _processor(
        max_concurrency=5, reserved_concurrency=5,
        function_options=lambda_.FunctionOptions(timeout=cdk.Duration.seconds(60)),
        batch_size=50, max_batching_window=cdk.Duration.seconds(10), max_receive_count=5,
    )})
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::Function", {
        "ReservedConcurrentExecutions": 5, "Timeout": 60,
    })
    template.has_resource_properties("AWS::SQS::Queue", {
        "VisibilityTimeout": 360, "RedrivePolicy": Match.object_like({"maxReceiveCount": 5}),
    })
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": 50, "MaximumBatchingWindowInSeconds": 10,
        "ScalingConfig": {"MaximumConcurrency": 5},
    })


def test_user_function_and_explicit_visibility(stack):
    fn = lambda_.Function(stack, "Mine", code=CODE, handler="index.handler",
                          runtime=lambda_.Runtime.PYTHON_3_12, timeout=cdk.Duration.seconds(20))
    controller = _controller(stack, processors={
        "mine": Processor(route=Route(), function=fn, visibility_timeout=cdk.Duration.minutes(3)),
    })
    assert controller.processor_functions["mine"] is fn
    assert controller.runtime_layer is None
    assert _by_id(stack, controller.queues["mine"])["Properties"]["VisibilityTimeout"] == 180
    sub = next(iter(_resources(stack, "AWS::SNS::Subscription").values()))["Properties"]
    assert "FilterPolicy" not in sub  # an empty route receives everything


def test_subscription_filter_objects_pass_through(stack):
    _controller(stack, routing_attributes=["priority"], processors={"urgent": _processor(
        route=Route(attributes={"priority": sns.SubscriptionFilter.numeric_filter(greater_than=5)}),
    )})
    sub = next(iter(_resources(stack, "AWS::SNS::Subscription").values()))["Properties"]
    assert sub["FilterPolicy"] == {"priority": [{"numeric": [">", 5]}]}


def test_fifo_topic_and_queues(stack):
    controller = _controller(stack, fifo=True)
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::SNS::Topic", {"FifoTopic": True})
    queues = _resources(stack, "AWS::SQS::Queue")
    # The router's failure destination is a bucket: every queue is FIFO.
    assert controller.failure_queue is None and controller.failure_bucket is not None
    assert len(queues) == 5 and all(q["Properties"].get("FifoQueue") is True for q in queues.values())
    env = _by_id(stack, controller.controller_function)["Properties"]["Environment"]["Variables"]
    assert env["FIFO"] == "true"


def test_fifo_with_a_failure_queue_keeps_it_standard():
    stack = cdk.Stack(cdk.App(), "FifoSqs")
    controller = _controller(
        stack, fifo=True, controller_failure_destination=FailureDestination.sqs())
    queues = _resources(stack, "AWS::SQS::Queue")
    # Lambda's stream on-failure destination must be a standard queue; all others are FIFO.
    failure = stack.get_logical_id(controller.failure_queue.node.default_child)
    assert "FifoQueue" not in queues.pop(failure)["Properties"]
    assert len(queues) == 5 and all(q["Properties"].get("FifoQueue") is True for q in queues.values())


def test_without_claim_check_there_is_no_bucket(stack):
    controller = _controller(stack, claim_check=False)
    assert controller.claim_check_bucket is None
    buckets = _resources(stack, "AWS::S3::Bucket")
    # The only bucket left is the router's failure bucket.
    assert list(buckets) == [stack.get_logical_id(controller.failure_bucket.node.default_child)]
    env = _by_id(stack, controller.controller_function)["Properties"]["Environment"]["Variables"]
    assert "CLAIM_CHECK_BUCKET" not in env


def test_claim_check_bucket_is_secure_and_expires(stack):
    _controller(stack)
    Template.from_stack(stack).has_resource("AWS::S3::Bucket", {
        "Properties": Match.object_like({
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
            "LifecycleConfiguration": {"Rules": [Match.object_like({"ExpirationInDays": 15})]},
        }),
        "DeletionPolicy": "Retain",
    })


def test_exposes_everything_by_name(stack):
    controller = _controller(stack)
    for mapping in (controller.queues, controller.dead_letter_queues,
                    controller.processor_functions, controller.event_sources, controller.subscriptions):
        assert set(mapping) == {"welcome", "notifier"}
    assert controller.failure_bucket is controller.controller.failure_bucket is not None
    assert controller.failure_queue is None


# ---- invalid props ----------------------------------------------------------------------

def test_fails_too_many_filter_policy_combinations(stack):
    route = Route(event_names=["INSERT", "MODIFY", "REMOVE"],
                  attributes={"a": [str(i) for i in range(10)], "b": [str(i) for i in range(6)]})
    with pytest.raises(ValueError, match="180 filter policy value combinations, SNS allows 150"):
        _controller(stack, routing_attributes=["a", "b"], processors={"p": _processor(route=route)})


def test_fails_too_many_filter_policy_keys(stack):
    names = ["a", "b", "c", "d", "e"]
    route = Route(event_names=["INSERT"], attributes={n: ["x"] for n in names})
    with pytest.raises(ValueError, match="6 filter policy keys, SNS allows 5"):
        _controller(stack, routing_attributes=names, processors={"p": _processor(route=route)})


def test_fails_imported_function_without_visibility_timeout(stack):
    fn = lambda_.Function.from_function_arn(stack, "Imp", "arn:aws:lambda:us-east-1:123456789012:function:f")
    with pytest.raises(ValueError, match=r"visibility_timeout is required for the imported function 'TestStack/Imp'"):
        _controller(stack, processors={"p": Processor(route=Route(), function=fn)})


def test_fails_function_with_reserved_concurrency(stack):
    fn = lambda_.Function(stack, "Mine", code=CODE, handler="index.handler", runtime=lambda_.Runtime.PYTHON_3_12)
    with pytest.raises(ValueError, match="reserved_concurrency only apply to a function built"):
        _controller(stack, processors={"p": Processor(route=Route(), function=fn, reserved_concurrency=3)})


def test_fails_table_without_stream(stack):
    plain = dynamodb.TableV2(stack, "Plain", partition_key=PK)
    with pytest.raises(ValueError, match="table 'TestStack/Plain' has no stream"):
        _controller(stack, table=plain)


def test_claim_check_grants_are_one_action_on_the_prefix(stack):
    controller = _controller(stack)
    bucket = stack.get_logical_id(controller.claim_check_bucket.node.default_child)
    prefix = {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/claim-check/*"]]}
    by_role = {}
    for policy in _resources(stack, "AWS::IAM::Policy").values():
        role = policy["Properties"]["Roles"][0]["Ref"]
        by_role[role] = [  # the claim-check bucket's (the router's failure bucket has its own)
            s for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if "s3" in json.dumps(s["Action"]) and bucket in json.dumps(s["Resource"])
        ]

    def role_of(function):
        return stack.get_logical_id(function.role.node.default_child)

    assert by_role[role_of(controller.controller_function)] == [
        {"Action": "s3:PutObject", "Effect": "Allow", "Resource": prefix}
    ]
    for name in ("welcome", "notifier"):
        assert by_role[role_of(controller.processor_functions[name])] == [
            {"Action": "s3:GetObject", "Effect": "Allow", "Resource": prefix}
        ]


def test_claim_check_prefix_matches_the_router_runtime():
    from ddb_stream_patterns.complex_controller import CLAIM_CHECK_PREFIX
    from ddb_stream_runtime import router

    assert router.CLAIM_CHECK_PREFIX == CLAIM_CHECK_PREFIX


def test_max_receive_count_below_five_needs_an_acknowledgment(stack):
    with pytest.raises(ValueError) as raised:
        _controller(stack, processors={"slow": _processor(max_receive_count=3)})
    message = str(raised.value)
    assert "processors['slow'].max_receive_count must be at least 5" in message
    assert "got 3" in message and "acknowledge_low_max_receive_count" in message


def test_acknowledged_low_max_receive_count_is_kept_and_recorded(stack):
    controller = _controller(stack, processors={"slow": _processor(
        max_receive_count=2, acknowledge_low_max_receive_count="idempotent handler, retried upstream",
    )})
    queue = _by_id(stack, controller.queues["slow"])
    assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 2
    infos = Annotations.from_stack(stack).find_info(
        f"/{controller.queues['slow'].node.path}", Match.string_like_regexp("acknowledged")
    )
    assert len(infos) == 1
    assert "max_receive_count 2 is below AWS's 5" in infos[0].entry.data
    assert "idempotent handler, retried upstream" in infos[0].entry.data


@pytest.mark.parametrize(("processor", "expected"), [
    ({"max_receive_count": 5, "acknowledge_low_max_receive_count": "why"},
     "acknowledge_low_max_receive_count only applies to a max_receive_count below 5, got max_receive_count=5"),
    ({"max_receive_count": 3, "acknowledge_low_max_receive_count": "  "},
     "acknowledge_low_max_receive_count must be a non-empty reason, got '  '"),
])
def test_acknowledgment_must_be_a_reason_for_a_low_count(stack, processor, expected):
    with pytest.raises(ValueError, match=re.escape(f"processors['p'].{expected}")):
        _controller(stack, processors={"p": _processor(**processor)})
