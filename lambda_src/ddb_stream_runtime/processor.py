"""The ComplexController's processor side: SQS messages -> :class:`StreamRecord`.

Each SQS message carries one stream record published by
:mod:`ddb_stream_runtime.router`. With raw message delivery (what the construct
configures) the body *is* the record's JSON; a body ``{"claimCheck": ...}``
points at the record in S3 (records over 256 KiB), which is fetched first. An
SNS envelope (a subscription without raw delivery) is opened too. The unwrapping
lives in :mod:`ddb_stream_runtime.intake`, shared with every pattern handler and
with :func:`~ddb_stream_runtime.batch.process_stream_batch`, which takes SQS
events as well: :func:`process_sqs_batch` is that function for events known to
come from SQS (records without ``eventSource`` are read as SQS messages).

Unlike a stream shard, a standard queue's batch has no order to keep: every
message is processed and every failed ``messageId`` is reported, and Lambda
returns just those to the queue. On a FIFO queue, the processor stops at the
first failure and reports it and every message after it: "your function should
stop processing messages after the first failure and return all failed and
unprocessed messages in batchItemFailures" (Lambda developer guide,
*services-sqs-errorhandling*), so the order of every message group survives the retry.

A record handler that raises anything but ``KeyboardInterrupt`` (``SystemExit``
included) fails its message only. What no code in the process can isolate
(``os._exit()``, a signal, the function timeout, running out of memory) fails the
whole invocation: every message of the batch then returns to the queue after its
visibility timeout with one more receive counted, good ones included, and all of
them reach the dead-letter queue after ``maxReceiveCount`` receives if they keep
coming back together (see :mod:`ddb_stream_runtime.batch`).
"""

from __future__ import annotations

from .batch import _ModuleLogger, _run, _wraps
from .intake import SQS, read_batch

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any

    from ._types import LambdaHandler, PartialBatchResponse, RecordHandler

__all__ = ["process_sqs_batch", "sqs_record_handler"]

_LOGGER: logging.Logger = _ModuleLogger(__name__)  # type: ignore[assignment]


def process_sqs_batch(
    event: dict[str, Any],
    record_handler: RecordHandler,
    *,
    logger: logging.Logger | None = None,
    s3_client: Any = None,
) -> PartialBatchResponse:
    """Run ``record_handler`` on the stream record in each SQS message; report every failure.

    A message fails when its body is not a stream record (not JSON, not an
    object, a malformed record, a claim check that cannot be fetched) or when
    ``record_handler`` raises (anything but ``KeyboardInterrupt``: a
    ``SystemExit`` fails that message too). Each failure is logged with its ``messageId``
    (never the body) and reported; on a standard queue the other messages are
    still processed. Nothing raised by a message escapes this function.

    On a FIFO queue (``eventSourceARN`` ends with ``.fifo``) processing stops at
    the first failure, which is reported with every message after it, so the
    queue's order survives the retry. A message without a ``messageId`` is
    reported with an empty identifier, which Lambda treats as a failure of the
    whole batch (at-least-once: never lost).

    Parameters
    ----------
    event : dict
        The Lambda event from an SQS event source mapping with
        ``ReportBatchItemFailures``.
    record_handler : callable
        Called with one :class:`StreamRecord` per message; raising marks the
        message as failed.
    logger : logging.Logger, optional
        Default: the ``ddb_stream_runtime.processor`` logger.
    s3_client : object, optional
        Anything with boto3's ``get_object``, for claim checks. Default: a
        boto3 S3 client, created on the first claim check.

    Returns
    -------
    PartialBatchResponse
        ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}``.

    Raises
    ------
    TypeError
        If ``event`` is not an object or its ``Records`` is not a list.

    Examples
    --------
    >>> import json, logging
    >>> quiet = logging.getLogger("example")
    >>> quiet.addHandler(logging.NullHandler())
    >>> def body(seq):
    ...     return json.dumps({"eventName": "INSERT", "dynamodb": {"SequenceNumber": seq}})
    >>> event = {"Records": [
    ...     {"messageId": "m1", "body": body("111")},
    ...     {"messageId": "m2", "body": "not json"},
    ...     {"messageId": "m3", "body": body("333")},
    ... ]}
    >>> seen = []
    >>> process_sqs_batch(event, lambda r: seen.append(r.sequence_number), logger=quiet)
    {'batchItemFailures': [{'itemIdentifier': 'm2'}]}
    >>> seen
    ['111', '333']
    """
    batch = read_batch(event, s3_client=s3_client, default_source=SQS, lazy=True)
    return _run(batch, record_handler, logger or _LOGGER)


def sqs_record_handler(
    record_handler: RecordHandler,
    *,
    logger: logging.Logger | None = None,
    s3_client: Any = None,
) -> LambdaHandler:
    """Turn a per-record function into an SQS Lambda handler with partial batch responses.

    Parameters
    ----------
    record_handler : callable
        Called with one :class:`StreamRecord` per message, see :func:`process_sqs_batch`.
    logger : logging.Logger, optional
        Passed on to :func:`process_sqs_batch`.
    s3_client : object, optional
        Passed on to :func:`process_sqs_batch`.

    Returns
    -------
    callable
        ``handler(event, context) -> PartialBatchResponse``.

    Examples
    --------
    >>> import json
    >>> @sqs_record_handler
    ... def handler(record):
    ...     print(record.event_name, record.keys)
    >>> handler({"Records": [{"messageId": "m1", "body": json.dumps({
    ...     "eventName": "INSERT",
    ...     "dynamodb": {"SequenceNumber": "111", "Keys": {"Id": {"N": "101"}}}})}]}, None)
    INSERT {'Id': 101}
    {'batchItemFailures': []}
    """

    def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
        return process_sqs_batch(event, record_handler, logger=logger, s3_client=s3_client)

    return _wraps(handler, record_handler)
