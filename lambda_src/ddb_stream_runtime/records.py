"""The record model: one DynamoDB change record, whatever source delivered it.

The same :class:`StreamRecord` comes from a DynamoDB stream event, from an SQS
message of the fan-out (the router's published stream record) and from a Kinesis
data stream fed by the table (see :mod:`ddb_stream_runtime.intake`). What differs
per source is kept in ``source``, ``item_identifier`` and, on Kinesis, the
absence of a DynamoDB ``SequenceNumber`` (``sequence_number`` is None there).
"""

from __future__ import annotations

from ._lazy import lazy, lazy_import
from .deserialize import deserialize_image

TYPE_CHECKING = False
if TYPE_CHECKING:
    import hashlib
    import json
    from datetime import datetime, timezone
    from typing import Any

    from ._types import EventName
else:  # used by rare properties only (content hash, creation time): imported on first use
    hashlib = lazy_import(globals(), "hashlib", "hashlib")
    json = lazy_import(globals(), "json", "json")
    datetime = lazy_import(globals(), "datetime", "datetime", "datetime")
    timezone = lazy_import(globals(), "timezone", "datetime", "timezone")

__all__ = ["EventName", "MalformedRecordError", "StreamRecord"]


def __getattr__(name: str) -> object:
    # ``EventName`` lives in _types: no typing on a pure handler's cold start.
    if name not in ("EventName",):  # __path__ too: the import system asks
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _types

    return getattr(_types, name)


# A tuple, not a set: membership by ==, so an unhashable eventName cannot raise TypeError.
_EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
# What DynamoDB puts in userIdentity when its TTL process deletes an item.
_TTL_IDENTITY_TYPE = "Service"
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"
_UNSET: Any = object()
_KINESIS = "aws:kinesis"
_DYNAMODB = "aws:dynamodb"
_MICROSECOND = "MICROSECOND"
# A Kinesis timestamp above this is in microseconds (epoch ms reach it in the year 5138).
_MICROS_THRESHOLD = 10**14
_canonical = lazy(
    globals(), "_canonical", lambda: json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
)


class MalformedRecordError(ValueError):
    """A stream record lacks what every Lambda DynamoDB stream record has.

    Examples
    --------
    >>> StreamRecord.from_lambda({"eventName": "INSERT"})
    Traceback (most recent call last):
    ...
    ddb_stream_runtime.records.MalformedRecordError: stream record has no 'dynamodb' object \
(eventID None)
    """


class StreamRecord:
    """One DynamoDB stream record, with images deserialized lazily.

    Build it with :meth:`from_lambda`. The metadata is read eagerly (it is
    cheap); ``keys``, ``new_image`` and ``old_image`` are deserialized on first
    access and cached, so code that only forwards records (the router) never
    pays for DynamoDB-JSON conversion.

    Attributes
    ----------
    raw : dict
        The record exactly as Lambda delivered it.
    event_id : str or None
        ``eventID``.
    event_name : {"INSERT", "MODIFY", "REMOVE"}
        ``eventName``.
    event_source_arn : str or None
        ``eventSourceARN``, the stream ARN.
    sequence_number : str or None
        ``dynamodb.SequenceNumber``. None only for records read from Kinesis,
        which carry none.
    source : {"aws:dynamodb", "aws:sqs", "aws:kinesis"}
        What delivered the record to Lambda: the table's stream, an SQS queue of
        the fan-out, or a Kinesis data stream.
    item_identifier : str or None
        What a partial batch response reports for this record: the
        ``SequenceNumber`` (stream), the SQS ``messageId``, or the Kinesis
        record's ``sequenceNumber``.
    partition_key : str or None
        Kinesis only: the record's partition key (order holds per partition key).
    size_bytes : int or None
        ``dynamodb.SizeBytes``.
    stream_view_type : str or None
        ``dynamodb.StreamViewType``, e.g. ``"NEW_AND_OLD_IMAGES"``.

    Examples
    --------
    >>> record = StreamRecord.from_lambda({
    ...     "eventID": "1",
    ...     "eventName": "INSERT",
    ...     "eventSourceARN": "arn:aws:dynamodb:us-east-2:123456789012:table/my-table/stream/x",
    ...     "dynamodb": {
    ...         "Keys": {"Id": {"N": "101"}},
    ...         "NewImage": {"Id": {"N": "101"}, "Message": {"S": "New item!"}},
    ...         "SequenceNumber": "111",
    ...     },
    ... })
    >>> record.table_name, record.sequence_number, record.keys
    ('my-table', '111', {'Id': 101})
    >>> record.new_image["Message"], record.old_image
    ('New item!', None)
    """

    __slots__ = (
        "raw",
        "event_id",
        "event_name",
        "event_source_arn",
        "sequence_number",
        "size_bytes",
        "stream_view_type",
        "source",
        "item_identifier",
        "partition_key",
        "_dynamodb",
        "_keys",
        "_new_image",
        "_old_image",
    )

    raw: dict[str, Any]
    event_id: str | None
    event_name: EventName
    event_source_arn: str | None
    sequence_number: str | None
    source: str
    item_identifier: str | None
    partition_key: str | None
    size_bytes: int | None
    stream_view_type: str | None
    _dynamodb: dict[str, Any]
    # Caches; _UNSET until first access (None is a valid, cached "no image").
    _keys: dict[str, Any]
    _new_image: dict[str, Any] | None
    _old_image: dict[str, Any] | None

    def __init__(
        self,
        raw: dict[str, Any],
        *,
        source: str = _DYNAMODB,
        item_identifier: str | None = None,
        partition_key: str | None = None,
        event_source_arn: str | None = None,
    ) -> None:
        if not isinstance(raw, dict):
            raise MalformedRecordError(f"a stream record is an object, got {type(raw).__name__}")
        dynamodb = raw.get("dynamodb")
        if not isinstance(dynamodb, dict):
            raise MalformedRecordError(
                f"stream record has no 'dynamodb' object (eventID {raw.get('eventID')!r})"
            )
        sequence_number = dynamodb.get("SequenceNumber")
        if source == _KINESIS:
            # DynamoDB's Kinesis record format has no SequenceNumber.
            sequence_number = None
            name = item_identifier
        elif not sequence_number or not isinstance(sequence_number, str):
            raise MalformedRecordError(
                "stream record has no 'dynamodb.SequenceNumber' "
                f"(eventID {raw.get('eventID')!r}, got {sequence_number!r})"
            )
        else:
            name = sequence_number
        event_name = raw.get("eventName")
        if event_name not in _EVENT_NAMES:
            what = "no 'eventName'" if event_name is None else f"unknown eventName {event_name!r}"
            raise MalformedRecordError(
                f"stream record {name} has {what}: expected INSERT, MODIFY or REMOVE"
            )
        self.raw = raw
        self.event_id = raw.get("eventID")
        self.event_name = event_name
        self.event_source_arn = (
            event_source_arn if event_source_arn is not None else raw.get("eventSourceARN")
        )
        self.sequence_number = sequence_number
        self.source = source
        self.item_identifier = item_identifier if item_identifier is not None else sequence_number
        self.partition_key = partition_key
        self.size_bytes = dynamodb.get("SizeBytes")
        self.stream_view_type = dynamodb.get("StreamViewType")
        self._dynamodb = dynamodb
        self._keys = self._new_image = self._old_image = _UNSET

    @classmethod
    def from_lambda(cls, raw: dict[str, Any]) -> StreamRecord:
        """Build a record from one element of a Lambda event's ``Records``.

        Validation is deliberately cheap: the record must have a ``dynamodb``
        object, a non-empty ``dynamodb.SequenceNumber`` and a known
        ``eventName``. Images are not looked at until they are accessed.

        Parameters
        ----------
        raw : dict
            One record of a DynamoDB stream event.

        Returns
        -------
        StreamRecord

        Raises
        ------
        MalformedRecordError
            Naming what is missing or wrong.

        Examples
        --------
        >>> r = StreamRecord.from_lambda(
        ...     {"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "333"}})
        >>> r.event_name, r.is_ttl_expiry
        ('REMOVE', False)
        """
        return cls(raw)

    @classmethod
    def from_kinesis(
        cls,
        change: dict[str, Any],
        *,
        sequence_number: str | None,
        partition_key: str | None = None,
        event_source_arn: str | None = None,
    ) -> StreamRecord:
        """Build a record from the change record DynamoDB writes to a Kinesis data stream.

        That record (the base64-decoded ``kinesis.data``) has ``awsRegion``,
        ``eventID``, ``eventName``, ``userIdentity``, ``recordFormat``,
        ``tableName``, ``dynamodb`` (``ApproximateCreationDateTime`` in epoch
        milliseconds, or microseconds with ``ApproximateCreationDateTimePrecision``
        ``MICROSECOND``; ``Keys``, ``NewImage``, ``OldImage``, ``SizeBytes``) and
        ``eventSource``, but no ``SequenceNumber``.

        Parameters
        ----------
        change : dict
            The decoded change record.
        sequence_number : str or None
            The Kinesis record's ``sequenceNumber``: the identifier to report.
        partition_key : str, optional
            The Kinesis record's ``partitionKey``.
        event_source_arn : str, optional
            The Kinesis stream's ARN (the Lambda record's ``eventSourceARN``).

        Examples
        --------
        >>> r = StreamRecord.from_kinesis({"eventID": "e1", "eventName": "REMOVE",
        ...     "tableName": "orders", "dynamodb": {"Keys": {"id": {"S": "a"}},
        ...     "ApproximateCreationDateTime": 1718049976512}}, sequence_number="4959")
        >>> r.source, r.item_identifier, r.sequence_number, r.table_name
        ('aws:kinesis', '4959', None, 'orders')
        >>> r.approximate_creation_micros
        1718049976512000
        """
        return cls(
            change,
            source=_KINESIS,
            item_identifier=sequence_number,
            partition_key=partition_key,
            event_source_arn=event_source_arn,
        )

    # Raw DynamoDB-JSON views: no conversion, no copy.
    @property
    def raw_keys(self) -> dict[str, Any]:
        """``dynamodb.Keys`` as DynamoDB JSON (``{}`` if absent)."""
        return self._dynamodb.get("Keys") or {}

    @property
    def raw_new_image(self) -> dict[str, Any] | None:
        """``dynamodb.NewImage`` as DynamoDB JSON, or None (REMOVE, KEYS_ONLY, OLD_IMAGE)."""
        return self._dynamodb.get("NewImage")

    @property
    def raw_old_image(self) -> dict[str, Any] | None:
        """``dynamodb.OldImage`` as DynamoDB JSON, or None (INSERT, KEYS_ONLY, NEW_IMAGE)."""
        return self._dynamodb.get("OldImage")

    # Deserialized views: converted on first access, then cached.
    @property
    def keys(self) -> dict[str, Any]:
        """The primary key as plain Python values (``{}`` if absent)."""
        if self._keys is _UNSET:
            self._keys = deserialize_image(self.raw_keys) or {}
        return self._keys

    @property
    def new_image(self) -> dict[str, Any] | None:
        """The item after the change as plain Python values, or None."""
        if self._new_image is _UNSET:
            self._new_image = deserialize_image(self.raw_new_image)
        return self._new_image

    @property
    def old_image(self) -> dict[str, Any] | None:
        """The item before the change as plain Python values, or None."""
        if self._old_image is _UNSET:
            self._old_image = deserialize_image(self.raw_old_image)
        return self._old_image

    @property
    def table_name(self) -> str | None:
        """The table name, or None if the record does not say.

        Kinesis records carry ``tableName``; stream records (also behind SQS) have
        ``eventSourceARN`` ``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL``
        -> ``NAME``.
        """
        name = self.raw.get("tableName")
        if isinstance(name, str) and name:
            return name
        arn = self.raw.get("eventSourceARN")
        if not isinstance(arn, str):
            return None
        resource = arn.split(":", 5)[-1]
        parts = resource.split("/")
        if len(parts) >= 2 and parts[0] == "table" and parts[1]:
            return parts[1]
        return None

    @property
    def approximate_creation_time(self) -> datetime | None:
        """``dynamodb.ApproximateCreationDateTime`` as an aware UTC datetime, or None.

        DynamoDB stream records (also behind SQS) carry epoch seconds, possibly
        fractional (``1718049976.5``); Kinesis records epoch milliseconds, or
        microseconds when the table's Kinesis destination sets the precision to
        ``MICROSECOND`` (see :attr:`approximate_creation_micros`).
        """
        micros = self.approximate_creation_micros
        if micros is None:
            return None
        seconds, rest = divmod(micros, 1_000_000)
        return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest)

    @property
    def approximate_creation_micros(self) -> int | None:
        """``dynamodb.ApproximateCreationDateTime`` in integer epoch microseconds, or None.

        The unit is the source's: seconds on a DynamoDB stream (rounded down to
        the second by DynamoDB), milliseconds on Kinesis, microseconds on Kinesis
        when ``dynamodb.ApproximateCreationDateTimePrecision`` is ``MICROSECOND``.
        """
        value = self._dynamodb.get("ApproximateCreationDateTime")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MalformedRecordError(
                "dynamodb.ApproximateCreationDateTime must be an epoch number, "
                f"got {value!r} in record {self.item_identifier}"
            )
        if self.source != _KINESIS:
            return round(value * 1_000_000)
        precision = self._dynamodb.get("ApproximateCreationDateTimePrecision")
        if precision == _MICROSECOND or (precision is None and value >= _MICROS_THRESHOLD):
            return int(value)
        return round(value * 1_000)

    @property
    def identity(self) -> str:
        """What identifies this change across redeliveries and duplicates.

        The ``eventID`` on DynamoDB streams and behind SQS (the router publishes the
        stream record unchanged, so a republished record keeps its ``eventID``). On
        Kinesis, AWS documents that records "may appear more than once" and to use
        ``ApproximateCreationDateTime`` to identify duplicates, but not that a
        duplicate keeps its ``eventID``: the identity is ``"sha256:"`` and the hash
        of the table name, the event name and the whole ``dynamodb`` object
        (timestamp, keys, images), so duplicates share it whatever their
        ``eventID``. Limit: two different changes of one item with the same images
        at the same timestamp (same millisecond, or microsecond) would share it.

        Raises
        ------
        MalformedRecordError
            A stream or SQS record without an ``eventID``.
        """
        if self.source == _KINESIS:
            text = _canonical([self.table_name, self.event_name, self._dynamodb])
            return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
        event_id = self.event_id
        if not isinstance(event_id, str) or not event_id:
            raise MalformedRecordError(
                f"record {self.item_identifier} has no eventID, so it cannot be identified"
            )
        return event_id

    @property
    def is_ttl_expiry(self) -> bool:
        """True if DynamoDB's TTL process deleted the item.

        That is a REMOVE whose ``userIdentity`` is the DynamoDB service. In a
        global table only the replica where TTL ran sets ``userIdentity``; the
        replicated deletes elsewhere look like ordinary REMOVEs.
        """
        if self.event_name != "REMOVE":
            return False
        identity = self.raw.get("userIdentity")
        return (
            isinstance(identity, dict)
            and identity.get("type") == _TTL_IDENTITY_TYPE
            and identity.get("principalId") == _TTL_PRINCIPAL
        )

    def __repr__(self) -> str:
        # Metadata only: a repr ends up in logs, item data must not.
        if self.source == _DYNAMODB:
            return (
                f"StreamRecord(event_name={self.event_name!r}, "
                f"sequence_number={self.sequence_number!r}, table_name={self.table_name!r})"
            )
        return (
            f"StreamRecord(event_name={self.event_name!r}, source={self.source!r}, "
            f"item_identifier={self.item_identifier!r}, sequence_number={self.sequence_number!r}, "
            f"table_name={self.table_name!r})"
        )
