"""The wheel ships both import packages, the runtime included, and no caches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
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


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The built wheel installed (no deps, offline) into a new venv without the system
    site-packages: ``(its python, its site-packages)``. Its dependencies (aws-cdk-lib,
    pytest, moto...) come from the shared venv through a .pth line (appended after the
    venv's own site-packages, so the wheel wins over any editable install there)."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = Path(next(WheelBuilder(str(REPO)).build(directory=str(tmp), versions=["standard"])))
    return install_wheel(wheel, tmp / "venv")


def install_wheel(wheel: Path, venv: Path) -> tuple[Path, Path]:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (site / "shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


def user_env() -> dict[str, str]:
    """The environment a user's shell would have: nothing pointing at this repo."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def test_built_wheel_works_in_a_fresh_virtualenv_from_outside_the_repo(wheel_python, tmp_path):
    """Runs a user's snapshot test from two directories outside the repo."""
    python, site = wheel_python
    assert (site / "ddb_stream_patterns" / "py.typed").is_file()

    outputs = []
    for name in ("first", "second"):
        project = tmp_path / name
        (project / "handlers" / "shipped").mkdir(parents=True)
        (project / "handlers" / "shipped" / "app.py").write_text(
            f"def handler(event, context):\n    return {name!r}\n")
        (project / "test_orders.py").write_text(USER_TEST)
        result = subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_orders.py"],
            cwd=project, env=user_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(json.loads((project / "out.json").read_text()))
    first, second = outputs
    assert first["library"].startswith(str(site))  # the wheel, not the repo
    assert "<asset-hash>" in json.dumps(first["template"])
    assert first["template"] == second["template"]  # other code, other directory: same


# A user's project, written from the README alone: an app file, a handler, a conftest and
# an end-to-end test on the local cloud (README: "Use it in your stack", "Testing your
# stacks"). Only the wheel's modules and the README's calls.
USER_APP = '''
from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_

from ddb_stream_patterns import Rule, SimpleController, StreamFilter, StreamTable

# relative to this file, not to the directory `cdk synth` runs in
HANDLERS = Path(__file__).parent / "handlers"


class OrdersStack(cdk.Stack):
    def __init__(self, scope, id, **kwargs):
        super().__init__(scope, id, **kwargs)
        table = StreamTable(self, "Orders",
            partition_key=dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiresAt")
        self.notifier = SimpleController(self, "ShippedNotifier",
            table=table,
            code=lambda_.Code.from_asset(str(HANDLERS / "shipped")),
            handler="index.handler",
            filters=[StreamFilter(event_names=["MODIFY"],
                                  new_image={"status": Rule.equals("shipped")})])


if __name__ == "__main__":
    app = cdk.App()
    OrdersStack(app, "Orders")
    app.synth()
'''

USER_HANDLER = '''
from ddb_stream_runtime import StreamRecord, stream_handler


def on_record(record: StreamRecord) -> None:
    # a record that does not match the filter would fail its batch (and the test)
    assert record.keys == {"orderId": "1"} and record.new_image["status"] == "shipped"
    print(record.keys, record.old_image, record.new_image)


handler = stream_handler(on_record)
'''

USER_CONFTEST = '''
pytest_plugins = ["ddb_stream_patterns.local.pytest_plugin"]
'''

USER_E2E_TEST = '''
import json
from pathlib import Path

import aws_cdk as cdk

import ddb_stream_patterns
import ddb_stream_runtime
from ddb_stream_patterns.testing import run_pollers
from orders_app import OrdersStack


def test_orders(local_cloud, deploy_app):
    app = cdk.App()
    stack = OrdersStack(app, "Orders")
    deployment = deploy_app(app)
    table = deployment.by_path("Orders/Orders").physical_id
    ddb = local_cloud.client("dynamodb")
    ddb.put_item(TableName=table, Item={"orderId": {"S": "1"}, "status": {"S": "new"}})
    ddb.put_item(TableName=table, Item={"orderId": {"S": "1"}, "status": {"S": "shipped"}})
    stats = run_pollers(local_cloud, deployment)
    assert deployment.stats_of(stack.notifier).succeeded == 1
    assert all(s.sent_to_failure_destination == 0 for s in stats.values())
    notifier = deployment.stats_of(stack.notifier)
    Path("out.json").write_text(json.dumps({
        "succeeded": notifier.succeeded, "filtered_out": notifier.filtered_out,
        "errors": notifier.errors, "library": ddb_stream_patterns.__file__,
        "runtime": ddb_stream_runtime.__file__,
        "dynamodb": local_cloud.dynamodb_endpoint, "moto": local_cloud.moto_endpoint}))
'''


def write_user_project(project: Path) -> Path:
    (project / "handlers" / "shipped").mkdir(parents=True)
    (project / "handlers" / "shipped" / "index.py").write_text(USER_HANDLER)
    (project / "orders_app.py").write_text(USER_APP)
    (project / "conftest.py").write_text(USER_CONFTEST)
    (project / "test_orders_e2e.py").write_text(USER_E2E_TEST)
    return project


def run_user_e2e(python: Path, project: Path) -> subprocess.CompletedProcess:
    """The user's end-to-end test with the venv's pytest, in the user's directory. DynamoDB
    Local comes from the cache ``scripts/bootstrap`` filled (``DDB_STREAM_PATTERNS_CACHE``,
    else ``~/.cache/ddb-stream-patterns``): npm is told to stay offline, so a missing cache
    fails instead of downloading it again."""
    env = user_env()
    env["npm_config_offline"] = "true"
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    return subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_orders_e2e.py"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_built_wheel_runs_a_users_end_to_end_test_on_the_local_cloud(wheel_python, tmp_path):
    """The README's end-to-end test, on a user's own app file, with the venv's pytest from
    outside the repo: the local cloud starts from the wheel (DynamoDB Local from the
    bootstrap's cache, moto's server on 127.0.0.1), deploys, and the user's function runs."""
    from ddb_stream_patterns.local.servers import DynamoDBLocal

    DynamoDBLocal.install()  # already cached by scripts/bootstrap: no download
    python, site = wheel_python
    project = write_user_project(tmp_path / "orders")
    result = run_user_e2e(python, project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    out = json.loads((project / "out.json").read_text())
    assert out["library"].startswith(str(site))  # the wheel's library and runtime, not the repo's
    assert out["runtime"].startswith(str(site))
    assert (out["succeeded"], out["filtered_out"], out["errors"]) == (1, 1, 0)
    assert out["dynamodb"].startswith("http://127.0.0.1:")
    assert out["moto"].startswith("http://127.0.0.1:")


def _code_lines(text: str) -> set[str]:
    """Non-blank lines of Python code, stripped, without comments."""
    lines = (line.split("  #")[0].strip() for line in text.splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def test_readme_shows_what_the_users_tests_run():
    """The README's app ("Use it in your stack") and end-to-end test ("Testing your
    stacks") are the ones the wheel tests above run: every line of them is in the user's
    files (those files add only the recording of results and the handler's check)."""
    readme = (REPO / "README.md").read_text()
    blocks = [b.split("```")[0] for b in readme.split("```python\n")[1:]]
    app_block = next(b for b in blocks if "class OrdersStack" in b)
    testing = readme.split("## Testing your stacks")[1].split("\n## ")[0]
    e2e_block = next(b for b in (b.split("```")[0] for b in testing.split("```python\n")[1:])
                     if "deploy_app" in b)
    assert "run_pollers" in e2e_block and "stats_of(stack.notifier)" in e2e_block
    assert not _code_lines(app_block) - _code_lines(USER_APP)
    assert not _code_lines(e2e_block) - _code_lines(USER_E2E_TEST + USER_CONFTEST)
