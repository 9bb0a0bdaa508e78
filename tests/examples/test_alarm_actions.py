"""Every example alarm notifies a topic that CloudWatch can publish to.

Read from the synthesized templates, as a real account would see them: a topic encrypted
with SNS's AWS managed key, or whose topic policy does not let ``cloudwatch.amazonaws.com``
publish, never receives an alarm (SNS Developer Guide, "Key management", compatibility
with AWS services).
"""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from .test_app import STACKS

CLOUDWATCH = "cloudwatch.amazonaws.com"


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _cloudwatch_allowed(document: dict, actions: set[str]) -> list[dict]:
    """Allow statements naming CloudWatch as principal and covering every action."""
    return [
        s for s in document["Statement"]
        if s["Effect"] == "Allow"
        and CLOUDWATCH in _as_list(s.get("Principal", {}).get("Service", []))
        and actions <= set(_as_list(s["Action"]))
    ]


@pytest.mark.parametrize("name", STACKS)
def test_every_alarm_notifies_a_topic_cloudwatch_can_publish_to(example_app, name):
    stack = example_app.node.find_child(name)
    resources = Template.from_stack(stack).to_json()["Resources"]
    alarms = {k: r for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms, f"{name} has no alarms"
    topics = set()
    for logical, alarm in alarms.items():
        actions = alarm["Properties"].get("AlarmActions", [])
        assert actions, f"{name}/{logical} notifies nobody"
        assert alarm["Properties"]["OKActions"] == actions
        topics |= {a["Ref"] for a in actions}
    for topic in topics:
        assert resources[topic]["Type"] == "AWS::SNS::Topic"
        key_id = resources[topic]["Properties"].get("KmsMasterKeyId")
        if key_id is not None:
            # A key of this template (customer managed), never alias/aws/sns.
            assert isinstance(key_id, dict) and "Fn::GetAtt" in key_id, f"{topic} uses {key_id}"
            key = resources[key_id["Fn::GetAtt"][0]]
            assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
            grants = _cloudwatch_allowed(key["Properties"]["KeyPolicy"], {"kms:GenerateDataKey*", "kms:Decrypt"})
            assert grants, f"the key of {topic} does not let CloudWatch use it"
        policies = [
            r["Properties"]["PolicyDocument"] for r in resources.values()
            if r["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": topic} in r["Properties"]["Topics"]
        ]
        assert len(policies) == 1
        publish = _cloudwatch_allowed(policies[0], {"sns:Publish"})
        assert publish, f"the topic policy of {topic} does not let CloudWatch publish"
        assert all("aws:SourceAccount" in s["Condition"]["StringEquals"] for s in publish)
        assert all("aws:SourceArn" in s["Condition"]["ArnLike"] for s in publish)
