"""OpenSearch domains created before the log resource policy they need."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ._model import PACK, Assembly, Finding, Rule, Template, as_list, boolean

__all__ = ["LOG_POLICY_ORDER", "CHECKS"]

DOMAIN_TYPES = ("AWS::OpenSearchService::Domain", "AWS::Elasticsearch::Domain")
# CDK writes the policy itself (AWS::Logs::ResourcePolicy) or, by default, through a
# custom resource; either grants the service principal below.
POLICY_TYPES = ("AWS::Logs::ResourcePolicy", "Custom::CloudwatchLogResourcePolicy")
PRINCIPAL = "es.amazonaws.com"

LOG_POLICY_ORDER = Rule(
    f"{PACK}-OS1",
    "OpenSearch domain not depending on its log group resource policy",
    "Before log publishing is enabled, the CloudWatch Logs log groups must exist and "
    "OpenSearch Service (es.amazonaws.com) must have permission to write to them. Without "
    "DependsOn, CloudFormation may create the domain in parallel with the resource policy, "
    "and creation fails because the policy does not yet grant sufficient permissions.",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/"
    "aws-properties-opensearchservice-domain-logpublishingoption.html",
)


def _referenced(value: Any) -> set[str]:
    """Logical IDs ``value`` refers to through ``Ref`` or ``Fn::GetAtt``."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, arg in item.items():
                if key == "Ref" and isinstance(arg, str):
                    found.add(arg)
                elif key == "Fn::GetAtt":
                    target = arg.split(".", 1)[0] if isinstance(arg, str) else (arg or [None])[0]
                    if isinstance(target, str):
                        found.add(target)
                else:
                    stack.append(arg)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _depends_on(template: Template, logical_id: str) -> set[str]:
    """Everything ``logical_id`` waits for: DependsOn and references, transitively."""
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        resource = template.resources.get(todo.pop())
        if not isinstance(resource, dict):
            continue
        direct = {d for d in as_list(resource.get("DependsOn")) if isinstance(d, str)}
        direct |= _referenced(resource.get("Properties"))
        for dependency in direct - seen:
            seen.add(dependency)
            todo.append(dependency)
    return seen


def _log_groups(props: dict[str, Any]) -> set[str]:
    options = props.get("LogPublishingOptions")
    groups: set[str] = set()
    for option in options.values() if isinstance(options, dict) else ():
        if isinstance(option, dict) and boolean(option.get("Enabled")) and option.get(
            "CloudWatchLogsLogGroupArn"
        ):
            groups |= _referenced(option["CloudWatchLogsLogGroupArn"]) or {"*"}
    return groups


def check_log_policy_order(asm: Assembly) -> Iterator[Finding]:
    for template in asm.templates.values():
        policies = {
            logical_id: _referenced(props)
            for logical_id, props in template.properties_of(*POLICY_TYPES)
            if PRINCIPAL in json.dumps(props)
        }
        if not policies:
            continue  # nothing in this stack to wait for
        for logical_id, props in template.properties_of(*DOMAIN_TYPES):
            groups = _log_groups(props)
            if not groups:
                continue
            relevant = [p for p, refs in policies.items() if refs & groups] or list(policies)
            if set(relevant) & _depends_on(template, logical_id):
                continue
            names = ", ".join(template.name_of(p) for p in relevant)
            yield asm.finding(
                LOG_POLICY_ORDER,
                template,
                logical_id,
                f"domain {template.name_of(logical_id)} publishes logs to CloudWatch Logs but "
                f"does not depend on the resource policy granting {PRINCIPAL} ({names})",
                "DependsOn",
            )


CHECKS = ((LOG_POLICY_ORDER, check_log_policy_order),)
