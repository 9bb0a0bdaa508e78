"""pytest fixtures for end-to-end tests of your own stacks on the local cloud.

Enable them in your ``conftest.py``::

    pytest_plugins = ["ddb_stream_patterns.local.pytest_plugin"]

Then::

    def test_orders_flow(local_cloud, deploy_app):
        app = cdk.App()
        OrdersStack(app, "Orders")
        deployment = deploy_app(app)               # synthesized and deployed locally
        table = deployment.by_path("Orders/Table").physical_id
        local_cloud.client("dynamodb").put_item(TableName=table, Item={...})
        stats = run_pollers(local_cloud, deployment)   # Lambda's event source semantics
        assert stats[...].succeeded == 1
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .cloud import LocalCloud
from .deployer import Deployment, deploy
from .model import MappingStats
from .pollers import Pollers

__all__ = ["deploy_app", "local_cloud", "run_pollers"]

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[LocalCloud]:
    """DynamoDB Local and moto's server, started once per test session."""
    with LocalCloud() as cloud:
        yield cloud


@pytest.fixture
def deploy_app(local_cloud: LocalCloud) -> Iterator[Callable[..., Deployment]]:
    """Synthesize a ``cdk.App`` and deploy it; each call gets its own name prefix, so
    tests sharing the session's cloud never share tables or queues."""
    deployments: list[Deployment] = []

    def _deploy(app: Any, **kwargs: Any) -> Deployment:
        assembly = app.synth()
        kwargs.setdefault("name_prefix", f"t{next(_prefixes)}-")
        deployment = deploy(local_cloud, assembly.directory, **kwargs)
        deployments.append(deployment)
        return deployment

    yield _deploy
    for deployment in deployments:
        deployment.close()


def run_pollers(
    cloud: LocalCloud, deployment: Deployment, *, timeout: float = 60, **kwargs: Any
) -> dict[str, MappingStats]:
    """Run every event source mapping of ``deployment`` until idle; return their stats."""
    pollers = Pollers(deployment.mappings, cloud.client, clock_scale=cloud.clock_scale)
    pollers.run_until_idle(timeout=timeout, **kwargs)
    return pollers.stats()
