"""The ComplexController's controller Lambda: DynamoDB stream records -> SNS ``PublishBatch``.

Each stream record becomes one SNS message whose body is the record exactly as
Lambda delivered it (compact JSON), so a processor behind SQS rebuilds the same
:class:`~ddb_stream_runtime.StreamRecord` (see :mod:`ddb_stream_runtime.processor`).
A few attributes are lifted from the images into SNS message attributes, where
subscription filter policies can route on them.

Configuration (environment variables, read on the first invocation)
-------------------------------------------------------------------
``TOPIC_ARN``
    Required: the topic to publish to.
``ROUTING_ATTRIBUTES``
    JSON list of item attribute names to lift, e.g. ``["status"]``. Default: none.
``CLAIM_CHECK_BUCKET``
    Bucket for records too large for SNS. Default: none (such a record fails).
``FIFO``
    ``"true"`` / ``"false"``. Default: true iff ``TOPIC_ARN`` ends with ``.fifo``.
``PUBLISH_TTL_EXPIRY``
    ``"true"`` / ``"false"``: add the ``ttlExpiry`` attribute (below). Default: false
    (the ``StreamFanOut`` construct sets it, so that a consumer's filter policy can
    keep TTL deletions only; ``ComplexController`` does not).

Message attributes
------------------
``eventName`` and ``tableName`` (String), plus each routing attribute found in
``NewImage``, else ``OldImage`` (REMOVE, or an attribute the update removed),
else ``Keys`` (so key attributes route on KEYS_ONLY streams too). Only the raw
DynamoDB JSON of those attributes is read: images are never deserialized.

With ``PUBLISH_TTL_EXPIRY``, a REMOVE made by DynamoDB's TTL process (its
``userIdentity`` is ``{"type": "Service", "principalId": "dynamodb.amazonaws.com"}``)
also carries ``ttlExpiry`` = ``"true"`` (String); every other record carries no
``ttlExpiry`` (so a policy ``{"ttlExpiry": ["true"]}`` keeps TTL deletions only). It
counts against the 10 attributes: at most 7 routing attributes then.

=====  ===================  ================================================
tag    SNS ``DataType``     ``StringValue``
=====  ===================  ================================================
S      ``String``           the string (an empty string is omitted: SNS
                            rejects empty attribute values)
N      ``Number``           the number text, unchanged
BOOL   ``String``           ``"true"`` / ``"false"``
SS     ``String.Array``     JSON array of strings
NS     ``String.Array``     JSON array of numbers (SNS documents no numeric
                            filter on arrays: route on an N attribute)
=====  ===================  ================================================

``N`` is published as its text: SNS documents ``Number`` values from -10^9 to
10^9 with 5 decimals, and numeric filters within that range (larger DynamoDB
numbers are published unchanged). Routes must use the published type: numbers
for N, strings for S and SS, ``"true"``/``"false"`` for BOOL (the construct's
``Route`` builds the right filter from plain values).

M, L, B, BS and NULL are not lifted (filter policies cannot match them
meaningfully); a missing attribute is omitted. Any other type tag is not valid
DynamoDB JSON: that record fails (its ``batchItemFailure`` names the attribute
and the tag), it is never published without the attribute a route may expect.

Delivery semantics
------------------
At least once. Records are published in stream order, in calls of at most
10 entries and 256 KiB. Per-entry failures inside a 200 are retried (not the
``SenderFault`` ones); then the earliest record still unpublished is reported
as the only ``batchItemFailure`` and nothing after it is published. Lambda
re-sends that record *and every record after it*, including any already
published in the same call, so processors must be idempotent (on FIFO topics
the deduplication id, the record's ``eventID``, drops repeats within 5 minutes).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from ._aws import aws_client, check_retry_settings
from ._claim_check import CLAIM_CHECK_FIELD, CLAIM_CHECK_PREFIX
from .batch import _Failure, _records_of, _sequence_number_of
from .deserialize import DeserializationError
from .records import StreamRecord

if TYPE_CHECKING:
    from ._claim_check import ClaimCheckLocation, ClaimCheckPointer
    from .batch import BatchItemFailure, PartialBatchResponse

__all__ = [
    "CLAIM_CHECK_FIELD",
    "CLAIM_CHECK_PREFIX",
    "MAX_MESSAGE_BYTES",
    "TTL_EXPIRY_ATTRIBUTE",
    "ClaimCheckLocation",
    "ClaimCheckPointer",
    "MessageAttributeValue",
    "PublishBatchEntry",
    "Router",
    "RouterConfig",
    "handler",
]

_LOGGER = logging.getLogger(__name__)


def __getattr__(name: str) -> object:
    # The claim-check TypedDicts are re-exported without being built on a cold start.
    if name not in ("ClaimCheckLocation", "ClaimCheckPointer"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _claim_check

    return getattr(_claim_check, name)

#: SNS's limit for one message and for one PublishBatch call (body + attributes).
MAX_MESSAGE_BYTES = 262_144
_MAX_ENTRIES = 10  # PublishBatch's limit
_MAX_ATTRIBUTES = 10  # raw delivery silently drops messages with more
_BUILT_IN_ATTRIBUTES = ("eventName", "tableName")
TTL_EXPIRY_ATTRIBUTE = "ttlExpiry"
_TTL_EXPIRY_VALUE: MessageAttributeValue = {"DataType": "String", "StringValue": "true"}
_TTL_EXPIRY_BYTES = len(TTL_EXPIRY_ATTRIBUTE) + len("String") + len("true")
_WHOLE_BATCH = ""  # Lambda reads an empty itemIdentifier as "the whole batch failed"
_UNKNOWN_TABLE = "_unknown"

# SNS message attribute names: letters, digits, _ - . ; no leading/trailing/double dot.
_ATTRIBUTE_NAME = re.compile(r"(?!\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,256}(?<!\.)")
_RESERVED_PREFIXES = ("aws.", "amazon.")
# MessageGroupId / MessageDeduplicationId: 1-128 printable ASCII characters, no space.
_FIFO_ID = re.compile(r"[!-~]{1,128}")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

# One encoder, built once. check_circular=False: json.loads output has no cycles,
# and skipping the check is ~20% faster. ensure_ascii (the default) makes every
# body pure ASCII: len() is its byte size, and no character SNS rejects can slip in.
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_encode_sorted = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class MessageAttributeValue(TypedDict):
    """One SNS message attribute as ``PublishBatch`` takes it."""

    DataType: str
    StringValue: str


class _EntryRequired(TypedDict):
    Id: str
    Message: str
    MessageAttributes: dict[str, MessageAttributeValue]


class PublishBatchEntry(_EntryRequired, total=False):
    """One ``PublishBatchRequestEntries`` element; the two ids only for FIFO topics."""

    MessageGroupId: str
    MessageDeduplicationId: str


@dataclass(frozen=True)
class RouterConfig:
    """What the router publishes where; validated on creation.

    Parameters
    ----------
    topic_arn : str
        The SNS topic.
    routing_attributes : tuple of str, optional
        Item attributes to lift into message attributes. Default: none.
    claim_check_bucket : str, optional
        Bucket for records larger than 256 KiB. Default: None (they fail).
    fifo : bool, optional
        Add ``MessageGroupId`` / ``MessageDeduplicationId``. Default: False.
    publish_ttl_expiry : bool, optional
        Add ``ttlExpiry`` = ``"true"`` to TTL deletions (one more built-in
        attribute: at most 7 routing attributes). Default: False.
    max_attempts : int, optional
        PublishBatch attempts for entries that fail without ``SenderFault``.
        Default: 3.
    backoff_seconds : float, optional
        Sleep before the 2nd attempt, doubled before each later one. Default: 0.05.

    Raises
    ------
    ValueError
        If a value is invalid, e.g. more than 8 routing attributes (SNS raw
        delivery drops messages with more than 10 attributes, and
        ``eventName`` and ``tableName`` are always sent).

    Examples
    --------
    >>> RouterConfig.from_env({"TOPIC_ARN": "arn:aws:sns:us-east-1:1:t.fifo",
    ...                        "ROUTING_ATTRIBUTES": '["status"]'})
    ... # doctest: +NORMALIZE_WHITESPACE
    RouterConfig(topic_arn='arn:aws:sns:us-east-1:1:t.fifo', routing_attributes=('status',),
                 claim_check_bucket=None, fifo=True, publish_ttl_expiry=False, max_attempts=3,
                 backoff_seconds=0.05)
    >>> RouterConfig("arn:aws:sns:us-east-1:1:t", routing_attributes=("a.",))
    Traceback (most recent call last):
    ...
    ValueError: routing attribute 'a.' is not a valid sns message attribute name \
(letters, digits, '_', '-', '.'; no leading, trailing or double '.')
    """

    topic_arn: str
    routing_attributes: tuple[str, ...] = ()
    claim_check_bucket: str | None = None
    fifo: bool = False
    publish_ttl_expiry: bool = False
    max_attempts: int = 3
    backoff_seconds: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.topic_arn, str) or not self.topic_arn:
            raise ValueError(f"topic_arn must be a non-empty string, got {self.topic_arn!r}")
        if self.topic_arn.endswith(".fifo") and not self.fifo:
            # Every entry would fail: a FIFO topic requires MessageGroupId.
            raise ValueError(f"topic {self.topic_arn!r} is a fifo topic but fifo is false")
        names = tuple(self.routing_attributes)
        object.__setattr__(self, "routing_attributes", names)
        built_in = _built_in_attributes(self.publish_ttl_expiry)
        if len(built_in) + len(names) > _MAX_ATTRIBUTES:
            raise ValueError(
                f"at most {_MAX_ATTRIBUTES - len(built_in)} routing attributes "
                f"(sns raw delivery drops messages with more than {_MAX_ATTRIBUTES} attributes, "
                f"{len(built_in)} are built in), got {len(names)}: {list(names)}"
            )
        for name in names:
            _check_attribute_name(name, built_in)
        if len(set(names)) != len(names):
            raise ValueError(f"routing attributes must be unique, got {list(names)}")
        if self.claim_check_bucket is not None and (
            not isinstance(self.claim_check_bucket, str) or not self.claim_check_bucket
        ):
            raise ValueError(
                f"claim_check_bucket must be a bucket name or None, got {self.claim_check_bucket!r}"
            )
        check_retry_settings(self.max_attempts, self.backoff_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RouterConfig:
        """Read ``TOPIC_ARN``, ``ROUTING_ATTRIBUTES``, ``CLAIM_CHECK_BUCKET``, ``FIFO`` and
        ``PUBLISH_TTL_EXPIRY``.

        Parameters
        ----------
        environ : mapping, optional
            Default: ``os.environ``.

        Returns
        -------
        RouterConfig

        Raises
        ------
        ValueError
            If ``TOPIC_ARN`` is missing, a value does not parse, or the
            configuration is invalid (see :class:`RouterConfig`).
        """
        env = os.environ if environ is None else environ
        topic_arn = env.get("TOPIC_ARN", "")
        if not topic_arn:
            raise ValueError("environment variable TOPIC_ARN is required")
        return cls(
            topic_arn=topic_arn,
            routing_attributes=_parse_attribute_list(env.get("ROUTING_ATTRIBUTES", "")),
            claim_check_bucket=env.get("CLAIM_CHECK_BUCKET") or None,
            fifo=_parse_bool("FIFO", env.get("FIFO", ""), default=topic_arn.endswith(".fifo")),
            publish_ttl_expiry=_parse_bool(
                "PUBLISH_TTL_EXPIRY", env.get("PUBLISH_TTL_EXPIRY", ""), default=False
            ),
        )


def _built_in_attributes(publish_ttl_expiry: bool) -> tuple[str, ...]:
    if publish_ttl_expiry:
        return (*_BUILT_IN_ATTRIBUTES, TTL_EXPIRY_ATTRIBUTE)
    return _BUILT_IN_ATTRIBUTES


def _check_attribute_name(name: Any, built_in: tuple[str, ...] = _BUILT_IN_ATTRIBUTES) -> None:
    if not isinstance(name, str) or not _ATTRIBUTE_NAME.fullmatch(name):
        raise ValueError(
            f"routing attribute {name!r} is not a valid sns message attribute name "
            "(letters, digits, '_', '-', '.'; no leading, trailing or double '.')"
        )
    if name.lower().startswith(_RESERVED_PREFIXES):
        raise ValueError(f"routing attribute {name!r} uses a prefix reserved by aws")
    if name in built_in:
        raise ValueError(f"routing attribute {name!r} is always sent, do not list it")


def _parse_attribute_list(text: str) -> tuple[str, ...]:
    if not text.strip():
        return ()
    try:
        names = json.loads(text)
    except ValueError:
        raise ValueError(f"ROUTING_ATTRIBUTES must be a json list of names, got {text!r}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"ROUTING_ATTRIBUTES must be a json list of names, got {text!r}")
    return tuple(names)


def _parse_bool(variable: str, text: str, *, default: bool) -> bool:
    value = text.strip().lower()
    if not value:
        return default
    if value not in ("true", "false"):
        raise ValueError(f"{variable} must be 'true' or 'false', got {text!r}")
    return value == "true"


# --- lifting routing attributes from raw DynamoDB JSON -------------------------------


def _utf8_len(text: str) -> int:
    # isascii() is O(1) in CPython: the common case costs no encoding.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _lift_string(value: Any) -> tuple[str, str] | None:
    if value.__class__ is not str:
        raise DeserializationError(f"type tag 'S' needs a string, got {value!r:.80}")
    return ("String", value) if value else None  # SNS rejects empty values


def _lift_number(value: Any) -> tuple[str, str]:
    if value.__class__ is not str:
        raise DeserializationError(f"type tag 'N' needs a number string, got {value!r:.80}")
    return "Number", value


def _lift_bool(value: Any) -> tuple[str, str]:
    if value is True or value is False:
        return "String", "true" if value else "false"
    raise DeserializationError(f"type tag 'BOOL' needs true or false, got {value!r:.80}")


def _lift_string_set(value: Any) -> tuple[str, str]:
    if not isinstance(value, list) or not all(v.__class__ is str for v in value):
        raise DeserializationError(f"type tag 'SS' needs a list of strings, got {value!r:.80}")
    return "String.Array", json.dumps(value, separators=(",", ":"))


def _lift_number_set(value: Any) -> tuple[str, str]:
    # Numbers stay JSON numbers (not strings) so numeric filter policies match them.
    if not isinstance(value, list) or not all(
        v.__class__ is str and _JSON_NUMBER.fullmatch(v) for v in value
    ):
        raise DeserializationError(f"type tag 'NS' needs a list of numbers, got {value!r:.80}")
    return "String.Array", "[" + ",".join(value) + "]"


# Tag -> (DataType, StringValue) or None (omit).
_LIFTERS: dict[str, Callable[[Any], tuple[str, str] | None]] = {
    "S": _lift_string,
    "N": _lift_number,
    "BOOL": _lift_bool,
    "SS": _lift_string_set,
    "NS": _lift_number_set,
}
# Valid DynamoDB JSON tags that are never lifted; any tag in neither table fails the record.
_NOT_LIFTED = frozenset({"M", "L", "B", "BS", "NULL"})


def _lift(name: str, av: Any) -> tuple[str, str] | None:
    try:
        [(tag, value)] = av.items()
    except (AttributeError, ValueError):
        raise DeserializationError(
            f"routing attribute {name!r}: an attribute value has exactly one type tag, "
            f"got {av!r:.80}"
        ) from None
    lifter = _LIFTERS.get(tag)
    try:
        if lifter is None:
            if tag in _NOT_LIFTED:
                return None
            raise DeserializationError(f"unknown type tag {tag!r} in {av!r:.80}")
        return lifter(value)
    except DeserializationError as exc:
        exc._prepend(name)  # "status: type tag 'S' needs a string, ..."
        raise


# --- planning: records -> entries -> batches ------------------------------------------


class _Planned:
    """One record's entry, with what publishing and failure reporting need."""

    __slots__ = ("index", "sequence_number", "event_id", "entry", "size", "claim")

    def __init__(
        self,
        index: int,
        sequence_number: str,
        event_id: Any,
        entry: PublishBatchEntry,
        size: int,
        claim: tuple[str, str] | None,
    ) -> None:
        self.index = index
        self.sequence_number = sequence_number
        self.event_id = event_id
        self.entry = entry
        self.size = size
        self.claim = claim  # (S3 key, full body) when the record is claim-checked


class Router:
    """Publish the records of a stream event to SNS, in stream order.

    Parameters
    ----------
    config : RouterConfig
    sns_client : object, optional
        Anything with boto3's ``publish_batch``. Default: a boto3 SNS client,
        created on first use.
    s3_client_factory : callable, optional
        Returns an object with boto3's ``put_object``; called at most once, on
        the first claim check. Default: a boto3 S3 client.
    sleep : callable, optional
        Called with seconds between retries. Default: ``time.sleep``.
    logger : logging.Logger, optional
        Default: the ``ddb_stream_runtime.router`` logger.

    Examples
    --------
    >>> class FakeSns:
    ...     def publish_batch(self, TopicArn, PublishBatchRequestEntries):
    ...         self.entries = PublishBatchRequestEntries
    ...         return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries]}
    >>> sns = FakeSns()
    >>> router = Router(RouterConfig("arn:aws:sns:us-east-1:1:t", ("Id",)), sns_client=sns)
    >>> router.route({"Records": [{
    ...     "eventName": "INSERT",
    ...     "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/my-table/stream/x",
    ...     "dynamodb": {"Keys": {"Id": {"N": "101"}}, "NewImage": {"Id": {"N": "101"}},
    ...                  "SequenceNumber": "111"}}]})
    {'batchItemFailures': []}
    >>> sns.entries[0]["MessageAttributes"]
    ... # doctest: +NORMALIZE_WHITESPACE
    {'eventName': {'DataType': 'String', 'StringValue': 'INSERT'},
     'tableName': {'DataType': 'String', 'StringValue': 'my-table'},
     'Id': {'DataType': 'Number', 'StringValue': '101'}}
    """

    def __init__(
        self,
        config: RouterConfig,
        *,
        sns_client: Any = None,
        s3_client_factory: Callable[[], Any] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._sns = sns_client
        self._s3_factory = s3_client_factory or functools.partial(aws_client, "s3")
        self._s3: Any = None
        self._sleep = sleep
        self._log = logger or _LOGGER

    def route(self, event: dict[str, Any]) -> PartialBatchResponse:
        """Publish every record of ``event``; report the earliest one that was not published.

        Parameters
        ----------
        event : dict
            A DynamoDB stream event. A missing or empty ``Records`` is nothing to do.

        Returns
        -------
        PartialBatchResponse
            No failures, or exactly one: the ``SequenceNumber`` of the earliest
            record not published (an empty identifier if it has none, which
            Lambda treats as a failure of the whole batch).

        Raises
        ------
        TypeError
            If ``event`` is not a stream event.
        """
        records = _records_of(event)
        batches, failure = self._plan(records)
        for batch in batches:
            failed = self._send(batch)
            if failed is not None:
                failure = failed  # always earlier than a planning failure: it stopped there
                break
        # Every record before the reported one was published (it is the *earliest* failure).
        in_order = len(records) if failure is None else failure.index
        self._log.debug(
            "router: %d of %d records published in order, %d failed",
            in_order,
            len(records),
            0 if failure is None else 1,
        )
        if failure is None:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [self._report(failure, len(records))]}

    # -- planning

    def _plan(self, records: list[Any]) -> tuple[list[list[_Planned]], _Failure | None]:
        """Build entries and cut them into calls; stop at the first record that cannot be sent."""
        names = self.config.routing_attributes
        fifo = self.config.fifo
        ttl_flag = self.config.publish_ttl_expiry
        batches: list[list[_Planned]] = []
        batch: list[_Planned] = []
        batch_bytes = 0
        # Attribute values shared by many entries are built once (nobody mutates them).
        event_attrs: dict[str, tuple[MessageAttributeValue, int]] = {}
        table_attrs: dict[Any, tuple[str, MessageAttributeValue | None, int]] = {}
        for index, raw in enumerate(records):
            try:
                record = StreamRecord.from_lambda(raw)
                event_name = record.event_name
                cached_event = event_attrs.get(event_name)
                if cached_event is None:
                    cached_event = event_attrs[event_name] = _string_attribute(
                        "eventName", event_name
                    )
                arn = record.event_source_arn
                cached_table = table_attrs.get(arn)
                if cached_table is None:
                    cached_table = table_attrs[arn] = _table_attribute(record.table_name)
                table, table_attr, size = cached_table
                attrs: dict[str, MessageAttributeValue] = {"eventName": cached_event[0]}
                size += cached_event[1]
                if table_attr is not None:
                    attrs["tableName"] = table_attr
                if ttl_flag and event_name == "REMOVE" and record.is_ttl_expiry:
                    attrs[TTL_EXPIRY_ATTRIBUTE] = _TTL_EXPIRY_VALUE
                    size += _TTL_EXPIRY_BYTES
                if names:
                    size += self._lift_attributes(record, names, attrs)
                body = _encode(raw)  # ASCII: len() is the byte size
                entry: PublishBatchEntry = {
                    "Id": str(index),
                    "Message": body,
                    "MessageAttributes": attrs,
                }
                if fifo:
                    entry["MessageGroupId"] = _group_id(record.raw_keys)
                    entry["MessageDeduplicationId"] = _dedup_id(record)
                    size += len(entry["MessageGroupId"]) + len(entry["MessageDeduplicationId"])
                claim = None
                if size + len(body) > MAX_MESSAGE_BYTES:
                    claim = self._claim_check(record, table, entry, body, size)
                    body = entry["Message"]
                size += len(body)
            except Exception as exc:  # one bad record stops the plan, never the invocation
                failure = _Failure(
                    index,
                    _sequence_number_of(raw) or _WHOLE_BATCH,
                    raw.get("eventID") if isinstance(raw, dict) else None,
                    f"{type(exc).__name__}: {exc}",
                )
                if batch:
                    batches.append(batch)
                return batches, failure
            if batch and (len(batch) == _MAX_ENTRIES or batch_bytes + size > MAX_MESSAGE_BYTES):
                batches.append(batch)
                batch, batch_bytes = [], 0
            batch.append(
                _Planned(index, record.sequence_number, record.event_id, entry, size, claim)
            )
            batch_bytes += size
        if batch:
            batches.append(batch)
        return batches, None

    @staticmethod
    def _lift_attributes(
        record: StreamRecord, names: tuple[str, ...], attrs: dict[str, MessageAttributeValue]
    ) -> int:
        # Raw DynamoDB JSON of just these attributes: the images are never deserialized.
        images = [
            image
            for image in (record.raw_new_image, record.raw_old_image, record.raw_keys)
            if image
        ]
        size = 0
        for name in names:
            for image in images:
                av = image.get(name)
                if av is not None:
                    break
            else:
                continue  # in no image: omitted
            lifted = _lift(name, av)
            if lifted is None:
                continue  # a type that is not lifted, or an empty string
            data_type, value = lifted
            attrs[name] = {"DataType": data_type, "StringValue": value}
            size += len(name) + len(data_type) + _utf8_len(value)
        return size

    def _claim_check(
        self,
        record: StreamRecord,
        table: str,
        entry: PublishBatchEntry,
        body: str,
        attribute_bytes: int,
    ) -> tuple[str, str]:
        """Swap ``entry``'s body for a pointer; the S3 put happens just before publishing."""
        bucket = self.config.claim_check_bucket
        size = attribute_bytes + len(body)
        if bucket is None:
            raise ValueError(
                f"record is {size} bytes with its attributes, over sns's {MAX_MESSAGE_BYTES}, "
                "and no CLAIM_CHECK_BUCKET is configured"
            )
        key = f"{CLAIM_CHECK_PREFIX}{table}/{record.sequence_number}.json"
        pointer: ClaimCheckPointer = {
            "claimCheck": {"bucket": bucket, "key": key},
            "eventName": record.event_name,
            "keys": record.raw_keys,
            "sequenceNumber": record.sequence_number,
        }
        entry["Message"] = _encode(pointer)
        if attribute_bytes + len(entry["Message"]) > MAX_MESSAGE_BYTES:
            raise ValueError(
                f"the routing attributes alone are {attribute_bytes} bytes, "
                f"over sns's {MAX_MESSAGE_BYTES} even with a claim check"
            )
        return key, body

    # -- publishing

    def _send(self, batch: list[_Planned]) -> _Failure | None:
        """Claim checks, then one PublishBatch call (plus retries); the earliest failure or None."""
        cut = None
        for position, planned in enumerate(batch):
            if planned.claim is not None:
                failure = self._put_claim(planned)
                if failure is not None:
                    cut = failure
                    batch = batch[:position]  # publish what precedes it, nothing after
                    break
        if batch:
            failure = self._publish(batch)
            if failure is not None:
                return failure
        return cut

    def _put_claim(self, planned: _Planned) -> _Failure | None:
        key, body = planned.claim  # type: ignore[misc]
        try:
            if self._s3 is None:
                self._s3 = self._s3_factory()
            self._s3.put_object(
                Bucket=self.config.claim_check_bucket,
                Key=key,
                Body=body.encode("ascii"),
                ContentType="application/json",
            )
        except Exception as exc:  # the record fails, the invocation does not
            reason = f"claim check put to s3 failed: {type(exc).__name__}: {exc}"
            return _failure_of(planned, reason)
        return None

    def _publish(self, batch: list[_Planned]) -> _Failure | None:
        if self._sns is None:
            self._sns = aws_client("sns")
        pending = {planned.entry["Id"]: planned for planned in batch}  # stream order
        permanent: _Planned | None = None
        reasons: dict[str, str] = {}
        for attempt in range(1, self.config.max_attempts + 1):
            if attempt > 1:
                self._sleep(self.config.backoff_seconds * 2 ** (attempt - 2))
            try:
                response = self._sns.publish_batch(
                    TopicArn=self.config.topic_arn,
                    PublishBatchRequestEntries=[p.entry for p in pending.values()],
                )
            except Exception as exc:  # botocore has already retried throttling and 5xx
                reason = f"publish_batch raised {type(exc).__name__}: {exc}"
                reasons.update(dict.fromkeys(pending, reason))
                break  # every entry still pending failed; the earliest is reported
            if not isinstance(response, dict):
                response = {}  # every entry then counts as missing: retried, never assumed sent
            for ok in response.get("Successful") or ():
                pending.pop(ok.get("Id"), None)
            failed = {f.get("Id"): f for f in response.get("Failed") or ()}
            for entry_id, planned in list(pending.items()):
                info = failed.get(entry_id)
                if info is None:  # in neither list: assume transient, never assume success
                    reasons[entry_id] = "missing from the publish_batch response"
                    continue
                reasons[entry_id] = (
                    f"{info.get('Code')}: {info.get('Message')} "
                    f"(sender fault: {bool(info.get('SenderFault'))})"
                )
                if info.get("SenderFault"):
                    del pending[entry_id]  # retrying the same request cannot help
                    if permanent is None or planned.index < permanent.index:
                        permanent = planned
            if permanent is not None:
                # Entries after it will be re-sent by Lambda anyway: retrying them only
                # makes duplicates. Those before it may still succeed and move the report on.
                pending = {i: p for i, p in pending.items() if p.index < permanent.index}
            if not pending:
                break
        failures = list(pending.values())
        if permanent is not None:
            failures.append(permanent)
        if not failures:
            return None
        earliest = min(failures, key=lambda p: p.index)
        return _failure_of(earliest, reasons[earliest.entry["Id"]])

    def _report(self, failure: _Failure, total: int) -> BatchItemFailure:
        later = total - failure.index - 1
        self._log.error(
            "router: stream record %s (event id %s) was not published: %s; stopping so "
            "Lambda re-sends it and the %d records after it (any of those already published "
            "are published again); the %d records before it were published",
            failure.sequence_number or "<no SequenceNumber: failing the whole batch>",
            failure.event_id,
            failure.reason,
            later,
            failure.index,
            extra={
                "sequence_number": failure.sequence_number or None,
                "event_id": failure.event_id,
                "records_published_before": failure.index,
            },
        )
        return {"itemIdentifier": failure.sequence_number}


def _failure_of(planned: _Planned, reason: str) -> _Failure:
    return _Failure(planned.index, planned.sequence_number, planned.event_id, reason)


def _string_attribute(name: str, value: str) -> tuple[MessageAttributeValue, int]:
    return {"DataType": "String", "StringValue": value}, len(name) + 6 + _utf8_len(value)


def _table_attribute(table: str | None) -> tuple[str, MessageAttributeValue | None, int]:
    if table is None:  # no table ARN (a hand-made event): no attribute, a neutral S3 prefix
        return _UNKNOWN_TABLE, None, 0
    attr, size = _string_attribute("tableName", table)
    return table, attr, size


def _group_id(raw_keys: dict[str, Any]) -> str:
    """Per-item ordering: the same key always gives the same group id.

    The canonical (sorted, compact, ASCII) JSON of the keys when it is a valid
    MessageGroupId (<= 128 printable characters, no space), else its SHA-256
    (which cannot collide with a JSON object: it starts with ``sha256:``).
    """
    canonical = _encode_sorted(raw_keys)
    if _FIFO_ID.fullmatch(canonical):
        return canonical
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _dedup_id(record: StreamRecord) -> str:
    event_id = record.event_id
    if isinstance(event_id, str) and _FIFO_ID.fullmatch(event_id):
        return event_id
    return record.sequence_number  # digits, at most 40


@functools.lru_cache(maxsize=1)
def _default_router() -> Router:
    # Read once per execution environment: configuration errors surface on the
    # first invocation (and every one after it, as the cache keeps no exception).
    return Router(RouterConfig.from_env())


def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """The controller Lambda's entry point (``ddb_stream_runtime.router.handler``).

    Configured by environment variables, see the module docstring.
    """
    return _default_router().route(event)
