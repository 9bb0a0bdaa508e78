"""The role-mapping provider against the local OpenSearch stand-in's security API."""

from __future__ import annotations

import doctest
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import moto
import pytest
from botocore.credentials import Credentials

import ddb_stream_runtime.role_mapping as role_mapping
from ddb_stream_patterns.local.opensearch import FakeOpenSearch, verify_sigv4
from ddb_stream_runtime import _sigv4
from ddb_stream_runtime.role_mapping import (
    MappingSpec,
    SecurityApiClient,
    SecurityApiError,
    add_to_mapping,
    handle_event,
    handler,
    remove_from_mapping,
)

REGION = "eu-west-1"
ADMIN_KEY = "AKIDADMIN"
ADMIN = Credentials(ADMIN_KEY, "secret")
MASTER = "arn:aws:iam::123456789012:role/domain-master"
FUNCTION = "arn:aws:iam::123456789012:role/indexer-function"
OPS = "arn:aws:iam::123456789012:role/ops"
BOB = "arn:aws:iam::123456789012:user/bob"
WRITER = {
    "cluster_permissions": ["indices:data/write/bulk*"],
    "index_permissions": [{"index_patterns": ["tasks"], "allowed_actions": ["write", "create_index"]}],
}


@pytest.fixture
def search() -> Iterator[FakeOpenSearch]:
    # Only the master user may use the security API, as on a real domain.
    with FakeOpenSearch(master_user=MASTER, identities={ADMIN_KEY: MASTER}) as server:
        yield server


def direct_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def client(search: FakeOpenSearch, credentials: Credentials = ADMIN, **kwargs: Any) -> SecurityApiClient:
    kwargs.setdefault("sleep", lambda _: None)
    return SecurityApiClient(search.endpoint, REGION, credentials=credentials, opener=direct_opener(), **kwargs)


def properties(search: FakeOpenSearch, **overrides: Any) -> dict[str, Any]:
    return {"Endpoint": search.endpoint, "RoleName": "tasks_writer", "BackendRoles": [FUNCTION],
            "Role": json.dumps(WRITER), **overrides}


def factory(search: FakeOpenSearch):
    return lambda spec, deadline: client(search)


def request_event(kind: str, props: dict[str, Any], *, old: dict[str, Any] | None = None,
                  physical: str | None = None, response_url: str = "http://unused") -> dict[str, Any]:
    event = {"RequestType": kind, "RequestId": "r-1", "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
             "LogicalResourceId": "FunctionMapping", "ResponseURL": response_url,
             "ResourceType": "Custom::OpenSearchRoleMapping", "ResourceProperties": props}
    if old is not None:
        event["OldResourceProperties"] = old
    if physical is not None:
        event["PhysicalResourceId"] = physical
    return event


def writes(search: FakeOpenSearch) -> list[tuple[str, str]]:
    return [(r.method, r.path.rsplit("/api/", 1)[1]) for r in search.requests if r.method != "GET"]


# --- adding and removing -------------------------------------------------------------


def test_adds_to_an_existing_mapping_without_touching_others(search: FakeOpenSearch) -> None:
    added = add_to_mapping(client(search), "all_access", [("backend_roles", OPS), ("users", BOB)])
    assert added == [("backend_roles", OPS), ("users", BOB)]
    assert writes(search) == [("PATCH", "rolesmapping/all_access")]  # a patch, never a PUT
    patch = json.loads(search.requests[-1].body)
    assert patch == [{"op": "add", "path": "/backend_roles/-", "value": OPS},
                     {"op": "add", "path": "/users/-", "value": BOB}]
    mapping = search.role_mapping("all_access")
    assert mapping["backend_roles"] == [MASTER, OPS] and mapping["users"] == [BOB]
    assert verify_sigv4(search.requests[-1], ADMIN, service="es", region=REGION)


def test_adding_again_changes_nothing(search: FakeOpenSearch) -> None:
    add_to_mapping(client(search), "all_access", [("backend_roles", OPS)])
    before = len(search.requests)
    assert add_to_mapping(client(search), "all_access", [("backend_roles", OPS)]) == []
    assert [r.method for r in search.requests[before:]] == ["GET"]
    assert search.role_mapping("all_access")["backend_roles"] == [MASTER, OPS]


def test_a_missing_mapping_is_created_with_put(search: FakeOpenSearch) -> None:
    search.security.roles["readall_tasks"] = {"cluster_permissions": []}
    assert add_to_mapping(client(search), "readall_tasks", [("backend_roles", OPS)]) == [("backend_roles", OPS)]
    assert writes(search) == [("PUT", "rolesmapping/readall_tasks")]
    assert search.role_mapping("readall_tasks") == {"backend_roles": [OPS]}


def test_a_mapping_to_a_missing_role_fails_with_the_plugins_message(search: FakeOpenSearch) -> None:
    with pytest.raises(SecurityApiError, match="role 'nope' not found") as caught:
        add_to_mapping(client(search), "nope", [("backend_roles", OPS)])
    assert caught.value.status == 404


def test_removes_only_its_own_entries(search: FakeOpenSearch) -> None:
    add_to_mapping(client(search), "all_access", [("backend_roles", OPS), ("backend_roles", FUNCTION)])
    search.security.mappings["all_access"]["backend_roles"].append(OPS)  # a duplicate someone added
    removed, left = remove_from_mapping(client(search), "all_access", [("backend_roles", OPS)])
    assert removed == [("backend_roles", OPS), ("backend_roles", OPS)]
    assert json.loads(search.requests[-1].body) == [
        {"op": "remove", "path": "/backend_roles/3"}, {"op": "remove", "path": "/backend_roles/1"}]
    assert search.role_mapping("all_access")["backend_roles"] == [MASTER, FUNCTION]
    assert left["backend_roles"] == [MASTER, FUNCTION]


def test_removing_from_a_missing_mapping_is_nothing_to_do(search: FakeOpenSearch) -> None:
    assert remove_from_mapping(client(search), "kibana_user", [("backend_roles", OPS)]) == ([], None)
    assert writes(search) == []


def test_a_concurrent_write_is_retried_from_a_fresh_read(search: FakeOpenSearch) -> None:
    search.security.fail_next(2)  # two 409s, as the plugin answers a lost optimistic lock
    assert add_to_mapping(client(search), "all_access", [("backend_roles", OPS)]) == [("backend_roles", OPS)]
    assert [r.status for r in search.requests if r.method == "PATCH"] == [409, 409, 200]
    assert search.role_mapping("all_access")["backend_roles"] == [MASTER, OPS]


def test_a_caller_that_is_not_an_admin_is_refused(search: FakeOpenSearch) -> None:
    with pytest.raises(SecurityApiError, match="No permission to access REST API") as caught:
        add_to_mapping(client(search, Credentials("AKIDOTHER", "x")), "all_access", [("backend_roles", OPS)])
    assert caught.value.status == 403
    assert search.role_mapping("all_access")["backend_roles"] == [MASTER]


def test_server_errors_are_retried_then_reported(search: FakeOpenSearch) -> None:
    search.fail_requests(503, 503, 503)
    with pytest.raises(SecurityApiError, match=r"http 503.*\(after 3 attempts\)"):
        client(search, max_attempts=3).get_mapping("all_access")
    search.fail_requests(503)
    assert client(search).get_mapping("all_access")["backend_roles"] == [MASTER]


# --- the custom resource's lifecycle --------------------------------------------------


def test_create_update_delete_of_an_owned_role(search: FakeOpenSearch) -> None:
    props = properties(search)
    physical, data = handle_event(request_event("Create", props), client_factory=factory(search), region=REGION)
    assert data == {"RoleName": "tasks_writer", "Added": 1}
    assert physical.startswith("rolesmapping/tasks_writer/")
    assert search.security.roles["tasks_writer"] == WRITER
    assert search.role_mapping("tasks_writer") == {"backend_roles": [FUNCTION]}
    # Someone maps a second principal to the role by hand.
    add_to_mapping(client(search), "tasks_writer", [("backend_roles", OPS)])

    new = properties(search, BackendRoles=[BOB.replace(":user/", ":role/")])
    assert handle_event(request_event("Update", new, old=props, physical=physical),
                        client_factory=factory(search), region=REGION)[0] == physical
    assert search.role_mapping("tasks_writer")["backend_roles"] == [OPS, BOB.replace(":user/", ":role/")]

    handle_event(request_event("Delete", new, physical=physical), client_factory=factory(search), region=REGION)
    # Others are still mapped: the owned role and its mapping stay, without our entry.
    assert search.role_mapping("tasks_writer")["backend_roles"] == [OPS]
    assert "tasks_writer" in search.security.roles
    remove_from_mapping(client(search), "tasks_writer", [("backend_roles", OPS)])
    handle_event(request_event("Delete", new, physical=physical), client_factory=factory(search), region=REGION)
    assert search.role_mapping("tasks_writer") is None and "tasks_writer" not in search.security.roles


def test_mapping_to_a_builtin_role_never_deletes_it(search: FakeOpenSearch) -> None:
    props = {"Endpoint": search.endpoint, "RoleName": "all_access", "BackendRoles": [OPS], "Users": [BOB]}
    physical, _ = handle_event(request_event("Create", props), client_factory=factory(search), region=REGION)
    handle_event(request_event("Create", props), client_factory=factory(search), region=REGION)  # a retry
    mapping = search.role_mapping("all_access")
    assert (mapping["backend_roles"], mapping["users"]) == ([MASTER, OPS], [BOB])
    handle_event(request_event("Delete", props, physical=physical), client_factory=factory(search), region=REGION)
    mapping = search.role_mapping("all_access")
    assert (mapping["backend_roles"], mapping["users"]) == ([MASTER], [])
    assert "all_access" in search.security.roles
    assert ("DELETE", "rolesmapping/all_access") not in writes(search)


def test_update_to_another_role_moves_the_entries(search: FakeOpenSearch) -> None:
    old = {"Endpoint": search.endpoint, "RoleName": "all_access", "BackendRoles": [OPS]}
    handle_event(request_event("Create", old), client_factory=factory(search), region=REGION)
    new = {**old, "RoleName": "security_manager"}
    handle_event(request_event("Update", new, old=old, physical="p"), client_factory=factory(search), region=REGION)
    assert search.role_mapping("all_access")["backend_roles"] == [MASTER]
    assert search.role_mapping("security_manager")["backend_roles"] == [MASTER, OPS]


@pytest.mark.parametrize(("props", "message"), [
    ({"RoleName": "r", "BackendRoles": [OPS]}, "Endpoint must be https://"),
    ({"Endpoint": "https://x", "BackendRoles": [OPS]}, "RoleName must be a role name, got None"),
    ({"Endpoint": "https://x", "RoleName": "r"}, "give at least one of BackendRoles or Users"),
    ({"Endpoint": "https://x", "RoleName": "r", "BackendRoles": ["ops"]}, "BackendRoles must be a list of IAM ARNs, got \\['ops'\\]"),
    ({"Endpoint": "https://x", "RoleName": "r", "Users": OPS}, "Users must be a list of IAM ARNs"),
    ({"Endpoint": "https://x", "RoleName": "r", "BackendRoles": [OPS], "Role": "[]"}, "Role must be a json object"),
    ({"Endpoint": "https://x", "RoleName": "r", "BackendRoles": [OPS], "AdminRoleArn": "admin"}, "AdminRoleArn must be an IAM role ARN, got 'admin'"),
])
def test_fails_bad_properties(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MappingSpec.from_properties(props, region=REGION)


# --- the handler: answers CloudFormation ----------------------------------------------


@pytest.fixture
def cloudformation(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the presigned S3 URL CloudFormation waits on (in a Lambda's environment)."""
    monkeypatch.setenv("AWS_REGION", REGION)
    answers: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answers.append({"headers": dict(self.headers.items()), **json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/response?X-Amz-Signature=abc", answers
    finally:
        server.shutdown()
        server.server_close()


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def test_handler_answers_success(search: FakeOpenSearch, cloudformation: tuple[str, list]) -> None:
    url, answers = cloudformation
    handler(request_event("Create", properties(search), response_url=url), Context(),
            client_factory=factory(search), opener=direct_opener())
    [answer] = answers
    assert answer["Status"] == "SUCCESS" and answer["Data"] == {"RoleName": "tasks_writer", "Added": 1}
    assert answer["PhysicalResourceId"].startswith("rolesmapping/tasks_writer/")
    assert (answer["RequestId"], answer["LogicalResourceId"]) == ("r-1", "FunctionMapping")
    assert answer["headers"]["Content-Type"] == ""
    assert search.role_mapping("tasks_writer") == {"backend_roles": [FUNCTION]}


def test_handler_answers_failed_and_a_rollback_is_not_stuck(
    search: FakeOpenSearch, cloudformation: tuple[str, list]
) -> None:
    url, answers = cloudformation
    refused = lambda spec, deadline: client(search, Credentials("AKIDOTHER", "x"))  # noqa: E731
    handler(request_event("Create", properties(search), response_url=url), Context(),
            client_factory=refused, opener=direct_opener())
    assert answers[0]["Status"] == "FAILED"
    assert "No permission to access REST API" in answers[0]["Reason"]
    # CloudFormation rolls back: it deletes what the failed create reported.
    handler(request_event("Delete", properties(search), physical=answers[0]["PhysicalResourceId"],
                          response_url=url), Context(), client_factory=refused, opener=direct_opener())
    assert answers[1]["Status"] == "SUCCESS"
    # A real delete that fails is reported, not hidden.
    handler(request_event("Delete", properties(search), physical="rolesmapping/tasks_writer/x",
                          response_url=url), Context(), client_factory=refused, opener=direct_opener())
    assert answers[2]["Status"] == "FAILED"
    # Bad properties fail the create, and its rollback still succeeds.
    bad = properties(search, BackendRoles=["not-an-arn"])
    handler(request_event("Create", bad, response_url=url), Context(), opener=direct_opener())
    assert answers[3]["Status"] == "FAILED" and "BackendRoles must be a list of IAM ARNs" in answers[3]["Reason"]
    handler(request_event("Delete", bad, physical=answers[3]["PhysicalResourceId"], response_url=url),
            Context(), opener=direct_opener())
    assert answers[4]["Status"] == "SUCCESS"


def test_the_admin_role_is_assumed_for_signing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDFUNCTION", "AWS_SECRET_ACCESS_KEY": "s",
                        "AWS_DEFAULT_REGION": REGION, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    _sigv4.botocore_session.cache_clear()
    try:
        with moto.mock_aws(), FakeOpenSearch(master_user=MASTER) as search:
            admin = boto3.client("iam").create_role(
                RoleName="domain-admin", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
            spec = MappingSpec.from_properties(properties(search, AdminRoleArn=admin), region=REGION)
            api = role_mapping._default_client(spec, None)
            assert api.get_mapping("all_access")["backend_roles"] == [MASTER]
            [request] = search.requests
    finally:
        _sigv4.botocore_session.cache_clear()
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert "Credential=AKIDFUNCTION/" not in headers["authorization"]  # not the function's own
    assert headers["x-amz-security-token"]  # temporary credentials from sts:AssumeRole


def test_docstring_examples_run() -> None:
    assert doctest.testmod(role_mapping).failed == 0
    assert doctest.testmod(_sigv4).failed == 0
