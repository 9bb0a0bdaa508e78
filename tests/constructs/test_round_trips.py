"""What constructs already know costs no jsii round trip (issue 16, synth time).

Each round trip to the jsii kernel is a JSON message to Node and back (about 0.3-1 ms);
these are the ones the constructs used to make again and again for answers they had.
"""

from __future__ import annotations

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_

from ddb_stream_patterns import AlarmThresholds, SimpleController, StreamTable
from ddb_stream_patterns._jsii_calls import jsii_round_trips
from ddb_stream_patterns._validation import check_duration_range
from ddb_stream_patterns.simple_controller import _warn_about_readers
from ddb_stream_patterns.stream_fan_out import _key_types
from ddb_stream_patterns.stream_table import _stream_enabled, table_schema

KEY = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
SORT = dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.NUMBER)


def controller(stack: cdk.Stack, id: str, table: StreamTable) -> SimpleController:
    return SimpleController(
        stack, id, table=table, code=lambda_.Code.from_inline("x"), handler="index.handler"
    )


def test_counting_a_tables_stream_readers_below_the_limit_costs_nothing() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    table = StreamTable(stack, "T", partition_key=KEY)
    readers = [controller(stack, f"C{i}", table) for i in range(2)]
    with jsii_round_trips() as calls:
        _warn_about_readers(readers[1], table)  # two readers: at the limit, no warning
    assert calls.calls == 0


def test_a_durations_answers_are_asked_once() -> None:
    minutes = cdk.Duration.minutes(2)
    check_duration_range("p", minutes, 1, 3600)
    with jsii_round_trips() as calls:
        check_duration_range("p", minutes, 1, 3600)
        AlarmThresholds()  # its default durations are shared, already read
    assert calls.calls == 0


def test_a_stream_tables_own_props_answer_for_it() -> None:
    table = StreamTable(
        cdk.Stack(cdk.App(), "S"),
        "T",
        partition_key=KEY,
        sort_key=SORT,
        stream_view_type=dynamodb.StreamViewType.NEW_IMAGE,
    )
    with jsii_round_trips() as calls:
        schema = table_schema(table)
        enabled = _stream_enabled(table)
        key_types = _key_types(table)
    assert calls.calls == 0
    assert schema == (["pk", "sk"], "NEW_IMAGE")
    assert enabled is True
    assert key_types == {"pk": "S", "sk": "N"}
    # the same answers as the table's L1 resource gives (what is read for other tables)
    resource = table.node.default_child
    stack = cdk.Stack.of(table)
    assert [k["attributeName"] for k in stack.resolve(resource.key_schema)] == schema[0]
    types = {
        d["attributeName"]: d["attributeType"]
        for d in stack.resolve(resource.attribute_definitions)
    }
    assert types == key_types
