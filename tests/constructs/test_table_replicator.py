from __future__ import annotations

import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import pytest

from ddb_stream_patterns import StreamRuntimeLayer, TableReplicator

from .data_support import KEY, actions, env_of, resource, role_statements, tasks

CODE = lambda_.Code.from_inline("def to_row(item):\n    return item\n")


def test_copy_grants_only_put_and_delete_on_the_target(stack):
    target = dynamodb.TableV2(stack, "Target", **KEY)
    replicator = TableReplicator(stack, "Rep", table=tasks(stack), target_table=target)
    assert env_of(stack, replicator.function) == {
        "TARGET_TABLE": {"Ref": stack.get_logical_id(target.node.default_child)},
        "VERSION_ATTRIBUTE": "_streamSequence",
    }
    statements = [s for s in role_statements(stack, replicator.function) if "dynamodb:PutItem" in str(s["Action"])]
    assert len(statements) == 1
    assert set(statements[0]["Action"]) == {"dynamodb:PutItem", "dynamodb:DeleteItem"}
    assert replicator.runtime_layer is None


def test_transform_runs_user_code_with_the_runtime_layer(stack):
    target = dynamodb.TableV2(stack, "Target", **KEY)
    replicator = TableReplicator(stack, "Rep", table=tasks(stack), target_table=target,
                                 transform="index:to_row", transform_code=CODE)
    props = resource(stack, replicator.function)["Properties"]
    assert props["Handler"] == "ddb_stream_runtime.replicator.handler"
    assert props["Code"] == {"ZipFile": "def to_row(item):\n    return item\n"}
    assert isinstance(replicator.runtime_layer, StreamRuntimeLayer)
    assert props["Layers"] == [{"Ref": stack.get_logical_id(replicator.runtime_layer.node.default_child)}]
    assert env_of(stack, replicator.function)["TRANSFORM"] == "index:to_row"
    granted = [s for s in role_statements(stack, replicator.function) if "dynamodb:PutItem" in str(s["Action"])]
    assert set(granted[0]["Action"]) == {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable"}


def test_cross_account_target_by_arn(stack):
    target = dynamodb.TableV2.from_table_arn(stack, "Remote", "arn:aws:dynamodb:eu-west-1:210987654321:table/report")
    replicator = TableReplicator(stack, "Rep", table=tasks(stack), target_table=target)
    resources = [s["Resource"] for s in role_statements(stack, replicator.function) if "dynamodb:PutItem" in str(s["Action"])]
    assert "arn:aws:dynamodb:eu-west-1:210987654321:table/report" in str(resources)
    assert not {"dynamodb:Scan", "dynamodb:GetItem"} & actions(role_statements(stack, replicator.function))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"transform": "index:to_row"}, "transform and transform_code go together"),
    ({"transform": "to_row", "transform_code": CODE}, "transform must look like 'module:function', got 'to_row'"),
    ({"version_attribute": ""}, "version_attribute must be an attribute name, got ''"),
])
def test_fails_bad_props(stack, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TableReplicator(stack, "Rep", table=tasks(stack), target_table=dynamodb.TableV2(stack, "T", **KEY), **kwargs)


def test_fails_into_itself_and_without_new_images(stack):
    table = tasks(stack)
    with pytest.raises(ValueError, match="target_table must differ from table"):
        TableReplicator(stack, "Rep", table=table, target_table=table)


def test_fails_without_new_images():
    import aws_cdk as cdk

    stack = cdk.Stack(cdk.App(), "S")
    table = tasks(stack, stream_view_type=dynamodb.StreamViewType.OLD_IMAGE)
    with pytest.raises(ValueError, match="streams OLD_IMAGE, but TableReplicator reads the new image"):
        TableReplicator(stack, "Rep", table=table, target_table=dynamodb.TableV2(stack, "T", **KEY))


def test_fails_transform_without_old_images():
    import aws_cdk as cdk

    stack = cdk.Stack(cdk.App(), "S")
    table = tasks(stack, stream_view_type=dynamodb.StreamViewType.NEW_IMAGE)
    with pytest.raises(ValueError, match="streams NEW_IMAGE, but TableReplicator with a transform reads both images"):
        TableReplicator(stack, "Rep", table=table, target_table=dynamodb.TableV2(stack, "T", **KEY),
                        transform="index:to_row", transform_code=CODE)


def test_on_a_fan_out_grants_and_environment_are_unchanged(stack):
    from ddb_stream_patterns import StreamFanOut

    table = tasks(stack)
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    target = dynamodb.TableV2(stack, "Target", **KEY)
    replicator = TableReplicator(stack, "Copy", table=table, target_table=target, source=fan_out)
    assert replicator.controller in fan_out.consumers
    granted = actions(role_statements(stack, replicator.function))
    assert {"dynamodb:PutItem", "dynamodb:DeleteItem", "sqs:ReceiveMessage"} <= granted
    assert set(env_of(stack, replicator.function)) == {"TARGET_TABLE", "VERSION_ATTRIBUTE"}
    assert resource(stack, replicator.function)["Properties"]["Handler"] == (
        "ddb_stream_runtime.replicator.handler")
