"""Locate the shipped Lambda runtime (``ddb_stream_runtime``) and package it as assets.

The runtime lives in ``lambda_src/ddb_stream_runtime`` in the repo and as a top-level
package in the wheel. It is found through the import system, so the same code works
from a wheel, an editable install and a plain checkout (pytest's ``pythonpath``).

Assets are staged into a temporary directory (the package copied, caches excluded)
because neither layout is usable as-is: a layer needs a ``python/`` prefix, and a wheel
install would otherwise make all of site-packages the asset. Docker bundling is not an
option (no Docker daemon is required to synth this library).

Bytecode for the default runtime (python3.14) ships with the sources: ``/var/task`` is
read-only, so without it Lambda compiles every module of the runtime on every cold start.
The package holds ``_bytecode/<module>.cpython-314.pyc``, built by
``scripts/pyc314/pyc314.mjs`` in PEP 552's checked-hash mode (no timestamp: the same
sources give the same bytes, so the asset hash stays stable). Staging puts each one in
``__pycache__/`` next to its source, and only if it was built from that very source
(the hash in its header), so a stale file never ships; on another Python version the
interpreter ignores them.
"""

from __future__ import annotations

import _imp
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
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "_bytecode")
# Prebuilt bytecode: (cache tag, magic number) of the CPython it was built for.
_BYTECODE = "_bytecode"
_PREBUILT = (("cpython-314", bytes.fromhex("2b0e0d0a")),)
_CHECKED_HASH = 0b11  # PEP 552 flags: hash-based, check the source


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
    package = root / prefix / RUNTIME_PACKAGE
    shutil.copytree(runtime_package_dir(), package, ignore=_IGNORE)
    for source, pyc in fresh_bytecode(runtime_package_dir()):
        cache = package / source.parent.relative_to(runtime_package_dir()) / "__pycache__"
        cache.mkdir(exist_ok=True)
        shutil.copyfile(pyc, cache / pyc.name)
    return str(root)


def fresh_bytecode(package: Path) -> list[tuple[Path, Path]]:
    """``(source, pyc)`` for each prebuilt ``_bytecode/*.pyc`` built from that very source.

    A file is fresh when its header has the magic number of its CPython version, the
    checked-hash flags and the hash of the current source (the interpreter's own check,
    computed with the target version's key). Anything else is left out.
    """
    pairs = []
    for tag, magic in _PREBUILT:
        key = int.from_bytes(magic, "little")
        for pyc in sorted((package / _BYTECODE).glob(f"*.{tag}.pyc")):
            source = package / (pyc.name.removesuffix(f".{tag}.pyc") + ".py")
            if not source.is_file():
                continue
            header = pyc.read_bytes()[:16]
            if (
                header[:4] == magic
                and int.from_bytes(header[4:8], "little") == _CHECKED_HASH
                and header[8:16] == _imp.source_hash(key, source.read_bytes())
            ):
                pairs.append((source, pyc))
    return pairs


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
