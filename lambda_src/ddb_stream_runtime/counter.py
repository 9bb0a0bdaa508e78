"""The AggregateCounter's Lambda: per-group counts (and sums) in a counter table, exactly once.

Each stream record moves at most two counters: the group its item left and the
group it joined. Counts (and optionally the sum of one numeric attribute) are
kept in a counter table, one item per group, whose partition key is the group
value's string form. Needs a ``NEW_AND_OLD_IMAGES`` stream.

Configuration (environment variables, read on the first invocation)
-------------------------------------------------------------------
``COUNTER_TABLE``
    Required: the counter table (partition key of type S, no sort key, TTL on
    ``MARKER_TTL_ATTRIBUTE``).
``GROUP_ATTRIBUTE``
    Required: the item attribute that names the group, e.g. ``ListId``.
``COUNTER_PARTITION_KEY``
    The counter table's partition key name. Default ``pk``.
``COUNT_ATTRIBUTE``
    Default ``count``.
``SUM_SOURCE_ATTRIBUTE``
    A numeric item attribute to sum per group. Default: none (no sums).
``SUM_ATTRIBUTE``
    Where the sum is kept. Default ``sum``.
``MARKER_TTL_ATTRIBUTE``
    The counter table's TTL attribute, set on idempotency markers. Default ``expiresAt``.
``MARKER_RETENTION_SECONDS``
    How long after a record's creation its marker must outlive every redelivery.
    Default: per source, see "Sources" below.

Sources
-------
A DynamoDB stream, an SQS queue of the SNS fan-out, or a Kinesis data stream fed
by the table (see :mod:`ddb_stream_runtime.intake`). Counts stay exact on each:
the deltas of a batch commute (a sum does not care about order), so SQS's
reordering and re-formed batches change nothing, and every redelivery or duplicate
meets its marker. What a marker is keyed on, and how long it must live:

===========  ==================================  ======================================
source       marker id                           marker retention (default)
===========  ==================================  ======================================
stream       ``eventID``                         2 days: stream records live 24 hours
SQS          ``eventID`` (the router publishes   15 days: SQS keeps a message at most
             the stream record unchanged, so a   14 days (``MessageRetentionPeriod``
             republished record keeps it)        60 s to 1,209,600 s)
Kinesis      a SHA-256 of the change (table,     8 days: the event source mapping's
             event name, timestamp, keys,        ``MaximumRecordAgeInSeconds`` is at
             images), see                        most 604,800 s (7 days) when finite;
             :attr:`StreamRecord.identity`       with ``-1`` (infinite, Lambda's
                                                 default) and a longer stream
                                                 retention, set MARKER_RETENTION_SECONDS
===========  ==================================  ======================================

Kinesis: AWS documents that records "may appear more than once" and that
``ApproximateCreationDateTime`` identifies duplicates, but not that a duplicate
keeps its ``eventID``; the hash holds either way. Its limit: two changes of one
item with identical images at the same timestamp (same millisecond, or
microsecond with ``MICROSECOND`` precision) count once. The failure rules per
source (earliest failure on shards, every undone message on SQS) come from
:meth:`ddb_stream_runtime.intake.Batch.failures`.

Semantics
---------
An item counts in a group when its group attribute is an S (non-empty) or N
value; N values are written in plain notation without trailing zeros
(``1.50`` and ``1.5`` are the same group). A record adds +1 (and +value) to the
new image's group and -1 (and -value) to the old image's group:

==============================  ============================  ===========================
record                          count                         sum
==============================  ============================  ===========================
INSERT                          +1 new group                  +new
REMOVE                          -1 old group                  -old
MODIFY, same group              0                             +(new - old)
MODIFY, moved between groups    -1 old group, +1 new group    -old from old, +new to new
missing group attribute         nothing for that side         nothing for that side
==============================  ============================  ===========================

A group attribute of another type (BOOL, M, ...), an empty string, a string
over 2048 bytes (a partition key's limit) or one starting with ``__applied__#``
(the markers' prefix) counts as missing (logged). A missing, NULL or
non-numeric sum attribute counts as 0. Numbers stay exact (``int`` /
``Decimal``, never ``float``); an aggregated delta must fit DynamoDB's 38
significant digits, or the write is rejected.
A MODIFY without both images, or an INSERT/REMOVE without its image, fails:
the stream's view type is wrong, and guessing would corrupt the counts.

Exactly once
------------
Lambda delivers stream records at least once: after a failure it re-sends from
the reported record, ``bisect_batch_on_error`` re-sends halves, and a timeout
re-sends the whole batch. The classic remedy is a per-shard checkpoint (the
last applied sequence number, updated in the same transaction as the counts).
This module deliberately deviates from that: **Lambda stream events carry no
shard id**, so there is nothing to key a per-shard checkpoint on, and the
sequence numbers of different shards interleave, so a single per-stream
checkpoint would make one shard's records look "already applied" to another
shard and drop their counts.

Instead every *contributing* record (one with a non-zero effect) gets an
idempotency marker item ``{pk: "__applied__#<eventID>", expiresAt: ...}``,
put with ``attribute_not_exists(pk)`` in the **same** ``TransactWriteItems`` as
the counter updates (``ADD #count :delta, #sum :s``). A redelivered record's
marker already exists, the transaction is cancelled with
``ConditionalCheckFailed`` at that marker, and the record is dropped: a replay
is a no-op, never a double count. Markers expire two days after the record's
``ApproximateCreationDateTime`` (the time of the invocation if absent): stream
records live 24 hours, so no redelivery can outlive its marker, and the
deterministic value keeps a retried request identical.

Per batch: records are turned into per-group deltas in memory (several records
on one group become one update; groups whose delta nets to zero are not
written, their records' markers still are, or a later partial replay would
re-apply them). A transaction holds at most :data:`MAX_TRANSACTION_ITEMS`
(100) items, so records are cut, in stream order, into consecutive
sub-batches whose markers plus touched groups fit in 100; each is one
transaction, committed in order.

On ``TransactionCanceledException``:

* ``ConditionalCheckFailed`` on marker items: those records were applied by an
  earlier delivery; they are dropped, the rest re-aggregated and the
  transaction retried at once (no attempt is used up: each round removes
  records, so it ends).
* ``TransactionConflict`` (another shard's transaction touching the same
  counter), ``ThrottlingError`` and other transient reasons, and transient
  exceptions: retried with exponential backoff and jitter, up to
  ``max_attempts`` in all.
* ``ValidationError`` (e.g. a sum beyond 38 digits) and other permanent
  errors: not retried.

When a sub-batch cannot be written, the *first record of that sub-batch* is the
only ``batchItemFailure``: every earlier sub-batch is committed and marked, so
Lambda's re-send from there re-applies nothing. Each transaction carries a
``ClientRequestToken``, a hash of the request (so of its eventIDs and exact
updates): within DynamoDB's 10-minute idempotency window an identical retry of
a transaction that did commit (a lost response) succeeds without re-applying,
and a token can never be re-used for different parameters
(``IdempotentParameterMismatchException``).

Cost: one marker write per contributing record on top of one update per
touched group and sub-batch; transactional writes cost 2 WCU per item
(1 KB). Transactions per batch ~= ceil((contributing records + touched
groups) / 100): a batch of 100 INSERTs over 10 groups is 110 items, two
transactions. Markers also appear in the counter table's own stream (and
again when TTL deletes them): consumers of that stream should skip keys
starting with ``__applied__#``.

IAM: ``dynamodb:PutItem`` (markers) and ``dynamodb:UpdateItem`` (counters) on
the counter table; TransactWriteItems has no action of its own. Nothing is read.
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

from ._aws import aws_client, check_retry_settings
from .batch import _Failure
from .deserialize import deserialize_value
from .intake import DYNAMODB, KINESIS, SQS, Entry, read_batch
from .records import MalformedRecordError, StreamRecord

if TYPE_CHECKING:
    from .batch import BatchItemFailure, PartialBatchResponse

__all__ = [
    "MARKER_PREFIX",
    "MARKER_RETENTION_BY_SOURCE",
    "MARKER_TTL_SECONDS",
    "MAX_TRANSACTION_ITEMS",
    "CounterConfig",
    "CounterUpdate",
    "GroupCounter",
    "MarkerPut",
    "Number",
    "TransactItem",
    "group_deltas",
    "handler",
    "marker_key",
]

_LOGGER = logging.getLogger(__name__)

#: TransactWriteItems' limit on items per transaction.
MAX_TRANSACTION_ITEMS = 100
#: Partition key prefix of idempotency markers; never a group value's string form.
MARKER_PREFIX = "__applied__#"
#: Marker lifetime after the record's creation: twice the stream's 24 h retention.
MARKER_TTL_SECONDS = 2 * 24 * 60 * 60
#: Marker retention per source, unless ``MARKER_RETENTION_SECONDS`` says otherwise.
MARKER_RETENTION_BY_SOURCE = {
    DYNAMODB: MARKER_TTL_SECONDS,
    SQS: 15 * 24 * 60 * 60,
    KINESIS: 8 * 24 * 60 * 60,
}

Number: TypeAlias = int | Decimal

_WHOLE_BATCH = ""  # Lambda reads an empty itemIdentifier as "the whole batch failed"
_TOKEN_LENGTH = 36  # ClientRequestToken: 1-36 characters
_MAX_KEY_BYTES = 2048  # DynamoDB's limit on a partition key value
# Exact arithmetic for sums: DynamoDB numbers span 1E-130..1E+126 with 38 digits, so
# 400 digits never round; Inexact is trapped anyway so a rounding can never go unseen.
_EXACT = decimal.Context(
    prec=400,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow],
)
# Cancellation reasons and errors that retrying the same request cannot fix.
_PERMANENT_REASONS = frozenset({"ValidationError", "ItemCollectionSizeLimitExceeded"})
_PERMANENT_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "IdempotentParameterMismatchException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ValidationException",
    }
)
_CANCELLED = "TransactionCanceledException"
_ALREADY_APPLIED = "ConditionalCheckFailed"
_NO_REASON = (None, "None", "")

_encode_canonical = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class MarkerPut(TypedDict):
    """The ``Put`` of one idempotency marker."""

    TableName: str
    Item: dict[str, dict[str, str]]
    ConditionExpression: str
    ExpressionAttributeNames: dict[str, str]


class CounterUpdate(TypedDict):
    """The ``Update`` that adds one group's aggregated deltas."""

    TableName: str
    Key: dict[str, dict[str, str]]
    UpdateExpression: str
    ExpressionAttributeNames: dict[str, str]
    ExpressionAttributeValues: dict[str, dict[str, str]]


class TransactItem(TypedDict, total=False):
    """One ``TransactItems`` element: a marker put or a counter update."""

    Put: MarkerPut
    Update: CounterUpdate


@dataclass(frozen=True)
class CounterConfig:
    """Where and what the counter counts; validated on creation.

    Parameters
    ----------
    table_name : str
        The counter table.
    group_attribute : str
        The item attribute naming the group.
    partition_key : str, optional
        The counter table's partition key (type S). Default ``"pk"``.
    count_attribute : str, optional
        Default ``"count"``.
    sum_source_attribute : str, optional
        Numeric item attribute to sum per group. Default: None (no sums).
    sum_attribute : str, optional
        Default ``"sum"``.
    marker_ttl_attribute : str, optional
        The counter table's TTL attribute. Default ``"expiresAt"``.
    marker_retention_seconds : int, optional
        Marker lifetime after the record's creation. Default: None (per source,
        :data:`MARKER_RETENTION_BY_SOURCE`).
    max_attempts : int, optional
        Attempts per transaction for transient failures. Default: 5.
    backoff_seconds : float, optional
        Base sleep before the 2nd attempt, doubled before each later one, with
        jitter (x0.5 to x1). Default: 0.05.

    Raises
    ------
    ValueError
        If a name is empty or the stored attribute names collide.

    Examples
    --------
    >>> CounterConfig.from_env({"COUNTER_TABLE": "counts", "GROUP_ATTRIBUTE": "ListId"})
    ... # doctest: +NORMALIZE_WHITESPACE
    CounterConfig(table_name='counts', group_attribute='ListId', partition_key='pk',
                  count_attribute='count', sum_source_attribute=None, sum_attribute='sum',
                  marker_ttl_attribute='expiresAt', marker_retention_seconds=None,
                  max_attempts=5, backoff_seconds=0.05)
    >>> CounterConfig("counts", "ListId", count_attribute="pk")
    Traceback (most recent call last):
    ...
    ValueError: counter table attributes must differ, got partition_key='pk', \
count_attribute='pk', marker_ttl_attribute='expiresAt'
    """

    table_name: str
    group_attribute: str
    partition_key: str = "pk"
    count_attribute: str = "count"
    sum_source_attribute: str | None = None
    sum_attribute: str = "sum"
    marker_ttl_attribute: str = "expiresAt"
    marker_retention_seconds: int | None = None
    max_attempts: int = 5
    backoff_seconds: float = 0.05

    def __post_init__(self) -> None:
        names = {
            "table_name": self.table_name,
            "group_attribute": self.group_attribute,
            "partition_key": self.partition_key,
            "count_attribute": self.count_attribute,
            "sum_attribute": self.sum_attribute,
            "marker_ttl_attribute": self.marker_ttl_attribute,
        }
        if self.sum_source_attribute is not None:
            names["sum_source_attribute"] = self.sum_source_attribute
        for field, value in names.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"{field} must be a non-empty string, got {value!r}")
        stored = {
            "partition_key": self.partition_key,
            "count_attribute": self.count_attribute,
            "marker_ttl_attribute": self.marker_ttl_attribute,
        }
        if self.sum_source_attribute is not None:
            stored["sum_attribute"] = self.sum_attribute
        if len(set(stored.values())) != len(stored):
            shown = ", ".join(f"{k}={v!r}" for k, v in stored.items())
            raise ValueError(f"counter table attributes must differ, got {shown}")
        retention = self.marker_retention_seconds
        if retention is not None and (
            isinstance(retention, bool) or not isinstance(retention, int) or retention < 1
        ):
            raise ValueError(
                f"marker_retention_seconds must be a positive integer, got {retention!r}"
            )
        check_retry_settings(self.max_attempts, self.backoff_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CounterConfig:
        """Read the configuration from environment variables (see the module docstring).

        Parameters
        ----------
        environ : mapping, optional
            Default: ``os.environ``.

        Returns
        -------
        CounterConfig

        Raises
        ------
        ValueError
            If ``COUNTER_TABLE`` or ``GROUP_ATTRIBUTE`` is missing, or the
            configuration is invalid.
        """
        env = os.environ if environ is None else environ
        for required in ("COUNTER_TABLE", "GROUP_ATTRIBUTE"):
            if not env.get(required):
                raise ValueError(f"environment variable {required} is required")
        return cls(
            table_name=env["COUNTER_TABLE"],
            group_attribute=env["GROUP_ATTRIBUTE"],
            partition_key=env.get("COUNTER_PARTITION_KEY") or "pk",
            count_attribute=env.get("COUNT_ATTRIBUTE") or "count",
            sum_source_attribute=env.get("SUM_SOURCE_ATTRIBUTE") or None,
            sum_attribute=env.get("SUM_ATTRIBUTE") or "sum",
            marker_ttl_attribute=env.get("MARKER_TTL_ATTRIBUTE") or "expiresAt",
            marker_retention_seconds=_optional_int(env, "MARKER_RETENTION_SECONDS"),
        )


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


def marker_key(event_id: str) -> str:
    """The counter-table partition key of a record's idempotency marker.

    Examples
    --------
    >>> marker_key("c4ca4238a0b923820dcc509a6f75849b")
    '__applied__#c4ca4238a0b923820dcc509a6f75849b'
    """
    return MARKER_PREFIX + event_id


# --- what one record contributes ------------------------------------------------------


class _Ignored(Exception):
    """A group value of a type that does not name a group (counted as missing)."""


def _plain(number: Number) -> str:
    """Plain notation, no exponent, no trailing zeros: the string form of an N group."""
    if isinstance(number, int):
        return str(number)
    text = format(number, "f")  # exact: formatting never rounds
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _group_of(image: dict[str, Any], name: str) -> str | None:
    av = image.get(name)
    if av is None:
        return None
    value = deserialize_value(av)
    if isinstance(value, str):
        if not value:
            raise _Ignored("an empty string")  # a partition key cannot be empty
        if value.startswith(MARKER_PREFIX):
            raise _Ignored(f"a string starting with {MARKER_PREFIX!r}")  # markers' own keys
        if len(value) * 4 > _MAX_KEY_BYTES and len(value.encode("utf-8")) > _MAX_KEY_BYTES:
            raise _Ignored(f"a string longer than {_MAX_KEY_BYTES} bytes")  # key size limit
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return _plain(value)
    if value is None:
        return None  # NULL: no group
    raise _Ignored(f"a {next(iter(av))} value")


def _amount_of(image: dict[str, Any], name: str | None) -> Number:
    if name is None:
        return 0
    av = image.get(name)
    if av is None:
        return 0
    value = deserialize_value(av)
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return value
    return 0  # NULL or not a number: contributes nothing to the sum


def _image(record: StreamRecord, which: str) -> dict[str, Any]:
    image = record.raw_new_image if which == "new" else record.raw_old_image
    if not isinstance(image, dict):
        raise ValueError(
            f"{record.event_name} record has no {'NewImage' if which == 'new' else 'OldImage'}: "
            "the counter needs a NEW_AND_OLD_IMAGES stream"
        )
    return image


def group_deltas(
    record: StreamRecord, config: CounterConfig, *, ignored: list[str] | None = None
) -> dict[str, list[Number]]:
    """What one record adds to which group: ``{group: [count delta, sum delta]}``.

    Groups whose deltas are both zero are left out, so an empty dict means the
    record contributes nothing (and needs no marker).

    Parameters
    ----------
    record : StreamRecord
    config : CounterConfig
    ignored : list of str, optional
        Receives a description of each group value that was ignored (wrong type).

    Returns
    -------
    dict
        Group string -> ``[count delta, sum delta]`` (``int`` / ``Decimal``).

    Raises
    ------
    ValueError
        If an image the record needs is missing (wrong stream view type) or
        holds malformed DynamoDB JSON.

    Examples
    --------
    >>> config = CounterConfig("counts", "ListId", sum_source_attribute="points")
    >>> moved = StreamRecord.from_lambda({"eventName": "MODIFY", "dynamodb": {
    ...     "SequenceNumber": "1",
    ...     "OldImage": {"ListId": {"S": "a"}, "points": {"N": "2.5"}},
    ...     "NewImage": {"ListId": {"S": "b"}, "points": {"N": "3"}}}})
    >>> group_deltas(moved, config)
    {'a': [-1, Decimal('-2.5')], 'b': [1, 3]}
    """
    deltas: dict[str, list[Number]] = {}
    sides = []
    if record.event_name != "INSERT":
        sides.append((_image(record, "old"), -1))
    if record.event_name != "REMOVE":
        sides.append((_image(record, "new"), 1))
    with decimal.localcontext(_EXACT):
        for image, sign in sides:
            try:
                group = _group_of(image, config.group_attribute)
            except _Ignored as why:
                if ignored is not None:
                    ignored.append(str(why))
                continue
            if group is None:
                continue
            amount = _amount_of(image, config.sum_source_attribute)
            delta = deltas.setdefault(group, [0, 0])
            delta[0] += sign
            delta[1] = delta[1] + amount if sign > 0 else delta[1] - amount
    return {group: delta for group, delta in deltas.items() if delta[0] or delta[1]}


# --- planning: records -> ordered sub-batches -----------------------------------------


class _Contribution:
    """One contributing record: its position, marker and deltas."""

    __slots__ = ("index", "sequence_number", "event_id", "deltas", "expires_at")

    def __init__(
        self,
        index: int,
        sequence_number: str,
        event_id: str,
        deltas: dict[str, list[Number]],
        expires_at: int,
    ) -> None:
        self.index = index
        self.sequence_number = sequence_number
        self.event_id = event_id
        self.deltas = deltas
        self.expires_at = expires_at


class _SubBatch:
    """Consecutive records ``start..`` and the contributing ones among them."""

    __slots__ = ("start", "sequence_number", "event_id", "contributions", "groups")

    def __init__(self, start: int, sequence_number: str, event_id: Any) -> None:
        self.start = start
        self.sequence_number = sequence_number  # of the record at ``start``
        self.event_id = event_id
        self.contributions: list[_Contribution] = []
        self.groups: set[str] = set()

    def fits(self, contribution: _Contribution) -> bool:
        new_groups = contribution.deltas.keys() - self.groups
        items = len(self.contributions) + 1 + len(self.groups) + len(new_groups)
        return items <= MAX_TRANSACTION_ITEMS

    def add(self, contribution: _Contribution) -> None:
        self.contributions.append(contribution)
        self.groups.update(contribution.deltas)


def _error_code(exc: Exception) -> str | None:
    # botocore's ClientError, read duck-typed so botocore is never imported here.
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        return code if isinstance(code, str) else None
    return None


def _cancellation_codes(exc: Exception) -> list[Any]:
    response = getattr(exc, "response", None)
    reasons = response.get("CancellationReasons") if isinstance(response, dict) else None
    if not isinstance(reasons, list):
        return []
    return [r.get("Code") if isinstance(r, dict) else None for r in reasons]


class GroupCounter:
    """Apply the records of a stream event to the counter table, exactly once.

    Parameters
    ----------
    config : CounterConfig
    dynamodb_client : object, optional
        Anything with boto3's ``transact_write_items``. Default: a boto3
        DynamoDB client, created on first use.
    sleep : callable, optional
        Called with seconds between retries. Default: ``time.sleep``.
    clock : callable, optional
        Epoch seconds, for markers of records without ``ApproximateCreationDateTime``.
        Default: ``time.time``.
    logger : logging.Logger, optional
        Default: the ``ddb_stream_runtime.counter`` logger.

    Examples
    --------
    >>> class FakeDynamoDB:
    ...     def transact_write_items(self, TransactItems, ClientRequestToken):
    ...         self.items = TransactItems
    >>> ddb = FakeDynamoDB()
    >>> counter = GroupCounter(CounterConfig("counts", "ListId"), dynamodb_client=ddb)
    >>> counter.count({"Records": [{
    ...     "eventID": "e1", "eventName": "INSERT",
    ...     "dynamodb": {"ApproximateCreationDateTime": 1700000000, "SequenceNumber": "111",
    ...                  "NewImage": {"ListId": {"S": "groceries"}}}}]})
    {'batchItemFailures': []}
    >>> [sorted(item) for item in ddb.items]
    [['Put'], ['Update']]
    >>> ddb.items[0]["Put"]["Item"], ddb.items[1]["Update"]["ExpressionAttributeValues"]
    ... # doctest: +NORMALIZE_WHITESPACE
    ({'pk': {'S': '__applied__#e1'}, 'expiresAt': {'N': '1700172800'}},
     {':count': {'N': '1'}})
    """

    def __init__(
        self,
        config: CounterConfig,
        *,
        dynamodb_client: Any = None,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._dynamodb = dynamodb_client
        self._sleep = sleep
        self._clock = clock
        self._log = logger or _LOGGER
        self._random = random.Random()

    def count(self, event: dict[str, Any]) -> PartialBatchResponse:
        """Apply every record of ``event``; report the first record not applied.

        Parameters
        ----------
        event : dict
            A DynamoDB stream event (``NEW_AND_OLD_IMAGES``).

        Returns
        -------
        PartialBatchResponse
            No failures, or exactly one: the first record of the sub-batch
            that could not be written, or a malformed record.

        Raises
        ------
        TypeError
            If ``event`` is not a stream event.
        """
        batch = read_batch(event)
        records = batch.entries
        sub_batches, failure = self._plan(records)
        transactions = 0
        for sub_batch in sub_batches:
            failed, used = self._commit(sub_batch)
            transactions += used
            if failed is not None:
                failure = failed  # earlier than a planning failure: planning stopped there
                break
        self._log.debug(
            "counter: %d records, %d sub-batches, %d transactions, %d failed",
            len(records),
            len(sub_batches),
            transactions,
            0 if failure is None else 1,
        )
        if failure is None and not batch.rejected:
            return {"batchItemFailures": []}
        if failure is not None:
            self._report(failure, len(records))
        undone = None if failure is None else failure.index
        return {"batchItemFailures": batch.failures(undone_from=undone)}

    # -- planning

    def _plan(self, records: list[Entry]) -> tuple[list[_SubBatch], _Failure | None]:
        """Cut the records into ordered sub-batches; stop at the first unusable record."""
        sub_batches: list[_SubBatch] = []
        current: _SubBatch | None = None
        seen: set[str] = set()
        ignored: list[str] = []
        failure = None
        for index, entry in enumerate(records):
            try:
                record = entry.get()
                deltas = group_deltas(record, self.config, ignored=ignored)
                if deltas:
                    contribution = self._contribution(index, record, deltas)
            except Exception as exc:  # one bad record stops the plan, never the invocation
                failure = _Failure(
                    index, entry.identifier, entry.event_id, f"{type(exc).__name__}: {exc}"
                )
                break
            if current is None:
                current = _SubBatch(index, entry.identifier, record.event_id)
                sub_batches.append(current)
            if not deltas:
                continue  # no effect, no marker: it rides along with its sub-batch
            if contribution.event_id in seen:
                continue  # the same record twice in one event: apply it once
            seen.add(contribution.event_id)
            if not current.fits(contribution):
                current = _SubBatch(index, entry.identifier, record.event_id)
                sub_batches.append(current)
            current.add(contribution)
        if ignored:
            self._log.warning(
                "counter: %d group values ignored (only non-empty S and N values name a "
                "group), e.g. %s",
                len(ignored),
                ignored[0],
            )
        # Only a first sub-batch can be empty (no record contributes): nothing to write.
        return [s for s in sub_batches if s.contributions], failure

    def _contribution(
        self, index: int, record: StreamRecord, deltas: dict[str, list[Number]]
    ) -> _Contribution:
        event_id = record.event_id
        if record.source != KINESIS and (not isinstance(event_id, str) or not event_id):
            raise ValueError("record has no eventID, so it cannot be applied exactly once")
        identity = record.identity  # the eventID, or on Kinesis a hash of the change
        try:
            micros = record.approximate_creation_micros
        except MalformedRecordError:
            micros = None
        # Hand-made events only lack the timestamp: real records carry it.
        created = micros // 1_000_000 if micros is not None else int(self._clock())
        retention = self.config.marker_retention_seconds or MARKER_RETENTION_BY_SOURCE.get(
            record.source, MARKER_TTL_SECONDS
        )
        return _Contribution(
            index, record.item_identifier or _WHOLE_BATCH, identity, deltas, created + retention
        )

    # -- writing

    def _transaction(self, contributions: list[_Contribution]) -> list[TransactItem]:
        config = self.config
        table, pk = config.table_name, config.partition_key
        items: list[TransactItem] = []
        totals: dict[str, list[Number]] = {}  # insertion order: deterministic requests
        with decimal.localcontext(_EXACT):
            for c in contributions:
                items.append(
                    {
                        "Put": {
                            "TableName": table,
                            "Item": {
                                pk: {"S": marker_key(c.event_id)},
                                config.marker_ttl_attribute: {"N": str(c.expires_at)},
                            },
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": pk},
                        }
                    }
                )
                for group, (count, amount) in c.deltas.items():
                    total = totals.setdefault(group, [0, 0])
                    total[0] += count
                    total[1] += amount
        summing = config.sum_source_attribute is not None
        for group, (count, amount) in totals.items():
            if not count and not amount:
                continue  # nets to zero: nothing to write (the markers still go in)
            names = {"#count": config.count_attribute}
            values = {":count": {"N": str(count)}}
            expression = "ADD #count :count"
            if summing:
                names["#sum"] = config.sum_attribute
                values[":sum"] = {"N": str(amount)}
                expression += ", #sum :sum"
            items.append(
                {
                    "Update": {
                        "TableName": table,
                        "Key": {pk: {"S": group}},
                        "UpdateExpression": expression,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        return items

    def _commit(self, sub_batch: _SubBatch) -> tuple[_Failure | None, int]:
        """Write one sub-batch; the failure to report (or None) and the transactions sent."""
        if self._dynamodb is None:
            self._dynamodb = aws_client("dynamodb")
        pending = list(sub_batch.contributions)
        attempt = 0
        sent = 0
        reason = ""
        while pending:
            items = self._transaction(pending)
            token = hashlib.sha256(_encode_canonical(items).encode()).hexdigest()[:_TOKEN_LENGTH]
            sent += 1
            try:
                self._dynamodb.transact_write_items(TransactItems=items, ClientRequestToken=token)
                return None, sent
            except Exception as exc:  # classified below; nothing escapes the invocation
                code = _error_code(exc)
                reason = f"{type(exc).__name__}: {exc}"
                if code == _CANCELLED:
                    codes = _cancellation_codes(exc)
                    applied = {
                        i for i, c in enumerate(codes[: len(pending)]) if c == _ALREADY_APPLIED
                    }
                    others = [c for c in codes if c not in _NO_REASON and c != _ALREADY_APPLIED]
                    if applied:
                        self._log.info(
                            "counter: %d records already applied by an earlier delivery, "
                            "skipping them: %s",
                            len(applied),
                            ", ".join(pending[i].sequence_number for i in sorted(applied)),
                        )
                        pending = [c for i, c in enumerate(pending) if i not in applied]
                        if not others or not pending:
                            continue  # progress made, nothing transient: no attempt used
                    if any(c in _PERMANENT_REASONS for c in others):
                        break
                elif code in _PERMANENT_ERRORS:
                    break
            attempt += 1
            if attempt >= self.config.max_attempts:
                break
            delay = self.config.backoff_seconds * 2 ** (attempt - 1)
            self._sleep(delay * (0.5 + self._random.random() / 2))  # jitter: shards collide
        else:
            return None, sent  # every record had been applied before
        failure = _Failure(
            sub_batch.start, sub_batch.sequence_number, sub_batch.event_id, reason
        )
        return failure, sent

    def _report(self, failure: _Failure, total: int) -> BatchItemFailure:
        self._log.error(
            "counter: record %s (event id %s) and the records after it were not "
            "applied: %s; stopping so Lambda re-sends from it (records already applied "
            "are skipped by their markers); the %d records before it are applied",
            failure.sequence_number or "<no SequenceNumber: failing the whole batch>",
            failure.event_id,
            failure.reason,
            failure.index,
            extra={
                "sequence_number": failure.sequence_number or None,
                "event_id": failure.event_id,
                "records_applied_before": failure.index,
                "records_not_applied": total - failure.index,
            },
        )
        return {"itemIdentifier": failure.sequence_number}


@functools.lru_cache(maxsize=1)
def _default_counter() -> GroupCounter:
    # Read once per execution environment; a configuration error surfaces on every call.
    return GroupCounter(CounterConfig.from_env())


def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """The counter Lambda's entry point (``ddb_stream_runtime.counter.handler``).

    Configured by environment variables, see the module docstring.
    """
    return _default_counter().count(event)
