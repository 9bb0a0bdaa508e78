"""The OpenSearch stand-in's security API answers as the security plugin does."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials

from ddb_stream_patterns.local.opensearch import FakeOpenSearch
from ddb_stream_runtime._sigv4 import SigV4Signer

MASTER = "arn:aws:iam::123456789012:role/master"
OPS = "arn:aws:iam::123456789012:role/ops"
Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def search() -> Iterator[FakeOpenSearch]:
    with FakeOpenSearch(master_user=MASTER, identities={"AKIDMASTER": MASTER}) as server:
        yield server


@pytest.fixture
def call(search: FakeOpenSearch) -> Call:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def send(method: str, path: str, body: Any = None, key: str = "AKIDMASTER") -> tuple[int, Any]:
        url = f"{search.endpoint}/_plugins/_security/api/{path}"
        data = b"" if body is None else json.dumps(body).encode()
        headers = SigV4Signer("eu-west-1", "es", Credentials(key, "s")).headers(method, url, data)
        request = urllib.request.Request(url, data=data or None, headers=headers, method=method)
        try:
            with opener.open(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return send


def test_a_new_domain_maps_its_master_user_to_the_admin_roles(call: Call) -> None:
    status, payload = call("GET", "rolesmapping/all_access")
    assert status == 200
    assert payload == {"all_access": {"hosts": [], "users": [], "reserved": False, "hidden": False,
                                      "backend_roles": [MASTER], "and_backend_roles": []}}
    assert call("GET", "rolesmapping")[1]["security_manager"]["backend_roles"] == [MASTER]


def test_put_creates_then_replaces(call: Call, search: FakeOpenSearch) -> None:
    assert call("PUT", "rolesmapping/readall", {"backend_roles": [OPS]}) == (
        201, {"status": "CREATED", "message": "'readall' created."})
    assert call("PUT", "rolesmapping/readall", {"users": ["bob"]}) == (
        200, {"status": "OK", "message": "'readall' updated."})
    assert search.role_mapping("readall") == {"users": ["bob"]}  # replaced, OPS is gone


@pytest.mark.parametrize(("body", "expected"), [
    ({"description": "x"}, {"status": "error", "reason": "Invalid configuration",
                            "missing_mandatory_or_keys": {"keys": "backend_roles,and_backend_roles,hosts,users"}}),
    ({"backend_roles": [OPS], "roles": []}, {"status": "error", "reason": "Invalid configuration",
                                            "invalid_keys": {"keys": "roles"}}),
    ({"backend_roles": OPS}, {"status": "error", "reason": "Wrong datatype", "backend_roles": "Array expected"}),
    ({}, {"status": "error", "reason": "Request body required for this action."}),
])
def test_put_validates_its_body(call: Call, body: dict, expected: dict) -> None:
    assert call("PUT", "rolesmapping/readall", body) == (400, expected)


def test_a_mapping_needs_its_role(call: Call) -> None:
    assert call("PUT", "rolesmapping/nope", {"backend_roles": [OPS]}) == (
        404, {"status": "NOT_FOUND", "message": "role 'nope' not found."})


def test_patch_appends_and_keeps_the_rest(call: Call, search: FakeOpenSearch) -> None:
    assert call("PATCH", "rolesmapping/all_access", [{"op": "add", "path": "/backend_roles/-", "value": OPS}]) == (
        200, {"status": "OK", "message": "'all_access' updated."})
    assert search.role_mapping("all_access")["backend_roles"] == [MASTER, OPS]
    assert call("PATCH", "rolesmapping/all_access", [{"op": "remove", "path": "/backend_roles/0"}])[0] == 200
    assert search.role_mapping("all_access")["backend_roles"] == [OPS]


@pytest.mark.parametrize(("path", "body", "expected"), [
    ("rolesmapping/kibana_user", [{"op": "add", "path": "/users/-", "value": "x"}],
     (404, {"status": "NOT_FOUND", "message": "rolesmapping 'kibana_user' not found."})),
    ("rolesmapping/all_access", [{"op": "test", "path": "/users", "value": []}],
     (400, {"status": "BAD_REQUEST", "message": "Unsupported patch operation: test. Supported are: add,replace,remove"})),
    ("rolesmapping/all_access", {"op": "add"}, (400, {"status": "BAD_REQUEST", "message": "Wrong request body"})),
    ("rolesmapping/all_access", [{"op": "remove", "path": "/backend_roles/5"}],
     (400, {"status": "BAD_REQUEST", "message": "[REMOVE Operation] index Out of bound, index is greater than 1"})),
])
def test_patch_errors(call: Call, path: str, body: Any, expected: tuple) -> None:
    assert call("PATCH", path, body) == expected


def test_patch_of_the_collection_adds_and_removes_mappings(call: Call, search: FakeOpenSearch) -> None:
    status, _ = call("PATCH", "rolesmapping", [{"op": "add", "path": "/readall", "value": {"backend_roles": [OPS]}},
                                               {"op": "remove", "path": "/security_manager"}])
    assert status == 200
    assert search.role_mapping("readall")["backend_roles"] == [OPS]
    assert search.role_mapping("security_manager") is None


def test_delete(call: Call, search: FakeOpenSearch) -> None:
    call("PUT", "rolesmapping/readall", {"backend_roles": [OPS]})
    assert call("DELETE", "rolesmapping/readall") == (200, {"status": "OK", "message": "'readall' deleted."})
    assert call("DELETE", "rolesmapping/readall") == (
        404, {"status": "NOT_FOUND", "message": "rolesmapping 'readall' not found."})


def test_roles_can_be_created_but_static_ones_not_changed(call: Call, search: FakeOpenSearch) -> None:
    role = {"index_permissions": [{"index_patterns": ["tasks"], "allowed_actions": ["write"]}]}
    assert call("PUT", "roles/tasks_writer", role)[0] == 201
    assert call("GET", "roles/tasks_writer")[1]["tasks_writer"]["index_permissions"] == role["index_permissions"]
    assert call("PUT", "roles/all_access", role) == (
        403, {"status": "FORBIDDEN", "message": "Resource 'all_access' is static."})
    assert call("DELETE", "roles/tasks_writer")[0] == 200


def test_only_admins_may_call_it(call: Call, search: FakeOpenSearch) -> None:
    status, payload = call("GET", "rolesmapping/all_access", key="AKIDSOMEONE")
    assert status == 403 and payload["message"].startswith("No permission to access REST API")
    search.security.identities["AKIDOPS"] = OPS
    assert call("GET", "rolesmapping/all_access", key="AKIDOPS")[0] == 403
    call("PATCH", "rolesmapping/all_access", [{"op": "add", "path": "/backend_roles/-", "value": OPS}])
    assert call("GET", "rolesmapping/all_access", key="AKIDOPS")[0] == 200  # now an admin
