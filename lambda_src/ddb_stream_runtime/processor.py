"""The ComplexController's processor side: SQS messages -> :class:`StreamRecord`.

Each SQS message carries one stream record published by
:mod:`ddb_stream_runtime.router`. With raw message delivery (what the construct
configures) the body *is* the record's JSON; a body ``{"claimCheck": ...}``
points at the record in S3 (records over 256 KiB), which is fetched first. An
SNS envelope (a subscription without raw delivery) is opened too.

Unlike a stream shard, an SQS batch has no order to keep: every message is
processed and every failed ``messageId`` is reported, and Lambda returns just
those to the queue. On a FIFO queue, order is kept per message group: after a
failure, the group's later messages in the batch are reported without being
processed, while other groups go on.

A record handler that raises anything but ``KeyboardInterrupt`` (``SystemExit``
included) fails its message only. What no code in the process can isolate
(``os._exit()``, a signal, the function timeout, running out of memory) fails the
whole invocation: every message of the batch then returns to the queue after its
visibility timeout with one more receive counted, good ones included, and all of
them reach the dead-letter queue after ``maxReceiveCount`` receives if they keep
coming back together (see :mod:`ddb_stream_runtime.batch`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from ._aws import aws_client
from ._claim_check import CLAIM_CHECK_FIELD
from .batch import (
    BatchItemFailure,
    LambdaHandler,
    PartialBatchResponse,
    RecordHandler,
    _records_of,
)
from .records import MalformedRecordError, StreamRecord

__all__ = ["process_sqs_batch", "sqs_record_handler"]

_LOGGER = logging.getLogger(__name__)
_WHOLE_BATCH = ""  # Lambda reads an empty itemIdentifier as "the whole batch failed"
_FIFO_SUFFIX = ".fifo"


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
    (never the body) and reported; the other messages are still processed.
    Nothing raised by a message escapes this function.

    On a FIFO queue (``eventSourceARN`` ends with ``.fifo``) the messages of a
    group after its first failure are reported as failed without being
    processed, so the group's order survives the retry. A message without a
    ``messageId`` is reported with an empty identifier, which Lambda treats as
    a failure of the whole batch (at-least-once: never lost).

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
    log = logger or _LOGGER
    messages = _records_of(event, "an sqs event", "an sqs event")
    get_s3 = (lambda: s3_client) if s3_client is not None else functools.partial(aws_client, "s3")
    failures: list[BatchItemFailure] = []
    failed_groups: set[str] = set()
    skipped = 0
    for message in messages:
        message_id = _message_id_of(message)
        group = _fifo_group_of(message)
        if group is not None and group in failed_groups:
            # An earlier message of this group failed: processing this one would overtake it.
            log.warning(
                "sqs message %s not processed: an earlier message of fifo group %r failed",
                message_id,
                group,
                extra={"message_id": message_id, "message_group_id": group},
            )
            failures.append({"itemIdentifier": message_id or _WHOLE_BATCH})
            skipped += 1
            continue
        try:
            record_handler(_record_of(message, get_s3))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: one message fails, never the batch
            _log_failure(log, message_id, group, exc)
            failures.append({"itemIdentifier": message_id or _WHOLE_BATCH})
            if group is not None:
                failed_groups.add(group)
    log.debug(
        "sqs batch: %d of %d messages processed, %d failed, %d skipped",
        len(messages) - len(failures),
        len(messages),
        len(failures) - skipped,
        skipped,
    )
    return {"batchItemFailures": failures}


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

    # Keep the user's name and docstring, but not the annotations: the signature differs.
    functools.update_wrapper(
        handler, record_handler, assigned=("__module__", "__name__", "__qualname__", "__doc__")
    )
    return handler


# --- unwrapping one message ------------------------------------------------------------


def _is_sns_notification(payload: dict[str, Any]) -> bool:
    return payload.get("Type") == "Notification" and isinstance(payload.get("Message"), str)


def _open_sns_notification(payload: dict[str, Any], get_s3: Callable[[], Any]) -> Any:
    return json.loads(payload["Message"])


def _is_claim_check(payload: dict[str, Any]) -> bool:
    return CLAIM_CHECK_FIELD in payload


def _fetch_claim_check(payload: dict[str, Any], get_s3: Callable[[], Any]) -> Any:
    location = payload[CLAIM_CHECK_FIELD]
    if not isinstance(location, dict) or not all(
        isinstance(location.get(k), str) and location.get(k) for k in ("bucket", "key")
    ):
        raise MalformedRecordError(f"a claim check names a bucket and a key, got {location!r:.200}")
    response = get_s3().get_object(Bucket=location["bucket"], Key=location["key"])
    record = json.loads(response["Body"].read())
    expected = payload.get("sequenceNumber")
    actual = _sequence_number_of(record)
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


def _record_of(message: Any, get_s3: Callable[[], Any]) -> StreamRecord:
    if not isinstance(message, dict):
        raise MalformedRecordError(f"an sqs message is an object, got {type(message).__name__}")
    body = message.get("body")
    if not isinstance(body, str):
        raise MalformedRecordError(f"an sqs message has a string 'body', got {type(body).__name__}")
    payload = json.loads(body)
    for recognise, open_ in _ENVELOPES:
        if isinstance(payload, dict) and recognise(payload):
            payload = open_(payload, get_s3)
    return StreamRecord.from_lambda(payload)


def _message_id_of(message: Any) -> str | None:
    message_id = message.get("messageId") if isinstance(message, dict) else None
    return message_id if isinstance(message_id, str) and message_id else None


def _fifo_group_of(message: Any) -> str | None:
    """The message group of a FIFO queue's message; None on a standard queue."""
    if not isinstance(message, dict):
        return None
    arn = message.get("eventSourceARN")
    if not isinstance(arn, str) or not arn.endswith(_FIFO_SUFFIX):
        return None
    attributes = message.get("attributes")
    group = attributes.get("MessageGroupId") if isinstance(attributes, dict) else None
    return group if isinstance(group, str) else None


def _sequence_number_of(record: Any) -> Any:
    dynamodb = record.get("dynamodb") if isinstance(record, dict) else None
    return dynamodb.get("SequenceNumber") if isinstance(dynamodb, dict) else None


def _log_failure(
    log: logging.Logger, message_id: str | None, group: str | None, exc: BaseException
) -> None:
    fields = {
        "message_id": message_id,
        "message_group_id": group,
        "error_type": type(exc).__name__,
    }
    if message_id is None:
        log.error(
            "sqs message without a messageId failed, reporting the whole batch as failed: %s: %s",
            type(exc).__name__,
            exc,
            exc_info=exc,
            extra=fields,
        )
        return
    log.error(
        "sqs message %s failed: %s: %s%s",
        message_id,
        type(exc).__name__,
        exc,
        "" if group is None else f" (fifo group {group!r}: its later messages are skipped)",
        exc_info=exc,
        extra=fields,
    )
