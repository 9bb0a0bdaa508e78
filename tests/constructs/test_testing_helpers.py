"""ddb_stream_patterns.testing: what users import in their own tests."""

from __future__ import annotations

import os

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import pytest

import ddb_stream_patterns.testing as testing
from ddb_stream_patterns import SimpleController, StreamTable
from ddb_stream_patterns.testing import mask_assets, resources_of, snapshot_template

KEY = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)


def orders_stack(handlers) -> tuple[cdk.Stack, SimpleController]:
    stack = cdk.Stack(cdk.App(), "Orders")
    table = StreamTable(stack, "Orders", partition_key=KEY)
    notifier = SimpleController(stack, "Notifier", table=table,
                                code=lambda_.Code.from_asset(str(handlers)),
                                handler="app.handler")
    return stack, notifier


def test_mask_assets_masks_hashes_and_asset_paths() -> None:
    digest = "ab" * 32
    template = {"S3Key": f"{digest}.zip", "Metadata": {"aws:asset:path": f"asset.{digest}"},
                "n": 1, "l": [f"x{digest}"]}
    assert mask_assets(template) == {
        "S3Key": "<asset-hash>.zip", "Metadata": {"aws:asset:path": "<asset-path>"},
        "n": 1, "l": ["x<asset-hash>"],
    }


def test_snapshot_template_is_the_same_for_other_code_and_another_working_directory(
    tmp_path, monkeypatch
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, body in ((one, "pass"), (two, "return 1")):
        folder.mkdir()
        (folder / "app.py").write_text(f"def handler(event, context):\n    {body}\n")
    first = snapshot_template(orders_stack(one)[0])
    monkeypatch.chdir(two)
    second = snapshot_template(orders_stack(two)[0])
    assert "<asset-hash>" in str(first)
    assert first == second
    raw = cdk.assertions.Template.from_stack(orders_stack(two)[0]).to_json()
    assert raw != first  # the unmasked ones differ: masking is what makes them equal
    assert os.getcwd() == str(two)


def test_resources_of_finds_a_constructs_resources_by_path(tmp_path) -> None:
    (tmp_path / "app.py").write_text("def handler(event, context):\n    pass\n")
    stack, notifier = orders_stack(tmp_path)
    [mapping] = resources_of(stack, notifier, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["BatchSize"] == 100
    assert mapping["LogicalId"] == stack.resolve(
        stack.get_logical_id(notifier.event_source_mapping.node.default_child))
    all_of_it = resources_of(stack, notifier)
    types = {r["Type"] for r in all_of_it}
    assert {"AWS::Lambda::Function", "AWS::S3::Bucket", "AWS::IAM::Role"} <= types
    assert "AWS::DynamoDB::GlobalTable" not in types  # the table is not the notifier's
    assert resources_of(stack, notifier, "AWS::SQS::Queue") == []


def test_local_cloud_helpers_are_imported_lazily() -> None:
    from ddb_stream_patterns.local import pytest_plugin

    assert testing.run_pollers is pytest_plugin.run_pollers
    assert testing.deploy_app is pytest_plugin.deploy_app
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        testing.nope  # noqa: B018
