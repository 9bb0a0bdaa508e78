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
    "RoleAuthorizer",
    "evaluate",
    "evaluate_access",
    "principal_matches",
]

#: Condition keys evaluated (lower case: IAM's key names are case-insensitive).
SUPPORTED_CONDITION_KEYS = (
    "aws:securetransport",
    "aws:sourcearn",
    "aws:sourceaccount",
    "kms:viaservice",
    "s3:resourceaccount",
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


def _principal_values(element: Any, kind: str) -> list[str]:
    values = element.get(kind, []) if isinstance(element, Mapping) else []
    return [str(v) for v in (values if isinstance(values, list) else [values])]


def principal_matches(element: Any, principal: tuple[str, str]) -> bool:
    """Whether a ``Principal`` (or ``NotPrincipal``) element names the caller.

    ``principal`` is ``("Service", "cloudwatch.amazonaws.com")`` for a service, or
    ``("AWS", ARN)`` for an IAM role (its ARN ``arn:aws:iam::ACCOUNT:role/NAME`` or a
    session of it, ``arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION``). Matches:

    * ``"*"`` and ``{"AWS": "*"}``: everyone, services included;
    * ``{"Service": ...}``: that service (a name or a list);
    * ``{"AWS": ...}``: the role's ARN, the role ARN of an assumed-role session, the
      account ID or ``arn:aws:iam::ACCOUNT:root`` of the role's account.

    An account principal names every principal of the account: in an *Allow* of a
    same-account resource policy it grants nothing by itself (the account's identity
    policies decide, see :func:`_statement_effect`); in a *Deny* it denies them all.

    >>> principal_matches({"Service": ["sns.amazonaws.com"]}, ("Service", "sns.amazonaws.com"))
    True
    >>> principal_matches({"AWS": "arn:aws:iam::1:root"},
    ...                   ("AWS", "arn:aws:sts::1:assumed-role/R/fn"))
    True
    """
    return _principal_match(element, principal) is not None


def _principal_match(element: Any, principal: tuple[str, str]) -> str | None:
    """``"exact"`` (names the caller, or everyone), ``"account"`` (its account), or None."""
    if element == "*":
        return "exact"
    if not isinstance(element, Mapping):
        return None
    aws = _principal_values(element, "AWS")
    if "*" in aws:
        return "exact"
    kind, value = principal
    if kind == "Service":
        return "exact" if value in _principal_values(element, "Service") else None
    if kind != "AWS":
        return "exact" if value in _principal_values(element, kind) else None
    account = value.split(":")[4] if value.count(":") >= 5 else ""
    names = {value}
    if ":assumed-role/" in value:  # a session of a role: the role's ARN names it too
        role = value.split(":assumed-role/", 1)[1].split("/", 1)[0]
        names.add(f"arn:aws:iam::{account}:role/{role}")
    if names & set(aws):
        return "exact"
    if account and (account in aws or f"arn:aws:iam::{account}:root" in aws):
        return "account"
    return None


def _statement_effect(
    statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str],
    principal: tuple[str, str] | None = None,
) -> PermissionResult:
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        return PermissionResult.NEUTRAL
    if principal is not None:  # a resource policy: the statement must name the caller
        if "NotPrincipal" in statement:
            # Applies to every principal except those listed.
            if _principal_match(statement["NotPrincipal"], principal) is not None:
                return PermissionResult.NEUTRAL
        else:
            match = _principal_match(statement.get("Principal"), principal)
            if match is None:
                return PermissionResult.NEUTRAL
            if match == "account" and effect == "Allow":
                # The account delegates to its identity policies: no grant by itself.
                return PermissionResult.NEUTRAL
    stripped = {k: v for k, v in statement.items()
                if k not in ("Condition", "NotResource", "Principal", "NotPrincipal")}
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
    (or its ``NotPrincipal`` does not; see :func:`principal_matches`).
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


def evaluate_access(
    identity_policies: Iterable[Mapping[str, Any] | str],
    resource_policies: Iterable[Mapping[str, Any] | str],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
    principal: tuple[str, str] | None = None,
) -> tuple[Evaluation, str]:
    """Decide a same-account request under identity *and* resource policies.

    IAM's rule within one account ("Policy evaluation for requests within a single
    account"): an explicit deny in either kind of policy denies; otherwise the request is
    allowed if either the identity-based or the resource-based policy allows it. A
    service principal (``("Service", ...)``) has no identity policies: pass ``[]``.

    Returns the evaluation and which kind decided it: ``"identity"``, ``"resource"``,
    or ``""`` (an implicit deny: nothing allowed it).

    >>> role = ("AWS", "arn:aws:sts::1:assumed-role/R/fn")
    >>> deny = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
    ...          "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    >>> allow = {"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}
    >>> evaluate_access([allow], [deny], "s3:PutObject", "arn:aws:s3:::b/k",
    ...                 {"aws:SecureTransport": "true"}, role)[0].decision
    'allow'
    """
    context = context or {}
    by_identity = evaluate(identity_policies, action, resource, context)
    by_resource = evaluate(resource_policies, action, resource, context,
                           principal=principal or ("AWS", "*"))
    for result, kind in ((by_identity, "identity"), (by_resource, "resource")):
        if result.decision == "explicit-deny":
            return result, kind
    for result, kind in ((by_identity, "identity"), (by_resource, "resource")):
        if result.allowed:
            return result, kind
    return Evaluation("implicit-deny"), ""


# ------------------------------------------------------------------ requests → (action, resources)

#: The error each service returns for a denied call: (code, HTTP status).
ERROR_SHAPES: dict[str, tuple[str, int]] = {
    "dynamodb": ("AccessDeniedException", 400),
    "es": ("AccessDenied", 403),
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
    domain_arn: Callable[[str], str | None] | None = None,
) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs a call is authorized on.

    ``params`` is the subset the function worker sends (see ``functions._iam_params``).
    ``table_arn`` maps a table name to its ARN as deployed (DynamoDB Local writes its
    own region and account into ARNs); default: this region and account.
    ``domain_arn`` maps an OpenSearch host (``host:port``) to its domain's ARN: an
    IAM-signed HTTP request (prefix ``es``, operation ``ESHttpPost`` etc., params
    ``Host`` and ``Path``) is authorized on ``<domain ARN>/<path>``.
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
    elif prefix == "es":
        domain = domain_arn(str(params.get("Host", ""))) if domain_arn is not None else None
        if domain:
            path = str(params.get("Path") or "/").split("?", 1)[0].lstrip("/")
            pairs.append((action, f"{domain}/{path}"))
    elif prefix == "s3":
        bucket = params.get("Bucket")
        if bucket:
            key = params.get("Key")
            object_level = key is not None or operation == "DeleteObjects"
            pairs.append((action, f"arn:aws:s3:::{bucket}/{key if key is not None else '*'}"
                          if object_level else f"arn:aws:s3:::{bucket}"))
    return pairs or [(action, "*")]


def _reason(decision: str, kind: str, action: str) -> str:
    """Why a call was denied, as IAM's AccessDenied messages word it."""
    if decision == "explicit-deny":
        article = "an" if kind == "identity" else "a"
        return f"with an explicit deny in {article} {kind}-based policy"
    return f"because no identity-based policy allows the {action} action"


@dataclass
class RoleAuthorizer:
    """Decides a function's calls under its role's policies (AWS's error shapes).

    ``policies`` is read at each call (the deployer fills it once every stack is
    deployed). Calling the authorizer with a request (``{"prefix", "operation",
    "params"}``) returns ``None`` when allowed, else the error the service returns.

    ``resource_policies`` (resource ARN → resource policy documents: an S3 bucket's
    policy for its objects, an OpenSearch domain's access policy for its paths) makes
    the decision IAM's same-account one (:func:`evaluate_access`): an explicit deny in
    either denies, an allow in either allows. The caller is the role's session
    (``principal``). Calls are made over TLS (``aws:SecureTransport`` is ``"true"``):
    the AWS SDKs, and the runtime's own SigV4 client, use HTTPS endpoints in AWS; the
    local endpoints are plain HTTP, which says nothing about the deployed function.
    """

    role_arn: str
    session_name: str
    policies: Any  # Callable[[], Sequence[policy documents]]
    region: str
    account: str
    table_arn: Callable[[str], str | None] | None = None
    resource_policies: Callable[[str], Sequence[Any]] | None = None
    domain_arn: Callable[[str], str | None] | None = None

    @property
    def principal(self) -> str:
        role_name = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{self.session_name}"

    def decide(self, action: str, resource: str, context: Mapping[str, str] | None = None,
               policies: Sequence[Any] | None = None) -> dict[str, Any] | None:
        """``action`` on ``resource`` by this role: ``None`` if allowed, else the error.

        The error is ``{"code", "status", "message", "action", "resource"}``, the
        code and status the service of ``action`` returns and IAM's message.
        """
        context = {"aws:SecureTransport": "true", **(context or {})}
        if action.lower().startswith("s3:"):
            # Every bucket of the local cloud is its account's (s3:ResourceAccount).
            context.setdefault("s3:ResourceAccount", self.account)
        identity = list(self.policies()) if policies is None else policies
        attached = list(self.resource_policies(resource)) if self.resource_policies else []
        result, kind = evaluate_access(identity, attached, action, resource, context,
                                       ("AWS", self.principal))
        if result.allowed:
            return None
        prefix = action.split(":", 1)[0]
        code, status = ERROR_SHAPES.get(prefix, _DEFAULT_ERROR)
        return {
            "code": code,
            "status": status,
            "message": f"User: {self.principal} is not authorized to perform: {action} "
                       f"on resource: {resource} {_reason(result.decision, kind, action)}",
            "action": action,
            "resource": resource,
        }

    def check(self, prefix: str, operation: str, params: Mapping[str, Any],
              context: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        if (prefix, operation) in UNCHECKED:
            return None
        pairs = request_resources(prefix, operation, params, self.region, self.account,
                                  self.table_arn, self.domain_arn)
        policies = list(self.policies())
        for action, resource in pairs:
            denied = self.decide(action, resource, context, policies)
            if denied is not None:
                code, status = ERROR_SHAPES.get(prefix, _DEFAULT_ERROR)
                return {"code": code, "status": status, "message": denied["message"]}
        return None

    def __call__(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.check(str(request.get("prefix")), str(request.get("operation")),
                          request.get("params") or {})
