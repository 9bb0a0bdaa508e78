"""The role-mapping provider: map IAM principals to OpenSearch fine-grained access control roles.

CloudFormation can set a domain's master user but no other role mapping. This module
is the Lambda behind a CloudFormation custom resource (``ServiceToken`` = this
function, handler ``ddb_stream_runtime.role_mapping.handler``) that adds IAM ARNs to
one role's mapping through the security plugin's REST API, with SigV4-signed requests
(``es``), and answers CloudFormation at the event's ``ResponseURL``.

Resource properties
-------------------
``Endpoint``
    Required: ``https://<domain endpoint>``.
``RoleName``
    Required: the fine-grained access control role, e.g. ``all_access`` or a role
    this resource defines (``Role``).
``BackendRoles``, ``Users``
    IAM role ARNs (backend roles) and IAM user ARNs (users) to map; at least one.
``Role``
    Optional JSON text of the role's definition (``cluster_permissions``,
    ``index_permissions``). When given, this resource **owns** the role: it creates or
    replaces it, and on delete removes it when no one else is mapped to it.
``AdminRoleArn``
    Optional IAM role to assume for the calls. It must be allowed to use the security
    API: the domain's master user, or mapped to ``all_access`` and
    ``security_manager``. Default: the function's own role (which must then be).
``Region``
    Optional signing region. Default: ``AWS_REGION``.

What it does
------------
*Create*: for each ARN not yet in the mapping, one ``PATCH rolesmapping/<role>`` with
``add`` operations appending to ``/backend_roles/-`` (``/users/-``). A PATCH is applied
by the plugin to the stored mapping under an optimistic lock (409 on a concurrent
write, retried here), so other principals' entries are never overwritten, unlike a
``PUT``, which replaces the whole mapping. Only when the mapping does not exist yet
(404) is it created with ``PUT``. An ARN already mapped is left alone: running it
again changes nothing.

*Update*: the new properties are applied as on create, then the ARNs of the old
properties that the new ones no longer list are removed.

*Delete*: each of this resource's ARNs is removed from the mapping (``PATCH`` with
``remove`` operations by index, highest first, after a fresh ``GET``); entries of
others stay. An owned role whose mapping ends up empty is deleted with its mapping.
A delete after a failed create ignores errors, so a rollback is never stuck.

Every call is retried on 409, 429, 5xx and connection errors with backoff, within the
invocation's remaining time; the response to CloudFormation is always sent.

IAM: ``es:ESHttpGet``, ``es:ESHttpPut``, ``es:ESHttpPatch``, ``es:ESHttpDelete`` on
``arn:aws:es:<region>:<account>:domain/<domain>/_plugins/_security/api/*`` (and
``sts:AssumeRole`` on ``AdminRoleArn``); the domain's access policy must admit the
signing principal.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._sigv4 import SigV4Signer, botocore_session

__all__ = [
    "MappingSpec",
    "SecurityApiClient",
    "SecurityApiError",
    "add_to_mapping",
    "handler",
    "handle_event",
    "remove_from_mapping",
]

_LOGGER = logging.getLogger(__name__)
_API = "/_plugins/_security/api"
_RETRIED = (409, 429)  # plus every 5xx: a concurrent configuration write, throttling
_TRANSIENT_ERRORS = (OSError, http.client.HTTPException)
_FAILED_CREATE = "role-mapping-create-failed"
_RESPONSE_LIMIT = 4096  # bytes of the whole response body (CloudFormation's limit)
_KINDS = ("backend_roles", "users")


class SecurityApiError(Exception):
    """A security API call failed (after retries where worth retrying).

    Attributes
    ----------
    status : int or None
        The HTTP status, or None for a connection error.
    payload : object
        The parsed response body, if any.
    """

    def __init__(self, message: str, *, status: int | None, payload: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload


class SecurityApiClient:
    """SigV4-signed calls to ``/_plugins/_security/api`` over urllib.

    Parameters
    ----------
    endpoint : str
        ``https://host`` (``http://`` for a local test server).
    region : str
        Signing region.
    credentials : botocore Credentials, optional
        Default: botocore's credential chain.
    opener : urllib.request.OpenerDirector, optional
    timeout_seconds : float, optional
        Per attempt. Default: 20.
    max_attempts : int, optional
        For 409, 429, 5xx and connection errors. Default: 6.
    backoff_seconds : float, optional
        Before the 2nd attempt, doubled before each later one. Default: 0.5.
    deadline : float, optional
        ``time.monotonic()`` value after which no retry starts. Default: none.
    sleep : callable, optional
    """

    def __init__(
        self,
        endpoint: str,
        region: str,
        *,
        credentials: Any = None,
        opener: urllib.request.OpenerDirector | None = None,
        timeout_seconds: float = 20.0,
        max_attempts: int = 6,
        backoff_seconds: float = 0.5,
        deadline: float | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        scheme, _, host = endpoint.partition("://")
        if scheme not in ("https", "http") or not host or "/" in host.rstrip("/"):
            raise ValueError(f"endpoint must be https://<host>, got {endpoint!r}")
        self.base = endpoint.rstrip("/") + _API
        self._signer = SigV4Signer(region, "es", credentials)
        self._opener = opener or urllib.request.build_opener()
        self._timeout = timeout_seconds
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._deadline = deadline
        self._sleep = sleep

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One call; returns (status, parsed body) for 2xx and 404.

        Raises
        ------
        SecurityApiError
            Any other status (after retries for 409, 429 and 5xx), or no connection.
        """
        url = f"{self.base}/{path}"
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        reason, status, payload, sent = "", None, None, 0
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                pause = self._backoff * 2 ** (attempt - 2)
                if self._deadline is not None and time.monotonic() + pause > self._deadline:
                    break
                self._sleep(pause)
            request = urllib.request.Request(
                url,
                data=data if body is not None else None,
                headers=self._signer.headers(method, url, data, headers),
                method=method,
            )
            sent = attempt
            try:
                with self._opener.open(request, timeout=self._timeout) as response:
                    status, raw = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, raw = exc.code, exc.read()
            except _TRANSIENT_ERRORS as exc:
                status, payload, reason = None, None, f"{type(exc).__name__}: {exc}"
                continue
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw[:300].decode("utf-8", "replace")
            if 200 <= status < 300 or status == 404:
                return status, payload
            reason = f"{method} {path}: http {status}: {json.dumps(payload)[:300]}"
            if status in _RETRIED or status >= 500:
                continue
            raise SecurityApiError(reason, status=status, payload=payload)
        raise SecurityApiError(
            f"{reason or method + ' ' + path} (after {sent} attempts)",
            status=status,
            payload=payload,
        )

    def get_mapping(self, role: str) -> dict[str, Any] | None:
        """The mapping of ``role``, or None if there is none."""
        status, payload = self.call("GET", f"rolesmapping/{_quote(role)}")
        if status == 404:
            return None
        mapping = payload.get(role) if isinstance(payload, dict) else None
        if not isinstance(mapping, dict):
            raise SecurityApiError(
                f"GET rolesmapping/{role}: unexpected answer {payload!r:.200}", status=status
            )
        return mapping


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _not_found(what: str) -> SecurityApiError:
    return SecurityApiError(f"{what}: not found", status=404)


# --- what one resource maps -----------------------------------------------------------------


@dataclass(frozen=True)
class MappingSpec:
    """One custom resource's properties, validated.

    Examples
    --------
    >>> spec = MappingSpec.from_properties({
    ...     "Endpoint": "https://search-x.eu-west-1.es.amazonaws.com", "RoleName": "all_access",
    ...     "BackendRoles": ["arn:aws:iam::123456789012:role/ops"]}, region="eu-west-1")
    >>> spec.entries()
    [('backend_roles', 'arn:aws:iam::123456789012:role/ops')]
    """

    endpoint: str
    region: str
    role_name: str
    backend_roles: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    role: Mapping[str, Any] | None = None
    admin_role_arn: str | None = None

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any], *, region: str | None) -> MappingSpec:
        """Read ``ResourceProperties``; raise ValueError naming a bad one."""
        endpoint = properties.get("Endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise ValueError(f"Endpoint must be https://<domain endpoint>, got {endpoint!r}")
        role_name = properties.get("RoleName")
        if not isinstance(role_name, str) or not role_name or "/" in role_name:
            raise ValueError(f"RoleName must be a role name, got {role_name!r}")
        lists = {}
        for key in ("BackendRoles", "Users"):
            value = properties.get(key) or []
            if not isinstance(value, list) or not all(
                isinstance(v, str) and v.startswith("arn:") for v in value
            ):
                raise ValueError(f"{key} must be a list of IAM ARNs, got {value!r}")
            lists[key] = tuple(dict.fromkeys(value))
        if not lists["BackendRoles"] and not lists["Users"]:
            raise ValueError("give at least one of BackendRoles or Users")
        role = properties.get("Role")
        if role is not None:
            try:
                role = json.loads(role) if isinstance(role, str) else role
            except ValueError:
                role = None
            if not isinstance(role, dict) or not role:
                raise ValueError(f"Role must be a json object (a role definition), got {role!r}")
        admin = properties.get("AdminRoleArn") or None
        if admin is not None and not (isinstance(admin, str) and admin.startswith("arn:")):
            raise ValueError(f"AdminRoleArn must be an IAM role ARN, got {admin!r}")
        region = properties.get("Region") or region
        if not region:
            raise ValueError("Region is required (or AWS_REGION)")
        return cls(
            endpoint=endpoint,
            region=region,
            role_name=role_name,
            backend_roles=lists["BackendRoles"],
            users=lists["Users"],
            role=role,
            admin_role_arn=admin,
        )

    def entries(self) -> list[tuple[str, str]]:
        """(field, ARN) pairs this resource maps."""
        return [("backend_roles", a) for a in self.backend_roles] + [
            ("users", a) for a in self.users
        ]

    def same_target(self, other: MappingSpec) -> bool:
        return (self.endpoint, self.role_name) == (other.endpoint, other.role_name)


# --- the operations -------------------------------------------------------------------------


def _retry_conflicts(operation: Callable[[], Any], attempts: int = 5) -> Any:
    """Repeat a read-modify-write whose write lost a race (409 after the client's retries)."""
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except SecurityApiError as exc:
            if exc.status != 409 or attempt == attempts:
                raise
    return None  # pragma: no cover


def add_to_mapping(
    client: SecurityApiClient, role: str, entries: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Add ``(field, ARN)`` entries to ``role``'s mapping, keeping every other entry.

    Returns
    -------
    list
        The entries that were added (those already mapped are left alone).
    """
    wanted = list(dict.fromkeys(entries))

    def attempt() -> list[tuple[str, str]]:
        mapping = client.get_mapping(role)
        if mapping is None:
            body: dict[str, list[str]] = {}
            for kind, arn in wanted:
                body.setdefault(kind, []).append(arn)
            status, payload = client.call("PUT", f"rolesmapping/{_quote(role)}", body)
            if status == 404:  # the role itself does not exist
                raise SecurityApiError(f"PUT rolesmapping/{role}: {payload}", status=404)
            return wanted
        missing = [(k, a) for k, a in wanted if a not in (mapping.get(k) or [])]
        if not missing:
            return []
        operations = []
        for kind, arn in missing:
            if kind in mapping:
                operations.append({"op": "add", "path": f"/{kind}/-", "value": arn})
            else:  # no such list yet: create it with this entry
                operations.append({"op": "add", "path": f"/{kind}", "value": [arn]})
                mapping[kind] = [arn]
        status, payload = client.call("PATCH", f"rolesmapping/{_quote(role)}", operations)
        if status == 404:  # deleted since the GET: start again
            raise SecurityApiError(f"PATCH rolesmapping/{role}: {payload}", status=409)
        return missing

    return _retry_conflicts(attempt)


def remove_from_mapping(
    client: SecurityApiClient, role: str, entries: Iterable[tuple[str, str]]
) -> tuple[list[tuple[str, str]], dict[str, Any] | None]:
    """Remove ``(field, ARN)`` entries (every occurrence) from ``role``'s mapping.

    Returns
    -------
    tuple
        The entries removed, and the mapping as it is left (None if there is none).
    """
    unwanted = set(entries)

    def attempt() -> tuple[list[tuple[str, str]], dict[str, Any] | None]:
        mapping = client.get_mapping(role)
        if mapping is None:
            return [], None
        operations, removed = [], []
        for kind in _KINDS:
            values = mapping.get(kind) or []
            for index in range(len(values) - 1, -1, -1):  # highest first: indexes stay valid
                if (kind, values[index]) in unwanted:
                    operations.append({"op": "remove", "path": f"/{kind}/{index}"})
                    removed.append((kind, values[index]))
        if not operations:
            return [], mapping
        status, payload = client.call("PATCH", f"rolesmapping/{_quote(role)}", operations)
        if status == 404:
            return [], None
        left = {k: [v for v in (mapping.get(k) or []) if (k, v) not in unwanted] for k in _KINDS}
        return removed, {**mapping, **left}

    return _retry_conflicts(attempt)


def _mapping_is_empty(mapping: Mapping[str, Any]) -> bool:
    return not any(mapping.get(k) for k in ("backend_roles", "and_backend_roles", "users", "hosts"))


def apply(client: SecurityApiClient, spec: MappingSpec) -> dict[str, Any]:
    """Create (or replace) an owned role, then add the spec's entries to its mapping."""
    if spec.role is not None:
        client.call("PUT", f"roles/{_quote(spec.role_name)}", dict(spec.role))
    added = add_to_mapping(client, spec.role_name, spec.entries())
    _LOGGER.info("role mapping %s: added %s", spec.role_name, [a for _, a in added] or "nothing")
    return {"RoleName": spec.role_name, "Added": len(added)}


def retract(
    client: SecurityApiClient, spec: MappingSpec, keep: MappingSpec | None = None
) -> None:
    """Remove the spec's entries (but those ``keep`` still maps to the same role)."""
    entries = spec.entries()
    if keep is not None and keep.same_target(spec):
        entries = [e for e in entries if e not in set(keep.entries())]
    removed, left = remove_from_mapping(client, spec.role_name, entries)
    _LOGGER.info(
        "role mapping %s: removed %s", spec.role_name, [a for _, a in removed] or "nothing"
    )
    still_owned = keep is not None and keep.same_target(spec) and keep.role is not None
    if spec.role is not None and not still_owned and (left is None or _mapping_is_empty(left)):
        if left is not None:
            client.call("DELETE", f"rolesmapping/{_quote(spec.role_name)}")
        client.call("DELETE", f"roles/{_quote(spec.role_name)}")  # 404: already gone


# --- the custom resource ----------------------------------------------------------------------


def _assumed_credentials(role_arn: str, region: str) -> Any:
    from botocore.credentials import Credentials

    sts = botocore_session().create_client("sts", region_name=region)
    answer = sts.assume_role(RoleArn=role_arn, RoleSessionName="ddb-stream-role-mapping")
    c = answer["Credentials"]
    return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


ClientFactory = Callable[[MappingSpec, "float | None"], SecurityApiClient]


def _default_client(spec: MappingSpec, deadline: float | None) -> SecurityApiClient:
    credentials = (
        _assumed_credentials(spec.admin_role_arn, spec.region) if spec.admin_role_arn else None
    )
    return SecurityApiClient(spec.endpoint, spec.region, credentials=credentials, deadline=deadline)


def _physical_id(spec: MappingSpec) -> str:
    digest = hashlib.sha256(
        json.dumps([spec.endpoint, spec.role_name, spec.entries()]).encode()
    ).hexdigest()[:16]
    return f"rolesmapping/{spec.role_name}/{digest}"


def handle_event(
    event: Mapping[str, Any],
    *,
    deadline: float | None = None,
    client_factory: ClientFactory = _default_client,
    region: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Carry out one CloudFormation request; return (physical id, data).

    Raises whatever went wrong; :func:`handler` turns it into a FAILED response.
    """
    region = region or os.environ.get("AWS_REGION")
    kind = event.get("RequestType")
    properties = event.get("ResourceProperties") or {}
    physical = event.get("PhysicalResourceId")
    if kind == "Delete" and physical == _FAILED_CREATE:
        # A rollback after a failed create: undo what can be undone, never fail (whatever
        # made the create fail, bad properties included, would fail this too).
        try:
            spec = MappingSpec.from_properties(properties, region=region)
            retract(client_factory(spec, deadline), spec)
        except Exception:
            _LOGGER.warning("role mapping: nothing undone after a failed create", exc_info=True)
        return physical, {}
    spec = MappingSpec.from_properties(properties, region=region)
    if kind == "Create":
        return _physical_id(spec), apply(client_factory(spec, deadline), spec)
    physical = str(physical or _physical_id(spec))
    if kind == "Update":
        data = apply(client_factory(spec, deadline), spec)
        old = MappingSpec.from_properties(event.get("OldResourceProperties") or {}, region=region)
        try:
            retract(client_factory(old, deadline), old, keep=spec)
        except Exception:
            if old.endpoint == spec.endpoint:
                raise
            # The old domain may be gone: its mapping went with it.
            _LOGGER.warning("role mapping: could not clean up %s", old.endpoint, exc_info=True)
        return physical, data
    if kind == "Delete":
        retract(client_factory(spec, deadline), spec)
        return physical, {}
    raise ValueError(f"RequestType must be Create, Update or Delete, got {kind!r}")


def _respond(
    event: Mapping[str, Any],
    status: str,
    physical: str,
    *,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> None:
    body = {
        "Status": status,
        "Reason": reason[:1000],
        "PhysicalResourceId": physical,
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
        "NoEcho": False,
        "Data": dict(data or {}),
    }
    raw = json.dumps(body).encode()
    if len(raw) > _RESPONSE_LIMIT:
        body["Data"], body["Reason"] = {}, reason[:500]
        raw = json.dumps(body).encode()
    request = urllib.request.Request(
        str(event["ResponseURL"]),
        data=raw,
        # The presigned S3 URL is signed without a content type.
        headers={"Content-Type": "", "Content-Length": str(len(raw))},
        method="PUT",
    )
    with (opener or urllib.request.build_opener()).open(request, timeout=30) as response:
        response.read()


def handler(
    event: dict[str, Any],
    context: Any,
    *,
    client_factory: ClientFactory = _default_client,
    opener: urllib.request.OpenerDirector | None = None,
) -> None:
    """The provider Lambda's entry point (``ddb_stream_runtime.role_mapping.handler``).

    Always answers CloudFormation, SUCCESS or FAILED with the reason; never raises for
    a failed request (the stack would wait for an answer until its timeout).
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    # Leave time to send the answer.
    deadline = time.monotonic() + remaining() / 1000 - 10 if remaining else None
    physical = str(event.get("PhysicalResourceId") or _FAILED_CREATE)
    try:
        physical, data = handle_event(event, deadline=deadline, client_factory=client_factory)
    except Exception as exc:
        _LOGGER.exception("role mapping %s failed", event.get("RequestType"))
        if event.get("RequestType") == "Create":
            physical = _FAILED_CREATE
        _respond(event, "FAILED", physical, reason=f"{type(exc).__name__}: {exc}", opener=opener)
        return
    _respond(event, "SUCCESS", physical, data=data, opener=opener)
