"""Mapping stats are keyed by construct path and found from the construct that made them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ddb_stream_patterns.local import pytest_plugin
from ddb_stream_patterns.local.deployer import DeployedResource, Deployment
from ddb_stream_patterns.local.model import MappingSpec

NOTIFIER_ID = "ShippedNotifierFunctionDynamoDBEventSourceMyOrders2A72A05BEAA8592F"
NOTIFIER_PATH = "MyStack/ShippedNotifier/Function/DynamoDBEventSource:MyStackMyOrders2A72A05B"


def _mapping(logical_id: str, kind: str = "dynamodb") -> MappingSpec:
    return MappingSpec(logical_id=logical_id, function=SimpleNamespace(name="f"), kind=kind,
                       source_arn="arn")


@pytest.fixture
def deployment() -> Deployment:
    deployment = Deployment(cloud=None, assembly_dir=Path("."))  # type: ignore[arg-type]
    rows = [
        (NOTIFIER_ID, NOTIFIER_PATH + "/Resource", "dynamodb"),
        ("RouterStreamMapping1", "MyStack/Events/Router/Function/Stream/Resource", "dynamodb"),
        ("WelcomeQueueMapping1", "MyStack/Events/Welcome/Function/Queue/Resource", "sqs"),
    ]
    for logical_id, path, kind in rows:
        mapping = _mapping(logical_id, kind)
        deployment.mappings.append(mapping)
        deployment.stacks.setdefault("MyStack", []).append(DeployedResource(
            stack="MyStack", logical_id=logical_id, type="AWS::Lambda::EventSourceMapping",
            status="deployed", path=path, local=mapping))
    deployment.mappings[0].stats.succeeded = 3
    return deployment


def test_mapping_stats_are_keyed_by_construct_path(deployment):
    stats = deployment.mapping_stats()
    assert list(stats) == [NOTIFIER_PATH, "MyStack/Events/Router/Function/Stream",
                           "MyStack/Events/Welcome/Function/Queue"]
    assert stats[NOTIFIER_PATH].succeeded == 3


def test_stats_of_a_construct_or_its_path(deployment):
    notifier = SimpleNamespace(node=SimpleNamespace(path="MyStack/ShippedNotifier"))
    assert deployment.stats_of(notifier) is deployment.mappings[0].stats
    assert deployment.stats_of("MyStack/ShippedNotifier").succeeded == 3
    # A prefix of a sibling's name is not "under" it.
    assert deployment.stats_under("MyStack/Shipped") == {}


def test_stats_of_a_construct_with_several_mappings_names_them(deployment):
    with pytest.raises(LookupError, match=r"MyStack/Events/Router/Function/Stream.*"
                                          r"MyStack/Events/Welcome/Function/Queue"):
        deployment.stats_of("MyStack/Events")
    assert len(deployment.stats_under("MyStack/Events")) == 2
    assert deployment.stats_of("MyStack/Events/Welcome").succeeded == 0
    with pytest.raises(TypeError, match="construct path string, got int 3"):
        deployment.stats_of(3)


def test_run_pollers_keys_by_path_and_still_answers_logical_ids(deployment, monkeypatch):
    ran = []

    class FakePollers:
        def __init__(self, mappings, client, clock_scale):
            ran.append(list(mappings))

        def run_until_idle(self, timeout, **kwargs):
            ran.append(timeout)

    monkeypatch.setattr(pytest_plugin, "Pollers", FakePollers)
    cloud = SimpleNamespace(client=None, clock_scale=1.0)
    stats = pytest_plugin.run_pollers(cloud, deployment, timeout=5)
    assert ran == [deployment.mappings, 5]
    assert NOTIFIER_PATH in stats and NOTIFIER_ID not in stats
    assert stats[NOTIFIER_PATH].succeeded == 3
    assert stats[NOTIFIER_ID] is stats[NOTIFIER_PATH]  # old keys still work
    with pytest.raises(KeyError):
        stats["Nope"]


def test_a_failing_tests_report_names_mappings_by_construct_path(deployment):
    deployment.mappings[0].stats.errors = 2
    deployment.mappings[0].stats.invocations = 2
    deployment.mappings[0].stats.last_error_type = "ValueError"
    deployment.mappings[0].stats.last_error_message = "bad"
    assert pytest_plugin.describe_errors([deployment]) == (
        f"mapping {NOTIFIER_PATH}: 2 failed invocation(s) of 2, last: ValueError: bad")


def test_run_pollers_passes_the_clouds_forced_redelivery(deployment, monkeypatch):
    seen = {}

    class FakePollers:
        def __init__(self, mappings, client, clock_scale, **kwargs):
            seen.update(kwargs)

        def run_until_idle(self, timeout, **kwargs):
            pass

    monkeypatch.setattr(pytest_plugin, "Pollers", FakePollers)
    cloud = SimpleNamespace(client=None, clock_scale=1.0, sqs_redelivery_rate=0.25)
    pytest_plugin.run_pollers(cloud, deployment, timeout=5)
    assert seen == {"sqs_redelivery_rate": 0.25}
