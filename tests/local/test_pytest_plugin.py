"""The pytest plugin puts a failing test's local-cloud errors next to its assertion."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER_CONFTEST = """
import pytest

pytest_plugins = ["ddb_stream_patterns.local.pytest_plugin"]


@pytest.fixture(scope="session")
def local_cloud():  # no servers: the deployments below are stand-ins
    yield None
"""

INNER_TEST = """
from types import SimpleNamespace

from ddb_stream_patterns.local.model import MappingStats
from ddb_stream_patterns.local.pytest_plugin import DEPLOYMENTS


def _deployment(request, stats):
    mapping = SimpleNamespace(logical_id="OrdersMapping", stats=stats)
    deployment = SimpleNamespace(mappings=[mapping], functions={}, close=lambda: None)
    request.node.stash[DEPLOYMENTS].append(deployment)


def test_typo(request, deploy_app):
    stats = MappingStats(invocations=2, errors=2, last_error_type="Runtime.HandlerNotFound",
                         last_error_message="Handler 'handle' missing on module 'index'")
    _deployment(request, stats)
    assert stats.succeeded == 1


def test_passes(request, deploy_app):
    stats = MappingStats(invocations=1, errors=1, last_error_type="ValueError",
                         last_error_message="retried, then fine")
    _deployment(request, stats)
"""


def test_a_failing_test_shows_the_errors_of_its_deployments(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*- local cloud errors -*",
        "mapping OrdersMapping: 2 failed invocation(s) of 2, last: "
        "Runtime.HandlerNotFound: Handler 'handle' missing on module 'index'",
    ])
    assert "retried, then fine" not in result.stdout.str()  # passing tests stay quiet
