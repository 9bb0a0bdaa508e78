from __future__ import annotations

import aws_cdk as cdk
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
    assert env_of(stack, replicator.function) == {
        "TARGET_TABLE": {"Ref": stack.get_logical_id(target.node.default_child)},
        "VERSION_ATTRIBUTE": "_streamSequence",
        # Behind a standard queue REMOVEs leave tombstones: they carry an expiry.
        "TOMBSTONE_TTL_ATTRIBUTE": "_tombstoneExpiresAt",
        "TOMBSTONE_RETENTION_SECONDS": str(30 * 86_400),
    }
    assert resource(stack, replicator.function)["Properties"]["Handler"] == (
        "ddb_stream_runtime.replicator.handler")


# -- tombstones (standard-queue fan-out) ---------------------------------------------------


def _ttl(stack, table):
    return resource(stack, table)["Properties"].get("TimeToLiveSpecification")


def test_tombstones_get_ttl_on_a_target_table_of_this_app(stack):
    from aws_cdk.assertions import Annotations, Match

    from ddb_stream_patterns import StreamFanOut

    table = tasks(stack)
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    target = dynamodb.TableV2(stack, "Target", **KEY)  # no TTL (see the stream test)
    replicator = TableReplicator(stack, "Copy", table=table, target_table=target,
                                 source=fan_out, tombstone_retention=cdk.Duration.days(20))
    assert replicator.writes_tombstones
    assert _ttl(stack, target) == {"AttributeName": "_tombstoneExpiresAt", "Enabled": True}
    env = env_of(stack, replicator.function)
    assert (env["TOMBSTONE_TTL_ATTRIBUTE"], env["TOMBSTONE_RETENTION_SECONDS"]) == (
        "_tombstoneExpiresAt", str(20 * 86_400))
    [info] = Annotations.from_stack(stack).find_info(
        f"/{replicator.node.path}", Match.string_like_regexp("enabled TTL"))
    assert "'_tombstoneExpiresAt'" in info.entry.data and "20 days" in info.entry.data


def test_tombstones_use_the_target_ttl_attribute_when_it_has_one(stack):
    from ddb_stream_patterns import StreamFanOut, StreamTable

    table = tasks(stack)
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    target = StreamTable(stack, "Report", **KEY, time_to_live_attribute="expiresAt")
    replicator = TableReplicator(stack, "Copy", table=table, target_table=target, source=fan_out)
    assert replicator.tombstone_ttl_attribute == "expiresAt"
    assert env_of(stack, replicator.function)["TOMBSTONE_TTL_ATTRIBUTE"] == "expiresAt"
    assert _ttl(stack, target) == {"AttributeName": "expiresAt", "Enabled": True}
    with pytest.raises(ValueError, match="tombstone_ttl_attribute 'gone' differs from the target "
                                         "table's TTL attribute 'expiresAt'"):
        TableReplicator(stack, "Copy2", table=table, target_table=target, source=fan_out,
                        tombstone_ttl_attribute="gone")


def test_an_imported_target_behind_a_fan_out_warns_until_acknowledged(stack):
    from aws_cdk.assertions import Annotations, Match

    from ddb_stream_patterns import StreamFanOut
    from ddb_stream_patterns.table_replicator import TOMBSTONE_TTL_WARNING

    table = tasks(stack)
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    target = dynamodb.TableV2.from_table_name(stack, "Elsewhere", "reports")
    replicator = TableReplicator(stack, "Copy", table=table, target_table=target, source=fan_out)
    warnings = Annotations.from_stack(stack).find_warning(
        f"/{replicator.node.path}", Match.string_like_regexp("tombstone"))
    assert len(warnings) == 1
    message = warnings[0].entry.data
    assert "Enable TTL on '_tombstoneExpiresAt'" in message and TOMBSTONE_TTL_WARNING in message
    acknowledged = TableReplicator(stack, "Copy2", table=table, target_table=target,
                                   source=fan_out)
    cdk.Annotations.of(acknowledged).acknowledge_warning(TOMBSTONE_TTL_WARNING, "TTL is on")
    assert Annotations.from_stack(stack).find_warning(
        f"/{acknowledged.node.path}", Match.string_like_regexp("tombstone")) == []


@pytest.mark.parametrize("fifo", [None, True])
def test_stream_and_fifo_fan_out_leave_no_tombstones_and_touch_no_ttl(stack, fifo):
    from aws_cdk.assertions import Annotations, Match

    from ddb_stream_patterns import StreamFanOut

    table = tasks(stack)
    source = None if fifo is None else StreamFanOut(stack, "FanOut", table=table, fifo=True)
    target = dynamodb.TableV2(stack, "Target", **KEY)
    imported = dynamodb.TableV2.from_table_name(stack, "Elsewhere", "reports")
    replicator = TableReplicator(stack, "Copy", table=table, target_table=target, source=source)
    other = TableReplicator(stack, "Other", table=table, target_table=imported, source=source)
    assert not replicator.writes_tombstones and replicator.tombstone_ttl_attribute is None
    assert _ttl(stack, target) is None
    assert "TOMBSTONE_TTL_ATTRIBUTE" not in env_of(stack, replicator.function)
    assert Annotations.from_stack(stack).find_warning(
        f"/{other.node.path}", Match.string_like_regexp("tombstone")) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tombstone_retention": cdk.Duration.days(7)},
     "tombstone_retention must be at least 14 days on a fan-out .* got 7 days"),
    ({"tombstone_retention": cdk.Duration.hours(1)},
     "tombstone_retention must be between 86400 and 315360000 seconds, got 3600 seconds"),
    ({"tombstone_ttl_attribute": "_streamSequence"},
     "tombstone_ttl_attribute must be an attribute name other than the version and tombstone "
     "attributes, got '_streamSequence'"),
])
def test_fails_bad_tombstone_props(stack, kwargs, message):
    from ddb_stream_patterns import StreamFanOut

    table = tasks(stack)
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    with pytest.raises(ValueError, match=message):
        TableReplicator(stack, "Copy", table=table, target_table=dynamodb.TableV2(stack, "T", **KEY),
                        source=fan_out, **kwargs)
