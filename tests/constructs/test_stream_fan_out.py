"""StreamFanOut: one stream reader, a queue per consumer, filters as SNS filter policies."""

from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import pytest
from aws_cdk.assertions import Template

from ddb_stream_patterns import (
    AggregateCounter,
    ComplexController,
    ConsumerSpec,
    FanOutConsumer,
    Monitoring,
    Processor,
    QueueOptions,
    Route,
    Rule,
    SimpleController,
    StreamFanOut,
    StreamFilter,
    StreamOptions,
    StreamTable,
    TableReplicator,
    TtlArchiver,
)

from .data_support import actions, mapping_of, resource, role_statements, tasks

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def _fan_out(stack: cdk.Stack, table=None, **kwargs) -> StreamFanOut:
    return StreamFanOut(stack, "FanOut", table=table or tasks(stack), **kwargs)


def _user(stack: cdk.Stack, fan_out, id: str = "User", **kwargs) -> SimpleController:
    return SimpleController(
        stack, id, table=fan_out.table, code=CODE, handler="index.handler", source=fan_out,
        **kwargs,
    )


def _other_table(stack: cdk.Stack, id: str, **kwargs) -> StreamTable:
    pk = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    return StreamTable(stack, id, partition_key=pk, **kwargs)


def _stream_mappings(stack: cdk.Stack) -> list[dict]:
    return [
        m["Properties"]
        for m in Template.from_stack(stack).find_resources("AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" in m["Properties"]
    ]


def _subscription_of(stack: cdk.Stack, queue) -> dict:
    queue_id = stack.get_logical_id(queue.node.default_child)
    [sub] = [
        s["Properties"]
        for s in Template.from_stack(stack).find_resources("AWS::SNS::Subscription").values()
        if s["Properties"]["Endpoint"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    ]
    return sub


# -- one reader, a queue per consumer ------------------------------------------------------


def test_one_stream_reader_for_every_consumer(stack):
    fan_out = _fan_out(stack)
    archiver = TtlArchiver(stack, "Archive", table=fan_out.table, source=fan_out)
    counter = AggregateCounter(
        stack, "Counts", table=fan_out.table, group_attribute="ListId", source=fan_out)
    user = _user(stack, fan_out)
    [reader] = _stream_mappings(stack)
    assert reader["FunctionName"] == {
        "Ref": stack.get_logical_id(fan_out.controller_function.node.default_child)}
    assert [c.node.path for c in fan_out.consumers] == [
        "TestStack/Archive/Controller", "TestStack/Counts/Controller", "TestStack/User/Source"]
    assert all(isinstance(c, FanOutConsumer) for c in fan_out.consumers)
    assert user.reads_table_stream is False and user.source_binding is fan_out.consumers[2]
    queues = {c.queue.node.path for c in fan_out.consumers}
    assert len(queues) == 3
    env = resource(stack, fan_out.controller_function)["Properties"]["Environment"]["Variables"]
    assert env["PUBLISH_TTL_EXPIRY"] == "true"
    assert json.loads(env["ROUTING_ATTRIBUTES"]) == []
    assert archiver.controller is fan_out.consumers[0] and counter.controller is fan_out.consumers[1]


def test_consumer_queue_dlq_subscription_and_event_source(stack):
    fan_out = _fan_out(stack)
    archiver = TtlArchiver(stack, "Archive", table=fan_out.table, source=fan_out)
    consumer = archiver.controller
    queue = resource(stack, consumer.queue)["Properties"]
    dlq_id = stack.get_logical_id(consumer.dead_letter_queue.node.default_child)
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5}
    assert queue["VisibilityTimeout"] == 180  # 6 x the function's 30 s
    assert queue["SqsManagedSseEnabled"] is True
    assert consumer.failure_queue is consumer.dead_letter_queue
    sub = _subscription_of(stack, consumer.queue)
    assert sub["RawMessageDelivery"] is True
    assert sub["TopicArn"] == {"Ref": stack.get_logical_id(fan_out.topic.node.default_child)}
    assert sub["FilterPolicy"] == {"eventName": ["REMOVE"], "ttlExpiry": ["true"]}
    sub_dlq = stack.get_logical_id(fan_out.subscription_dead_letter_queue.node.default_child)
    assert sub["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [sub_dlq, "Arn"]}}
    mapping = mapping_of(stack, consumer)
    assert mapping["EventSourceArn"] == {
        "Fn::GetAtt": [stack.get_logical_id(consumer.queue.node.default_child), "Arn"]}
    assert mapping["FunctionName"] == {"Ref": stack.get_logical_id(archiver.function.node.default_child)}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert "FilterCriteria" not in mapping  # the filter is the subscription's policy


def test_consumer_alarms_and_dashboard_rows(stack):
    fan_out = _fan_out(stack)
    archiver = TtlArchiver(stack, "Archive", table=fan_out.table, source=fan_out)
    assert sorted(archiver.alarms) == [
        "dlqMessages", "handlerErrors", "handlerThrottles", "queueOldestMessage"]
    alarms = Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm")
    dlq_alarm = alarms[stack.get_logical_id(archiver.alarms["dlqMessages"].node.default_child)]
    assert dlq_alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq_alarm["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {
        "Fn::GetAtt": [stack.get_logical_id(archiver.controller.dead_letter_queue.node.default_child),
                       "QueueName"]}}]
    age = alarms[stack.get_logical_id(archiver.alarms["queueOldestMessage"].node.default_child)]
    assert age["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert archiver.alarm_topic is not None
    assert sorted(fan_out.alarms) == [
        "controller.droppedRecords", "controller.failureDeliveries", "controller.handlerErrors",
        "controller.handlerIteratorAge", "controller.handlerThrottles",
        "subscriptionDlqMessages", "topicNotificationsFailed"]
    [row] = archiver.dashboard_rows()
    assert len(row) == 3  # queue, handler, DLQ
    assert len(fan_out.dashboard_rows()) == 3  # router, its failure bucket, topic
    assert archiver.metric_oldest_message_age().metric_name == "ApproximateAgeOfOldestMessage"
    assert archiver.metric_failure_queue_depth().metric_name == "ApproximateNumberOfMessagesVisible"
    with pytest.raises(ValueError, match="has no iterator age: use metric_oldest_message_age"):
        archiver.metric_iterator_age()


def test_consumer_grants_queue_and_claim_checks_only(stack):
    fan_out = _fan_out(stack)
    counter = AggregateCounter(
        stack, "Counts", table=fan_out.table, group_attribute="ListId", source=fan_out)
    statements = role_statements(stack, counter.function)
    granted = actions(statements)
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} <= granted
    assert "s3:GetObject" in granted
    assert not {a for a in granted if a.startswith("dynamodb:GetRecords")}  # no stream reads
    bucket = stack.get_logical_id(fan_out.claim_check_bucket.node.default_child)
    [s3_statement] = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert s3_statement["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/claim-check/*"]]}
    queue = stack.get_logical_id(counter.controller.queue.node.default_child)
    [sqs_statement] = [s for s in statements if "sqs:ReceiveMessage" in s["Action"]]
    assert sqs_statement["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    # The counter's own grants are unchanged by the source.
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem"} <= granted


def test_queue_options_per_consumer(stack):
    fan_out = _fan_out(stack)
    archiver = TtlArchiver(
        stack, "Archive", table=fan_out.table,
        source=fan_out.with_queue(QueueOptions(
            batch_size=50, max_batching_window=cdk.Duration.seconds(20), max_concurrency=3,
            max_receive_count=7, visibility_timeout=cdk.Duration.minutes(5),
            delay=cdk.Duration.seconds(30))),
    )
    mapping = mapping_of(stack, archiver.controller)
    assert mapping["BatchSize"] == 50
    assert mapping["MaximumBatchingWindowInSeconds"] == 20
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 3}
    queue = resource(stack, archiver.controller.queue)["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 7
    assert queue["VisibilityTimeout"] == 300
    assert queue["DelaySeconds"] == 30


def test_fan_out_default_queue_options(stack):
    fan_out = _fan_out(stack, queue_options=QueueOptions(batch_size=5))
    user = _user(stack, fan_out)
    assert mapping_of(stack, user.source_binding)["BatchSize"] == 5


def test_fifo_fan_out_gives_fifo_topic_and_queues(stack):
    fan_out = _fan_out(stack, fifo=True)
    user = _user(stack, fan_out)
    topic = resource(stack, fan_out.topic)["Properties"]
    assert topic["FifoTopic"] is True
    assert resource(stack, user.source_binding.queue)["Properties"]["FifoQueue"] is True
    assert resource(stack, user.source_binding.dead_letter_queue)["Properties"]["FifoQueue"] is True
    env = resource(stack, fan_out.controller_function)["Properties"]["Environment"]["Variables"]
    assert env["FIFO"] == "true"


def test_simple_controllers_on_a_fan_out_are_not_stream_readers(stack):
    fan_out = _fan_out(stack)
    for i in range(3):
        _user(stack, fan_out, f"U{i}")
    # A direct reader next to the router: two readers, no warning (the three consumers
    # read queues, not the stream).
    SimpleController(stack, "Direct", table=fan_out.table, code=CODE, handler="index.handler")
    assert len(_stream_mappings(stack)) == 2
    artifact = stack.node.root.synth().get_stack_artifact(stack.artifact_id)
    assert not [e for e in artifact.find_metadata_by_type("aws:cdk:warning")
                if "stream readers" in str(e.data)]


def test_user_filter_becomes_the_subscription_policy(stack):
    fan_out = _fan_out(stack, routing_attributes=["status", "ListId", "priority", "done"])
    user = _user(stack, fan_out, filters=[StreamFilter(
        event_names=["INSERT"],
        keys={"ListId": Rule.prefix("L#")},
        new_image={"status": Rule.equals("open", "new"), "priority": Rule.equals(1, 2)},
    )])
    assert _subscription_of(stack, user.source_binding.queue)["FilterPolicy"] == {
        "eventName": ["INSERT"],
        "ListId": [{"prefix": "L#"}],
        "status": ["open", "new"],
        "priority": [{"numeric": ["=", 1]}, {"numeric": ["=", 2]}],
    }


# -- StreamFilter -> filter policy, rule by rule --------------------------------------------


def _policy(stack, *filters, routing=("status", "ListId", "n", "flag", "tags", "nums")):
    fan_out = _fan_out(stack, routing_attributes=list(routing))
    policy = fan_out.filter_policy(list(filters))
    return {k: f.conditions for k, f in policy.items()}


@pytest.mark.parametrize(("stream_filter", "expected"), [
    (StreamFilter(event_names=["INSERT", "MODIFY"]), {"eventName": ["INSERT", "MODIFY"]}),
    (StreamFilter.ttl_expiry(), {"eventName": ["REMOVE"], "ttlExpiry": ["true"]}),
    (StreamFilter.ttl_expiry(old_image={"status": Rule.equals("done")}),
     {"eventName": ["REMOVE"], "ttlExpiry": ["true"], "status": ["done"]}),
    (StreamFilter(keys={"ListId": Rule.equals("a", "b")}), {"ListId": ["a", "b"]}),
    (StreamFilter(keys={"ListId": Rule.suffix("#x")}), {"ListId": [{"suffix": "#x"}]}),
    (StreamFilter(keys={"ListId": Rule.equals_ignore_case("ab")}),
     {"ListId": [{"equals-ignore-case": "ab"}]}),
    (StreamFilter(keys={"ListId": Rule.anything_but("a")}), {"ListId": [{"anything-but": ["a"]}]}),
    (StreamFilter(event_names=["INSERT"], new_image={"n": Rule.equals(1.5)}),
     {"eventName": ["INSERT"], "n": [{"numeric": ["=", 1.5]}]}),
    (StreamFilter(event_names=["INSERT"], new_image={"n": Rule.anything_but(0)}),
     {"eventName": ["INSERT"], "n": [{"anything-but": [0]}]}),
    (StreamFilter(event_names=["INSERT"], new_image={"flag": Rule.equals(True)}),
     {"eventName": ["INSERT"], "flag": ["true"]}),
    (StreamFilter(event_names=["INSERT"], new_image={"flag": Rule.exists("BOOL")}),
     {"eventName": ["INSERT"], "flag": [{"exists": True}]}),
    (StreamFilter(event_names=["REMOVE"], old_image={"tags": Rule.equals("x", attribute_type="SS")}),
     {"eventName": ["REMOVE"], "tags": ["x"]}),
    (StreamFilter(event_names=["INSERT"], new_image={"n": Rule.not_exists("N")}),
     {"eventName": ["INSERT"], "n": [{"exists": False}]}),
])
def test_filters_that_translate(stack, stream_filter, expected):
    assert _policy(stack, stream_filter) == expected


def test_matching_rules_of_the_local_evaluator_agree_on_a_ttl_record(stack):
    """The TTL policy keeps what the Lambda filter keeps, given the router's attributes."""
    ttl = {"eventName": "REMOVE", "userIdentity": {"type": "Service",
                                                   "principalId": "dynamodb.amazonaws.com"}}
    user_delete = {"eventName": "REMOVE"}
    assert StreamFilter.ttl_expiry().matches(ttl) and not StreamFilter.ttl_expiry().matches(user_delete)
    policy = _policy(stack, StreamFilter.ttl_expiry())
    # The router's attributes for each record (see tests/runtime/test_router.py).
    published_ttl = {"eventName": "REMOVE", "ttlExpiry": "true"}
    published_user = {"eventName": "REMOVE"}
    assert all(published_ttl.get(k) in v for k, v in policy.items())
    assert not all(published_user.get(k) in v for k, v in policy.items())


# -- bad input: each a ValueError naming the prop and the value -------------------------------


@pytest.mark.parametrize(("stream_filter", "message"), [
    (StreamFilter(new_image={"status": Rule.equals("x")}),
     r"new_image rules translate only with event_names=\['INSERT'\].*got event_names any"),
    (StreamFilter(event_names=["MODIFY"], new_image={"status": Rule.equals("x")}),
     r"new_image rules translate only with event_names=\['INSERT'\].*\['MODIFY'\]"),
    (StreamFilter(event_names=["INSERT"], old_image={"status": Rule.equals("x")}),
     r"old_image rules translate only with event_names=\['REMOVE'\]"),
    (StreamFilter(keys={"other": Rule.equals("x")}),
     r"keys\['other'\] filters on 'other', which the router does not publish .* routing_attributes"),
    (StreamFilter(keys={"status": Rule.equals("x")}),
     r"'status' is not a key attribute of the table"),
    (StreamFilter(size_bytes=Rule.numeric(">", 100)),
     r"size_bytes \[\{'numeric': \['>', 100\]\}\] cannot become an SNS filter policy"),
    (StreamFilter(approximate_creation_time=Rule.numeric(">", 1)), "approximate_creation_time"),
    (StreamFilter.from_pattern({"eventSource": ["aws:dynamodb"]}),
     r"pattern fields \['eventSource'\] .* cannot become an SNS filter policy"),
    (StreamFilter(event_names=["INSERT"], new_image={"status": Rule.exists()}),
     r"Rule.exists\(True,\) on type 'S'.*never publishes empty strings"),
    (StreamFilter(event_names=["INSERT"], new_image={"status": Rule.equals("")}),
     "never publishes empty strings"),
    (StreamFilter(event_names=["INSERT"], new_image={"nums": Rule.equals(1, attribute_type="NS")}),
     "SNS documents no numeric matching on arrays"),
    (StreamFilter(event_names=["INSERT"], new_image={"n": Rule.prefix("1", attribute_type="N")}),
     "string operators do not match"),
    (StreamFilter(event_names=["INSERT"], new_image={"n": Rule.equals(2_000_000_000)}),
     "from -1e9 to 1e9"),
    (StreamFilter(event_names=["INSERT"], new_image={"n": Rule.equals("x", attribute_type="B")}),
     "the router does not publish attributes of that type"),
    (StreamFilter(event_names=["INSERT"],
                  new_image={"tags": Rule.anything_but("x", attribute_type="SS")}),
     "anything-but on a set"),
    (StreamFilter(event_names=["INSERT"], keys={"ListId": Rule.equals("a")},
                  new_image={"ListId": Rule.equals("b")}),
     "'ListId' already has a rule in this filter"),
    (StreamFilter(event_names=["REMOVE"], keys={"ListId": Rule.equals("a")},
                  old_image={k: Rule.equals("x") for k in ("status", "n", "flag", "tags")}),
     r"has 6 filter policy keys, SNS allows 5"),
    (StreamFilter(keys={"ListId": Rule.equals(*[f"v{i}" for i in range(151)])}),
     r"has 151 filter policy value combinations, SNS allows 150"),
])
def test_fails_a_filter_that_cannot_become_a_policy(stack, stream_filter, message):
    with pytest.raises(ValueError, match=message):
        _policy(stack, stream_filter)


def test_fails_several_filters_on_one_subscription(stack):
    fan_out = _fan_out(stack)
    with pytest.raises(ValueError, match=r"User/Source: filters has 2 StreamFilters .* give one"):
        _user(stack, fan_out, filters=[StreamFilter(event_names=["INSERT"]),
                                      StreamFilter(event_names=["REMOVE"])])


def test_fails_a_user_filter_naming_the_prop_at_synth(stack):
    fan_out = _fan_out(stack)
    with pytest.raises(ValueError, match=r"SimpleController TestStack/User/Source: filters: keys"):
        _user(stack, fan_out, filters=[StreamFilter(keys={"ListId": Rule.equals("a")})])


def test_fails_ttl_filter_on_a_fan_out_without_ttl_expiry(stack):
    table = tasks(stack)
    complex_controller = ComplexController(
        stack, "Complex", table=table,
        processors={"p": Processor(route=Route(), code=CODE, handler="index.handler")})
    with pytest.raises(ValueError, match=r"userIdentity .* only StreamFilter.ttl_expiry\(\) translates"):
        TtlArchiver(stack, "Archive", table=table, source=complex_controller)


def test_fails_a_fan_out_on_another_table(stack):
    fan_out = _fan_out(stack)
    other = _other_table(stack, "Other", time_to_live_attribute="ttl")
    with pytest.raises(ValueError, match=(
            r"TtlArchiver: source StreamFanOut 'TestStack/FanOut' carries the changes of table "
            r"'TestStack/Tasks', not of this pattern's table 'TestStack/Other'")):
        TtlArchiver(stack, "Archive", table=other, source=fan_out)


def test_fails_a_pattern_needing_images_the_fan_out_table_lacks(stack):
    table = tasks(stack, stream_view_type=dynamodb.StreamViewType.NEW_IMAGE)
    fan_out = _fan_out(stack, table=table)
    with pytest.raises(ValueError, match="streams NEW_IMAGE, but AggregateCounter reads both images"):
        AggregateCounter(stack, "Counts", table=table, group_attribute="ListId", source=fan_out)
    # The fan-out checks them itself too, for any source user.
    function = lambda_.Function(stack, "F", code=CODE, handler="index.handler",
                                runtime=lambda_.Runtime.PYTHON_3_13)
    with pytest.raises(ValueError, match="streams NEW_IMAGE, but Mine reads the old image"):
        fan_out.bind(stack, "Mine", function=function,
                     consumer=ConsumerSpec(pattern="Mine", table=table, needs="old"))
    with pytest.raises(ValueError, match="TableReplicator with a transform reads both images"):
        TableReplicator(stack, "Copy", table=table, target_table=_other_table(stack, "Target"),
                        transform="t:f", transform_code=CODE, source=fan_out)


def test_fails_more_consumers_than_a_fifo_topic_allows(stack):
    fan_out = _fan_out(stack, fifo=True)
    function = lambda_.Function.from_function_name(stack, "Imported", "f")
    source = fan_out.with_queue(QueueOptions(visibility_timeout=cdk.Duration.minutes(1)))
    quiet = Monitoring(alarms=False)
    for i in range(100):
        SimpleController(stack, f"C{i}", table=fan_out.table, function=function, source=source,
                         monitoring=quiet)
    with pytest.raises(ValueError, match=(
            r"SimpleController TestStack/C100/Source: StreamFanOut 'TestStack/FanOut' is FIFO, "
            r"and a FIFO topic takes at most 100 subscriptions \(SNS quota\); this is "
            r"subscription 101: use fifo=False")):
        SimpleController(stack, "C100", table=fan_out.table, function=function, source=source,
                         monitoring=quiet)


def test_fails_stream_options_on_a_fan_out(stack):
    fan_out = _fan_out(stack)
    with pytest.raises(ValueError, match=(
            r"TtlArchiver TestStack/Archive/Controller: stream_options configure reading the "
            r"table's stream.*with_queue\(QueueOptions")):
        TtlArchiver(stack, "Archive", table=fan_out.table, source=fan_out,
                    stream_options=StreamOptions(batch_size=10))


def test_fails_stream_props_of_a_simple_controller_on_a_fan_out(stack):
    fan_out = _fan_out(stack)
    with pytest.raises(ValueError, match=(
            r"SimpleController TestStack/User/Source: batch_size, retry_attempts configure the "
            r"event source mapping on the table's stream, but source StreamFanOut "
            r"'TestStack/FanOut' feeds the function from a queue.*\{'batch_size': 50, "
            r"'retry_attempts': 3\}")):
        _user(stack, fan_out, batch_size=50, retry_attempts=3)


@pytest.mark.parametrize(("options", "fifo", "message"), [
    (dict(batch_size=20, max_batching_window=cdk.Duration.seconds(1)), True,
     r"queue_options.batch_size must be between 1 and 10, got 20"),
    (dict(batch_size=20), False, "queue_options.batch_size above 10 needs max_batching_window"),
    (dict(max_batching_window=cdk.Duration.seconds(5)), True,
     r"queue_options.max_batching_window is not supported for FIFO queues \(Lambda\), got "
     r"Duration.seconds\(5\)|queue_options.max_batching_window is not supported for FIFO"),
    (dict(max_receive_count=2), False, "queue_options.max_receive_count must be at least 5"),
    (dict(max_concurrency=1), False, "queue_options.max_concurrency"),
    (dict(visibility_timeout=cdk.Duration.seconds(60)), False,
     r"queue_options.visibility_timeout must be at least 6 x the function timeout \(180 s\), got 60 s"),
])
def test_fails_bad_queue_options(stack, options, fifo, message):
    fan_out = _fan_out(stack, fifo=fifo)
    with pytest.raises(ValueError, match=message):
        TtlArchiver(stack, "Archive", table=fan_out.table,
                    source=fan_out.with_queue(QueueOptions(**options)))


def test_a_function_imported_without_its_role_is_warned_about_claim_checks(stack):
    # add_to_role_policy is a no-op without a role: records over 256 KB would reach the
    # function as claim checks it may not read, and end in the DLQ with no other sign.
    from aws_cdk.assertions import Annotations, Match

    from ddb_stream_patterns.stream_fan_out import CLAIM_CHECK_ROLE_WARNING

    fan_out = _fan_out(stack)
    imported = lambda_.Function.from_function_attributes(
        stack, "Imported", function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        same_environment=True)
    SimpleController(stack, "User", table=fan_out.table, function=imported, source=fan_out.with_queue(
        QueueOptions(visibility_timeout=cdk.Duration.minutes(6))))
    warnings = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp(f"without its role.*s3:GetObject.*{CLAIM_CHECK_ROLE_WARNING}"))
    assert len(warnings) == 1, warnings
    # Without a claim-check bucket nothing needs the role: no warning.
    other = cdk.Stack(cdk.App(), "NoClaims")
    fan_out = StreamFanOut(other, "FanOut", table=tasks(other), claim_check=False)
    imported = lambda_.Function.from_function_attributes(
        other, "Imported", function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        same_environment=True)
    SimpleController(other, "User", table=fan_out.table, function=imported, source=fan_out.with_queue(
        QueueOptions(visibility_timeout=cdk.Duration.minutes(6))))
    assert not Annotations.from_stack(other).find_warning(
        "*", Match.string_like_regexp(CLAIM_CHECK_ROLE_WARNING))


def test_fails_more_routing_attributes_than_the_message_allows(stack):
    with pytest.raises(ValueError, match=(
            r"routing_attributes allows at most 7 names .* got 8")):
        _fan_out(stack, routing_attributes=[f"a{i}" for i in range(8)])
    with pytest.raises(ValueError, match="invalid or reserved name 'ttlExpiry'"):
        StreamFanOut(stack, "F2", table=_other_table(stack, "T3"), routing_attributes=["ttlExpiry"])


def test_fails_a_source_that_is_not_one(stack):
    table = tasks(stack)
    with pytest.raises(TypeError, match=r"TtlArchiver: source must be None .* got str 'stream'"):
        TtlArchiver(stack, "Archive", table=table, source="stream")
    with pytest.raises(TypeError, match=r"SimpleController: source must be None .* got Stream"):
        SimpleController(stack, "C", table=table, code=CODE, handler="index.handler",
                         source=table)


def test_fails_max_concurrency_above_the_functions_reserved_concurrency(stack):
    fan_out = _fan_out(stack)
    with pytest.raises(ValueError, match=(
            r"queue_options.max_concurrency \(5\) must not exceed the reserved concurrency of "
            r"function 'TestStack/Archive/Function' \(2\)")):
        TtlArchiver(stack, "Archive", table=fan_out.table,
                    function_options=lambda_.FunctionOptions(reserved_concurrent_executions=2),
                    source=fan_out.with_queue(QueueOptions(max_concurrency=5)))


def test_a_complex_controller_is_a_fan_out_for_the_patterns_too(stack):
    table = tasks(stack)
    controller = ComplexController(
        stack, "Complex", table=table, routing_attributes=["ListId"],
        processors={"p": Processor(route=Route(event_names=["INSERT"]), code=CODE,
                                   handler="index.handler")})
    counter = AggregateCounter(stack, "Counts", table=table, group_attribute="ListId",
                               source=controller)
    assert controller.consumers == [counter.controller]
    assert len(_stream_mappings(stack)) == 1
    assert _subscription_of(stack, counter.controller.queue).get("FilterPolicy") is None
    # Its router keeps its configuration: no ttlExpiry (so up to 8 routing attributes).
    env = resource(stack, controller.controller_function)["Properties"]["Environment"]["Variables"]
    assert "PUBLISH_TTL_EXPIRY" not in env
