"""The KinesisPatterns example on the local cloud, IAM enforced, under forced duplicates: the
same counts, replica rows and archived items as the same patterns on the table's stream,
on the same writes."""

from __future__ import annotations

import gzip
import json
import time
from decimal import Decimal

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_

from ddb_stream_patterns import AggregateCounter, StreamTable, TableReplicator, TtlArchiver
from ddb_stream_patterns.local import kinesis as local_kinesis
from ddb_stream_patterns.local.pollers import Pollers
from ddb_stream_patterns.local.runner import _expired_left, write_samples
from ddb_stream_runtime.counter import MARKER_PREFIX
from tests.examples.conftest import load_module
from tests.support import REPO

ITEMS = 12  # inserted; 6 modified, 3 deleted by users, 3 expired by TTL
DUPLICATE_RATE = 0.5
EXAMPLE = load_module(REPO / "examples" / "app.py", "example_app_for_kinesis")
KEY = {
    "partition_key": dynamodb.Attribute(name="ListId", type=dynamodb.AttributeType.STRING),
    "sort_key": dynamodb.Attribute(name="TaskId", type=dynamodb.AttributeType.STRING),
}


class StreamReference(cdk.Stack):
    """The example's three patterns, as configured there, on the table's own stream."""

    def __init__(self, scope, id):
        super().__init__(scope, id)
        self.table = StreamTable(self, "TodoListTask", time_to_live_attribute="expiresAt", **KEY)
        self.counter = AggregateCounter(self, "TaskCountPerList", table=self.table,
                                        group_attribute="ListId", sum_of="estimate")
        self.reporting_table = StreamTable(self, "TaskReport", **KEY)
        self.replicator = TableReplicator(
            self, "TaskReporting", table=self.table, target_table=self.reporting_table,
            transform="transform:to_report_row",
            transform_code=lambda_.Code.from_asset(str(REPO / "examples" / "handlers" / "reporting")))
        self.archiver = TtlArchiver(self, "ExpiredTasks", table=self.table)
        cdk.Annotations.of(self).acknowledge_warning(
            "ddb-stream-patterns:stream-readers", "a local reference: three readers are fine here")


def _counts(ddb, table: str) -> dict:
    return {i["pk"]["S"]: {k: Decimal(v["N"]) for k, v in i.items() if "N" in v and k != "expiresAt"}
            for i in ddb.scan(TableName=table)["Items"] if not i["pk"]["S"].startswith(MARKER_PREFIX)}


def _rows(ddb, table: str, version: str = "_streamSequence") -> dict:
    """Replica rows by key, without the version attribute (its form differs per source) and
    without tombstones (the Kinesis path keeps them for deleted items)."""
    rows = {}
    for item in ddb.scan(TableName=table)["Items"]:
        if "_deleted" in item:
            continue
        rows[(item["ListId"]["S"], item["TaskId"]["S"])] = {
            k: v for k, v in item.items() if k != version}
    return rows


def _archive(s3, bucket: str) -> tuple[int, dict]:
    """(objects, archived old image by item key) of an archive bucket."""
    objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    archived: dict = {}
    for o in objects:
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for line in body.decode().splitlines():
            record = json.loads(line)
            key = json.dumps(record["keys"], sort_keys=True)
            assert key not in archived, f"archived twice: {key}"
            # The expiry time is the write's clock minus an hour: the two tables' copies
            # can be a second apart, so it is checked for being past, not compared.
            image = dict(record["oldImage"])
            assert int(image.pop("expiresAt")["N"]) < time.time(), image
            archived[key] = (record["eventName"], record["ttlExpiry"], image)
    return len(objects), archived


def test_kinesis_example_matches_the_stream_path_under_duplicates(local_cloud, deploy_app):
    started = time.monotonic()
    app = cdk.App()
    kinesis_stack = EXAMPLE.KinesisPatternsStack(app, "KinEx")
    reference = StreamReference(app, "StreamRef")
    deployment = deploy_app(app)
    assert local_cloud.enforce_iam
    assert {r.type for r in deployment.resources if r.status == "deployed"} >= {
        "AWS::Kinesis::Stream", "AWS::Kinesis::StreamConsumer"}
    deployment.start_functions()
    ddb, s3 = local_cloud.client("dynamodb"), local_cloud.client("s3")
    source = deployment.by_path("KinEx/TodoListTask").physical_id
    [feeder] = [f for name, f in local_kinesis.feeders(deployment).items() if name == source]
    feeder.duplicate_rate = DUPLICATE_RATE  # forced duplicates, as Kinesis may deliver
    writes = [write_samples(local_cloud, t, ITEMS) for t in (
        source, deployment.by_path("StreamRef/TodoListTask").physical_id)]
    assert all((w.inserted, w.deleted, w.expiring) == (ITEMS, 3, 3) for w in writes)

    pollers = Pollers(deployment.mappings, local_cloud.client)
    pollers.run_until_idle(timeout=30, wait_for_delayed=False)
    deadline = time.monotonic() + 40  # DynamoDB Local's TTL sweep runs about every 10 s
    while time.monotonic() < deadline and any(_expired_left(local_cloud, w) for w in writes):
        pollers.poll_once()
        time.sleep(0.5)
    pollers.run_until_idle(timeout=30, wait_for_delayed=False)
    elapsed = time.monotonic() - started

    assert feeder.duplicates > 0 and feeder.written == feeder.duplicates + sum(
        (w.inserted + w.modified + w.deleted + w.expiring) for w in writes[:1])
    # Every Kinesis consumer read every record, duplicates included; none failed.
    for pattern in (kinesis_stack.counter, kinesis_stack.replicator, kinesis_stack.archiver):
        stats = deployment.stats_of(pattern.function)
        assert stats.records_in == feeder.written, pattern.node.path
        assert stats.sent_to_failure_destination == 0 and stats.errors == 0, pattern.node.path
    # The reference read each change once, in stream order.
    reference_counter = deployment.stats_of(reference.counter.function)
    assert reference_counter.records_in == feeder.written - feeder.duplicates
    for name, fn in deployment.functions.items():
        assert fn.denied == 0, (name, fn.last_denied)  # IAM allowed every call

    # Counts (and sums): exact despite the duplicates, equal to the stream path's.
    kin_counts = _counts(ddb, deployment.by_path("KinEx/TaskCountPerList/CounterTable").physical_id)
    ref_counts = _counts(ddb, deployment.by_path("StreamRef/TaskCountPerList/CounterTable").physical_id)
    assert kin_counts == ref_counts and {k: v["count"] for k, v in kin_counts.items()} == {
        f"list-{i}": Decimal(2) for i in range(3)}
    # Replica rows, tombstones aside: the same rows.
    kin_rows = _rows(ddb, deployment.by_path("KinEx/TaskReport").physical_id)
    ref_rows = _rows(ddb, deployment.by_path("StreamRef/TaskReport").physical_id)
    assert kin_rows == ref_rows and len(kin_rows) == ITEMS - 6
    # Archives: the same expired items, each archived once (one object per record on Kinesis).
    kin_bucket = deployment.by_path("KinEx/ExpiredTasks/ArchiveBucket").physical_id
    ref_bucket = deployment.by_path("StreamRef/ExpiredTasks/ArchiveBucket").physical_id
    kin_objects, kin_archive = _archive(s3, kin_bucket)
    _, ref_archive = _archive(s3, ref_bucket)
    assert len(kin_archive) == 3 and kin_objects == 3
    assert kin_archive == ref_archive
    assert {(e, ttl) for e, ttl, _ in kin_archive.values()} == {("REMOVE", True)}
    print(f"\nKinesisPatterns locally: {ITEMS} items -> {feeder.written - feeder.duplicates} "
          f"changes, {feeder.duplicates} forced duplicates, {elapsed:.1f} s")
    assert elapsed < 60
