"""Alarm actions that can never notify: SNS topics CloudWatch cannot publish to."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ._model import PACK, Assembly, Finding, Ref, Rule, Template, allows, as_list, text

__all__ = ["ALARM_TOPIC", "CHECKS"]

CLOUDWATCH = "cloudwatch.amazonaws.com"
ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
ACTIONS = ("AlarmActions", "OKActions", "InsufficientDataActions")
_AWS_MANAGED_ALIAS = re.compile(r"(^|[:/])alias/aws/")

ALARM_TOPIC = Rule(
    f"{PACK}-SNS1",
    "Alarm action to an SNS topic CloudWatch cannot publish to",
    "For an AWS service such as CloudWatch to publish to an encrypted topic, the topic must "
    "use a customer managed KMS key whose key policy allows the service principal "
    "(cloudwatch.amazonaws.com) kms:GenerateDataKey* and kms:Decrypt; the AWS managed key "
    "(alias/aws/sns) cannot be given that grant. A topic policy replaces the default one "
    "SNS gives new topics, so it must allow cloudwatch.amazonaws.com to sns:Publish (scoped "
    "with aws:SourceAccount/aws:SourceArn). Otherwise the alarm changes state and nobody "
    "is notified.",
    "https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html"
    "#compatibility-with-aws-services",
)


def _alarm_topics(asm: Assembly) -> dict[tuple[str, str], tuple[Ref, list[str]]]:
    """Every topic in the app some alarm action points at, with those alarms' names."""
    topics: dict[tuple[str, str], tuple[Ref, list[str]]] = {}
    for template in asm.templates.values():
        for logical_id, props in template.properties_of(*ALARM_TYPES):
            for action in (a for key in ACTIONS for a in as_list(props.get(key))):
                ref = asm.target(template, action)
                is_topic = ref is not None and ref.type == "AWS::SNS::Topic"
                if not is_topic or ref.attribute not in (None, "TopicArn"):
                    continue  # an imported topic, or not a topic: nothing we can read
                _, alarms = topics.setdefault(ref.key, (ref, []))
                name = template.name_of(logical_id)
                if name not in alarms:
                    alarms.append(name)
    return topics


def _key_problem(asm: Assembly, topic: Ref) -> str | None:
    key_id = topic.properties.get("KmsMasterKeyId")
    if key_id is None:
        return None  # not encrypted
    literal = text(key_id)
    if literal is not None and _AWS_MANAGED_ALIAS.search(literal):
        return f"it is encrypted with the AWS managed key ({literal.rsplit(':', 1)[-1]})"
    key = asm.target(topic.template, key_id)
    if key is not None and key.type == "AWS::KMS::Alias":
        alias = text(key.properties.get("AliasName"))
        if alias is not None and _AWS_MANAGED_ALIAS.search(alias):
            return f"it is encrypted with the AWS managed key ({alias})"
        key = asm.target(key.template, key.properties.get("TargetKeyId"))
    if key is None or key.type != "AWS::KMS::Key":
        return None  # a key outside the app: its policy cannot be read here
    policy = key.properties.get("KeyPolicy")
    missing = [
        action
        for action in ("kms:GenerateDataKey", "kms:Decrypt")
        if not allows(policy, CLOUDWATCH, action)
    ]
    if missing:
        shown = [a + "*" if a == "kms:GenerateDataKey" else a for a in missing]
        allowed = " and ".join(shown)
        return f"the policy of its key {key.name} does not allow {CLOUDWATCH} {allowed}"
    return None


def _topic_policies(asm: Assembly, topic: Ref) -> list[tuple[Template, str, Any]]:
    found = []
    for template in asm.templates.values():
        for logical_id, props in template.properties_of("AWS::SNS::TopicPolicy"):
            targets = (asm.target(template, t) for t in as_list(props.get("Topics")))
            if any(t is not None and t.key == topic.key for t in targets):
                found.append((template, logical_id, props.get("PolicyDocument")))
    return found


def _policy_problem(asm: Assembly, topic: Ref) -> str | None:
    policies = _topic_policies(asm, topic)
    if not policies:
        return None  # SNS's default policy admits AWS services acting for this account
    if any(allows(document, CLOUDWATCH, "sns:Publish") for _, _, document in policies):
        return None
    names = ", ".join(template.name_of(logical_id) for template, logical_id, _ in policies)
    return f"its topic policy {names} does not allow {CLOUDWATCH} to sns:Publish"


def check_alarm_topics(asm: Assembly) -> Iterator[Finding]:
    for topic, alarms in _alarm_topics(asm).values():
        problems = [p for p in (_key_problem(asm, topic), _policy_problem(asm, topic)) if p]
        if problems:
            more = f" and {len(alarms) - 3} more" if len(alarms) > 3 else ""
            shown = ", ".join(alarms[:3]) + more
            yield asm.finding(
                ALARM_TOPIC,
                topic.template,
                topic.logical_id,
                f"alarms ({shown}) notify topic {topic.name}, but " + "; and ".join(problems),
                "Properties/KmsMasterKeyId",
            )


CHECKS = ((ALARM_TOPIC, check_alarm_topics),)
