"""The runtime package: public API, cold-start hygiene, runnable docstring examples."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ddb_stream_runtime
import ddb_stream_runtime.batch
import ddb_stream_runtime.deserialize
import ddb_stream_runtime.records

LAMBDA_SRC = Path(ddb_stream_runtime.__file__).resolve().parents[1]
PUBLIC = {
    "Router",
    "RouterConfig",
    "process_sqs_batch",
    "sqs_record_handler",
    "BatchItemFailure",
    "DeserializationError",
    "EventName",
    "LambdaHandler",
    "MalformedRecordError",
    "PartialBatchResponse",
    "RecordHandler",
    "StreamRecord",
    "deserialize_image",
    "deserialize_value",
    "process_stream_batch",
    "read_batch",
    "stream_handler",
}


def test_public_api() -> None:
    assert set(ddb_stream_runtime.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(ddb_stream_runtime, name) is not None


def test_import_loads_neither_boto3_nor_cdk() -> None:
    # A fresh interpreter: this test process may well have imported boto3 already.
    code = (
        "import json, sys, ddb_stream_runtime; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'boto3', 'botocore', 'aws_cdk', 'jsii', 'constructs'})))"
    )
    env = {**os.environ, "PYTHONPATH": str(LAMBDA_SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize(
    "module",
    [
        ddb_stream_runtime,
        ddb_stream_runtime.deserialize,
        ddb_stream_runtime.records,
        ddb_stream_runtime.batch,
    ],
)
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0
    assert module is ddb_stream_runtime or result.attempted > 0


# Lambda entry points (``ddb_stream_runtime.<module>.handler``) and the SQS processor side:
# none may import another, or its cold start pays for code it never runs. ``batch`` is the
# shared base every one of them builds on (like ``records`` and ``deserialize``): it may be
# imported by them, and must itself import none of them.
HANDLER_MODULES = ("router", "processor", "archiver", "counter", "indexer", "replicator")


def test_no_handler_imports_another_handler() -> None:
    # One fresh interpreter; before each import every ddb_stream_runtime module is dropped
    # from sys.modules, so each handler is imported as a cold start would import it.
    code = (
        "import importlib, json, sys\n"
        f"handlers = {HANDLER_MODULES!r}\n"
        "loaded = {}\n"
        "for module in (*handlers, 'batch'):\n"
        "    for name in [m for m in sys.modules if m.split('.')[0] == 'ddb_stream_runtime']:\n"
        "        del sys.modules[name]\n"
        "    importlib.import_module('ddb_stream_runtime.' + module)\n"
        "    loaded[module] = sorted(h for h in handlers\n"
        "                            if 'ddb_stream_runtime.' + h in sys.modules)\n"
        "print(json.dumps(loaded))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(LAMBDA_SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    loaded = json.loads(out.stdout)
    assert set(loaded) == {*HANDLER_MODULES, "batch"}  # every module was imported
    assert loaded == {
        **{module: [module] for module in HANDLER_MODULES},
        "batch": [],
    }


def test_shared_client_image_docstring_example_runs() -> None:
    import ddb_stream_runtime._aws

    result = doctest.testmod(ddb_stream_runtime._aws, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
