"""The TtlArchiver's Lambda: expired (removed) items -> S3 objects, or an archive table.

Sources: a DynamoDB stream, an SQS queue of the SNS fan-out, or a Kinesis data
stream fed by the table (see :mod:`ddb_stream_runtime.intake`).

The construct's event source already filters to TTL expiries (or to every
REMOVE, when manual deletes are archived too), so every REMOVE received is
archived. Anything else, or a REMOVE without an ``OldImage`` (a ``KEYS_ONLY``
or ``NEW_IMAGE`` stream), is malformed: it fails with its identifier
(``SequenceNumber``, SQS ``messageId`` or Kinesis ``sequenceNumber``).

Configuration (environment variables, read on the first invocation)
-------------------------------------------------------------------
``ARCHIVE_BUCKET``
    S3 mode: the bucket to write to.
``ARCHIVE_PREFIX``
    S3 mode: key prefix, relative and ending in ``/``. Default: ``archive/``.
``ARCHIVE_TABLE``
    Table mode: the table to write to.
``ARCHIVE_LAYOUT``
    S3 mode: ``auto`` (default: one object per invocation on a DynamoDB
    stream, one object per record from SQS or Kinesis) or ``record`` (one
    object per record from every source).

Exactly one of ``ARCHIVE_BUCKET`` and ``ARCHIVE_TABLE``.

S3 mode, one object per record (SQS, Kinesis, or ``ARCHIVE_LAYOUT=record``)
-------------------------------------------------------------------------
SQS redelivers and re-forms batches, Kinesis duplicates records: any object
that groups records by batch would be written again, under another key, when
a record comes back in a batch of another composition. So each record gets its
own object, whose key depends on the record alone::

    {prefix}{tableName}/dt=YYYY-MM-DD/{identity}.json.gz

(the record's ``eventID``; on Kinesis a hash of the change itself, see
:attr:`~ddb_stream_runtime.records.StreamRecord.identity`, so a duplicate with
another ``eventID`` still finds its first copy). The put is conditional
(``If-None-Match: *``): S3 answers 412 Precondition Failed when the key exists,
which here means "already archived", a success, so a redelivered record never
writes a second copy, not even a second version in a versioned bucket (S3 user
guide, *conditional-writes*). A 409 ``ConditionalRequestConflict`` (a
concurrent put of the same key) fails the record; its retry finds the object.
Puts run concurrently (16 at a time). Failures: every record not archived is
reported by the source's rules (:meth:`~ddb_stream_runtime.intake.Batch.failures`).
Cost: one ``PutObject`` per record instead of one per invocation.

S3 mode, one object per invocation (DynamoDB stream, ``ARCHIVE_LAYOUT=auto``)
---------------------------------------------------------------------------
One gzip JSON-lines object per invocation, written with one ``PutObject``::

    {prefix}{tableName}/dt=YYYY-MM-DD/{firstSeq}-{lastSeq}.jsonl.gz

The date (UTC) is the first record's ``ApproximateCreationDateTime``
(``dt=unknown`` if it has none) and the two sequence numbers are those of the
first and last archived record: a retried batch rewrites the same key, with
the same bytes (a fixed gzip header, ``mtime`` 0), instead of adding a
duplicate. Each line holds one record (see :class:`ArchiveLine`) with the
``Keys`` and ``OldImage`` as the stream delivered them: lossless DynamoDB JSON
(B values are base64 text), never deserialized. ``ContentType`` is ``application/x-ndjson``,
``ContentEncoding`` is ``gzip``. If the put fails nothing was written and the
batch's first record is reported.

Table mode
----------
``BatchWriteItem`` puts of each ``OldImage`` as it is, in stream order, 25 per
call. The archive table needs the source's key schema: a call never holds two
puts for one key (DynamoDB rejects that), so when a key repeats within a call
the later image wins, as it would have if written one after the other.
``UnprocessedItems`` are retried with a short exponential backoff; the earliest
record whose image was still not written is reported and later calls are not
made. An archive table must not expire items on the source's TTL attribute:
every archived item would be past its expiry.

Delivery semantics
------------------
At least once. Lambda re-sends the reported record and everything after it.
One object per record: exactly one copy of each record, whatever the source.
One object per invocation (stream only): a retry that starts at the same
record with the same records rewrites the same key with the same bytes, but a
retry of another composition (``bisect_batch_on_error`` halves, a timed-out
batch re-read with more records) writes other keys: a record can then be in
two objects, so consumers deduplicate by ``sequenceNumber``, or set
``ARCHIVE_LAYOUT=record``. That layout is kept as the stream default because it
makes one request per invocation instead of one per record.

Table mode: puts are keyed by the item's key, so a redelivered record rewrites
the same item with the same image (idempotent, never a second copy). From SQS
or Kinesis, two removals of one key (deleted, re-created, deleted again within
the redelivery window) may arrive in either order, and the table keeps the
image that arrived last (BatchWriteItem has no conditions): use S3 mode where
every removal must be kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ._aws import aws_client, check_retry_settings, client_image
from .batch import _Failure
from .intake import DYNAMODB, Batch, Entry, read_batch
from .records import MalformedRecordError, StreamRecord

if TYPE_CHECKING:
    from .batch import BatchItemFailure, PartialBatchResponse

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_PREFIX",
    "MAX_BATCH_WRITE",
    "ArchiveLine",
    "Archiver",
    "ArchiverConfig",
    "archive_key",
    "handler",
    "record_key",
]

_LOGGER = logging.getLogger(__name__)

#: The S3 key prefix unless ``ARCHIVE_PREFIX`` says otherwise.
DEFAULT_PREFIX = "archive/"
#: The archive objects' ``ContentType`` (their ``ContentEncoding`` is ``gzip``).
CONTENT_TYPE = "application/x-ndjson"
#: BatchWriteItem's limit of requests per call.
MAX_BATCH_WRITE = 25
#: Per-record puts in flight at once.
PUT_CONCURRENCY = 16
Layout = Literal["auto", "record"]
_LAYOUTS = ("auto", "record")
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")
_WHOLE_BATCH = ""  # Lambda reads an empty itemIdentifier as "the whole batch failed"
_UNKNOWN_TABLE = "_unknown"
_UNKNOWN_DATE = "unknown"
# Level 6 (zlib's default): about as small as 9 on JSON lines, at a fraction of the time.
_GZIP_LEVEL = 6
# Magic, deflate, no flags, mtime 0, no extra flags, OS 255 (unknown).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

# Built once. check_circular=False: json.loads output has no cycles, and skipping the
# check is faster. ensure_ascii keeps every line ASCII: no string can fail to encode.
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _base64_text(value: Any) -> str:
    # The client hands B values back as bytes; the stream's Keys hold base64 text.
    if isinstance(value, (bytes, bytearray)):
        return b64encode(value).decode("ascii")
    raise TypeError(f"not json: {type(value).__name__}")


# Canonical JSON of a key (stream form or client form): the dedup key of a put.
_encode_key = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=_base64_text).encode


class ArchiveLine(TypedDict):
    """One line of an S3 archive object: one removed item."""

    eventName: str
    sequenceNumber: str | None  # None for records read from Kinesis (which carry none)
    approximateCreationTime: str | None  # ISO-8601 UTC, milliseconds: 2024-06-10T20:06:16.500Z
    ttlExpiry: bool
    keys: dict[str, Any]  # DynamoDB JSON, as in the stream record
    oldImage: dict[str, Any]  # DynamoDB JSON, as in the stream record


@dataclass(frozen=True)
class ArchiverConfig:
    """Where the archiver writes; validated on creation.

    Parameters
    ----------
    bucket : str, optional
        S3 mode: the bucket. Default: None.
    table : str, optional
        Table mode: the archive table. Default: None.
    prefix : str, optional
        S3 key prefix, relative and ending in ``/``. Default: ``"archive/"``.
    layout : {"auto", "record"}, optional
        S3 mode: ``"auto"`` writes one object per invocation on a DynamoDB stream
        and one per record from SQS or Kinesis; ``"record"`` one per record from
        every source. Default: ``"auto"``.
    max_attempts : int, optional
        BatchWriteItem attempts while ``UnprocessedItems`` remain. Default: 3.
    backoff_seconds : float, optional
        Sleep before the 2nd attempt, doubled before each later one. Default: 0.05.

    Raises
    ------
    ValueError
        Unless exactly one of ``bucket`` and ``table`` is given, or if a value
        is invalid; the message shows it.

    Examples
    --------
    >>> ArchiverConfig.from_env({"ARCHIVE_BUCKET": "my-archive"})
    ... # doctest: +NORMALIZE_WHITESPACE
    ArchiverConfig(bucket='my-archive', table=None, prefix='archive/', layout='auto',
                   max_attempts=3, backoff_seconds=0.05)
    >>> ArchiverConfig.from_env({"ARCHIVE_BUCKET": "my-archive", "ARCHIVE_TABLE": "archive"})
    Traceback (most recent call last):
    ...
    ValueError: set exactly one of ARCHIVE_BUCKET and ARCHIVE_TABLE, got both \
(bucket 'my-archive', table 'archive')
    """

    bucket: str | None = None
    table: str | None = None
    prefix: str = DEFAULT_PREFIX
    layout: Layout = "auto"
    max_attempts: int = 3
    backoff_seconds: float = 0.05

    def __post_init__(self) -> None:
        for name in ("bucket", "table"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
        if self.bucket is not None and self.table is not None:
            raise ValueError(
                "set exactly one of ARCHIVE_BUCKET and ARCHIVE_TABLE, got both "
                f"(bucket {self.bucket!r}, table {self.table!r})"
            )
        if self.bucket is None and self.table is None:
            raise ValueError(
                "set exactly one of ARCHIVE_BUCKET (archive to s3) and ARCHIVE_TABLE "
                "(archive to a table), got neither"
            )
        prefix = self.prefix
        if (
            not isinstance(prefix, str)
            or not prefix
            or prefix.startswith("/")
            or (not prefix.endswith("/"))
        ):
            raise ValueError(f"prefix must be non-empty, relative and end with '/', got {prefix!r}")
        if self.layout not in _LAYOUTS:
            raise ValueError(f"layout must be 'auto' or 'record', got {self.layout!r}")
        check_retry_settings(self.max_attempts, self.backoff_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ArchiverConfig:
        """Read ``ARCHIVE_BUCKET``, ``ARCHIVE_PREFIX``, ``ARCHIVE_TABLE`` and ``ARCHIVE_LAYOUT``.

        Parameters
        ----------
        environ : mapping, optional
            Default: ``os.environ``. Empty values count as unset.

        Returns
        -------
        ArchiverConfig

        Raises
        ------
        ValueError
            Unless exactly one of the bucket and the table is set, or if the
            prefix is invalid.
        """
        env = os.environ if environ is None else environ
        return cls(
            bucket=env.get("ARCHIVE_BUCKET") or None,
            table=env.get("ARCHIVE_TABLE") or None,
            prefix=env.get("ARCHIVE_PREFIX") or DEFAULT_PREFIX,
            layout=env.get("ARCHIVE_LAYOUT") or "auto",  # type: ignore[arg-type]
        )


def archive_key(
    prefix: str,
    table_name: str | None,
    first_time: datetime | None,
    first_sequence: str,
    last_sequence: str,
) -> str:
    """The S3 key of the object holding records ``first_sequence`` to ``last_sequence``.

    Parameters
    ----------
    prefix : str
        E.g. ``"archive/"``.
    table_name : str or None
        The source table (``"_unknown"`` if None: a hand-made event).
    first_time : datetime or None
        The first record's approximate creation time (UTC); None gives ``dt=unknown``.
    first_sequence, last_sequence : str
        The first and last archived record's sequence numbers.

    Returns
    -------
    str

    Examples
    --------
    >>> from datetime import timezone
    >>> archive_key("archive/", "sessions", datetime(2024, 6, 10, 23, 59, tzinfo=timezone.utc),
    ...             "111", "333")
    'archive/sessions/dt=2024-06-10/111-333.jsonl.gz'
    """
    day = _UNKNOWN_DATE if first_time is None else first_time.strftime("%Y-%m-%d")
    table = table_name or _UNKNOWN_TABLE
    return f"{prefix}{table}/dt={day}/{first_sequence}-{last_sequence}.jsonl.gz"


def record_key(prefix: str, table_name: str | None, created: datetime | None, identity: str) -> str:
    """The S3 key of the object holding one record: a function of the record alone.

    Parameters
    ----------
    prefix : str
        E.g. ``"archive/"``.
    table_name : str or None
        The source table (``"_unknown"`` if None).
    created : datetime or None
        The record's approximate creation time (UTC); None gives ``dt=unknown``.
    identity : str
        :attr:`StreamRecord.identity`; kept as is if it is a safe key part
        (letters, digits, ``._-``, at most 200), else its SHA-256.

    Examples
    --------
    >>> from datetime import timezone
    >>> record_key("archive/", "sessions", datetime(2024, 6, 10, 23, 59, tzinfo=timezone.utc),
    ...            "c81e728d9d4c2f636f067f89cc14862c")
    'archive/sessions/dt=2024-06-10/c81e728d9d4c2f636f067f89cc14862c.json.gz'
    >>> record_key("archive/", "sessions", None, "sha256:ab12")
    'archive/sessions/dt=unknown/sha256-ab12.json.gz'
    """
    day = _UNKNOWN_DATE if created is None else created.strftime("%Y-%m-%d")
    name = identity.replace(":", "-", 1)
    if not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
        name = "sha256-" + hashlib.sha256(identity.encode("utf-8")).hexdigest()
    return f"{prefix}{table_name or _UNKNOWN_TABLE}/dt={day}/{name}.json.gz"


def _gzip(data: bytes) -> bytes:
    """gzip with a fixed header (mtime 0, no name, OS "unknown"): same input, same bytes.

    ``gzip.compress(mtime=0)`` writes OS 255 on some Python versions and 3 on
    others; a retry must not depend on which runtime ran the first attempt.
    """
    deflate = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(data) + deflate.flush()
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return _GZIP_HEADER + body + trailer


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    # Fixed width (always milliseconds) and "Z": sorts as text, Athena parses it.
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _removed_image(record: StreamRecord) -> dict[str, Any]:
    """The ``OldImage`` to archive; anything else than a REMOVE with one is malformed."""
    if record.event_name != "REMOVE":
        raise MalformedRecordError(
            f"record {record.sequence_number} is a {record.event_name}: the archiver only "
            "receives REMOVE records (check the event source's filter)"
        )
    image = record.raw_old_image
    if not isinstance(image, dict) or not image:
        raise MalformedRecordError(
            f"REMOVE record {record.sequence_number} has no OldImage: the archiver needs a "
            f"stream with old images, got {record.stream_view_type!r}"
        )
    if not isinstance(record.raw_keys, dict) or not record.raw_keys:
        raise MalformedRecordError(f"REMOVE record {record.sequence_number} has no Keys")
    return image


def _malformed(index: int, entry: Entry, exc: Exception) -> _Failure:
    return _Failure(index, entry.identifier, entry.event_id, f"{type(exc).__name__}: {exc}")


def _line(record: StreamRecord) -> str:
    """One archive line (JSON) for a REMOVE record; raises if the record is malformed."""
    image = _removed_image(record)
    line: ArchiveLine = {
        "eventName": record.event_name,
        "sequenceNumber": record.sequence_number,
        "approximateCreationTime": _iso(record.approximate_creation_time),
        "ttlExpiry": record.is_ttl_expiry,
        "keys": record.raw_keys,
        "oldImage": image,
    }
    return _encode(line)


def _is_precondition_failed(exc: Exception) -> bool:
    """S3's 412 to ``If-None-Match: *``: the object already exists."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return error.get("Code") == "PreconditionFailed" or status == 412


class _Put:
    """One PutRequest of a BatchWriteItem call and the records it stands for."""

    __slots__ = ("index", "sequence_number", "event_id", "raw_keys", "image")

    def __init__(self, record: StreamRecord, index: int, image: dict[str, Any]) -> None:
        # The first record for this key in the call: reported if the put is never done.
        self.index = index
        self.sequence_number = record.item_identifier or _WHOLE_BATCH
        self.event_id = record.event_id
        self.raw_keys = record.raw_keys
        # The latest record's OldImage, as the client takes it: a later one replaces it.
        self.image = image


class Archiver:
    """Archive the REMOVE records of a stream event to S3 or to a table.

    Parameters
    ----------
    config : ArchiverConfig
    s3_client : object, optional
        Anything with boto3's ``put_object``. Default: a boto3 S3 client,
        created on first use.
    dynamodb_client : object, optional
        Anything with boto3's ``batch_write_item``. Default: a boto3 DynamoDB
        client, created on first use.
    sleep : callable, optional
        Called with seconds between BatchWriteItem attempts. Default: ``time.sleep``.
    logger : logging.Logger, optional
        Default: the ``ddb_stream_runtime.archiver`` logger.

    Examples
    --------
    >>> import gzip, json
    >>> class FakeS3:
    ...     def put_object(self, **params):
    ...         self.params = params
    >>> s3 = FakeS3()
    >>> archiver = Archiver(ArchiverConfig(bucket="my-archive"), s3_client=s3)
    >>> archiver.archive({"Records": [{
    ...     "eventName": "REMOVE",
    ...     "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/sessions/stream/x",
    ...     "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
    ...     "dynamodb": {"ApproximateCreationDateTime": 1718049976.5, "SequenceNumber": "111",
    ...                  "Keys": {"pk": {"S": "a"}}, "OldImage": {"pk": {"S": "a"}}}}]})
    {'batchItemFailures': []}
    >>> s3.params["Key"]
    'archive/sessions/dt=2024-06-10/111-111.jsonl.gz'
    >>> line = json.loads(gzip.decompress(s3.params["Body"]))
    >>> line["approximateCreationTime"], line["ttlExpiry"], line["oldImage"]
    ('2024-06-10T20:06:16.500Z', True, {'pk': {'S': 'a'}})
    """

    def __init__(
        self,
        config: ArchiverConfig,
        *,
        s3_client: Any = None,
        dynamodb_client: Any = None,
        sleep: Callable[[float], object] = time.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._s3 = s3_client
        self._dynamodb = dynamodb_client
        self._sleep = sleep
        self._log = logger or _LOGGER
        self._pool: Any = None
        self._pool_lock = threading.Lock()

    def archive(self, event: dict[str, Any]) -> PartialBatchResponse:
        """Archive every record of ``event``; report the earliest one not archived.

        Parameters
        ----------
        event : dict
            A DynamoDB stream event. A missing or empty ``Records`` is nothing
            to do (and no call is made).

        Returns
        -------
        PartialBatchResponse
            No failures, or exactly one: the ``SequenceNumber`` of the earliest
            record not archived (an empty identifier if it has none, which
            Lambda treats as a failure of the whole batch).

        Raises
        ------
        TypeError
            If ``event`` is not a stream event.
        """
        batch = read_batch(event, s3_client=self._s3)
        entries = batch.entries
        if self.config.bucket is not None and (
            self.config.layout == "record" or batch.source != DYNAMODB
        ):
            return self._to_s3_per_record(batch)
        if self.config.bucket is not None:
            failure = self._to_s3(entries)
        else:
            failure = self._to_table(entries)
        archived = len(entries) if failure is None else failure.index
        self._log.debug("archiver: %d of %d records archived", archived, len(entries))
        if failure is None and not batch.rejected:
            return {"batchItemFailures": []}
        if failure is not None:
            self._report(failure, len(entries))
        return {
            "batchItemFailures": batch.failures(
                undone_from=None if failure is None else failure.index
            )
        }

    # -- S3 mode

    def _to_s3(self, entries: list[Entry]) -> _Failure | None:
        lines: list[str] = []
        failure = None
        first: StreamRecord | None = None
        first_time: datetime | None = None
        last_sequence = ""
        for index, entry in enumerate(entries):
            try:
                record = entry.get()
                created = record.approximate_creation_time
                lines.append(_line(record))
            except Exception as exc:  # one bad record ends the object, never the invocation
                failure = _malformed(index, entry, exc)
                break
            if first is None:
                first, first_time = record, created
            last_sequence = entry.identifier
        if first is None:
            return failure  # nothing to write: no call
        key = archive_key(
            self.config.prefix, first.table_name, first_time, entries[0].identifier, last_sequence
        )
        lines.append("")  # a final newline
        body = _gzip("\n".join(lines).encode("ascii"))
        try:
            if self._s3 is None:
                self._s3 = aws_client("s3")
            self._s3.put_object(
                Bucket=self.config.bucket,
                Key=key,
                Body=body,
                ContentType=CONTENT_TYPE,
                ContentEncoding="gzip",
            )
        except Exception as exc:  # botocore has already retried; nothing was written
            return _Failure(
                0,
                entries[0].identifier,
                first.event_id,
                f"put_object of {key!r} raised {type(exc).__name__}: {exc}",
            )
        return failure

    def _to_s3_per_record(self, batch: Batch) -> PartialBatchResponse:
        """One conditional PutObject per record; report what was not archived."""
        entries = batch.entries
        failed: list[int] = []
        planned: list[tuple[int, str, bytes]] = []
        for position, entry in enumerate(entries):
            try:
                record = entry.get()
                body = _gzip((_line(record) + "\n").encode("ascii"))
                key = record_key(
                    self.config.prefix,
                    record.table_name,
                    record.approximate_creation_time,
                    record.identity,
                )
            except Exception as exc:  # one bad record fails alone
                self._report_record(_malformed(position, entry, exc))
                failed.append(position)
                continue
            planned.append((position, key, body))
        if planned:
            if self._s3 is None:
                self._s3 = aws_client("s3", max_pool_connections=PUT_CONCURRENCY)
            results = self._executor().map(lambda p: self._put_once(p[1], p[2]), planned)
            for (position, _key, _body), error in zip(planned, results, strict=True):
                if error is not None:
                    entry = entries[position]
                    self._report_record(_Failure(position, entry.identifier, entry.event_id, error))
                    failed.append(position)
        self._log.debug(
            "archiver: %d of %d records archived (one object each)",
            len(entries) - len(failed),
            batch.total,
        )
        return {"batchItemFailures": batch.failures(failed)}

    def _report_record(self, failure: _Failure) -> None:
        self._log.error(
            "archiver: record %s (event id %s) was not archived: %s",
            failure.sequence_number or "<no identifier: failing the whole batch>",
            failure.event_id,
            failure.reason,
            extra={
                "item_identifier": failure.sequence_number or None,
                "event_id": failure.event_id,
            },
        )

    def _put_once(self, key: str, body: bytes) -> str | None:
        """Put one record's object unless it exists; the reason it failed, or None."""
        try:
            self._s3.put_object(
                Bucket=self.config.bucket,
                Key=key,
                Body=body,
                ContentType=CONTENT_TYPE,
                ContentEncoding="gzip",
                IfNoneMatch="*",
            )
        except Exception as exc:  # botocore has already retried throttling and 5xx
            if _is_precondition_failed(exc):
                return None  # archived by an earlier delivery: never a second copy
            return f"put_object of {key!r} raised {type(exc).__name__}: {exc}"
        return None

    def _executor(self) -> Any:
        with self._pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(
                    max_workers=PUT_CONCURRENCY, thread_name_prefix="archiver"
                )
            return self._pool

    # -- table mode

    def _to_table(self, records: list[Entry]) -> _Failure | None:
        chunks, failure = self._plan(records)
        for chunk in chunks:
            failed = self._write_chunk(chunk)
            if failed is not None:
                return failed  # earlier than a planning failure: planning stopped after it
        return failure

    @staticmethod
    def _plan(records: list[Entry]) -> tuple[list[dict[str, _Put]], _Failure | None]:
        """Cut the records into calls of at most 25 distinct keys; stop at a bad record."""
        chunks: list[dict[str, _Put]] = []
        chunk: dict[str, _Put] = {}
        for index, entry in enumerate(records):
            try:
                record = entry.get()
                image = client_image(_removed_image(record))  # B values: bytes for the client
                key = _encode_key(record.raw_keys)
            except Exception as exc:  # one bad record stops the plan, never the invocation
                if chunk:
                    chunks.append(chunk)
                return chunks, _malformed(index, entry, exc)
            put = chunk.get(key)
            if put is not None:
                # Two puts of one key in a call are rejected; the later image is the one
                # that would have stayed. (This also holds for a full call: no put added.)
                put.image = image
                continue
            if len(chunk) == MAX_BATCH_WRITE:
                chunks.append(chunk)
                chunk = {}
            chunk[key] = _Put(record, index, image)
        if chunk:
            chunks.append(chunk)
        return chunks, None

    def _write_chunk(self, chunk: dict[str, _Put]) -> _Failure | None:
        """One BatchWriteItem call (plus retries of what stays unprocessed)."""
        table = self.config.table
        pending = dict(chunk)
        requests = {key: {"PutRequest": {"Item": put.image}} for key, put in chunk.items()}
        names = tuple(next(iter(chunk.values())).raw_keys)  # one table: one key schema
        reason = ""
        for attempt in range(1, self.config.max_attempts + 1):
            if attempt > 1:
                self._sleep(self.config.backoff_seconds * 2 ** (attempt - 2))
            try:
                if self._dynamodb is None:
                    self._dynamodb = aws_client("dynamodb")
                response = self._dynamodb.batch_write_item(
                    RequestItems={table: [requests[key] for key in pending]}
                )
            except Exception as exc:  # botocore has already retried throttling and 5xx
                reason = f"batch_write_item raised {type(exc).__name__}: {exc}"
                break  # every put still pending failed
            unprocessed = _unprocessed(response, table, names)
            if unprocessed is None:  # a response we cannot read: never assume success
                reason = "unreadable batch_write_item response"
                continue
            pending = {key: pending[key] for key in unprocessed if key in pending}
            if len(pending) != len(unprocessed):  # an item we did not send: be safe
                pending = dict(chunk)
                reason = "batch_write_item returned unprocessed items it was not sent"
                continue
            if not pending:
                return None
            reason = f"{len(pending)} puts still unprocessed after {attempt} attempts"
        earliest = min(pending.values(), key=lambda p: p.index)
        return _Failure(earliest.index, earliest.sequence_number, earliest.event_id, reason)

    def _report(self, failure: _Failure, total: int) -> BatchItemFailure:
        self._log.error(
            "archiver: record %s (event id %s) was not archived: %s; stopping so "
            "Lambda re-sends it and the %d records after it; the %d records before it "
            "were archived",
            failure.sequence_number or "<no SequenceNumber: failing the whole batch>",
            failure.event_id,
            failure.reason,
            total - failure.index - 1,
            failure.index,
            extra={
                "sequence_number": failure.sequence_number or None,
                "event_id": failure.event_id,
                "records_archived_before": failure.index,
            },
        )
        return {"itemIdentifier": failure.sequence_number}


def _unprocessed(response: Any, table: str | None, names: tuple[str, ...]) -> list[str] | None:
    """The dedup keys of the puts DynamoDB did not process, or None if unreadable."""
    if not isinstance(response, dict):
        return None
    try:
        requests = (response.get("UnprocessedItems") or {}).get(table) or []
        keys = []
        for request in requests:
            item = request["PutRequest"]["Item"]
            keys.append(_encode_key({name: item[name] for name in names}))
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    return keys


@functools.lru_cache(maxsize=1)
def _default_archiver() -> Archiver:
    # Read once per execution environment: configuration errors surface on the
    # first invocation (and every one after it, as the cache keeps no exception).
    return Archiver(ArchiverConfig.from_env())


def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """The archiver Lambda's entry point (``ddb_stream_runtime.archiver.handler``).

    Configured by environment variables, see the module docstring.
    """
    return _default_archiver().archive(event)
