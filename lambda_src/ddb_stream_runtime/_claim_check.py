"""The claim check: how the router and the processors agree on oversized records.

A record too big for SNS is put in S3 by the router (``ddb_stream_runtime.router``)
and replaced by a pointer, which the processor side (``ddb_stream_runtime.processor``)
recognizes by :data:`CLAIM_CHECK_FIELD` and follows. Kept apart from both so that
neither handler imports the other (cold start).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._types import ClaimCheckLocation, ClaimCheckPointer

__all__ = ["CLAIM_CHECK_FIELD", "CLAIM_CHECK_PREFIX", "ClaimCheckLocation", "ClaimCheckPointer"]

#: The top-level field that marks a claim-check body.
CLAIM_CHECK_FIELD = "claimCheck"
#: Key prefix of claim-checked records; the construct grants S3 access to it alone.
CLAIM_CHECK_PREFIX = "claim-check/"


def __getattr__(name: str) -> object:
    # The TypedDicts live in _types: typing is not imported on a pure handler's cold start.
    # Any other name (``__path__`` too: the import system asks) is missing, as before.
    if name not in ("ClaimCheckLocation", "ClaimCheckPointer"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _types

    return getattr(_types, name)
