"""The TableReplicator's Lambda: keep a target table in step with the source, order-safe.

Sources: a DynamoDB stream, an SQS queue of the SNS fan-out, or a Kinesis data
stream fed by the table (see :mod:`ddb_stream_runtime.intake`).

Every INSERT and MODIFY becomes a conditional ``PutItem`` of the new image,
every REMOVE a conditional ``DeleteItem`` (or, from an unordered source, a
conditional put of a tombstone, see below): one call per record, several items'
calls in flight at once, each item's calls in delivery order.
Each written item carries a *version attribute* (see "Versions per source"). A
write only happens if the target holds no version yet or an older one::

    attribute_not_exists(#v) OR #v < :seq

so a record that arrives late (a replay, a retry) never overwrites newer data:
DynamoDB answers ``ConditionalCheckFailedException``, which counts as success
(the record is stale, the target is already ahead of it).

Configuration (environment variables, read on the first invocation)
-------------------------------------------------------------------
``TARGET_TABLE``
    Required: the table to write to.
``VERSION_ATTRIBUTE``
    Name of the version attribute. Default: ``_streamSequence``. An attribute
    of that name in the image (or the transform's result) is overwritten.
``WRITE_CONCURRENCY``
    How many conditional writes are in flight at once (threads sharing one client).
    Default: 16; at least 1 (one write at a time), at most 64. Records of the
    same item are always written one after the other, in stream order.
``TOMBSTONE_ATTRIBUTE``
    Unordered sources only (standard SQS queue, Kinesis): the attribute, set to
    ``true``, that marks a deleted item's tombstone. Default: ``_deleted``.
``TOMBSTONE_TTL_ATTRIBUTE``, ``TOMBSTONE_RETENTION_SECONDS``
    Unordered sources only: each tombstone also gets ``TOMBSTONE_TTL_ATTRIBUTE`` set
    to the epoch second ``TOMBSTONE_RETENTION_SECONDS`` after it is written (a
    DynamoDB TTL number), so that a target with TTL on that attribute drops it once no
    late record can come any more. Give both or neither. Default: none (tombstones
    stay until a newer change replaces them).
``TRANSFORM``
    Optional ``module:function`` (importable from the function's code),
    resolved once, on the first invocation. It receives an image as plain
    Python values (see :mod:`ddb_stream_runtime.deserialize`) and returns the
    item to write (a dict; floats are stored as ``Decimal(str(x))``) or
    ``None`` to keep the item out of the target. Default: none (an exact copy).

Copy (no ``TRANSFORM``)
-----------------------
The raw ``NewImage`` is written as it is (no deserialization, lossless) and
REMOVEs delete the record's ``Keys``: the target has the source's key schema.

Reshaped view (``TRANSFORM``)
-----------------------------
The target's key must be derivable from an image: every item the transform
returns must hold the target's key attributes (read once with
``DescribeTable``). Then, for each record:

=======  ==========================  ===========================================
event    transform of the new image  what is written
=======  ==========================  ===========================================
INSERT   an item                     put it
INSERT   None                        nothing (there is no older item to remove)
MODIFY   an item                     put it; if the transform of the *old* image
                                     had another key, delete that one first
MODIFY   None                        delete the key of the transformed old image
                                     (an item transformed away leaves the target)
REMOVE   (not called)                delete the key of the transformed old image
=======  ==========================  ===========================================

When the transform of the old image is ``None`` too, the item was never in the
target and nothing is deleted. So the transform must be deterministic (the same
image always gives the same item). MODIFY and REMOVE need the ``OldImage``: the
stream must use ``NEW_AND_OLD_IMAGES``.

Versions per source
-------------------
* **DynamoDB stream, and SQS** (the router publishes the stream record with its
  ``SequenceNumber``): the sequence number left-padded with zeros to 40 digits,
  so that string order is numeric order. DynamoDB documents that "for each item
  that is modified in a DynamoDB table, the stream records appear in the same
  sequence as the actual modifications to the item" (*Streams*), and the
  replicator compares sequence numbers of one item only. On the stream path that
  per-item order of delivery is what keeps the target right. Behind a standard SQS
  queue the version alone decides, and that the sequence numbers of one item stay
  increasing across a shard split (a parent shard and its children) is relied on:
  the DynamoDB documentation found here does not state it (the Shard API only gives
  each shard a ``SequenceNumberRange`` and a ``ParentShardId``). Use a FIFO queue
  (message group = item key) to keep per-item delivery order behind the fan-out.
* **Kinesis** (no ``SequenceNumber``): ``k`` + ``ApproximateCreationDateTime`` in
  epoch microseconds (17 digits) + ``.`` + the Kinesis ``sequenceNumber`` prefixed
  with its length (3 digits), as tiebreak. DynamoDB documents that on Kinesis
  "the Kinesis data stream records may appear in a different sequence than the
  actual modifications to the item" and that the ``ApproximateCreationDateTime``
  timestamp identifies "the actual order in which item modifications occurred"
  (*kds*). Limits: with the default ``MILLISECOND`` precision, two changes of one
  item within the same millisecond are ordered by the tiebreak, the order in
  which they reached the Kinesis stream, which is not guaranteed to be the order
  of the changes; set the table's Kinesis destination to ``MICROSECOND``
  (``ApproximateCreationDateTimePrecision``) to shrink that window. Versions of
  different sources do not compare meaningfully: one target table, one source
  (a ``k`` version sorts after every stream version, so moving a target from the
  stream to Kinesis moves it forward).

Deletes from unordered sources (tombstones)
-------------------------------------------
A standard SQS queue redelivers and reorders, Kinesis duplicates and reorders:
a late INSERT or MODIFY can arrive after the item's REMOVE, and a plain delete
would have left no version to refuse it, resurrecting the item. So from those
sources a REMOVE writes a *tombstone* instead: the key, the version and
``TOMBSTONE_ATTRIBUTE: true`` (conditional like every write), which refuses every
older record and is replaced by any newer one. Readers of the target skip items
with the tombstone attribute. With ``TOMBSTONE_TTL_ATTRIBUTE`` a tombstone carries
its expiry (write time + ``TOMBSTONE_RETENTION_SECONDS``): TTL on the target then
deletes it, which is safe once the retention is longer than any record can still
arrive late (the queue's and its DLQ's retention, plus any DLQ redrive: a redriven
message is a new message; on Kinesis, the stream's retention). A live item never
carries the expiry: a newer put replaces the whole item. A FIFO queue
(message group = item key) keeps per-item order, so deletes stay plain deletes there.

Why deletes are safe under redelivery (stream, FIFO queue)
---------------------------------------------------------
A delete leaves no version behind, so a replayed INSERT of a deleted item
writes it again. That lasts only until the replay reaches the REMOVE: the
processor stops at the first failed record and Lambda re-sends that record
*and every record after it*, in shard order, so a replayed INSERT is always
followed by the replayed REMOVE that came after it, which deletes the item
again. The final state is the same as after the first delivery (a partly
applied key move heals the same way).

Delivery semantics
------------------
The writes of a batch go out concurrently (``WRITE_CONCURRENCY`` at a time), but
the records of one item (the same ``Keys``) are written one after the other, in
stream order: DynamoDB Streams orders records per item, and so does the target.
Records of different items have no order between them in the stream either.
The batch is prepared in the caller's thread first (images, transforms), in
order; a record that cannot be prepared ends the preparation there.

A stale record is skipped; any other error fails its record, and the batch
reports the *earliest* failed record's ``SequenceNumber``, as a one-at-a-time
replicator would (see :func:`~ddb_stream_runtime.batch.process_stream_batch`):
every record before it has been applied. The records of that item after it are
not written; records of other items after it may have been, and Lambda sends
them again: a replayed put is stale, a replayed delete finds nothing, and a
replayed INSERT of a deleted item is followed by its replayed REMOVE (see
above). The version attribute must stay a string: a target item whose version
has another type never compares lower, so it is never overwritten.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._aws import aws_client, client_image
from .batch import _log_entry_failure, _report
from .deserialize import ItemPathError, _short
from .intake import DYNAMODB, KINESIS, read_batch
from .records import MalformedRecordError, StreamRecord

if TYPE_CHECKING:
    from .batch import PartialBatchResponse

__all__ = [
    "DEFAULT_TOMBSTONE_ATTRIBUTE",
    "DEFAULT_VERSION_ATTRIBUTE",
    "DEFAULT_WRITE_CONCURRENCY",
    "MAX_WRITE_CONCURRENCY",
    "SEQUENCE_DIGITS",
    "Replicator",
    "ReplicatorConfig",
    "SerializationError",
    "Transform",
    "handler",
    "kinesis_version",
    "record_version",
    "load_transform",
    "sequence_version",
    "serialize_item",
    "serialize_value",
]

_LOGGER = logging.getLogger(__name__)

#: The version attribute's name unless ``VERSION_ATTRIBUTE`` says otherwise.
DEFAULT_VERSION_ATTRIBUTE = "_streamSequence"
#: The tombstone attribute's name unless ``TOMBSTONE_ATTRIBUTE`` says otherwise.
DEFAULT_TOMBSTONE_ATTRIBUTE = "_deleted"
#: Sequence numbers have at most 40 digits; versions are padded to this width.
SEQUENCE_DIGITS = 40
#: Conditional writes in flight at once unless ``WRITE_CONCURRENCY`` says otherwise.
DEFAULT_WRITE_CONCURRENCY = 16
#: The most ``WRITE_CONCURRENCY`` may be (threads in one Lambda process).
MAX_WRITE_CONCURRENCY = 64

#: ``transform(image) -> item or None``, on plain Python values.
Transform = Callable[[dict[str, Any]], Mapping[str, Any] | None]

# Only write over nothing or over an older version (padded strings: string order = numeric).
_CONDITION = "attribute_not_exists(#v) OR #v < :seq"
_CONDITION_FAILED = "ConditionalCheckFailedException"
_SPEC = re.compile(
    r"(?P<module>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r":(?P<attr>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
)


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicatorConfig:
    """Where and how the replicator writes; validated on creation.

    Parameters
    ----------
    target_table : str
        The target table's name (or ARN).
    version_attribute : str, optional
        Default: ``"_streamSequence"``.
    transform : str, optional
        A ``module:function`` spec, resolved by :func:`load_transform` when
        the :class:`Replicator` is created. Default: None (an exact copy).
    write_concurrency : int, optional
        Conditional writes in flight at once, 1 to 64. Default: 16.
    tombstone_attribute : str, optional
        Marks tombstones (standard SQS queue, Kinesis). Default: ``"_deleted"``.
    tombstone_ttl_attribute : str, optional
        A tombstone's expiry (epoch seconds) goes in this attribute. Default: None.
    tombstone_retention_seconds : int, optional
        How long after it is written a tombstone expires; required with
        ``tombstone_ttl_attribute`` (and only with it), at least 1. Default: None.

    Raises
    ------
    ValueError
        If a value is invalid; the message shows it.

    Examples
    --------
    >>> ReplicatorConfig.from_env({"TARGET_TABLE": "AppUsers", "TRANSFORM": "views:app_user"})
    ... # doctest: +NORMALIZE_WHITESPACE
    ReplicatorConfig(target_table='AppUsers', version_attribute='_streamSequence',
                     transform='views:app_user', write_concurrency=16,
                     tombstone_attribute='_deleted', tombstone_ttl_attribute=None,
                     tombstone_retention_seconds=None)
    >>> ReplicatorConfig("AppUsers", transform="views.app_user")
    Traceback (most recent call last):
    ...
    ValueError: TRANSFORM must be 'module:function' (e.g. 'views:app_user'), got 'views.app_user'
    """

    target_table: str
    version_attribute: str = DEFAULT_VERSION_ATTRIBUTE
    transform: str | None = None
    write_concurrency: int = DEFAULT_WRITE_CONCURRENCY
    tombstone_attribute: str = DEFAULT_TOMBSTONE_ATTRIBUTE
    tombstone_ttl_attribute: str | None = None
    tombstone_retention_seconds: int | None = None

    def __post_init__(self) -> None:
        concurrency = self.write_concurrency
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= MAX_WRITE_CONCURRENCY
        ):
            raise ValueError(
                f"write_concurrency must be an integer from 1 to {MAX_WRITE_CONCURRENCY}, "
                f"got {concurrency!r}"
            )
        if not isinstance(self.target_table, str) or not self.target_table:
            raise ValueError(f"target_table must be a non-empty string, got {self.target_table!r}")
        if not isinstance(self.version_attribute, str) or not self.version_attribute:
            raise ValueError(
                f"version_attribute must be a non-empty string, got {self.version_attribute!r}"
            )
        tombstone = self.tombstone_attribute
        if not isinstance(tombstone, str) or not tombstone or tombstone == self.version_attribute:
            raise ValueError(
                "tombstone_attribute must be a non-empty string other than the version "
                f"attribute, got {tombstone!r}"
            )
        ttl, retention = self.tombstone_ttl_attribute, self.tombstone_retention_seconds
        if ttl is not None and (
            not isinstance(ttl, str) or not ttl
            or ttl in (self.version_attribute, self.tombstone_attribute)
        ):
            raise ValueError(
                "tombstone_ttl_attribute must be a non-empty string other than the version and "
                f"tombstone attributes, got {ttl!r}"
            )
        if (ttl is None) != (retention is None):
            raise ValueError(
                "tombstone_ttl_attribute and tombstone_retention_seconds go together, got "
                f"tombstone_ttl_attribute={ttl!r}, tombstone_retention_seconds={retention!r}"
            )
        if retention is not None and (
            isinstance(retention, bool) or not isinstance(retention, int) or retention < 1
        ):
            raise ValueError(
                f"tombstone_retention_seconds must be a whole number of seconds, at least 1, "
                f"got {retention!r}"
            )
        if self.transform is not None and not (
            isinstance(self.transform, str) and _SPEC.fullmatch(self.transform)
        ):
            raise ValueError(
                "TRANSFORM must be 'module:function' (e.g. 'views:app_user'), "
                f"got {self.transform!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReplicatorConfig:
        """Read ``TARGET_TABLE``, ``VERSION_ATTRIBUTE``, ``WRITE_CONCURRENCY``, ``TRANSFORM``
        and the ``TOMBSTONE_*`` variables.

        Parameters
        ----------
        environ : mapping, optional
            Default: ``os.environ``.

        Returns
        -------
        ReplicatorConfig

        Raises
        ------
        ValueError
            If ``TARGET_TABLE`` is missing or a value is invalid.
        """
        env = os.environ if environ is None else environ
        target = env.get("TARGET_TABLE", "")
        if not target:
            raise ValueError("environment variable TARGET_TABLE is required")
        concurrency_text = env.get("WRITE_CONCURRENCY", "").strip()
        try:
            concurrency = int(concurrency_text) if concurrency_text else DEFAULT_WRITE_CONCURRENCY
        except ValueError:
            raise ValueError(
                f"WRITE_CONCURRENCY must be an integer from 1 to {MAX_WRITE_CONCURRENCY}, "
                f"got {concurrency_text!r}"
            ) from None
        retention_text = env.get("TOMBSTONE_RETENTION_SECONDS", "").strip()
        try:
            retention = int(retention_text) if retention_text else None
        except ValueError:
            raise ValueError(
                "TOMBSTONE_RETENTION_SECONDS must be a whole number of seconds, "
                f"got {retention_text!r}"
            ) from None
        return cls(
            target_table=target,
            version_attribute=env.get("VERSION_ATTRIBUTE") or DEFAULT_VERSION_ATTRIBUTE,
            tombstone_attribute=env.get("TOMBSTONE_ATTRIBUTE") or DEFAULT_TOMBSTONE_ATTRIBUTE,
            tombstone_ttl_attribute=env.get("TOMBSTONE_TTL_ATTRIBUTE", "").strip() or None,
            tombstone_retention_seconds=retention,
            transform=env.get("TRANSFORM", "").strip() or None,
            write_concurrency=concurrency,
        )


def load_transform(spec: str) -> Transform:
    """Import the function a ``module:function`` spec names.

    Parameters
    ----------
    spec : str
        ``"package.module:function"``; the function part may be dotted
        (``"views:AppUser.from_image"``).

    Returns
    -------
    callable

    Raises
    ------
    ValueError
        If the spec is malformed, the module cannot be imported (or raises on
        import), the attribute is missing or is not callable. The original
        exception is chained.

    Examples
    --------
    >>> load_transform("json:dumps")({"a": 1})
    '{"a": 1}'
    >>> load_transform("json:nothing")
    Traceback (most recent call last):
    ...
    ValueError: TRANSFORM 'json:nothing': module 'json' has no attribute 'nothing'
    """
    match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(
            f"TRANSFORM must be 'module:function' (e.g. 'views:app_user'), got {spec!r}"
        )
    module_name, attr_path = match["module"], match["attr"]
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or anything the module raises while loading
        raise ValueError(
            f"TRANSFORM {spec!r}: cannot import module {module_name!r}: "
            f"{type(exc).__name__}: {exc} (it must be importable from the function's code)"
        ) from exc
    where = f"module {module_name!r}"
    done: list[str] = []
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"TRANSFORM {spec!r}: {where} has no attribute {part!r}") from None
        done.append(part)
        where = repr(f"{module_name}:{'.'.join(done)}")
    if not callable(target):
        raise ValueError(
            f"TRANSFORM {spec!r}: {attr_path!r} is a {type(target).__name__}, not a function"
        )
    return target  # type: ignore[no-any-return]


# --- Python values -> DynamoDB JSON (what the boto3 client takes) ----------------------


class SerializationError(ItemPathError):
    """A Python value cannot be stored in DynamoDB.

    Parameters
    ----------
    reason : str
        What is wrong with the value.
    path : tuple of str or int, optional
        Where the bad value sits inside the item: map keys and list indexes.

    Examples
    --------
    >>> serialize_item({"tags": {"a": [set()]}})
    Traceback (most recent call last):
    ...
    ddb_stream_runtime.replicator.SerializationError: tags.a[0]: dynamodb cannot store an empty set
    """


def _number_text(value: Any) -> str:
    if isinstance(value, bool):  # never reached from serialize_value; guards sets
        raise SerializationError(f"a number set cannot hold {value!r}")
    if isinstance(value, int):
        return int.__repr__(value)  # plain digits, also for IntEnum members
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"dynamodb cannot store {value!r}")
        return str(Decimal(repr(value)))  # the shortest text that reads back as this float
    if value.is_finite():
        return str(value)
    raise SerializationError(f"dynamodb cannot store Decimal({str(value)!r})")


def _serialize_str(value: str) -> dict[str, Any]:
    return {"S": value if value.__class__ is str else str.__str__(value)}


def _serialize_number(value: Any) -> dict[str, Any]:
    return {"N": _number_text(value)}


def _serialize_bool(value: bool) -> dict[str, Any]:
    return {"BOOL": bool(value)}


def _serialize_null(value: None) -> dict[str, Any]:
    return {"NULL": True}


def _serialize_bytes(value: Any) -> dict[str, Any]:
    return {"B": bytes(value)}  # the client base64-encodes it on the wire


def _serialize_map(value: Mapping[Any, Any]) -> dict[str, Any]:
    return {"M": serialize_item(value)}


def _serialize_list(value: Any) -> dict[str, Any]:
    out = []
    for index, element in enumerate(value):
        try:
            out.append(serialize_value(element))
        except SerializationError as exc:
            exc._prepend(index)
            raise
    return {"L": out}


def _serialize_set(value: Any) -> dict[str, Any]:
    if not value:
        raise SerializationError("dynamodb cannot store an empty set")
    if all(isinstance(v, str) for v in value):
        return {"SS": [_serialize_str(v)["S"] for v in value]}
    if all(isinstance(v, (bytes, bytearray, memoryview)) for v in value):
        return {"BS": [bytes(v) for v in value]}
    if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in value):
        return {"NS": [_number_text(v) for v in value]}
    kinds = sorted({type(v).__name__ for v in value})
    raise SerializationError(
        f"a set holds only strings, only numbers or only bytes, got {', '.join(kinds)}"
    )


# Exact class -> converter (the common case: one dict lookup); subclasses go through
# _BY_INSTANCE, where bool must come before int.
_BY_CLASS: dict[type, Callable[[Any], dict[str, Any]]] = {
    str: _serialize_str,
    int: _serialize_number,
    Decimal: _serialize_number,
    float: _serialize_number,
    bool: _serialize_bool,
    type(None): _serialize_null,
    dict: _serialize_map,
    list: _serialize_list,
    tuple: _serialize_list,
    set: _serialize_set,
    frozenset: _serialize_set,
    bytes: _serialize_bytes,
    bytearray: _serialize_bytes,
    memoryview: _serialize_bytes,
}
_BY_INSTANCE: tuple[tuple[type | tuple[type, ...], Callable[[Any], dict[str, Any]]], ...] = (
    (bool, _serialize_bool),
    (str, _serialize_str),
    ((int, float, Decimal), _serialize_number),
    (Mapping, _serialize_map),
    ((list, tuple), _serialize_list),
    ((set, frozenset), _serialize_set),
    ((bytes, bytearray, memoryview), _serialize_bytes),
)


def serialize_value(value: Any) -> dict[str, Any]:
    """Convert one Python value to a DynamoDB attribute value, as the boto3 client takes it.

    The inverse of :func:`~ddb_stream_runtime.deserialize.deserialize_value`:
    ``str`` -> S; ``int`` / ``Decimal`` -> N (exact text); ``float`` -> N via
    ``Decimal(str(x))`` (boto3's TypeSerializer rejects floats); ``bytes`` ->
    B (raw bytes: the client base64-encodes them); ``bool`` -> BOOL; ``None``
    -> NULL; ``dict`` -> M; ``list`` / ``tuple`` -> L; non-empty sets of
    strings, numbers or bytes -> SS / NS / BS.

    Parameters
    ----------
    value : Any

    Returns
    -------
    dict
        An attribute value with one type tag.

    Raises
    ------
    SerializationError
        For NaN and infinities, empty or mixed sets, non-string map keys and
        types DynamoDB has no tag for; the message names the path.

    Examples
    --------
    >>> serialize_value({"n": 1, "f": 0.1, "tags": ["a", None]})
    {'M': {'n': {'N': '1'}, 'f': {'N': '0.1'}, 'tags': {'L': [{'S': 'a'}, {'NULL': True}]}}}
    """
    convert = _BY_CLASS.get(value.__class__)
    if convert is None:
        for kinds, candidate in _BY_INSTANCE:
            if isinstance(value, kinds):
                convert = candidate
                break
        else:
            raise SerializationError(
                f"dynamodb has no type for a {type(value).__name__} ({_short(value)})"
            )
    return convert(value)


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a whole item (attribute name -> Python value) for ``PutItem``.

    Parameters
    ----------
    item : mapping

    Returns
    -------
    dict
        Attribute name -> attribute value (see :func:`serialize_value`).

    Raises
    ------
    SerializationError
        If an attribute name is not a string or a value cannot be stored.

    Examples
    --------
    >>> serialize_item({"id": 7, "roles": {"admin"}})
    {'id': {'N': '7'}, 'roles': {'SS': ['admin']}}
    """
    if not isinstance(item, Mapping):
        raise SerializationError(f"an item is a mapping of attributes, got {_short(item)}")
    out: dict[str, Any] = {}
    for name, value in item.items():
        if not isinstance(name, str):
            raise SerializationError(f"attribute names are strings, got {_short(name)}")
        try:
            out[name] = serialize_value(value)
        except SerializationError as exc:
            exc._prepend(name)
            raise
    return out


# --- replication -------------------------------------------------------------------------


def sequence_version(sequence_number: str) -> str:
    """The version stored for a record: its sequence number padded to 40 digits.

    Parameters
    ----------
    sequence_number : str
        ``dynamodb.SequenceNumber``: decimal digits, at most 40.

    Returns
    -------
    str
        Zero-padded, so that comparing two versions as strings compares the numbers.

    Raises
    ------
    MalformedRecordError
        If the sequence number is not made of at most 40 decimal digits.

    Examples
    --------
    >>> sequence_version("111")
    '0000000000000000000000000000000000000111'
    >>> sequence_version("999") < sequence_version("1000")
    True
    """
    if (
        not isinstance(sequence_number, str)
        or not (sequence_number.isascii() and sequence_number.isdigit())
        or len(sequence_number) > SEQUENCE_DIGITS
    ):
        raise MalformedRecordError(
            f"sequence number {sequence_number!r} is not a number of at most "
            f"{SEQUENCE_DIGITS} digits: it cannot be stored as a version"
        )
    return sequence_number.zfill(SEQUENCE_DIGITS)


def kinesis_version(micros: int, kinesis_sequence_number: str) -> str:
    """The version of a record read from Kinesis: its timestamp, then its Kinesis sequence number.

    Parameters
    ----------
    micros : int
        ``ApproximateCreationDateTime`` in epoch microseconds.
    kinesis_sequence_number : str
        The Kinesis record's ``sequenceNumber`` (decimal digits), the tiebreak.

    Examples
    --------
    >>> kinesis_version(1718049976512000, "49590338271490256608559692538361571095921575")
    'k01718049976512000.04449590338271490256608559692538361571095921575'
    >>> kinesis_version(1, "99") < kinesis_version(1, "100") < kinesis_version(2, "1")
    True
    """
    if isinstance(micros, bool) or not isinstance(micros, int) or micros < 0:
        raise MalformedRecordError(f"a kinesis record's timestamp is needed, got {micros!r}")
    seq = kinesis_sequence_number
    if not isinstance(seq, str) or not (seq.isascii() and seq.isdigit()) or len(seq) > 999:
        raise MalformedRecordError(f"kinesis sequence number {seq!r} is not decimal digits")
    seq = seq.lstrip("0") or "0"
    return f"k{micros:017d}.{len(seq):03d}{seq}"


def record_version(record: StreamRecord) -> str:
    """The version a record writes: by ``SequenceNumber``, or on Kinesis by timestamp.

    Raises
    ------
    MalformedRecordError
        If the record has neither a usable sequence number nor (Kinesis) a timestamp.
    """
    if record.source == KINESIS:
        micros = record.approximate_creation_micros
        if micros is None:
            raise MalformedRecordError(
                f"kinesis record {record.item_identifier} has no ApproximateCreationDateTime: "
                "it cannot be ordered"
            )
        return kinesis_version(micros, record.item_identifier or "")
    return sequence_version(record.sequence_number)  # type: ignore[arg-type]


def _is_stale(exc: Exception) -> bool:
    """True for ConditionalCheckFailedException: the target already holds newer data."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    return code == _CONDITION_FAILED or type(exc).__name__ == _CONDITION_FAILED


class Replicator:
    """Apply the records of a stream event to the target table, in order per item.

    Parameters
    ----------
    config : ReplicatorConfig
    dynamodb_client : object, optional
        Anything with boto3's ``put_item``, ``delete_item`` and (with a
        transform) ``describe_table``, callable from several threads at once
        unless ``config.write_concurrency`` is 1 (boto3 clients are). Default: a
        boto3 DynamoDB client, created on first use, its connection pool as large
        as ``write_concurrency``.
    transform : callable, optional
        Use this function instead of importing ``config.transform``.
        Default: the function ``config.transform`` names, if any.
    logger : logging.Logger, optional
        Default: the ``ddb_stream_runtime.replicator`` logger.
    clock : callable, optional
        Epoch seconds now, for tombstone expiries. Default: ``time.time``.

    Raises
    ------
    ValueError
        If ``config.transform`` cannot be resolved (see :func:`load_transform`).

    Examples
    --------
    >>> class FakeDynamoDB:
    ...     def __init__(self):
    ...         self.calls = []
    ...     def put_item(self, **params):
    ...         self.calls.append(("put", params["Item"]))
    ...     def delete_item(self, **params):
    ...         self.calls.append(("delete", params["Key"]))
    >>> client = FakeDynamoDB()
    >>> replicator = Replicator(ReplicatorConfig("copy"), dynamodb_client=client)
    >>> replicator.replicate({"Records": [
    ...     {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "111",
    ...      "Keys": {"Id": {"N": "101"}}, "NewImage": {"Id": {"N": "101"}}}},
    ...     {"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "222",
    ...      "Keys": {"Id": {"N": "101"}}}},
    ... ]})
    {'batchItemFailures': []}
    >>> client.calls  # doctest: +NORMALIZE_WHITESPACE
    [('put', {'Id': {'N': '101'},
              '_streamSequence': {'S': '0000000000000000000000000000000000000111'}}),
     ('delete', {'Id': {'N': '101'}})]
    """

    def __init__(
        self,
        config: ReplicatorConfig,
        *,
        dynamodb_client: Any = None,
        transform: Transform | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._clock = clock  # epoch seconds: a tombstone's expiry counts from its write
        if transform is None and config.transform is not None:
            transform = load_transform(config.transform)
        self.transform = transform
        self._dynamodb = dynamodb_client
        self._key_names: tuple[str, ...] | None = None
        self._names = {"#v": config.version_attribute}  # the same for every write
        self._tombstones = False  # set per batch: unordered sources write tombstones
        self._pool: Any = None  # a ThreadPoolExecutor, made when writes first overlap
        self._log = logger or _LOGGER

    def replicate(self, event: dict[str, Any]) -> PartialBatchResponse:
        """Write every record of ``event``; report the earliest one that fails.

        Parameters
        ----------
        event : dict
            A DynamoDB stream event. A missing or empty ``Records`` is nothing to do.

        Returns
        -------
        PartialBatchResponse
            No failures, or exactly one: the earliest record that could not be
            applied (stale records are not failures).

        Raises
        ------
        TypeError
            If ``event`` is not a stream event.
        """
        batch = read_batch(event, s3_client=None)
        records = batch.entries
        # Standard SQS queues and Kinesis reorder one item's records: deletes leave tombstones.
        self._tombstones = not (batch.source == DYNAMODB or batch.fifo)
        # 1. Prepare, in order, in this thread: what each record writes, and its item.
        prepare = self._reshape if self.transform is not None else self._copy
        groups: dict[Any, list[_Planned]] = {}
        failed: tuple[int, BaseException] | None = None
        for index, entry in enumerate(records):
            try:
                record = entry.get()
                writes = prepare(record)
                # One writer: every record in one group, the delivery order.
                item = _item_of(record) if self.config.write_concurrency > 1 else None
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit too: one record fails, never the batch
                failed = (index, exc)
                break
            groups.setdefault(item, []).append((index, writes))
        # 2. Write: items concurrently, each item's records in delivery order.
        counts = {"put": 0, "delete": 0, "stale": 0}
        limit = failed[0] if failed is not None else len(records)
        written = self._write_groups(list(groups.values()), counts, limit)
        if written is not None and (failed is None or written[0] < failed[0]):
            failed = written
        self._log.debug(
            "replicator: %d puts, %d deletes, %d stale records skipped",
            counts["put"],
            counts["delete"],
            counts["stale"],
        )
        if failed is None and not batch.rejected:
            return {"batchItemFailures": []}
        if failed is None:
            return {"batchItemFailures": batch.failures()}
        index, exc = failed
        if batch.source == DYNAMODB:
            _report(records[index].raw, exc, index, len(records), self._log)
        else:
            _log_entry_failure(self._log, batch, records[index], exc, index, stop=True)
        return {"batchItemFailures": batch.failures(undone_from=index)}

    # -- per record: what to write (no AWS call but describe_table, once)

    def _delete(self, version: str, key: dict[str, Any]) -> _Write:
        """A conditional delete, or from an unordered source a conditional tombstone put."""
        if not self._tombstones:
            return ("delete", version, {"Key": key})
        item = dict(key)
        item[self.config.version_attribute] = {"S": version}
        item[self.config.tombstone_attribute] = {"BOOL": True}
        if self.config.tombstone_ttl_attribute is not None:
            expires = int(self._clock()) + self.config.tombstone_retention_seconds
            item[self.config.tombstone_ttl_attribute] = {"N": str(expires)}
        return ("tombstone", version, {"Item": item})

    def _copy(self, record: StreamRecord) -> list[_Write]:
        version = record_version(record)
        if record.event_name == "REMOVE":
            keys = record.raw_keys
            if not keys:
                raise MalformedRecordError(f"REMOVE record {record.item_identifier} has no Keys")
            return [self._delete(version, client_image(keys))]
        image = self._require(record, record.raw_new_image, "NewImage")
        item = dict(client_image(image))  # a copy: the event is not ours to change
        item[self.config.version_attribute] = {"S": version}
        return [("put", version, {"Item": item})]

    def _reshape(self, record: StreamRecord) -> list[_Write]:
        version = record_version(record)
        event_name = record.event_name
        new_item = old_item = None
        writes: list[_Write] = []
        if event_name != "REMOVE":
            self._require(record, record.raw_new_image, "NewImage")
            new_item = self._call_transform(record, record.new_image, "new")
        if event_name != "INSERT":
            self._require(record, record.raw_old_image, "OldImage")
            old_item = self._call_transform(record, record.old_image, "old")
        if old_item is not None:
            old_key = self._target_key(record, old_item, "old")
            # Transformed away, or moved to another key: what the old image put there goes.
            if new_item is None or self._target_key(record, new_item, "new") != old_key:
                writes.append(self._delete(version, serialize_item(old_key)))
        if new_item is not None:
            item = serialize_item(new_item)
            item[self.config.version_attribute] = {"S": version}
            writes.append(("put", version, {"Item": item}))
        return writes

    def _require(self, record: StreamRecord, image: Any, name: str) -> dict[str, Any]:
        if image is None:
            needs = "NEW_AND_OLD_IMAGES" if self.transform is not None else "new images"
            raise MalformedRecordError(
                f"{record.event_name} record {record.item_identifier} has no {name}: "
                f"the replicator needs a stream with {needs}, got {record.stream_view_type!r}"
            )
        return image  # type: ignore[no-any-return]

    def _call_transform(
        self, record: StreamRecord, image: dict[str, Any] | None, which: str
    ) -> Mapping[str, Any] | None:
        result = self.transform(image)  # type: ignore[misc, arg-type]
        if result is None or isinstance(result, Mapping):
            return result
        raise TypeError(
            f"TRANSFORM returned a {type(result).__name__} for the {which} image of record "
            f"{record.item_identifier}: expected a dict or None"
        )

    def _target_key(
        self, record: StreamRecord, item: Mapping[str, Any], which: str
    ) -> dict[str, Any]:
        names = self._target_key_names()
        try:
            return {name: item[name] for name in names}
        except KeyError as exc:
            raise ValueError(
                f"the transformed {which} image of record {record.item_identifier} has no "
                f"{exc.args[0]!r}: the transform must return the key of table "
                f"{self.config.target_table!r} ({', '.join(names)})"
            ) from None

    def _target_key_names(self) -> tuple[str, ...]:
        if self._key_names is None:
            table = self._client().describe_table(TableName=self.config.target_table)["Table"]
            self._key_names = tuple(k["AttributeName"] for k in table["KeySchema"])
        return self._key_names

    # -- writing

    def _client(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws_client("dynamodb")
        return self._dynamodb

    def _write_groups(
        self,
        groups: list[list[_Planned]],
        counts: dict[str, int],
        limit: int,
    ) -> tuple[int, BaseException] | None:
        """Apply each group's records in order, groups concurrently; the earliest failure."""
        if not groups:
            return None
        client = self._client()  # created here, once: clients are thread-safe, sessions not
        # Records at or after this index need not be written: one before them failed.
        stop = [limit]
        lock = threading.Lock()

        def run(group: list[_Planned]) -> tuple[int, BaseException] | None:
            mine = {"put": 0, "delete": 0, "stale": 0, "tombstone": 0}
            try:
                for index, writes in group:
                    if index >= stop[0]:
                        return None
                    try:
                        for kind, version, target in writes:
                            mine[self._write(client, kind, version, target)] += 1
                    except KeyboardInterrupt:
                        raise
                    except BaseException as exc:  # botocore has already retried throttling, 5xx
                        # (SystemExit too, as in process_stream_batch: the record fails)
                        with lock:
                            stop[0] = min(stop[0], index)
                        return index, exc
                return None
            finally:
                with lock:
                    for kind, n in mine.items():
                        counts["delete" if kind == "tombstone" else kind] += n

        workers = min(self.config.write_concurrency, len(groups))
        if workers == 1:
            outcomes = [run(group) for group in groups]
        else:
            outcomes = list(self._executor().map(run, groups))
        failures = [outcome for outcome in outcomes if outcome is not None]
        return min(failures, key=lambda f: f[0]) if failures else None

    def _executor(self) -> Any:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor  # only when writes overlap

            self._pool = ThreadPoolExecutor(
                max_workers=self.config.write_concurrency, thread_name_prefix="replicator"
            )
        return self._pool

    def _client(self) -> Any:
        if self._dynamodb is None:
            # One connection per thread: botocore keeps 10 by default.
            self._dynamodb = aws_client(
                "dynamodb", max_pool_connections=max(10, self.config.write_concurrency)
            )
        return self._dynamodb

    def _write(self, client: Any, kind: str, version: str, target: dict[str, Any]) -> str:
        method = client.delete_item if kind == "delete" else client.put_item
        try:
            method(
                TableName=self.config.target_table,
                ConditionExpression=_CONDITION,
                ExpressionAttributeNames=self._names,
                ExpressionAttributeValues={":seq": {"S": version}},
                **target,
            )
        except Exception as exc:
            if not _is_stale(exc):
                raise  # this record fails; its item's later records are not written
            return "stale"  # the target holds this item at a later sequence number
        return kind


# (kind, version, Item= or Key=) of one conditional write; (record index, its writes).
_Write = tuple[str, str, dict[str, Any]]
_Planned = tuple[int, list[_Write]]


def _item_of(record: StreamRecord) -> Any:
    """Which item a record changes (its ``Keys``), hashable; records without Keys share one."""
    keys = record.raw_keys
    if not keys:
        return None
    try:
        return tuple(sorted((name, *av.items()) for name, av in keys.items()))
    except (AttributeError, TypeError):  # not DynamoDB JSON: one group, still in order
        return repr(keys)


@functools.lru_cache(maxsize=1)
def _default_replicator() -> Replicator:
    # Read once per execution environment (and the transform imported once); configuration
    # errors surface on the first invocation, and every one after it: no exception is cached.
    return Replicator(ReplicatorConfig.from_env())


def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """The replicator Lambda's entry point (``ddb_stream_runtime.replicator.handler``).

    Configured by environment variables, see the module docstring.
    """
    return _default_replicator().replicate(event)
