"""A small OpenSearch ``_bulk`` stand-in on 127.0.0.1: the local cloud's search domain.

No OpenSearch server can be installed offline, so the local cloud (and the indexer and
backfill tests) use this instead. It implements what the runtime relies on, the way
OpenSearch does:

* ``POST /<index>/_bulk`` and ``POST /_bulk`` with NDJSON ``index``, ``create``
  and ``delete`` actions, processed in order, answered with ``errors`` and one
  item per action;
* versioning: internal (no ``version_type``), ``external`` (the new version
  must be greater than the stored one) and ``external_gte`` (greater or equal),
  else 409 ``version_conflict_engine_exception``; deletes keep a version
  tombstone (OpenSearch keeps it for ``index.gc_deletes``; here until ``reset``);
  a delete of a missing document answers 404 ``not_found``; ``create`` of an
  existing document answers 409;
* the security plugin's REST API for roles and role mappings
  (``/_plugins/_security/api/roles[mapping]/<role>``: GET, PUT, PATCH, DELETE),
  answered as the plugin answers (see :mod:`.opensearch_security`), so the
  role-mapping provider can be tested against it;
* it records every request (path, headers, body) and can verify its SigV4
  signature with botocore;
* IAM (``LocalCloud(enforce_iam=True)``): a request a local function's role may not
  make (``es:ESHttp<Method>`` under its identity policy and the domain's access policy,
  decided in the parent, see ``functions._patch_sigv4``) arrives marked with
  :data:`IAM_DENIED_HEADER` and is answered ``403 {"Message": "User: ... is not
  authorized to perform: es:ESHttpPost ..."}`` (the message is IAM's; the body shape is
  the local cloud's), counted in ``state.denied``.

Failures to inject: ``fail_requests`` (HTTP statuses for the next requests,
e.g. ``[503]``) and ``fail_documents`` (document id -> (status, error type)).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .opensearch_security import SECURITY_PREFIX, SecurityState, handle_security_request

#: Set by a local function's IAM guard on a SigV4 request its role may not make (JSON
#: ``{"code", "message"}``; ``functions.IAM_DENIED_HEADER``): answered 403.
IAM_DENIED_HEADER = "X-Ddb-Local-Iam-Denied"

__all__ = ["BulkRequest", "FakeOpenSearch", "SecurityState", "StoredDocument", "verify_sigv4"]


@dataclass
class BulkRequest:
    """One request as the server received it (``_bulk`` or the security API)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response: Any = None

    @property
    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode("utf-8").splitlines() if line]

    @property
    def actions(self) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        """``(action, metadata, source or None)`` per action."""
        lines, out, i = self.lines, [], 0
        while i < len(lines):
            [(action, meta)] = lines[i].items()
            source = None
            if action in ("index", "create"):
                i += 1
                source = lines[i]
            out.append((action, meta, source))
            i += 1
        return out


@dataclass
class StoredDocument:
    version: int
    source: dict[str, Any]


@dataclass
class _State:
    docs: dict[tuple[str, str], StoredDocument] = field(default_factory=dict)
    tombstones: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: list[BulkRequest] = field(default_factory=list)
    fail_requests: list[int] = field(default_factory=list)
    fail_documents: dict[str, tuple[int, str]] = field(default_factory=dict)
    security: SecurityState = field(default_factory=SecurityState)
    denied: int = 0  # requests refused for IAM (see IAM_DENIED_HEADER)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _conflict(doc_id: str, current: int, version: int) -> dict[str, Any]:
    return {
        "status": 409,
        "error": {
            "type": "version_conflict_engine_exception",
            "reason": f"[{doc_id}]: version conflict, current version [{current}] is higher "
            f"or equal to the one provided [{version}]",
        },
    }


def _apply(state: _State, index: str, action: str, meta: dict[str, Any], source: Any) -> dict:
    doc_id = str(meta["_id"])
    key = (index, doc_id)
    result: dict[str, Any] = {"_index": index, "_id": doc_id}
    if doc_id in state.fail_documents:
        status, kind = state.fail_documents[doc_id]
        return {**result, "status": status, "error": {"type": kind, "reason": "injected"}}
    stored = state.docs.get(key)
    current = stored.version if stored is not None else state.tombstones.get(key)
    version_type = meta.get("version_type")
    version = meta.get("version")
    if version_type in ("external", "external_gte"):
        if not isinstance(version, int) or not 0 <= version <= 2**63 - 1:
            return {
                **result,
                "status": 400,
                "error": {"type": "action_request_validation_exception", "reason": "version"},
            }
        if current is None:
            ok = True
        else:
            ok = version > current if version_type == "external" else version >= current
        if action == "create":
            return {**result, "status": 400, "error": {"type": "illegal_argument_exception"}}
        if not ok:
            return {**result, **_conflict(doc_id, current, version)}  # type: ignore[arg-type]
        new_version = version
    elif version_type is None:
        new_version = (current or 0) + 1
    else:
        return {**result, "status": 400, "error": {"type": "illegal_argument_exception"}}
    if action == "create" and stored is not None:
        return {**result, **_conflict(doc_id, stored.version, new_version)}
    if action in ("index", "create"):
        created = stored is None
        state.docs[key] = StoredDocument(new_version, source)
        state.tombstones.pop(key, None)
        return {
            **result,
            "_version": new_version,
            "result": "created" if created else "updated",
            "status": 201 if created else 200,
        }
    if action == "delete":
        state.tombstones[key] = new_version
        if stored is None:
            return {**result, "_version": new_version, "result": "not_found", "status": 404}
        del state.docs[key]
        return {**result, "_version": new_version, "result": "deleted", "status": 200}
    return {**result, "status": 400, "error": {"type": "illegal_argument_exception"}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # quiet: pytest shows failures, not access logs

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _receive(self, method: str) -> tuple[BulkRequest, int | None]:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = BulkRequest(method, self.path, dict(self.headers.items()), body)
        state = self.server.state
        with state.lock:
            state.requests.append(request)
            injected = state.fail_requests.pop(0) if state.fail_requests else None
        if injected is not None:
            self._answer(request, injected, {"error": {"type": "injected"}, "status": injected})
            return request, injected
        denied = {k.lower(): v for k, v in request.headers.items()}.get(IAM_DENIED_HEADER.lower())
        if denied is not None:
            # The function's role (identity policy and the domain's access policy) does not
            # allow this es:ESHttp* request: the domain refuses it before OpenSearch sees it.
            with state.lock:
                state.denied += 1
            self._answer(request, 403, {"Message": json.loads(denied).get("message")})
            return request, 403
        return request, None

    def _security(self, method: str) -> None:
        request, injected = self._receive(method)
        if injected is not None:
            return
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if tuple(parts[:3]) != SECURITY_PREFIX:
            self._answer(request, 404, {"error": "no handler", "status": 404})
            return
        state = self.server.state
        with state.lock:
            status, payload = handle_security_request(
                state.security, method, parts[3:], request.headers, request.body
            )
        self._answer(request, status, payload)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._security("GET")

    def do_PUT(self) -> None:  # noqa: N802 - the stdlib's name
        self._security("PUT")

    def do_PATCH(self) -> None:  # noqa: N802 - the stdlib's name
        self._security("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802 - the stdlib's name
        self._security("DELETE")

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        request, injected = self._receive("POST")
        if injected is not None:
            return
        state = self.server.state
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if parts[-1:] != ["_bulk"] or len(parts) > 2:
            self._answer(request, 404, {"error": "no handler", "status": 404})
            return
        default_index = parts[0] if len(parts) == 2 else None
        items = []
        with state.lock:
            for action, meta, source in request.actions:
                index = meta.get("_index", default_index)
                items.append({action: _apply(state, index, action, meta, source)})
        errors = any(
            not (200 <= r["status"] < 300 or r["status"] == 404) for i in items for r in i.values()
        )
        self._answer(request, 200, {"took": 1, "errors": errors, "items": items})

    def _answer(self, request: BulkRequest, status: int, payload: Any) -> None:
        request.status, request.response = status, payload
        self._send(status, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class FakeOpenSearch:
    """The fake server, started on a random port; use as a context manager.

    Parameters
    ----------
    master_user : str, optional
        The IAM ARN of the domain's fine-grained access control master user: mapped to
        ``all_access`` and ``security_manager`` from the start, as OpenSearch Service
        does. Default: no mappings.
    identities : dict, optional
        Access key id -> IAM ARN of the callers. When given, the security API answers
        403 to every caller not mapped to ``all_access`` or ``security_manager``, as
        the plugin does. Default: every caller may use it.

    Examples
    --------
    >>> with FakeOpenSearch() as search:
    ...     search.endpoint.startswith("http://127.0.0.1:")
    True
    """

    def __init__(
        self, *, master_user: str | None = None, identities: dict[str, str] | None = None
    ) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(security=SecurityState.with_master_user(master_user))
        self._server.state.security.identities = dict(identities or {})
        # A short poll interval: shutdown() waits for the loop to notice (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def state(self) -> _State:
        return self._server.state

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[BulkRequest]:
        return self.state.requests

    def fail_requests(self, *statuses: int) -> None:
        """Answer the next requests with these HTTP statuses, one each."""
        self.state.fail_requests.extend(statuses)

    def fail_document(
        self, doc_id: str, status: int = 400, kind: str = "mapper_parsing_exception"
    ) -> None:
        """Fail every action on this document id with this status."""
        self.state.fail_documents[doc_id] = (status, kind)

    @property
    def security(self) -> SecurityState:
        """Roles and role mappings (the security plugin's configuration)."""
        return self.state.security

    def role_mapping(self, role: str) -> dict[str, Any] | None:
        """The stored mapping of ``role`` (as PUT or patched), or None."""
        return self.state.security.mappings.get(role)

    def document(self, index: str, doc_id: str) -> StoredDocument | None:
        return self.state.docs.get((index, doc_id))

    def documents(self, index: str) -> dict[str, StoredDocument]:
        return {i: d for (x, i), d in self.state.docs.items() if x == index}

    def put(self, index: str, doc_id: str, version: int, source: dict[str, Any]) -> None:
        """Store a document directly (as if indexed earlier)."""
        self.state.docs[(index, doc_id)] = StoredDocument(version, source)

    def __enter__(self) -> FakeOpenSearch:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def verify_sigv4(request: BulkRequest, credentials: Any, *, service: str, region: str) -> bool:
    """Recompute the request's SigV4 signature with botocore and compare.

    Only the headers the signature lists (``SignedHeaders``) are used, as AWS does.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    headers = {k.lower(): v for k, v in request.headers.items()}
    authorization = headers["authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    host = headers["host"]
    aws_request = AWSRequest(
        method=request.method,
        url=f"http://{host}{request.path}",
        data=request.body,
        headers={name: headers[name] for name in signed if name != "host"},
    )
    auth = SigV4Auth(credentials, service, region)
    aws_request.context["timestamp"] = headers["x-amz-date"]
    canonical = auth.canonical_request(aws_request)
    signature = auth.signature(auth.string_to_sign(aws_request, canonical), aws_request)
    return authorization.endswith(f"Signature={signature}")
