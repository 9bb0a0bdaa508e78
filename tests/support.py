"""Helpers shared by the test packages."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Snapshots mask asset hashes (a runtime edit would churn every one of them) with the
# helper the library ships; dedicated tests assert what matters about assets.
from ddb_stream_patterns.testing import mask_assets  # noqa: E402,F401
