"""IAM identity-policy evaluation for the local cloud, built on moto's evaluator.

>>> policy = {"Version": "2012-10-17", "Statement": [
...     {"Effect": "Allow", "Action": "sns:Publish", "Resource": "arn:aws:sns:*:*:t"}]}
>>> evaluate([policy], "sns:Publish", "arn:aws:sns:us-east-1:123456789012:t").decision
'allow'

A request is allowed when some statement allows it and none denies it; an explicit
deny beats any allow; nothing matching is an implicit deny (IAM's evaluation logic
within one account, identity-based policies only).

Each statement's ``Action`` / ``NotAction`` / ``Resource`` matching is moto's
(:class:`moto.iam.access_control.IAMPolicyStatement`), with two corrections made here
because moto's, checked in its source (``moto/iam/access_control.py``), gets them wrong:

* moto turns a pattern into a regular expression without escaping it (``.`` in an ARN
  matches any character) and matches actions case-sensitively; here only ``*`` and
  ``?`` are wildcards and actions match case-insensitively, as IAM does;
* moto does not know ``NotResource`` (a statement with only ``NotResource`` applies to
  every resource there) and evaluates only ``StringEquals`` conditions, turning an
  unmet condition of an *Allow* statement into an explicit deny. Conditions are
  evaluated here instead (:data:`SUPPORTED_CONDITION_KEYS`, :data:`OPERATORS`), and a
  statement whose condition does not hold does not apply (neither allows nor denies).

A condition on a key or with an operator not supported here makes its statement fail
closed, with a warning logged: an *Allow* statement does not apply, a *Deny* statement
applies. Never open.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from moto.iam.access_control import IAMPolicyStatement, PermissionResult

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "OPERATORS",
    "SUPPORTED_CONDITION_KEYS",
    "Decision",
    "Evaluation",
    "evaluate",
]

#: Condition keys evaluated (lower case: IAM's key names are case-insensitive).
SUPPORTED_CONDITION_KEYS = (
    "aws:securetransport",
    "aws:sourcearn",
    "aws:sourceaccount",
    "kms:viaservice",
)

Decision = Literal["allow", "explicit-deny", "implicit-deny"]


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE if ignore_case else 0)


def _string_equals(expected: str, actual: str) -> bool:
    return expected == actual


def _string_like(expected: str, actual: str) -> bool:
    return _glob(expected).match(actual) is not None


def _ignore_case(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


def _bool(expected: str, actual: str) -> bool:
    return str(expected).lower() == str(actual).lower()


#: Operator → (value test, negated). ``...IfExists`` variants and ``Null`` are handled too.
OPERATORS: dict[str, tuple[Any, bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_string_like, False),
    "ArnLike": (_string_like, False),
    "ArnNotEquals": (_string_like, True),
    "ArnNotLike": (_string_like, True),
    "Bool": (_bool, False),
}


class _Unsupported(Exception):
    pass


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Whether a statement's ``Condition`` block holds (every operator, every key).

    Raises :class:`_Unsupported` for an operator or key this module does not evaluate.
    """
    keyed = {k.lower(): str(v) for k, v in context.items()}
    for operator, tests in condition.items():
        if not isinstance(tests, Mapping):
            raise _Unsupported(f"condition operator {operator!r} with {tests!r}")
        if_exists = operator.endswith("IfExists")
        base = operator[: -len("IfExists")] if if_exists else operator
        for key, expected in tests.items():
            key_l = key.lower()
            if key_l not in SUPPORTED_CONDITION_KEYS:
                raise _Unsupported(f"condition key {key!r}")
            values = expected if isinstance(expected, list) else [expected]
            present = key_l in keyed
            if base == "Null" and not if_exists:
                # Null: true → the key must be absent; false → present.
                if any(_bool(v, "true") for v in values) == present:
                    return False
                continue
            if base not in OPERATORS:
                raise _Unsupported(f"condition operator {operator!r}")
            test, negated = OPERATORS[base]
            if not present:
                # Absent key: false, except negated operators (true) and IfExists (true).
                if if_exists or negated:
                    continue
                return False
            matched = any(test(str(v), keyed[key_l]) for v in values)
            if matched == negated:
                return False
    return True


class _Statement(IAMPolicyStatement):
    """moto's statement, with IAM's wildcard matching (see the module notes)."""

    @staticmethod
    def _match(pattern: str, string: str) -> re.Match[str] | None:
        # Actions (service:Name) match case-insensitively; ARNs case-sensitively.
        is_action = not string.startswith("arn:") and string != "*"
        return _glob(pattern, ignore_case=is_action).match(string)

    def _check_conditions(self, incoming_condition_values: Any) -> bool:
        return True  # evaluated in `_statement_effect`, before moto sees the statement


@dataclass(frozen=True)
class Evaluation:
    """The outcome of :func:`evaluate`: the decision and the statement that made it."""

    decision: Decision
    statement: Mapping[str, Any] | None = None  # the deny, or the first allow

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


def _principal_matches(element: Any, principal: tuple[str, str]) -> bool:
    """A statement's ``Principal`` against ``(kind, value)``: ("Service", "sns.amazonaws.com")."""
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        return False
    if element.get("AWS") == "*":
        return True
    values = element.get(principal[0])
    values = values if isinstance(values, list) else [values]
    return principal[1] in values


def _statement_effect(
    statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str],
    principal: tuple[str, str] | None = None,
) -> PermissionResult:
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        return PermissionResult.NEUTRAL
    if principal is not None:  # a resource policy: the statement must name the caller
        if "NotPrincipal" in statement:
            _LOGGER.warning("resource policy statement %s fails closed: NotPrincipal is not "
                            "evaluated locally", json.dumps(statement.get("Sid") or statement,
                                                            default=str))
            return PermissionResult.DENIED if effect == "Deny" else PermissionResult.NEUTRAL
        if not _principal_matches(statement.get("Principal"), principal):
            return PermissionResult.NEUTRAL
    stripped = {k: v for k, v in statement.items()
                if k not in ("Condition", "NotResource", "Principal")}
    if "NotResource" in statement:
        # moto does not know NotResource: match it here, let moto match the actions.
        if _Statement(statement)._check_element_matches("NotResource", resource):
            return PermissionResult.NEUTRAL
        stripped["Resource"] = "*"
    elif "Resource" not in statement:
        return PermissionResult.NEUTRAL  # an identity policy statement needs a resource
    result = _Statement(stripped).is_action_permitted(action, resource)
    if result is PermissionResult.NEUTRAL:
        return result
    condition = statement.get("Condition")
    if condition:
        try:
            holds = _condition_holds(condition, context)
        except _Unsupported as exc:
            _LOGGER.warning(
                "IAM statement %s fails closed (%s): %s is not evaluated locally",
                json.dumps(statement.get("Sid") or statement, default=str),
                "denies" if effect == "Deny" else "does not allow", exc,
            )
            return PermissionResult.DENIED if effect == "Deny" else PermissionResult.NEUTRAL
        if not holds:
            return PermissionResult.NEUTRAL
    return PermissionResult.PERMITTED if effect == "Allow" else PermissionResult.DENIED


def _statements(policy: Mapping[str, Any] | str) -> Sequence[Mapping[str, Any]]:
    document = json.loads(policy) if isinstance(policy, str) else policy
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def evaluate(
    policies: Iterable[Mapping[str, Any] | str],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
    principal: tuple[str, str] | None = None,
) -> Evaluation:
    """Decide ``action`` on ``resource`` (an ARN) under identity policy documents.

    ``context`` holds the request's condition keys (e.g. ``{"aws:SecureTransport":
    "true"}``); a key absent from it is absent from the request. With ``principal``
    (``("Service", "sns.amazonaws.com")``, ``("AWS", role ARN)``) the documents are
    resource policies: a statement applies only when its ``Principal`` names the caller
    (``NotPrincipal`` is not evaluated: fails closed).
    """
    context = context or {}
    first_allow: Mapping[str, Any] | None = None
    for policy in policies:
        for statement in _statements(policy):
            result = _statement_effect(statement, action, resource, context, principal)
            if result is PermissionResult.DENIED:
                return Evaluation("explicit-deny", statement)
            if result is PermissionResult.PERMITTED and first_allow is None:
                first_allow = statement
    if first_allow is not None:
        return Evaluation("allow", first_allow)
    return Evaluation("implicit-deny")


# ------------------------------------------------------------------ requests → (action, resources)

#: The error each service returns for a denied call: (code, HTTP status).
ERROR_SHAPES: dict[str, tuple[str, int]] = {
    "dynamodb": ("AccessDeniedException", 400),
    "sns": ("AuthorizationError", 403),
    "sqs": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
}
_DEFAULT_ERROR = ("AccessDeniedException", 400)

#: Operations whose IAM action is not ``prefix:OperationName``.
_ACTION_NAMES: dict[tuple[str, str], str] = {
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "HeadObject"): "GetObject",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "DeleteObjects"): "DeleteObject",
    ("s3", "CopyObject"): "PutObject",
    ("s3", "CreateMultipartUpload"): "PutObject",
    ("s3", "UploadPart"): "PutObject",
    ("s3", "CompleteMultipartUpload"): "PutObject",
    # SNS authorizes PublishBatch as sns:Publish.
    ("sns", "PublishBatch"): "Publish",
}

#: Calls IAM does not authorize (every principal may make them).
UNCHECKED = {("sts", "GetCallerIdentity")}


#: TransactWriteItems / TransactGetItems: each item is authorized as its own action.
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def request_resources(
    prefix: str,
    operation: str,
    params: Mapping[str, Any],
    region: str,
    account: str,
    table_arn: Callable[[str], str | None] | None = None,
) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs a call is authorized on.

    ``params`` is the subset the function worker sends (see ``functions._iam_params``).
    ``table_arn`` maps a table name to its ARN as deployed (DynamoDB Local writes its
    own region and account into ARNs); default: this region and account.
    A call whose resource is not derived here is authorized on ``*`` (a policy naming
    specific resources then does not allow it: fail closed).
    """
    action = f"{prefix}:{_ACTION_NAMES.get((prefix, operation), operation)}"

    def table(name: str) -> str:
        if name.startswith("arn:"):
            return name
        known = table_arn(name) if table_arn is not None else None
        return known or f"arn:aws:dynamodb:{region}:{account}:table/{name}"

    pairs: list[tuple[str, str]] = []
    if prefix == "dynamodb":
        if params.get("StreamArn"):
            pairs.append((action, str(params["StreamArn"])))
        index = params.get("IndexName")
        for name in params.get("TableNames", []):
            arn = table(str(name))
            pairs.append((action, f"{arn}/index/{index}" if index else arn))
        for kind, name in params.get("TransactItems", []):
            item_action = _TRANSACT_ACTIONS.get(kind, kind)
            pairs.append((f"dynamodb:{item_action}", table(str(name))))
        if operation in ("TransactWriteItems", "TransactGetItems") and not pairs:
            pairs.append((action, "*"))
    elif prefix == "sns":
        arn = params.get("TopicArn") or params.get("TargetArn")
        if arn:
            pairs.append((action, str(arn)))
    elif prefix == "sqs":
        url = params.get("QueueUrl")
        if url:
            name = str(url).rstrip("/").rsplit("/", 1)[-1]
            pairs.append((action, f"arn:aws:sqs:{region}:{account}:{name}"))
    elif prefix == "s3":
        bucket = params.get("Bucket")
        if bucket:
            key = params.get("Key")
            object_level = key is not None or operation == "DeleteObjects"
            pairs.append((action, f"arn:aws:s3:::{bucket}/{key if key is not None else '*'}"
                          if object_level else f"arn:aws:s3:::{bucket}"))
    return pairs or [(action, "*")]


@dataclass
class RoleAuthorizer:
    """Decides a function's calls under its role's identity policies (AWS's error shapes).

    ``policies`` is read at each call (the deployer fills it once every stack is
    deployed). Calling the authorizer with a request (``{"prefix", "operation",
    "params"}``) returns ``None`` when allowed, else the error the service returns.
    """

    role_arn: str
    session_name: str
    policies: Any  # Callable[[], Sequence[policy documents]]
    region: str
    account: str
    table_arn: Callable[[str], str | None] | None = None

    @property
    def principal(self) -> str:
        role_name = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{self.session_name}"

    def check(self, prefix: str, operation: str, params: Mapping[str, Any],
              context: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        if (prefix, operation) in UNCHECKED:
            return None
        pairs = request_resources(prefix, operation, params, self.region, self.account,
                                  self.table_arn)
        context = {"aws:SecureTransport": "true", **(context or {})}
        policies = list(self.policies())
        for action, resource in pairs:
            result = evaluate(policies, action, resource, context)
            if result.allowed:
                continue
            reason = ("with an explicit deny in an identity-based policy"
                      if result.decision == "explicit-deny"
                      else f"because no identity-based policy allows the {action} action")
            code, status = ERROR_SHAPES.get(prefix, _DEFAULT_ERROR)
            return {
                "code": code,
                "status": status,
                "message": f"User: {self.principal} is not authorized to perform: {action} "
                           f"on resource: {resource} {reason}",
            }
        return None

    def __call__(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.check(str(request.get("prefix")), str(request.get("operation")),
                          request.get("params") or {})
