"""The local IAM evaluator (identity policies), table-driven."""

from __future__ import annotations

import logging

import pytest

from ddb_stream_patterns.local.iam import evaluate

TOPIC = "arn:aws:sns:us-east-1:123456789012:Topic"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/Counts"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:q"


def _policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(action, resource, **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def _deny(action, resource, **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


CASES = [
    # (id, policies, action, resource, context, expected decision)
    ("exact allow", [_policy(_allow("sns:Publish", TOPIC))], "sns:Publish", TOPIC, {}, "allow"),
    ("no statement", [_policy()], "sns:Publish", TOPIC, {}, "implicit-deny"),
    ("other action", [_policy(_allow("sns:Subscribe", TOPIC))], "sns:Publish", TOPIC, {},
     "implicit-deny"),
    ("other resource", [_policy(_allow("sns:Publish", TOPIC + "2"))], "sns:Publish", TOPIC, {},
     "implicit-deny"),
    ("explicit deny beats allow",
     [_policy(_allow("sns:*", "*")), _policy(_deny("sns:Publish", TOPIC))],
     "sns:Publish", TOPIC, {}, "explicit-deny"),
    ("deny elsewhere does not deny",
     [_policy(_allow("sns:*", "*"), _deny("sns:Publish", TOPIC + "2"))],
     "sns:Publish", TOPIC, {}, "allow"),
    ("wildcard action", [_policy(_allow("dynamodb:Transact*", TABLE))],
     "dynamodb:TransactWriteItems", TABLE, {}, "allow"),
    ("wildcard action ?", [_policy(_allow("dynamodb:?etItem", TABLE))],
     "dynamodb:GetItem", TABLE, {}, "allow"),
    ("action case-insensitive", [_policy(_allow("DynamoDB:putitem", TABLE))],
     "dynamodb:PutItem", TABLE, {}, "allow"),
    ("action list", [_policy(_allow(["dynamodb:GetItem", "dynamodb:PutItem"], TABLE))],
     "dynamodb:PutItem", TABLE, {}, "allow"),
    ("wildcard resource", [_policy(_allow("dynamodb:PutItem", TABLE[:-6] + "*"))],
     "dynamodb:PutItem", TABLE, {}, "allow"),
    ("resource list", [_policy(_allow("dynamodb:PutItem", [TOPIC, TABLE]))],
     "dynamodb:PutItem", TABLE, {}, "allow"),
    ("index resource does not cover table",
     [_policy(_allow("dynamodb:Query", TABLE + "/index/*"))],
     "dynamodb:Query", TABLE, {}, "implicit-deny"),
    ("dot in arn is literal", [_policy(_allow("s3:GetObject", "arn:aws:s3:::a.b/*"))],
     "s3:GetObject", "arn:aws:s3:::axb/k", {}, "implicit-deny"),
    ("resource case-sensitive", [_policy(_allow("sns:Publish", TOPIC.lower()))],
     "sns:Publish", TOPIC, {}, "implicit-deny"),
    ("NotAction allows the rest",
     [_policy({"Effect": "Allow", "NotAction": "sns:Publish", "Resource": "*"})],
     "sqs:SendMessage", QUEUE, {}, "allow"),
    ("NotAction excludes its action",
     [_policy({"Effect": "Allow", "NotAction": "sns:*", "Resource": "*"})],
     "sns:Publish", TOPIC, {}, "implicit-deny"),
    ("NotResource allows other resources",
     [_policy({"Effect": "Allow", "Action": "sns:Publish", "NotResource": TOPIC + "2"})],
     "sns:Publish", TOPIC, {}, "allow"),
    ("NotResource excludes its resource",
     [_policy({"Effect": "Allow", "Action": "sns:Publish", "NotResource": TOPIC})],
     "sns:Publish", TOPIC, {}, "implicit-deny"),
    ("Deny NotResource denies the rest",
     [_policy(_allow("*", "*"),
              {"Effect": "Deny", "Action": "sns:*", "NotResource": TOPIC + "2"})],
     "sns:Publish", TOPIC, {}, "explicit-deny"),
    # conditions: aws:SecureTransport
    ("deny non-TLS applies without TLS",
     [_policy(_allow("s3:*", "*"),
              _deny("s3:*", "*", Condition={"Bool": {"aws:SecureTransport": "false"}}))],
     "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": "false"}, "explicit-deny"),
    ("deny non-TLS spares TLS",
     [_policy(_allow("s3:*", "*"),
              _deny("s3:*", "*", Condition={"Bool": {"aws:SecureTransport": "false"}}))],
     "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": "true"}, "allow"),
    ("unmet allow condition does not deny",
     [_policy(_allow("s3:*", "*", Condition={"Bool": {"aws:SecureTransport": "true"}}))],
     "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": "false"}, "implicit-deny"),
    # aws:SourceArn
    ("SourceArn ArnLike matches",
     [_policy(_allow("sqs:SendMessage", QUEUE,
                     Condition={"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:Topic"}}))],
     "sqs:SendMessage", QUEUE, {"aws:SourceArn": TOPIC}, "allow"),
    ("SourceArn ArnEquals mismatch",
     [_policy(_allow("sqs:SendMessage", QUEUE,
                     Condition={"ArnEquals": {"aws:SourceArn": TOPIC + "2"}}))],
     "sqs:SendMessage", QUEUE, {"aws:SourceArn": TOPIC}, "implicit-deny"),
    ("SourceArn absent: condition false",
     [_policy(_allow("sqs:SendMessage", QUEUE,
                     Condition={"ArnEquals": {"aws:SourceArn": TOPIC}}))],
     "sqs:SendMessage", QUEUE, {}, "implicit-deny"),
    ("SourceArn absent: IfExists true",
     [_policy(_allow("sqs:SendMessage", QUEUE,
                     Condition={"ArnEqualsIfExists": {"aws:SourceArn": TOPIC}}))],
     "sqs:SendMessage", QUEUE, {}, "allow"),
    ("SourceArn absent: negated operator true",
     [_policy(_allow("sqs:SendMessage", QUEUE),
              _deny("sqs:SendMessage", QUEUE,
                    Condition={"ArnNotEquals": {"aws:SourceArn": TOPIC}}))],
     "sqs:SendMessage", QUEUE, {}, "explicit-deny"),
    # aws:SourceAccount
    ("SourceAccount equals",
     [_policy(_allow("sns:Publish", TOPIC,
                     Condition={"StringEquals": {"aws:SourceAccount": "123456789012"}}))],
     "sns:Publish", TOPIC, {"aws:SourceAccount": "123456789012"}, "allow"),
    ("SourceAccount other account",
     [_policy(_allow("sns:Publish", TOPIC,
                     Condition={"StringEquals": {"aws:SourceAccount": "123456789012"}}))],
     "sns:Publish", TOPIC, {"aws:SourceAccount": "210987654321"}, "implicit-deny"),
    ("key names case-insensitive",
     [_policy(_allow("sns:Publish", TOPIC,
                     Condition={"StringEquals": {"AWS:SOURCEACCOUNT": "123456789012"}}))],
     "sns:Publish", TOPIC, {"aws:SourceAccount": "123456789012"}, "allow"),
    # kms:ViaService
    ("ViaService list matches one",
     [_policy(_allow("kms:Decrypt", "*", Condition={"StringEquals": {
         "kms:ViaService": ["sqs.us-east-1.amazonaws.com", "sns.us-east-1.amazonaws.com"]}}))],
     "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k",
     {"kms:ViaService": "sns.us-east-1.amazonaws.com"}, "allow"),
    ("ViaService StringLike mismatch",
     [_policy(_allow("kms:Decrypt", "*",
                     Condition={"StringLike": {"kms:ViaService": "sqs.*.amazonaws.com"}}))],
     "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k",
     {"kms:ViaService": "s3.us-east-1.amazonaws.com"}, "implicit-deny"),
    ("Null true: key absent",
     [_policy(_allow("kms:Decrypt", "*", Condition={"Null": {"kms:ViaService": "true"}}))],
     "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k", {}, "allow"),
    ("Null true: key present",
     [_policy(_allow("kms:Decrypt", "*", Condition={"Null": {"kms:ViaService": "true"}}))],
     "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k",
     {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}, "implicit-deny"),
    ("every operator must hold",
     [_policy(_allow("sqs:SendMessage", QUEUE, Condition={
         "ArnEquals": {"aws:SourceArn": TOPIC},
         "StringEquals": {"aws:SourceAccount": "123456789012"}}))],
     "sqs:SendMessage", QUEUE, {"aws:SourceArn": TOPIC, "aws:SourceAccount": "1"},
     "implicit-deny"),
    # unsupported keys / operators fail closed
    ("unsupported key: allow does not apply",
     [_policy(_allow("sns:Publish", TOPIC,
                     Condition={"StringEquals": {"aws:PrincipalTag/team": "a"}}))],
     "sns:Publish", TOPIC, {"aws:PrincipalTag/team": "a"}, "implicit-deny"),
    ("unsupported key: deny applies",
     [_policy(_allow("sns:Publish", TOPIC),
              _deny("sns:Publish", TOPIC,
                    Condition={"StringEquals": {"aws:PrincipalTag/team": "b"}}))],
     "sns:Publish", TOPIC, {}, "explicit-deny"),
    ("unsupported operator: allow does not apply",
     [_policy(_allow("sns:Publish", TOPIC,
                     Condition={"NumericLessThan": {"aws:SourceAccount": "5"}}))],
     "sns:Publish", TOPIC, {"aws:SourceAccount": "1"}, "implicit-deny"),
    ("policy as JSON string",
     ['{"Statement": {"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}}'],
     "sns:Publish", TOPIC, {}, "allow"),
    ("statement without Resource does not allow",
     [_policy({"Effect": "Allow", "Action": "sns:Publish"})],
     "sns:Publish", TOPIC, {}, "implicit-deny"),
]


@pytest.mark.parametrize(
    ("policies", "action", "resource", "context", "expected"),
    [c[1:] for c in CASES], ids=[c[0] for c in CASES],
)
def test_evaluate(policies, action, resource, context, expected):
    result = evaluate(policies, action, resource, context)
    assert result.decision == expected
    assert result.allowed is (expected == "allow")


def test_deciding_statement_is_reported():
    deny = _deny("sns:Publish", TOPIC, Sid="NoPublish")
    result = evaluate([_policy(_allow("*", "*"), deny)], "sns:Publish", TOPIC)
    assert result.decision == "explicit-deny"
    assert result.statement == deny


def test_unsupported_condition_is_logged(caplog):
    policy = _policy(_allow("sns:Publish", TOPIC, Sid="Tagged",
                            Condition={"StringEquals": {"aws:PrincipalTag/team": "a"}}))
    with caplog.at_level(logging.WARNING, logger="ddb_stream_patterns.local.iam"):
        assert evaluate([policy], "sns:Publish", TOPIC).decision == "implicit-deny"
    assert len(caplog.records) == 1
    assert "fails closed" in caplog.records[0].getMessage()
    assert "aws:PrincipalTag/team" in caplog.records[0].getMessage()


def test_moto_alone_gets_these_wrong():
    """Why the wrapper exists: moto's own statement matching (documented quirks)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    not_resource = _policy({"Effect": "Allow", "Action": "sns:Publish", "NotResource": TOPIC})
    dotted = _policy(_allow("s3:GetObject", "arn:aws:s3:::a.b/*"))
    assert IAMPolicy(__import__("json").dumps(not_resource)).is_action_permitted(
        "sns:Publish", TOPIC) is PermissionResult.PERMITTED
    assert IAMPolicy(__import__("json").dumps(dotted)).is_action_permitted(
        "s3:GetObject", "arn:aws:s3:::axb/k") is PermissionResult.PERMITTED
    assert evaluate([not_resource], "sns:Publish", TOPIC).decision == "implicit-deny"
    assert evaluate([dotted], "s3:GetObject", "arn:aws:s3:::axb/k").decision == "implicit-deny"
