from __future__ import annotations

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import pytest
from aws_cdk.assertions import Template

from ddb_stream_patterns import StreamTable, require_stream

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)


def _table_resource(stack: cdk.Stack) -> dict:
    tables = Template.from_stack(stack).find_resources("AWS::DynamoDB::GlobalTable")
    assert len(tables) == 1
    return next(iter(tables.values()))


def test_defaults_stream_billing_pitr_encryption_retain(stack):
    StreamTable(stack, "Table", partition_key=PK)
    resource = _table_resource(stack)
    props = resource["Properties"]
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    replica = props["Replicas"][0]
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert "TimeToLiveSpecification" not in props
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"


def test_ttl_sort_key_and_view_type(stack):
    table = StreamTable(
        stack,
        "Table",
        partition_key=PK,
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.NUMBER),
        stream_view_type=dynamodb.StreamViewType.KEYS_ONLY,
        time_to_live_attribute="expiresAt",
    )
    props = _table_resource(stack)["Properties"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert props["StreamSpecification"] == {"StreamViewType": "KEYS_ONLY"}
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table.stream_view_type == dynamodb.StreamViewType.KEYS_ONLY
    assert table.time_to_live_attribute == "expiresAt"


def test_is_a_tablev2_with_a_stream_arn(stack):
    table = StreamTable(stack, "Table", partition_key=PK)
    assert isinstance(table, dynamodb.TableV2)
    assert cdk.Token.is_unresolved(require_stream(table))


def test_overrides_pass_through_and_removal_policy(stack):
    StreamTable(
        stack,
        "Table",
        partition_key=PK,
        table_name="orders",
        deletion_protection=True,
        point_in_time_recovery=False,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    resource = _table_resource(stack)
    assert resource["Properties"]["TableName"] == "orders"
    replica = resource["Properties"]["Replicas"][0]
    assert replica["DeletionProtectionEnabled"] is True
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
    assert resource["DeletionPolicy"] == "Delete"


def test_customer_managed_key():
    import aws_cdk.aws_kms as kms

    # A replica's customer managed key can only be rendered in a stack with a region.
    stack = cdk.Stack(cdk.App(), "Regional", env=cdk.Environment(region="eu-west-1"))
    key = kms.Key(stack, "Key")
    StreamTable(
        stack, "Table", partition_key=PK,
        encryption=dynamodb.TableEncryptionV2.customer_managed_key(key),
    )
    props = _table_resource(stack)["Properties"]
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert "KMSMasterKeyId" in props["Replicas"][0]["SSESpecification"]


def test_fails_without_stream_view_type(stack):
    with pytest.raises(ValueError, match="stream_view_type must be set"):
        StreamTable(stack, "Table", partition_key=PK, stream_view_type=None)


@pytest.mark.parametrize("prop", ["dynamo_stream", "point_in_time_recovery_specification"])
def test_fails_when_overriding_managed_props(stack, prop):
    with pytest.raises(ValueError, match=f"{prop} cannot be overridden.*got"):
        StreamTable(stack, "Table", partition_key=PK, **{prop: None})


@pytest.mark.parametrize("ttl", ["", "x" * 256])
def test_fails_bad_ttl_attribute(stack, ttl):
    with pytest.raises(ValueError, match="time_to_live_attribute must be 1 to 255 characters"):
        StreamTable(stack, "Table", partition_key=PK, time_to_live_attribute=ttl)


def test_fails_require_stream_on_table_without_stream(stack):
    plain = dynamodb.TableV2(stack, "Plain", partition_key=PK)
    with pytest.raises(ValueError, match=r"table 'TestStack/Plain' has no stream"):
        require_stream(plain)


def test_require_stream_accepts_tablev2_with_stream_and_rejects_table_v1_without(stack):
    with_stream = dynamodb.TableV2(
        stack, "WithStream", partition_key=PK, dynamo_stream=dynamodb.StreamViewType.NEW_IMAGE
    )
    assert require_stream(with_stream)
    v1 = dynamodb.Table(stack, "V1", partition_key=PK)
    with pytest.raises(ValueError, match="table 'TestStack/V1' has no stream"):
        require_stream(v1)
    imported = dynamodb.TableV2.from_table_name(stack, "Imported", "orders")
    with pytest.raises(ValueError, match="table 'TestStack/Imported' has no stream"):
        require_stream(imported)
