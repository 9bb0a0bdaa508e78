"""Each pattern stays exactly as correct behind SQS (the SNS fan-out) and on Kinesis.

SQS redelivers, reorders, re-forms batches and (when the router retries a publish)
carries one change in two messages; Kinesis duplicates records, orders them only per
partition key and has no DynamoDB ``SequenceNumber``. Each pattern is driven with such
deliveries (moto's S3 and DynamoDB, the local OpenSearch stand-in) and must end in the
state one in-order delivery gives.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddb_stream_patterns.local.opensearch import FakeOpenSearch
from ddb_stream_runtime.archiver import Archiver, ArchiverConfig
from ddb_stream_runtime.counter import MARKER_RETENTION_BY_SOURCE, CounterConfig, GroupCounter
from ddb_stream_runtime.indexer import IndexerConfig, SearchIndexer
from ddb_stream_runtime.replicator import Replicator, ReplicatorConfig
from tests.runtime.sources import (
    as_kinesis,
    as_sqs,
    kinesis_record,
    sqs_message,
    to_kinesis_change,
)
from tests.runtime.test_counter import (  # the counter's moto table and its helpers
    Table,
    copy_tables_once_per_transaction,
)
from tests.runtime.test_indexer import CREDENTIALS, direct_opener

REGION = "us-east-1"
BUCKET = "sessions-archive"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tasks/stream/2024-06-10T19:26:16.525"
OK: dict[str, Any] = {"batchItemFailures": []}
T0 = 1_718_049_976  # seconds


def failures(*identifiers: str) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in identifiers]}


def ids_of(event: dict[str, Any]) -> list[str]:
    return [
        r["messageId"] if "messageId" in r else r["kinesis"]["sequenceNumber"]
        for r in event["Records"]
    ]


# --- a history of changes, as the table's stream records it --------------------------------


def stream_record(
    n: int,
    event_name: str,
    task: str,
    *,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    ttl: bool = False,
) -> dict[str, Any]:
    """Change number ``n`` (stream order) of ``task``: images as DynamoDB JSON."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": T0 + n,
        "Keys": {"TaskId": {"S": task}},
        "SequenceNumber": str(400000000032021070652 + n * 10**6),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    record: dict[str, Any] = {
        "eventID": f"evt-{n}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "eventSourceARN": STREAM_ARN,
        "dynamodb": dynamodb,
    }
    if ttl:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def image(task: str, group: str, rev: int) -> dict[str, Any]:
    return {"TaskId": {"S": task}, "ListId": {"S": group}, "rev": {"N": str(rev)}}


def history(steps: list[tuple[str, str | None]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stream records for ``(task, group or None=deleted)`` steps, and the final items."""
    current: dict[str, dict[str, Any]] = {}
    records = []
    for n, (task, group) in enumerate(steps, start=1):
        old = current.get(task)
        if group is None:
            if old is None:
                continue  # nothing to delete
            records.append(stream_record(n, "REMOVE", task, old=old))
            del current[task]
            continue
        new = image(task, group, n)
        records.append(stream_record(n, "MODIFY" if old else "INSERT", task, new=new, old=old))
        current[task] = new
    return records, current


def sqs_deliveries(
    records: list[dict[str, Any]], rnd: random.Random, *, envelope: bool = False
) -> list[dict[str, Any]]:
    """SQS events: every record at least once, some twice (a redelivery keeps its messageId,
    a router re-publish gets a new one), shuffled, in batches of 1 to 10."""
    messages = []
    for record in records:
        message = sqs_message(record, envelope=envelope)
        messages.append(message)
        roll = rnd.random()
        if roll < 0.25:
            messages.append(dict(message, attributes={**message["attributes"]}))  # redelivery
        elif roll < 0.4:
            messages.append(sqs_message(record, envelope=not envelope))  # re-published
    rnd.shuffle(messages)
    events = []
    while messages:
        size = rnd.randint(1, 10)
        events.append({"Records": messages[:size]})
        messages = messages[size:]
    return events


def kinesis_deliveries(
    records: list[dict[str, Any]], rnd: random.Random, *, micros: bool = True
) -> list[dict[str, Any]]:
    """Kinesis events: duplicates (same change, another eventID and sequence number),
    spread over two shards whose batches interleave in any order."""
    shards: dict[str, list[dict[str, Any]]] = {
        "shardId-000000000001": [],
        "shardId-000000000002": [],
    }
    for record in records:
        created = record["dynamodb"]["ApproximateCreationDateTime"]
        change = to_kinesis_change(record, micros=created * 1_000_000 if micros else None)
        copies = [change]
        if rnd.random() < 0.3:
            copies.append(dict(change, eventID=f"dup-{rnd.random()}"))
        for copy_ in copies:
            shard = rnd.choice(sorted(shards))
            shards[shard].append(kinesis_record(copy_, shard=shard))
    events = []
    for shard_records in shards.values():
        rnd.shuffle(shard_records)  # "may appear in a different sequence" (kds)
        while shard_records:
            size = rnd.randint(1, 10)
            events.append({"Records": shard_records[:size]})
            shard_records = shard_records[size:]
    rnd.shuffle(events)
    return events


steps_strategy = st.lists(
    st.tuples(st.sampled_from(["t1", "t2", "t3"]), st.sampled_from(["a", "b", None])),
    min_size=1,
    max_size=10,
)


# --- archiver ---------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        # Versioned: an overwrite would leave a second (noncurrent) copy.
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def object_versions(client: Any) -> list[dict[str, Any]]:
    return client.list_object_versions(Bucket=BUCKET).get("Versions", [])


def archived_lines(client: Any) -> list[dict[str, Any]]:
    lines = []
    for version in object_versions(client):
        body = client.get_object(Bucket=BUCKET, Key=version["Key"])["Body"].read()
        lines += [json.loads(line) for line in gzip.decompress(body).splitlines()]
    return lines


def expiries(count: int) -> list[dict[str, Any]]:
    return [
        stream_record(n, "REMOVE", f"s{n}", old=image(f"s{n}", "x", n), ttl=True)
        for n in range(1, count + 1)
    ]


def test_sqs_redelivery_and_reformed_batches_never_write_a_second_copy(s3: Any) -> None:
    archiver = Archiver(ArchiverConfig(bucket=BUCKET), s3_client=s3)
    r1, r2, r3 = expiries(3)
    first = as_sqs([r1, r2, r3])
    assert archiver.archive(first) == OK
    assert len(object_versions(s3)) == 3  # one object per record
    # A redelivery of r2 alone, a batch of another composition, a router re-publish
    # in an SNS envelope (a new messageId, the same record).
    assert archiver.archive({"Records": [first["Records"][1]]}) == OK
    assert archiver.archive(as_sqs([r3, r1], envelope=True)) == OK
    versions = object_versions(s3)
    assert len(versions) == 3  # still one version each: the conditional put refused rewrites
    assert sorted(line["sequenceNumber"] for line in archived_lines(s3)) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in (r1, r2, r3)
    )
    assert {v["Key"] for v in versions} == {
        f"archive/tasks/dt=2024-06-10/evt-{n}.json.gz" for n in (1, 2, 3)
    }


def test_kinesis_duplicates_write_one_object(s3: Any) -> None:
    archiver = Archiver(ArchiverConfig(bucket=BUCKET), s3_client=s3)
    [record] = expiries(1)
    change = to_kinesis_change(record, micros=(T0 + 1) * 1_000_000 + 7)
    duplicate = dict(change, eventID="another-event-id")
    assert archiver.archive(as_kinesis([change, duplicate])) == OK
    assert archiver.archive(as_kinesis([duplicate], shard="shardId-000000000009")) == OK
    [line] = archived_lines(s3)
    assert line["ttlExpiry"] is True and line["sequenceNumber"] is None
    assert line["approximateCreationTime"] == "2024-06-10T20:06:17.000Z"
    assert line["oldImage"] == record["dynamodb"]["OldImage"]


class FlakyS3:
    """put_object fails for the keys given; records what was put."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.puts: list[str] = []

    def put_object(self, **params: Any) -> None:
        if any(key in params["Key"] for key in self.failing):
            raise RuntimeError("S3 said no")
        assert params["IfNoneMatch"] == "*"
        self.puts.append(params["Key"])


def test_sqs_put_failure_reports_only_that_message() -> None:
    s3 = FlakyS3({"evt-2"})
    event = as_sqs(expiries(3))
    response = Archiver(ArchiverConfig(bucket=BUCKET), s3_client=s3).archive(event)
    assert sorted(s3.puts) == [f"archive/tasks/dt=2024-06-10/evt-{n}.json.gz" for n in (1, 3)]
    assert response == failures(ids_of(event)[1])


def test_kinesis_put_failure_reports_the_earliest_sequence_number() -> None:
    s3 = FlakyS3({"sha256-"})  # every Kinesis record's key
    event = as_kinesis([to_kinesis_change(r) for r in expiries(3)])
    response = Archiver(ArchiverConfig(bucket=BUCKET), s3_client=s3).archive(event)
    assert response == failures(ids_of(event)[0])  # Lambda checkpoints there, re-sends all


def test_fifo_malformed_message_reports_it_and_every_later_one(s3: Any) -> None:
    records = expiries(3)
    records[1] = stream_record(2, "INSERT", "s2", new=image("s2", "x", 2))  # not a REMOVE
    event = as_sqs(records, fifo=True)
    response = Archiver(ArchiverConfig(bucket=BUCKET), s3_client=s3).archive(event)
    # Per record, so s1 and s3 are archived; FIFO reports the failure and all after it.
    assert response == failures(*ids_of(event)[1:])
    assert len(object_versions(s3)) == 2


def test_stream_keeps_one_object_per_batch_unless_record_layout(s3: Any) -> None:
    event = {"Records": expiries(3)}
    assert Archiver(ArchiverConfig(bucket=BUCKET), s3_client=s3).archive(event) == OK
    assert [v["Key"] for v in object_versions(s3)] == [
        "archive/tasks/dt=2024-06-10/400000000032021070652000001-400000000032021070652000003"
        ".jsonl.gz".replace(
            "400000000032021070652000001", str(400000000032021070652 + 10**6)
        ).replace("400000000032021070652000003", str(400000000032021070652 + 3 * 10**6))
    ]
    per_record = Archiver(ArchiverConfig(bucket=BUCKET, layout="record"), s3_client=s3)
    assert per_record.archive(event) == OK
    assert per_record.archive({"Records": event["Records"][1:]}) == OK  # bisected retry
    assert len(object_versions(s3)) == 1 + 3


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(count=st.integers(1, 12), seed=st.integers(0, 2**32))
def test_any_sqs_delivery_archives_each_record_exactly_once(s3: Any, count: int, seed: int) -> None:
    for version in object_versions(s3):
        s3.delete_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
    archiver = Archiver(ArchiverConfig(bucket=BUCKET), s3_client=s3)
    records = expiries(count)
    for event in sqs_deliveries(records, random.Random(seed)):
        assert archiver.archive(event) == OK
    assert sorted(line["sequenceNumber"] for line in archived_lines(s3)) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in records
    )


# --- counter ------------------------------------------------------------------------------------


@pytest.fixture
def counts_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Table]:
    copy_tables_once_per_transaction(monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName="counts",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Table(client)


def expected_counts(final: dict[str, Any]) -> dict[str, tuple[int, Any]]:
    out: dict[str, list[int]] = {}
    for item in final.values():
        out.setdefault(item["ListId"]["S"], [0])[0] += 1
    return {group: (n[0], None) for group, n in out.items()}


def reset(table: Table) -> None:
    for item in table.items():
        table.client.delete_item(TableName="counts", Key={"pk": item["pk"]})


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps_strategy, seed=st.integers(0, 2**32), source=st.sampled_from(["sqs", "kinesis"]))
def test_counts_stay_exact_under_any_delivery(
    counts_table: Table, steps: list[tuple[str, str | None]], seed: int, source: str
) -> None:
    reset(counts_table)
    counter = GroupCounter(CounterConfig("counts", "ListId"), dynamodb_client=counts_table.client)
    records, final = history(steps)
    rnd = random.Random(seed)
    deliveries = (
        sqs_deliveries(records, rnd) if source == "sqs" else kinesis_deliveries(records, rnd)
    )
    for event in deliveries:
        assert counter.count(event) == OK
    counts = {g: c for g, c in counts_table.counts().items() if c[0] != 0}
    assert counts == expected_counts(final)


def test_kinesis_duplicate_with_another_event_id_counts_once(counts_table: Table) -> None:
    counter = GroupCounter(CounterConfig("counts", "ListId"), dynamodb_client=counts_table.client)
    insert = stream_record(1, "INSERT", "t1", new=image("t1", "a", 1))
    change = to_kinesis_change(insert)
    assert counter.count(as_kinesis([change])) == OK
    assert counter.count(as_kinesis([dict(change, eventID="a-duplicate")])) == OK
    assert counts_table.counts() == {"a": (1, None)}
    [marker] = counts_table.markers()
    assert marker.startswith("sha256:")


def test_markers_outlive_each_sources_redelivery_window(counts_table: Table) -> None:
    counter = GroupCounter(CounterConfig("counts", "ListId"), dynamodb_client=counts_table.client)
    insert = stream_record(1, "INSERT", "t1", new=image("t1", "a", 1))
    kinesis = to_kinesis_change(dict(insert, eventID="k"), micros=(T0 + 1) * 1_000_000 + 999)
    assert counter.count(as_sqs([dict(insert, eventID="q")])) == OK
    assert counter.count(as_kinesis([kinesis])) == OK
    expiry = {
        item["pk"]["S"]: int(item["expiresAt"]["N"])
        for item in counts_table.items()
        if "expiresAt" in item
    }
    created = T0 + 1
    assert expiry["__applied__#q"] == created + MARKER_RETENTION_BY_SOURCE["aws:sqs"]
    [kinesis_marker] = [k for k in expiry if k.startswith("__applied__#sha256:")]
    assert expiry[kinesis_marker] == created + MARKER_RETENTION_BY_SOURCE["aws:kinesis"]
    assert MARKER_RETENTION_BY_SOURCE["aws:sqs"] > 14 * 24 * 3600  # SQS keeps 14 days at most


def test_counter_fifo_failure_reports_from_the_failed_sub_batch(counts_table: Table) -> None:
    counter = GroupCounter(CounterConfig("counts", "ListId"), dynamodb_client=counts_table.client)
    good = stream_record(1, "INSERT", "t1", new=image("t1", "a", 1))
    bad = stream_record(2, "MODIFY", "t1", new=image("t1", "b", 2))  # no OldImage: malformed
    later = stream_record(3, "INSERT", "t2", new=image("t2", "a", 3))
    event = as_sqs([good, bad, later], fifo=True)
    assert counter.count(event) == failures(*ids_of(event)[1:])
    assert counts_table.counts() == {"a": (1, None)}


# --- replicator ---------------------------------------------------------------------------------


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName="replica",
            KeySchema=[{"AttributeName": "TaskId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "TaskId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def live_items(client: Any) -> dict[str, dict[str, Any]]:
    """The target's items that are not tombstones, without the version attribute."""
    out = {}
    for item in client.scan(TableName="replica")["Items"]:
        if "_deleted" in item:
            continue
        item.pop("_streamSequence")
        out[item["TaskId"]["S"]] = item
    return out


def clear(client: Any) -> None:
    for item in client.scan(TableName="replica")["Items"]:
        client.delete_item(TableName="replica", Key={"TaskId": item["TaskId"]})


def test_sqs_late_insert_after_the_remove_does_not_resurrect(dynamodb: Any) -> None:
    replicator = Replicator(ReplicatorConfig("replica"), dynamodb_client=dynamodb)
    records, final = history([("t1", "a"), ("t1", "b"), ("t1", None)])
    insert, modify, remove = records
    assert replicator.replicate(as_sqs([remove])) == OK
    assert replicator.replicate(as_sqs([modify, insert])) == OK  # late, reordered
    assert live_items(dynamodb) == final == {}
    [tombstone] = dynamodb.scan(TableName="replica")["Items"]
    assert tombstone["_deleted"] == {"BOOL": True}
    # A newer change replaces the tombstone.
    again = stream_record(9, "INSERT", "t1", new=image("t1", "c", 9))
    assert replicator.replicate(as_sqs([again])) == OK
    assert live_items(dynamodb) == {"t1": image("t1", "c", 9)}


def test_stream_and_fifo_deletes_stay_plain_deletes(dynamodb: Any) -> None:
    replicator = Replicator(ReplicatorConfig("replica"), dynamodb_client=dynamodb)
    records, _ = history([("t1", "a"), ("t1", None), ("t2", "a"), ("t2", None)])
    assert replicator.replicate({"Records": records[:2]}) == OK
    assert replicator.replicate(as_sqs(records[2:], fifo=True)) == OK
    assert dynamodb.scan(TableName="replica")["Items"] == []


def test_kinesis_out_of_order_across_shards_keeps_the_newest(dynamodb: Any) -> None:
    replicator = Replicator(ReplicatorConfig("replica"), dynamodb_client=dynamodb)
    records, final = history([("t1", "a"), ("t1", "b"), ("t1", "c")])
    changes = [to_kinesis_change(r) for r in records]  # millisecond timestamps
    assert replicator.replicate(as_kinesis([changes[2]], shard="shardId-000000000002")) == OK
    assert replicator.replicate(as_kinesis([changes[0], changes[1]])) == OK
    assert replicator.replicate(as_kinesis([dict(changes[1], eventID="dup")])) == OK
    assert live_items(dynamodb) == final
    [item] = dynamodb.scan(TableName="replica")["Items"]
    assert item["_streamSequence"]["S"].startswith(f"k{(T0 + 3) * 1000 * 1000:017d}.")


def test_kinesis_same_millisecond_changes_are_ordered_by_the_tiebreak(dynamodb: Any) -> None:
    replicator = Replicator(ReplicatorConfig("replica"), dynamodb_client=dynamodb)
    records, final = history([("t1", "a"), ("t1", "b")])
    first, second = (
        dict(
            to_kinesis_change(r),
            dynamodb=dict(
                to_kinesis_change(r)["dynamodb"], ApproximateCreationDateTime=1718049976512
            ),
        )
        for r in records
    )  # noqa: E501
    event = {
        "Records": [
            kinesis_record(first, sequence_number="100"),
            kinesis_record(second, sequence_number="101"),
        ]
    }  # noqa: E501
    assert replicator.replicate({"Records": event["Records"][::-1]}) == OK
    assert live_items(dynamodb) == final


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps_strategy, seed=st.integers(0, 2**32), source=st.sampled_from(["sqs", "kinesis"]))
def test_any_delivery_converges_to_the_source_table(
    dynamodb: Any, steps: list[tuple[str, str | None]], seed: int, source: str
) -> None:
    clear(dynamodb)
    replicator = Replicator(ReplicatorConfig("replica"), dynamodb_client=dynamodb)
    records, final = history(steps)
    rnd = random.Random(seed)
    deliveries = (
        sqs_deliveries(records, rnd) if source == "sqs" else kinesis_deliveries(records, rnd)
    )
    for event in deliveries:
        assert replicator.replicate(event) == OK
    assert live_items(dynamodb) == final


# --- indexer -------------------------------------------------------------------------------------


@pytest.fixture
def search() -> Iterator[FakeOpenSearch]:
    with FakeOpenSearch() as server:
        yield server


def make_indexer(search: FakeOpenSearch) -> SearchIndexer:
    config = IndexerConfig(search.endpoint, "tasks", REGION, ("TaskId",))
    return SearchIndexer(
        config, client=config.client(credentials=CREDENTIALS, opener=direct_opener())
    )


@pytest.fixture
def indexer(search: FakeOpenSearch) -> SearchIndexer:
    return make_indexer(search)


def documents(search: FakeOpenSearch) -> dict[str, Any]:
    return {doc_id: doc.source for doc_id, doc in search.documents("tasks").items()}


def as_documents(final: dict[str, Any]) -> dict[str, Any]:
    return {
        task: {"TaskId": task, "ListId": item["ListId"]["S"], "rev": int(item["rev"]["N"])}
        for task, item in final.items()
    }


def test_kinesis_duplicates_and_reordering_keep_the_newest_document(
    search: FakeOpenSearch, indexer: SearchIndexer
) -> None:
    records, final = history([("t1", "a"), ("t1", "b"), ("t2", "a"), ("t1", "c")])
    changes = [to_kinesis_change(r, micros=(T0 + i) * 10**6 + i) for i, r in enumerate(records)]
    assert indexer.index_batch(as_kinesis([changes[3], changes[2]], shard="shardId-2")) == OK
    assert (
        indexer.index_batch(as_kinesis([changes[0], changes[1], dict(changes[1], eventID="x")]))
        == OK
    )  # noqa: E501
    assert documents(search) == as_documents(final)
    assert search.document("tasks", "t1").version == (T0 + 3) * 10**6 + 3  # type: ignore[union-attr]


@settings(max_examples=20, deadline=None)
@given(steps=steps_strategy, seed=st.integers(0, 2**32))
def test_any_kinesis_delivery_converges(steps: list[tuple[str, str | None]], seed: int) -> None:
    with FakeOpenSearch() as search:  # a fresh index (and delete tombstones) per example
        records, final = history(steps)
        indexer = make_indexer(search)
        for event in kinesis_deliveries(records, random.Random(seed)):
            assert indexer.index_batch(event) == OK
        assert documents(search) == as_documents(final)


def test_sqs_standard_reports_each_failed_item_fifo_reports_the_rest(
    search: FakeOpenSearch, indexer: SearchIndexer
) -> None:
    records, _ = history([("t1", "a"), ("t2", "a"), ("t3", "a")])
    search.fail_document("t2")
    standard = as_sqs(records)
    assert indexer.index_batch(standard) == failures(ids_of(standard)[1])
    assert set(documents(search)) == {"t1", "t3"}
    fifo = as_sqs(records, fifo=True)
    assert indexer.index_batch(fifo) == failures(*ids_of(fifo)[1:])


def test_sqs_late_older_record_keeps_the_newer_document(
    search: FakeOpenSearch, indexer: SearchIndexer
) -> None:
    records, final = history([("t1", "a"), ("t1", "b")])
    assert indexer.index_batch(as_sqs([records[1]])) == OK
    assert indexer.index_batch(as_sqs([records[0]], envelope=True)) == OK  # 409: stale
    assert documents(search) == as_documents(final)


# --- processor (ComplexController) ---------------------------------------------------------------


def test_processor_handler_still_reads_the_fan_out(sample_event: dict[str, Any]) -> None:
    from ddb_stream_runtime import sqs_record_handler

    seen = []
    handler = sqs_record_handler(lambda record: seen.append(record.sequence_number))
    assert handler(as_sqs(sample_event["Records"], envelope=True), None) == OK
    assert seen == ["111", "222", "333"]


def test_claim_checked_record_reaches_a_pattern(s3: Any) -> None:
    [record] = expiries(1)
    s3.put_object(Bucket=BUCKET, Key="claim-check/x.json", Body=json.dumps(record).encode())
    pointer = {
        "claimCheck": {"bucket": BUCKET, "key": "claim-check/x.json"},
        "eventName": "REMOVE",
        "keys": record["dynamodb"]["Keys"],
        "sequenceNumber": record["dynamodb"]["SequenceNumber"],
    }
    message = sqs_message(record)
    message["body"] = json.dumps(pointer)
    archiver = Archiver(ArchiverConfig(bucket=BUCKET, prefix="expired/"), s3_client=s3)
    assert archiver.archive({"Records": [message]}) == OK
    keys = [v["Key"] for v in object_versions(s3) if v["Key"].startswith("expired/")]
    assert keys == ["expired/tasks/dt=2024-06-10/evt-1.json.gz"]
    body = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    assert json.loads(gzip.GzipFile(fileobj=io.BytesIO(body)).read())["ttlExpiry"] is True


_ = Callable  # typing only


def test_reshaped_view_leaves_a_tombstone_where_a_key_moved_away_behind_sqs(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="by-group",
        KeySchema=[{"AttributeName": "group", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "group", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    def by_group(item: dict[str, Any]) -> dict[str, Any]:
        return {"group": item["ListId"], "task": item["TaskId"]}

    replicator = Replicator(
        ReplicatorConfig("by-group"), dynamodb_client=dynamodb, transform=by_group
    )
    records, _ = history([("t1", "a"), ("t1", "b")])  # the view's key moves from a to b
    insert, move = records
    assert replicator.replicate(as_sqs([move])) == OK
    assert replicator.replicate(as_sqs([insert])) == OK  # late: must not bring "a" back
    rows = {i["group"]["S"]: i for i in dynamodb.scan(TableName="by-group")["Items"]}
    assert set(rows) == {"a", "b"}
    assert rows["a"]["_deleted"] == {"BOOL": True} and "_deleted" not in rows["b"]
    assert rows["b"]["task"] == {"S": "t1"}


def test_sqs_tombstone_carries_its_expiry_and_a_live_item_never_does(dynamodb: Any) -> None:
    config = ReplicatorConfig("replica", tombstone_ttl_attribute="_tombstoneExpiresAt",
                              tombstone_retention_seconds=30 * 86_400)
    replicator = Replicator(config, dynamodb_client=dynamodb, clock=lambda: 1_800_000_000.5)
    records, _ = history([("t1", "a"), ("t1", None)])
    insert, remove = records
    assert replicator.replicate(as_sqs([remove, insert])) == OK  # reordered: the late insert
    [tombstone] = dynamodb.scan(TableName="replica")["Items"]
    assert tombstone["_deleted"] == {"BOOL": True}
    assert tombstone["_tombstoneExpiresAt"] == {"N": str(1_800_000_000 + 30 * 86_400)}
    again = stream_record(9, "INSERT", "t1", new=image("t1", "c", 9))
    assert replicator.replicate(as_sqs([again])) == OK
    [live] = dynamodb.scan(TableName="replica")["Items"]
    assert "_tombstoneExpiresAt" not in live and "_deleted" not in live


def test_fifo_and_stream_deletes_write_no_expiry_either(dynamodb: Any) -> None:
    config = ReplicatorConfig("replica", tombstone_ttl_attribute="_tombstoneExpiresAt",
                              tombstone_retention_seconds=60)
    replicator = Replicator(config, dynamodb_client=dynamodb)
    records, _ = history([("t1", "a"), ("t1", None), ("t2", "a"), ("t2", None)])
    assert replicator.replicate({"Records": records[:2]}) == OK
    assert replicator.replicate(as_sqs(records[2:], fifo=True)) == OK
    assert dynamodb.scan(TableName="replica")["Items"] == []  # deleted, not tombstoned


@pytest.mark.parametrize(("env", "message"), [
    ({"TOMBSTONE_TTL_ATTRIBUTE": "x"}, "tombstone_ttl_attribute and tombstone_retention_seconds "
                                       "go together, got tombstone_ttl_attribute='x', "
                                       "tombstone_retention_seconds=None"),
    ({"TOMBSTONE_RETENTION_SECONDS": "60"}, "go together"),
    ({"TOMBSTONE_TTL_ATTRIBUTE": "x", "TOMBSTONE_RETENTION_SECONDS": "soon"},
     "TOMBSTONE_RETENTION_SECONDS must be a whole number of seconds, got 'soon'"),
    ({"TOMBSTONE_TTL_ATTRIBUTE": "x", "TOMBSTONE_RETENTION_SECONDS": "0"},
     "tombstone_retention_seconds must be a whole number of seconds, at least 1, got 0"),
    ({"TOMBSTONE_TTL_ATTRIBUTE": "_deleted", "TOMBSTONE_RETENTION_SECONDS": "60"},
     "tombstone_ttl_attribute must be a non-empty string other than"),
])
def test_tombstone_expiry_configuration_is_checked(env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReplicatorConfig.from_env({"TARGET_TABLE": "replica", **env})
    ok = ReplicatorConfig.from_env({"TARGET_TABLE": "replica", "TOMBSTONE_TTL_ATTRIBUTE": "x",
                                    "TOMBSTONE_RETENTION_SECONDS": "60"})
    assert (ok.tombstone_ttl_attribute, ok.tombstone_retention_seconds) == ("x", 60)
