from __future__ import annotations

import aws_cdk.aws_dynamodb as dynamodb
import pytest

from ddb_stream_patterns import AggregateCounter, StreamTable

from .data_support import actions, env_of, mapping_of, patterns, resource, role_statements, tasks


def test_creates_a_counter_table_with_marker_ttl(stack):
    counter = AggregateCounter(stack, "Count", table=tasks(stack), group_attribute="ListId")
    assert isinstance(counter.counter_table, StreamTable)
    table = resource(stack, counter.counter_table)
    assert table["Properties"]["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert table["DeletionPolicy"] == "Retain"
    env = env_of(stack, counter.function)
    assert env == {
        "COUNTER_TABLE": {"Ref": stack.get_logical_id(counter.counter_table.node.default_child)},
        "GROUP_ATTRIBUTE": "ListId", "COUNTER_PARTITION_KEY": "pk", "COUNT_ATTRIBUTE": "count",
        "MARKER_TTL_ATTRIBUTE": "expiresAt",
    }
    assert resource(stack, counter.function)["Properties"]["Handler"] == "ddb_stream_runtime.counter.handler"
    assert patterns(mapping_of(stack, counter.controller)) == []  # every event counts


def test_grants_only_transaction_writes(stack):
    counter = AggregateCounter(stack, "Count", table=tasks(stack), group_attribute="ListId")
    granted = actions(role_statements(stack, counter.function))
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem"} <= granted
    assert not {"dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:*"} & granted


def test_sum_and_existing_counter_table(stack):
    mine = dynamodb.TableV2(stack, "Counts", partition_key=dynamodb.Attribute(name="list", type=dynamodb.AttributeType.STRING),
                            time_to_live_attribute="expiresAt")
    counter = AggregateCounter(stack, "Count", table=tasks(stack), group_attribute="ListId", counter_table=mine,
                               counter_partition_key="list", count_attribute="tasks", sum_of="estimate",
                               sum_attribute="totalEstimate")
    assert counter.counter_table is mine
    env = env_of(stack, counter.function)
    assert (env["COUNTER_PARTITION_KEY"], env["COUNT_ATTRIBUTE"]) == ("list", "tasks")
    assert (env["SUM_SOURCE_ATTRIBUTE"], env["SUM_ATTRIBUTE"]) == ("estimate", "totalEstimate")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"group_attribute": ""}, "group_attribute must be an attribute name, got ''"),
    ({"count_attribute": "expiresAt"}, "must differ, got \\['pk', 'expiresAt', 'expiresAt'\\]"),
    ({"sum_of": "bad name"}, "sum_of must be an attribute name, got 'bad name'"),
    ({"view": dynamodb.StreamViewType.NEW_IMAGE}, "streams NEW_IMAGE, but AggregateCounter reads both images"),
])
def test_fails_bad_props(stack, kwargs, message):
    view = kwargs.pop("view", dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    kwargs.setdefault("group_attribute", "ListId")
    with pytest.raises(ValueError, match=message):
        AggregateCounter(stack, "Count", table=tasks(stack, stream_view_type=view), **kwargs)


def test_same_handler_and_environment_on_a_fan_out(stack):
    import aws_cdk as cdk

    from ddb_stream_patterns import StreamFanOut

    direct_stack = cdk.Stack(stack.node.root, "Direct")
    direct = AggregateCounter(direct_stack, "Counts", table=tasks(direct_stack),
                              group_attribute="ListId")
    table = tasks(stack)
    fanned = AggregateCounter(stack, "Counts", table=table, group_attribute="ListId",
                              source=StreamFanOut(stack, "FanOut", table=table))
    assert resource(stack, fanned.function)["Properties"]["Handler"] == resource(
        direct_stack, direct.function)["Properties"]["Handler"] == "ddb_stream_runtime.counter.handler"
    assert env_of(stack, fanned.function) == env_of(direct_stack, direct.function)
    assert fanned.controller.queue is not None and not hasattr(direct.controller, "queue")
