"""Synth-time validation helpers shared by every construct.

Errors follow aws-cdk-lib's style: lowercase, naming the prop and showing the bad
value. Unresolved tokens are skipped: their value is only known at deploy time.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk

__all__ = ["check_range", "check_exclusive", "check_duration_range", "is_token"]


def is_token(value: Any) -> bool:
    """Whether ``value`` is a CDK token (unknown until deploy), which we must not validate."""
    return value is not None and cdk.Token.is_unresolved(value)


def check_range(prop: str, value: int | float | None, low: int | float, high: int | float) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high`` (``None`` and tokens pass)."""
    if value is None or is_token(value):
        return
    if not low <= value <= high:
        raise ValueError(f"{prop} must be between {low} and {high}, got {value!r}")


def check_duration_range(
    prop: str, value: cdk.Duration | None, low_s: int, high_s: int
) -> None:
    """Like :func:`check_range` for a ``Duration``, compared in whole seconds."""
    if value is None or is_token(value.to_string()):
        return
    seconds = value.to_seconds()
    if not low_s <= seconds <= high_s:
        raise ValueError(
            f"{prop} must be between {low_s} and {high_s} seconds, got {seconds} seconds"
        )


def check_exclusive(**props: Any) -> None:
    """Raise unless exactly one of ``props`` is set (the "existing resource or props" pairs)."""
    given = [name for name, value in props.items() if value is not None]
    names = " or ".join(props)
    if len(given) > 1:
        raise ValueError(f"give either {names}, not both (got {', '.join(given)})")
    if not given:
        raise ValueError(f"one of {names} is required")
