"""What every handler that calls AWS shares: lazy clients and retry settings.

Kept apart from the handlers so that importing one handler never imports another
(cold start), and so the rules are written once.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["aws_client", "check_retry_settings"]


@functools.cache
def aws_client(service: str) -> Any:
    """A boto3 client, created once per service and process.

    boto3 is imported here, not at module level: it costs ~150-230 ms of cold start,
    and functions that never need a client (or get one injected) never pay it.
    """
    import boto3

    return boto3.client(service)


def check_retry_settings(max_attempts: object, backoff_seconds: float) -> None:
    """Validate a handler config's retry settings (``ValueError`` naming the bad one)."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise ValueError(f"max_attempts must be an integer, got {max_attempts!r}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if backoff_seconds < 0:
        raise ValueError(f"backoff_seconds must be >= 0, got {backoff_seconds}")
