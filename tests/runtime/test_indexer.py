"""Indexer: stream records -> one SigV4-signed OpenSearch ``_bulk`` per batch (fake server)."""

from __future__ import annotations

import base64
import doctest
import json
import logging
import os
import random
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeSerializer
from botocore.credentials import Credentials

import ddb_stream_runtime.indexer as indexer_module
from ddb_stream_patterns.local.opensearch import FakeOpenSearch, verify_sigv4
from ddb_stream_runtime import _sigv4
from ddb_stream_runtime.indexer import (
    BACKFILL_VERSION,
    MAX_ID_BYTES,
    IndexerConfig,
    SearchIndexer,
    document_id,
    handler,
    item_succeeded,
    sequence_version,
)

INDEX = "tasks"
REGION = "us-east-2"
ARN = "arn:aws:dynamodb:us-east-2:123456789012:table/Tasks/stream/2024-06-10T19:26:16.525"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session")
# A realistic 21-digit stream sequence number; steps of 10**5 keep versions distinct.
BASE_SEQUENCE = 400000000032021070652
STEP = 10**5

_serialize = TypeSerializer().serialize


def dynamodb_json(item: dict[str, Any]) -> dict[str, Any]:
    """An item as boto3 sends it (binary values as bytes)."""
    return {name: _serialize(value) for name, value in item.items()}


def _base64(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _base64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_base64(v) for v in value]
    if isinstance(value, (bytes, Binary)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def stream_json(item: dict[str, Any]) -> dict[str, Any]:
    """An item as a stream record carries it (binary values as base64 text)."""
    return _base64(dynamodb_json(item))


def stream_record(
    n: int,
    event_name: str,
    item: dict[str, Any],
    *,
    old: dict[str, Any] | None = None,
    sequence_number: str | None = None,
) -> dict[str, Any]:
    """Record number ``n`` of a shard, for the task ``item`` (plain Python values)."""
    keys = {"ListId": item["ListId"], "TaskId": item["TaskId"]}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1_700_000_000 + n,
        "Keys": stream_json(keys),
        "SequenceNumber": sequence_number or str(BASE_SEQUENCE + n * STEP),
        "SizeBytes": 120,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if event_name == "REMOVE":
        dynamodb["OldImage"] = stream_json(item)
    else:
        dynamodb["NewImage"] = stream_json(item)
        if old is not None:
            dynamodb["OldImage"] = stream_json(old)
    return {
        "eventID": f"evt-{n}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "eventSourceARN": ARN,
        "dynamodb": dynamodb,
    }


def task(list_id: str, task_id: str, **attributes: Any) -> dict[str, Any]:
    return {"ListId": list_id, "TaskId": task_id, **attributes}


def event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def seq_of(raw: dict[str, Any]) -> str:
    return raw["dynamodb"]["SequenceNumber"]


def no_failures() -> dict[str, Any]:
    return {"batchItemFailures": []}


def failed(raw: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": seq_of(raw)}]}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def direct_opener() -> urllib.request.OpenerDirector:
    # No proxy: a machine's http_proxy must not swallow requests to 127.0.0.1.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def search() -> Iterator[FakeOpenSearch]:
    with FakeOpenSearch() as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_indexer(search: FakeOpenSearch, sleeps: Sleeps) -> Callable[..., SearchIndexer]:
    def build(
        endpoint: str | None = None,
        id_attributes: tuple[str, ...] = ("ListId", "TaskId"),
        **settings: Any,
    ) -> SearchIndexer:
        config = IndexerConfig(endpoint or search.endpoint, INDEX, REGION, id_attributes, **settings)
        client = config.client(credentials=CREDENTIALS, opener=direct_opener(), sleep=sleeps)
        return SearchIndexer(config, client=client)

    return build


# --- one signed request per batch ------------------------------------------------------


def test_1000_records_in_10_batches_make_10_bulk_requests(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    indexer = make_indexer()
    items = [
        task(
            f"l{i % 7}",
            f"t{i}",
            points=i,
            ratio=Decimal(i) / 4,
            tags={f"tag{i % 3}", "all"},
            done=i % 2 == 0,
            meta={"owner": f"u{i % 5}", "nested": [1, "two", None]},
        )
        for i in range(1000)
    ]
    records = [stream_record(i, "INSERT", item) for i, item in enumerate(items)]
    for start in range(0, 1000, 100):
        assert indexer.index_batch(event(*records[start : start + 100])) == no_failures()

    assert len(search.requests) == 10
    assert [len(r.actions) for r in search.requests] == [100] * 10
    docs = search.documents(INDEX)
    assert len(docs) == 1000
    for i, item in enumerate(items):
        doc = docs[f"l{i % 7}|t{i}"]
        assert doc.version == sequence_version(seq_of(records[i]))
        ratio = Decimal(i) / 4
        assert doc.source == {
            **item,
            "ratio": int(ratio) if ratio == int(ratio) else float(ratio),
            "tags": sorted(item["tags"]),
        }


def test_requests_are_sigv4_signed_for_the_service_and_region(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    make_indexer().index_batch(event(stream_record(1, "INSERT", task("l", "t"))))
    [request] = search.requests
    assert request.method == "POST" and request.path == f"/{INDEX}/_bulk"
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/x-ndjson"
    assert headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{headers['x-amz-date'][:8]}/{REGION}/es/"
        "aws4_request, SignedHeaders="
    )
    assert headers["x-amz-security-token"] == "session"
    assert "x-amz-content-sha256" in headers  # OpenSearch Serverless requires it
    assert verify_sigv4(request, CREDENTIALS, service="es", region=REGION)
    assert not verify_sigv4(request, CREDENTIALS, service="es", region="us-east-1")


def test_serverless_signs_for_aoss_and_sends_no_versions(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    indexer = make_indexer(service="aoss", versioning="none")
    indexer.index_batch(event(stream_record(1, "INSERT", task("l", "t"))))
    [request] = search.requests
    assert "/aoss/aws4_request" in request.headers["Authorization"]
    assert verify_sigv4(request, CREDENTIALS, service="aoss", region=REGION)
    [(action, meta, _)] = request.actions
    assert (action, meta) == ("index", {"_id": "l|t"})


def test_documents_are_the_json_safe_new_image(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer], rich_event: dict[str, Any]
) -> None:
    indexer = make_indexer(id_attributes=("pk", "sk"))
    assert indexer.index_batch(rich_event) == no_failures()
    doc = search.document(INDEX, "ORDER#000123|7")
    assert doc is not None
    assert doc.source == {
        "pk": "ORDER#000123",
        "sk": 7,
        "status": "SHIPPED",
        "empty_string": "",
        "unicode": "Grüße, 世界 🚀",
        "quantity": 3,
        "negative": -42,
        "big_int": float(12345678901234567890123456789012345678),  # beyond a long
        "price": 129.95,
        "tenth": 0.1,
        "hundred_exp": 100,
        "tiny": 1e-130,
        "huge": 9.9999999999999999999999999999999999999e125,
        "is_gift": True,
        "is_paid": False,
        "note": None,
        "thumbnail": "AAH+/w==",
        "tags": ["blue", "red"],
        "scores": [-7, 1, 2.5],
        "checksums": ["aGVsbG8=", "d29ybGQ="],
        "address": {"street": "1 Main St", "geo": {"lat": 40.1, "lon": -89.25}, "apartment": None},
        "lines": [
            {"sku": "SKU-1", "qty": 1, "price": 9.99},
            {"sku": "SKU-2", "qty": 2, "price": 59.98},
            ["nested", 0, False, "aGVsbG8="],
            ["x"],
        ],
        "empty_list": [],
        "empty_map": {},
    }


# --- deletes and versions ---------------------------------------------------------------


def test_remove_deletes_the_document(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    indexer = make_indexer()
    item = task("l", "t", title="x")
    assert indexer.index_batch(event(stream_record(1, "INSERT", item))) == no_failures()
    assert search.document(INDEX, "l|t") is not None
    assert indexer.index_batch(event(stream_record(2, "REMOVE", item))) == no_failures()
    assert search.document(INDEX, "l|t") is None
    # Deleting what was never indexed answers 404: nothing to do, a success.
    gone = task("l", "never")
    assert indexer.index_batch(event(stream_record(3, "REMOVE", gone))) == no_failures()
    assert search.requests[-1].actions[0][0] == "delete"


def test_a_late_older_record_gets_409_and_the_newer_data_stays(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    indexer = make_indexer()
    older = stream_record(1, "MODIFY", task("l", "t", title="old"))
    newer = stream_record(2, "MODIFY", task("l", "t", title="new"))
    assert indexer.index_batch(event(newer)) == no_failures()
    assert indexer.index_batch(event(older)) == no_failures()  # 409: newer is indexed
    doc = search.document(INDEX, "l|t")
    assert doc is not None and doc.source["title"] == "new"
    assert doc.version == sequence_version(seq_of(newer))
    late = search.requests[1].response["items"][0]["index"]
    assert late["status"] == 409 and late["error"]["type"] == "version_conflict_engine_exception"


def test_an_older_record_cannot_resurrect_a_deleted_document(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    indexer = make_indexer()
    item = task("l", "t", title="x")
    indexer.index_batch(event(stream_record(1, "INSERT", item), stream_record(3, "REMOVE", item)))
    assert indexer.index_batch(event(stream_record(2, "MODIFY", item))) == no_failures()
    assert search.document(INDEX, "l|t") is None


def test_replaying_a_batch_is_idempotent(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    indexer = make_indexer()
    records = [stream_record(i, "INSERT", task("l", f"t{i % 3}", n=i)) for i in range(9)]
    assert indexer.index_batch(event(*records)) == no_failures()
    first = {k: (d.version, d.source) for k, d in search.documents(INDEX).items()}
    assert indexer.index_batch(event(*records)) == no_failures()
    assert indexer.index_batch(event(*records[2:5])) == no_failures()  # a stale partial replay
    assert {k: (d.version, d.source) for k, d in search.documents(INDEX).items()} == first
    assert first["l|t0"][1]["n"] == 6


def test_tied_versions_let_the_later_delivery_win(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    # 21 digits keep their leading 17: these two differ only in the last four.
    a = stream_record(1, "MODIFY", task("l", "t", v="a"), sequence_number="400000000032021070652")
    b = stream_record(2, "MODIFY", task("l", "t", v="b"), sequence_number="400000000032021079999")
    assert sequence_version(seq_of(a)) == sequence_version(seq_of(b))
    indexer = make_indexer()
    assert indexer.index_batch(event(a, b)) == no_failures()
    doc = search.document(INDEX, "l|t")
    assert doc is not None and doc.source["v"] == "b"


def test_without_versioning_the_last_write_wins(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    indexer = make_indexer(versioning="none")
    newer = stream_record(2, "MODIFY", task("l", "t", v="new"))
    older = stream_record(1, "MODIFY", task("l", "t", v="old"))
    indexer.index_batch(event(newer))
    indexer.index_batch(event(older))
    doc = search.document(INDEX, "l|t")
    assert doc is not None and doc.source["v"] == "old"  # what VERSIONING=none gives up
    assert all("version" not in meta for r in search.requests for _, meta, _ in r.actions)


# --- failures ---------------------------------------------------------------------------


def test_a_per_item_400_reports_that_record(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    records = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(6)]
    search.fail_document("l|t3")
    assert make_indexer().index_batch(event(*records)) == failed(records[3])
    assert len(search.requests) == 1  # a per-item error is not a reason to resend
    # Every other action of the request was applied; the re-send is idempotent.
    assert set(search.documents(INDEX)) == {f"l|t{i}" for i in (0, 1, 2, 4, 5)}


def test_the_earliest_failed_item_is_reported(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    records = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(6)]
    search.fail_document("l|t4", 429, "es_rejected_execution_exception")
    search.fail_document("l|t1", 400, "mapper_parsing_exception")
    assert make_indexer().index_batch(event(*records)) == failed(records[1])


# --- bulk item statuses, per action ------------------------------------------------------
# Success: 2xx; 409 on index/create/delete (newer data, or for create the document, is
# already there); 404 on a delete (nothing to delete). Failed: 429 and 5xx (Lambda's
# re-send retries them), every other 4xx, among them a 404 on an index or create
# (index_not_found_exception: nothing was written), and a 409 on an update (a
# concurrent change won). A failed item is the record Lambda must re-send: counting one
# as success moves the checkpoint past a document that never reached the index.

SUCCESS, RETRYABLE, PERMANENT = "success", "retryable", "permanent"
ITEM_STATUSES: list[tuple[str, int, str | None, str]] = [
    *[("index", s, None, SUCCESS) for s in (200, 201)],
    ("index", 409, "version_conflict_engine_exception", SUCCESS),
    ("index", 404, "index_not_found_exception", PERMANENT),
    ("index", 400, "mapper_parsing_exception", PERMANENT),
    ("index", 400, "illegal_argument_exception", PERMANENT),
    ("index", 401, "security_exception", PERMANENT),
    ("index", 403, "cluster_block_exception", PERMANENT),
    ("index", 413, "content_too_long_exception", PERMANENT),
    ("index", 429, "es_rejected_execution_exception", RETRYABLE),
    ("index", 500, "exception", RETRYABLE),
    ("index", 503, "unavailable_shards_exception", RETRYABLE),
    ("delete", 200, None, SUCCESS),
    ("delete", 404, None, SUCCESS),  # result "not_found": nothing to delete
    ("delete", 404, "index_not_found_exception", SUCCESS),  # no index, so no document either
    ("delete", 409, "version_conflict_engine_exception", SUCCESS),
    ("delete", 400, "action_request_validation_exception", PERMANENT),
    ("delete", 403, "cluster_block_exception", PERMANENT),
    ("delete", 429, "es_rejected_execution_exception", RETRYABLE),
    ("delete", 500, "exception", RETRYABLE),
    ("delete", 503, "unavailable_shards_exception", RETRYABLE),
    # Actions the indexer does not send (backfill sends create), judged by the same rule.
    *[("create", s, None, SUCCESS) for s in (200, 201)],
    ("create", 409, "version_conflict_engine_exception", SUCCESS),  # the document is there
    ("create", 404, "index_not_found_exception", PERMANENT),
    ("create", 400, "mapper_parsing_exception", PERMANENT),
    ("create", 429, "es_rejected_execution_exception", RETRYABLE),
    ("create", 503, "unavailable_shards_exception", RETRYABLE),
    ("update", 200, None, SUCCESS),
    ("update", 409, "version_conflict_engine_exception", PERMANENT),  # not applied
    ("update", 404, "document_missing_exception", PERMANENT),
    ("update", 400, "illegal_argument_exception", PERMANENT),
    ("update", 429, "es_rejected_execution_exception", RETRYABLE),
    ("update", 502, "exception", RETRYABLE),
]


def bulk_item(status: Any, kind: str | None = None) -> dict[str, Any]:
    """One action's result, shaped like OpenSearch's (an ``error`` object on failures)."""
    result: dict[str, Any] = {"_index": INDEX, "_id": "x", "_version": 1, "status": status}
    if kind is not None:
        result["error"] = {"type": kind, "reason": "quoted data must not be logged"}
    return result


class ScriptedBulk:
    """A bulk client that answers each action with the status given for its document id."""

    def __init__(self, statuses: dict[str, tuple[int, str | None]]) -> None:
        self.statuses = statuses
        self.requests: list[list[tuple[str, str]]] = []  # (action, _id) per request

    def bulk(self, body: bytes) -> dict[str, Any]:
        lines = iter(json.loads(line) for line in body.decode().splitlines())
        actions = []
        for line in lines:
            [(action, meta)] = line.items()
            actions.append((action, meta["_id"]))
            if action != "delete":
                next(lines)  # the source (or partial document)
        self.requests.append(actions)
        items = []
        for action, doc_id in actions:
            status, kind = self.statuses.get(doc_id, (201, None))
            items.append({action: bulk_item(status, kind)})
        errors = any(not 200 <= r["status"] < 300 for i in items for r in i.values())
        return {"took": 1, "errors": errors, "items": items}



@pytest.mark.parametrize(
    ("action", "status", "kind", "outcome"),
    ITEM_STATUSES,
    ids=[f"{a}-{s}-{k or 'ok'}" for a, s, k, _ in ITEM_STATUSES],
)
def test_item_succeeded_per_action_and_status(
    action: str, status: int, kind: str | None, outcome: str
) -> None:
    assert item_succeeded(bulk_item(status, kind), action) is (outcome == SUCCESS)


@pytest.mark.parametrize("result", [{}, {"status": None}, {"status": "200"}, {"error": {}}])
def test_an_item_without_an_integer_status_failed(result: dict[str, Any]) -> None:
    assert item_succeeded(result, "index") is False
    assert item_succeeded(result, "delete") is False


def test_only_2xx_is_success_at_the_edges() -> None:
    assert [item_succeeded({"status": s}, "index") for s in (199, 200, 299, 300)] == [
        False,
        True,
        True,
        False,
    ]


SENT_STATUSES = [case for case in ITEM_STATUSES if case[0] in ("index", "delete")]


@pytest.mark.parametrize(
    ("action", "status", "kind", "outcome"),
    SENT_STATUSES,
    ids=[f"{a}-{s}-{k or 'ok'}" for a, s, k, _ in SENT_STATUSES],
)
def test_each_bulk_item_status_reports_exactly_the_records_not_applied(
    action: str, status: int, kind: str | None, outcome: str
) -> None:
    records = [
        stream_record(0, "INSERT", task("l", "t0")),
        stream_record(1, "REMOVE" if action == "delete" else "MODIFY", task("l", "t1")),
        stream_record(2, "INSERT", task("l", "t2")),
    ]
    client = ScriptedBulk({"l|t1": (status, kind)})
    config = IndexerConfig("https://search.example", INDEX, REGION, ("ListId", "TaskId"))
    response = SearchIndexer(config, client=client).index_batch(event(*records))
    # One request held the three actions, the one under test in the middle ...
    assert client.requests == [[("index", "l|t0"), (action, "l|t1"), ("index", "l|t2")]]
    # ... and only a failed item is reported, retryable or not: Lambda re-sends from it.
    assert response == (no_failures() if outcome == SUCCESS else failed(records[1]))


def test_a_failed_item_is_logged_with_its_status_and_type_never_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(2)]
    client = ScriptedBulk({"l|t1": (404, "index_not_found_exception")})
    config = IndexerConfig("https://search.example", INDEX, REGION, ("ListId", "TaskId"))
    with caplog.at_level(logging.ERROR, logger="ddb_stream_runtime.indexer"):
        assert SearchIndexer(config, client=client).index_batch(event(*records)) == failed(
            records[1]
        )
    [error] = caplog.records
    message = error.getMessage()
    assert "index failed with status 404 (index_not_found_exception)" in message
    assert seq_of(records[1]) in message and "evt-1" in message
    assert "quoted data" not in message  # a reason can quote the document


def test_item_statuses_are_not_resent_within_the_invocation(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer], sleeps: Sleeps
) -> None:
    records = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(3)]
    search.fail_document("l|t1", 503, "unavailable_shards_exception")
    assert make_indexer().index_batch(event(*records)) == failed(records[1])
    assert len(search.requests) == 1 and sleeps == []
    assert search.requests[0].response["items"][1]["index"]["status"] == 503


def test_an_index_404_is_reported_and_a_delete_404_is_not(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    # index_not_found_exception (auto-create off, alias gone): the document was not
    # written, and the checkpoint must not move past it.
    missing_index = task("l", "t1")
    search.fail_document("l|t1", 404, "index_not_found_exception")
    records = [
        stream_record(0, "INSERT", task("l", "t0")),
        stream_record(1, "INSERT", missing_index),
        stream_record(2, "REMOVE", task("l", "never-indexed")),
    ]
    assert make_indexer().index_batch(event(*records)) == failed(records[1])
    items = search.requests[0].response["items"]
    assert [(a, r["status"]) for i in items for a, r in i.items()] == [
        ("index", 201),
        ("index", 404),
        ("delete", 404),
    ]
    # Only the REMOVE's 404 is a success: a batch of just that one reports nothing.
    again = stream_record(3, "REMOVE", task("l", "never-indexed"))
    assert make_indexer().index_batch(event(again)) == no_failures()
    assert search.requests[1].response["items"][0]["delete"]["status"] == 404


def test_a_503_is_retried_then_succeeds(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer], sleeps: Sleeps
) -> None:
    search.fail_requests(503, 429)
    records = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(3)]
    assert make_indexer().index_batch(event(*records)) == no_failures()
    assert len(search.requests) == 3
    assert sleeps == [0.2, 0.4]
    assert len(search.documents(INDEX)) == 3


def test_when_retries_run_out_the_first_record_fails(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer], sleeps: Sleeps
) -> None:
    search.fail_requests(503, 503, 503)
    records = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(3)]
    assert make_indexer().index_batch(event(*records)) == failed(records[0])
    assert len(search.requests) == 3 and len(sleeps) == 2


def test_a_400_for_the_whole_request_is_not_retried(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer], sleeps: Sleeps
) -> None:
    search.fail_requests(403)
    records = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(3)]
    assert make_indexer().index_batch(event(*records)) == failed(records[0])
    assert len(search.requests) == 1 and sleeps == []


def test_a_connection_error_is_retried_then_the_first_record_fails(
    make_indexer: Callable[..., SearchIndexer], sleeps: Sleeps
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    records = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(2)]
    indexer = make_indexer(endpoint=f"http://127.0.0.1:{port}")
    assert indexer.index_batch(event(*records)) == failed(records[0])
    assert len(sleeps) == 2


def test_a_record_without_new_image_stops_the_batch(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    good = [stream_record(i, "INSERT", task("l", f"t{i}")) for i in range(2)]
    keys_only = stream_record(2, "INSERT", task("l", "t2"))
    del keys_only["dynamodb"]["NewImage"]
    later = stream_record(3, "INSERT", task("l", "t3"))
    assert make_indexer().index_batch(event(*good, keys_only, later)) == failed(keys_only)
    assert set(search.documents(INDEX)) == {"l|t0", "l|t1"}  # sent; nothing after it


def test_an_empty_event_sends_nothing(
    search: FakeOpenSearch, make_indexer: Callable[..., SearchIndexer]
) -> None:
    assert make_indexer().index_batch({"Records": []}) == no_failures()
    assert search.requests == []


# --- versions and ids -----------------------------------------------------------------


def test_version_mapping_is_monotone_and_fits_a_long() -> None:
    rng = random.Random(20240610)
    numbers = [rng.randrange(10**20, 10**21) for _ in range(2000)]  # 21 digits
    numbers += [rng.randrange(10**39, 10**40) for _ in range(2000)]  # 40 digits
    numbers += [rng.randrange(10**27, 10**28) for _ in range(500)]
    numbers += [BASE_SEQUENCE + i for i in range(0, 10**6, 997)]  # one shard's neighbours
    numbers += [10**k - 1 for k in range(1, 41)] + [10**k for k in range(0, 40)]  # length edges
    numbers += [int("4421584500000000017450439091"), 10**40 - 1]
    numbers.sort()
    versions = [sequence_version(str(n)) for n in numbers]
    assert versions == sorted(versions)  # monotone non-decreasing
    assert all(0 <= v <= 2**63 - 1 for v in versions)
    assert sequence_version("9" * 40) < 2**63 - 1
    # Exact (no ties) up to 17 digits; every real (21+ digit) one is far above 0.
    assert sequence_version("12345678901234567") == 12345678901234567
    assert sequence_version(str(10**20)) > 5 * 10**17 > BACKFILL_VERSION
    assert sequence_version("000000000000000000111") == 111  # leading zeros are ignored
    # Neighbours 10**4 apart never tie at 21 digits; 40-digit ones tie below 10**23.
    assert sequence_version(str(BASE_SEQUENCE)) < sequence_version(str(BASE_SEQUENCE + 10**4))
    with pytest.raises(ValueError, match="decimal digits"):
        sequence_version("12a")
    with pytest.raises(ValueError, match="more than dynamodb's 40"):
        sequence_version("1" * 41)


def test_document_ids() -> None:
    ids = ("ListId", "TaskId")
    assert document_id(ids, {"ListId": {"S": "l"}, "TaskId": {"N": "7"}}) == "l|7"
    # Keys first, then the images: an id attribute may live outside the key.
    assert document_id(ids, {"ListId": {"S": "l"}}, {"TaskId": {"S": "t"}}) == "l|t"
    # Escaped, so different keys never share an id.
    left = document_id(ids, {"ListId": {"S": "a|b"}, "TaskId": {"S": "c"}})
    right = document_id(ids, {"ListId": {"S": "a"}, "TaskId": {"S": "b|c"}})
    assert left == "a\\|b|c" and right == "a|b\\|c"
    # Binary keys are base64 text, from a stream (text) or a Scan (bytes) alike.
    assert document_id(["Id"], {"Id": {"B": "AAE="}}) == document_id(["Id"], {"Id": {"B": b"\0\1"}})
    long = document_id(["Id"], {"Id": {"S": "é" * 300}})
    assert long.startswith("sha256:") and len(long) <= MAX_ID_BYTES
    with pytest.raises(ValueError, match="'TaskId' is in neither"):
        document_id(ids, {"ListId": {"S": "l"}})
    with pytest.raises(ValueError, match="must be an S, N or B value"):
        document_id(["Id"], {"Id": {"BOOL": True}})


# --- configuration and entry point ----------------------------------------------------


def test_config_from_env() -> None:
    env = {
        "SEARCH_ENDPOINT": "https://collection.us-east-2.aoss.amazonaws.com",
        "INDEX_NAME": "tasks",
        "AWS_REGION": "us-east-2",
        "SEARCH_SERVICE": "aoss",
        "ID_ATTRIBUTES": '["ListId", "TaskId"]',
    }
    config = IndexerConfig.from_env(env)
    assert (config.service, config.versioning) == ("aoss", "none")  # serverless default
    assert config.id_attributes == ("ListId", "TaskId")
    assert IndexerConfig.from_env({**env, "SEARCH_SERVICE": "es"}).versioning == "external"
    with pytest.raises(ValueError, match="ID_ATTRIBUTES must be a json list"):
        IndexerConfig.from_env({**env, "ID_ATTRIBUTES": "ListId,TaskId"})
    with pytest.raises(ValueError, match="INDEX_NAME is required"):
        IndexerConfig.from_env({k: v for k, v in env.items() if k != "INDEX_NAME"})
    with pytest.raises(ValueError, match="lowercase opensearch index name"):
        IndexerConfig.from_env({**env, "INDEX_NAME": "Tasks"})
    with pytest.raises(ValueError, match="versioning must be"):
        IndexerConfig.from_env({**env, "VERSIONING": "internal"})
    with pytest.raises(ValueError, match="endpoint must start with https://"):
        IndexerConfig.from_env({**env, "SEARCH_ENDPOINT": "ftp://x"})


def test_handler_signs_with_the_environment_credentials(
    search: FakeOpenSearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "SEARCH_ENDPOINT": search.endpoint,
        "INDEX_NAME": INDEX,
        "AWS_REGION": REGION,
        "ID_ATTRIBUTES": json.dumps(["ListId", "TaskId"]),
        "AWS_ACCESS_KEY_ID": "AKIDFROMENV",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    indexer_module._default_indexer.cache_clear()
    _sigv4.botocore_session.cache_clear()
    try:
        assert handler(event(stream_record(1, "INSERT", task("l", "t"))), None) == no_failures()
    finally:
        indexer_module._default_indexer.cache_clear()
        _sigv4.botocore_session.cache_clear()
    [request] = search.requests
    assert "Credential=AKIDFROMENV/" in request.headers["Authorization"]
    assert verify_sigv4(request, Credentials("AKIDFROMENV", "secret"), service="es", region=REGION)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(indexer_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    "module",
    ["ddb_stream_runtime.counter", "ddb_stream_runtime.indexer", "ddb_stream_runtime.backfill"],
)
def test_importing_loads_neither_boto3_nor_botocore(module: str) -> None:
    # A fresh interpreter: this test process has imported boto3 already.
    lambda_src = Path(indexer_module.__file__).resolve().parents[1]
    code = (
        f"import json, sys, {module}; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'boto3', 'botocore', 'aws_cdk'})))"
    )
    env = {**os.environ, "PYTHONPATH": str(lambda_src)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == []


# --- one walk: the same documents, byte for byte, as deserialize + _jsonable ---------------

from hypothesis import given, settings  # noqa: E402

from tests.runtime.test_deserialize import _ITEM  # noqa: E402


def _two_step_document(image: dict[str, Any]) -> str:
    """The document as the indexer made it before the one-walk path: deserialize, then
    make JSON-safe, then encode."""
    from ddb_stream_runtime.deserialize import deserialize_image as deserialize

    return indexer_module._encode(indexer_module._jsonable(deserialize(image)))


EDGE_ITEMS: list[dict[str, Any]] = [
    {
        "big": {"N": "9223372036854775807"},
        "bigger": {"N": "9223372036854775808"},
        "small": {"N": "-9223372036854775808"},
        "smaller": {"N": "-9223372036854775809"},
        "neg_zero": {"N": "-0"},
        "neg_zero_frac": {"N": "-0.0"},
        "integral": {"N": "2.000"},
        "exp": {"N": "1E+2"},
        "huge": {"N": "9.9999999999999999999999999999999999999E+125"},
        "tiny": {"N": "1e-130"},
        "third": {"N": "0.333333333333333333333333333333333333"},
        "almost_one": {"N": "1.0000000000000000001"},
        "frac_exp": {"N": "1.5e3"},
        "frac_neg_exp": {"N": "-1.5E-3"},
        "tenth": {"N": "0.1"},
        "text": {"S": "Grüße \u2028 \"q\" \\ 🚀"},
        "b": {"B": "AAH+/w=="},
        "bs": {"BS": ["d29ybGQ=", "aGVsbG8="]},
        "ns": {"NS": ["10", "-0.5", "3", "1e3"]},
        "ss": {"SS": ["b", "a"]},
        "nested": {
            "M": {
                "l": {"L": [{"N": "1"}, {"S": "x"}, {"NULL": True}, {"M": {"z": {"BOOL": False}}}]},
                "m": {"M": {}},
            }
        },
    },
    {"S": {"N": "1"}, "N": {"S": "x"}, "M": {"L": []}, "L": {"M": {"B": {"B": ""}}}},
]


@pytest.mark.parametrize("image", EDGE_ITEMS)
def test_one_walk_documents_equal_the_two_step_ones(image: dict[str, Any]) -> None:
    document = indexer_module.image_to_document(image)
    assert document  # converted
    assert indexer_module._encode(document) == _two_step_document(image)


@settings(max_examples=300, deadline=None)
@given(_ITEM)
def test_one_walk_documents_equal_the_two_step_ones_on_generated_items(
    image: dict[str, Any],
) -> None:
    assert indexer_module._encode(indexer_module.image_to_document(image)) == (
        _two_step_document(image)
    )


def test_one_walk_still_names_a_bad_value() -> None:
    from ddb_stream_runtime import DeserializationError

    with pytest.raises(DeserializationError, match=r"a\.b\[1\]: type tag 'N' needs a number"):
        indexer_module.image_to_document({"a": {"M": {"b": {"L": [{"N": "1"}, {"N": "x"}]}}}})


# --- the whole _bulk body, byte for byte ----------------------------------------------------


class CapturingBulk:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def bulk(self, body: bytes) -> dict[str, Any]:
        self.bodies.append(body)
        # Split on \n only: str.splitlines would also split inside a source at U+2028.
        actions = [json.loads(line) for line in body.split(b"\n") if line]
        items = [{a: {"status": 201}} for line in actions for a in line if a in ("index", "delete")]
        return {"took": 1, "errors": False, "items": items}


def _golden_event(load_event: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """INSERT, MODIFY and REMOVE (sample), every tag nested (rich), the edge items, and ids
    that need JSON escaping."""
    records = load_event("lambda_dg_sample.json")["Records"]
    records += load_event("rich_modify.json")["Records"]
    for n, image in enumerate(EDGE_ITEMS):
        record = json.loads(json.dumps(records[1]))
        odd_id = ["q\"uote\\back|bar", "Grüße \u2028 🚀\n"][n]
        record["dynamodb"]["Keys"] = {"Id": {"S": odd_id}}
        record["dynamodb"]["NewImage"] = {**image, "Id": {"S": odd_id}}
        record["dynamodb"]["SequenceNumber"] = str(400000000032021070652 + n)
        records.append(record)
    for record in records:
        keys = record["dynamodb"]["Keys"]
        if "Id" not in keys:  # the rich record: make pk its id
            keys["Id"] = keys.get("pk") or record["dynamodb"]["NewImage"]["pk"]
            record["dynamodb"]["NewImage"]["Id"] = keys["Id"]
    return {"Records": records}


def _bulk_body_the_old_way(event: dict[str, Any], versioning: str) -> bytes:
    """Metadata dicts encoded whole, documents made in two steps: how bodies were built."""
    from ddb_stream_runtime.records import StreamRecord

    lines = []
    for raw in event["Records"]:
        record = StreamRecord.from_lambda(raw)
        meta: dict[str, Any] = {"_id": document_id(("Id",), record.raw_keys, record.raw_new_image)}
        if versioning == "external":
            meta["version"] = sequence_version(record.sequence_number)
            meta["version_type"] = "external_gte"
        if record.event_name == "REMOVE":
            lines.append(indexer_module._encode({"delete": meta}) + "\n")
        else:
            lines.append(indexer_module._encode({"index": meta}) + "\n")
            lines.append(_two_step_document(record.raw_new_image) + "\n")
    return "".join(lines).encode()


# sha256 of the bodies as the indexer built them before the fast walk (commit a1344a6).
GOLDEN_BODY_SHA256 = {
    "external": "2ec64d0e5e6d4e2d549d9092a3e0d5523d583e997723454dcb7814e2ffce8f22",
    "none": "afc0d0284b1303c7d2d137c87166a2be5837e005bfec9c2bb5277ddef1cfb846",
}


@pytest.mark.parametrize("versioning", ["external", "none"])
def test_bulk_body_is_byte_for_byte_what_it_was(
    versioning: str, load_event: Callable[[str], dict[str, Any]]
) -> None:
    import hashlib

    event = _golden_event(load_event)
    client = CapturingBulk()
    config = IndexerConfig("https://search.example", INDEX, REGION, ("Id",), versioning=versioning)
    response = SearchIndexer(config, client=client).index_batch(event)
    assert response == {"batchItemFailures": []}
    [body] = client.bodies
    assert body.count(b"\n") == 2 * len(event["Records"]) - 1  # one REMOVE: no source line
    assert body == _bulk_body_the_old_way(event, versioning)
    assert hashlib.sha256(body).hexdigest() == GOLDEN_BODY_SHA256[versioning]


@pytest.mark.parametrize(
    "value",
    [
        {"NS": ["10", "2", "1"]},
        {"NS": ["007", "7", "8"]},  # one number twice: one member
        {"NS": ["9223372036854775807", "0"]},
        {"NS": ["9223372036854775808", "1"]},  # above a long: floats
        {"NS": ["1", "-2", "0.5", "-0"]},
        {"SS": ["b", "a", "B", "é"]},
        {"L": [{"NS": ["3", "1"]}, {"SS": ["z", "y"]}]},
    ],
)
def test_set_documents_equal_the_two_step_ones(value: dict[str, Any]) -> None:
    image = {"v": value}
    document = indexer_module.image_to_document(image)
    assert "v" in document
    assert indexer_module._encode(document) == _two_step_document(image)
