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

from ddb_stream_patterns._jsii_calls import jsii_round_trips

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synth(name: str) -> tuple[Counter[str], int]:
    """Resources per type of the app's stack, and the jsii round trips of build + synth."""
    module = load(name)
    with jsii_round_trips() as calls:
        app = module.build_app(cdk.App())
        assembly = app.synth()
    template = assembly.get_stack_by_name(module.STACK_NAME).template
    return Counter(r["Type"] for r in template["Resources"].values()), calls.calls


@pytest.fixture(scope="module")
def synthesized() -> dict[str, tuple[Counter[str], int]]:
    return {name: synth(name) for name in ("orders_app", "orders_app_plain")}


@pytest.fixture(scope="module")
def counts(synthesized: dict[str, tuple[Counter[str], int]]) -> dict[str, Counter[str]]:
    return {name: types for name, (types, _) in synthesized.items()}


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


def test_the_user_app_stays_within_its_round_trip_budget(
    synthesized: dict[str, tuple[Counter[str], int]],
) -> None:
    """Each jsii round trip is time (about 0.3-1 ms): 669 before the synth-time work of
    issue 16 (item 7), about 510 after it; then failure buckets on every stream mapping
    (a bucket, its policy and lifecycle, EventCount metrics, two alarms, the record-age
    check) made it about 645, the plain-L2 twin about 310. The budget catches a
    construct that starts asking CDK again what it already knows."""
    ours, plain = synthesized["orders_app"][1], synthesized["orders_app_plain"][1]
    assert plain > 250  # the counter saw the twin's calls
    assert ours <= 680
