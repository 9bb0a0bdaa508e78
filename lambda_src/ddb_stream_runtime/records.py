"""The record model: one DynamoDB stream record as delivered by Lambda."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from .deserialize import deserialize_image

__all__ = ["EventName", "MalformedRecordError", "StreamRecord"]

EventName = Literal["INSERT", "MODIFY", "REMOVE"]

# A tuple, not a set: membership by ==, so an unhashable eventName cannot raise TypeError.
_EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
# What DynamoDB puts in userIdentity when its TTL process deletes an item.
_TTL_IDENTITY_TYPE = "Service"
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"
_UNSET: Any = object()


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
    sequence_number : str
        ``dynamodb.SequenceNumber``: the identifier to report on failure.
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
        "_dynamodb",
        "_keys",
        "_new_image",
        "_old_image",
    )

    raw: dict[str, Any]
    event_id: str | None
    event_name: EventName
    event_source_arn: str | None
    sequence_number: str
    size_bytes: int | None
    stream_view_type: str | None
    _dynamodb: dict[str, Any]
    # Caches; _UNSET until first access (None is a valid, cached "no image").
    _keys: dict[str, Any]
    _new_image: dict[str, Any] | None
    _old_image: dict[str, Any] | None

    def __init__(self, raw: dict[str, Any]) -> None:
        if not isinstance(raw, dict):
            raise MalformedRecordError(f"a stream record is an object, got {type(raw).__name__}")
        dynamodb = raw.get("dynamodb")
        if not isinstance(dynamodb, dict):
            raise MalformedRecordError(
                f"stream record has no 'dynamodb' object (eventID {raw.get('eventID')!r})"
            )
        sequence_number = dynamodb.get("SequenceNumber")
        if not sequence_number or not isinstance(sequence_number, str):
            raise MalformedRecordError(
                "stream record has no 'dynamodb.SequenceNumber' "
                f"(eventID {raw.get('eventID')!r}, got {sequence_number!r})"
            )
        event_name = raw.get("eventName")
        if event_name not in _EVENT_NAMES:
            what = "no 'eventName'" if event_name is None else f"unknown eventName {event_name!r}"
            raise MalformedRecordError(
                f"stream record {sequence_number} has {what}: expected INSERT, MODIFY or REMOVE"
            )
        self.raw = raw
        self.event_id = raw.get("eventID")
        self.event_name = event_name
        self.event_source_arn = raw.get("eventSourceARN")
        self.sequence_number = sequence_number
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
        """The table name from ``eventSourceARN``, or None if it is absent or not a table ARN.

        ``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`` -> ``NAME``.
        """
        arn = self.event_source_arn
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

        Lambda sends epoch seconds, possibly fractional (``1718049976.5``).
        """
        seconds = self._dynamodb.get("ApproximateCreationDateTime")
        if seconds is None:
            return None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise MalformedRecordError(
                "dynamodb.ApproximateCreationDateTime must be epoch seconds, "
                f"got {seconds!r} in record {self.sequence_number}"
            )
        return datetime.fromtimestamp(seconds, tz=timezone.utc)

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
        return (
            f"StreamRecord(event_name={self.event_name!r}, "
            f"sequence_number={self.sequence_number!r}, table_name={self.table_name!r})"
        )
