"""Helpers shared by the test packages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Asset hashes depend on file contents: a runtime edit would churn every snapshot,
# so snapshots mask them and dedicated tests assert what matters about assets.
_ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def mask_assets(value: Any) -> Any:
    """Replace every 64-hex asset hash inside a template with a fixed marker."""
    if isinstance(value, dict):
        return {k: mask_assets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_assets(v) for v in value]
    if isinstance(value, str):
        return _ASSET_HASH.sub("<asset-hash>", value)
    return value
