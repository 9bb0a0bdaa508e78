"""The claim check: how the router and the processors agree on oversized records.

A record too big for SNS is put in S3 by the router (``ddb_stream_runtime.router``)
and replaced by a pointer, which the processor side (``ddb_stream_runtime.processor``)
recognizes by :data:`CLAIM_CHECK_FIELD` and follows. Kept apart from both so that
neither handler imports the other (cold start).
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["CLAIM_CHECK_FIELD", "CLAIM_CHECK_PREFIX", "ClaimCheckLocation", "ClaimCheckPointer"]

#: The top-level field that marks a claim-check body.
CLAIM_CHECK_FIELD = "claimCheck"
#: Key prefix of claim-checked records; the construct grants S3 access to it alone.
CLAIM_CHECK_PREFIX = "claim-check/"


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
