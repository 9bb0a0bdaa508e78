"""The SearchIndexer's Lambda: keep an OpenSearch index in sync with a table (SigV4 ``_bulk``).

Sources: a DynamoDB stream, an SQS queue of the SNS fan-out, or a Kinesis data
stream fed by the table (see :mod:`ddb_stream_runtime.intake`; versions per
source below).

INSERT and MODIFY index the ``NewImage`` as a JSON document, REMOVE deletes
the document. Each invocation sends **one** ``POST /<index>/_bulk`` request
(NDJSON), signed with SigV4 by botocore and sent with ``urllib``: no
dependency beyond what the Lambda runtime ships. A stream event is at most
6 MB of DynamoDB JSON, and its NDJSON is smaller, so one request always fits
OpenSearch Service's smallest HTTP payload limit (10 MiB).

Configuration (environment variables, read on the first invocation)
-------------------------------------------------------------------
``SEARCH_ENDPOINT``
    Required: ``https://<domain or collection endpoint>``. ``http://`` is
    accepted for local test servers only; production endpoints are https.
``INDEX_NAME``
    Required: the index (or alias) to write to.
``AWS_REGION``
    Required (Lambda sets it): the signing region.
``SEARCH_SERVICE``
    Signing name: ``es`` for OpenSearch Service domains (default), ``aoss``
    for OpenSearch Serverless collections.
``ID_ATTRIBUTES``
    Required: JSON list of the key attributes, in order, e.g. ``["ListId", "TaskId"]``.
``VERSIONING``
    ``external`` (default for ``es``) or ``none`` (default for ``aoss``).

Documents
---------
Document id: the id attributes' values (S as is, N as DynamoDB's number text,
B as base64), joined with ``|``; a ``\\`` or ``|`` inside a value is escaped
with ``\\`` so that two different keys never share an id, and an id longer than
OpenSearch's 512 bytes becomes ``sha256:<hex>`` of itself. Values are looked up
in ``Keys``, then the images.

The source is the deserialized ``NewImage`` made JSON-safe: numbers that are
integers within a signed 64-bit long become ``int``, every other number a
``float`` (a search index is no place for exact decimals; the table keeps
them), sets become sorted lists, binary values base64 text.

Versioning (``external``)
-------------------------
Every action carries ``version = sequence_version(SequenceNumber)`` and
``version_type=external_gte``, so a late or repeated record never overwrites
newer data: OpenSearch answers 409 for a version lower than the stored one,
which here means "newer data is already indexed", a success.

OpenSearch versions are signed 64-bit longs, DynamoDB sequence numbers are
decimal strings of 21 to 40 digits (about 133 bits: no map into a long can be
both monotone and one-to-one). :func:`sequence_version` is monotone
non-decreasing in the sequence number's numeric value: sequence numbers of up
to 17 digits map to themselves; longer ones to ``(digits - 16) * 10**17 +``
their leading 17 digits. The largest value (40 digits) is about 2.5e18, well
below 2**63 - 1. Records whose sequence numbers have the same length and the
same leading 17 digits **tie** (share a version). That is why the version type
is ``external_gte``, not ``external``: with ``external`` a tie would reject the
*newer* record as a conflict and lose it. With ``external_gte`` the record
delivered later wins a tie. Lambda delivers a shard in order and re-sends from
the failed record onward in order, so the last write is the newest record and
the index converges; only an out-of-order replay of an older, tied record (a
hand-replayed failure destination) can overwrite newer data, until the item's
next change. Deletes keep a version tombstone for ``index.gc_deletes`` (60 s
by default); an older record arriving later than that re-creates the document.

Versions from SQS and Kinesis
-----------------------------
* **SQS** (the router publishes the stream record with its ``SequenceNumber``):
  the same :func:`sequence_version`. A standard queue reorders and redelivers, so
  a tie is no longer resolved by delivery order: of two records of one item whose
  sequence numbers tie (same length, same 17 leading digits), the one delivered
  last wins even if it is the older. Subscribe the indexer with a FIFO queue
  (message group = item key) where that matters: per-item order is then kept and
  the stream path's argument holds again.
* **Kinesis** (no ``SequenceNumber``): ``ApproximateCreationDateTime`` in epoch
  microseconds (about 1.7e15, within a long, above :data:`BACKFILL_VERSION`).
  DynamoDB documents that on Kinesis records of an item "may appear in a
  different sequence than the actual modifications" and "more than once", and
  that this timestamp identifies "the actual order in which item modifications
  occurred" (*kds*). It is one-to-one per item at ``MICROSECOND`` precision; with
  the default ``MILLISECOND`` precision two changes of one item in the same
  millisecond tie, and the one delivered last wins. Duplicates carry the same
  timestamp: a duplicate of the newest record rewrites the same document.
* **Late deletes**: a delete's version tombstone lives ``index.gc_deletes``
  (60 s by default); from SQS or Kinesis an older record can arrive later than
  that (a retry after the visibility timeout, a Kinesis retry) and re-create the
  document. Raise ``index.gc_deletes`` on the index above the source's longest
  redelivery delay (e.g. visibility timeout x ``maxReceiveCount``).

Do not mix sources on one index: stream and Kinesis versions do not compare.

``none`` (OpenSearch Serverless): no version is sent, the last write wins, and
ordering rests on Lambda's in-order delivery alone. OpenSearch Serverless
documents no support for external versions (not verified here against a live
collection: no OpenSearch can run on this machine) and accepts custom document
ids only in *search* collections (time-series and vector collections reject
``_id``), so the collection must be of type SEARCH.

Failures
--------
The bulk response's items map back to the records in order. The earliest
item that failed (any status but 2xx, 404 on a delete, or a 409 version
conflict, see :func:`item_succeeded`) is the only ``batchItemFailure``; an
item's 429 or 5xx is not resent within the invocation: Lambda's re-send of
the reported record retries it. Items after it in the same
request were applied anyway; Lambda re-sends them, and versioning makes the
re-send idempotent. HTTP 429, 5xx and connection errors for the whole request
are retried with exponential backoff; then (or at once for other statuses) the
first record is reported.

IAM: domains (``es``): ``es:ESHttpPost`` on
``arn:aws:es:<region>:<account>:domain/<domain>/<index>/_bulk`` (and a
fine-grained access control mapping allowing ``indices:data/write/bulk*``,
``indices:data/write/index``, ``indices:data/write/delete`` on the index, plus
``indices:admin/create`` if it is created on first write). Serverless
(``aoss``): ``aoss:APIAccessAll`` on the collection ARN, and a data access
policy granting ``aoss:WriteDocument`` (plus ``aoss:CreateIndex`` if the index
is created on first write) on ``index/<collection>/<index>``.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ._aws import check_retry_settings
from ._sigv4 import MissingCredentialsError, SigV4Signer
from .batch import _Failure
from .deserialize import _DISPATCH, _other_number, deserialize_image
from .intake import KINESIS, Entry, read_batch
from .records import MalformedRecordError, StreamRecord

if TYPE_CHECKING:
    from .batch import BatchItemFailure, PartialBatchResponse

__all__ = [
    "BACKFILL_VERSION",
    "MAX_ID_BYTES",
    "BulkError",
    "BulkItemResult",
    "BulkRequestError",
    "BulkResponse",
    "IndexerConfig",
    "OpenSearchBulkClient",
    "SearchIndexer",
    "Versioning",
    "document_id",
    "handler",
    "image_to_document",
    "item_succeeded",
    "record_version",
    "sequence_version",
]

_LOGGER = logging.getLogger(__name__)

Versioning = Literal["external", "none"]

#: The version backfilled documents get: below every stream record's, see backfill.py.
BACKFILL_VERSION = 0
#: OpenSearch's limit on a document id (bytes of UTF-8).
MAX_ID_BYTES = 512
_MANTISSA_DIGITS = 17  # 23 lengths (18..40) x 10**17 leaves room below 2**63 - 1
_MAX_SEQUENCE_DIGITS = 40
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_VERSION_TYPE = "external_gte"
_WHOLE_BATCH = ""  # Lambda reads an empty itemIdentifier as "the whole batch failed"
_CONTENT_TYPE = "application/x-ndjson"
_TOO_MANY_REQUESTS = 429  # retried, like every 5xx
# Actions for which a 409 means "newer data, or the document, is already there".
_CONFLICT_MEANS_NEWER = frozenset({"index", "create", "delete"})
_DIGITS = re.compile(r"[0-9]+")
# Index names: lowercase, none of \ / * ? " < > | , # : or space, not starting with _ - +.
_INDEX_NAME = re.compile(r"(?![_+-])[^A-Z\\/*?\"<>|,#: ]{1,255}")
_SERVICES = ("es", "aoss")
_VERSIONINGS = ("external", "none")
_TRANSIENT_ERRORS = (OSError, http.client.HTTPException)  # URLError, timeouts, resets

# Compact UTF-8 JSON; documents are trees built here, so no cycles to check.
_encode = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, check_circular=False, allow_nan=False
).encode


class BulkError(TypedDict, total=False):
    """The ``error`` object of a failed bulk item."""

    type: str
    reason: str


class BulkItemResult(TypedDict, total=False):
    """What ``_bulk`` says about one action (the value under ``index``/``delete``/...)."""

    _index: str
    _id: str
    _version: int
    result: str
    status: int
    error: BulkError


class BulkResponse(TypedDict):
    """A ``_bulk`` response: one ``{action: result}`` per action, in request order."""

    took: int
    errors: bool
    items: list[dict[str, BulkItemResult]]


class BulkRequestError(Exception):
    """The ``_bulk`` request as a whole failed (after retries, if it was worth retrying).

    Attributes
    ----------
    status : int or None
        The HTTP status, or None for a connection error.
    attempts : int
        How many times the request was sent.
    """

    def __init__(self, message: str, *, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


# --- versions, ids, documents ----------------------------------------------------------


def sequence_version(sequence_number: str) -> int:
    """The external version of a stream record: monotone in its sequence number, fits a long.

    Parameters
    ----------
    sequence_number : str
        ``dynamodb.SequenceNumber``: decimal digits (21 to 40 of them on real streams).

    Returns
    -------
    int
        Between 0 and 2**63 - 1. ``a < b`` numerically implies
        ``sequence_version(a) <= sequence_version(b)``; equal versions (ties) are
        possible above 17 digits, see the module docstring.

    Raises
    ------
    ValueError
        If the sequence number is not digits, or longer than 40 significant digits.

    Examples
    --------
    >>> sequence_version("111")
    111
    >>> sequence_version("400000000032021070652")
    540000000003202107
    >>> sequence_version("9" * 40) < 2**63 - 1
    True
    """
    if not isinstance(sequence_number, str) or not _DIGITS.fullmatch(sequence_number):
        raise ValueError(f"a sequence number is decimal digits, got {sequence_number!r:.60}")
    digits = sequence_number.lstrip("0") or "0"
    if len(digits) <= _MANTISSA_DIGITS:
        return int(digits)  # exact: no ties
    if len(digits) > _MAX_SEQUENCE_DIGITS:
        raise ValueError(
            f"sequence number has {len(digits)} digits, more than dynamodb's "
            f"{_MAX_SEQUENCE_DIGITS}: {sequence_number[:60]}"
        )
    # The length first (more digits = larger number), then the leading digits.
    exponent = len(digits) - _MANTISSA_DIGITS + 1  # 2..24: above every exact version
    return exponent * 10**_MANTISSA_DIGITS + int(digits[:_MANTISSA_DIGITS])


def record_version(record: StreamRecord) -> int:
    """The external version of a record: :func:`sequence_version`, or on Kinesis its timestamp.

    Examples
    --------
    >>> record_version(StreamRecord.from_kinesis({"eventName": "INSERT", "dynamodb": {
    ...     "ApproximateCreationDateTime": 1718049976512345,
    ...     "ApproximateCreationDateTimePrecision": "MICROSECOND"}}, sequence_number="1"))
    1718049976512345
    """
    if record.source == KINESIS:
        micros = record.approximate_creation_micros
        if micros is None:
            raise MalformedRecordError(
                f"kinesis record {record.item_identifier} has no ApproximateCreationDateTime: "
                "it cannot be versioned"
            )
        return micros
    return sequence_version(record.sequence_number)  # type: ignore[arg-type]


def _id_part(name: str, av: Any) -> str:
    try:
        [(tag, value)] = av.items()
    except (AttributeError, ValueError):
        raise ValueError(f"id attribute {name!r} is not an attribute value: {av!r:.80}") from None
    if tag in ("S", "N") and isinstance(value, str):
        text = value
    elif tag == "B" and isinstance(value, (bytes, bytearray)):
        text = b64encode(value).decode("ascii")  # a boto3 Scan gives bytes
    elif tag == "B" and isinstance(value, str):
        text = value  # stream records carry base64 already
    else:
        raise ValueError(f"id attribute {name!r} must be an S, N or B value, got type {tag!r}")
    return text.replace("\\", "\\\\").replace("|", "\\|")


def document_id(id_attributes: Sequence[str], *images: Mapping[str, Any] | None) -> str:
    """The document id of an item: its id attributes' values joined with ``|``.

    Parameters
    ----------
    id_attributes : sequence of str
        Attribute names, in order.
    *images : dict or None
        DynamoDB-JSON images to look the attributes up in, first match wins
        (``Keys``, then ``NewImage``, then ``OldImage``).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If an attribute is in no image, or is not an S, N or B value.

    Examples
    --------
    >>> document_id(["ListId", "TaskId"], {"ListId": {"S": "l1"}, "TaskId": {"N": "7"}})
    'l1|7'
    >>> document_id(["ListId", "TaskId"], {"ListId": {"S": "a|b"}, "TaskId": {"S": "c"}})
    'a\\\\|b|c'
    """
    parts = []
    for name in id_attributes:
        for image in images:
            if image and name in image:
                parts.append(_id_part(name, image[name]))
                break
        else:
            raise ValueError(f"id attribute {name!r} is in neither the keys nor the images")
    doc_id = "|".join(parts)
    if len(doc_id) * 4 > MAX_ID_BYTES and len(doc_id.encode("utf-8")) > MAX_ID_BYTES:
        return "sha256:" + hashlib.sha256(doc_id.encode("utf-8")).hexdigest()
    return doc_id


def _jsonable(value: Any) -> Any:
    cls = value.__class__
    if cls is str or cls is bool or value is None:
        return value
    if cls is int:
        return value if _LONG_MIN <= value <= _LONG_MAX else float(value)
    if cls is Decimal:
        if value == value.to_integral_value():
            as_int = int(value)
            if _LONG_MIN <= as_int <= _LONG_MAX:
                return as_int
        return float(value)
    if cls is dict:
        return {k: _jsonable(v) for k, v in value.items()}
    if cls is list:
        return [_jsonable(v) for v in value]
    if cls is set:
        return [_jsonable(v) for v in sorted(value)]  # bytes sort by bytes, then encode
    if cls is bytes:
        return b64encode(value).decode("ascii")
    raise TypeError(f"cannot make a {cls.__name__} json-safe")  # pragma: no cover


def image_to_document(image: Mapping[str, Any]) -> dict[str, Any]:
    """An item image (DynamoDB JSON) as a JSON-safe document.

    Parameters
    ----------
    image : dict
        DynamoDB JSON, e.g. a stream record's ``NewImage``.

    Returns
    -------
    dict
        Integral numbers within a long as ``int``, other numbers as ``float``,
        sets as sorted lists, binary as base64 text.

    Raises
    ------
    DeserializationError
        If the image is not valid DynamoDB JSON.

    Examples
    --------
    >>> image_to_document({"n": {"N": "2.50"}, "i": {"N": "7"}, "tags": {"SS": ["b", "a"]},
    ...                    "raw": {"B": "AAE="}})
    {'n': 2.5, 'i': 7, 'tags': ['a', 'b'], 'raw': 'AAE='}
    """
    image = image if isinstance(image, dict) else dict(image)
    try:
        return _document_map(image)
    except Exception:
        # Malformed DynamoDB JSON: the two-step path names the bad value and its path.
        return _jsonable(deserialize_image(image))


# One walk from DynamoDB JSON to the document's values (no Decimal in between for the
# common tags); the same values as _jsonable(deserialize_image(...)) (tested), which
# still handles the rare tags (sets, binary) and every error.


def _document_number(text: str) -> Any:
    if text.isdigit():
        number = int(text)
        return number if number <= _LONG_MAX else float(number)
    if "." in text:
        # A fraction: float(text) is what float(Decimal(text)) gives (both correctly
        # rounded from the same value). An integer-valued float may come from an
        # integral text ("2.0": an int) or not: the exact path decides.
        number = float(text)
        if not number.is_integer():
            return number
    return _jsonable(_other_number(text))


def _document_value(tag: str, value: Any) -> Any:
    if tag == "SS" and value.__class__ is list:
        "".join(value)  # every member a str, or TypeError
        return sorted(set(value))  # what _jsonable makes of the set
    if tag == "NS" and value.__class__ is list and "".join(value).isdigit():
        numbers = sorted(set(map(int, value)))  # plain digits (int("") raises)
        if numbers[-1] <= _LONG_MAX:
            return numbers  # what _jsonable makes of the set: sorted, all within a long
    return _jsonable(_DISPATCH[tag](value))  # B, NS, BS: sorted, base64 as before


def _document_map(image: dict[str, Any]) -> dict[str, Any]:
    # S, N integers, M, L, BOOL and NULL inline (most values); anything malformed raises
    # and image_to_document re-runs the two-step path, which names it.
    out: dict[str, Any] = {}
    for name, av in image.items():
        [(tag, value)] = av.items()
        if tag == "S":
            if value.__class__ is not str:
                raise TypeError
            out[name] = value
        elif tag == "N":
            if value.isdigit():
                number = int(value)
                out[name] = number if number <= _LONG_MAX else float(number)
            else:
                out[name] = _document_number(value)
        elif tag == "M":
            out[name] = _document_map(value)
        elif tag == "L":
            out[name] = _document_list(value)
        elif tag == "BOOL":
            if value is not True and value is not False:
                raise TypeError
            out[name] = value
        elif tag == "NULL":
            if value is not True:
                raise TypeError
            out[name] = None
        else:
            out[name] = _document_value(tag, value)
    return out


def _document_list(values: list[Any]) -> list[Any]:
    if values.__class__ is not list:
        raise TypeError("L needs a list")
    out: list[Any] = []
    append = out.append
    for av in values:
        [(tag, value)] = av.items()
        if tag == "S":
            if value.__class__ is not str:
                raise TypeError
            append(value)
        elif tag == "N":
            if value.isdigit():
                number = int(value)
                append(number if number <= _LONG_MAX else float(number))
            else:
                append(_document_number(value))
        elif tag == "M":
            append(_document_map(value))
        elif tag == "L":
            append(_document_list(value))
        elif tag == "BOOL":
            if value is not True and value is not False:
                raise TypeError
            append(value)
        elif tag == "NULL":
            if value is not True:
                raise TypeError
            append(None)
        else:
            append(_document_value(tag, value))
    return out


def _action_line(action: str, doc_id: str, version: int | None) -> str:
    """``_encode({action: {"_id": doc_id, "version": version, "version_type": ...}})``
    (no version keys if ``version`` is None), without building and encoding the dicts."""
    if version is None:
        return f'{{"{action}":{{"_id":{_encode(doc_id)}}}}}'
    if version.__class__ is not int:  # pragma: no cover - versions are ints
        meta = {"_id": doc_id, "version": version, "version_type": _VERSION_TYPE}
        return _encode({action: meta})
    return (
        f'{{"{action}":{{"_id":{_encode(doc_id)},"version":{version},'
        f'"version_type":"{_VERSION_TYPE}"}}}}'
    )


def item_succeeded(result: Mapping[str, Any], action: str) -> bool:
    """Whether one bulk item left the index as the request wanted.

    Success: 2xx; a 404 on a ``delete`` (nothing to delete); a 409 version
    conflict on ``index``, ``create`` or ``delete`` (a newer version, or for
    ``create`` an existing document, is already there). Everything else failed:
    429 and 5xx (worth retrying), any other 4xx, among them a 404 on an
    ``index`` or ``create`` (``index_not_found_exception``: nothing was
    written), and a 409 on an ``update`` (a concurrent change won: the update
    was not applied).

    Examples
    --------
    >>> item_succeeded({"status": 404}, "delete"), item_succeeded({"status": 404}, "index")
    (True, False)
    >>> item_succeeded({"status": 409}, "index"), item_succeeded({"status": 409}, "update")
    (True, False)
    """
    status = result.get("status")
    if not isinstance(status, int):
        return False
    if 200 <= status < 300:
        return True
    if status == 409:
        return action in _CONFLICT_MEANS_NEWER
    return status == 404 and action == "delete"


# --- the HTTP client ------------------------------------------------------------------


class OpenSearchBulkClient:
    """SigV4-signed ``POST /<index>/_bulk`` with retries, over urllib.

    Parameters
    ----------
    endpoint : str
        ``https://host`` (``http://`` for local test servers).
    index : str
        The index the request's actions apply to.
    region : str
        The signing region.
    service : {"es", "aoss"}, optional
        The signing name. Default ``"es"``.
    credentials : botocore Credentials, optional
        Default: botocore's credential chain, resolved on first use (and
        refreshed by botocore when they are temporary).
    opener : urllib.request.OpenerDirector, optional
        Default: ``urllib.request.build_opener()``.
    timeout_seconds : float, optional
        Per attempt. Default: 30.
    max_attempts : int, optional
        For 429, 5xx and connection errors. Default: 3.
    backoff_seconds : float, optional
        Sleep before the 2nd attempt, doubled before each later one. Default: 0.2.
    sleep : callable, optional
        Default: ``time.sleep``.
    """

    def __init__(
        self,
        endpoint: str,
        index: str,
        region: str,
        service: str = "es",
        *,
        credentials: Any = None,
        opener: urllib.request.OpenerDirector | None = None,
        timeout_seconds: float = 30.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.url = f"{endpoint.rstrip('/')}/{urllib.parse.quote(index, safe='')}/_bulk"
        self.region = region
        self.service = service
        self._signer = SigV4Signer(region, service, credentials)
        self._opener = opener or urllib.request.build_opener()
        self._timeout = timeout_seconds
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._sleep = sleep

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        try:
            return self._signer.headers("POST", self.url, body, {"Content-Type": _CONTENT_TYPE})
        except MissingCredentialsError as exc:
            raise BulkRequestError(str(exc), status=None, attempts=0) from None

    def bulk(self, body: bytes) -> BulkResponse:
        """Send one ``_bulk`` request; retry what is worth retrying.

        Parameters
        ----------
        body : bytes
            NDJSON, ending with a newline.

        Returns
        -------
        BulkResponse

        Raises
        ------
        BulkRequestError
            After the last attempt, or at once for a status that retrying
            cannot fix (4xx but 429) or a response that is not a bulk response.
        """
        reason = ""
        status: int | None = None
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                self._sleep(self._backoff * 2 ** (attempt - 2))
            request = urllib.request.Request(
                self.url, data=body, headers=self._signed_headers(body), method="POST"
            )
            try:
                with self._opener.open(request, timeout=self._timeout) as response:
                    payload = response.read()
                    status = response.status
            except urllib.error.HTTPError as exc:  # a status >= 400
                status = exc.code
                try:
                    detail = exc.read()[:300].decode("utf-8", "replace")
                except Exception:  # the error body is only for the log
                    detail = ""
                reason = f"http {status}: {detail}"
                if status == _TOO_MANY_REQUESTS or status >= 500:
                    continue
                raise BulkRequestError(reason, status=status, attempts=attempt) from None
            except _TRANSIENT_ERRORS as exc:  # refused, reset, timed out, truncated
                status = None
                reason = f"{type(exc).__name__}: {exc}"
                continue
            try:
                parsed = json.loads(payload)
                if not isinstance(parsed, dict) or not isinstance(parsed.get("items"), list):
                    raise ValueError("no 'items' list")
            except ValueError as exc:
                raise BulkRequestError(
                    f"http {status} with a body that is not a bulk response: {exc}",
                    status=status,
                    attempts=attempt,
                ) from None
            return parsed  # type: ignore[return-value]
        raise BulkRequestError(
            f"{reason} (after {self._max_attempts} attempts)",
            status=status,
            attempts=self._max_attempts,
        )


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class IndexerConfig:
    """Where and how the indexer writes; validated on creation.

    Parameters
    ----------
    endpoint : str
        ``https://...`` (``http://`` for local test servers only).
    index : str
        Index or alias name.
    region : str
        Signing region.
    id_attributes : tuple of str
        Key attributes whose values make the document id, in order.
    service : {"es", "aoss"}, optional
        Default ``"es"``.
    versioning : {"external", "none"}, optional
        Default ``"external"``.
    max_attempts : int, optional
        Attempts of the bulk request for 429, 5xx and connection errors. Default: 3.
    backoff_seconds : float, optional
        Default: 0.2.
    timeout_seconds : float, optional
        Per attempt. Default: 30.

    Raises
    ------
    ValueError
        If a value is invalid.

    Examples
    --------
    >>> IndexerConfig.from_env({"SEARCH_ENDPOINT": "https://search-x.es.amazonaws.com",
    ...                         "INDEX_NAME": "tasks", "AWS_REGION": "eu-west-1",
    ...                         "ID_ATTRIBUTES": '["ListId", "TaskId"]'})
    ... # doctest: +NORMALIZE_WHITESPACE
    IndexerConfig(endpoint='https://search-x.es.amazonaws.com', index='tasks',
                  region='eu-west-1', id_attributes=('ListId', 'TaskId'), service='es',
                  versioning='external', max_attempts=3, backoff_seconds=0.2,
                  timeout_seconds=30.0)
    >>> IndexerConfig("search-x.es.amazonaws.com", "tasks", "eu-west-1", ("Id",))
    Traceback (most recent call last):
    ...
    ValueError: endpoint must start with https:// (or http:// for a local test server), \
got 'search-x.es.amazonaws.com'
    """

    endpoint: str
    index: str
    region: str
    id_attributes: tuple[str, ...]
    service: str = "es"
    versioning: Versioning = "external"
    max_attempts: int = 3
    backoff_seconds: float = 0.2
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        endpoint = self.endpoint if isinstance(self.endpoint, str) else ""
        scheme, _, host = endpoint.partition("://")
        if scheme not in ("https", "http") or not host:
            raise ValueError(
                "endpoint must start with https:// (or http:// for a local test server), "
                f"got {self.endpoint!r}"
            )
        if not isinstance(self.index, str) or not _INDEX_NAME.fullmatch(self.index) or (
            self.index in (".", "..")
        ):
            raise ValueError(
                "index must be a lowercase opensearch index name (no \\ / * ? \" < > | , # : "
                f"or space, not starting with _ - +), got {self.index!r}"
            )
        if not isinstance(self.region, str) or not self.region:
            raise ValueError(f"region must be a non-empty string, got {self.region!r}")
        names = tuple(self.id_attributes) if not isinstance(self.id_attributes, str) else ()
        object.__setattr__(self, "id_attributes", names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(
                f"id_attributes must be one or more attribute names, got {self.id_attributes!r}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"id_attributes must be unique, got {list(names)}")
        if self.service not in _SERVICES:
            raise ValueError(f"service must be 'es' or 'aoss', got {self.service!r}")
        if self.versioning not in _VERSIONINGS:
            raise ValueError(f"versioning must be 'external' or 'none', got {self.versioning!r}")
        check_retry_settings(self.max_attempts, self.backoff_seconds)
        if self.timeout_seconds <= 0:
            raise ValueError(
                "backoff_seconds must be >= 0 and timeout_seconds > 0, got "
                f"{self.backoff_seconds} and {self.timeout_seconds}"
            )
        if self.service == "aoss" and self.versioning == "external":
            # Not an error: it could not be verified here that serverless rejects it.
            _LOGGER.warning(
                "indexer: opensearch serverless documents no external versioning; "
                "use VERSIONING=none if bulk items fail"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IndexerConfig:
        """Read the configuration from environment variables (see the module docstring).

        Parameters
        ----------
        environ : mapping, optional
            Default: ``os.environ``.

        Returns
        -------
        IndexerConfig

        Raises
        ------
        ValueError
            If a required variable is missing or a value is invalid.
        """
        env = os.environ if environ is None else environ
        for required in ("SEARCH_ENDPOINT", "INDEX_NAME", "AWS_REGION", "ID_ATTRIBUTES"):
            if not env.get(required):
                raise ValueError(f"environment variable {required} is required")
        text = env["ID_ATTRIBUTES"]
        try:
            names = json.loads(text)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"ID_ATTRIBUTES must be a json list of names, got {text!r}")
        service = env.get("SEARCH_SERVICE") or "es"
        return cls(
            endpoint=env["SEARCH_ENDPOINT"],
            index=env["INDEX_NAME"],
            region=env["AWS_REGION"],
            id_attributes=tuple(names),
            service=service,
            versioning=env.get("VERSIONING") or ("none" if service == "aoss" else "external"),
        )

    def client(self, **overrides: Any) -> OpenSearchBulkClient:
        """An :class:`OpenSearchBulkClient` for this configuration."""
        options: dict[str, Any] = {
            "timeout_seconds": self.timeout_seconds,
            "max_attempts": self.max_attempts,
            "backoff_seconds": self.backoff_seconds,
            **overrides,
        }
        return OpenSearchBulkClient(
            self.endpoint, self.index, self.region, self.service, **options
        )


# --- the indexer ---------------------------------------------------------------------------


class SearchIndexer:
    """Index or delete the documents of a stream event's records, in one ``_bulk`` request.

    Parameters
    ----------
    config : IndexerConfig
    client : OpenSearchBulkClient, optional
        Default: ``config.client()``, which signs with botocore's default credentials.
    logger : logging.Logger, optional
        Default: the ``ddb_stream_runtime.indexer`` logger.

    Examples
    --------
    >>> class FakeClient:
    ...     def bulk(self, body):
    ...         self.lines = body.decode().splitlines()
    ...         return {"took": 1, "errors": False, "items": [{"index": {"status": 201}}]}
    >>> client = FakeClient()
    >>> indexer = SearchIndexer(
    ...     IndexerConfig("https://search.example", "tasks", "us-east-1", ("Id",)), client=client)
    >>> indexer.index_batch({"Records": [{"eventName": "INSERT", "dynamodb": {
    ...     "Keys": {"Id": {"N": "101"}}, "SequenceNumber": "111",
    ...     "NewImage": {"Id": {"N": "101"}, "Message": {"S": "New item!"}}}}]})
    {'batchItemFailures': []}
    >>> client.lines
    ['{"index":{"_id":"101","version":111,"version_type":"external_gte"}}', \
'{"Id":101,"Message":"New item!"}']
    """

    def __init__(
        self,
        config: IndexerConfig,
        *,
        client: Any = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._client = client
        self._log = logger or _LOGGER

    def index_batch(self, event: dict[str, Any]) -> PartialBatchResponse:
        """Send every record of ``event``; report the earliest one not applied.

        Parameters
        ----------
        event : dict
            A DynamoDB stream event (``NEW_IMAGE`` or ``NEW_AND_OLD_IMAGES``).

        Returns
        -------
        PartialBatchResponse
            No failures, or exactly one: the earliest record whose action failed
            (or the first record, when the request as a whole failed).

        Raises
        ------
        TypeError
            If ``event`` is not a stream event.
        """
        batch = read_batch(event)
        records = batch.entries
        lines, planned, failure = self._plan(records)
        failed: list[int] = []
        if planned:
            if self._client is None:
                self._client = self.config.client()
            try:
                response = self._client.bulk(b"".join(lines))
            except Exception as exc:  # BulkRequestError, or signing failed: nothing escapes
                first = planned[0]
                failure = _Failure(
                    0, first[1], first[2], f"bulk request failed: {type(exc).__name__}: {exc}"
                )
            else:
                failed = self._failed_items(planned, response)
                if failed and (failure is None or failed[0].index < failure.index):
                    failure = failed[0]
        self._log.debug(
            "indexer: %d records, %d actions sent, %d failed",
            len(records),
            len(planned),
            len(failed) or (0 if failure is None else 1),
        )
        if failure is None and not batch.rejected:
            return {"batchItemFailures": []}
        if failure is not None:
            self._report(failure, len(records))
        if batch.stops_at_failure():
            # Shards: the earliest failure (Lambda re-sends what follows); FIFO: it and the rest.
            return {
                "batchItemFailures": batch.failures(
                    undone_from=None if failure is None else failure.index
                )
            }
        # Standard queue: each failed item, and every record the plan did not reach.
        unplanned = None if len(planned) == len(records) else len(planned)
        whole = failure is not None and failure.reason.startswith(("bulk request failed", "bulk "))
        return {
            "batchItemFailures": batch.failures(
                [f.index for f in failed], undone_from=0 if whole else unplanned
            )
        }

    def _plan(
        self, records: list[Entry]
    ) -> tuple[list[bytes], list[tuple[str, str, Any]], _Failure | None]:
        """NDJSON lines and (action, identifier, event id) per record; stop at a bad one."""
        config = self.config
        versioned = config.versioning == "external"
        lines: list[bytes] = []
        planned: list[tuple[str, str, Any]] = []
        for index, entry in enumerate(records):
            try:
                record = entry.get()
                new_image = record.raw_new_image
                doc_id = document_id(
                    config.id_attributes, record.raw_keys, new_image, record.raw_old_image
                )
                version = record_version(record) if versioned else None
                if record.event_name == "REMOVE":
                    action = "delete"
                    lines.append(f"{_action_line(action, doc_id, version)}\n".encode())
                else:
                    if not isinstance(new_image, dict):
                        raise ValueError(
                            f"{record.event_name} record has no NewImage: the indexer needs a "
                            "NEW_IMAGE or NEW_AND_OLD_IMAGES stream"
                        )
                    action = "index"
                    source = _encode(image_to_document(new_image))
                    head = _action_line(action, doc_id, version)
                    lines.append(f"{head}\n{source}\n".encode())
            except Exception as exc:  # one bad record stops the plan, never the invocation
                failure = _Failure(
                    index, entry.identifier, entry.event_id, f"{type(exc).__name__}: {exc}"
                )
                return lines, planned, failure
            planned.append((action, entry.identifier, record.event_id))
        return lines, planned, None

    def _failed_items(
        self, planned: list[tuple[str, str, Any]], response: BulkResponse
    ) -> list[_Failure]:
        """Every action the bulk response says failed, in order (all, if it cannot be read)."""
        items = response.get("items") or []
        if len(items) != len(planned):
            reason = f"bulk response has {len(items)} items for {len(planned)} actions"
            return [_Failure(i, p[1], p[2], reason) for i, p in enumerate(planned)]
        failures: list[_Failure] = []
        for index, ((action, sequence_number, event_id), item) in enumerate(
            zip(planned, items, strict=True)
        ):
            result = item.get(action) if isinstance(item, dict) else None
            if isinstance(result, dict) and item_succeeded(result, action):
                continue
            result = result if isinstance(result, dict) else {}
            error = result.get("error")
            kind = error.get("type") if isinstance(error, dict) else error
            # The type, not the reason: a reason can quote the item's data.
            if isinstance(error, dict):
                self._log.debug("indexer: %s failed: %s", sequence_number, error.get("reason"))
            failures.append(
                _Failure(
                    index,
                    sequence_number,
                    event_id,
                    f"{action} failed with status {result.get('status')} ({kind})",
                )
            )
        return failures

    def _report(self, failure: _Failure, total: int) -> BatchItemFailure:
        self._log.error(
            "indexer: record %s (event id %s) was not applied: %s; stopping so "
            "Lambda re-sends it and the %d records after it (versions make that idempotent); "
            "the %d records before it are applied",
            failure.sequence_number or "<no SequenceNumber: failing the whole batch>",
            failure.event_id,
            failure.reason,
            total - failure.index - 1,
            failure.index,
            extra={
                "sequence_number": failure.sequence_number or None,
                "event_id": failure.event_id,
                "records_applied_before": failure.index,
            },
        )
        return {"itemIdentifier": failure.sequence_number}


@functools.lru_cache(maxsize=1)
def _default_indexer() -> SearchIndexer:
    # Read once per execution environment; a configuration error surfaces on every call.
    return SearchIndexer(IndexerConfig.from_env())


def handler(event: dict[str, Any], context: Any) -> PartialBatchResponse:
    """The indexer Lambda's entry point (``ddb_stream_runtime.indexer.handler``).

    Configured by environment variables, see the module docstring.
    """
    return _default_indexer().index_batch(event)

