"""Counter: per-group counts and sums, exactly once (moto's DynamoDB, real transactions)."""

from __future__ import annotations

import doctest
import json
import logging
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ddb_stream_runtime.counter as counter_module
from ddb_stream_runtime import StreamRecord
from ddb_stream_runtime.counter import (
    MARKER_PREFIX,
    MARKER_TTL_SECONDS,
    MAX_TRANSACTION_ITEMS,
    CounterConfig,
    GroupCounter,
    group_deltas,
    handler,
)

TABLE = "counts"
REGION = "us-east-1"
CREATED = 1_700_000_000
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tasks/stream/2024-06-10T19:26:16.525"


# --- events ---------------------------------------------------------------------------


def image(task: str, group: str | None, points: str | None = None, **extra: Any) -> dict[str, Any]:
    """A task item in DynamoDB JSON; ``group`` None leaves ListId out."""
    item: dict[str, Any] = {"TaskId": {"S": task}, **extra}
    if group is not None:
        item["ListId"] = {"S": group}
    if points is not None:
        item["points"] = {"N": points}
    return item


def record(
    seq: int | str,
    event_name: str,
    *,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    sequence_number = str(seq).rjust(21, "0") if isinstance(seq, int) else seq
    keys = {"TaskId": (new or old or {}).get("TaskId", {"S": "?"})}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": CREATED,
        "Keys": keys,
        "SequenceNumber": sequence_number,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    return {
        "eventID": event_id or f"evt-{sequence_number}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "eventSourceARN": ARN,
        "dynamodb": dynamodb,
    }


def insert(seq: int, task: str, group: str | None, points: str | None = None) -> dict[str, Any]:
    return record(seq, "INSERT", new=image(task, group, points))


def remove(seq: int, task: str, group: str | None, points: str | None = None) -> dict[str, Any]:
    return record(seq, "REMOVE", old=image(task, group, points))


def modify(
    seq: int,
    task: str,
    old_group: str | None,
    new_group: str | None,
    old_points: str | None = None,
    new_points: str | None = None,
) -> dict[str, Any]:
    return record(
        seq,
        "MODIFY",
        old=image(task, old_group, old_points),
        new=image(task, new_group, new_points),
    )


def event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def seq_of(raw: dict[str, Any]) -> str:
    return raw["dynamodb"]["SequenceNumber"]


# --- a counter table in moto, with every transaction recorded -------------------------


class Table:
    """moto's DynamoDB client plus what was sent to it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.transactions: list[dict[str, Any]] = []  # every TransactWriteItems call
        client.meta.events.register(
            "before-parameter-build.dynamodb.TransactWriteItems", self._record_call
        )

    def _record_call(self, params: dict[str, Any], **_: Any) -> None:
        self.transactions.append(params)

    def items(self) -> list[dict[str, Any]]:
        paginator = self.client.get_paginator("scan")
        return [i for page in paginator.paginate(TableName=TABLE) for i in page["Items"]]

    def counts(self) -> dict[str, tuple[int, Decimal | None]]:
        """Group -> (count, sum or None), markers left out."""
        out = {}
        for item in self.items():
            pk = item["pk"]["S"]
            if pk.startswith(MARKER_PREFIX):
                continue
            total = Decimal(item["sum"]["N"]) if "sum" in item else None
            out[pk] = (int(item["count"]["N"]), total)
        return out

    def markers(self) -> set[str]:
        return {
            i["pk"]["S"][len(MARKER_PREFIX) :]
            for i in self.items()
            if i["pk"]["S"].startswith(MARKER_PREFIX)
        }


def copy_tables_once_per_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Speed moto up: its TransactWriteItems deep-copies the whole table once per item.

    The copy is its rollback state, and it is taken before anything is written, so
    one copy per table and call is the same state; 100 copies of a growing table
    made the 1,000-record test take ~6 s. Only Table copies are shared.
    """
    from moto.dynamodb import models

    backend = getattr(models, "DynamoDBBackend", None)
    real_copy = getattr(models, "copy", None)
    if backend is None or real_copy is None or not hasattr(models, "Table"):
        return  # moto changed: run at moto's own speed

    class CopyOncePerCall:
        def __init__(self) -> None:
            self.tables: dict[int, tuple[Any, Any]] = {}

        def deepcopy(self, obj: Any) -> Any:
            if not isinstance(obj, models.Table):
                return real_copy.deepcopy(obj)
            if id(obj) not in self.tables:
                self.tables[id(obj)] = (obj, real_copy.deepcopy(obj))
            return self.tables[id(obj)][1]

        def __getattr__(self, name: str) -> Any:
            return getattr(real_copy, name)

    original = backend.transact_write_items

    def transact_write_items(self: Any, *args: Any, **kwargs: Any) -> Any:
        models.copy = CopyOncePerCall()  # type: ignore[assignment]
        try:
            return original(self, *args, **kwargs)
        finally:
            models.copy = real_copy

    monkeypatch.setattr(backend, "transact_write_items", transact_write_items)


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Table]:
    copy_tables_once_per_transaction(monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Table(client)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_counter(table: Table, sleeps: Sleeps) -> Callable[..., GroupCounter]:
    def build(client: Any = None, **config: Any) -> GroupCounter:
        settings = {"sum_source_attribute": "points", **config}
        return GroupCounter(
            CounterConfig(TABLE, "ListId", **settings),
            dynamodb_client=client or table.client,
            sleep=sleeps,
        )

    return build


def no_failures() -> dict[str, Any]:
    return {"batchItemFailures": []}


def failed(raw: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": seq_of(raw)}]}


# --- semantics ------------------------------------------------------------------------


def test_insert_remove_and_modify(table: Table, make_counter: Callable[..., GroupCounter]) -> None:
    counter = make_counter()
    batch = event(
        insert(1, "a", "g1", "1"),
        insert(2, "b", "g1", "2"),
        insert(3, "c", "g2", "4"),
        modify(4, "b", "g1", "g2", "2", "2"),  # moved: -1 g1, +1 g2
        modify(5, "a", "g1", "g1", "1", "10"),  # same group: count 0, sum +9
        remove(6, "c", "g2", "4"),
    )
    assert counter.count(batch) == no_failures()
    assert table.counts() == {"g1": (1, Decimal(10)), "g2": (1, Decimal(2))}
    assert len(table.transactions) == 1


def test_sums_are_exact(table: Table, make_counter: Callable[..., GroupCounter]) -> None:
    counter = make_counter()
    batch = event(*(insert(i, f"t{i}", "g", "0.1") for i in range(3)))
    assert counter.count(batch) == no_failures()
    [call] = table.transactions
    [update] = [i["Update"] for i in call["TransactItems"] if "Update" in i]
    # Aggregated in memory: one update, the exact decimal sum (never 0.30000000000000004).
    assert update["ExpressionAttributeValues"] == {":count": {"N": "3"}, ":sum": {"N": "0.3"}}
    assert table.counts() == {"g": (3, Decimal("0.3"))}


def test_sums_of_38_digit_numbers_are_exact(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    # DynamoDB numbers carry 38 significant digits; Python's default context keeps 28.
    big = "1234567890123456789012345678901234567.8"
    batch = event(
        insert(1, "a", "g", big),
        insert(2, "b", "g", "0.1"),
        modify(3, "c", "h", "h", "0.1", big),  # same group: +(new - old)
    )
    assert make_counter().count(batch) == no_failures()
    [call] = table.transactions
    sums = {
        i["Update"]["Key"]["pk"]["S"]: i["Update"]["ExpressionAttributeValues"][":sum"]["N"]
        for i in call["TransactItems"]
        if "Update" in i
    }
    assert sums == {
        "g": "1234567890123456789012345678901234567.9",
        "h": "1234567890123456789012345678901234567.7",
    }


def test_modify_moving_an_item_moves_its_amount(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    counter.count(event(insert(1, "a", "old", "5"), insert(2, "b", "new", "1")))
    counter.count(event(modify(3, "a", "old", "new", "5", "7")))
    assert table.counts() == {"old": (0, Decimal(0)), "new": (2, Decimal(8))}


def test_missing_group_contributes_nothing(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    assert counter.count(event(insert(1, "a", None, "3"), remove(2, "b", None))) == no_failures()
    assert table.transactions == []  # no effect, no marker, no transaction
    counter.count(event(modify(3, "a", None, "g", "3", "3")))  # gained a group: +1
    assert table.counts() == {"g": (1, Decimal(3))}
    counter.count(event(modify(4, "a", "g", None, "3", "3")))  # lost it: -1
    assert table.counts() == {"g": (0, Decimal(0))}


def test_number_groups_use_their_plain_string_form(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter(sum_source_attribute=None)
    batch = event(
        record(1, "INSERT", new={"TaskId": {"S": "a"}, "ListId": {"N": "7"}}),
        record(2, "INSERT", new={"TaskId": {"S": "b"}, "ListId": {"N": "7.0"}}),
        record(3, "INSERT", new={"TaskId": {"S": "c"}, "ListId": {"N": "1.5E+1"}}),
    )
    assert counter.count(batch) == no_failures()
    assert table.counts() == {"7": (2, None), "15": (1, None)}


def test_group_values_of_other_types_are_ignored_and_logged(
    table: Table, make_counter: Callable[..., GroupCounter], caplog: pytest.LogCaptureFixture
) -> None:
    counter = make_counter()
    batch = event(
        record(1, "INSERT", new={"TaskId": {"S": "a"}, "ListId": {"BOOL": True}}),
        record(2, "INSERT", new={"TaskId": {"S": "b"}, "ListId": {"S": ""}}),
        record(3, "INSERT", new={"TaskId": {"S": "c"}, "ListId": {"NULL": True}}),
        record(4, "INSERT", new={"TaskId": {"S": "d"}, "ListId": {"S": MARKER_PREFIX + "x"}}),
        record(5, "INSERT", new={"TaskId": {"S": "e"}, "ListId": {"S": "é" * 1025}}),
    )
    with caplog.at_level(logging.WARNING, logger="ddb_stream_runtime.counter"):
        assert counter.count(batch) == no_failures()
    assert table.transactions == []
    assert "4 group values ignored" in caplog.text  # NULL is simply no group


def test_non_numeric_sum_source_counts_as_zero(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    batch = event(
        record(1, "INSERT", new={**image("a", "g"), "points": {"S": "lots"}}),
        insert(2, "b", "g"),  # no points at all
        insert(3, "c", "g", "2"),
    )
    assert counter.count(batch) == no_failures()
    assert table.counts() == {"g": (3, Decimal(2))}


def test_without_a_sum_only_counts_are_written(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter(sum_source_attribute=None)
    counter.count(event(insert(1, "a", "g", "5")))
    [call] = table.transactions
    update = call["TransactItems"][1]["Update"]
    assert update["UpdateExpression"] == "ADD #count :count"
    assert table.counts() == {"g": (1, None)}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (insert(1, "a", "g", "2"), {"g": [1, 2]}),
        (remove(1, "a", "g", "2"), {"g": [-1, -2]}),
        (modify(1, "a", "g", "g", "2", "2"), {}),
        (modify(1, "a", "g", "g", "2", "2.5"), {"g": [0, Decimal("0.5")]}),
        (modify(1, "a", "x", "y", "2", "3"), {"x": [-1, -2], "y": [1, 3]}),
        (modify(1, "a", None, None, "2", "3"), {}),
        (insert(1, "a", None, "2"), {}),
    ],
    ids=["insert", "remove", "modify-same", "modify-sum", "modify-move", "no-group", "insert-none"],
)
def test_group_deltas(raw: dict[str, Any], expected: dict[str, list[Any]]) -> None:
    config = CounterConfig(TABLE, "ListId", sum_source_attribute="points")
    assert group_deltas(StreamRecord.from_lambda(raw), config) == expected


# --- exactly once ---------------------------------------------------------------------


def test_replaying_the_same_batch_leaves_counts_unchanged(
    table: Table, make_counter: Callable[..., GroupCounter], sleeps: Sleeps
) -> None:
    counter = make_counter()
    batch = event(
        insert(1, "a", "g1", "1"),
        insert(2, "b", "g2", "2"),
        modify(3, "a", "g1", "g2", "1", "5"),
        remove(4, "b", "g2", "2"),
    )
    assert counter.count(batch) == no_failures()
    once = table.counts()
    assert once == {"g2": (1, Decimal(5))}  # g1 netted to zero: never written
    assert table.markers() == {f"evt-{seq_of(r)}" for r in batch["Records"]}
    sent = len(table.transactions)

    assert counter.count(batch) == no_failures()
    assert counter.count(batch) == no_failures()
    assert table.counts() == once
    # Each replay: one transaction, cancelled on every marker, then nothing left to write.
    assert len(table.transactions) == sent + 2
    assert sleeps == []  # an already-applied record is progress, not a reason to back off


def test_replaying_a_bisected_half_then_the_full_batch(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    records = [insert(i, f"t{i}", f"g{i % 3}", str(i)) for i in range(10)]
    records += [remove(10, "t0", "g0", "0"), modify(11, "t1", "g1", "g2", "1", "1")]
    assert counter.count(event(*records[:6])) == no_failures()  # bisect: first half
    assert counter.count(event(*records[6:])) == no_failures()  # second half
    expected = table.counts()
    assert counter.count(event(*records)) == no_failures()  # and the whole batch again
    assert counter.count(event(*records[3:9])) == no_failures()  # an arbitrary overlap
    assert table.counts() == expected
    assert expected == {
        "g0": (3, Decimal(3 + 6 + 9)),
        "g1": (2, Decimal(4 + 7)),
        "g2": (4, Decimal(1 + 2 + 5 + 8)),
    }


def test_a_batch_whose_middle_was_applied_is_completed_exactly_once(
    table: Table, make_counter: Callable[..., GroupCounter], sleeps: Sleeps
) -> None:
    # The cancelled attempt writes record 0's marker before it meets record 3's:
    # the transaction's rollback must undo it, or record 0 would never be counted.
    counter = make_counter()
    records = [insert(i, f"t{i}", "g", "1") for i in range(8)]
    assert counter.count(event(*records[3:6])) == no_failures()
    assert counter.count(event(*records)) == no_failures()
    assert table.counts() == {"g": (8, Decimal(8))}
    assert table.markers() == {r["eventID"] for r in records}
    cancelled_then_retried = [len(t["TransactItems"]) for t in table.transactions[1:]]
    assert cancelled_then_retried == [8 + 1, 5 + 1]
    assert sleeps == []  # retried at once: dropping applied records is progress


def test_a_record_replayed_after_a_net_zero_batch_is_not_applied_again(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    added, removed = insert(1, "a", "g", "3"), remove(2, "a", "g", "3")
    assert counter.count(event(added, removed)) == no_failures()
    [call] = table.transactions
    assert [sorted(i) for i in call["TransactItems"]] == [["Put"], ["Put"]]  # markers only
    assert table.counts() == {}
    assert counter.count(event(added)) == no_failures()  # a partial re-send
    assert table.counts() == {}


def test_the_same_record_twice_in_one_event_is_applied_once(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    raw = insert(1, "a", "g", "1")
    assert counter.count(event(raw, raw)) == no_failures()
    assert table.counts() == {"g": (1, Decimal(1))}


def test_markers_expire_two_days_after_the_record_was_created(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    make_counter().count(event(insert(1, "a", "g")))
    [marker] = [i for i in table.items() if i["pk"]["S"].startswith(MARKER_PREFIX)]
    assert marker == {
        "pk": {"S": f"{MARKER_PREFIX}evt-{'1'.rjust(21, '0')}"},
        "expiresAt": {"N": str(CREATED + MARKER_TTL_SECONDS)},
    }
    assert MARKER_TTL_SECONDS == 2 * 24 * 3600


def test_client_request_token_is_a_deterministic_hash_of_the_request(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    batch = event(*(insert(i, f"t{i}", f"g{i}") for i in range(60)))  # two sub-batches
    counter.count(batch)
    first = [t["ClientRequestToken"] for t in table.transactions]
    assert len(first) == 2 and len(set(first)) == 2
    assert all(1 <= len(token) <= 36 for token in first)
    counter.count(batch)  # the replay sends the very same requests first
    assert table.transactions[2]["ClientRequestToken"] == first[0]


# --- sub-batches: ordered transactions of at most 100 items ----------------------------


def test_more_than_100_groups_are_split_into_ordered_transactions(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    records = [insert(i, f"t{i}", f"g{i:03}") for i in range(150)]  # 2 items per record
    assert counter.count(event(*records)) == no_failures()
    assert [len(t["TransactItems"]) for t in table.transactions] == [100, 100, 100]
    markers = [
        [i["Put"]["Item"]["pk"]["S"] for i in t["TransactItems"] if "Put" in i]
        for t in table.transactions
    ]
    expected = [f"{MARKER_PREFIX}{r['eventID']}" for r in records]
    assert markers == [expected[:50], expected[50:100], expected[100:]]  # stream order
    assert len(table.counts()) == 150


def test_1000_records_over_10_groups_in_10_batches(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    counter = make_counter()
    records = [insert(i, f"t{i}", f"g{i % 10}", "1.5") for i in range(1000)]
    for start in range(0, 1000, 100):
        assert counter.count(event(*records[start : start + 100])) == no_failures()
    # 100 markers + 10 groups = 110 items a batch: 90 records (100 items), then 10 (20 items).
    assert len(table.transactions) == 20
    assert [len(t["TransactItems"]) for t in table.transactions[:2]] == [100, 20]
    assert all(len(t["TransactItems"]) <= MAX_TRANSACTION_ITEMS for t in table.transactions)
    assert table.counts() == {f"g{g}": (100, Decimal(150)) for g in range(10)}


# --- TransactWriteItems' limits, enforced as DynamoDB does --------------------------------
# "groups up to 100 action requests ... no two actions can target the same item ... The
# aggregate size of the items in the transaction cannot exceed 4 MB" (TransactWriteItems,
# DynamoDB API reference). moto enforces none of them.

MAX_TRANSACTION_BYTES = 4 * 1024 * 1024


def transaction_bytes(items: list[Any]) -> int:
    """An upper bound of the items' aggregate size: the request's JSON holds every name and
    value written, with type tags and quotes on top (counter items hold pk, count, sum)."""
    return len(json.dumps(items, separators=(",", ":")).encode())


def _item_key(action: dict[str, Any]) -> tuple[str, str]:
    [(kind, params)] = action.items()
    key = params["Item"] if kind == "Put" else params["Key"]
    return params["TableName"], json.dumps(key["pk"], sort_keys=True)


def check_transaction_limits(items: list[Any]) -> None:
    """Raise DynamoDB's ValidationException where it would reject the request."""
    problem = None
    if len(items) > MAX_TRANSACTION_ITEMS:
        problem = (
            "1 validation error detected: Value at 'transactItems' failed to satisfy "
            f"constraint: Member must have length less than or equal to 100 ({len(items)})"
        )
    elif transaction_bytes(items) > MAX_TRANSACTION_BYTES:
        problem = "Transaction request size exceeds the maximum of 4 MB"
    elif len({_item_key(i) for i in items}) != len(items):
        problem = "Transaction request cannot include multiple operations on one item"
    if problem is not None:
        raise ClientError(
            {"Error": {"Code": "ValidationException", "Message": problem}}, "TransactWriteItems"
        )


class WithLimits:
    """moto's client behind DynamoDB's TransactWriteItems limits."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.rejected: list[int] = []  # sizes of the transactions DynamoDB would refuse

    def transact_write_items(self, **kwargs: Any) -> Any:
        try:
            check_transaction_limits(kwargs["TransactItems"])
        except ClientError:
            self.rejected.append(len(kwargs["TransactItems"]))
            raise
        return self.client.transact_write_items(**kwargs)


@pytest.mark.parametrize("key_bytes", [0, 2048], ids=["short-groups", "2048-byte-groups"])
def test_worst_case_batch_of_moves_between_new_groups_fits_100_items(
    table: Table, make_counter: Callable[..., GroupCounter], key_bytes: int
) -> None:
    # Each MODIFY moves its item between two groups the sub-batch has not touched yet:
    # a marker plus two counter updates, 3 items a record. 33 records are 99 items; the
    # 34th must open a new transaction (with it, 102 items: DynamoDB refuses). Group
    # names at the 2,048-byte key limit make the largest items the counter can write.
    def group(kind: str, i: int) -> str:
        return f"{kind}{i:02}".ljust(key_bytes, "x")

    client = WithLimits(table.client)
    counter = make_counter(client=client)
    inserts = [insert(i, f"t{i:02}", group("from", i), "2") for i in range(34)]
    assert counter.count(event(*inserts)) == no_failures()
    assert [len(t["TransactItems"]) for t in table.transactions] == [68]
    moves = [
        modify(100 + i, f"t{i:02}", group("from", i), group("to", i), "2", "3") for i in range(34)
    ]
    assert counter.count(event(*moves)) == no_failures()
    transactions = [t["TransactItems"] for t in table.transactions[1:]]
    assert [len(t) for t in transactions] == [99, 3] and client.rejected == []
    # The largest transaction the counter can build stays far below the 4 MB limit.
    assert all(transaction_bytes(t) <= MAX_TRANSACTION_BYTES / 16 for t in transactions)
    markers = [[i["Put"]["Item"]["pk"]["S"] for i in t if "Put" in i] for t in transactions]
    expected = [f"{MARKER_PREFIX}{r['eventID']}" for r in moves]
    assert markers == [expected[:33], expected[33:]]  # stream order kept across the cut
    assert table.counts() == {
        **{group("from", i): (0, Decimal(0)) for i in range(34)},
        **{group("to", i): (1, Decimal(3)) for i in range(34)},
    }


class TransactionalCounterTable:
    """An in-memory counter table with TransactWriteItems' semantics, for property tests.

    Atomic; enforces the limits (check_transaction_limits); cancels the whole transaction
    with ConditionalCheckFailed at each marker put whose key exists (the counter's
    ``attribute_not_exists(#pk)``); applies ``ADD #count :count[, #sum :sum]`` exactly.
    """

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.transactions: list[list[Any]] = []

    def transact_write_items(self, TransactItems: list[Any], ClientRequestToken: str) -> dict:  # noqa: N803
        self.transactions.append(TransactItems)
        check_transaction_limits(TransactItems)
        assert 1 <= len(ClientRequestToken) <= 36
        reasons = []
        for action in TransactItems:
            put = action.get("Put")
            exists = put is not None and put["Item"]["pk"]["S"] in self.items
            assert put is None or put["ConditionExpression"] == "attribute_not_exists(#pk)"
            reasons.append({"Code": "ConditionalCheckFailed" if exists else "None"})
        if any(r["Code"] != "None" for r in reasons):
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        for action in TransactItems:
            if "Put" in action:
                item = action["Put"]["Item"]
                self.items[item["pk"]["S"]] = item
                continue
            update = action["Update"]
            assert update["UpdateExpression"] in ("ADD #count :count", "ADD #count :count, #sum :sum")
            stored = self.items.setdefault(update["Key"]["pk"]["S"], {})
            for placeholder, value in update["ExpressionAttributeValues"].items():
                name = update["ExpressionAttributeNames"]["#" + placeholder[1:]]
                stored[name] = stored.get(name, Decimal(0)) + Decimal(value["N"])
        return {}

    def counts(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Group -> (count, sum), markers and all-zero groups left out."""
        return {
            pk: (item.get("count", Decimal(0)), item.get("sum", Decimal(0)))
            for pk, item in self.items.items()
            if not pk.startswith(MARKER_PREFIX) and (item.get("count") or item.get("sum"))
        }


def group_name(number: int) -> str:
    """Short names, and every 11th one near the 2,048-byte key limit (the largest items)."""
    return f"{'L' * 2040}{number:04}" if number % 11 == 0 else f"g{number}"


def random_shard(
    rng: random.Random, size: int, tasks: int, groups: int, remove_pct: int, missing_pct: int
) -> list[dict[str, Any]]:
    """A shard's INSERT / MODIFY / REMOVE records (both images) over ``tasks`` items."""
    state: dict[str, tuple[str | None, str]] = {}  # task -> (group, points)
    records = []
    for seq in range(1, size + 1):
        task = f"t{rng.randrange(tasks)}"
        old = state.get(task)
        if old is not None and rng.randrange(100) < remove_pct:
            records.append(remove(seq, task, *old))
            del state[task]
            continue
        group = None if rng.randrange(100) < missing_pct else group_name(rng.randrange(groups))
        points = str(Decimal(rng.randint(-10**6, 10**6)).scaleb(-2))
        if old is None:
            records.append(insert(seq, task, group, points))
        else:
            records.append(modify(seq, task, old[0], group, old[1], points))
        state[task] = (group, points)
    return records


def expected_counts(records: list[dict[str, Any]]) -> dict[str, tuple[Decimal, Decimal]]:
    """Count and sum per group, folded naively over the records, each applied once."""
    totals: dict[str, list[Decimal]] = {}
    for raw in records:
        for name, sign in (("OldImage", -1), ("NewImage", 1)):
            img = raw["dynamodb"].get(name)
            if img is None or "ListId" not in img:
                continue
            total = totals.setdefault(img["ListId"]["S"], [Decimal(0), Decimal(0)])
            total[0] += sign
            total[1] += sign * Decimal(img["points"]["N"])
    return {g: (c, s) for g, (c, s) in totals.items() if c or s}


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples in every run: CI never flakes on a new one
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 500),
    tasks=st.integers(1, 300),
    groups=st.integers(1, 600),
    remove_pct=st.integers(0, 50),
    missing_pct=st.integers(0, 30),
    batch_sizes=st.lists(st.integers(1, 500), min_size=1, max_size=4),
    replays=st.lists(st.integers(0, 499), max_size=4),
)
def test_property_transactions_fit_the_limits_and_counts_are_exact(
    seed: int,
    size: int,
    tasks: int,
    groups: int,
    remove_pct: int,
    missing_pct: int,
    batch_sizes: list[int],
    replays: list[int],
) -> None:
    records = random_shard(random.Random(seed), size, tasks, groups, remove_pct, missing_pct)
    dynamodb = TransactionalCounterTable()
    counter = GroupCounter(
        CounterConfig(TABLE, "ListId", sum_source_attribute="points"),
        dynamodb_client=dynamodb,
        sleep=lambda seconds: None,
    )
    # Lambda's batches, cut at the drawn sizes; after some, a suffix is delivered again.
    start = number = 0
    while start < len(records):
        batch = records[start : start + batch_sizes[number % len(batch_sizes)]]
        assert counter.count(event(*batch)) == no_failures()
        if number < len(replays):
            assert counter.count(event(*batch[replays[number] % len(batch) :])) == no_failures()
        start += len(batch)
        number += 1
    contributing = [r for r in records if group_deltas(StreamRecord.from_lambda(r), counter.config)]
    if contributing:
        assert dynamodb.transactions  # something was written ...
    assert all(len(t) <= MAX_TRANSACTION_ITEMS for t in dynamodb.transactions)  # ... in limits
    assert all(transaction_bytes(t) <= MAX_TRANSACTION_BYTES for t in dynamodb.transactions)
    assert dynamodb.counts() == expected_counts(records)
    markers = {pk for pk in dynamodb.items if pk.startswith(MARKER_PREFIX)}
    assert markers == {MARKER_PREFIX + r["eventID"] for r in contributing}


# --- failures ---------------------------------------------------------------------------


def cancelled(client: Any, *codes: str) -> ClientError:
    reasons = [{"Code": c, "Message": c} if c != "None" else {"Code": "None"} for c in codes]
    return client.exceptions.TransactionCanceledException(
        {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons "
                f"for specific reasons [{', '.join(codes)}]",
            },
            "CancellationReasons": reasons,
        },
        "TransactWriteItems",
    )


class Flaky:
    """Delegates to moto, except calls for which ``fail(call_number, items)`` returns an error."""

    def __init__(self, client: Any, fail: Callable[[int, list[Any]], Exception | None]) -> None:
        self.client = client
        self.fail = fail
        self.calls = 0

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls += 1
        error = self.fail(self.calls, kwargs["TransactItems"])
        if error is not None:
            raise error
        return self.client.transact_write_items(**kwargs)


def test_a_conflict_is_retried_then_succeeds(
    table: Table, make_counter: Callable[..., GroupCounter], sleeps: Sleeps
) -> None:
    def conflict_once(call: int, items: list[Any]) -> Exception | None:
        if call == 1:
            return cancelled(table.client, *(["None"] * (len(items) - 1)), "TransactionConflict")
        return None

    flaky = Flaky(table.client, conflict_once)
    counter = make_counter(client=flaky)
    assert counter.count(event(insert(1, "a", "g", "1"), insert(2, "b", "g", "1"))) == no_failures()
    assert flaky.calls == 2
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.05
    assert table.counts() == {"g": (2, Decimal(2))}


def test_throttling_exceptions_are_retried(
    table: Table, make_counter: Callable[..., GroupCounter], sleeps: Sleeps
) -> None:
    def throttled(call: int, items: list[Any]) -> Exception | None:
        if call <= 2:
            return ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                "TransactWriteItems",
            )
        return None

    counter = make_counter(client=Flaky(table.client, throttled))
    assert counter.count(event(insert(1, "a", "g"))) == no_failures()
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] / 2  # exponential, with jitter
    assert table.counts() == {"g": (1, Decimal(0))}


def test_a_permanent_failure_reports_the_first_record_of_the_failing_sub_batch(
    table: Table, make_counter: Callable[..., GroupCounter], sleeps: Sleeps
) -> None:
    records = [insert(i, f"t{i}", f"g{i:03}", "1") for i in range(150)]  # sub-batches of 50

    def second_sub_batch_conflicts(call: int, items: list[Any]) -> Exception | None:
        first_marker = items[0]["Put"]["Item"]["pk"]["S"]
        if first_marker == f"{MARKER_PREFIX}{records[50]['eventID']}":
            return cancelled(table.client, "TransactionConflict", *(["None"] * 99))
        return None

    flaky = Flaky(table.client, second_sub_batch_conflicts)
    counter = make_counter(client=flaky)
    assert counter.count(event(*records)) == failed(records[50])
    assert flaky.calls == 1 + 5  # sub-batch 1, then 5 attempts at sub-batch 2; never 3
    assert len(sleeps) == 4
    # The earlier sub-batch is committed and marked; nothing after it was written.
    assert set(table.counts()) == {f"g{i:03}" for i in range(50)}
    assert table.markers() == {r["eventID"] for r in records[:50]}

    # Lambda re-sends from the reported record; a healthy retry completes the batch.
    healthy = make_counter()
    assert healthy.count(event(*records[50:])) == no_failures()
    assert healthy.count(event(*records)) == no_failures()  # and a full replay is a no-op
    assert table.counts() == {f"g{i:03}": (1, Decimal(1)) for i in range(150)}


def test_validation_errors_are_not_retried(
    table: Table, make_counter: Callable[..., GroupCounter], sleeps: Sleeps
) -> None:
    def invalid(call: int, items: list[Any]) -> Exception | None:
        return cancelled(table.client, "None", "ValidationError")

    first = insert(1, "a", "g")
    counter = make_counter(client=Flaky(table.client, invalid))
    assert counter.count(event(first, insert(2, "b", "h"))) == failed(first)
    assert sleeps == []


def test_already_applied_and_conflict_in_one_cancellation(
    table: Table, make_counter: Callable[..., GroupCounter], sleeps: Sleeps
) -> None:
    a, b = insert(1, "a", "g", "1"), insert(2, "b", "g", "1")
    make_counter().count(event(a))  # a is applied

    def conflict_on_first_try(call: int, items: list[Any]) -> Exception | None:
        if call == 1:  # a's marker exists, and the counter is busy
            return cancelled(table.client, "ConditionalCheckFailed", "None", "TransactionConflict")
        return None

    flaky = Flaky(table.client, conflict_on_first_try)
    assert make_counter(client=flaky).count(event(a, b)) == no_failures()
    assert flaky.calls == 2 and len(sleeps) == 1
    assert table.counts() == {"g": (2, Decimal(2))}


def test_a_malformed_record_stops_the_batch_after_applying_what_precedes_it(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    keys_only = record(3, "MODIFY", new=image("c", "g"))  # no OldImage: wrong view type
    batch = event(insert(1, "a", "g"), insert(2, "b", "g"), keys_only, insert(4, "d", "g"))
    assert make_counter().count(batch) == failed(keys_only)
    assert table.counts() == {"g": (2, Decimal(0))}


def test_a_record_without_event_id_fails(
    table: Table, make_counter: Callable[..., GroupCounter]
) -> None:
    raw = insert(1, "a", "g")
    del raw["eventID"]
    assert make_counter().count(event(raw)) == failed(raw)
    assert table.transactions == []


# --- configuration and entry point ----------------------------------------------------


def test_config_from_env() -> None:
    config = CounterConfig.from_env(
        {
            "COUNTER_TABLE": "t",
            "GROUP_ATTRIBUTE": "ListId",
            "COUNTER_PARTITION_KEY": "id",
            "COUNT_ATTRIBUTE": "n",
            "SUM_SOURCE_ATTRIBUTE": "points",
            "SUM_ATTRIBUTE": "total",
            "MARKER_TTL_ATTRIBUTE": "ttl",
        }
    )
    assert (config.partition_key, config.count_attribute, config.sum_attribute) == (
        "id",
        "n",
        "total",
    )
    assert (config.sum_source_attribute, config.marker_ttl_attribute) == ("points", "ttl")
    with pytest.raises(ValueError, match="COUNTER_TABLE is required"):
        CounterConfig.from_env({"GROUP_ATTRIBUTE": "ListId"})
    with pytest.raises(ValueError, match="must differ"):
        CounterConfig("t", "g", sum_source_attribute="p", sum_attribute="count")
    with pytest.raises(ValueError, match="max_attempts"):
        CounterConfig("t", "g", max_attempts=0)


def test_handler_reads_the_environment(table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTER_TABLE", TABLE)
    monkeypatch.setenv("GROUP_ATTRIBUTE", "ListId")
    monkeypatch.setenv("SUM_SOURCE_ATTRIBUTE", "points")
    counter_module._default_counter.cache_clear()
    counter_module.aws_client.cache_clear()
    try:
        assert handler(event(insert(1, "a", "g", "2")), None) == no_failures()
    finally:
        counter_module._default_counter.cache_clear()
        counter_module.aws_client.cache_clear()
    assert table.counts() == {"g": (1, Decimal(2))}


def test_docstring_examples_run() -> None:
    result = doctest.testmod(counter_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
