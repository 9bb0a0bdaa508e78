"""The example app: snapshots of every stack, and assertions on the properties that matter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from syrupy.extensions.json import JSONSnapshotExtension

from ddb_stream_patterns import StreamFilter
from tests.support import REPO, mask_assets

STACKS = [
    "DdbStreamPatterns-SimpleController",
    "DdbStreamPatterns-ComplexController",
    "DdbStreamPatterns-DataPatterns",
    "DdbStreamPatterns-KinesisPatterns",
]


def _stack(app: cdk.App, name: str) -> cdk.Stack:
    stack = app.node.find_child(name)
    assert isinstance(stack, cdk.Stack)
    return stack


def test_app_has_one_stack_per_pattern(example_app):
    names = sorted(c.node.id for c in example_app.node.children if isinstance(c, cdk.Stack))
    assert names == sorted(STACKS)


@pytest.mark.parametrize("name", STACKS)
def test_snapshot(example_app, name, snapshot):
    template = Template.from_stack(_stack(example_app, name)).to_json()
    assert mask_assets(template) == snapshot(extension_class=JSONSnapshotExtension)


def test_simple_controller_notifies_on_status_modify(example_app):
    stack = _stack(example_app, "DdbStreamPatterns-SimpleController")
    template = Template.from_stack(stack)
    mapping = next(iter(template.find_resources("AWS::Lambda::EventSourceMapping").values()))
    patterns = [json.loads(f["Pattern"]) for f in mapping["Properties"]["FilterCriteria"]["Filters"]]
    assert patterns == [
        {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"status": {"S": [{"exists": True}]}}}}
    ]
    pattern = StreamFilter.from_pattern(patterns[0])
    modify = {"eventName": "MODIFY", "dynamodb": {"NewImage": {"status": {"S": "shipped"}}}}
    assert pattern.matches(modify)
    assert not pattern.matches({**modify, "eventName": "INSERT"})
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "index.handler",
        "Environment": {"Variables": {"TOPIC_ARN": {"Ref": Match.string_like_regexp("^StatusNotifications")}}},
    })
    template.has_resource_properties("AWS::SNS::Topic", {
        "KmsMasterKeyId": Match.any_value(),
    })
    template.has_resource_properties("AWS::DynamoDB::GlobalTable", {
        "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
        "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
    })


def test_complex_controller_routes_each_event_to_its_processor(example_app):
    stack = _stack(example_app, "DdbStreamPatterns-ComplexController")
    template = Template.from_stack(stack)
    controller = stack.node.find_child("CustomerEvents")
    policies = {}
    for sub in template.find_resources("AWS::SNS::Subscription").values():
        queue = sub["Properties"]["Endpoint"]["Fn::GetAtt"][0]
        policies[queue] = sub["Properties"]["FilterPolicy"]
        assert sub["Properties"]["RawMessageDelivery"] is True

    def policy(name):
        return policies[stack.get_logical_id(controller.queues[name].node.default_child)]

    assert policy("Welcome") == {"eventName": ["INSERT"]}
    assert policy("StatusNotifier") == {"eventName": ["MODIFY"], "status": [{"exists": True}]}
    assert policy("Audit") == {"eventName": ["REMOVE"]}
    notifier_queue = template.to_json()["Resources"][
        stack.get_logical_id(controller.queues["StatusNotifier"].node.default_child)]
    assert notifier_queue["Properties"]["DelaySeconds"] == 300
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "ScalingConfig": {"MaximumConcurrency": 2},
        "EventSourceArn": {"Fn::GetAtt": [
            stack.get_logical_id(controller.queues["StatusNotifier"].node.default_child), "Arn"]},
    })
    handlers = sorted(
        f["Properties"]["Handler"] for f in template.find_resources("AWS::Lambda::Function").values()
    )
    assert handlers == ["ddb_stream_runtime.router.handler", "index.audit_handler",
                        "index.notify_handler", "index.welcome_handler"]


def test_cdk_cli_synthesizes_the_app_offline(tmp_path):
    """The README's main command path: the pinned CDK CLI runs cdk.json's app."""
    cli = REPO / "scripts" / "cdk"
    assert (REPO / "node_modules" / ".bin" / "cdk").exists(), "run ./scripts/bootstrap first"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["CDK_DISABLE_VERSION_CHECK"] = "true"
    # cdk.json runs `python examples/app.py`: make that this interpreter, with this install.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(cli), "synth", "--quiet", "--no-notices", "--output", str(tmp_path / "cdk.out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in STACKS:
        template = json.loads((tmp_path / "cdk.out" / f"{name}.template.json").read_text())
        assert "AWS::Lambda::EventSourceMapping" in {
            r["Type"] for r in template["Resources"].values()
        }


def test_every_shipped_handler_path_resolves(example_app):
    """Each function running our runtime names a handler that exists and is callable."""
    import importlib

    handlers = set()
    for name in STACKS:
        template = Template.from_stack(_stack(example_app, name))
        for function in template.find_resources("AWS::Lambda::Function").values():
            handler = function["Properties"]["Handler"]
            if handler.startswith("ddb_stream_runtime."):
                handlers.add(handler)
    assert handlers == {f"ddb_stream_runtime.{m}.handler" for m in
                        ("router", "archiver", "counter", "indexer", "replicator", "role_mapping")}
    for handler in handlers:
        module, attribute = handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attribute))


def test_data_patterns_read_their_stream_through_one_fan_out(example_app):
    stack = _stack(example_app, "DdbStreamPatterns-DataPatterns")
    template = Template.from_stack(stack)
    resources = template.to_json()["Resources"]
    table_ids = {k for k, r in resources.items() if r["Type"] == "AWS::DynamoDB::GlobalTable"}
    readers: dict[str, list[str]] = {}
    queue_fed = []
    for logical_id, mapping in template.find_resources("AWS::Lambda::EventSourceMapping").items():
        source = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"]
        if source[0] in table_ids:
            readers.setdefault(source[0], []).append(logical_id)
        else:
            assert resources[source[0]]["Type"] == "AWS::SQS::Queue"
            queue_fed.append(mapping["Properties"]["FunctionName"]["Ref"])
    todo = stack.get_logical_id(stack.table.node.default_child)
    # The todo table's stream has one reader (the router); the counter's own table none.
    assert {k: len(v) for k, v in readers.items()} == {todo: 1}
    patterns = [stack.archiver, stack.counter, stack.indexer, stack.replicator]
    assert sorted(queue_fed) == sorted(
        stack.get_logical_id(p.function.node.default_child) for p in patterns)
    # Same handlers as on the stream.
    assert {resources[stack.get_logical_id(p.function.node.default_child)]["Properties"]["Handler"]
            for p in patterns} == {f"ddb_stream_runtime.{m}.handler"
                                   for m in ("archiver", "counter", "indexer", "replicator")}
    policies = {
        s["Properties"]["Endpoint"]["Fn::GetAtt"][0]: s["Properties"].get("FilterPolicy")
        for s in template.find_resources("AWS::SNS::Subscription").values()
    }
    assert len(policies) == 4
    assert policies[stack.get_logical_id(stack.archiver.controller.queue.node.default_child)] == {
        "eventName": ["REMOVE"], "ttlExpiry": ["true"]}
    for pattern in (stack.counter, stack.indexer, stack.replicator):
        assert policies[stack.get_logical_id(pattern.controller.queue.node.default_child)] is None
    router = resources[stack.get_logical_id(stack.fan_out.controller_function.node.default_child)]
    assert router["Properties"]["Environment"]["Variables"]["PUBLISH_TTL_EXPIRY"] == "true"


def test_data_patterns_synth_without_readers_warning_or_acknowledgment(example_app):
    stack = _stack(example_app, "DdbStreamPatterns-DataPatterns")
    artifact = example_app.synth().get_stack_artifact(stack.artifact_id)
    warnings = [str(e.data) for e in artifact.find_metadata_by_type("aws:cdk:warning")]
    assert not [w for w in warnings if "stream readers" in w]
    acknowledged = [
        entry.data for c in stack.node.find_all() for entry in c.node.metadata
        if "acknowledge" in entry.type.lower() and isinstance(entry.data, dict)
    ]
    assert not [a for a in acknowledged if "StreamPatterns-DDB1" in a]
