"""AlarmTopic, and the topics Monitoring sends alarms to: CloudWatch must be able to publish."""

from __future__ import annotations

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_iam as iam
import aws_cdk.aws_kms as kms
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from ddb_stream_patterns import (
    AlarmTopic,
    ComplexController,
    Monitoring,
    Processor,
    Route,
    SimpleController,
    StreamTable,
)

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")
SOURCE = {
    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    "ArnLike": {"aws:SourceArn": {"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:", {"Ref": "AWS::Region"}, ":",
        {"Ref": "AWS::AccountId"}, ":alarm:*",
    ]]}},
}


def _simple(stack, id="Simple", **kwargs) -> SimpleController:
    table = StreamTable(stack, f"{id}Table", partition_key=PK)
    return SimpleController(stack, id, table=table, code=CODE, handler="index.handler", **kwargs)


def _actions(stack, controller) -> set[str]:
    """Every alarm's AlarmActions and OKActions, as one set of rendered values."""
    resources = Template.from_stack(stack).to_json()["Resources"]
    found = set()
    for alarm in controller.alarms.values():
        props = resources[stack.get_logical_id(alarm.node.default_child)]["Properties"]
        found |= {str(a) for a in props.get("AlarmActions", [])}
        found |= {str(a) for a in props.get("OKActions", [])}
    return found


def _ref(stack, topic) -> str:
    return str({"Ref": stack.get_logical_id(topic.node.default_child)})


def _synth_errors(stack) -> str:
    with pytest.raises(RuntimeError) as raised:
        Template.from_stack(stack)
    return str(raised.value)


# -- AlarmTopic ---------------------------------------------------------------------


def test_alarm_topic_key_and_policies_let_cloudwatch_publish(stack):
    alarms = AlarmTopic(stack, "Alarms", display_name="On-call")
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::KMS::Key", 1)
    template.resource_count_is("AWS::SNS::Topic", 1)
    key = stack.get_logical_id(alarms.key.node.default_child)
    template.has_resource("AWS::KMS::Key", {
        "Properties": {
            "EnableKeyRotation": True,
            "KeyPolicy": {"Statement": Match.array_with([{
                "Sid": "AllowCloudWatchAlarmsToUseTheKey",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
            }])},
        },
        "DeletionPolicy": "Retain",
    })
    [key_resource] = template.find_resources("AWS::KMS::Key").values()
    [cloudwatch_statement] = [
        s for s in key_resource["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Sid") == "AllowCloudWatchAlarmsToUseTheKey"
    ]
    # As in AWS's documented statement: a condition the KMS request may not carry would
    # silently drop every alarm; the topic policy is what scopes publishing.
    assert "Condition" not in cloudwatch_statement
    template.has_resource_properties("AWS::SNS::Topic", {
        "KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}, "DisplayName": "On-call",
    })
    topic = {"Ref": stack.get_logical_id(alarms.topic.node.default_child)}
    template.has_resource_properties("AWS::SNS::TopicPolicy", {
        "Topics": [topic],
        "PolicyDocument": {"Statement": [
            Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
            {
                "Sid": "AllowCloudWatchAlarmsToPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic,
                "Condition": SOURCE,
            },
        ]},
    })
    assert alarms.topic_arn == alarms.topic.topic_arn


def test_alarm_topic_key_removal_policy(stack):
    AlarmTopic(stack, "Alarms", removal_policy=cdk.RemovalPolicy.DESTROY)
    Template.from_stack(stack).has_resource("AWS::KMS::Key", {"DeletionPolicy": "Delete"})


# -- the topic Monitoring uses --------------------------------------------------------


def test_without_a_topic_every_pattern_notifies_one_alarm_topic_per_stack(stack):
    simple = _simple(stack)
    table = StreamTable(stack, "ComplexTable", partition_key=PK)
    complex_ = ComplexController(stack, "Complex", table=table, processors={
        "a": Processor(route=Route(event_names=["INSERT"]), code=CODE, handler="index.handler"),
    })
    alarm_topic = AlarmTopic.of_stack(stack)
    assert isinstance(alarm_topic, AlarmTopic) and alarm_topic.node.path == "TestStack/DdbStreamPatternsAlarms"
    assert simple.alarm_topic is alarm_topic.topic and complex_.alarm_topic is alarm_topic.topic
    assert complex_.controller.alarm_topic is alarm_topic.topic
    assert simple.alarms and complex_.alarms
    assert _actions(stack, simple) == {_ref(stack, alarm_topic.topic)}
    assert _actions(stack, complex_) == {_ref(stack, alarm_topic.topic)}
    Template.from_stack(stack).resource_count_is("AWS::KMS::Key", 1)


def test_opting_out_of_the_created_topic(stack):
    simple = _simple(stack, monitoring=Monitoring(create_alarm_topic=False))
    assert simple.alarms and simple.alarm_topic is None
    assert _actions(stack, simple) == set()
    Template.from_stack(stack).resource_count_is("AWS::KMS::Key", 0)
    assert stack.node.try_find_child("DdbStreamPatternsAlarms") is None


def test_no_alarms_no_topic(stack):
    simple = _simple(stack, monitoring=Monitoring(alarms=False))
    assert simple.alarms == {} and simple.alarm_topic is None
    Template.from_stack(stack).resource_count_is("AWS::SNS::Topic", 0)


def test_an_alarm_topic_can_be_given_as_is(stack):
    alarms = AlarmTopic(stack, "OnCall")
    simple = _simple(stack, monitoring=Monitoring(alarm_topic=alarms))
    assert simple.alarm_topic is alarms.topic
    assert _actions(stack, simple) == {_ref(stack, alarms.topic)}
    assert stack.node.try_find_child("DdbStreamPatternsAlarms") is None


def test_stack_topic_id_taken_by_something_else(stack):
    sns.Topic(stack, "DdbStreamPatternsAlarms")
    with pytest.raises(ValueError, match="construct id 'DdbStreamPatternsAlarms' in stack 'TestStack' is taken by Topic"):
        _simple(stack)


# -- topics CloudWatch cannot publish to ----------------------------------------------


def test_aws_managed_key_is_refused(stack):
    topic = sns.Topic(stack, "Alarms", enforce_ssl=True,
                      master_key=kms.Alias.from_alias_name(stack, "Managed", "alias/aws/sns"))
    with pytest.raises(ValueError) as raised:
        Monitoring(alarm_topic=topic)
    message = str(raised.value)
    assert "monitoring.alarm_topic 'TestStack/Alarms'" in message
    assert "'alias/aws/sns'" in message and "AlarmTopic" in message


def test_aws_managed_key_arn_is_refused(stack):
    key = kms.Key.from_key_arn(stack, "Managed", "arn:aws:kms:us-east-1:123456789012:alias/aws/sns")
    topic = sns.Topic(stack, "Alarms", master_key=key)
    with pytest.raises(ValueError, match="arn:aws:kms:us-east-1:123456789012:alias/aws/sns"):
        Monitoring(alarm_topic=topic)


def test_topic_policy_without_cloudwatch_fails_synth(stack):
    topic = sns.Topic(stack, "Alarms", enforce_ssl=True)  # the TLS deny replaces SNS's default policy
    simple = _simple(stack, monitoring=Monitoring(alarm_topic=topic))
    assert simple.alarm_topic is topic
    message = _synth_errors(stack)
    assert "[TestStack/Alarms] monitoring.alarm_topic 'TestStack/Alarms' has a topic policy" in message
    assert "cloudwatch.amazonaws.com to sns:Publish" in message and "AlarmTopic" in message


def test_statement_added_after_the_pattern_counts(stack):
    topic = sns.Topic(stack, "Alarms", enforce_ssl=True)
    _simple(stack, monitoring=Monitoring(alarm_topic=topic))
    topic.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["sns:Publish"], resources=[topic.topic_arn],
    ))
    # iterator age, errors, throttles, failure deliveries, dropped records
    Template.from_stack(stack).resource_count_is("AWS::CloudWatch::Alarm", 5)


def test_key_without_cloudwatch_fails_synth(stack):
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    topic = sns.Topic(stack, "Alarms", master_key=key)
    _simple(stack, monitoring=Monitoring(alarm_topic=topic))
    message = _synth_errors(stack)
    assert "encrypted with the key 'TestStack/Key'" in message
    assert "kms:GenerateDataKey* and kms:Decrypt" in message
    assert "has a topic policy" not in message  # no topic policy: SNS's default one applies


def test_key_and_policy_that_admit_cloudwatch_pass(stack):
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    key.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=["*"],
    ))
    topic = sns.Topic(stack, "Alarms", master_key=key, enforce_ssl=True)
    topic.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["sns:*"], resources=[topic.topic_arn],
    ))
    simple = _simple(stack, monitoring=Monitoring(alarm_topic=topic))
    assert _actions(stack, simple) == {_ref(stack, topic)}


def test_imported_topic_gets_a_warning(stack):
    topic = sns.Topic.from_topic_arn(stack, "Imported", "arn:aws:sns:us-east-1:123456789012:oncall")
    _simple(stack, monitoring=Monitoring(alarm_topic=topic))
    _simple(stack, "Other", monitoring=Monitoring(alarm_topic=topic))
    warnings = Annotations.from_stack(stack).find_warning(
        "/TestStack/Imported", Match.string_like_regexp("cannot be checked at synth")
    )
    assert len(warnings) == 1  # once, however many patterns share the topic
    message = warnings[0].entry.data
    assert "monitoring.alarm_topic 'TestStack/Imported' is imported" in message
    assert "sns:Publish" in message and "alias/aws/sns" in message


def test_imported_key_gets_a_warning(stack):
    key = kms.Key.from_key_arn(stack, "Theirs", "arn:aws:kms:us-east-1:123456789012:key/abc")
    topic = sns.Topic(stack, "Alarms", master_key=key)
    _simple(stack, monitoring=Monitoring(alarm_topic=topic))
    warnings = Annotations.from_stack(stack).find_warning(
        "/TestStack/Alarms", Match.string_like_regexp("KMS key defined outside this app")
    )
    assert len(warnings) == 1


def test_not_a_topic(stack):
    with pytest.raises(ValueError, match="monitoring.alarm_topic must be an AlarmTopic or an sns.ITopic, got 'arn:"):
        Monitoring(alarm_topic="arn:aws:sns:us-east-1:123456789012:oncall")
