"""The fan-out path against the direct stream path, on the same writes, on the local cloud.

One table; its stream is read directly by an archiver, a counter, an indexer and a
replicator, and through a ``StreamFanOut`` by a second set of the same four. The fan-out
consumers run with forced redelivery (lost deletes, duplicate notifications, shuffled
batches: ``Pollers(sqs_redelivery_rate=...)``). Both sets must end with the same archive
records (each exactly once), the same counts, the same live replica rows and the same
indexed documents.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import pytest

from ddb_stream_patterns import (
    AggregateCounter,
    SearchIndexer,
    StreamFanOut,
    StreamTable,
    TableReplicator,
    TtlArchiver,
)
from ddb_stream_patterns.local.opensearch import FakeOpenSearch
from ddb_stream_patterns.local.pollers import Pollers, SqsPoller

LISTS, TASKS = 3, 6
MARKER_PREFIX = "__applied__#"


class TwoPaths(cdk.Stack):
    def __init__(self, scope, id, *, fifo: bool = False):
        super().__init__(scope, id)
        key = {
            "partition_key": dynamodb.Attribute(name="ListId", type=dynamodb.AttributeType.STRING),
            "sort_key": dynamodb.Attribute(name="TaskId", type=dynamodb.AttributeType.STRING),
        }
        self.table = StreamTable(self, "Tasks", time_to_live_attribute="expiresAt", **key)
        self.fan_out = StreamFanOut(self, "FanOut", table=self.table, fifo=fifo)
        self.paths = {}
        domain = None  # one domain for both indexers (the local stand-in is one host)
        for name, source in (("Direct", None), ("Fanned", self.fan_out)):
            replica = dynamodb.TableV2(self, f"{name}Replica", **key,
                                       removal_policy=cdk.RemovalPolicy.DESTROY)
            self.paths[name] = {
                "archiver": TtlArchiver(self, f"{name}Archive", table=self.table,
                                        source=source),
                "counter": AggregateCounter(self, f"{name}Count", table=self.table,
                                            group_attribute="ListId", sum_of="estimate",
                                            source=source),
                "indexer": SearchIndexer(self, f"{name}Search", table=self.table,
                                         index_name=name.lower(), source=source,
                                         domain=domain),
                "replicator": TableReplicator(self, f"{name}Replicate", table=self.table,
                                              target_table=replica, source=source),
                "replica": replica,
            }
            domain = self.paths[name]["indexer"].domain


def _key(i: int) -> dict:
    return {"ListId": {"S": f"list-{i % LISTS}"}, "TaskId": {"S": f"task-{i:02d}"}}


def write_changes(ddb, table: str) -> int:
    """Inserts, two rounds of updates, deletes, a delete then re-create, TTL expiries.
    Returns how many items were set to expire."""
    n = LISTS * TASKS
    expiring = {n - 1, n - 2}
    for i in range(n):
        item = {**_key(i), "estimate": {"N": str(i + 1)}, "status": {"S": "new"},
                "title": {"S": f"task {i}"}}
        if i in expiring:
            item["expiresAt"] = {"N": str(int(time.time()) - 3600)}
        ddb.put_item(TableName=table, Item=item)
    for rnd in (1, 2):  # the same items change twice: order matters
        for i in range(0, n - 2, 2):
            ddb.update_item(TableName=table, Key=_key(i),
                            UpdateExpression="SET estimate = :e, #s = :s",
                            ExpressionAttributeNames={"#s": "status"},
                            ExpressionAttributeValues={":e": {"N": str(10 * rnd + i)},
                                                       ":s": {"S": f"round-{rnd}"}})
    for i in (1, 3, 5):
        ddb.delete_item(TableName=table, Key=_key(i))
    ddb.put_item(TableName=table, Item={**_key(3), "estimate": {"N": "99"},
                                        "status": {"S": "back"}, "title": {"S": "again"}})
    return len(expiring)


def _expired_left(ddb, table: str) -> int:
    now = int(time.time())
    return sum(1 for i in ddb.scan(TableName=table)["Items"]
               if "expiresAt" in i and int(i["expiresAt"]["N"]) < now)


def run_to_the_end(cloud, deployment, pollers: Pollers, table: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    ddb = cloud.client("dynamodb")
    pollers.run_until_idle(timeout=timeout, wait_for_delayed=False)
    while _expired_left(ddb, table):  # DynamoDB Local's TTL sweep: about every 10 s
        assert time.monotonic() < deadline, "the TTL sweep did not expire the items in time"
        pollers.poll_once()
        time.sleep(0.5)
    pollers.run_until_idle(timeout=max(5.0, deadline - time.monotonic()),
                           wait_for_delayed=False)


def archived_lines(cloud, bucket: str) -> list[dict]:
    """Every archived record, from batch objects (JSON lines) and record objects alike."""
    s3 = cloud.client("s3")
    lines = []
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        lines.extend(json.loads(line) for line in body.decode().splitlines() if line.strip())
    return lines


def counts(cloud, table: str) -> dict:
    items = cloud.client("dynamodb").scan(TableName=table)["Items"]
    return {i["pk"]["S"]: {k: v["N"] for k, v in i.items() if "N" in v}
            for i in items if not i["pk"]["S"].startswith(MARKER_PREFIX)}


def replica_rows(cloud, table: str) -> tuple[dict, set]:
    """(live rows by key, keys of tombstones)."""
    items = cloud.client("dynamodb").scan(TableName=table)["Items"]
    live = {(i["ListId"]["S"], i["TaskId"]["S"]): i for i in items if "_deleted" not in i}
    dead = {(i["ListId"]["S"], i["TaskId"]["S"]) for i in items if "_deleted" in i}
    return live, dead


def deploy_two_paths(local_cloud, deploy_app, search: FakeOpenSearch, *, fifo: bool = False):
    stack = TwoPaths(cdk.App(), "FanOutFifo" if fifo else "TwoPaths", fifo=fifo)
    host = search.endpoint.split("://", 1)[1]
    deployment = deploy_app(
        stack.node.root,
        stand_ins={"AWS::OpenSearchService::Domain": {"DomainEndpoint": host}})
    for function in deployment.functions.values():  # the stand-in speaks plain http
        if function.environment.get("SEARCH_ENDPOINT") == f"https://{host}":
            function.environment["SEARCH_ENDPOINT"] = search.endpoint
    return stack, deployment


def compare_paths(local_cloud, stack, deployment, search, expired: int) -> dict:
    """Assert that both paths hold the same results; return what the direct path holds."""
    physical = {name: {part: deployment.by_path(path).physical_id for part, path in (
        ("bucket", p["archiver"].bucket.node.path),
        ("counts", f"{p['counter'].node.path}/CounterTable"),
        ("replica", p["replica"].node.path),
    )} for name, p in stack.paths.items()}

    # Archive: the same records, each exactly once (by sequence number: eventID's twin).
    direct, fanned = (archived_lines(local_cloud, physical[n]["bucket"])
                      for n in ("Direct", "Fanned"))
    assert len(direct) == expired  # the thing under test happened: TTL expiries archived
    for lines in (direct, fanned):
        repeated = [s for s, c in Counter(r["sequenceNumber"] for r in lines).items() if c > 1]
        assert repeated == [], f"archived twice: {repeated}"
    by_seq = lambda lines: {r["sequenceNumber"]: r for r in lines}  # noqa: E731
    assert by_seq(fanned) == by_seq(direct)

    # Counts: every list, its count and sum.
    direct_counts = counts(local_cloud, physical["Direct"]["counts"])
    assert set(direct_counts) == {f"list-{g}" for g in range(LISTS)}
    assert counts(local_cloud, physical["Fanned"]["counts"]) == direct_counts

    # Replica: the same live rows (tombstones apart), and no deleted item alive.
    direct_live, _ = replica_rows(local_cloud, physical["Direct"]["replica"])
    fanned_live, _ = replica_rows(local_cloud, physical["Fanned"]["replica"])
    assert len(direct_live) == LISTS * TASKS - 2 - expired  # 2 of 3 deletes stay deleted
    assert fanned_live == direct_live

    # Indexed documents: the same ids, sources and versions.
    direct_docs = search.documents("direct")
    assert len(direct_docs) == len(direct_live)
    fanned_docs = search.documents("fanned")
    assert {k: (d.source, d.version) for k, d in fanned_docs.items()} == \
        {k: (d.source, d.version) for k, d in direct_docs.items()}
    return {"replica": physical["Fanned"]["replica"]}


@pytest.fixture
def search():
    with FakeOpenSearch() as server:
        yield server


def test_fan_out_under_forced_redelivery_ends_like_the_direct_path(local_cloud, deploy_app,
                                                                   search):
    stack, deployment = deploy_two_paths(local_cloud, deploy_app, search)
    table = deployment.by_path(stack.table.node.path).physical_id
    expired = write_changes(local_cloud.client("dynamodb"), table)

    pollers = Pollers(deployment.mappings, local_cloud.client, sqs_redelivery_rate=0.4, seed=14)
    run_to_the_end(local_cloud, deployment, pollers, table)

    # Forced redelivery happened, of both kinds, on the fan-out consumers only.
    sqs_pollers = [p for p in pollers.pollers.values() if isinstance(p, SqsPoller)]
    assert len(sqs_pollers) == 4
    forced = Counter()
    for p in sqs_pollers:
        forced.update(p.redelivered)
    assert forced["undeleted"] >= 5 and forced["resent"] >= 5, forced
    fanned_in = sum(p.stats.records_in for p in sqs_pollers)
    fanned_ok = sum(p.stats.succeeded for p in sqs_pollers)
    dropped = sum(p.stats.filtered_out for p in sqs_pollers)
    assert fanned_in == fanned_ok + dropped and fanned_ok > 0
    assert all(p.stats.errors == 0 for p in pollers.pollers.values())

    out = compare_paths(local_cloud, stack, deployment, search, expired)
    # The standard queue reorders: the fan-out replica keeps a tombstone for each delete
    # and expiry (task-03 was re-created after its delete: alive again).
    _, dead = replica_rows(local_cloud, out["replica"])
    assert dead == {("list-1", "task-01"), ("list-2", "task-05"),
                    ("list-1", "task-16"), ("list-2", "task-17")}
    # Each tombstone expires (30 days after its write) on the TTL the replicator enabled.
    ddb = local_cloud.client("dynamodb")
    ttl = ddb.describe_time_to_live(TableName=out["replica"])["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "_tombstoneExpiresAt")
    now = time.time()
    for item in ddb.scan(TableName=out["replica"])["Items"]:
        if "_deleted" in item:
            expires = int(item["_tombstoneExpiresAt"]["N"])
            assert 29 * 86_400 < expires - now <= 30 * 86_400
        else:
            assert "_tombstoneExpiresAt" not in item


def test_fifo_fan_out_runs_end_to_end_and_deletes_stay_deletes(local_cloud, deploy_app, search):
    stack, deployment = deploy_two_paths(local_cloud, deploy_app, search, fifo=True)
    sns, sqs = local_cloud.client("sns"), local_cloud.client("sqs")
    # Deployed as FIFO: the topic and every consumer queue.
    topic = deployment.by_path(stack.fan_out.topic.node.path).physical_id
    assert topic.endswith(".fifo")
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["FifoTopic"] == "true"
    queues = [m.queue_url for m in deployment.mappings if m.kind == "sqs"]
    assert len(queues) == 4 and all(q.endswith(".fifo") for q in queues)

    table = deployment.by_path(stack.table.node.path).physical_id
    expired = write_changes(local_cloud.client("dynamodb"), table)
    groups: list[str] = []
    archive_queue = next(q for q in queues if "FannedArchive" in q)
    pollers = Pollers(deployment.mappings, local_cloud.client, sqs_redelivery_rate=0.3, seed=4)
    # The message group is the item's key: peek at one queue before it is consumed.
    sqs_poller = next(p for p in pollers.pollers.values()
                      if isinstance(p, SqsPoller) and p.queue_url == archive_queue)
    receive = sqs_poller._receive

    def spy():
        messages = receive()
        groups.extend(m["Attributes"]["MessageGroupId"] for m in messages)
        return messages

    sqs_poller._receive = spy
    run_to_the_end(local_cloud, deployment, pollers, table)

    assert sum(p.redelivered["undeleted"] for p in pollers.pollers.values()
               if isinstance(p, SqsPoller)) > 0
    assert len(set(groups)) == expired  # one group per expired item
    out = compare_paths(local_cloud, stack, deployment, search, expired)
    # Per-item order holds on FIFO: the replicator deletes, no tombstones are left.
    live, dead = replica_rows(local_cloud, out["replica"])
    assert dead == set() and len(live) == LISTS * TASKS - 2 - expired
    assert sqs.get_queue_attributes(QueueUrl=archive_queue, AttributeNames=["FifoQueue"])[
        "Attributes"]["FifoQueue"] == "true"
