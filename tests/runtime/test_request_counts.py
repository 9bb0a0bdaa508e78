"""AWS requests per 1,000 stream records (in Lambda batches of 100), counted.

Every count is taken with botocore's own event hooks on real clients (moto's
in-process ``mock_aws`` answers them; dummy credentials, us-east-1):
``before-call`` fires once per API call, ``before-send`` once per HTTP request
(so a retry would show up as a difference between the two). The handlers run
as deployed: ``<module>.handler`` configured by the environment variables its
construct sets, making its own clients (hooked through boto3's default session).
The indexer makes no boto3 client (SigV4-signed urllib), so its ``_bulk``
requests are counted by a stand-in OpenSearch server on 127.0.0.1.

==========================  ==========================================  ==========
handler                     1,000 records, batches of 100                requests
==========================  ==========================================  ==========
router                      SNS PublishBatch (10 entries each)          100
router + 10 oversized       + S3 PutObject per claim check              100 + 10
processor (SQS, raw)        nothing, + S3 GetObject per claim check     0 (+ 10)
archiver, S3 mode           S3 PutObject, one object per batch          10
archiver, table mode        DynamoDB BatchWriteItem (25 puts each)      40
counter, 10 groups          TransactWriteItems (<= 100 items each)      20
replicator                  PutItem per record (conditional)            1,000
indexer                     POST /<index>/_bulk per batch               10
==========================  ==========================================  ==========

The same 1,000 records behind the fan-out (SQS, raw delivery, batches of 10) and from
a Kinesis data stream (batches of 100):

==========================  =================================  =========  ==========
handler                     per                                SQS        Kinesis
==========================  =================================  =========  ==========
archiver, S3 mode           PutObject per record (conditional)  1,000      1,000
archiver, table mode        BatchWriteItem per 25 / per batch   100        40
counter, 10 groups          TransactWriteItems                  100        20
replicator                  PutItem per record (conditional)    1,000      1,000
indexer                     POST /<index>/_bulk per batch       100        10
==========================  =================================  =========  ==========

Times are never asserted here: see ``benchmarks/``.
"""

from __future__ import annotations

import importlib
import json
import threading
import types
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import moto  # a dev dependency (pyproject's [dev] extra): required, never skipped
import pytest

import ddb_stream_runtime.router as router_module
from ddb_stream_runtime import Router, RouterConfig, process_sqs_batch
from tests.runtime.sources import as_kinesis, as_sqs, to_kinesis_change

RECORDS = 1_000
STREAM_BATCH = 100  # the controllers' default batch_size
SQS_BATCH = 10  # an SQS event source's default batch size
REGION = "us-east-1"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/orders/stream/2024-06-10T19:26:16.525"
BUCKET = "claim-checks"
OVERSIZED_EVERY = 100  # 10 of the 1,000 records are over SNS's 256 KiB


class RequestCounter:
    """Counts API calls and HTTP requests per ``service.Operation`` on the emitters it is given."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.sends: Counter[str] = Counter()

    def attach(self, events: Any) -> None:
        events.register("before-call.*.*", self._on_call)
        # First, so it runs before moto's own before-send handler answers the request.
        events.register_first("before-send.*.*", self._on_send)

    def _on_call(self, event_name: str, **kwargs: Any) -> None:
        self.calls[event_name.split(".", 1)[1]] += 1

    def _on_send(self, event_name: str, **kwargs: Any) -> None:
        self.sends[event_name.split(".", 1)[1]] += 1

    def reset(self) -> None:
        self.calls.clear()
        self.sends.clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process, dummy credentials, and no client cached from an earlier test."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # restored after the test
    forget_cached_configuration_and_clients()
    with moto.mock_aws():
        boto3.setup_default_session()  # clients made inside the runtime come from it
        yield
    forget_cached_configuration_and_clients()


HANDLER_MODULES = ("_aws", "router", "archiver", "counter", "indexer", "replicator")


def forget_cached_configuration_and_clients() -> None:
    """Each handler reads its environment and makes its clients once per process (lru_cache)."""
    for name in HANDLER_MODULES:
        module = importlib.import_module(f"ddb_stream_runtime.{name}")
        for value in vars(module).values():
            if getattr(value, "__module__", None) == module.__name__ and callable(
                getattr(value, "cache_clear", None)
            ):
                value.cache_clear()


def handler_of(
    name: str, monkeypatch: pytest.MonkeyPatch, **environment: str
) -> types.FunctionType:
    """``ddb_stream_runtime.<name>.handler``, configured as its construct configures it."""
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return importlib.import_module(f"ddb_stream_runtime.{name}").handler


@pytest.fixture
def counter(aws: None) -> RequestCounter:
    """Counts every request of every client made after it, including the runtime's own."""
    counter = RequestCounter()
    counter.attach(boto3.DEFAULT_SESSION.events)
    return counter


def stream_record(i: int, *, oversized: bool = False) -> dict[str, Any]:
    image = {
        "orderId": {"S": f"ORDER#{i:06d}"},
        "status": {"S": "SHIPPED"},
        "total": {"N": f"{i % 1000}.50"},
        "tags": {"SS": ["priority", f"region-{i % 12}"]},
    }
    if oversized:
        image["invoice"] = {"S": "x" * 300_000}
    return {
        "eventID": f"{i:032x}",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": {
            "ApproximateCreationDateTime": 1718049976 + i,
            "Keys": {"orderId": image["orderId"]},
            "NewImage": image,
            "OldImage": {**image, "status": {"S": "PACKED"}},
            "SequenceNumber": str(4421584500000000017450439091 + i),
            "SizeBytes": 300,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": STREAM_ARN,
    }


def stream_events(*, oversized_every: int = 0) -> list[dict[str, Any]]:
    """1,000 records, as Lambda delivers them with batch_size 100: ten events."""
    records = [
        stream_record(i, oversized=bool(oversized_every) and i % oversized_every == 0)
        for i in range(RECORDS)
    ]
    return [
        {"Records": records[start : start + STREAM_BATCH]}
        for start in range(0, RECORDS, STREAM_BATCH)
    ]


def create_topic(*, with_queue: bool = False) -> tuple[str, str | None]:
    """A topic, with a raw-delivery queue behind it if asked (as the ComplexController wires it).

    Made on a session of its own, so that setting up is not counted.
    """
    session = boto3.session.Session()
    topic = session.client("sns").create_topic(Name="orders")["TopicArn"]
    if not with_queue:
        return topic, None
    sqs = session.client("sqs")
    queue_url = sqs.create_queue(QueueName="processor")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    session.client("sns").subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return topic, queue_url


def published_bodies(sns: Any) -> list[str]:
    """Collects the body of every message ``sns`` publishes (a before-parameter-build hook)."""
    bodies: list[str] = []

    def collect(params: dict[str, Any], **kwargs: Any) -> None:
        bodies.extend(e["Message"] for e in params["PublishBatchRequestEntries"])

    sns.meta.events.register("before-parameter-build.sns.PublishBatch", collect)
    return bodies


def sqs_events(bodies: list[str]) -> list[dict[str, Any]]:
    """The bodies as an SQS event source with the default batch size hands them to Lambda."""
    messages = [
        {"messageId": f"m-{n}", "body": body, "eventSource": "aws:sqs"}
        for n, body in enumerate(bodies)
    ]
    return [
        {"Records": messages[start : start + SQS_BATCH]}
        for start in range(0, len(messages), SQS_BATCH)
    ]


def test_router_makes_one_publish_batch_per_10_records(counter: RequestCounter) -> None:
    topic, queue_url = create_topic(with_queue=True)
    sns = boto3.client("sns")  # made after the counter: its hooks are on it
    router = Router(RouterConfig(topic, ("status",)), sns_client=sns)

    for event in stream_events():
        assert router.route(event) == {"batchItemFailures": []}

    assert counter.calls == {"sns.PublishBatch": RECORDS // 10}  # 100 for 1,000 records
    assert counter.sends == counter.calls  # one HTTP request each: no retry
    queue = (
        boto3.session.Session()
        .client("sqs")
        .get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    )
    assert queue["Attributes"]["ApproximateNumberOfMessages"] == str(RECORDS)  # all delivered


def test_router_handler_counts_the_same_with_its_own_client(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, _ = create_topic()
    monkeypatch.setenv("TOPIC_ARN", topic)
    monkeypatch.setenv("ROUTING_ATTRIBUTES", '["status"]')

    for event in stream_events():
        assert router_module.handler(event, None) == {"batchItemFailures": []}

    assert counter.calls == {"sns.PublishBatch": 100}
    assert counter.sends == counter.calls


def test_claim_checks_cost_one_put_and_one_get_per_oversized_record(
    counter: RequestCounter,
) -> None:
    topic, _ = create_topic()
    boto3.session.Session().client("s3").create_bucket(Bucket=BUCKET)
    sns, s3 = boto3.client("sns"), boto3.client("s3")
    bodies = published_bodies(sns)
    router = Router(
        RouterConfig(topic, ("status",), claim_check_bucket=BUCKET),
        sns_client=sns,
        s3_client_factory=lambda: s3,
    )

    for event in stream_events(oversized_every=OVERSIZED_EVERY):
        assert router.route(event) == {"batchItemFailures": []}

    oversized = RECORDS // OVERSIZED_EVERY  # 10
    assert counter.calls == {"sns.PublishBatch": 100, "s3.PutObject": oversized}
    assert counter.sends == counter.calls

    counter.reset()
    seen: list[str] = []
    for event in sqs_events(bodies):
        response = process_sqs_batch(event, lambda r: seen.append(r.event_id), s3_client=s3)
        assert response == {"batchItemFailures": []}

    assert sorted(seen) == [f"{i:032x}" for i in range(RECORDS)]
    assert counter.calls == {"s3.GetObject": oversized}
    assert counter.sends == counter.calls


def test_processor_makes_no_request_for_raw_delivered_records(counter: RequestCounter) -> None:
    topic, _ = create_topic()
    sns = boto3.client("sns")
    bodies = published_bodies(sns)
    router = Router(RouterConfig(topic), sns_client=sns)
    for event in stream_events():
        router.route(event)
    counter.reset()

    seen: list[str] = []
    for event in sqs_events(bodies):
        assert process_sqs_batch(event, lambda r: seen.append(r.event_id)) == {
            "batchItemFailures": []
        }

    assert len(seen) == RECORDS
    assert counter.calls == {}
    assert counter.sends == {}


# --- the other stream handlers ------------------------------------------------------------


def ttl_events() -> list[dict[str, Any]]:
    """1,000 TTL expiries (REMOVE by the DynamoDB service, OLD_IMAGE view), ten events."""
    events = stream_events()
    for event in events:
        for record in event["Records"]:
            record["eventName"] = "REMOVE"
            record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
            dynamodb = record["dynamodb"]
            del dynamodb["NewImage"]
            dynamodb["StreamViewType"] = "OLD_IMAGE"
    return events


def insert_events(groups: int) -> list[dict[str, Any]]:
    """1,000 INSERTs whose ``status`` cycles through ``groups`` values, ten events."""
    events = stream_events()
    for event in events:
        for record in event["Records"]:
            record["eventName"] = "INSERT"
            dynamodb = record["dynamodb"]
            del dynamodb["OldImage"]
            n = int(dynamodb["SequenceNumber"]) - 4421584500000000017450439091
            dynamodb["NewImage"]["status"] = {"S": f"STATUS-{n % groups}"}
    return events


def create_table(name: str, key: str) -> Any:
    """A table, made on a session of its own (not counted); returns that uncounted client."""
    client = boto3.session.Session().client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def scan_all(client: Any, table: str) -> list[dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def test_archiver_s3_mode_makes_one_put_per_batch(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = boto3.session.Session().client("s3")
    s3.create_bucket(Bucket="archive")
    handler = handler_of(
        "archiver", monkeypatch, ARCHIVE_BUCKET="archive", ARCHIVE_PREFIX="expired/"
    )

    for event in ttl_events():
        assert handler(event, None) == {"batchItemFailures": []}

    assert counter.calls == {"s3.PutObject": RECORDS // STREAM_BATCH}  # 10
    assert counter.sends == counter.calls
    assert s3.list_objects_v2(Bucket="archive", Prefix="expired/")["KeyCount"] == 10


def test_archiver_table_mode_makes_one_batch_write_per_25_records(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = create_table("archive", "orderId")
    handler = handler_of("archiver", monkeypatch, ARCHIVE_TABLE="archive")

    for event in ttl_events():
        assert handler(event, None) == {"batchItemFailures": []}

    assert counter.calls == {"dynamodb.BatchWriteItem": RECORDS // 25}  # 40
    assert counter.sends == counter.calls
    assert len(scan_all(client, "archive")) == RECORDS


def test_counter_makes_one_transaction_per_100_items(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = create_table("counters", "pk")
    handler = handler_of(
        "counter",
        monkeypatch,
        COUNTER_TABLE="counters",
        GROUP_ATTRIBUTE="status",
        COUNTER_PARTITION_KEY="pk",
        COUNT_ATTRIBUTE="count",
        MARKER_TTL_ATTRIBUTE="expiresAt",
    )

    for event in insert_events(groups=10):
        assert handler(event, None) == {"batchItemFailures": []}

    # Per batch: 100 idempotency markers + 10 group updates = 110 items, in 2 transactions.
    assert counter.calls == {"dynamodb.TransactWriteItems": 20}
    assert counter.sends == counter.calls
    counts = {
        item["pk"]["S"]: int(item["count"]["N"])
        for item in scan_all(client, "counters")
        if "count" in item
    }
    assert counts == {f"STATUS-{g}": 100 for g in range(10)}


def test_replicator_makes_one_conditional_write_per_record(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = create_table("orders-copy", "orderId")
    handler = handler_of("replicator", monkeypatch, TARGET_TABLE="orders-copy")

    for event in stream_events():
        assert handler(event, None) == {"batchItemFailures": []}

    assert counter.calls == {"dynamodb.PutItem": RECORDS}
    assert counter.sends == counter.calls
    assert len(scan_all(client, "orders-copy")) == RECORDS


class BulkServer(ThreadingHTTPServer):
    """A stand-in OpenSearch on 127.0.0.1: answers ``_bulk`` with success, counts requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _BulkHandler)
        self.requests: Counter[str] = Counter()
        self.signed = 0
        self.documents = 0


class _BulkHandler(BaseHTTPRequestHandler):
    server: BulkServer

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests[f"POST {self.path}"] += 1
        self.server.signed += self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256")
        items, lines = [], body.splitlines()
        i = 0
        while i < len(lines):
            [action] = json.loads(lines[i])
            items.append({action: {"status": 201}})
            i += 1 if action == "delete" else 2  # delete has no source line
        self.server.documents += len(items)
        reply = json.dumps({"took": 1, "errors": False, "items": items}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bulk_server() -> Iterator[BulkServer]:
    server = BulkServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_indexer_sends_one_bulk_request_per_batch(
    counter: RequestCounter, bulk_server: BulkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = bulk_server.server_address[:2]
    handler = handler_of(
        "indexer",
        monkeypatch,
        SEARCH_ENDPOINT=f"http://{host}:{port}",
        INDEX_NAME="orders",
        AWS_REGION=REGION,
        ID_ATTRIBUTES='["orderId"]',
    )

    for event in stream_events():
        assert handler(event, None) == {"batchItemFailures": []}

    assert bulk_server.requests == {"POST /orders/_bulk": RECORDS // STREAM_BATCH}  # 10
    assert bulk_server.signed == 10  # SigV4, with the dummy credentials
    assert bulk_server.documents == RECORDS
    assert counter.calls == {}  # and no boto3 call: the credentials come from the environment


# --- the same handlers behind SQS (the fan-out) and on Kinesis ---------------------------------

SOURCES = ("sqs", "kinesis")


def delivered(events: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """The stream's 1,000 records as the source delivers them: SQS raw delivery in batches
    of 10 (the router's published record is the body), Kinesis in batches of 100."""
    records = [record for event in events for record in event["Records"]]
    if source == "sqs":
        return [
            as_sqs(records[start : start + SQS_BATCH])
            for start in range(0, len(records), SQS_BATCH)
        ]
    changes = [to_kinesis_change(record, table_name="orders") for record in records]
    return [
        as_kinesis(changes[start : start + STREAM_BATCH])
        for start in range(0, len(changes), STREAM_BATCH)
    ]


@pytest.mark.parametrize("source", SOURCES)
def test_archiver_s3_mode_puts_one_object_per_record_from_sqs_and_kinesis(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    s3 = boto3.session.Session().client("s3")
    s3.create_bucket(Bucket="archive")
    handler = handler_of(
        "archiver", monkeypatch, ARCHIVE_BUCKET="archive", ARCHIVE_PREFIX="expired/"
    )

    for event in delivered(ttl_events(), source):
        assert handler(event, None) == {"batchItemFailures": []}

    assert counter.calls == {"s3.PutObject": RECORDS}  # one object per record: never a copy
    assert counter.sends == counter.calls
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="archive", Prefix="expired/")
    assert sum(page["KeyCount"] for page in pages) == RECORDS


@pytest.mark.parametrize(("source", "calls"), [("sqs", 100), ("kinesis", 40)])
def test_archiver_table_mode_from_sqs_and_kinesis(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch, source: str, calls: int
) -> None:
    client = create_table("archive", "orderId")
    handler = handler_of("archiver", monkeypatch, ARCHIVE_TABLE="archive")

    for event in delivered(ttl_events(), source):
        assert handler(event, None) == {"batchItemFailures": []}

    assert counter.calls == {"dynamodb.BatchWriteItem": calls}
    assert counter.sends == counter.calls
    assert len(scan_all(client, "archive")) == RECORDS


@pytest.mark.parametrize(("source", "calls"), [("sqs", 100), ("kinesis", 20)])
def test_counter_from_sqs_and_kinesis(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch, source: str, calls: int
) -> None:
    client = create_table("counters", "pk")
    handler = handler_of("counter", monkeypatch, COUNTER_TABLE="counters", GROUP_ATTRIBUTE="status")

    for event in delivered(insert_events(groups=10), source):
        assert handler(event, None) == {"batchItemFailures": []}

    # SQS: 10 markers + 10 groups per batch of 10, one transaction; Kinesis as the stream.
    assert counter.calls == {"dynamodb.TransactWriteItems": calls}
    assert counter.sends == counter.calls
    counts = {
        item["pk"]["S"]: int(item["count"]["N"])
        for item in scan_all(client, "counters")
        if "count" in item
    }
    assert counts == {f"STATUS-{g}": 100 for g in range(10)}


@pytest.mark.parametrize("source", SOURCES)
def test_replicator_from_sqs_and_kinesis_makes_one_conditional_write_per_record(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    client = create_table("orders-copy", "orderId")
    handler = handler_of("replicator", monkeypatch, TARGET_TABLE="orders-copy")

    for event in delivered(stream_events(), source):
        assert handler(event, None) == {"batchItemFailures": []}

    assert counter.calls == {"dynamodb.PutItem": RECORDS}
    assert counter.sends == counter.calls
    assert len(scan_all(client, "orders-copy")) == RECORDS


@pytest.mark.parametrize(("source", "requests"), [("sqs", 100), ("kinesis", 10)])
def test_indexer_from_sqs_and_kinesis_sends_one_bulk_request_per_batch(
    counter: RequestCounter,
    bulk_server: BulkServer,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    requests: int,
) -> None:
    host, port = bulk_server.server_address[:2]
    handler = handler_of(
        "indexer",
        monkeypatch,
        SEARCH_ENDPOINT=f"http://{host}:{port}",
        INDEX_NAME="orders",
        AWS_REGION=REGION,
        ID_ATTRIBUTES='["orderId"]',
    )

    for event in delivered(stream_events(), source):
        assert handler(event, None) == {"batchItemFailures": []}

    assert bulk_server.requests == {"POST /orders/_bulk": requests}
    assert bulk_server.documents == RECORDS
    assert counter.calls == {}
