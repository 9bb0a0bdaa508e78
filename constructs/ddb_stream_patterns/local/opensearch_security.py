"""The security plugin's REST API, as the local OpenSearch stand-in answers it.

Only what the role-mapping provider (``ddb_stream_runtime.role_mapping``) and an
administrator use: roles and role mappings under ``/_plugins/_security/api/``.
Behaviour follows the plugin's own code (``AbstractApiAction``, ``RequestHandler``,
``EndpointValidator``, ``RolesMappingApiAction`` in opensearch-project/security):

* ``GET  rolesmapping/<role>`` answers ``{"<role>": {...}}`` or 404
  ``rolesmapping '<role>' not found.``; ``GET rolesmapping`` answers them all;
* ``PUT  rolesmapping/<role>`` *replaces* the mapping: 201 ``'<role>' created.`` or
  200 ``'<role>' updated.``; the body needs one of ``backend_roles``,
  ``and_backend_roles``, ``hosts``, ``users`` (400 ``Invalid configuration``), and the
  role must exist (404 ``role '<role>' not found.``);
* ``PATCH rolesmapping/<role>`` applies a JSON patch (RFC 6902, only ``add``,
  ``replace`` and ``remove``; ``/backend_roles/-`` appends) to the stored mapping,
  404 when the mapping does not exist; ``PATCH rolesmapping`` patches the whole
  collection (paths start with the role name);
* ``DELETE rolesmapping/<role>``: 200 ``'<role>' deleted.`` or 404;
* the same verbs on ``roles/<role>``; reserved and static entries answer 403
  ``Resource '<name>' is reserved.`` / ``... is static.`` to a change.

Every write bumps a sequence number, as the plugin's configuration index does; a
conflicting concurrent write answers 409 there. Here one lock serializes requests, so
conflicts are injected (:meth:`SecurityState.fail_next`).

Who may call it: with ``identities`` (access key id -> IAM ARN) set, only callers
mapped to ``all_access`` or ``security_manager`` (backend role for a role ARN, user
for a user ARN), as OpenSearch Service maps its master user, get past a 403. Without
it every signed caller is an administrator.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SECURITY_PREFIX", "SecurityState", "handle_security_request"]

SECURITY_PREFIX = ("_plugins", "_security", "api")
_MAPPING_KEYS = ("backend_roles", "and_backend_roles", "hosts", "users")
_MAPPING_ALLOWED = {*_MAPPING_KEYS, "description"}
_ROLE_ALLOWED = {
    "cluster_permissions",
    "index_permissions",
    "tenant_permissions",
    "description",
}
_PATCH_OPS = ("add", "replace", "remove")
_ADMIN_ROLES = ("all_access", "security_manager")
_CREDENTIAL = re.compile(r"Credential=([^/]+)/")
# Roles every OpenSearch Service domain with fine-grained access control starts with.
_STATIC_ROLES = ("all_access", "security_manager", "readall", "kibana_user", "manage_snapshots")


def _mapping(**fields: Any) -> dict[str, Any]:
    """A role mapping as GET shows it: every field present."""
    return {
        "hosts": [],
        "users": [],
        "reserved": False,
        "hidden": False,
        "backend_roles": [],
        "and_backend_roles": [],
        **fields,
    }


@dataclass
class SecurityState:
    """Roles and role mappings of the stand-in domain."""

    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    static_roles: set[str] = field(default_factory=set)
    identities: dict[str, str] = field(default_factory=dict)
    seq_no: int = 0
    conflicts: int = 0

    @classmethod
    def with_master_user(cls, master_user: str | None) -> SecurityState:
        """The state of a new domain whose master user is ``master_user`` (an IAM ARN).

        OpenSearch Service maps the master user to ``all_access`` and
        ``security_manager``: a role ARN as a backend role, a user ARN as a user.
        """
        state = cls(static_roles=set(_STATIC_ROLES))
        for name in _STATIC_ROLES:
            state.roles[name] = {"reserved": True, "hidden": False, "static": True}
        if master_user:
            key = "users" if ":user/" in master_user else "backend_roles"
            for name in _ADMIN_ROLES:
                state.mappings[name] = _mapping(**{key: [master_user]})
        return state

    def fail_next(self, conflicts: int = 1) -> None:
        """Answer the next ``conflicts`` writes with 409, as a concurrent write would."""
        self.conflicts += conflicts

    def is_admin(self, arn: str) -> bool:
        return any(
            arn in m.get("backend_roles", []) or arn in m.get("users", [])
            for name, m in self.mappings.items()
            if name in _ADMIN_ROLES
        )


def _message(status: int, text: str) -> tuple[int, dict[str, Any]]:
    names = {200: "OK", 201: "CREATED", 400: "BAD_REQUEST", 403: "FORBIDDEN", 404: "NOT_FOUND",
             409: "CONFLICT", 501: "NOT_IMPLEMENTED"}
    return status, {"status": names[status], "message": text}


def _invalid(invalid: set[str], missing_or: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {"status": "error", "reason": "Invalid configuration"}
    if invalid:
        payload["invalid_keys"] = {"keys": ",".join(sorted(invalid))}
    if missing_or:
        payload["missing_mandatory_or_keys"] = {"keys": ",".join(missing_or)}
    return 400, payload


def _validate(kind: str, body: Any) -> tuple[int, dict[str, Any]] | None:
    if not isinstance(body, dict):
        return 400, {"status": "error", "reason": "Could not parse content of request."}
    if not body:
        return 400, {"status": "error", "reason": "Request body required for this action."}
    allowed = _MAPPING_ALLOWED if kind == "rolesmapping" else _ROLE_ALLOWED
    invalid = set(body) - allowed
    missing = _MAPPING_KEYS if kind == "rolesmapping" and not set(body) & set(_MAPPING_KEYS) else ()
    if invalid or missing:
        return _invalid(invalid, missing)
    wrong = {
        k: "Array expected"
        for k, v in body.items()
        if k != "description" and not isinstance(v, list)
    }
    if wrong:
        return 400, {"status": "error", "reason": "Wrong datatype", **wrong}
    if any(v is None for value in body.values() if isinstance(value, list) for v in value):
        return 400, {"status": "error", "reason": "`null` is not allowed as json array element"}
    return None


# --- JSON patch (RFC 6902: add, replace, remove) -----------------------------------------


class _PatchError(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchError(f"Invalid JSON Pointer: {path}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _apply_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    document = copy.deepcopy(document)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path")
        if not isinstance(path, str):
            raise _PatchError(f"[{str(op).upper()} Operation] missing 'path' field")
        parts = _pointer(path)
        if not parts:
            raise _PatchError(f"[{op.upper()} Operation] cannot change the root document")
        *parents, last = parts
        target = document
        for part in parents:
            try:
                target = target[int(part)] if isinstance(target, list) else target[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise _PatchError(
                    f"[{op.upper()} Operation] noSuchPath in source, path provided : {path}"
                ) from None
        if isinstance(target, list):
            size = len(target)
            if last == "-" and op == "add":
                target.append(copy.deepcopy(operation.get("value")))
                continue
            try:
                index = int(last)
            except ValueError:
                raise _PatchError(
                    f"[{op.upper()} Operation] Object operation on array target"
                ) from None
            if index < 0 or index > size or (op != "add" and index == size):
                raise _PatchError(
                    f"[{op.upper()} Operation] index Out of bound, index is greater than {size}"
                )
            if op == "add":
                target.insert(index, copy.deepcopy(operation.get("value")))
            elif op == "replace":
                target[index] = copy.deepcopy(operation.get("value"))
            else:
                del target[index]
        elif isinstance(target, dict):
            if op != "add" and last not in target:
                raise _PatchError(
                    f"[{op.upper()} Operation] noSuchPath in source, path provided : {path}"
                )
            if op == "remove":
                del target[last]
            else:
                target[last] = copy.deepcopy(operation.get("value"))
        else:
            raise _PatchError(f"[{op.upper()} Operation] parent is not a container : {path}")
    return document


# --- the endpoints -------------------------------------------------------------------------


def _caller(headers: dict[str, str]) -> str | None:
    authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    match = _CREDENTIAL.search(authorization)
    return match.group(1) if match else None


def _store(state: SecurityState, kind: str) -> dict[str, dict[str, Any]]:
    return state.mappings if kind == "rolesmapping" else state.roles


def _shown(kind: str, entity: dict[str, Any]) -> dict[str, Any]:
    if kind == "rolesmapping":
        return _mapping(**entity)
    shown = {
        "reserved": False,
        "hidden": False,
        "cluster_permissions": [],
        "index_permissions": [],
        "tenant_permissions": [],
        "static": False,
        **entity,
    }
    return shown


def _resource(kind: str) -> str:
    return "rolesmapping" if kind == "rolesmapping" else "role"


def _immutable(state: SecurityState, kind: str, name: str) -> tuple[int, dict[str, Any]] | None:
    entity = _store(state, kind).get(name) or {}
    if entity.get("hidden"):
        return _message(404, f"Resource '{name}' is not available.")
    if kind == "roles" and name in state.static_roles:
        return _message(403, f"Resource '{name}' is static.")
    if entity.get("reserved"):
        return _message(403, f"Resource '{name}' is reserved.")
    return None


def _role_exists(state: SecurityState, name: str) -> tuple[int, dict[str, Any]] | None:
    if name not in state.roles:
        return _message(404, f"role '{name}' not found.")
    if state.roles[name].get("hidden"):
        return _message(404, f"Resource '{name}' is not available.")
    return None


def _write(state: SecurityState) -> tuple[int, dict[str, Any]] | None:
    """A write to the configuration index: 409 if a concurrent write is injected."""
    if state.conflicts:
        state.conflicts -= 1
        return _message(409, f"version conflict, required seqNo [{state.seq_no}]")
    state.seq_no += 1
    return None


def handle_security_request(
    state: SecurityState, method: str, parts: list[str], headers: dict[str, str], body: bytes
) -> tuple[int, Any]:
    """Answer one request to ``/_plugins/_security/api/<parts...>``: (status, JSON payload)."""
    if not parts or parts[0] not in ("rolesmapping", "roles") or len(parts) > 2:
        return _message(400, "no handler found for uri and method")
    kind, name = parts[0], (parts[1] if len(parts) == 2 else None)
    if state.identities:
        arn = state.identities.get(_caller(headers) or "")
        if arn is None or not state.is_admin(arn):
            endpoint = "ROLESMAPPING" if kind == "rolesmapping" else "ROLES"
            return _message(
                403,
                f"No permission to access REST API: User {arn or 'unknown'} with Security roles "
                f"[] does not have any access to endpoint {endpoint} and method {method}",
            )
    store = _store(state, kind)
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        return 400, {"status": "error", "reason": "Could not parse content of request."}

    if method == "GET":
        if name is None:
            return 200, {n: _shown(kind, e) for n, e in store.items() if not e.get("hidden")}
        if name not in store or store[name].get("hidden"):
            return _message(404, f"{_resource(kind)} '{name}' not found.")
        return 200, {name: _shown(kind, store[name])}

    if method == "PUT":
        if name is None:
            return _message(400, f"No {_resource(kind)} specified.")
        error = _validate(kind, payload) or _immutable(state, kind, name)
        if error is None and kind == "rolesmapping":
            error = _role_exists(state, name)
        if error is not None:
            return error
        error = _write(state)
        if error is not None:
            return error
        existed = name in store
        store[name] = copy.deepcopy(payload)
        if existed:
            return _message(200, f"'{name}' updated.")
        return _message(201, f"'{name}' created.")

    if method == "DELETE":
        if name is None:
            return _message(501, "Method DELETE not supported for this action.")
        error = _immutable(state, kind, name)
        if error is not None:
            return error
        if name not in store:
            return _message(404, f"{_resource(kind)} '{name}' not found.")
        error = _write(state)
        if error is not None:
            return error
        del store[name]
        return _message(200, f"'{name}' deleted.")

    if method == "PATCH":
        if not isinstance(payload, list) or not payload:
            return _message(400, "Wrong request body")
        for operation in payload:
            op = operation.get("op") if isinstance(operation, dict) else None
            if op not in _PATCH_OPS:
                return _message(
                    400, f"Unsupported patch operation: {op}. Supported are: add,replace,remove"
                )
        if name is not None:
            if name not in store or store[name].get("hidden"):
                return _message(404, f"{_resource(kind)} '{name}' not found.")
            error = _immutable(state, kind, name)
            if error is not None:
                return error
            try:
                patched = _apply_patch(_shown(kind, store[name]), payload)
            except _PatchError as exc:
                return _message(400, str(exc))
            changed = {name: patched}
        else:
            try:
                whole = _apply_patch({n: _shown(kind, e) for n, e in store.items()}, payload)
            except _PatchError as exc:
                return _message(400, str(exc))
            changed = {
                n: e
                for n, e in whole.items()
                if store.get(n) is None or e != _shown(kind, store[n])
            }
            for removed in set(store) - set(whole):
                error = _immutable(state, kind, removed)
                if error is not None:
                    return error
                changed[removed] = None
        for entity_name, entity in changed.items():
            if entity is None:
                continue
            error = _immutable(state, kind, entity_name) if entity_name in store else None
            fields = {k: v for k, v in entity.items() if k not in ("reserved", "hidden", "static")}
            error = error or _validate(kind, fields)
            if error is None and kind == "rolesmapping":
                error = _role_exists(state, entity_name)
            if error is not None:
                return error
        error = _write(state)
        if error is not None:
            return error
        for entity_name, entity in changed.items():
            if entity is None:
                del store[entity_name]
            else:
                store[entity_name] = {
                    k: v for k, v in entity.items() if k not in ("reserved", "hidden", "static")
                } | {k: entity[k] for k in ("reserved", "hidden") if entity.get(k)}
        return _message(200, f"'{name}' updated." if name else "Resource updated.")

    return _message(501, f"Method {method} not supported for this action.")
