"""Locate the shipped Lambda runtime (``ddb_stream_runtime``) and package it as assets.

The runtime lives in ``lambda_src/ddb_stream_runtime`` in the repo and as a top-level
package in the wheel. It is found through the import system, so the same code works
from a wheel, an editable install and a plain checkout (pytest's ``pythonpath``).

Assets are staged into a temporary directory (the package copied, caches excluded)
because neither layout is usable as-is: a layer needs a ``python/`` prefix, and a wheel
install would otherwise make all of site-packages the asset. Docker bundling is not an
option (no Docker daemon is required to synth this library).
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import tempfile
from functools import cache
from pathlib import Path

import aws_cdk.aws_lambda as lambda_
from constructs import Construct

from . import _validation as v

__all__ = [
    "RUNTIME_PACKAGE",
    "COMPATIBLE_RUNTIMES",
    "runtime_package_dir",
    "runtime_code",
    "StreamRuntimeLayer",
]

RUNTIME_PACKAGE = "ddb_stream_runtime"
COMPATIBLE_RUNTIMES = [
    lambda_.Runtime.PYTHON_3_11,
    lambda_.Runtime.PYTHON_3_12,
    lambda_.Runtime.PYTHON_3_13,
    lambda_.Runtime.PYTHON_3_14,
]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


@cache
def runtime_package_dir() -> Path:
    """Directory of the ``ddb_stream_runtime`` package (wheel, editable install or checkout)."""
    spec = importlib.util.find_spec(RUNTIME_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    checkout = Path(__file__).resolve().parents[2] / "lambda_src" / RUNTIME_PACKAGE
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"cannot find the {RUNTIME_PACKAGE} package: install cdk-ddb-stream-patterns "
        "or run from a checkout that has lambda_src/"
    )


@cache
def _staged(prefix: str) -> str:
    """Copy the runtime package under ``<tmp>/<prefix>`` once per process; return the asset root."""
    root = Path(tempfile.mkdtemp(prefix="ddb-stream-runtime-"))
    # CDK copies assets into the cloud assembly at synth, so the stage can go at exit.
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    shutil.copytree(runtime_package_dir(), root / prefix / RUNTIME_PACKAGE, ignore=_IGNORE)
    return str(root)


def runtime_code() -> lambda_.Code:
    """Lambda code with the runtime package at its root (handlers ``ddb_stream_runtime.*``)."""
    return lambda_.Code.from_asset(_staged(""))


class StreamRuntimeLayer(lambda_.LayerVersion):
    """A Lambda layer that makes ``import ddb_stream_runtime`` work in the user's own functions.

    ``SimpleController`` adds it to the functions it builds; add it yourself to a function
    you bring (``fn.add_layers(StreamRuntimeLayer(self, "Runtime"))``).

    Parameters
    ----------
    scope, id
        Construct scope and id.
    description
        Layer description. Default: a fixed description of the runtime.
    """

    def __init__(self, scope: Construct, id: str, *, description: str | None = None) -> None:
        v.check_type("StreamRuntimeLayer", "description", description, str)
        super().__init__(
            scope,
            id,
            code=lambda_.Code.from_asset(_staged("python")),
            compatible_runtimes=COMPATIBLE_RUNTIMES,
            description=description
            or "ddb-stream-patterns runtime: stream record model and batch processor",
        )
