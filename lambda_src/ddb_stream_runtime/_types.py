"""The typing-only names of the pure handlers' modules, built when first asked for.

``typing`` costs the pure handlers (``batch``, ``processor``) ~3 ms of cold start with
what it imports (``re``, ``enum``, ``collections``), and nothing on their path needs it
to run: these names are annotations, for type checkers and for users' code. Their home
modules (``batch``, ``records``, ``intake``, ``_claim_check``) import them from here for
type checkers and forward a runtime lookup (``from ddb_stream_runtime.batch import
PartialBatchResponse``) here through a module ``__getattr__`` (PEP 562). Each keeps its
home module's name in ``__module__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypedDict

from .records import StreamRecord

# --- ddb_stream_runtime.records -------------------------------------------------------------

EventName = Literal["INSERT", "MODIFY", "REMOVE"]

# --- ddb_stream_runtime.intake --------------------------------------------------------------

Source = Literal["aws:dynamodb", "aws:sqs", "aws:kinesis"]

# --- ddb_stream_runtime._claim_check --------------------------------------------------------


class ClaimCheckLocation(TypedDict):
    """Where the full stream record of an oversized message was put."""

    bucket: str
    key: str


class ClaimCheckPointer(TypedDict):
    """The SNS body sent instead of a record larger than SNS's message limit."""

    claimCheck: ClaimCheckLocation
    eventName: str
    keys: dict[str, Any]
    sequenceNumber: str


# --- ddb_stream_runtime.batch ---------------------------------------------------------------


class BatchItemFailure(TypedDict):
    """One failed record: its ``dynamodb.SequenceNumber`` (stream), ``messageId`` (SQS) or
    Kinesis ``sequenceNumber``."""

    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    """What a stream Lambda with ``ReportBatchItemFailures`` returns."""

    batchItemFailures: list[BatchItemFailure]


RecordHandler = Callable[[StreamRecord], object]
LambdaHandler = Callable[[dict[str, Any], Any], PartialBatchResponse]

#: Home module of each name (what ``__module__`` says, where the docs list it).
HOMES = {
    "EventName": "records",
    "Source": "intake",
    "ClaimCheckLocation": "_claim_check",
    "ClaimCheckPointer": "_claim_check",
    "BatchItemFailure": "batch",
    "PartialBatchResponse": "batch",
    "RecordHandler": "batch",
    "LambdaHandler": "batch",
}

for _class in (ClaimCheckLocation, ClaimCheckPointer, BatchItemFailure, PartialBatchResponse):
    _class.__module__ = f"{__package__}.{HOMES[_class.__name__]}"

