"""Backfill: parallel Scan (moto) -> one ``_bulk`` per page (fake OpenSearch), stream-safe versions."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import moto
import pytest
from botocore.credentials import Credentials

from ddb_stream_patterns.local.opensearch import FakeOpenSearch, verify_sigv4
from ddb_stream_runtime import _sigv4
from ddb_stream_runtime.backfill import BackfillError, backfill, main
from ddb_stream_runtime.indexer import (
    BACKFILL_VERSION,
    IndexerConfig,
    SearchIndexer,
    sequence_version,
)

from .test_indexer import dynamodb_json, event, stream_record, task

TABLE = "Tasks"
INDEX = "tasks"
REGION = "us-east-2"
CREDENTIALS = Credentials("AKIDEXAMPLE", "secret")
ID_ATTRIBUTES = ("ListId", "TaskId")


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "ListId", "KeyType": "HASH"},
                {"AttributeName": "TaskId", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "ListId", "AttributeType": "S"},
                {"AttributeName": "TaskId", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


@pytest.fixture
def search() -> Iterator[FakeOpenSearch]:
    with FakeOpenSearch() as server:
        yield server


def put_tasks(client: Any, items: list[dict[str, Any]]) -> None:
    for item in items:
        client.put_item(TableName=TABLE, Item=dynamodb_json(item))


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def run_backfill(dynamodb: Any, search: FakeOpenSearch) -> Callable[..., Any]:
    def run(**options: Any) -> Any:
        settings = {
            "endpoint": search.endpoint,
            "index": INDEX,
            "region": REGION,
            "id_attributes": ID_ATTRIBUTES,
            "dynamodb_client": dynamodb,
            "credentials": CREDENTIALS,
            "opener": opener(),
            "sleep": lambda seconds: None,
            **options,
        }
        return backfill(TABLE, **settings)

    return run


def stream_indexer(search: FakeOpenSearch, **settings: Any) -> SearchIndexer:
    config = IndexerConfig(search.endpoint, INDEX, REGION, ID_ATTRIBUTES, **settings)
    return SearchIndexer(config, client=config.client(credentials=CREDENTIALS, opener=opener()))


def test_backfill_indexes_every_item_with_one_bulk_per_page(
    dynamodb: Any, search: FakeOpenSearch, run_backfill: Callable[..., Any]
) -> None:
    items = [task(f"l{i % 13}", f"t{i:04}", n=i, price=Decimal("1.25")) for i in range(1000)]
    put_tasks(dynamodb, items)
    result = run_backfill(segments=4, page_size=100)
    assert result["scanned"] == result["indexed"] == 1000
    assert (result["skipped"], result["failed"], result["segments"]) == (0, 0, 4)
    # One request per non-empty Scan page; each segment ends on a page of <= 100 items.
    assert result["requests"] == len(search.requests)
    assert all(1 <= len(r.actions) <= 100 for r in search.requests)
    assert 10 <= result["requests"] <= 10 + 4
    docs = search.documents(INDEX)
    assert len(docs) == 1000
    assert docs["l3|t0003"].source == {"ListId": "l3", "TaskId": "t0003", "n": 3, "price": 1.25}
    assert {d.version for d in docs.values()} == {BACKFILL_VERSION}
    for request in search.requests:
        assert request.path == f"/{INDEX}/_bulk"
        assert verify_sigv4(request, CREDENTIALS, service="es", region=REGION)
        assert {meta["version_type"] for _, meta, _ in request.actions} == {"external_gte"}


def test_backfilled_documents_equal_what_the_stream_indexes(
    dynamodb: Any, search: FakeOpenSearch, run_backfill: Callable[..., Any]
) -> None:
    # Binary values arrive as bytes from a Scan and as base64 text from a stream.
    item = task(
        "l", "t", blob=b"\x00\x01\xfe", blobs={b"b", b"a"}, nums={Decimal("2.5"), 1},
        tags={"y", "x"}, nested={"list": [Decimal("0.1"), b"\x07", None, True]},
    )
    put_tasks(dynamodb, [item])
    run_backfill(index="from-scan")
    stream_indexer(search).index_batch(event(stream_record(1, "INSERT", item)))
    from_scan = search.document("from-scan", "l|t")
    from_stream = search.document(INDEX, "l|t")
    assert from_scan is not None and from_stream is not None
    assert from_scan.source == from_stream.source
    assert from_scan.source["blob"] == "AAH+"


def test_a_backfill_never_overwrites_what_the_stream_indexed(
    dynamodb: Any, search: FakeOpenSearch, run_backfill: Callable[..., Any]
) -> None:
    put_tasks(dynamodb, [task("l", f"t{i}", title="scanned") for i in range(5)])
    # The stream indexed t1 and t3 with newer data (the scan read stale copies).
    indexer = stream_indexer(search)
    newer = [stream_record(i, "MODIFY", task("l", f"t{i}", title="stream")) for i in (1, 3)]
    assert indexer.index_batch(event(*newer)) == {"batchItemFailures": []}

    result = run_backfill()
    assert (result["indexed"], result["skipped"], result["failed"]) == (3, 2, 0)
    titles = {k: d.source["title"] for k, d in search.documents(INDEX).items()}
    assert titles == {"l|t0": "scanned", "l|t1": "stream", "l|t2": "scanned",
                      "l|t3": "stream", "l|t4": "scanned"}

    # And any later stream update wins over a backfilled document.
    update = stream_record(9, "MODIFY", task("l", "t0", title="later"))
    assert indexer.index_batch(event(update)) == {"batchItemFailures": []}
    doc = search.document(INDEX, "l|t0")
    assert doc is not None and doc.source["title"] == "later"
    assert doc.version == sequence_version(update["dynamodb"]["SequenceNumber"])


def test_a_backfill_does_not_resurrect_a_document_the_stream_deleted(
    dynamodb: Any, search: FakeOpenSearch, run_backfill: Callable[..., Any]
) -> None:
    item = task("l", "gone", title="stale")
    put_tasks(dynamodb, [item])  # the scan still sees it
    indexer = stream_indexer(search)
    indexer.index_batch(event(stream_record(1, "INSERT", item), stream_record(2, "REMOVE", item)))
    result = run_backfill()
    assert result["skipped"] == 1  # the tombstone's version is higher
    assert search.document(INDEX, "l|gone") is None


def test_running_the_backfill_again_refreshes_its_own_documents(
    dynamodb: Any, search: FakeOpenSearch, run_backfill: Callable[..., Any]
) -> None:
    put_tasks(dynamodb, [task("l", "t", title="one")])
    run_backfill()
    put_tasks(dynamodb, [task("l", "t", title="two")])
    result = run_backfill(segments=2)
    assert (result["indexed"], result["skipped"]) == (1, 0)
    doc = search.document(INDEX, "l|t")
    assert doc is not None and doc.source["title"] == "two"


def test_without_versioning_the_backfill_only_creates(
    dynamodb: Any, search: FakeOpenSearch, run_backfill: Callable[..., Any]
) -> None:
    put_tasks(dynamodb, [task("l", f"t{i}", title="scanned") for i in range(3)])
    stream_indexer(search, versioning="none").index_batch(
        event(stream_record(1, "MODIFY", task("l", "t1", title="stream")))
    )
    result = run_backfill(versioning="none", service="aoss")
    assert (result["indexed"], result["skipped"]) == (2, 1)
    assert {a for r in search.requests[1:] for a, _, _ in r.actions} == {"create"}
    doc = search.document(INDEX, "l|t1")
    assert doc is not None and doc.source["title"] == "stream"
    assert verify_sigv4(search.requests[-1], CREDENTIALS, service="aoss", region=REGION)


def test_items_without_an_id_attribute_are_counted_as_failed(
    dynamodb: Any, search: FakeOpenSearch, run_backfill: Callable[..., Any]
) -> None:
    put_tasks(dynamodb, [task("l", "a", owner="u1"), task("l", "b")])
    result = run_backfill(id_attributes=("ListId", "owner"))
    assert (result["indexed"], result["failed"]) == (1, 1)
    assert set(search.documents(INDEX)) == {"l|u1"}


def test_a_failing_bulk_request_stops_the_backfill(
    dynamodb: Any, search: FakeOpenSearch, run_backfill: Callable[..., Any]
) -> None:
    put_tasks(dynamodb, [task("l", f"t{i}") for i in range(10)])
    search.fail_requests(503, 503, 503)
    with pytest.raises(BackfillError, match="503") as caught:
        run_backfill(segments=1, max_attempts=3)
    assert caught.value.result["requests"] == 0
    assert len(search.requests) == 3


def test_arguments_are_validated(run_backfill: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="segments"):
        run_backfill(segments=0)
    with pytest.raises(ValueError, match="page_size"):
        run_backfill(page_size=0)
    with pytest.raises(ValueError, match="id_attributes"):
        run_backfill(id_attributes=())


def test_command_line(
    dynamodb: Any,
    search: FakeOpenSearch,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    put_tasks(dynamodb, [task(f"l{i % 2}", f"t{i}") for i in range(30)])
    _sigv4.botocore_session.cache_clear()  # resolve credentials here, under moto
    try:
        code = main(
            [
                "--table", TABLE,
                "--endpoint", search.endpoint,
                "--index", INDEX,
                "--id-attributes", "ListId,TaskId",
                "--segments", "8",
                "--page-size", "5",
                "--region", REGION,
            ]
        )
    finally:
        _sigv4.botocore_session.cache_clear()
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scanned"] == summary["indexed"] == 30
    assert summary["segments"] == 8 and summary["requests"] == len(search.requests) >= 6
    # Signed with the default credential chain (moto's mock answers it).
    assert f"/{REGION}/es/aws4_request" in search.requests[0].headers["Authorization"]
