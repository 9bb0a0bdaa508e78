"""Filters that can never match a stream record are refused: fields a record never has
(from_pattern), key conditions on non-key attributes, images the view type lacks."""

from __future__ import annotations

import re

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import pytest

from ddb_stream_patterns import (
    ComplexController,
    Processor,
    Route,
    Rule,
    SimpleController,
    StreamFilter,
    StreamTable,
)
from ddb_stream_patterns.stream_table import table_schema

CODE = lambda_.Code.from_inline("def handler(event, context): pass")
ORDER_ID = dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"dynamodb": {"NewImages": {"status": {"S": ["done"]}}}},
         r"'dynamodb.NewImages' is never in a dynamodb stream record.*did you mean 'dynamodb.NewImage'"),
        ({"eventname": ["INSERT"]}, r"'eventname' is never .*did you mean 'eventName'"),
        ({"dynamodb": {"Key": {"pk": {"S": ["a"]}}}}, r"'dynamodb.Key' .*did you mean 'dynamodb.Keys'"),
        ({"userIdentity": {"principal": ["x"]}}, r"'userIdentity.principal' is never"),
        ({"dynamodb": {"NewImage": {"status": {"String": ["done"]}}}},
         r"dynamodb.NewImage.status.String never matches"),
    ],
)
def test_from_pattern_refuses_fields_a_record_never_has(pattern: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamFilter.from_pattern(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        {"eventName": ["INSERT"], "eventSource": ["aws:dynamodb"], "awsRegion": ["eu-west-1"]},
        {"eventID": [{"exists": True}], "eventVersion": ["1.1"], "eventSourceARN": [{"prefix": "arn:"}]},
        {"userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}},
        {"dynamodb": {"Keys": {"pk": {"S": ["a"]}}, "NewImage": {"m": {"M": {"x": {"S": ["1"]}}}},
                      "OldImage": {"n": {"N": ["1"]}}, "SequenceNumber": [{"prefix": "1"}],
                      "SizeBytes": [{"numeric": [">", 1]}], "StreamViewType": ["NEW_IMAGE"],
                      "ApproximateCreationDateTime": [{"numeric": [">", 0]}]}},
    ],
)
def test_from_pattern_accepts_every_record_field(pattern: dict) -> None:
    assert StreamFilter.from_pattern(pattern).to_pattern() == pattern


def orders(stack: cdk.Stack, view: dynamodb.StreamViewType) -> StreamTable:
    return StreamTable(stack, "Orders", partition_key=ORDER_ID, stream_view_type=view)


def simple(stack: cdk.Stack, table: dynamodb.ITable, f: StreamFilter) -> SimpleController:
    return SimpleController(stack, "C", table=table, code=CODE, handler="index.handler",
                            filters=[StreamFilter(event_names=["INSERT"]), f])


NEW_AND_OLD = dynamodb.StreamViewType.NEW_AND_OLD_IMAGES


def test_key_filter_on_a_non_key_attribute_is_refused(stack: cdk.Stack) -> None:
    table = orders(stack, NEW_AND_OLD)
    with pytest.raises(ValueError, match=re.escape(
        "SimpleController: filters[1] has a keys condition on 'customerId', which is not a key "
        "of table 'TestStack/Orders' (keys: ['orderId'])"
    )):
        simple(stack, table, StreamFilter(keys={"customerId": Rule.equals("c1")}))


def test_key_filter_on_a_key_is_accepted(stack: cdk.Stack) -> None:
    controller = simple(stack, orders(stack, NEW_AND_OLD),
                        StreamFilter(keys={"orderId": Rule.prefix("o")}))
    assert controller.event_source_mapping is not None


@pytest.mark.parametrize(
    ("view", "field", "image"),
    [
        (dynamodb.StreamViewType.KEYS_ONLY, "new_image", "NewImage"),
        (dynamodb.StreamViewType.OLD_IMAGE, "new_image", "NewImage"),
        (dynamodb.StreamViewType.KEYS_ONLY, "old_image", "OldImage"),
        (dynamodb.StreamViewType.NEW_IMAGE, "old_image", "OldImage"),
    ],
)
def test_image_filter_the_view_type_lacks_is_refused(
    stack: cdk.Stack, view: dynamodb.StreamViewType, field: str, image: str
) -> None:
    table = orders(stack, view)
    with pytest.raises(ValueError, match=(
        rf"SimpleController: filters\[1\] has a {field} condition .*'done'.*streams "
        rf"{view.value}, whose records carry no {image}"
    )):
        simple(stack, table, StreamFilter(**{field: {"status": Rule.equals("done")}}))


@pytest.mark.parametrize(
    ("view", "field"),
    [(dynamodb.StreamViewType.NEW_IMAGE, "new_image"), (dynamodb.StreamViewType.OLD_IMAGE, "old_image"),
     (NEW_AND_OLD, "new_image"), (NEW_AND_OLD, "old_image")],
)
def test_image_filter_the_view_type_carries_is_accepted(stack, view, field) -> None:
    controller = simple(stack, orders(stack, view), StreamFilter(**{field: {"s": Rule.exists()}}))
    assert controller.event_source_mapping is not None


def test_a_plain_table_v2_is_checked_too(stack: cdk.Stack) -> None:
    table = dynamodb.TableV2(stack, "Plain", partition_key=ORDER_ID,
                             dynamo_stream=dynamodb.StreamViewType.KEYS_ONLY)
    assert table_schema(table) == (["orderId"], "KEYS_ONLY")
    with pytest.raises(ValueError, match="streams KEYS_ONLY, whose records carry no NewImage"):
        simple(stack, table, StreamFilter(new_image={"status": Rule.equals("done")}))


def test_from_pattern_filters_are_checked_against_the_table(stack: cdk.Stack) -> None:
    table = orders(stack, dynamodb.StreamViewType.NEW_IMAGE)
    f = StreamFilter.from_pattern({"dynamodb": {"OldImage": {"status": {"S": ["done"]}}}})
    with pytest.raises(ValueError, match="has a old_image condition"):
        simple(stack, table, f)


def test_an_imported_table_cannot_be_checked(stack: cdk.Stack) -> None:
    table = dynamodb.TableV2.from_table_attributes(
        stack, "Imported", table_name="Orders",
        table_stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/x",
    )
    assert table_schema(table) is None
    controller = simple(stack, table, StreamFilter(keys={"customerId": Rule.equals("c1")}))
    assert controller.event_source_mapping is not None


def test_complex_controller_refuses_them_under_its_own_name(stack: cdk.Stack) -> None:
    table = orders(stack, dynamodb.StreamViewType.KEYS_ONLY)
    processor = Processor(route=Route(event_names=["INSERT"]), code=CODE, handler="index.handler")
    with pytest.raises(ValueError, match=r"^ComplexController: filters\[0\] has a new_image"):
        ComplexController(stack, "CC", table=table, processors={"p": processor},
                          filters=[StreamFilter(new_image={"s": Rule.equals("x")})])
