"""The wheel ships both import packages, the runtime included, and no caches."""

from __future__ import annotations

import json
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
    # No interpreter cache; the prebuilt python3.14 bytecode (deterministic) ships.
    assert not [n for n in names if "__pycache__" in n]
    bytecode = {n for n in names if n.endswith(".pyc")}
    assert bytecode == {
        f"ddb_stream_runtime/_bytecode/{p.stem}.cpython-314.pyc"
        for p in (REPO / "lambda_src" / "ddb_stream_runtime").glob("*.py")
    }
    assert not [n for n in names if n.startswith(("constructs/", "tests/", "examples/"))]


def test_wheel_ships_py_typed_markers(tmp_path):
    wheel = Path(next(WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"])))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"ddb_stream_patterns/py.typed", "ddb_stream_runtime/py.typed",
            "ddb_stream_patterns/testing.py"} <= names


# A user's snapshot test, written from the README alone, run from outside the repo.
USER_TEST = '''
import json
from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_

import ddb_stream_patterns
from ddb_stream_patterns import Rule, SimpleController, StreamFilter, StreamTable
from ddb_stream_patterns.testing import resources_of, snapshot_template

HANDLERS = Path(__file__).parent / "handlers" / "shipped"


def test_orders():
    stack = cdk.Stack(cdk.App(), "Orders")
    table = StreamTable(stack, "Orders", partition_key=dynamodb.Attribute(
        name="orderId", type=dynamodb.AttributeType.STRING))
    notifier = SimpleController(
        stack, "Notifier", table=table, code=lambda_.Code.from_asset(str(HANDLERS)),
        handler="app.handler",
        filters=[StreamFilter(new_image={"status": Rule.equals("shipped")})])
    template = snapshot_template(stack)
    [mapping] = resources_of(stack, notifier, "AWS::Lambda::EventSourceMapping", template)
    assert mapping["Properties"]["BatchSize"] == 100
    Path("out.json").write_text(json.dumps(
        {"template": template, "library": ddb_stream_patterns.__file__}, sort_keys=True))
'''


def test_built_wheel_works_in_a_fresh_virtualenv_from_outside_the_repo(tmp_path):
    """Install the wheel (no deps, offline) into a new venv without the system site-packages;
    its dependencies (aws-cdk-lib, pytest...) come from the shared venv through a .pth line
    (appended after the venv's own site-packages, so the wheel wins over any editable
    install there). Runs a user's snapshot test from two directories outside the repo."""
    import os
    import subprocess
    import sys
    import sysconfig

    wheel = Path(next(WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"])))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (site / "shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    assert (site / "ddb_stream_patterns" / "py.typed").is_file()

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    outputs = []
    for name in ("first", "second"):
        project = tmp_path / name
        (project / "handlers" / "shipped").mkdir(parents=True)
        (project / "handlers" / "shipped" / "app.py").write_text(
            f"def handler(event, context):\n    return {name!r}\n")
        (project / "test_orders.py").write_text(USER_TEST)
        result = subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_orders.py"],
            cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(json.loads((project / "out.json").read_text()))
    first, second = outputs
    assert first["library"].startswith(str(site))  # the wheel, not the repo
    assert "<asset-hash>" in json.dumps(first["template"])
    assert first["template"] == second["template"]  # other code, other directory: same
