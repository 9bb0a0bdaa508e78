"""The local IAM evaluator (identity policies), table-driven."""

from __future__ import annotations

import logging

import pytest

from ddb_stream_patterns.local.iam import RoleAuthorizer, evaluate, request_resources

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


# ------------------------------------------------------------------ RoleAuthorizer


ACCOUNT = "123456789012"


def _authorizer(*statements):
    return RoleAuthorizer(f"arn:aws:iam::{ACCOUNT}:role/CounterRole", "counter-fn",
                          lambda: [_policy(*statements)], "us-east-1", ACCOUNT)


def test_counter_without_transact_permissions_is_denied_per_item():
    """TransactWriteItems is authorized item by item (PutItem, UpdateItem, ...)."""
    params = {"TransactItems": [["Update", "Counts"], ["Put", "Counts"]]}
    assert request_resources("dynamodb", "TransactWriteItems", params, "us-east-1", ACCOUNT) == [
        ("dynamodb:UpdateItem", TABLE), ("dynamodb:PutItem", TABLE)]
    read_only = _authorizer(_allow(["dynamodb:GetItem", "dynamodb:Query"], TABLE))
    denied = read_only.check("dynamodb", "TransactWriteItems", params)
    assert denied == {
        "code": "AccessDeniedException", "status": 400,
        "message": f"User: arn:aws:sts::{ACCOUNT}:assumed-role/CounterRole/counter-fn is not "
                   f"authorized to perform: dynamodb:UpdateItem on resource: {TABLE} because no "
                   "identity-based policy allows the dynamodb:UpdateItem action"}
    writer = _authorizer(_allow(["dynamodb:UpdateItem", "dynamodb:PutItem"], TABLE))
    assert writer.check("dynamodb", "TransactWriteItems", params) is None


def test_error_shapes_per_service():
    nothing = _authorizer()
    sns_denied = nothing.check("sns", "Publish", {"TopicArn": TOPIC})
    assert (sns_denied["code"], sns_denied["status"]) == ("AuthorizationError", 403)
    assert f"sns:Publish on resource: {TOPIC}" in sns_denied["message"]
    sqs_denied = nothing.check("sqs", "SendMessage", {"QueueUrl": "http://x/123456789012/q"})
    assert (sqs_denied["code"], sqs_denied["status"]) == ("AccessDenied", 403)
    assert f"sqs:SendMessage on resource: {QUEUE}" in sqs_denied["message"]
    s3_denied = nothing.check("s3", "HeadObject", {"Bucket": "b", "Key": "k"})
    assert (s3_denied["code"], s3_denied["status"]) == ("AccessDenied", 403)
    assert "s3:GetObject on resource: arn:aws:s3:::b/k" in s3_denied["message"]
    assert nothing.check("sts", "GetCallerIdentity", {}) is None


def test_explicit_deny_message_and_publish_batch():
    auth = _authorizer(_allow("sns:*", "*"), _deny("sns:Publish", TOPIC))
    denied = auth.check("sns", "PublishBatch", {"TopicArn": TOPIC})
    assert denied["message"].endswith(
        f"sns:Publish on resource: {TOPIC} with an explicit deny in an identity-based policy")


def test_table_arns_as_deployed():
    local_arn = "arn:aws:dynamodb:ddblocal:000000000000:table/Counts"
    auth = RoleAuthorizer(f"arn:aws:iam::{ACCOUNT}:role/R", "fn",
                          lambda: [_policy(_allow("dynamodb:PutItem", local_arn))],
                          "us-east-1", ACCOUNT, table_arn={"Counts": local_arn}.get)
    assert auth.check("dynamodb", "PutItem", {"TableNames": ["Counts"]}) is None
    assert auth.check("dynamodb", "PutItem", {"TableNames": ["Other"]})["code"] == (
        "AccessDeniedException")


SNS = ("Service", "sns.amazonaws.com")
QUEUE_POLICY = {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": QUEUE,
                "Condition": {"ArnEquals": {"aws:SourceArn": TOPIC}}}

RESOURCE_CASES = [
    ("service principal allowed", [_policy(QUEUE_POLICY)], {"aws:SourceArn": TOPIC}, "allow"),
    ("other topic", [_policy(QUEUE_POLICY)], {"aws:SourceArn": TOPIC + "2"}, "implicit-deny"),
    ("no queue policy", [], {"aws:SourceArn": TOPIC}, "implicit-deny"),
    ("other service", [_policy({**QUEUE_POLICY, "Principal": {"Service": "s3.amazonaws.com"}})],
     {"aws:SourceArn": TOPIC}, "implicit-deny"),
    ("principal list", [_policy({**QUEUE_POLICY, "Principal": {
        "Service": ["s3.amazonaws.com", "sns.amazonaws.com"]}})],
     {"aws:SourceArn": TOPIC}, "allow"),
    ("star principal", [_policy({**QUEUE_POLICY, "Principal": "*"})],
     {"aws:SourceArn": TOPIC}, "allow"),
    ("statement without principal", [_policy({k: v for k, v in QUEUE_POLICY.items()
                                               if k != "Principal"})],
     {"aws:SourceArn": TOPIC}, "implicit-deny"),
    ("NotPrincipal deny fails closed",
     [_policy(QUEUE_POLICY, {"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::1:root"},
                             "Action": "sqs:*", "Resource": QUEUE})],
     {"aws:SourceArn": TOPIC}, "explicit-deny"),
]


@pytest.mark.parametrize(("policies", "context", "expected"), [c[1:] for c in RESOURCE_CASES],
                         ids=[c[0] for c in RESOURCE_CASES])
def test_resource_policy_principals(policies, context, expected):
    result = evaluate(policies, "sqs:SendMessage", QUEUE, context, principal=SNS)
    assert result.decision == expected


# ------------------------------------------------------------------ principals (resource policies)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/FnRole"
SESSION = ("AWS", f"arn:aws:sts::{ACCOUNT}:assumed-role/FnRole/fn")
CLOUDWATCH = ("Service", "cloudwatch.amazonaws.com")
ALARM = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:Errors"
BUCKET_OBJECT = "arn:aws:s3:::archive/k"


def _stmt(effect, principal, action="s3:PutObject", resource="*", key="Principal", **extra):
    return {"Effect": effect, key: principal, "Action": action, "Resource": resource, **extra}


PRINCIPAL_CASES = [
    # (id, statements, caller, action, context, expected)
    ("star allows everyone", [_stmt("Allow", "*")], SESSION, "s3:PutObject", {}, "allow"),
    ("AWS star allows a service too", [_stmt("Allow", {"AWS": "*"})], CLOUDWATCH,
     "s3:PutObject", {}, "allow"),
    ("role ARN names its sessions", [_stmt("Allow", {"AWS": ROLE})], SESSION, "s3:PutObject",
     {}, "allow"),
    ("other role", [_stmt("Allow", {"AWS": ROLE + "2"})], SESSION, "s3:PutObject", {},
     "implicit-deny"),
    ("account root allow grants nothing by itself",
     [_stmt("Allow", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"})], SESSION, "s3:PutObject", {},
     "implicit-deny"),
    ("account id deny denies its roles", [_stmt("Deny", {"AWS": ACCOUNT})], SESSION,
     "s3:PutObject", {}, "explicit-deny"),
    ("other account deny spares the role", [_stmt("Deny", {"AWS": "210987654321"})], SESSION,
     "s3:PutObject", {}, "implicit-deny"),
    ("service principal is not a role", [_stmt("Allow", {"Service": "lambda.amazonaws.com"})],
     SESSION, "s3:PutObject", {}, "implicit-deny"),
    ("explicit deny of the role beats star allow",
     [_stmt("Allow", "*"), _stmt("Deny", {"AWS": [ROLE]})], SESSION, "s3:PutObject", {},
     "explicit-deny"),
    ("NotPrincipal deny spares the listed role",
     [_stmt("Allow", "*"), _stmt("Deny", {"AWS": ROLE}, key="NotPrincipal")], SESSION,
     "s3:PutObject", {}, "allow"),
    ("NotPrincipal deny hits everyone else",
     [_stmt("Allow", "*"), _stmt("Deny", {"AWS": ROLE + "2"}, key="NotPrincipal")], SESSION,
     "s3:PutObject", {}, "explicit-deny"),
    ("NotPrincipal allow grants the others",
     [_stmt("Allow", {"Service": "sns.amazonaws.com"}, key="NotPrincipal")], CLOUDWATCH,
     "s3:PutObject", {}, "allow"),
    ("service principal with its SourceArn",
     [_stmt("Allow", {"Service": "cloudwatch.amazonaws.com"}, "sns:Publish", TOPIC,
            Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:*:{ACCOUNT}:alarm:*"},
                       "StringEquals": {"aws:SourceAccount": ACCOUNT}})],
     CLOUDWATCH, "sns:Publish", {"aws:SourceArn": ALARM, "aws:SourceAccount": ACCOUNT}, "allow"),
    ("service principal, other account's alarm",
     [_stmt("Allow", {"Service": "cloudwatch.amazonaws.com"}, "sns:Publish", TOPIC,
            Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:*:{ACCOUNT}:alarm:*"}})],
     CLOUDWATCH, "sns:Publish", {"aws:SourceArn": ALARM.replace(ACCOUNT, "210987654321")},
     "implicit-deny"),
    ("non-TLS deny with a service principal (TLS)",
     [_stmt("Allow", {"Service": "cloudwatch.amazonaws.com"}, "sns:Publish", TOPIC),
      _stmt("Deny", "*", "sns:Publish", TOPIC,
            Condition={"Bool": {"aws:SecureTransport": "false"}})],
     CLOUDWATCH, "sns:Publish", {"aws:SecureTransport": "true"}, "allow"),
]


@pytest.mark.parametrize(("statements", "caller", "action", "context", "expected"),
                         [c[1:] for c in PRINCIPAL_CASES], ids=[c[0] for c in PRINCIPAL_CASES])
def test_principals(statements, caller, action, context, expected):
    resource = TOPIC if action == "sns:Publish" else BUCKET_OBJECT
    assert evaluate([_policy(*statements)], action, resource, context,
                    principal=caller).decision == expected


ACCESS_CASES = [
    # (id, identity statements, resource statements, expected decision, deciding kind)
    ("identity allows, no resource policy", [_allow("s3:PutObject", "*")], [], "allow",
     "identity"),
    ("resource allows the role alone", [], [_stmt("Allow", {"AWS": ROLE})], "allow", "resource"),
    ("neither allows", [_allow("s3:GetObject", "*")], [_stmt("Allow", {"AWS": ROLE + "2"})],
     "implicit-deny", ""),
    ("resource deny beats identity allow", [_allow("s3:*", "*")],
     [_stmt("Deny", {"AWS": ROLE})], "explicit-deny", "resource"),
    ("identity deny beats resource allow", [_allow("s3:*", "*"), _deny("s3:PutObject", "*")],
     [_stmt("Allow", {"AWS": ROLE})], "explicit-deny", "identity"),
    ("enforce_ssl bucket policy spares TLS calls", [_allow("s3:PutObject", "*")],
     [_stmt("Deny", {"AWS": "*"}, "s3:*", ["arn:aws:s3:::archive", "arn:aws:s3:::archive/*"],
            Condition={"Bool": {"aws:SecureTransport": "false"}})], "allow", "identity"),
]


@pytest.mark.parametrize(("identity", "resource", "expected", "kind"),
                         [c[1:] for c in ACCESS_CASES], ids=[c[0] for c in ACCESS_CASES])
def test_identity_and_resource_policies_same_account(identity, resource, expected, kind):
    from ddb_stream_patterns.local.iam import evaluate_access

    result, decided_by = evaluate_access([_policy(*identity)], [_policy(*resource)] if resource
                                         else [], "s3:PutObject", BUCKET_OBJECT,
                                         {"aws:SecureTransport": "true"}, SESSION)
    assert (result.decision, decided_by) == (expected, kind)


def test_authorizer_evaluates_bucket_policy_and_names_it():
    bucket_policy = _policy(_stmt("Deny", {"AWS": ROLE}, "s3:PutObject", "arn:aws:s3:::archive/*"))
    auth = RoleAuthorizer(ROLE, "fn", lambda: [_policy(_allow("s3:PutObject", "*"))],
                          "us-east-1", ACCOUNT,
                          resource_policies=lambda arn: [bucket_policy]
                          if arn.startswith("arn:aws:s3:::archive") else [])
    denied = auth.check("s3", "PutObject", {"Bucket": "archive", "Key": "k"})
    assert (denied["code"], denied["status"]) == ("AccessDenied", 403)
    assert denied["message"].endswith(
        "s3:PutObject on resource: arn:aws:s3:::archive/k with an explicit deny in a "
        "resource-based policy")
    assert auth.check("s3", "PutObject", {"Bucket": "other", "Key": "k"}) is None


def test_opensearch_requests_map_to_es_http_actions():
    domain = f"arn:aws:es:us-east-1:{ACCOUNT}:domain/search"
    pairs = request_resources("es", "ESHttpPost", {"Host": "127.0.0.1:9200",
                                                   "Path": "/tasks/_bulk?refresh=false"},
                              "us-east-1", ACCOUNT, domain_arn={"127.0.0.1:9200": domain}.get)
    assert pairs == [("es:ESHttpPost", f"{domain}/tasks/_bulk")]
    access = _policy(_stmt("Allow", {"AWS": ROLE}, "es:ESHttpPost", "arn:aws:es:*:*:domain/*/tasks/_bulk"))
    auth = RoleAuthorizer(ROLE, "fn", lambda: [], "us-east-1", ACCOUNT,
                          resource_policies=lambda arn: [access],
                          domain_arn={"127.0.0.1:9200": domain}.get)
    params = {"Host": "127.0.0.1:9200", "Path": "/tasks/_bulk"}
    assert auth.check("es", "ESHttpPost", params) is None  # the domain policy allows it
    denied = auth.check("es", "ESHttpDelete", {**params, "Path": "/tasks"})
    assert "es:ESHttpDelete on resource: " + domain + "/tasks because no identity-based" in (
        denied["message"])
