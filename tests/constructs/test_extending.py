"""The README's "Extending" example runs as written, and merge_function_options merges."""

from __future__ import annotations

import re

import aws_cdk as cdk
import aws_cdk.aws_lambda as lambda_
import pytest

from ddb_stream_patterns import AggregateCounter, merge_function_options
from ddb_stream_patterns.testing import resources_of
from tests.support import REPO

from .data_support import tasks


def readme_example() -> dict:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Extending"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {"__name__": "readme_extending"}
    exec(compile(code, "README.md#extending", "exec"), namespace)  # noqa: S102
    return namespace


def test_readme_subclass_example_synthesizes_with_merged_options(stack: cdk.Stack) -> None:
    TeamController = readme_example()["TeamController"]
    controller = TeamController(
        stack, "Team", table=tasks(stack),
        code=lambda_.Code.from_inline("def handler(e, c): pass"), handler="index.handler",
        function_options=lambda_.FunctionOptions(memory_size=1024, environment={"LOG_LEVEL": "DEBUG"}),
    )
    assert isinstance(controller.built_function, lambda_.Function)
    [function] = resources_of(stack, controller, "AWS::Lambda::Function")
    props = function["Properties"]
    assert props["MemorySize"] == 1024  # the caller's value wins
    assert props["Timeout"] == 60  # the subclass default stays
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "orders" and env["LOG_LEVEL"] == "DEBUG"
    assert "TABLE_NAME" in env
    [mapping] = resources_of(stack, controller, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["BatchSize"] == 25


def test_merge_function_options() -> None:
    layer_a, layer_b = object(), object()
    merged = merge_function_options(
        lambda_.FunctionOptions(memory_size=512, environment={"A": "1", "B": "1"}, layers=[layer_a]),
        lambda_.FunctionOptions(description="x", environment={"B": "2"}, layers=[layer_b]),
    )
    assert isinstance(merged, lambda_.FunctionOptions)
    assert (merged.memory_size, merged.description) == (512, "x")
    assert merged.environment == {"A": "1", "B": "2"}
    assert merged.layers == [layer_a, layer_b]
    assert merge_function_options(None, None).memory_size is None
    with pytest.raises(TypeError, match="overrides must be a lambda_.FunctionOptions"):
        merge_function_options(None, {"memory_size": 1})


def test_patterns_expose_their_built_function_as_a_function(stack: cdk.Stack) -> None:
    counter = AggregateCounter(stack, "Counter", table=tasks(stack), group_attribute="ListId")
    assert isinstance(counter.function, lambda_.Function)
    counter.function.add_environment("EXTRA", "1")  # typed: no luck needed
    assert counter.controller.built_function is None  # given to its controller, not built there
