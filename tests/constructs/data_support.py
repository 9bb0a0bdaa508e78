"""Shared set-up for the data-pattern construct tests."""

from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
from aws_cdk.assertions import Template

from ddb_stream_patterns import StreamTable

KEY = {
    "partition_key": dynamodb.Attribute(name="ListId", type=dynamodb.AttributeType.STRING),
    "sort_key": dynamodb.Attribute(name="TaskId", type=dynamodb.AttributeType.STRING),
}


def tasks(stack: cdk.Stack, **kwargs) -> StreamTable:
    kwargs.setdefault("time_to_live_attribute", "expiresAt")
    return StreamTable(stack, "Tasks", **KEY, **kwargs)


def resource(stack: cdk.Stack, construct) -> dict:
    logical = stack.get_logical_id(construct.node.default_child)
    return Template.from_stack(stack).to_json()["Resources"][logical]


def env_of(stack: cdk.Stack, function) -> dict:
    return resource(stack, function)["Properties"]["Environment"]["Variables"]


def role_statements(stack: cdk.Stack, function) -> list[dict]:
    role = stack.get_logical_id(function.role.node.default_child)
    return [
        s
        for p in Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role}]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions(statements: list[dict]) -> set[str]:
    return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def mapping_of(stack: cdk.Stack, controller) -> dict:
    return resource(stack, controller.event_source_mapping)["Properties"]


def patterns(mapping: dict) -> list[dict]:
    return [json.loads(f["Pattern"]) for f in mapping.get("FilterCriteria", {}).get("Filters", [])]
