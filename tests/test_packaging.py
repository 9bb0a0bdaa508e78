"""The wheel ships both import packages, the runtime included, and no caches."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

from tests.support import REPO


def test_wheel_contains_constructs_and_runtime(tmp_path):
    import ddb_stream_runtime  # noqa: F401  (leaves __pycache__ in lambda_src to be excluded)

    wheel = Path(next(WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"])))
    names = set(zipfile.ZipFile(wheel).namelist())
    runtime = {
        f"ddb_stream_runtime/{p.relative_to(REPO / 'lambda_src' / 'ddb_stream_runtime')}"
        for p in (REPO / "lambda_src" / "ddb_stream_runtime").rglob("*.py")
    }
    constructs = {
        f"ddb_stream_patterns/{p.name}"
        for p in (REPO / "constructs" / "ddb_stream_patterns").glob("*.py")
    }
    assert runtime and runtime <= names
    assert constructs and constructs <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("constructs/", "tests/", "examples/"))]
