"""Cold start, counted rather than timed: what importing each Lambda entry point loads.

``benchmarks/bench_cold_start.py`` times it; these counts catch what makes it slow (a
module-level ``import typing`` or ``import logging`` on a pure handler's path, one more
of our modules compiled on every cold start, a stdlib module the SDK does not load
anyway) on any machine, without timing anything. Each import runs in a fresh
interpreter, and only the modules it adds are counted (not what the interpreter loaded
at startup).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ddb_stream_runtime

LAMBDA_SRC = Path(ddb_stream_runtime.__file__).resolve().parents[1]
PACKAGE = "ddb_stream_runtime"

# Standard-library modules a pure handler's import must not load: each costs
# 0.5-7 ms on every cold start (typing with re and enum ~7 ms, logging ~5 ms, hashlib
# with OpenSSL ~2.5 ms) and none is needed before a rare path (an error to log, a
# binary value, a Kinesis or SQS body, a content hash, a claim check).
HEAVY = (
    "typing",
    "logging",
    "traceback",
    "threading",
    "re",
    "enum",
    "functools",
    "contextlib",
    "inspect",
    "dataclasses",
    "importlib",
    "json",
    "hashlib",
    "datetime",
    "base64",
    "binascii",
    "struct",
    "string",
    "weakref",
    "warnings",
    "pathlib",
    "zipfile",
    "tempfile",
    "shutil",
    "fnmatch",
)

# Each pure handler: the most of our own modules its import may compile (the package,
# the handler, batch, intake, records, deserialize, _aws, _claim_check, _lazy).
PURE = {"batch": 8, "processor": 9}

# Handlers that call AWS: the SDK import they need anyway (the benchmark's reference),
# and the most of our own modules their import may compile.
BOTO3 = "import boto3"
SIGV4 = "import botocore.session, botocore.auth, botocore.awsrequest"
AWS = {
    "router": (BOTO3, 10),  # + router, _types (its re-exported claim-check TypedDicts)
    "archiver": (BOTO3, 9),
    "counter": (BOTO3, 9),
    "replicator": (BOTO3, 9),
    "indexer": (SIGV4, 10),  # + _sigv4
}


def loaded_by(code: str) -> set[str]:
    """The modules that running ``code`` adds to a fresh interpreter's ``sys.modules``."""
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"{code}\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(LAMBDA_SRC)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True
    )
    modules = set(ast.literal_eval(out.stdout))
    assert modules, f"{code!r} loaded nothing: the probe is broken"
    return modules


def own(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] == PACKAGE}


@pytest.mark.parametrize("handler", sorted(PURE))
def test_pure_handler_import_loads_no_heavy_stdlib_module(handler: str) -> None:
    module = f"{PACKAGE}.{handler}"
    loaded = loaded_by(f"import {module}")
    assert module in loaded  # the import happened
    assert sorted(loaded & set(HEAVY)) == []
    assert len(own(loaded)) <= PURE[handler], sorted(own(loaded))


@pytest.mark.parametrize("handler", sorted(AWS))
def test_aws_handler_import_adds_no_stdlib_module_its_sdk_does_not_load(handler: str) -> None:
    sdk, most = AWS[handler]
    module = f"{PACKAGE}.{handler}"
    loaded = loaded_by(f"import {module}")
    reference = loaded_by(sdk)
    assert module in loaded and "botocore" in reference  # both imports happened
    assert not any(m.split(".")[0] in {"boto3", "botocore"} for m in loaded)  # boto3 is lazy
    # ``__future__``: ``from __future__ import annotations`` in our modules (~0.2 ms).
    extra = loaded - own(loaded) - reference - {"__future__"}
    assert sorted(extra) == []
    assert len(own(loaded)) <= most, sorted(own(loaded))


def test_pure_handler_still_logs_a_failed_record(tmp_path: Path) -> None:
    # logging is imported on the first ERROR, not at import: a failure still reaches the log.
    code = (
        "import sys\n"
        "from ddb_stream_runtime.batch import process_stream_batch\n"
        "assert 'logging' not in sys.modules\n"
        "def fail(record):\n"
        "    raise RuntimeError('boom')\n"
        "event = {'Records': [{'eventName': 'INSERT', 'dynamodb': {'SequenceNumber': '1'}}]}\n"
        "print(process_stream_batch(event, fail))\n"
        "print('logging' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(LAMBDA_SRC)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert out.stdout.splitlines() == ["{'batchItemFailures': [{'itemIdentifier': '1'}]}", "True"]
    assert "stream record 1 failed" in out.stderr and "RuntimeError: boom" in out.stderr


def test_pure_handler_skips_the_debug_summary_without_importing_logging() -> None:
    code = (
        "import sys\n"
        "from ddb_stream_runtime.batch import process_stream_batch\n"
        "event = {'Records': [{'eventName': 'INSERT', 'dynamodb': {'SequenceNumber': '1'}}]}\n"
        "print(process_stream_batch(event, lambda record: None))\n"
        "print('logging' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(LAMBDA_SRC)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert out.stdout.splitlines() == ["{'batchItemFailures': []}", "False"]


def test_debug_summary_is_logged_once_logging_is_configured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ddb_stream_runtime.batch import process_stream_batch

    event = {"Records": [{"eventName": "INSERT", "dynamodb": {"SequenceNumber": "1"}}]}
    with caplog.at_level("DEBUG", logger="ddb_stream_runtime.batch"):
        assert process_stream_batch(event, lambda record: None) == {"batchItemFailures": []}
    assert [r.getMessage() for r in caplog.records] == [
        "stream batch: 1 of 1 records processed, 0 failed"
    ]
    assert caplog.records[0].name == "ddb_stream_runtime.batch"


def test_prebuilt_python314_bytecode_is_fresh_for_every_module() -> None:
    # The assets ship lambda_src/ddb_stream_runtime/_bytecode/*.cpython-314.pyc (see
    # ddb_stream_patterns.runtime_assets), built by scripts/bootstrap (build output, not in
    # git): only files built from the current sources ship, so after editing the runtime,
    # rebuild them or the cold start compiles that module.
    from ddb_stream_patterns import runtime_assets

    package = LAMBDA_SRC / PACKAGE
    sources = {p.name for p in package.glob("*.py")}
    fresh = {source.name for source, _ in runtime_assets.fresh_bytecode(package)}
    assert sources - fresh == set(), (
        "stale or missing python3.14 bytecode; rebuild it with ./scripts/bootstrap (or: npm ci"
        " --prefix scripts/pyc314 && node scripts/pyc314/pyc314.mjs build"
        " lambda_src/ddb_stream_runtime/_bytecode)"
    )
    built = {p.name.removesuffix(".cpython-314.pyc") + ".py" for p in package.glob("_bytecode/*")}
    assert built == sources  # nothing left over from a removed module
