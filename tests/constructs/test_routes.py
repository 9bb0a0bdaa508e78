"""Routes are type-correct (issue 10, defect 5).

The router publishes DynamoDB N as an SNS ``Number`` attribute and BOOL as the
``String`` "true"/"false"; SNS matches string values against String/String.Array
attributes and ``numeric`` rules against Number attributes. So a route's values become
a filter of the type the router publishes for them, and a rule whose type can never
match what the router publishes (where synth knows it) is refused.
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
import pytest
from aws_cdk.assertions import Template

from ddb_stream_patterns import ComplexController, Processor, Route, StreamTable

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")
S_KEY = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)


def _controller(
    stack: cdk.Stack,
    route: Route,
    *,
    routing_attributes: list[str],
    partition_key: dynamodb.Attribute = S_KEY,
    sort_key: dynamodb.Attribute | None = None,
    table: dynamodb.ITable | None = None,
) -> ComplexController:
    table = table or StreamTable(stack, "Table", partition_key=partition_key, sort_key=sort_key)
    return ComplexController(
        stack,
        "Complex",
        table=table,
        routing_attributes=routing_attributes,
        processors={"p": Processor(route=route, code=CODE, handler="index.handler")},
    )


def _filter_policy(stack: cdk.Stack) -> dict[str, Any]:
    subscriptions = Template.from_stack(stack).find_resources("AWS::SNS::Subscription")
    assert len(subscriptions) == 1  # the subscription exists before we look into it
    [subscription] = subscriptions.values()
    return subscription["Properties"]["FilterPolicy"]


# --- synth: the filter policy in the template ---------------------------------------------


def test_numbers_become_a_numeric_filter(stack: cdk.Stack) -> None:
    _controller(stack, Route(attributes={"priority": [1, 2.5]}), routing_attributes=["priority"])
    assert _filter_policy(stack) == {
        "priority": [{"numeric": ["=", 1]}, {"numeric": ["=", 2.5]}]
    }


def test_booleans_become_the_strings_the_router_publishes(stack: cdk.Stack) -> None:
    _controller(stack, Route(attributes={"express": [True, False]}), routing_attributes=["express"])
    assert _filter_policy(stack) == {"express": ["true", "false"]}


def test_strings_stay_a_string_filter(stack: cdk.Stack) -> None:
    _controller(
        stack,
        Route(event_names=["MODIFY"], attributes={"status": ["shipped", "1"]}),
        routing_attributes=["status"],
    )
    assert _filter_policy(stack) == {"eventName": ["MODIFY"], "status": ["shipped", "1"]}


def test_numeric_rule_on_a_number_key_is_accepted(stack: cdk.Stack) -> None:
    n_key = dynamodb.Attribute(name="priority", type=dynamodb.AttributeType.NUMBER)
    _controller(
        stack,
        Route(attributes={"priority": sns.SubscriptionFilter.numeric_filter(greater_than=5)}),
        routing_attributes=["priority"],
        partition_key=S_KEY,
        sort_key=n_key,
    )
    assert _filter_policy(stack) == {"priority": [{"numeric": [">", 5]}]}


def test_exists_on_a_number_key_is_accepted(stack: cdk.Stack) -> None:
    n_key = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.NUMBER)
    _controller(
        stack,
        Route(attributes={"pk": sns.SubscriptionFilter.exists_filter()}),
        routing_attributes=["pk"],
        partition_key=n_key,
    )
    assert _filter_policy(stack) == {"pk": [{"exists": True}]}


def test_an_imported_table_leaves_the_type_to_the_data(stack: cdk.Stack) -> None:
    # Its schema is unknown at synth: a string rule on any routing attribute is allowed.
    table = dynamodb.TableV2.from_table_attributes(
        stack,
        "Imported",
        table_name="orders",
        table_stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/x",
    )
    _controller(stack, Route(attributes={"pk": ["1"]}), routing_attributes=["pk"], table=table)
    assert _filter_policy(stack) == {"pk": ["1"]}


# --- synth: refused routes, the error names the prop and shows the value --------------------

N_KEY = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.NUMBER)
B_KEY = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.BINARY)
PROP = "processors['p'].route.attributes['{}']"

REFUSED = [
    # (case, route, routing attributes, partition key, attribute named, value shown)
    ("mixed-kinds", Route(attributes={"priority": [1, "a"]}), ["priority"], S_KEY,
     "priority", "[1, 'a']"),
    ("mixed-bool-number", Route(attributes={"priority": [True, 2]}), ["priority"], S_KEY,
     "priority", "[True, 2]"),
    ("not-a-value", Route(attributes={"priority": [None]}), ["priority"], S_KEY,
     "priority", "[None]"),
    ("empty", Route(attributes={"priority": []}), ["priority"], S_KEY, "priority", "[]"),
    ("a-bare-string", Route(attributes={"status": "shipped"}), ["status"], S_KEY,
     "status", "'shipped'"),
    ("above-sns-range", Route(attributes={"ts": [1_700_000_000_000]}), ["ts"], S_KEY,
     "ts", "1700000000000"),
    ("too-many-decimals", Route(attributes={"ratio": [0.123456]}), ["ratio"], S_KEY,
     "ratio", "0.123456"),
    ("not-finite", Route(attributes={"ratio": [float("inf")]}), ["ratio"], S_KEY,
     "ratio", "inf"),
    ("strings-on-a-number-key", Route(attributes={"pk": ["1", "2"]}), ["pk"], N_KEY,
     "pk", "['1', '2']"),
    ("prefix-on-a-number-key",
     Route(attributes={"pk": sns.SubscriptionFilter.string_filter(match_prefixes=["1"])}),
     ["pk"], N_KEY, "pk", "[{'prefix': '1'}]"),
    ("numbers-on-a-string-key", Route(attributes={"pk": [1]}), ["pk"], S_KEY, "pk", "[1]"),
    ("numeric-range-on-table-name",
     Route(attributes={"tableName": sns.SubscriptionFilter.numeric_filter(greater_than=1)}),
     [], S_KEY, "tableName", "[{'numeric': ['>', 1]}]"),
    ("a-binary-key", Route(attributes={"pk": ["AA=="]}), ["pk"], B_KEY, "pk", "['AA==']"),
]


@pytest.mark.parametrize(
    ("route", "routing_attributes", "partition_key", "name", "shown"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refused_routes(
    stack: cdk.Stack,
    route: Route,
    routing_attributes: list[str],
    partition_key: dynamodb.Attribute,
    name: str,
    shown: str,
) -> None:
    with pytest.raises(ValueError) as caught:
        _controller(
            stack, route, routing_attributes=routing_attributes, partition_key=partition_key
        )
    message = str(caught.value)
    assert PROP.format(name) in message
    assert shown in message
    assert not Template.from_stack(stack).find_resources("AWS::SNS::Subscription")


def test_the_router_publishes_key_types_as_routes_assume() -> None:
    # The construct's table of published types must be the runtime's, tag for tag.
    from ddb_stream_patterns.complex_controller import _NOT_PUBLISHED, _PUBLISHED_TYPE
    from ddb_stream_runtime.router import _lift

    samples = {"S": {"S": "x"}, "N": {"N": "1"}, "B": {"B": "AA=="}}
    assert set(_PUBLISHED_TYPE) == set(samples)
    for tag, av in samples.items():
        lifted = _lift("pk", av)
        expected = _PUBLISHED_TYPE[tag]
        assert (lifted is None) if expected == _NOT_PUBLISHED else lifted[0] == expected


# --- runtime: the synthesized policy against moto's SNS -> SQS, fed by the router ----------


def test_numeric_route_receives_number_attributes_through_moto(
    stack: cdk.Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    import moto

    from ddb_stream_runtime import Router, RouterConfig

    _controller(stack, Route(attributes={"priority": [2]}), routing_attributes=["priority"])
    policy = _filter_policy(stack)

    def record(sequence: str, priority: str) -> dict[str, Any]:
        return {
            "eventID": f"id-{sequence}",
            "eventName": "INSERT",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
            "dynamodb": {
                "Keys": {"pk": {"S": sequence}},
                "NewImage": {"pk": {"S": sequence}, "priority": {"N": priority}},
                "SequenceNumber": sequence,
            },
        }

    # DynamoDB keeps a number's text as written: "2.0" and "2" are both the number 2.
    event = {"Records": [record("1", "1"), record("2", "2"), record("3", "2.0"), record("4", "3")]}
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        sns_client, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns_client.create_topic(Name="routes")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="urgent")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns_client.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps(policy)},
        )
        router = Router(RouterConfig(topic, ("priority",)), sns_client=sns_client)
        assert router.route(event) == {"batchItemFailures": []}
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
    assert [m["MessageAttributes"]["priority"]["DataType"] for m in messages] == ["Number"] * 2
    received = sorted(json.loads(m["Body"])["dynamodb"]["SequenceNumber"] for m in messages)
    assert received == ["2", "3"]  # priority 2 and 2.0; not 1, not 3
