"""Partial-batch processing of change records (``ReportBatchItemFailures``), from any source.

:func:`process_stream_batch` and :func:`stream_handler` take the events of the
three sources a pattern can read (see :mod:`ddb_stream_runtime.intake`): a
DynamoDB stream, an SQS queue of the SNS fan-out, a Kinesis data stream fed by
the table. The record handler gets the same :class:`StreamRecord` from each.

* **DynamoDB stream, Kinesis** (ordered shards): Lambda checkpoints at the
  *lowest* sequence number reported as failed, re-sending that record and
  everything after it. So the processor stops at the first failure and reports
  only that record: handling later records would run their side effects twice.
* **Standard SQS queue**: every message is processed; each failed one (and each
  one whose body is not a record) is reported by ``messageId``, the others are
  deleted by Lambda.
* **FIFO SQS queue**: the processor stops at the first failure and reports it
  and every message after it, as the Lambda developer guide asks
  (*services-sqs-errorhandling*), so the queue's order survives the retry.

What one record can do to its batch
-----------------------------------
A record handler that raises anything but ``KeyboardInterrupt`` fails that record
only: ``SystemExit`` (a ``sys.exit()`` in the handler or a library it calls) and
``MemoryError`` included. The records before it stay done, the response reports it,
and the invocation itself succeeds.

No code inside the process can isolate what ends the process or the invocation:
``os._exit()``, a crash of the interpreter (a signal), the function timeout
(``Sandbox.Timedout``) and running out of memory (Lambda kills the runtime:
``Runtime.OutOfMemory``). The invocation then fails as a whole, without a response,
and what protects the good records is the event source mapping:

* **Streams.** Lambda retries the whole batch; with ``BisectBatchOnFunctionError``
  it splits the batch in halves and retries each, so the good records get through
  in batches without the bad one, which alone ends up in the on-failure destination
  after ``MaximumRetryAttempts`` (or ``MaximumRecordAgeInSeconds``). Records of a
  crashed batch that had already been handled are delivered again (at least once):
  their side effects must be idempotent.
* **SQS** (:mod:`ddb_stream_runtime.processor`): every message of the crashed batch
  returns to the queue after its visibility timeout, and each receive adds one to
  every message's ``ApproximateReceiveCount``. Partial batch responses cannot help,
  since no response was sent, so a good message that keeps sharing a batch with one
  that crashes the runtime is moved to the dead-letter queue with it after
  ``maxReceiveCount`` receives. Keep such handlers out of batches (``batch_size=1``)
  or make the crash a raised exception.
"""

from __future__ import annotations

import sys

from .intake import Batch, Entry, read_batch

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any

    from ._types import BatchItemFailure, LambdaHandler, PartialBatchResponse, RecordHandler

__all__ = [
    "BatchItemFailure",
    "LambdaHandler",
    "PartialBatchResponse",
    "RecordHandler",
    "process_stream_batch",
    "stream_handler",
]


_TYPE_NAMES = ("BatchItemFailure", "LambdaHandler", "PartialBatchResponse", "RecordHandler")


def __getattr__(name: str) -> object:
    # The TypedDicts and aliases live in _types: no typing on a pure handler's cold start.
    # Any other name (``__path__`` too: the import system asks) is missing, as before.
    if name not in _TYPE_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _types

    return getattr(_types, name)


def _ignore(*args: object, **kwargs: object) -> None:
    return None


class _ModuleLogger:
    """``logging.getLogger(name)``, made on first need: ``logging`` is ~5 ms of cold start.

    The per-batch summary is a DEBUG record. While no code has imported ``logging``,
    nothing can have configured a handler or a level for it (the root logger's default
    level, WARNING, drops it), so it is skipped without importing ``logging``; anything
    else (an ERROR for a failed record) imports it and logs as before.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _logger(self) -> logging.Logger:
        import logging

        return logging.getLogger(self.name)

    @property
    def debug(self) -> Any:
        return self._logger().debug if "logging" in sys.modules else _ignore

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._logger(), attribute)


_LOGGER: logging.Logger = _ModuleLogger(__name__)  # type: ignore[assignment]

# Lambda reads an empty (or null) itemIdentifier as "the whole batch failed".
_WHOLE_BATCH = ""


def process_stream_batch(
    event: dict[str, Any],
    record_handler: RecordHandler,
    *,
    logger: logging.Logger | None = None,
    s3_client: Any = None,
) -> PartialBatchResponse:
    """Run ``record_handler`` on each record, with the partial batch rules of the event's source.

    A record fails when ``record_handler`` raises (anything but
    ``KeyboardInterrupt``: ``SystemExit`` fails the record too), or when the record is
    malformed (no ``dynamodb`` object, unknown ``eventName``, bad DynamoDB
    JSON in an image the handler reads, an SQS body or Kinesis data that is not
    a change record). The failure is logged (exception type and message, the
    identifier, event id; never the item). Nothing raised by a record escapes
    this function.

    * DynamoDB stream or Kinesis: the processor stops at the first failure and
      returns its ``SequenceNumber`` (Kinesis: its ``sequenceNumber``) as the
      only item failure. Lambda then checkpoints just before it and re-sends it
      with everything after it.
    * Standard SQS queue: every message is processed and every failed
      ``messageId`` is returned.
    * FIFO SQS queue: the processor stops at the first failure and returns it and
      every later ``messageId``.

    A failed record without a usable identifier cannot be checkpointed. Reporting
    any other record would either skip it (data loss) or repeat records that
    already succeeded *and* still skip it, so the processor reports an empty
    identifier, which Lambda treats as a failure of the whole batch. Records
    before it that succeeded will then be delivered again: at-least-once, never
    lost. The construct's event source defaults (``bisect_batch_on_error``,
    finite ``retry_attempts``, an on-failure destination) make sure such a batch
    ends up in the destination instead of blocking the shard forever. Real
    records always carry an identifier, so this is a last resort for hand-made
    or corrupted events.

    Tumbling-window events (which expect ``state`` in the response) are not
    supported.

    Parameters
    ----------
    event : dict
        The Lambda event from a DynamoDB stream, SQS or Kinesis event source
        mapping. A missing or empty ``Records`` means there is nothing to do.
    record_handler : callable
        Called with one :class:`StreamRecord` per record; its return value is
        ignored, raising marks the record as failed.
    logger : logging.Logger, optional
        Where failures (ERROR) and the per-batch summary (DEBUG) go.
        Default: the ``ddb_stream_runtime.batch`` logger.
    s3_client : object, optional
        Anything with boto3's ``get_object``, for the fan-out's claim checks.
        Default: a boto3 S3 client, created on the first claim check.

    Returns
    -------
    PartialBatchResponse
        ``{"batchItemFailures": []}`` if every record succeeded.

    Raises
    ------
    TypeError
        If ``event`` is not an object or its ``Records`` is not a list: the
        function is wired to something that is not an event source mapping.

    Examples
    --------
    >>> import logging
    >>> quiet = logging.getLogger("example")
    >>> quiet.addHandler(logging.NullHandler())
    >>> seen = []
    >>> event = {"Records": [
    ...     {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "111"}},
    ...     {"eventName": "BOGUS", "dynamodb": {"SequenceNumber": "222"}},
    ...     {"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "333"}},
    ... ]}
    >>> process_stream_batch(event, lambda r: seen.append(r.sequence_number), logger=quiet)
    {'batchItemFailures': [{'itemIdentifier': '222'}]}
    >>> seen
    ['111']
    """
    log = logger or _LOGGER
    batch = read_batch(event, s3_client=s3_client, lazy=True)
    return _run(batch, record_handler, log)


def _run(batch: Batch, record_handler: RecordHandler, log: logging.Logger) -> PartialBatchResponse:
    """Apply ``record_handler`` to a batch's entries; the response by the source's rules."""
    for entry in batch.rejected:
        _log_entry_failure(log, batch, entry, entry.error or ValueError("not a record"), 0)
    entries = batch.entries
    stop = batch.stops_at_failure()
    failed: list[int] = []
    done = 0
    for position, entry in enumerate(entries):
        record = None
        try:
            record = entry.unwrap()  # parsed now, dropped after: the batch stays small
            record_handler(record)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: one record fails, never the batch
            failed.append(position)
            if batch.source == "aws:dynamodb":
                _report(entry.raw, exc, done, len(entries), log)
            else:
                event_id = record.event_id if record is not None else entry.event_id
                _log_entry_failure(log, batch, entry, exc, done, stop=stop, event_id=event_id)
            if stop:
                break
            continue
        done += 1
    failures = batch.failures(failed)
    if batch.ordered:
        log.debug(
            "stream batch: %d of %d records processed, %d failed", done, len(entries), len(failed)
        )
    else:
        log.debug(
            "sqs batch: %d of %d messages processed, %d failed, %d skipped",
            done,
            batch.total,
            len(failed) + len(batch.rejected),
            len(failures) - len(failed) - len(batch.rejected),
        )
    return {"batchItemFailures": failures}


def _log_entry_failure(
    log: logging.Logger,
    batch: Batch,
    entry: Entry,
    exc: BaseException,
    done: int,
    *,
    stop: bool = False,
    event_id: Any = None,
) -> None:
    identifier = entry.identifier or "<none: failing the whole batch>"
    if event_id is None:
        event_id = entry.event_id
    what = {"aws:sqs": "sqs message", "aws:kinesis": "kinesis record"}.get(batch.source, "record")
    after = ""
    if stop:
        after = (
            "; stopping so Lambda retries from it"
            if batch.ordered
            else "; stopping (fifo): it and every later message are reported"
        )
    log.error(
        "%s %s failed%s: %s: %s (event id %s, %d earlier records succeeded)",
        what,
        identifier,
        after,
        type(exc).__name__,
        exc,
        event_id,
        done,
        exc_info=exc,
        extra={
            "item_identifier": entry.identifier or None,
            "event_id": event_id,
            "source": batch.source,
            "error_type": type(exc).__name__,
            **(_sqs_fields(entry) if batch.source == "aws:sqs" else {}),
        },
    )


def _sqs_fields(entry: Entry) -> dict[str, Any]:
    attributes = entry.raw.get("attributes") if isinstance(entry.raw, dict) else None
    group = attributes.get("MessageGroupId") if isinstance(attributes, dict) else None
    return {"message_id": entry.identifier or None, "message_group_id": group}


def stream_handler(
    record_handler: RecordHandler,
    *,
    logger: logging.Logger | None = None,
    s3_client: Any = None,
) -> LambdaHandler:
    """Turn a per-record function into a Lambda handler with partial batch responses.

    The handler takes events from a DynamoDB stream, an SQS queue of the fan-out
    or a Kinesis data stream (see :func:`process_stream_batch`).

    Parameters
    ----------
    record_handler : callable
        Called with one :class:`StreamRecord` per record, see
        :func:`process_stream_batch`.
    logger : logging.Logger, optional
        Passed on to :func:`process_stream_batch`.
    s3_client : object, optional
        Passed on to :func:`process_stream_batch`.

    Returns
    -------
    callable
        ``handler(event, context) -> PartialBatchResponse``.

    Examples
    --------
    >>> @stream_handler
    ... def handler(record):
    ...     print(record.event_name, record.keys)
    >>> handler({"Records": [{"eventName": "INSERT", "dynamodb": {
    ...     "SequenceNumber": "111", "Keys": {"Id": {"N": "101"}}}}]}, None)
    INSERT {'Id': 101}
    {'batchItemFailures': []}
    """

    def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
        return process_stream_batch(event, record_handler, logger=logger, s3_client=s3_client)

    return _wraps(handler, record_handler)


def _wraps(handler: Any, record_handler: Any) -> Any:
    """``functools.update_wrapper`` without ``functools`` (and ``collections``) on the
    cold start: the user's name and docstring, but not the annotations (the signature
    differs)."""
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            value = getattr(record_handler, attribute)
        except AttributeError:
            continue
        setattr(handler, attribute, value)
    handler.__dict__.update(getattr(record_handler, "__dict__", {}))
    handler.__wrapped__ = record_handler
    return handler


def _records_of(
    event: Any, kind: str = "a DynamoDB stream event", short: str = "a stream event"
) -> list[Any]:
    """The ``Records`` of a Lambda event (stream or SQS): ``[]`` when absent."""
    if not isinstance(event, dict):
        raise TypeError(f"expected {kind} (an object with 'Records'), got {type(event).__name__}")
    records = event.get("Records")
    if records is None:
        return []
    if not isinstance(records, list):
        raise TypeError(f"{short}'s 'Records' is a list, got {type(records).__name__}")
    return records


def _sequence_number_of(raw: Any) -> str | None:
    # Read defensively: this runs for records that failed validation too.
    dynamodb = raw.get("dynamodb") if isinstance(raw, dict) else None
    sequence_number = dynamodb.get("SequenceNumber") if isinstance(dynamodb, dict) else None
    return sequence_number if isinstance(sequence_number, str) and sequence_number else None


def _report(
    raw: Any, exc: BaseException, done: int, total: int, log: logging.Logger
) -> BatchItemFailure:
    sequence_number = _sequence_number_of(raw)
    event_id = raw.get("eventID") if isinstance(raw, dict) else None
    fields = {
        "sequence_number": sequence_number,
        "event_id": event_id,
        "error_type": type(exc).__name__,
        "records_succeeded": done,
        "records_not_attempted": total - done - 1,
    }
    if sequence_number is None:
        log.error(
            "stream record %d of %d failed and has no usable SequenceNumber, reporting the "
            "whole batch as failed (its %d earlier records will be delivered again): %s: %s "
            "(event id %s)",
            done + 1,
            total,
            done,
            type(exc).__name__,
            exc,
            event_id,
            exc_info=exc,
            extra=fields,
        )
        return {"itemIdentifier": _WHOLE_BATCH}
    log.error(
        "stream record %s failed, stopping the batch so Lambda retries from it: %s: %s "
        "(event id %s, %d earlier records succeeded, %d later records not attempted)",
        sequence_number,
        type(exc).__name__,
        exc,
        event_id,
        done,
        total - done - 1,
        exc_info=exc,
        extra=fields,
    )
    return {"itemIdentifier": sequence_number}


class _Failure:
    """The record a batch-level handler reports as failed, and why (for the log).

    Shared by the handlers that work on whole batches (router, archiver, counter,
    indexer): each stops at its earliest failure and reports that record.
    """

    __slots__ = ("index", "sequence_number", "event_id", "reason")

    def __init__(self, index: int, sequence_number: str, event_id: Any, reason: str) -> None:
        self.index = index
        self.sequence_number = sequence_number
        self.event_id = event_id
        self.reason = reason
