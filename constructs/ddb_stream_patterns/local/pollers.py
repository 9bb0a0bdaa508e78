"""Lambda's event source mappings, locally: stream and queue pollers that invoke handlers.

Each poller gives one :class:`~ddb_stream_patterns.local.model.MappingSpec` the semantics
of the Lambda event source mapping it stands for:

* :class:`StreamPoller` (``kind="dynamodb"``) reads a DynamoDB Local stream shard by
  shard (a child shard after its parent is exhausted), turns the Streams API records
  into the records Lambda delivers, applies the filter criteria, batches, invokes, and
  on failure retries, bisects, checkpoints at the lowest reported item failure, ages
  records out, and finally sends an on-failure record to the failure destination;
* :class:`SqsPoller` (``kind="sqs"``) receives from a moto queue, invokes with Lambda's
  SQS event, and deletes what succeeded (all, or all but the reported item failures);
* :class:`Pollers` runs a set of them round-robin in one thread until they are idle.

Clients come from a ``client_factory(service_name)``: ``"dynamodbstreams"`` must point
at DynamoDB Local, ``"sqs"``, ``"sns"`` and ``"s3"`` at moto. Pollers never create
endpoints.

Where the local cloud differs from AWS (on purpose or by necessity)
--------------------------------------------------------------------
* **TTL deletions.** DynamoDB Local writes a TTL expiry as ``eventName:
  "UNKNOWN_TO_SDK_VERSION"`` (literally, in its JSON) with no ``userIdentity``; AWS
  writes ``"REMOVE"`` with ``userIdentity {"type": "Service", "principalId":
  "dynamodb.amazonaws.com"}``. :func:`rewrite_ttl_record` rewrites the former into the
  latter before filtering, so ``StreamFilter.ttl_expiry()`` and
  ``StreamRecord.is_ttl_expiry`` work locally. Measured with DynamoDB Local 3.3.1: the
  TTL sweep of a table runs about 1 s after ``UpdateTimeToLive`` enables it, then about
  every 10 s, so an expired item shows up in the stream after 1-10 s. It serves only 7
  TTL tables per instance; the local cloud sweeps the others itself
  (:mod:`~ddb_stream_patterns.local.ttl_sweep`), and its deletions are rewritten the same
  way.
* **Empty maps.** DynamoDB Local's stream images write an empty map as ``{}`` instead
  of ``{"M": {}}`` (at any depth, in lists too); :func:`to_lambda_record` restores the
  tag (:mod:`~ddb_stream_patterns.local.stream_images`), so every type arrives as AWS
  sends it.
* **Record age.** DynamoDB Local truncates ``ApproximateCreationDateTime`` to the
  minute. A record's age is therefore measured from ``min(ApproximateCreationDateTime +
  CREATION_TIME_GRANULARITY_S, the time this poller read it)`` (its youngest possible
  creation time), so a record is never aged out before it really is older than
  ``max_record_age_s``. ``ApproximateCreationDateTime`` itself is delivered as read.
* **The on-failure record** is what AWS sends (Lambda Developer Guide, "Retain discarded
  records for a DynamoDB event source"): to an SQS queue or an SNS topic, the metadata
  only (``requestContext``, ``responseContext``, ``version``, ``timestamp``,
  ``DDBStreamBatchInfo``: shard id, start and end sequence numbers, batch size, stream
  ARN), no records. "The actual records aren't included, so you must process this record
  and retrieve them from the stream before they expire and are lost": within DynamoDB
  Streams' 24 h retention (a Kinesis stream's own retention for Kinesis sources). Only an
  S3 destination receives the records: the metadata plus ``payload``, the invocation
  record (``{"Records": [...]}``) as an escaped JSON string, under the key
  ``aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>``
  (:func:`failure_object_key`; the UUID is ``MappingSpec.uuid``, the mapping's
  CloudFormation ``Id``). ``FailureDestination.s3()`` is therefore the destination that
  keeps the payloads. Locally, every batch given up on (destination or not) is also kept
  in :attr:`StreamPoller.failure_records` (:class:`FailedBatch`: the record sent and the
  records themselves), and one the destination did not take (moto stopped, IAM denied
  it) is appended to a JSON Lines file, :attr:`StreamPoller.undeliverable_path`, with
  its records.
* **Retries** of a failed stream batch wait 50 ms, doubling up to 2 s (no hot loop
  against a function that keeps failing). With
  ``max_retry_attempts=-1`` and ``max_record_age_s=-1`` (Lambda's defaults) a poison
  record blocks its shard forever, as in Lambda: :meth:`Pollers.run_until_idle` then
  times out and says which mapping is stuck.
* **SQS visibility.** Lambda leaves a failed message invisible until its visibility
  timeout expires (180 s in real templates). :class:`SqsPoller` makes failed messages
  visible again at once (``ChangeMessageVisibility`` to ``failed_visibility_timeout_s``,
  default 0), so retries and moto's redrive to the dead-letter queue after
  ``maxReceiveCount`` happen in seconds; pass ``None`` to keep AWS's behaviour.
* **Checkpoints** (per shard, the sequence number of the last record finished with) are
  saved as JSON under ``checkpoint_dir`` (a persistent :class:`LocalCloud`'s
  ``data_dir/checkpoints``); a new poller of the same mapping resumes after them, so
  only an unfinished batch is delivered again, as Lambda redelivers it.
* **Forced redelivery** (off by default; ``SqsPoller(redelivery_rate=...)``,
  ``Pollers(sqs_redelivery_rate=...)``, ``LocalCloud(sqs_redelivery_rate=...)``). SQS
  is at-least-once: a consumer's ``DeleteMessage`` can be lost (the message comes back
  after its visibility timeout, in another batch) and SNS can deliver a notification
  twice (a second message, another ``messageId``). moto does neither, so this option
  makes them happen: each successfully processed message is, with the given
  probability, either left undeleted (visible again after ``redelivery_delay_s``) or
  sent again as a copy, and each batch from a standard queue is shuffled before the
  invocation (SQS does not keep order). FIFO queues keep their order and only get the
  undeleted kind, for the last message of a group in a batch (a copy would be
  deduplicated; SQS holds the group's later messages while it is in flight. moto
  mishandles several in-flight messages of one group becoming visible together: it
  serves the last one first).
* **Concurrency.** Everything runs in one thread: ``max_concurrency`` (SQS) and the
  per-shard parallelism of streams are not modelled, and shards are polled round-robin.
* **Limits not modelled:** the 6 MB invocation payload cap, Lambda's throttling of more
  than two readers per shard, tumbling windows.
* **Events are copied** through JSON before each invocation (``copy_events=True``), as
  Lambda delivers fresh JSON: a handler that mutates its event cannot corrupt a retry.
  ``MappingSpec.on_event`` sees that copy just before the function; an exception it
  raises counts as a function error (a fault injected into the invocation).
* **IAM.** Lambda makes a mapping's own calls with the function's execution role.
  Before each poll the stream poller checks :data:`STREAM_READ_ACTIONS` on the stream
  and the SQS poller :data:`SQS_READ_ACTIONS` on the queue, and every on-failure send
  checks :data:`DESTINATION_ACTIONS` on its destination (an S3 destination also
  :data:`S3_DESTINATION_BUCKET_ACTIONS` on its bucket, with ``s3:ResourceAccount`` set to
  the local account), all through
  :func:`check_mapping_permissions` (the function's ``authorizer``, resource policies
  included; nothing is checked without one). A denied read reads and invokes nothing
  (records wait); a denied send keeps the record in the undeliverable file. Either is
  counted in ``MappingStats.denied`` / ``last_denied``; a denied read also sets
  ``state_transition_reason`` to :data:`AUTHZ_ERROR` and a ``last_processing_result``
  marked ``(local)``: AWS documents no message for DynamoDB or SQS sources.
* **Stats.** ``failed_attempts`` counts failed invocations (whole or partial) for
  streams, and for SQS failed invocations plus each reported item failure;
  ``sent_to_failure_destination`` counts every record given up on, with or without a
  destination; of those, ``on_failure_delivered`` counts the ones the destination took
  (Lambda's ``OnFailureDestinationDeliveredEventCount``) and ``dropped`` the others (no
  destination, or the send failed: Lambda's ``DroppedEventCount``); ``errors`` counts
  invocations that failed (Lambda's ``Errors`` metric), and ``last_error_type`` /
  ``last_error_message`` keep the latest one's ``errorType`` and ``errorMessage`` (each
  failure is also logged at WARNING).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..stream_filter import StreamFilter
from . import ttl_sweep
from .model import MappingSpec, MappingStats
from .stream_images import repair_image

__all__ = [
    "AUTHZ_ERROR",
    "CREATION_TIME_GRANULARITY_S",
    "DEFAULT_SQS_CONCURRENCY",
    "DDB_LOCAL_TTL_EVENT_NAME",
    "TTL_USER_IDENTITY",
    "ClientFactory",
    "FailedBatch",
    "ItemFailures",
    "PollerTimeout",
    "Pollers",
    "SqsPoller",
    "DESTINATION_ACTIONS",
    "S3_DESTINATION_BUCKET_ACTIONS",
    "MappingPermissionDenied",
    "SQS_READ_ACTIONS",
    "STREAM_READ_ACTIONS",
    "StreamPoller",
    "check_mapping_permissions",
    "failure_object_key",
    "record_denial",
    "parse_batch_item_failures",
    "rewrite_ttl_record",
    "to_lambda_record",
    "to_lambda_sqs_record",
]

_LOGGER = logging.getLogger(__name__)

ClientFactory = Callable[[str], Any]
"""Service name (``"dynamodbstreams"``, ``"sqs"``, ``"sns"``, ``"s3"``) -> boto3 client."""

#: What DynamoDB Local puts in ``eventName`` for a TTL deletion (AWS: ``"REMOVE"``).
DDB_LOCAL_TTL_EVENT_NAME = "UNKNOWN_TO_SDK_VERSION"
#: ``userIdentity`` of a record deleted by DynamoDB's TTL process, as Lambda delivers it.
TTL_USER_IDENTITY: Mapping[str, str] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
#: DynamoDB Local's ``ApproximateCreationDateTime`` is rounded down to the minute.
CREATION_TIME_GRANULARITY_S = 60

_GET_RECORDS_LIMIT = 1000  # the Streams API maximum
_SQS_RECEIVE_MAX = 10  # ReceiveMessage / DeleteMessageBatch maximum
#: Concurrent batches of an SQS mapping without ``MaximumConcurrency``: Lambda starts
#: with five (and scales up while messages remain).
DEFAULT_SQS_CONCURRENCY = 5
_VISIBILITY_MARGIN_S = 0.05
_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
_EXHAUSTED = "RetryAttemptsExhausted"
_RETRY_BACKOFF_S = 0.05  # first wait before retrying a failed stream batch; doubles
_RETRY_BACKOFF_MAX_S = 2.0
_ROUND_BACKOFF_MAX_S = 5.0  # longest wait between failing background poll rounds
_TOO_OLD = "RecordAgeExceeded"


# --- records ----------------------------------------------------------------------------


def _epoch_seconds(value: Any) -> int | float:
    """A datetime (what boto3 parses) or a number -> epoch seconds, an int when whole."""
    seconds = value.timestamp() if isinstance(value, datetime) else float(value)
    return int(seconds) if seconds.is_integer() else seconds


def _b64(data: Any) -> str:
    return base64.b64encode(data).decode("ascii") if isinstance(data, (bytes, bytearray)) else data


def _json_attribute(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """One attribute value with boto3's ``bytes`` turned back into Lambda's base64 text."""
    if "B" in value:
        return {"B": _b64(value["B"])}
    if "BS" in value:
        return {"BS": [_b64(b) for b in value["BS"]]}
    if "M" in value:
        return {"M": _json_image(value["M"])}
    if "L" in value:
        return {"L": [_json_attribute(v) for v in value["L"]]}
    return value


def _json_image(image: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _json_attribute(value) for name, value in image.items()}


def rewrite_ttl_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite DynamoDB Local's TTL deletion record as AWS writes it; others unchanged.

    DynamoDB Local marks a TTL expiry with ``eventName: "UNKNOWN_TO_SDK_VERSION"`` and no
    ``userIdentity``; AWS sends ``eventName: "REMOVE"`` with the service identity.

    Examples
    --------
    >>> r = rewrite_ttl_record({"eventName": "UNKNOWN_TO_SDK_VERSION", "dynamodb": {},
    ...                         "eventSourceARN": "arn"})
    >>> r["eventName"], r["userIdentity"], list(r)[-1]
    ('REMOVE', {'type': 'Service', 'principalId': 'dynamodb.amazonaws.com'}, 'eventSourceARN')
    """
    if record.get("eventName") != DDB_LOCAL_TTL_EVENT_NAME:
        return dict(record)
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "eventSourceARN":
            out["userIdentity"] = dict(TTL_USER_IDENTITY)
        if key != "userIdentity":
            out[key] = value
    out["eventName"] = "REMOVE"
    out.setdefault("userIdentity", dict(TTL_USER_IDENTITY))
    return out


def to_lambda_record(api_record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """One DynamoDB Streams ``GetRecords`` record (as boto3 parses it) -> Lambda's record.

    ``ApproximateCreationDateTime`` becomes epoch seconds, binary values base64 text,
    ``userIdentity`` gets Lambda's lower-case keys, ``eventSourceARN`` is added,
    DynamoDB Local's untagged empty maps get their ``M`` back
    (:func:`~ddb_stream_patterns.local.stream_images.repair_image`) and its TTL records
    are rewritten (:func:`rewrite_ttl_record`).

    Examples
    --------
    >>> to_lambda_record({"eventID": "1", "eventName": "INSERT", "eventVersion": "1.1",
    ...     "eventSource": "aws:dynamodb", "awsRegion": "ddblocal",
    ...     "dynamodb": {"ApproximateCreationDateTime": 1718049960.0,
    ...                  "Keys": {"pk": {"B": b"\\x01"}}, "SequenceNumber": "1",
    ...                  "SizeBytes": 3, "StreamViewType": "KEYS_ONLY"}}, "arn:stream")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'eventID': '1', 'eventName': 'INSERT', 'eventVersion': '1.1',
     'eventSource': 'aws:dynamodb', 'awsRegion': 'ddblocal',
     'dynamodb': {'ApproximateCreationDateTime': 1718049960, 'Keys': {'pk': {'B': 'AQ=='}},
                  'SequenceNumber': '1', 'SizeBytes': 3, 'StreamViewType': 'KEYS_ONLY'},
     'eventSourceARN': 'arn:stream'}
    """
    source = api_record.get("dynamodb") or {}
    ddb: dict[str, Any] = {}
    if source.get("ApproximateCreationDateTime") is not None:
        ddb["ApproximateCreationDateTime"] = _epoch_seconds(source["ApproximateCreationDateTime"])
    for key in ("Keys", "NewImage", "OldImage"):
        if key in source:
            ddb[key] = _json_image(repair_image(source[key]))
    for key in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if key in source:
            ddb[key] = source[key]
    record: dict[str, Any] = {
        "eventID": api_record.get("eventID"),
        "eventName": api_record.get("eventName"),
        "eventVersion": api_record.get("eventVersion"),
        "eventSource": api_record.get("eventSource", "aws:dynamodb"),
        "awsRegion": api_record.get("awsRegion"),
        "dynamodb": ddb,
    }
    identity = api_record.get("userIdentity")
    if identity:
        record["userIdentity"] = {
            "type": identity.get("Type", identity.get("type")),
            "principalId": identity.get("PrincipalId", identity.get("principalId")),
        }
    record["eventSourceARN"] = stream_arn
    if (record["eventName"] == "REMOVE" and "userIdentity" not in record
            and ttl_sweep.swept_by_local_sweep(stream_arn, ddb.get("Keys", {}),
                                               ddb.get("OldImage"))):
        record["eventName"] = DDB_LOCAL_TTL_EVENT_NAME  # the local cloud's own TTL sweep
    if record["eventName"] == DDB_LOCAL_TTL_EVENT_NAME:
        record = rewrite_ttl_record(record)
    return record


def to_lambda_sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """One ``ReceiveMessage`` message (as boto3 parses it) -> Lambda's SQS record."""
    attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        converted: dict[str, Any] = {}
        if "StringValue" in value:
            converted["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            converted["binaryValue"] = _b64(value["BinaryValue"])
        converted["stringListValues"] = list(value.get("StringListValues", []))
        converted["binaryListValues"] = [_b64(b) for b in value.get("BinaryListValues", [])]
        converted["dataType"] = value.get("DataType")
        attributes[name] = converted
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record["md5OfBody"] = message.get("MD5OfBody")
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = _arn_parts(queue_arn)["region"]
    return record


# --- responses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemFailures:
    """How Lambda reads a ``ReportBatchItemFailures`` response.

    ``whole_batch`` - the batch failed as a whole (``reason`` says why);
    otherwise ``identifiers`` are the reported items (empty: complete success).
    """

    whole_batch: bool = False
    identifiers: tuple[str, ...] = ()
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.whole_batch and not self.identifiers


def parse_batch_item_failures(response: Any, identifiers: Iterable[str]) -> ItemFailures:
    """Read a function response as Lambda does with ``ReportBatchItemFailures``.

    Complete success: ``None``, ``{}``, a dict without ``batchItemFailures``, or a null or
    empty ``batchItemFailures``. Complete failure: a response that is neither (after
    decoding a JSON string), a ``batchItemFailures`` that is not a list, an entry that is
    not an object, lacks ``itemIdentifier`` (a bad key name), holds a null/empty/non-string
    identifier, or one that is not in the batch.

    >>> parse_batch_item_failures({"batchItemFailures": [{"itemIdentifier": "2"}]}, "123")
    ItemFailures(whole_batch=False, identifiers=('2',), reason='')
    >>> parse_batch_item_failures({"batchItemFailures": [{"itemIdentifier": ""}]}, "1").reason
    'an empty or null itemIdentifier'
    """
    known = set(identifiers)
    if isinstance(response, (str, bytes, bytearray)):
        try:
            response = json.loads(response) if response.strip() else None
        except ValueError:
            return ItemFailures(True, reason="a response that is not JSON")
    if response is None:
        return ItemFailures()
    if not isinstance(response, Mapping):
        return ItemFailures(True, reason=f"a malformed response ({type(response).__name__})")
    entries = response.get("batchItemFailures")
    if entries is None:
        return ItemFailures()
    if not isinstance(entries, list):
        return ItemFailures(True, reason="batchItemFailures is not a list")
    found: list[str] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "itemIdentifier" not in entry:
            return ItemFailures(True, reason=f"a malformed batch item failure {entry!r}")
        identifier = entry["itemIdentifier"]
        if not identifier or not isinstance(identifier, str):
            return ItemFailures(True, reason="an empty or null itemIdentifier")
        if identifier not in known:
            return ItemFailures(True, reason=f"itemIdentifier {identifier!r} is not in the batch")
        if identifier not in found:
            found.append(identifier)
    return ItemFailures(identifiers=tuple(found))


# --- shared plumbing ------------------------------------------------------------------------


def _arn_parts(arn: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"not an arn: {arn!r}")
    names = ("arn", "partition", "service", "region", "account", "resource")
    return dict(zip(names, parts, strict=True))


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code", "") if isinstance(response, dict) else ""


# --- the mapping's own calls, under the function's role ------------------------------------

#: What Lambda's poller calls on a DynamoDB stream with the function's execution role
#: (the DynamoDB Developer Guide's "IAM policy to allow an AWS Lambda function to access
#: DynamoDB stream records": GetRecords, GetShardIterator, DescribeStream, ListStreams).
STREAM_READ_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetShardIterator",
                       "dynamodb:GetRecords", "dynamodb:ListStreams")
#: What it calls on an SQS queue (ReceiveMessage, DeleteMessage, GetQueueAttributes).
SQS_READ_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
#: The write to an on-failure destination, per destination service (on the queue, the
#: topic, or the object written).
DESTINATION_ACTIONS = {"sqs": "sqs:SendMessage", "sns": "sns:Publish", "s3": "s3:PutObject"}
#: What else an S3 destination needs, on the bucket itself: the execution role "must have"
#: ``s3:PutObject`` and ``s3:ListBucket`` (Lambda Developer Guide, on-failure destinations
#: of stream and Kafka event source mappings).
S3_DESTINATION_BUCKET_ACTIONS = ("s3:ListBucket",)
#: The ``StateTransitionReason`` code Lambda documents for a mapping whose role "does not
#: have the required permissions to access the event source" (Lambda Developer Guide,
#: "Troubleshoot Amazon MQ event source mapping errors"; the same codes are used for
#: Kafka sources). For DynamoDB and SQS sources no code or message is documented: the
#: local cloud uses this one, and its ``LastProcessingResult`` is a local message.
AUTHZ_ERROR = "EVENT_SOURCE_AUTHZ_ERROR"


class MappingPermissionDenied(PermissionError):
    """The function's role may not make a call the event source mapping needs.

    ``error`` is the authorizer's answer (``code``, ``message``, ``action``, ``resource``).
    """

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(f"{error.get('code', 'AccessDenied')}: {error.get('message')}")
        self.error = dict(error)


def check_mapping_permissions(mapping: MappingSpec, actions: Iterable[str],
                              resource: str, context: Mapping[str, str] | None = None,
                              ) -> dict[str, Any] | None:
    """Whether the mapping's function role may make ``actions`` on ``resource``.

    Lambda makes an event source mapping's own calls (reading the stream or queue,
    writing to the on-failure destination) with the function's execution role. Locally
    the function's authorizer (``LocalFunction.authorizer``, an
    :class:`~ddb_stream_patterns.local.iam.RoleAuthorizer` when IAM is enforced) decides
    them, resource policies included. Returns ``None`` when every action is allowed
    (or nothing is enforced), else the first denial: ``{"code", "status", "message",
    "action", "resource"}``. ``context``: the request's condition keys, if any.

    Any poller (streams, queues, Kinesis) calls this before its reads::

        denied = check_mapping_permissions(mapping, STREAM_READ_ACTIONS, stream_arn)
        if denied is not None:
            record_denial(mapping.stats, denied, reading=True)   # and do not read

    >>> class Fn:
    ...     authorizer = None
    >>> spec = MappingSpec("M", Fn(), "sqs", "arn:aws:sqs:us-east-1:1:q")
    >>> check_mapping_permissions(spec, SQS_READ_ACTIONS, spec.source_arn) is None
    True
    """
    authorizer = getattr(mapping.function, "authorizer", None)
    decide = getattr(authorizer, "decide", None)
    if decide is None:
        return None
    for action in actions:
        denied = decide(action, resource) if context is None else decide(
            action, resource, context)
        if denied is not None:
            return denied
    return None


def record_denial(stats: MappingStats, denied: Mapping[str, Any], *, reading: bool) -> None:
    """Show a denied mapping call in its stats: count, message, Lambda's fields.

    ``reading``: the mapping could not read its source (it does not invoke; its
    ``last_processing_result`` and ``state_transition_reason`` say so); otherwise an
    on-failure send was denied (the record is kept in the undeliverable file).
    """
    message = f"{denied.get('code', 'AccessDenied')}: {denied.get('message')}"
    first = stats.last_denied != message
    stats.denied += 1
    stats.last_denied = message
    if reading:
        stats.state_transition_reason = AUTHZ_ERROR
        # Local wording (no message is documented for DynamoDB / SQS sources).
        stats.last_processing_result = (
            f"PROBLEM: (local) the execution role may not {denied.get('action')} on "
            f"{denied.get('resource')}")
    if first:
        _LOGGER.warning("event source mapping denied by IAM: %s", message)


@dataclass
class _Outcome:
    """One invocation: the response, or the error it raised."""

    response: Any = None
    error: Exception | None = None

    @property
    def function_error(self) -> str | None:
        # Lambda reports raised errors and timeouts alike as "Unhandled".
        return None if self.error is None else "Unhandled"

    @property
    def error_type(self) -> str | None:
        """Lambda's ``errorType`` (``Runtime.HandlerNotFound``, ``ValueError``, ...)."""
        if self.error is None:
            return None
        return getattr(self.error, "error_type", None) or type(self.error).__name__

    @property
    def error_message(self) -> str | None:
        if self.error is None:
            return None
        message = getattr(self.error, "message", None)
        return message if isinstance(message, str) else str(self.error)


class _Poller:
    """What both pollers share: the mapping, clients, filters and the invocation."""

    def __init__(
        self, mapping: MappingSpec, client_factory: ClientFactory, *, copy_events: bool
    ) -> None:
        self.mapping = mapping
        self._client_factory = client_factory
        self._clients: dict[str, Any] = {}
        self._queue_urls: dict[str, str] = {}
        self._copy_events = copy_events
        self._filters = [StreamFilter.from_pattern(p) for p in mapping.filter_patterns]

    @property
    def stats(self) -> MappingStats:
        return self.mapping.stats

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._client_factory(service)
        return self._clients[service]

    def _queue_url(self, queue_arn: str) -> str:
        """Resolve a queue ARN to its URL (GetQueueUrl by name and owner account)."""
        if queue_arn not in self._queue_urls:
            parts = _arn_parts(queue_arn)
            kwargs = {"QueueName": parts["resource"]}
            if parts["account"]:
                kwargs["QueueOwnerAWSAccountId"] = parts["account"]
            self._queue_urls[queue_arn] = self._client("sqs").get_queue_url(**kwargs)["QueueUrl"]
        return self._queue_urls[queue_arn]

    def _may_read(self, actions: Iterable[str], resource: str) -> bool:
        """Whether the function's role may read the source now (else the denial is
        recorded in the stats and nothing is read: the mapping does not invoke)."""
        denied = check_mapping_permissions(self.mapping, actions, resource)
        if denied is None:
            return True
        record_denial(self.stats, denied, reading=True)
        return False

    def _may_read_source(self) -> bool:
        """Whether the role may read the stream (a subclass reading another kind of
        stream, e.g. Kinesis, checks its own actions)."""
        return self._may_read(STREAM_READ_ACTIONS, self.stream_arn)

    def _require(self, action: str, resource: str) -> None:
        """Raise :class:`MappingPermissionDenied` if the role may not make this call."""
        denied = check_mapping_permissions(self.mapping, (action,), resource)
        self._denied(denied)

    def _denied(self, denied: Mapping[str, Any] | None) -> None:
        """Record a denial in the stats and raise :class:`MappingPermissionDenied`."""
        if denied is not None:
            record_denial(self.stats, denied, reading=False)
            raise MappingPermissionDenied(denied)

    def _passes(self, record: Mapping[str, Any]) -> bool:
        return not self._filters or any(f.matches(record) for f in self._filters)

    def _invoke(self, records: list[dict[str, Any]]) -> _Outcome:
        event: Any = {"Records": records}
        if self._copy_events:
            event = json.loads(json.dumps(event))
        self.stats.invocations += 1
        try:
            if self.mapping.on_event is not None:
                self.mapping.on_event(event)  # a fault injected here is a function error
            return _Outcome(response=self.mapping.function.invoke(event))
        except Exception as exc:  # the function's failure, reported like Lambda does
            outcome = _Outcome(error=exc)
            self.stats.errors += 1
            self.stats.last_error_type = outcome.error_type
            self.stats.last_error_message = outcome.error_message
            _LOGGER.warning("%s: invocation of %s failed: %s: %s", self.mapping.logical_id,
                            getattr(self.mapping.function, "name", "?"), outcome.error_type,
                            outcome.error_message)
            return outcome

    def poll_once(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def busy(self, wait_for_delayed: bool = False) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


# --- DynamoDB streams ------------------------------------------------------------------------


@dataclass
class _Pending:
    record: dict[str, Any]
    read_at: float  # wall clock, when this poller read it

    @property
    def sequence_number(self) -> str:
        return self.record["dynamodb"]["SequenceNumber"]

    def created_at(self) -> float:
        """The youngest possible creation time (see the module notes on record age)."""
        approximate = self.record["dynamodb"].get("ApproximateCreationDateTime")
        if approximate is None:
            return self.read_at
        return min(float(approximate) + CREATION_TIME_GRANULARITY_S, self.read_at)


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    iterator_type: str = "TRIM_HORIZON"
    iterator: str | None = None
    exhausted: bool = False  # GetRecords returned no NextShardIterator: closed and read
    last_read: str | None = None  # sequence number of the last record read
    buffer: list[_Pending] = field(default_factory=list)  # read, not yet checkpointed
    # Pinned batch sizes ahead: a failed batch is retried as is, or as its bisected halves.
    segments: list[int] = field(default_factory=list)
    attempts: int = 0  # retries consumed by the head batch
    invoke_count: int = 0  # invocations of the head batch
    last_outcome: _Outcome | None = None
    not_before: float = 0.0  # monotonic time before which a retry waits (back-off)
    checkpoint: str | None = None  # sequence number of the last record finished with

    @property
    def done(self) -> bool:
        return self.exhausted and not self.buffer


def failure_object_key(mapping_uuid: str, shard_id: str, when: datetime) -> str:
    """The key of the S3 object holding an on-failure record of a stream mapping.

    AWS's naming convention (Lambda Developer Guide, "Retain discarded records for a
    DynamoDB event source" and its Kinesis twin):
    ``aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>``.

    >>> key = failure_object_key("f89f8514-cdd9-4602-9e1f-01a5b77d449b", "shardId-1",
    ...                          datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    >>> key.rsplit("-", 5)[0]
    'aws/lambda/f89f8514-cdd9-4602-9e1f-01a5b77d449b/shardId-1/2026/01/02/2026-01-02T03.04.05'
    """
    return (f"aws/lambda/{mapping_uuid}/{shard_id}/{when:%Y/%m/%d}/"
            f"{when:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}")


@dataclass
class FailedBatch:
    """Records a stream mapping gave up on: what Lambda sends, and what it does not.

    ``record`` is the on-failure record exactly as Lambda sends it to an SQS queue or an
    SNS topic: metadata only (``requestContext``, ``responseContext``, ``version``,
    ``timestamp``, and ``DDBStreamBatchInfo`` or ``KinesisBatchInfo``: the shard and the
    sequence range to re-read). ``records`` are the records themselves, as the function
    received them: AWS writes them only into an S3 destination's object
    (:meth:`s3_object`); with a queue or a topic they must be re-read from the stream
    before its retention expires. Locally they stay here, for tests and the run summary.
    """

    mapping: str  # the mapping's logical id
    record: dict[str, Any]
    records: list[dict[str, Any]]
    destination: str | None = None
    delivered: bool = False  # the destination took it
    s3_key: str | None = None  # the object's key, for an S3 destination

    @property
    def event(self) -> dict[str, Any]:
        """The invocation record of these records: ``{"Records": [...]}``."""
        return {"Records": self.records}

    def s3_object(self) -> dict[str, Any]:
        """What Lambda writes to an S3 destination: the metadata, plus ``payload``, "the
        original invocation record as an escaped JSON string" (Lambda Developer Guide)."""
        return {**self.record, "payload": json.dumps(self.event)}

    def body_for(self, destination: str) -> dict[str, Any]:
        """The JSON document the destination (an ARN) receives."""
        return self.s3_object() if _arn_parts(destination)["service"] == "s3" else self.record


_REOPEN = object()  # _read_page: reopen the shard's iterator and read again


class StreamPoller(_Poller):
    """A DynamoDB stream event source mapping, against DynamoDB Local.

    Parameters
    ----------
    mapping
        ``kind == "dynamodb"``; ``source_arn`` is the stream ARN.
    client_factory
        Service name -> boto3 client; ``"dynamodbstreams"`` (DynamoDB Local), and the
        failure destination's service (``"sqs"``, ``"sns"`` or ``"s3"``, moto).
    describe_interval_s
        How often to look for new shards. Default: 1 s.
    copy_events
        Hand each invocation a fresh JSON copy of its event. Default: True.

    Examples
    --------
    >>> poller = StreamPoller(spec, client_factory)     # doctest: +SKIP
    >>> while poller.poll_once() or poller.busy():      # doctest: +SKIP
    ...     pass
    >>> poller.stats.succeeded                          # doctest: +SKIP
    """

    _KIND = "dynamodb"  # the mapping kind this poller reads (local/kinesis.py: "kinesis")
    _PENDING = _Pending  # a buffered record (Kinesis: with its arrival for the maximum age)

    def __init__(
        self,
        mapping: MappingSpec,
        client_factory: ClientFactory,
        *,
        describe_interval_s: float = 1.0,
        copy_events: bool = True,
        checkpoint_dir: str | Path | None = None,
        undeliverable_path: str | Path | None = None,
    ) -> None:
        if mapping.kind != self._KIND:
            raise ValueError(
                f"{type(self).__name__} takes a {self._KIND!r} mapping, got {mapping.kind!r}")
        if mapping.starting_position not in _STARTING_POSITIONS:
            raise ValueError(
                f"starting_position must be one of {_STARTING_POSITIONS}, "
                f"got {mapping.starting_position!r}"
            )
        if mapping.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {mapping.batch_size}")
        super().__init__(mapping, client_factory, copy_events=copy_events)
        self.stream_arn = mapping.source_arn
        self.describe_interval_s = describe_interval_s
        #: Every batch given up on, sent to the destination or not: the on-failure record
        #: AWS sends and (local only, for a queue or topic) the records themselves.
        self.failure_records: list[FailedBatch] = []
        #: The mapping's UUID, which names S3 on-failure objects.
        self.mapping_uuid = mapping.uuid or str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                           mapping.logical_id))
        self._shards: dict[str, _Shard] = {}
        self._described_at = float("-inf")
        self._function_arn = self._guess_function_arn()
        # A LocalCloud's ``client`` method as the factory brings the cloud's settings.
        owner = getattr(client_factory, "__self__", None)
        checkpoint_dir = checkpoint_dir or getattr(owner, "checkpoint_dir", None)
        #: Where per-shard checkpoints are saved (``None``: kept in memory only).
        self.checkpoint_path = (Path(checkpoint_dir) / f"{mapping.logical_id}.json"
                                if checkpoint_dir else None)
        #: JSON Lines file of on-failure records the destination did not take.
        self.undeliverable_path = Path(
            undeliverable_path or getattr(owner, "undeliverable_path", None)
            or Path(tempfile.gettempdir())
            / f"ddb-stream-patterns-undeliverable-{os.getpid()}.jsonl")
        self.undeliverable = 0
        self._saved: dict[str, dict[str, Any]] = self._load_checkpoints()
        # Discover now: LATEST means "from when the mapping was created" (once the role
        # may read the stream, if it may not yet).
        self._initial_pending = True
        if self._may_read_source():
            self._discover(initial=True)
            self._initial_pending = False

    # -- public

    def poll_once(self) -> int:
        """One pass over the readable shards; returns the records finished with.

        A record is finished with when its batch succeeded, when a filter dropped it, or
        when it was given up on (sent to the failure destination). Nothing is read when
        the function's role may not read the stream (:data:`STREAM_READ_ACTIONS`).
        """
        if not self._may_read_source():
            return 0
        if self._initial_pending:
            self._discover(initial=True)
            self._initial_pending = False
        elif time.monotonic() - self._described_at >= self.describe_interval_s:
            self._discover(initial=False)
        handled = 0
        for shard in self._readable():
            handled += self._poll_shard(shard)
        return handled

    def busy(self, wait_for_delayed: bool = False) -> bool:
        """Whether records were read but not finished with (waiting, or being retried)."""
        return any(shard.buffer for shard in self._shards.values())

    @property
    def shards(self) -> dict[str, _Shard]:
        """The shards known so far, by id (read-only view for tests and diagnostics)."""
        return dict(self._shards)

    # -- shards

    def _list_shards(self) -> list[dict[str, Any]]:
        """Every shard of the stream, as the API describes it (another stream kind, e.g.
        Kinesis, lists its own; the rest of discovery is shared)."""
        streams = self._client("dynamodbstreams")
        described: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            page = streams.describe_stream(**kwargs)["StreamDescription"]
            described.extend(page.get("Shards", []))
            if not page.get("LastEvaluatedShardId"):
                return described
            kwargs["ExclusiveStartShardId"] = page["LastEvaluatedShardId"]

    def _discover(self, *, initial: bool) -> None:
        described = self._list_shards()
        self._described_at = time.monotonic()
        latest = initial and self.mapping.starting_position == "LATEST"
        for item in described:
            shard_id = item["ShardId"]
            if shard_id in self._shards:
                continue
            shard = _Shard(shard_id, item.get("ParentShardId"))
            self._shards[shard_id] = shard
            saved = self._saved.get(shard_id)
            if saved is not None:  # resume after the last record finished with
                shard.last_read = shard.checkpoint = saved.get("checkpoint")
                shard.exhausted = bool(saved.get("done"))
                continue
            if latest:
                if "EndingSequenceNumber" in item.get("SequenceNumberRange", {}):
                    shard.exhausted = True  # closed before the mapping existed
                else:
                    shard.iterator_type = "LATEST"
                    self._open(shard)

    def _readable(self) -> list[_Shard]:
        ready = []
        for shard in self._shards.values():
            if shard.done:
                continue
            parent = self._shards.get(shard.parent_id) if shard.parent_id else None
            if parent is None or parent.done:  # parents first; a trimmed parent is gone
                ready.append(shard)
        return ready

    def _open(self, shard: _Shard) -> None:
        streams = self._client("dynamodbstreams")
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_read is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_read)
        else:
            kwargs["ShardIteratorType"] = shard.iterator_type
        try:
            shard.iterator = streams.get_shard_iterator(**kwargs)["ShardIterator"]
        except Exception as exc:
            code = _error_code(exc)
            if code == "TrimmedDataAccessException":
                shard.last_read = None
                shard.iterator_type = "TRIM_HORIZON"
                shard.iterator = streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard.shard_id,
                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            elif code == "ResourceNotFoundException":
                _LOGGER.warning("%s: shard %s is gone", self.mapping.logical_id, shard.shard_id)
                shard.exhausted = True
            else:
                raise
        if shard.iterator is None and not shard.exhausted:
            shard.exhausted = True

    def _fill(self, shard: _Shard) -> int:
        """Read while the buffer holds less than a batch; returns records filtered out.

        The loop is shared with other stream kinds (Kinesis): a subclass reads a page
        (:meth:`_read_page`) and turns an API record into Lambda's (:meth:`_lambda_record`).
        """
        filtered = 0
        while not shard.exhausted and len(shard.buffer) < self.mapping.batch_size:
            if shard.iterator is None:
                self._open(shard)
                if shard.exhausted:
                    break
            page = self._read_page(shard)
            if page is _REOPEN:
                continue
            if page is None:
                break
            now = time.time()
            records = page.get("Records", [])
            for api_record in records:
                record, sequence = self._lambda_record(api_record, shard)
                self.stats.records_in += 1
                if sequence is not None:
                    shard.last_read = sequence
                if self._passes(record):
                    shard.buffer.append(self._PENDING(record, now))
                else:
                    self.stats.filtered_out += 1
                    filtered += 1
            shard.iterator = page.get("NextShardIterator")
            if shard.iterator is None:
                shard.exhausted = True
            if not records:
                break
        return filtered

    def _read_page(self, shard: _Shard) -> Any:
        """One GetRecords page; ``_REOPEN`` to reopen the shard, ``None`` to stop reading."""
        try:
            return self._client("dynamodbstreams").get_records(
                ShardIterator=shard.iterator, Limit=_GET_RECORDS_LIMIT)
        except Exception as exc:
            code = _error_code(exc)
            if code in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                shard.iterator = None  # reopen after the last record read
                if code == "TrimmedDataAccessException":
                    shard.last_read, shard.iterator_type = None, "TRIM_HORIZON"
                return _REOPEN
            if code == "ResourceNotFoundException":
                _LOGGER.warning("%s: shard %s is gone", self.mapping.logical_id,
                                shard.shard_id)
                shard.exhausted = True
                return None
            if code in ("LimitExceededException", "ThrottlingException"):
                return None
            raise

    def _lambda_record(self, api_record: dict[str, Any], shard: _Shard
                       ) -> tuple[dict[str, Any], str | None]:
        """Lambda's record for one API record, and its sequence number (if it has one)."""
        record = to_lambda_record(api_record, self.stream_arn)
        return record, record["dynamodb"].get("SequenceNumber")


    def _poll_shard(self, shard: _Shard) -> int:
        if shard.buffer and time.monotonic() < shard.not_before:
            return 0  # backing off before a retry
        handled = self._fill(shard)
        handled += self._age_out(shard)
        size = self._batch_size(shard)
        if size:
            handled += self._deliver(shard, shard.buffer[:size])
        if not shard.buffer:
            shard.checkpoint = shard.last_read  # filtered records are finished with too
        self._save_checkpoint(shard)
        return handled

    # -- checkpoints

    def _load_checkpoints(self) -> dict[str, dict[str, Any]]:
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return {}
        saved = json.loads(self.checkpoint_path.read_text())
        if saved.get("stream_arn") != self.stream_arn:
            return {}  # another stream (a table re-created): start afresh
        return dict(saved.get("shards", {}))

    def _save_checkpoint(self, shard: _Shard) -> None:
        if self.checkpoint_path is None:
            return
        entry = {"checkpoint": shard.checkpoint, "done": shard.done}
        if self._saved.get(shard.shard_id) == entry:
            return
        self._saved[shard.shard_id] = entry
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.checkpoint_path.with_suffix(".tmp")
        partial.write_text(json.dumps({"stream_arn": self.stream_arn, "shards": self._saved}))
        partial.replace(self.checkpoint_path)  # atomic: a crash leaves the old or the new

    def _batch_size(self, shard: _Shard) -> int:
        """How many records to invoke with now; 0 while the batching window is open."""
        if not shard.buffer:
            return 0
        if shard.segments:
            return shard.segments[0]
        size = min(self.mapping.batch_size, len(shard.buffer))
        window = self.mapping.max_batching_window_s or 0
        if size < self.mapping.batch_size and window > 0 and not shard.exhausted:
            if time.time() - shard.buffer[0].read_at < window:
                return 0
        return size

    def _consume(self, shard: _Shard, count: int) -> list[_Pending]:
        """Take ``count`` records off the front of the shard (they are checkpointed)."""
        taken, shard.buffer = shard.buffer[:count], shard.buffer[count:]
        if taken:
            shard.checkpoint = taken[-1].sequence_number
        left = count
        while left and shard.segments:
            if shard.segments[0] <= left:
                left -= shard.segments.pop(0)
            else:
                shard.segments[0] -= left
                left = 0
        return taken

    def _reset_head(self, shard: _Shard) -> None:
        shard.attempts = shard.invoke_count = 0
        shard.last_outcome = None
        shard.not_before = 0.0

    def _age_out(self, shard: _Shard) -> int:
        max_age = self.mapping.max_record_age_s
        if max_age is None or max_age < 0 or not shard.buffer:
            return 0
        now = time.time()
        count = 0
        for pending in shard.buffer:
            if now - pending.created_at() <= max_age:
                break
            count += 1
        if not count:
            return 0
        head = shard.segments[0] if shard.segments else 0
        invoke_count, outcome = shard.invoke_count, shard.last_outcome
        expired = self._consume(shard, count)
        if count >= head:
            self._reset_head(shard)
        self._give_up(shard, expired, _TOO_OLD, invoke_count, outcome)
        return count

    def _deliver(self, shard: _Shard, batch: list[_Pending]) -> int:
        outcome = self._invoke([p.record for p in batch])
        shard.invoke_count += 1
        shard.last_outcome = outcome
        if outcome.error is not None:
            return self._failed(shard, batch, outcome)
        if not self.mapping.report_batch_item_failures:
            return self._succeeded(shard, len(batch))
        sequence = [p.sequence_number for p in batch]
        failures = parse_batch_item_failures(outcome.response, sequence)
        if failures.ok:
            return self._succeeded(shard, len(batch))
        if failures.whole_batch:
            _LOGGER.info("%s: whole batch failed: %s", self.mapping.logical_id, failures.reason)
            return self._failed(shard, batch, outcome)
        first = min(sequence.index(i) for i in failures.identifiers)
        if first == 0:  # the checkpoint cannot move: the same as a failure of the batch
            return self._failed(shard, batch, outcome)
        return self._partly_failed(shard, batch, first, outcome)

    def _succeeded(self, shard: _Shard, count: int) -> int:
        self._consume(shard, count)
        self._reset_head(shard)
        self.stats.succeeded += count
        return count

    def _partly_failed(self, shard: _Shard, batch: list[_Pending], first: int,
                       outcome: _Outcome) -> int:
        """Checkpoint before the lowest reported record; the rest is retried from it."""
        self.stats.failed_attempts += 1
        if not shard.segments:
            shard.segments = [len(batch)]
        self._consume(shard, first)
        self.stats.succeeded += first
        if self.mapping.bisect_on_error:
            # "bisected at the returned sequence number": a split, not a retry.
            return first
        return first + self._retry_or_give_up(shard, batch[first:], outcome)

    def _failed(self, shard: _Shard, batch: list[_Pending], outcome: _Outcome) -> int:
        self.stats.failed_attempts += 1
        if not shard.segments:
            shard.segments = [len(batch)]  # retry exactly this batch
        if self.mapping.bisect_on_error and len(batch) > 1:
            half = (len(batch) + 1) // 2
            shard.segments[0:1] = [half, len(batch) - half]
            self._reset_head(shard)  # splitting does not count towards the retries
            return 0
        return self._retry_or_give_up(shard, batch, outcome)

    def _retry_or_give_up(self, shard: _Shard, batch: list[_Pending], outcome: _Outcome) -> int:
        shard.attempts += 1
        limit = self.mapping.max_retry_attempts
        if limit is None or limit < 0 or shard.attempts <= limit:
            # Exponential back-off, so a failing function is not invoked in a hot loop.
            delay = min(_RETRY_BACKOFF_S * 2 ** (shard.attempts - 1), _RETRY_BACKOFF_MAX_S)
            shard.not_before = time.monotonic() + delay
            return 0
        invoke_count = shard.invoke_count
        given_up = self._consume(shard, len(batch))
        self._reset_head(shard)
        self._give_up(shard, given_up, _EXHAUSTED, invoke_count, outcome)
        return len(given_up)

    # -- the failure destination

    def _guess_function_arn(self) -> str:
        function = self.mapping.function
        for attribute in ("function_arn", "arn"):
            arn = getattr(function, attribute, None)
            if isinstance(arn, str) and arn:
                return arn
        anchor = self.mapping.on_failure_arn or self.stream_arn
        try:
            parts = _arn_parts(anchor)
            region, account = parts["region"], parts["account"]
        except ValueError:
            region, account = "us-east-1", "123456789012"
        return f"arn:aws:lambda:{region}:{account or '123456789012'}:function:{function.name}"

    def _failure_envelope(self, condition: str, invoke_count: int,
                          outcome: _Outcome | None) -> dict[str, Any]:
        """What every stream kind's on-failure record starts with (then its batch info)."""
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if outcome is not None and outcome.function_error:
            response["functionError"] = outcome.function_error
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self._function_arn,
                "condition": condition,
                "approximateInvokeCount": invoke_count,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(time.time()),
        }

    def _failure_record(self, shard: _Shard, items: list[_Pending], condition: str,
                        invoke_count: int, outcome: _Outcome | None) -> dict[str, Any]:
        first, last = items[0].record["dynamodb"], items[-1].record["dynamodb"]

        def arrival(ddb: Mapping[str, Any]) -> str | None:
            seconds = ddb.get("ApproximateCreationDateTime")
            return None if seconds is None else _iso(float(seconds))

        return {
            **self._failure_envelope(condition, invoke_count, outcome),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first.get("SequenceNumber"),
                "endSequenceNumber": last.get("SequenceNumber"),
                "approximateArrivalOfFirstRecord": arrival(first),
                "approximateArrivalOfLastRecord": arrival(last),
                "batchSize": len(items),
                "streamArn": self.stream_arn,
            },
        }

    def _give_up(self, shard: _Shard, items: list[_Pending], condition: str,
                 invoke_count: int, outcome: _Outcome | None) -> None:
        target = self.mapping.on_failure_arn
        failed = FailedBatch(self.mapping.logical_id,
                             self._failure_record(shard, items, condition, invoke_count, outcome),
                             [p.record for p in items], target)
        self.failure_records.append(failed)
        self.stats.sent_to_failure_destination += len(items)
        self.stats.dropped += len(items)  # until the destination takes them
        cause = (f"; last error {outcome.error_type}: {outcome.error_message}"
                 if outcome is not None and outcome.error is not None else "")
        _LOGGER.warning("%s: giving up on %d records of shard %s (%s%s)%s",
                        self.mapping.logical_id, len(items), shard.shard_id, condition, cause,
                        f", sending them to {target}" if target else ", no destination")
        if not target:
            return
        try:
            self._send(target, failed, shard.shard_id)
            failed.delivered = True
            self.stats.dropped -= len(items)
            self.stats.on_failure_delivered += len(items)
        except Exception as exc:  # the local cloud keeps going; the record goes to a file
            self._keep_undeliverable(target, failed, exc)

    def _keep_undeliverable(self, target: str, failed: FailedBatch, exc: Exception) -> None:
        """Append an on-failure record the destination did not take to a JSON Lines file:
        ``payload`` is what the destination would have received, ``records`` the records
        given up on (local: a queue or topic would not have received them)."""
        line = {"mapping": self.mapping.logical_id, "destination": target,
                "error": f"{type(exc).__name__}: {exc}", "payload": failed.body_for(target),
                "records": failed.records}
        if failed.s3_key:
            line["key"] = failed.s3_key
        self.undeliverable_path.parent.mkdir(parents=True, exist_ok=True)
        with self.undeliverable_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        self.undeliverable += 1
        _LOGGER.error("%s: could not send the on-failure record to %s (%s: %s); kept in %s",
                      self.mapping.logical_id, target, type(exc).__name__, exc,
                      self.undeliverable_path)

    def _send(self, target: str, failed: FailedBatch, shard_id: str) -> None:
        """Write the on-failure record, as the function's role (:meth:`_require`): the
        metadata alone to a queue or a topic, the metadata and the invocation record to a
        bucket (:meth:`FailedBatch.s3_object`, under :func:`failure_object_key`)."""
        parts = _arn_parts(target)
        service = parts["service"]
        if service not in DESTINATION_ACTIONS:
            raise ValueError(f"unsupported on-failure destination {target!r}")
        body = json.dumps(failed.body_for(target))
        key = None
        resource = target
        if service == "s3":
            try:
                when = datetime.strptime(failed.record["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
            except (KeyError, ValueError):
                when = datetime.now(timezone.utc)
            key = failed.s3_key = failure_object_key(self.mapping_uuid, shard_id, when)
            resource = f"{target}/{key}"
            # The bucket's owner (s3:ResourceAccount): every local bucket is the cloud's.
            owner = getattr(getattr(self.mapping.function, "authorizer", None), "account",
                            None)
            context = {"s3:ResourceAccount": owner} if owner else None
            self._denied(check_mapping_permissions(
                self.mapping, S3_DESTINATION_BUCKET_ACTIONS, target, context))
            self._denied(check_mapping_permissions(
                self.mapping, (DESTINATION_ACTIONS[service],), resource, context))
        else:
            self._require(DESTINATION_ACTIONS[service], resource)
        if service == "sqs":
            url = self._queue_url(target)
            self._client("sqs").send_message(QueueUrl=url, MessageBody=body)
        elif service == "sns":
            self._client("sns").publish(TopicArn=target, Message=body)
        else:
            self._client("s3").put_object(Bucket=parts["resource"], Key=key, Body=body.encode())


# --- SQS ------------------------------------------------------------------------------------


def check_redelivery_rate(prop: str, rate: object) -> None:
    """A forced-redelivery probability: a number in [0, 1)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"{prop} must be a number in [0, 1), got {rate!r}")


class SqsPoller(_Poller):
    """An SQS event source mapping, against moto.

    Parameters
    ----------
    mapping
        ``kind == "sqs"``; ``source_arn`` is the queue ARN, ``queue_url`` its URL (looked
        up from the ARN when not set).
    client_factory
        Service name -> boto3 client; ``"sqs"`` (moto).
    clock_scale
        Scales the time a failed message stays invisible: with a scale other than 1,
        each failed message gets ``ChangeMessageVisibility`` to the queue's visibility
        timeout times the scale, rounded up to whole seconds (SQS's unit; at least 1 s
        when the timeout is not 0). Default: 1 (no call: the message stays invisible
        for the queue's visibility timeout, as Lambda leaves it).
    failed_visibility_timeout_s
        An explicit visibility timeout (seconds) for failed messages; overrides
        ``clock_scale``. Default: None.
    copy_events
        Hand each invocation a fresh JSON copy of its event. Default: True.
    redelivery_rate
        Forced redelivery, 0-1: the probability that a message the function processed
        successfully comes back, as it does on AWS when a consumer's ``DeleteMessage``
        is lost or SNS delivers a notification twice. Half of those are left undeleted
        (visible again after ``redelivery_delay_s``, ``ApproximateReceiveCount`` grows),
        half are sent again as a new message with the same body and attributes (another
        ``messageId``; standard queues only). FIFO queues get only the first kind, for
        the last message of a group in the batch: SQS serves no later message of the
        group while it is in flight, so a group is never processed out of order. Only a
        message's first receive is forced back, so each message is processed at most a
        few times. With a rate above 0, each batch from a standard queue is also
        shuffled before it is handed to the function. :attr:`redelivered` counts them.
        Default: 0 (off: moto's exactly-once delivery, in order).
    redelivery_delay_s
        Seconds an undeleted message stays invisible before it comes back (AWS: the
        visibility timeout). Default: 1.
    seed
        Seed of the random choices of ``redelivery_rate`` (reproducible runs).
        Default: None (a fresh seed).

    Notes
    -----
    Filter criteria are matched against the Lambda record with ``body`` decoded when it
    is a JSON object (Lambda's rule); messages they reject are deleted, as Lambda does.
    :meth:`poll_once` may run in several threads at once (:class:`Pollers` runs up to
    the mapping's ``max_concurrency`` of them); each receives its own batch.
    """

    def __init__(
        self,
        mapping: MappingSpec,
        client_factory: ClientFactory,
        *,
        clock_scale: float = 1.0,
        failed_visibility_timeout_s: int | None = None,
        copy_events: bool = True,
        redelivery_rate: float = 0.0,
        redelivery_delay_s: int = 1,
        seed: int | str | None = None,
    ) -> None:
        if mapping.kind != "sqs":
            raise ValueError(f"SqsPoller takes an 'sqs' mapping, got {mapping.kind!r}")
        check_redelivery_rate("redelivery_rate", redelivery_rate)
        if not (isinstance(redelivery_delay_s, int) and 0 <= redelivery_delay_s <= 43_200):
            raise ValueError(
                f"redelivery_delay_s must be whole seconds in 0-43200, got {redelivery_delay_s!r}"
            )
        if mapping.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {mapping.batch_size}")
        if not clock_scale > 0:
            raise ValueError(f"clock_scale must be greater than 0, got {clock_scale!r}")
        super().__init__(mapping, client_factory, copy_events=copy_events)
        self.queue_arn = mapping.source_arn
        self.queue_url = mapping.queue_url or self._queue_url(self.queue_arn)
        self.clock_scale = clock_scale
        self.failed_visibility_timeout_s = failed_visibility_timeout_s
        self._visibility_timeout_s: int | None = None
        self._lock = threading.Lock()  # stats and the fields below, across threads
        self._comes_back_at = float("-inf")  # monotonic: when the last failed ones return
        self._last_poll_at = float("-inf")  # monotonic: when the last poll began
        self._saw_delayed = False  # the last look found messages in their delay
        self._delay_cleared_at = float("-inf")  # monotonic: when none were delayed any more
        self.redelivery_rate = float(redelivery_rate)
        self.redelivery_delay_s = redelivery_delay_s
        self._random = random.Random(seed)  # noqa: S311 (fault injection, not crypto)
        self.fifo = self.queue_url.endswith(".fifo")
        #: Messages forced back: ``{"undeleted": n, "resent": n}`` (``redelivery_rate``).
        self.redelivered = {"undeleted": 0, "resent": 0}

    @property
    def concurrency(self) -> int:
        """How many batches may be in flight at once: ``MaximumConcurrency``, else
        :data:`DEFAULT_SQS_CONCURRENCY` (Lambda starts with five concurrent batches)."""
        return self.mapping.max_concurrency or DEFAULT_SQS_CONCURRENCY

    def poll_once(self) -> int:
        """Receive up to a batch, invoke, delete what succeeded; returns messages handled.

        A message is handled when it was deleted (succeeded or filtered out) or came back
        failed; 0 means the queue had nothing visible, or the function's role may not
        read it (:data:`SQS_READ_ACTIONS`: nothing is received).
        """
        with self._lock:
            self._last_poll_at = time.monotonic()
            if not self._may_read(SQS_READ_ACTIONS, self.queue_arn):
                return 0
        messages = self._receive()
        if not messages:
            return 0
        if self.redelivery_rate and not self.fifo:
            with self._lock:
                self._random.shuffle(messages)  # a standard queue keeps no order
        records, dropped = [], []
        for message in messages:
            record = to_lambda_sqs_record(message, self.queue_arn)
            (records if self._passes(_filterable(record)) else dropped).append(record)
        with self._lock:
            self.stats.records_in += len(messages)
            self.stats.filtered_out += len(dropped)
        if dropped:
            self._delete(dropped)
        if not records:
            return len(messages)
        outcome = self._invoke(records)
        failed_ids: set[str]
        failed_attempts = 0
        if outcome.error is not None:
            failed_ids = {r["messageId"] for r in records}
            failed_attempts = 1
        elif not self.mapping.report_batch_item_failures:
            failed_ids = set()
        else:
            failures = parse_batch_item_failures(outcome.response,
                                                 [r["messageId"] for r in records])
            if failures.whole_batch:
                _LOGGER.info("%s: whole batch failed: %s", self.mapping.logical_id,
                             failures.reason)
                failed_ids = {r["messageId"] for r in records}
                failed_attempts = 1
            else:
                failed_ids = set(failures.identifiers)
                failed_attempts = len(failed_ids)
        succeeded = [r for r in records if r["messageId"] not in failed_ids]
        back = self._force_back(succeeded, messages) if self.redelivery_rate else []
        self._delete([r for r in succeeded if r["messageId"] not in back])
        self._release([r for r in records if r["messageId"] in failed_ids])
        with self._lock:
            self.stats.succeeded += len(succeeded)
            self.stats.failed_attempts += failed_attempts
        return len(messages)

    def busy(self, wait_for_delayed: bool = False) -> bool:
        """Whether failed messages are still to come back (they stay invisible for their
        visibility timeout) or, with ``wait_for_delayed``, messages are still in their
        delay. Messages taken by another consumer are not waited for."""
        with self._lock:
            # Until a poll has begun after they are visible again (moto counts in ms).
            if self._last_poll_at < self._comes_back_at + _VISIBILITY_MARGIN_S:
                return True
        if not wait_for_delayed:
            return False
        attributes = self._client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        delayed = int(attributes.get("ApproximateNumberOfMessagesDelayed", 0))
        now = time.monotonic()
        with self._lock:
            if delayed:
                self._saw_delayed = True
                return True
            if self._saw_delayed:
                # The last ones just became visible: until a poll has begun since, the
                # idle polls counted while they were delayed would let the run return
                # before any poll receives them (seen under load).
                self._saw_delayed = False
                self._delay_cleared_at = now
            return self._last_poll_at < self._delay_cleared_at + _VISIBILITY_MARGIN_S

    def failed_visibility_s(self) -> int:
        """How long (s) a failed message stays invisible: see ``clock_scale``."""
        if self.failed_visibility_timeout_s is not None:
            return self.failed_visibility_timeout_s
        timeout = self._queue_visibility_timeout()
        if self.clock_scale == 1 or timeout == 0:
            return timeout
        return max(1, math.ceil(timeout * self.clock_scale - 1e-9))

    def _queue_visibility_timeout(self) -> int:
        if self._visibility_timeout_s is None:
            attributes = self._client("sqs").get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
            )["Attributes"]
            self._visibility_timeout_s = int(attributes.get("VisibilityTimeout", 30))
        return self._visibility_timeout_s

    def _receive(self) -> list[dict[str, Any]]:
        sqs = self._client("sqs")
        wanted = self.mapping.batch_size
        window = self.mapping.max_batching_window_s or 0
        deadline = time.monotonic() + window
        messages: list[dict[str, Any]] = []
        while len(messages) < wanted:
            got = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(_SQS_RECEIVE_MAX, wanted - len(messages)),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if not got:
                if not messages or time.monotonic() >= deadline:
                    break
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return messages

    def _delete(self, records: Sequence[Mapping[str, Any]]) -> None:
        sqs = self._client("sqs")
        for start in range(0, len(records), _SQS_RECEIVE_MAX):
            chunk = records[start:start + _SQS_RECEIVE_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
                       for i, r in enumerate(chunk)]
            failed = sqs.delete_message_batch(QueueUrl=self.queue_url,
                                              Entries=entries).get("Failed", [])
            for entry in failed:
                _LOGGER.warning("%s: could not delete message: %s", self.mapping.logical_id,
                                entry)

    def _force_back(self, succeeded: Sequence[Mapping[str, Any]],
                    messages: Sequence[Mapping[str, Any]]) -> set[str]:
        """Forced redelivery: pick processed messages that come back; returns the IDs of
        those left undeleted (copies are sent here; their originals are deleted)."""
        received = {m["MessageId"]: m for m in messages}
        undeleted: list[Mapping[str, Any]] = []
        resend: list[Mapping[str, Any]] = []
        # FIFO: only the last message of a group in the batch (moto, like SQS, serves no
        # later message of the group while it is in flight, so the order holds; moto
        # mishandles several in-flight messages of one group coming back together).
        last_of_group = {r["attributes"].get("MessageGroupId"): r["messageId"]
                         for r in succeeded}
        with self._lock:
            for record in succeeded:
                if self.fifo and last_of_group.get(
                        record["attributes"].get("MessageGroupId")) != record["messageId"]:
                    continue
                if record["attributes"].get("ApproximateReceiveCount", "1") != "1":
                    continue  # forced back once already: let it go
                if self._random.random() >= self.redelivery_rate:
                    continue
                if self.fifo or self._random.random() < 0.5:
                    undeleted.append(record)
                else:
                    resend.append(received[record["messageId"]])
            self.redelivered["undeleted"] += len(undeleted)
            self.redelivered["resent"] += len(resend)
            if undeleted:
                self._comes_back_at = max(self._comes_back_at,
                                          time.monotonic() + self.redelivery_delay_s)
        sqs = self._client("sqs")
        for start in range(0, len(undeleted), _SQS_RECEIVE_MAX):
            chunk = undeleted[start:start + _SQS_RECEIVE_MAX]
            sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"],
                 "VisibilityTimeout": self.redelivery_delay_s}
                for i, r in enumerate(chunk)])
        for message in resend:  # as SNS delivering the notification a second time
            attributes = {
                name: {k: v for k, v in value.items()
                       if k in ("DataType", "StringValue", "BinaryValue")}
                for name, value in (message.get("MessageAttributes") or {}).items()
            }
            params: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": message["Body"]}
            if attributes:
                params["MessageAttributes"] = attributes
            sqs.send_message(**params)
        return {r["messageId"] for r in undeleted}

    def _release(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Leave failed messages invisible for their (scaled) visibility timeout.

        Lambda does nothing: the message comes back when the visibility timeout it got
        at receive ends. With a clock scale (or an explicit timeout) the remaining
        invisibility is set with ``ChangeMessageVisibilityBatch``, counted from now.
        """
        if not records:
            return
        timeout = self.failed_visibility_s()
        with self._lock:
            self._comes_back_at = max(self._comes_back_at, time.monotonic() + timeout)
        if self.failed_visibility_timeout_s is None and self.clock_scale == 1:
            return
        sqs = self._client("sqs")
        for start in range(0, len(records), _SQS_RECEIVE_MAX):
            chunk = records[start:start + _SQS_RECEIVE_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"],
                        "VisibilityTimeout": timeout}
                       for i, r in enumerate(chunk)]
            sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)


def _filterable(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """Lambda filters an SQS body as JSON when it is a JSON object, as a string otherwise."""
    body = record.get("body")
    if isinstance(body, str) and body.lstrip().startswith("{"):
        try:
            return {**record, "body": json.loads(body)}
        except ValueError:
            pass
    return record


# --- all of them ----------------------------------------------------------------------------


class PollerTimeout(TimeoutError):
    """:meth:`Pollers.run_until_idle` ran out of time; ``busy`` names the mappings at work."""

    def __init__(self, message: str, busy: Sequence[str], stats: Mapping[str, MappingStats]):
        super().__init__(message)
        self.busy = list(busy)
        self.stats = dict(stats)


_POLLER_KINDS: dict[str, type[StreamPoller] | type[SqsPoller]] = {
    "dynamodb": StreamPoller, "sqs": SqsPoller,
}


class Pollers:
    """All the event source mappings of a local cloud, each polled independently.

    Each mapping has its own thread (an SQS mapping up to its ``max_concurrency``
    threads, :data:`DEFAULT_SQS_CONCURRENCY` without one), as Lambda polls each event
    source mapping apart: a slow function delays only its own mapping.

    Parameters
    ----------
    mappings
        The event source mappings.
    client_factory
        Service name -> boto3 client (see the module notes).
    clock_scale
        Passed to each :class:`SqsPoller`: visibility timeouts of failed messages are
        multiplied by it (``LocalCloud(clock_scale=...)``). Default: 1.
    sqs_redelivery_rate
        Forced redelivery on every SQS mapping (:class:`SqsPoller`'s ``redelivery_rate``:
        lost deletes, duplicate notifications, shuffled batches;
        ``LocalCloud(sqs_redelivery_rate=...)``). Default: 0 (off).
    seed
        Seeds each SQS poller's random choices (with its mapping's logical ID), for
        reproducible runs. Default: None.

    Examples
    --------
    >>> pollers = Pollers(mappings, client_factory)      # doctest: +SKIP
    >>> pollers.run_until_idle(timeout=30)               # doctest: +SKIP
    >>> pollers.stats()["ProcessorMapping"].succeeded    # doctest: +SKIP
    """

    def __init__(self, mappings: Iterable[MappingSpec], client_factory: ClientFactory, *,
                 clock_scale: float = 1.0, sqs_redelivery_rate: float = 0.0,
                 seed: int | None = None) -> None:
        check_redelivery_rate("sqs_redelivery_rate", sqs_redelivery_rate)
        self.pollers: dict[str, StreamPoller | SqsPoller] = {}
        for mapping in mappings:
            if mapping.logical_id in self.pollers:
                raise ValueError(f"duplicate mapping logical id {mapping.logical_id!r}")
            kind = _POLLER_KINDS.get(mapping.kind)
            if kind is None and mapping.kind == "kinesis":  # hook: local/kinesis.py
                from .kinesis import KinesisPoller as kind
            if kind is None:
                raise ValueError(f"unsupported mapping kind {mapping.kind!r}")
            if kind is SqsPoller:
                self.pollers[mapping.logical_id] = SqsPoller(
                    mapping, client_factory, clock_scale=clock_scale,
                    redelivery_rate=sqs_redelivery_rate,
                    seed=None if seed is None else f"{seed}:{mapping.logical_id}")
            else:
                self.pollers[mapping.logical_id] = kind(mapping, client_factory)
        self.clock_scale = clock_scale
        self._lock = threading.Lock()  # poll_once (one round in the caller's thread)
        self._threads: list[threading.Thread] = []
        self._client_factory = client_factory
        #: Why the background threads stopped (a stand-in died), or ``None``.
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._background = False
        # Idle tracking across the threads, under _state.
        self._state = threading.Condition()
        self._idle: dict[tuple[str, int], int] = {}  # (mapping, slot) -> idle polls
        self._in_poll: set[tuple[str, int]] = set()  # (mapping, slot) polling now
        self._last_work = float("-inf")  # monotonic end of the last poll that found work
        self._recent_work: dict[str, bool] = {}  # mapping -> its last poll found work
        self._handled = 0
        self._error: BaseException | None = None
        self._raise_errors = False

    def __getitem__(self, logical_id: str) -> StreamPoller | SqsPoller:
        return self.pollers[logical_id]

    def stats(self) -> dict[str, MappingStats]:
        """``{logical_id: MappingStats}`` (the live objects of the mappings)."""
        return {logical_id: p.stats for logical_id, p in self.pollers.items()}

    def poll_once(self) -> int:
        """One round in this thread: each poller once. Returns the records handled."""
        if self._threads:
            raise RuntimeError("the pollers run in their threads: stop() them first")
        try:
            with self._lock:
                return sum(p.poll_once() for p in self.pollers.values())
        except Exception as exc:
            died = self._stand_in_died()
            if died is not None:
                raise died from exc
            raise

    def _stand_in_died(self) -> Exception | None:
        """The error of a stand-in that died for good (a LocalCloud's ``check``), if any."""
        check = getattr(getattr(self._client_factory, "__self__", None), "check", None)
        if check is None:
            return None
        try:
            check()
        except Exception as exc:
            return exc
        return None

    # -- the threads

    def _slots(self, poller: StreamPoller | SqsPoller) -> int:
        return poller.concurrency if isinstance(poller, SqsPoller) else 1

    def _run_slot(self, logical_id: str, slot: int, interval: float) -> None:
        poller = self.pollers[logical_id]
        key = (logical_id, slot)
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            handled = 0
            # Extra SQS slots join in only while the mapping finds messages (Lambda
            # scales down to a few pollers on an idle queue).
            polls = slot == 0 or self._recent_work.get(logical_id, False)
            if polls:
                with self._state:
                    self._in_poll.add(key)
                try:
                    handled = poller.poll_once()
                    failures = 0
                except Exception as exc:
                    died = self._stand_in_died()
                    if died is not None:  # one clear error, then every thread stops
                        with self._state:
                            if self.error is None:
                                _LOGGER.error("pollers stopped: %s", died)
                            self.error = self.error or died
                            self._error = self._error or died
                            self._in_poll.discard(key)
                            self._state.notify_all()
                        self._stop.set()
                        return
                    if self._raise_errors:
                        with self._state:
                            self._error = self._error or exc
                            self._state.notify_all()
                        return
                    failures += 1
                    if failures == 1:
                        _LOGGER.exception("%s: poll failed; retrying with back-off", logical_id)
                    else:
                        _LOGGER.debug("%s: poll failed again (%d): %s", logical_id, failures, exc)
                    with self._state:
                        self._in_poll.discard(key)
                    self._stop.wait(min(interval * 2 ** failures, _ROUND_BACKOFF_MAX_S))
                    continue
            with self._state:
                self._in_poll.discard(key)
                if handled:
                    self._handled += handled
                    self._last_work = time.monotonic()
                    for k in self._idle:
                        self._idle[k] = 0
                elif started >= self._last_work:
                    self._idle[key] += 1
                if slot == 0 or handled:
                    self._recent_work[logical_id] = bool(handled)
                self._state.notify_all()
            if not handled:
                self._stop.wait(interval)

    def _start_threads(self, interval: float, *, raise_errors: bool) -> None:
        self._stop.clear()
        self._raise_errors = raise_errors
        self._error = None
        self._threads = []
        with self._state:
            self._idle = {}
            for logical_id, poller in self.pollers.items():
                for slot in range(self._slots(poller)):
                    self._idle[(logical_id, slot)] = 0
        for (logical_id, slot) in list(self._idle):
            thread = threading.Thread(target=self._run_slot, args=(logical_id, slot, interval),
                                      name=f"poller-{logical_id}-{slot}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _stop_threads(self) -> None:
        self._stop.set()
        with self._state:
            self._state.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def _at_work(self, idle_rounds: int, wait_for_delayed: bool) -> list[str]:
        """Mappings not idle: a slot without ``idle_rounds`` idle polls since the last
        work anywhere, or a poller waiting for retries, failed messages or delays."""
        with self._state:
            counts = dict(self._idle)
            polling = {logical_id for logical_id, _ in self._in_poll}
        busy = {logical_id for (logical_id, _), idle in counts.items() if idle < idle_rounds}
        busy |= polling  # a poll under way may yet find work (or fail and retry)
        for logical_id, poller in self.pollers.items():
            if logical_id not in busy and poller.busy(wait_for_delayed):
                busy.add(logical_id)
                # Its idle polls so far saw the messages still delayed or invisible: it
                # needs fresh ones once they come back, or this could return between
                # "nothing delayed" and the poll that receives them.
                with self._state:
                    for key in self._idle:
                        if key[0] == logical_id:
                            self._idle[key] = 0
        return [logical_id for logical_id in self.pollers if logical_id in busy]

    def run_until_idle(
        self,
        timeout: float = 30.0,
        idle_rounds: int = 3,
        *,
        wait_for_delayed: bool = True,
        interval: float = 0.05,
    ) -> int:
        """Poll (each mapping in its threads) until every mapping is idle.

        Idle means: each of a mapping's threads polled ``idle_rounds`` times in a row
        without finding anything, all of those polls begun after the last poll (of any
        mapping) that found work, and no records waiting in a batching window or for a
        retry, no failed SQS message still to come back and, with ``wait_for_delayed``,
        no message still in an SQS delay. A poller sleeps ``interval`` after a poll that
        found nothing. Returns the records handled in all. Uses the background threads
        when :meth:`start` is running, else starts its own and stops them on return.

        Raises
        ------
        PollerTimeout
            After ``timeout`` seconds, naming the mappings still at work (e.g. a
            poison record retried forever under ``max_retry_attempts=-1``).
        Exception
            The first error a poll raised (its threads are stopped).
        """
        own = not self._background
        if own:
            self._start_threads(interval, raise_errors=True)
        with self._state:
            handled_before = self._handled
        deadline = time.monotonic() + timeout
        try:
            while True:
                with self._state:
                    if self._error is not None:
                        raise self._error
                busy = self._at_work(idle_rounds, wait_for_delayed)
                if not busy:
                    with self._state:
                        return self._handled - handled_before
                if time.monotonic() >= deadline:
                    raise PollerTimeout(
                        f"pollers not idle after {timeout:g} s; still at work: "
                        f"{', '.join(busy)}",
                        busy, self.stats(),
                    )
                with self._state:
                    self._state.wait(timeout=interval)
        finally:
            if own:
                self._stop_threads()

    # -- in the background

    def start(self, interval: float = 0.1) -> Pollers:
        """Poll in daemon threads until :meth:`stop`; errors are logged, not raised."""
        if self._background:
            return self
        self._start_threads(interval, raise_errors=False)
        self._background = True
        return self

    def stop(self) -> None:
        if not self._background:
            return
        self._stop_threads()
        self._background = False

    def __enter__(self) -> Pollers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
