"""One intake for every source of change records: DynamoDB Streams, SQS (SNS fan-out), Kinesis.

Every handler of this package reads its Lambda event through :func:`read_batch`,
which recognizes the source of each record by its ``eventSource`` (or, for
hand-made events without one, by its shape) and unwraps it into the same
:class:`~ddb_stream_runtime.records.StreamRecord`:

================  ==========================================  =========================
``eventSource``   what a record carries                        ``itemIdentifier``
================  ==========================================  =========================
``aws:dynamodb``  the stream record itself                     ``dynamodb.SequenceNumber``
``aws:sqs``       ``body``: the router's published record,     ``messageId``
                  in an SNS envelope or raw (raw message
                  delivery), possibly a claim check in S3
``aws:kinesis``   ``kinesis.data``: base64 of the record       ``kinesis.sequenceNumber``
                  DynamoDB writes to a Kinesis data stream
                  (no ``SequenceNumber``)
================  ==========================================  =========================

A record that cannot be unwrapped (bad JSON, bad base64, a claim check that
cannot be fetched, a malformed record) is not an exception here: its entry
carries the error, raised when a handler asks for the record, so each handler
decides with its own failure rules.

Partial batch responses per source
----------------------------------
What Lambda does with ``batchItemFailures`` differs per source, so what to report
when the record at position *i* fails is decided here, once (:meth:`Batch.failures`):

* **DynamoDB Streams and Kinesis** (ordered shards): Lambda checkpoints at the
  lowest reported sequence number and retries every record after it ("If the
  batchItemFailures array contains multiple items, Lambda uses the record with the
  lowest sequence number as the checkpoint", Lambda developer guide,
  *services-ddb-batchfailurereporting* and *services-kinesis-batchfailurereporting*).
  The earliest failure alone is reported; records after it are not attempted.
* **Standard SQS queue**: only the reported messages return to the queue, the
  others are deleted. Each failed message is reported on its own and the others
  are still processed. Messages that cannot be unwrapped (poison messages) are
  set aside before a handler sees the batch (:attr:`Batch.rejected`) and reported,
  so they never hold up the good ones.
* **FIFO SQS queue** (``eventSourceARN`` ends with ``.fifo``): "your function should
  stop processing messages after the first failure and return all failed and
  unprocessed messages in batchItemFailures" (*services-sqs-errorhandling*): the
  first failure and every message after it are reported.

A record without a usable identifier is reported as ``""``, which Lambda reads as
a failure of the whole batch (at least once: never lost).
"""

from __future__ import annotations

from ._aws import aws_client
from ._claim_check import CLAIM_CHECK_FIELD
from ._lazy import lazy_import
from .records import MalformedRecordError, StreamRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    import base64
    import binascii
    import json
    from collections.abc import Callable, Iterable
    from typing import Any

    from ._types import Source
else:
    # Only SQS and Kinesis bodies need them: a DynamoDB stream's cold start skips them.
    base64 = lazy_import(globals(), "base64", "base64")
    binascii = lazy_import(globals(), "binascii", "binascii")
    json = lazy_import(globals(), "json", "json")

__all__ = [
    "DYNAMODB",
    "KINESIS",
    "SQS",
    "Batch",
    "Entry",
    "Source",
    "read_batch",
    "unwrap_sqs_message",
]

DYNAMODB: Source = "aws:dynamodb"
SQS: Source = "aws:sqs"
KINESIS: Source = "aws:kinesis"

_WHOLE_BATCH = ""  # Lambda reads an empty itemIdentifier as "the whole batch failed"
_FIFO_SUFFIX = ".fifo"


def __getattr__(name: str) -> object:
    # ``Source`` lives in _types: no typing on a pure handler's cold start.
    if name not in ("Source",):  # __path__ too: the import system asks
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _types

    return getattr(_types, name)


class Entry:
    """One record of a Lambda event: its identifier to report, and its record or why not.

    Attributes
    ----------
    index : int
        Position in the event's ``Records``.
    identifier : str
        What a partial batch response reports for it (``""``: none usable).
    raw : object
        The element of ``Records`` as Lambda delivered it.
    """

    __slots__ = ("index", "identifier", "raw", "_unwrap", "_record", "_error")

    def __init__(
        self, index: int, identifier: str, raw: Any, unwrap: Callable[[], StreamRecord]
    ) -> None:
        self.index = index
        self.identifier = identifier
        self.raw = raw
        self._unwrap = unwrap
        self._record: StreamRecord | None = None
        self._error: Exception | None = None

    def resolve(self) -> None:
        """Unwrap now and keep the record (or the error)."""
        if self._record is None and self._error is None:
            try:
                self._record = self._unwrap()
            except Exception as exc:
                self._error = exc

    @property
    def record(self) -> StreamRecord | None:
        """The unwrapped record (unwrapping it now and keeping it), None if it cannot be."""
        self.resolve()
        return self._record

    @property
    def error(self) -> Exception | None:
        """Why the record cannot be unwrapped, or None."""
        self.resolve()
        return self._error

    def get(self) -> StreamRecord:
        """The record, kept for later calls; raises the unwrapping error if there is none."""
        self.resolve()
        if self._record is None:
            raise self._error or MalformedRecordError("record could not be unwrapped")
        return self._record

    def unwrap(self) -> StreamRecord:
        """The record, without keeping it (a batch handled one record at a time stays small)."""
        if self._record is not None or self._error is not None:
            return self.get()
        return self._unwrap()

    @property
    def event_id(self) -> Any:
        """``eventID`` (of the record if unwrapped, else of what Lambda delivered), for logs."""
        if self._record is not None:
            return self._record.event_id
        return self.raw.get("eventID") if isinstance(self.raw, dict) else None


class Batch:
    """The records of one Lambda event, ready for a handler, with the source's failure rules.

    Attributes
    ----------
    source : {"aws:dynamodb", "aws:sqs", "aws:kinesis"}
    fifo : bool
        An SQS FIFO queue.
    entries : list of Entry
        What a handler works on, in delivery order. On a standard SQS queue,
        only the messages that could be unwrapped.
    rejected : list of Entry
        Standard SQS queue only: messages that could not be unwrapped, always
        reported as failures.
    """

    __slots__ = ("source", "fifo", "entries", "rejected")

    def __init__(
        self, source: Source, fifo: bool, entries: list[Entry], rejected: list[Entry]
    ) -> None:
        self.source = source
        self.fifo = fifo
        self.entries = entries
        self.rejected = rejected

    @property
    def ordered(self) -> bool:
        """True for shard sources (DynamoDB Streams, Kinesis): Lambda checkpoints."""
        return self.source != SQS

    @property
    def total(self) -> int:
        return len(self.entries) + len(self.rejected)

    def stops_at_failure(self) -> bool:
        """Whether records after a failure must be left alone (ordered shards, FIFO)."""
        return self.ordered or self.fifo

    def failures(self, failed: Iterable[int] = (), *, undone_from: int | None = None) -> list[Any]:
        """The ``batchItemFailures`` when the given positions (in :attr:`entries`) failed.

        Parameters
        ----------
        failed : iterable of int
            Positions in :attr:`entries` that failed.
        undone_from : int, optional
            Every entry from this position on was not (known to be) done: a handler
            that stopped there. Default: None.

        Returns
        -------
        list of dict
            Ordered shards: the earliest failure only (Lambda retries everything
            after it). FIFO queue: the earliest failure and every message after it.
            Standard queue: every failed message, every undone one, and every rejected one.
        """
        positions = set(failed)
        if undone_from is not None:
            positions.update(range(undone_from, len(self.entries)))
        reported: list[Entry]
        if not positions:
            reported = []
        elif self.ordered:
            reported = [self.entries[min(positions)]]
        elif self.fifo:
            reported = self.entries[min(positions) :]
        else:
            reported = [self.entries[i] for i in sorted(positions)]
        identifiers = [entry.identifier for entry in (*self.rejected, *reported)]
        if _WHOLE_BATCH in identifiers:
            return [{"itemIdentifier": _WHOLE_BATCH}]
        return [{"itemIdentifier": identifier} for identifier in identifiers]


def read_batch(
    event: Any,
    *,
    s3_client: Any = None,
    default_source: Source | None = None,
    lazy: bool = False,
) -> Batch:
    """Unwrap every record of a Lambda event (DynamoDB Streams, SQS or Kinesis).

    Parameters
    ----------
    event : dict
        The Lambda event. A missing or null ``Records`` is an empty batch.
    s3_client : object, optional
        Anything with boto3's ``get_object``, for claim checks. Default: a boto3
        S3 client, created on the first claim check.
    default_source : str, optional
        The source of records that name none (hand-made events). Default: guessed
        from the shape (``body`` -> SQS, ``kinesis`` -> Kinesis, else DynamoDB).
    lazy : bool, optional
        Unwrap each record only when asked (:meth:`Entry.unwrap`), for handlers that
        take one record at a time: every record is then parsed just before it is
        handled and dropped after, which keeps a large batch's memory (and time) down.
        No message is set aside as :attr:`Batch.rejected`: a message that cannot be
        unwrapped fails when its turn comes. Default: False (every record unwrapped
        now, malformed standard-queue messages set aside).

    Returns
    -------
    Batch

    Raises
    ------
    TypeError
        If ``event`` is not an object or its ``Records`` is not a list.

    Examples
    --------
    >>> import base64, json
    >>> data = {"eventID": "e1", "eventName": "INSERT", "tableName": "orders",
    ...         "dynamodb": {"ApproximateCreationDateTime": 1718049976512,
    ...                      "Keys": {"id": {"S": "a"}}}}
    >>> batch = read_batch({"Records": [{"eventSource": "aws:kinesis", "kinesis": {
    ...     "sequenceNumber": "4959", "partitionKey": "x",
    ...     "data": base64.b64encode(json.dumps(data).encode()).decode()}}]})
    >>> record = batch.entries[0].get()
    >>> batch.source, batch.entries[0].identifier, record.keys, record.sequence_number
    ('aws:kinesis', '4959', {'id': 'a'}, None)
    """
    records = _records_list(event)
    get_s3 = (lambda: s3_client) if s3_client is not None else _default_s3
    entries: list[Entry] = []
    rejected: list[Entry] = []
    batch_source: Source | None = None
    fifo = False
    for index, raw in enumerate(records):
        source = _source_of(raw, default_source)
        if batch_source is None:
            batch_source = source
            fifo = source == SQS and _is_fifo(raw)
        entry = _UNWRAP[source](index, raw, get_s3)
        if lazy:
            entries.append(entry)
            continue
        entry.resolve()
        if entry.record is None and source == SQS and not fifo:
            rejected.append(entry)  # a poison message never holds up the others
        else:
            entries.append(entry)
    return Batch(batch_source or default_source or DYNAMODB, fifo, entries, rejected)


# --- per source ---------------------------------------------------------------------------


def _default_s3() -> Any:
    return aws_client("s3")


def _records_list(event: Any) -> list[Any]:
    if not isinstance(event, dict):
        raise TypeError(
            f"expected a lambda event (an object with 'Records'), got {type(event).__name__}"
        )
    records = event.get("Records")
    if records is None:
        return []
    if not isinstance(records, list):
        raise TypeError(f"an event's 'Records' is a list, got {type(records).__name__}")
    return records


def _source_of(raw: Any, default: Source | None) -> Source:
    if isinstance(raw, dict):
        source = raw.get("eventSource")
        if source in (DYNAMODB, SQS, KINESIS):
            return source  # type: ignore[return-value]
        if default is not None:
            return default
        if "body" in raw and "messageId" in raw:
            return SQS
        if isinstance(raw.get("kinesis"), dict):
            return KINESIS
    return default or DYNAMODB


def _is_fifo(raw: Any) -> bool:
    arn = raw.get("eventSourceARN") if isinstance(raw, dict) else None
    return isinstance(arn, str) and arn.endswith(_FIFO_SUFFIX)


def _string(value: Any) -> str:
    return value if isinstance(value, str) and value else _WHOLE_BATCH


def _from_dynamodb(index: int, raw: Any, get_s3: Callable[[], Any]) -> Entry:
    dynamodb = raw.get("dynamodb") if isinstance(raw, dict) else None
    identifier = _string(dynamodb.get("SequenceNumber") if isinstance(dynamodb, dict) else None)
    return Entry(index, identifier, raw, lambda: StreamRecord.from_lambda(raw))


def _from_sqs(index: int, raw: Any, get_s3: Callable[[], Any]) -> Entry:
    identifier = _string(raw.get("messageId") if isinstance(raw, dict) else None)
    return Entry(index, identifier, raw, lambda: unwrap_sqs_message(raw, get_s3))


def _from_kinesis(index: int, raw: Any, get_s3: Callable[[], Any]) -> Entry:
    kinesis = raw.get("kinesis") if isinstance(raw, dict) else None
    identifier = _string(kinesis.get("sequenceNumber") if isinstance(kinesis, dict) else None)
    return Entry(index, identifier, raw, lambda: _unwrap_kinesis(raw, identifier))


def _unwrap_kinesis(raw: Any, identifier: str) -> StreamRecord:
    kinesis = raw.get("kinesis") if isinstance(raw, dict) else None
    if not isinstance(kinesis, dict):
        raise MalformedRecordError("a kinesis record has a 'kinesis' object")
    data = kinesis.get("data")
    if not isinstance(data, str):
        raise MalformedRecordError(
            f"kinesis record {identifier} has no base64 'data', got {type(data).__name__}"
        )
    try:
        change = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise MalformedRecordError(
            f"kinesis record {identifier}: 'data' is not base64 of a json change record "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return StreamRecord.from_kinesis(
        change,
        sequence_number=identifier or None,
        partition_key=kinesis.get("partitionKey"),
        event_source_arn=raw.get("eventSourceARN"),
    )


_UNWRAP: dict[str, Callable[[int, Any, Callable[[], Any]], Entry]] = {
    DYNAMODB: _from_dynamodb,
    SQS: _from_sqs,
    KINESIS: _from_kinesis,
}


# --- one SQS message -> the router's record -------------------------------------------------


def _is_sns_notification(payload: dict[str, Any]) -> bool:
    return payload.get("Type") == "Notification" and isinstance(payload.get("Message"), str)


def _open_sns_notification(payload: dict[str, Any], get_s3: Callable[[], Any]) -> Any:
    return json.loads(payload["Message"])


def _is_claim_check(payload: dict[str, Any]) -> bool:
    return CLAIM_CHECK_FIELD in payload


def _stream_sequence_number(record: Any) -> Any:
    dynamodb = record.get("dynamodb") if isinstance(record, dict) else None
    return dynamodb.get("SequenceNumber") if isinstance(dynamodb, dict) else None


def _fetch_claim_check(payload: dict[str, Any], get_s3: Callable[[], Any]) -> Any:
    location = payload[CLAIM_CHECK_FIELD]
    if not isinstance(location, dict) or not all(
        isinstance(location.get(k), str) and location.get(k) for k in ("bucket", "key")
    ):
        raise MalformedRecordError(f"a claim check names a bucket and a key, got {location!r:.200}")
    response = get_s3().get_object(Bucket=location["bucket"], Key=location["key"])
    record = json.loads(response["Body"].read())
    expected = payload.get("sequenceNumber")
    actual = _stream_sequence_number(record)
    if expected is not None and actual != expected:
        # A reused or overwritten object: processing it would handle the wrong change.
        raise MalformedRecordError(
            f"claim check s3://{location['bucket']}/{location['key']} holds record {actual!r}, "
            f"expected {expected!r}"
        )
    return record


# Envelopes, outermost first: (recognise, open). Each opens at most once.
_ENVELOPES: tuple[
    tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any], Callable[[], Any]], Any]],
    ...,
] = (
    (_is_sns_notification, _open_sns_notification),
    (_is_claim_check, _fetch_claim_check),
)


def unwrap_sqs_message(message: Any, get_s3: Callable[[], Any]) -> StreamRecord:
    """The stream record an SQS message carries (SNS envelope or raw, inline or claim check).

    Parameters
    ----------
    message : dict
        One record of an SQS event.
    get_s3 : callable
        Returns an S3 client (called only for a claim check).

    Returns
    -------
    StreamRecord
        With ``source`` ``"aws:sqs"`` and ``item_identifier`` the ``messageId``.

    Raises
    ------
    MalformedRecordError, ValueError
        If the body is not a stream record (or a claim check cannot be followed).
    """
    if not isinstance(message, dict):
        raise MalformedRecordError(f"an sqs message is an object, got {type(message).__name__}")
    body = message.get("body")
    if not isinstance(body, str):
        raise MalformedRecordError(f"an sqs message has a string 'body', got {type(body).__name__}")
    payload = json.loads(body)
    for recognise, open_ in _ENVELOPES:
        if isinstance(payload, dict) and recognise(payload):
            payload = open_(payload, get_s3)
    message_id = message.get("messageId")
    return StreamRecord(
        payload,
        source=SQS,
        item_identifier=message_id if isinstance(message_id, str) and message_id else None,
    )
