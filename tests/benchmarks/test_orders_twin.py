"""The synth benchmark's twins make the same resources, so neither is cheaper by omission.

``benchmarks/orders_app.py`` (issue 16's user app, written with this library) is timed
against ``benchmarks/orders_app_plain.py`` (the same topology with plain aws-cdk-lib
L2s). One synth of each, in this test process's jsii kernel.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from types import ModuleType

import aws_cdk as cdk
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resource_types(name: str) -> Counter[str]:
    module = load(name)
    app = module.build_app(cdk.App())
    template = app.synth().get_stack_by_name(module.STACK_NAME).template
    return Counter(resource["Type"] for resource in template["Resources"].values())


@pytest.fixture(scope="module")
def counts() -> dict[str, Counter[str]]:
    return {name: resource_types(name) for name in ("orders_app", "orders_app_plain")}


def test_the_user_app_has_the_issue_topology(counts: dict[str, Counter[str]]) -> None:
    ours = counts["orders_app"]
    # StreamTable + the counter table; a function per controller, data pattern and processor
    assert ours["AWS::DynamoDB::GlobalTable"] == 2
    assert ours["AWS::Lambda::Function"] == 6
    assert ours["AWS::Lambda::EventSourceMapping"] == 6  # 4 on the stream, 2 on queues
    assert ours["AWS::SNS::Subscription"] == 2  # two routes
    assert ours["AWS::CloudWatch::Alarm"] > 0


def test_the_plain_twin_makes_the_same_resources(counts: dict[str, Counter[str]]) -> None:
    assert sum(counts["orders_app"].values()) > 50
    assert counts["orders_app_plain"] == counts["orders_app"]
