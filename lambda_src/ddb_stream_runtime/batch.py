"""Partial-batch processing of DynamoDB stream events (``ReportBatchItemFailures``).

A stream shard is ordered and Lambda checkpoints at the *lowest* sequence
number reported as failed, re-sending that record and everything after it.
So the processor stops at the first failure and reports only that record:
handling later records would run their side effects twice.

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

import functools
import logging
from collections.abc import Callable
from typing import Any, TypedDict

from .records import StreamRecord

__all__ = [
    "BatchItemFailure",
    "LambdaHandler",
    "PartialBatchResponse",
    "RecordHandler",
    "process_stream_batch",
    "stream_handler",
]

_LOGGER = logging.getLogger(__name__)

# Lambda reads an empty (or null) itemIdentifier as "the whole batch failed".
_WHOLE_BATCH = ""


class BatchItemFailure(TypedDict):
    """One failed record: its ``dynamodb.SequenceNumber``."""

    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    """What a stream Lambda with ``ReportBatchItemFailures`` returns."""

    batchItemFailures: list[BatchItemFailure]


RecordHandler = Callable[[StreamRecord], object]
LambdaHandler = Callable[[dict[str, Any], Any], PartialBatchResponse]


def process_stream_batch(
    event: dict[str, Any],
    record_handler: RecordHandler,
    *,
    logger: logging.Logger | None = None,
) -> PartialBatchResponse:
    """Run ``record_handler`` on each record in order, stopping at the first failure.

    A record fails when ``record_handler`` raises (anything but
    ``KeyboardInterrupt``: ``SystemExit`` fails the record too), or when the record is
    malformed (no ``dynamodb`` object, unknown ``eventName``, bad DynamoDB
    JSON in an image the handler reads). The failure is logged (exception
    type and message, sequence number, event id; never the item) and that
    record's ``SequenceNumber`` is returned as the only item failure. Lambda
    then checkpoints just before it and re-sends it with everything after it.
    Nothing raised by a record escapes this function.

    A failed record without a usable ``SequenceNumber`` cannot be
    checkpointed. Reporting any other record would either skip it (data loss)
    or repeat records that already succeeded *and* still skip it, so the
    processor reports an empty identifier, which Lambda treats as a failure of
    the whole batch. Records before it that succeeded will then be delivered
    again: at-least-once, never lost. The construct's event source defaults
    (``bisect_batch_on_error``, finite ``retry_attempts``, an on-failure
    destination) make sure such a batch ends up in the destination instead of
    blocking the shard forever. Real stream records always carry a sequence
    number, so this is a last resort for hand-made or corrupted events.

    Tumbling-window events (which expect ``state`` in the response) are not
    supported.

    Parameters
    ----------
    event : dict
        The Lambda event from a DynamoDB stream event source mapping. A missing
        or empty ``Records`` means there is nothing to do.
    record_handler : callable
        Called with one :class:`StreamRecord` per record; its return value is
        ignored, raising marks the record as failed.
    logger : logging.Logger, optional
        Where failures (ERROR) and the per-batch summary (DEBUG) go.
        Default: the ``ddb_stream_runtime.batch`` logger.

    Returns
    -------
    PartialBatchResponse
        ``{"batchItemFailures": []}`` if every record succeeded, else exactly
        one failure.

    Raises
    ------
    TypeError
        If ``event`` is not an object or its ``Records`` is not a list: the
        function is wired to something that is not a stream.

    Examples
    --------
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
    records = _records_of(event)
    failures: list[BatchItemFailure] = []
    done = 0
    for raw in records:
        try:
            record_handler(StreamRecord.from_lambda(raw))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: one record fails, never the batch
            failures.append(_report(raw, exc, done, len(records), log))
            break
        done += 1
    log.debug(
        "stream batch: %d of %d records processed, %d failed",
        done,
        len(records),
        len(failures),
    )
    return {"batchItemFailures": failures}


def stream_handler(
    record_handler: RecordHandler, *, logger: logging.Logger | None = None
) -> LambdaHandler:
    """Turn a per-record function into a Lambda handler with partial batch responses.

    Parameters
    ----------
    record_handler : callable
        Called with one :class:`StreamRecord` per record, see
        :func:`process_stream_batch`.
    logger : logging.Logger, optional
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
        return process_stream_batch(event, record_handler, logger=logger)

    # Keep the user's name and docstring, but not the annotations: the signature differs.
    functools.update_wrapper(
        handler, record_handler, assigned=("__module__", "__name__", "__qualname__", "__doc__")
    )
    return handler


def _records_of(
    event: Any, kind: str = "a DynamoDB stream event", short: str = "a stream event"
) -> list[Any]:
    """The ``Records`` of a Lambda event (stream or SQS): ``[]`` when absent."""
    if not isinstance(event, dict):
        raise TypeError(
            f"expected {kind} (an object with 'Records'), got {type(event).__name__}"
        )
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
