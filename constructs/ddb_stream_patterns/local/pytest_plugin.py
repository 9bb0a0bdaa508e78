"""pytest fixtures for end-to-end tests of your own stacks on the local cloud.

Enable them in your ``conftest.py``::

    pytest_plugins = ["ddb_stream_patterns.local.pytest_plugin"]

Then::

    def test_orders_flow(local_cloud, deploy_app):
        app = cdk.App()
        stack = OrdersStack(app, "Orders")
        deployment = deploy_app(app)               # synthesized and deployed locally
        table = deployment.by_path("Orders/Table").physical_id
        local_cloud.client("dynamodb").put_item(TableName=table, Item={...})
        run_pollers(local_cloud, deployment)       # Lambda's event source semantics
        assert deployment.stats_of(stack.notifier).succeeded == 1

When such a test fails, its report gains a "local cloud errors" section: for each
mapping of the deployments it made, how many invocations failed and the last error
(``Runtime.HandlerNotFound: Handler 'handle' missing on module 'index'``), and the
functions that failed, so the cause is next to the assertion.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from .cloud import LocalCloud
from .deployer import Deployment, deploy
from .lifecycle import exit_on_signals
from .model import MappingStats
from .pollers import Pollers

__all__ = ["DEPLOYMENTS", "deploy_app", "describe_errors", "local_cloud", "run_pollers"]

_prefixes = itertools.count()
_LOGGER = logging.getLogger(__name__)

#: Where ``deploy_app`` keeps a test's deployments (``item.stash[DEPLOYMENTS]``).
DEPLOYMENTS = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM and SIGHUP stop the session like Ctrl-C: fixtures tear down, children stop."""
    exit_on_signals(interrupt=True)


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[LocalCloud]:
    """DynamoDB Local and moto's server, started once per test session."""
    with LocalCloud() as cloud:
        yield cloud


@pytest.fixture
def deploy_app(
    request: pytest.FixtureRequest, local_cloud: LocalCloud
) -> Iterator[Callable[..., Deployment]]:
    """Synthesize a ``cdk.App`` and deploy it; each call gets its own name prefix, so
    tests sharing the session's cloud never share tables or queues. The tables are
    deleted after the test (DynamoDB Local sweeps TTL on only 7 of its TTL tables)."""
    deployments: list[Deployment] = []
    request.node.stash[DEPLOYMENTS] = deployments

    def _deploy(app: Any, **kwargs: Any) -> Deployment:
        assembly = app.synth()
        kwargs.setdefault("name_prefix", f"t{next(_prefixes)}-")
        deployment = deploy(local_cloud, assembly.directory, **kwargs)
        deployments.append(deployment)
        return deployment

    yield _deploy
    for deployment in deployments:
        deployment.close()
        # DynamoDB Local's TTL sweep serves only 7 TTL-enabled tables of an instance
        # (local/ttl_sweep.py): tables left behind would put later tests' TTL tables on
        # the local cloud's own, slower sweep (20-25 s after expiry instead of 1-10 s).
        for table in getattr(deployment, "tables", {}).values():
            try:
                local_cloud.client("dynamodb").delete_table(TableName=table)
            except Exception as exc:  # already gone, or the cloud is: nothing to free
                _LOGGER.debug("could not delete table %s: %s", table, exc)


def run_pollers(
    cloud: LocalCloud, deployment: Deployment, *, timeout: float = 60, **kwargs: Any
) -> dict[str, MappingStats]:
    """Run every event source mapping of ``deployment`` until idle; return their stats,
    keyed by each mapping's construct path (see :meth:`Deployment.path_of`).

    ``deployment.stats_of(construct)`` gives one construct's mapping stats. For backward
    compatibility, the returned dict also answers a mapping's bare logical ID.
    """
    rate = getattr(cloud, "sqs_redelivery_rate", 0.0)  # forced redelivery, when asked for
    extra = {"sqs_redelivery_rate": rate} if rate else {}
    pollers = Pollers(deployment.mappings, cloud.client, clock_scale=cloud.clock_scale, **extra)
    pollers.run_until_idle(timeout=timeout, **kwargs)
    return _StatsByPath(deployment)


class _StatsByPath(dict):
    """Construct path → stats; a missing key is tried as a mapping's logical ID (old keys)."""

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment.mapping_stats())
        self._by_id = {m.logical_id: m.stats for m in deployment.mappings}

    def __missing__(self, key: str) -> MappingStats:
        if key in self._by_id:
            return self._by_id[key]
        raise KeyError(key)


def describe_errors(deployments: Iterable[Any]) -> str:
    """What failed in ``deployments``: mappings with failed invocations, failing functions."""
    lines: list[str] = []
    for deployment in deployments:
        path_of = getattr(deployment, "path_of", lambda m: m.logical_id)
        for mapping in getattr(deployment, "mappings", ()):
            stats = mapping.stats
            if stats.errors:
                lines.append(f"mapping {path_of(mapping)}: {stats.errors} failed "
                             f"invocation(s) of {stats.invocations}, last: {stats.last_error}")
        for key, function in getattr(deployment, "functions", {}).items():
            errors = getattr(function, "errors", 0)
            if errors:
                last = getattr(function, "last_invocation", None)
                last_type = getattr(last, "error_type", None) if last is not None else None
                lines.append(f"function {key}: {errors} error(s) in "
                             f"{getattr(function, 'invocations', '?')} invocation(s)"
                             + (f", last {last_type}" if last_type else ""))
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that deployed apps shows what failed in them."""
    report = yield
    if report.when == "call" and report.failed:
        text = describe_errors(item.stash.get(DEPLOYMENTS, []))
        if text:
            report.sections.append(("local cloud errors", text))
    return report
