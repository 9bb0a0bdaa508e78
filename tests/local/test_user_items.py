"""Your own items on the local cloud: JSON Lines files per table, or a Python function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from ddb_stream_patterns.local import runner
from ddb_stream_patterns.local.runner import (
    ItemsError,
    UserItem,
    load_items_file,
    load_items_function,
    write_items,
)

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "orders.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# -- reading files -----------------------------------------------------------------


def test_a_file_gives_plain_json_items_in_order_with_their_lines(tmp_path):
    path = _write(tmp_path, """\
        {"orderId": "o-1", "status": "new", "total": 12.50, "tags": ["a"], "gift": false}

        {"orderId": "o-1", "status": "shipped", "note": null}
        """)
    items = load_items_file(path)
    assert [i.origin for i in items] == [f"{path} line 1", f"{path} line 3"]
    assert items[0].item == {"orderId": "o-1", "status": "new", "total": Decimal("12.50"),
                             "tags": ["a"], "gift": False}
    assert isinstance(items[0].item["total"], Decimal)  # exact, never a float


@pytest.mark.parametrize(("line", "problem"), [
    ('{"orderId": "o-1",', "line 2: not valid JSON"),
    ('["o-1"]', "line 2: expected a JSON object (one item per line), got list"),
    ('{"total": NaN}', "line 2: not valid JSON: NaN is not a number"),
    ('{"orderId": {"S": "o-1"}}', "line 2: this looks like DynamoDB JSON"),
])
def test_a_bad_line_names_the_file_the_line_and_the_problem(tmp_path, line, problem):
    path = _write(tmp_path, '{"orderId": "o-0"}\n' + line + "\n")
    with pytest.raises(ItemsError) as raised:
        load_items_file(path)
    assert str(raised.value).startswith(f"{path} {problem}")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ItemsError, match=r"nope\.jsonl: cannot read the items file"):
        load_items_file(tmp_path / "nope.jsonl")


# -- a Python function -------------------------------------------------------------


def test_a_function_gives_items_per_table(tmp_path):
    (tmp_path / "my_items.py").write_text(textwrap.dedent("""\
        def orders():
            return {"MyStack/Orders": [{"orderId": "o-1", "tags": {"a", "b"}}]}

        def wrong():
            return [{"orderId": "o-1"}]

        def not_dicts():
            return {"MyStack/Orders": ["o-1"]}
        """))
    loaded = load_items_function("my_items:orders", tmp_path)
    assert loaded == {"MyStack/Orders": [UserItem({"orderId": "o-1", "tags": {"a", "b"}},
                                                  "my_items:orders()['MyStack/Orders'][0]")]}
    assert str(tmp_path) not in sys.path  # the project directory is not left on sys.path
    with pytest.raises(ItemsError, match=r"my_items:wrong\(\) must return \{table path: "
                                         r"\[items\]\}, got list"):
        load_items_function("my_items:wrong", tmp_path)
    with pytest.raises(ItemsError, match=r"\[0\]: an item must be a dict, got str"):
        load_items_function("my_items:not_dicts", tmp_path)
    with pytest.raises(ItemsError, match="must be module:function, got 'my_items'"):
        load_items_function("my_items", tmp_path)
    with pytest.raises(ItemsError, match="has no attribute 'missing'"):
        load_items_function("my_items:missing", tmp_path)


def test_the_cli_options_combine_and_refuse_a_malformed_option(tmp_path):
    path = _write(tmp_path, '{"orderId": "o-1"}\n')
    loaded = runner._load_items([f"MyStack/Orders={path}"], None, str(tmp_path))
    assert [i.item for i in loaded["MyStack/Orders"]] == [{"orderId": "o-1"}]
    (tmp_path / "more_items.py").write_text(
        "def items():\n    return {'MyStack/Orders': [{'orderId': 'o-2'}]}\n")
    loaded = runner._load_items([f"MyStack/Orders={path}"], "more_items:items", str(tmp_path))
    assert [i.item for i in loaded["MyStack/Orders"]] == [{"orderId": "o-1"}, {"orderId": "o-2"}]
    with pytest.raises(ItemsError, match=r"--items-file must be TABLE=FILE\.jsonl, got 'x\.jsonl'"):
        runner._load_items(["x.jsonl"], None, str(tmp_path))


# -- writing them ------------------------------------------------------------------


@pytest.fixture
def orders_table(local_cloud, unique):
    ddb = local_cloud.client("dynamodb")
    name = unique("orders")
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}])
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "AttributeName": "expiresAt", "Enabled": True})
    return name


def test_write_items_puts_them_in_order_and_counts_modifies(local_cloud, orders_table):
    items = [{"orderId": "o-1", "status": "new", "total": 1.5, "tags": {"a"}},
             {"orderId": "o-2", "status": "new", "expiresAt": 1},
             {"orderId": "o-1", "status": "shipped", "total": 1.5, "tags": {"a"}}]
    writes = write_items(local_cloud, orders_table, items, label="MyStack/Orders")
    assert (writes.inserted, writes.modified, writes.expiring) == (2, 1, 1)
    stored = local_cloud.client("dynamodb").get_item(
        TableName=orders_table, Key={"orderId": {"S": "o-1"}})["Item"]
    assert stored == {"orderId": {"S": "o-1"}, "status": {"S": "shipped"},
                      "total": {"N": "1.5"}, "tags": {"SS": ["a"]}}


@pytest.mark.parametrize(("item", "problem"), [
    ({"id": "o-1"}, "orders.jsonl line 4: no key attribute 'orderId' (the key of "
                    "MyStack/Orders is orderId (S))"),
    ({"orderId": 7}, "orders.jsonl line 4: key attribute 'orderId' must be a string, got 7"),
    ({"orderId": "o-1", "x": object()}, "orders.jsonl line 4: cannot be written to DynamoDB"),
    ({"orderId": ""}, "orders.jsonl line 4: DynamoDB refused the item"),
])
def test_write_items_names_the_item_and_the_problem(local_cloud, orders_table, item, problem):
    with pytest.raises(ItemsError) as raised:
        write_items(local_cloud, orders_table, [UserItem(item, "orders.jsonl line 4")],
                    label="MyStack/Orders")
    assert str(raised.value).startswith(problem)


# -- the CLI on a user's own cdk.json app ------------------------------------------

APP = """\
from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
from ddb_stream_patterns import Rule, SimpleController, StreamFilter, StreamTable

HERE = Path(__file__).parent


class MyStack(cdk.Stack):
    def __init__(self, scope, id):
        super().__init__(scope, id)
        table = StreamTable(self, "Orders", partition_key=dynamodb.Attribute(
            name="orderId", type=dynamodb.AttributeType.STRING))
        self.notifier = SimpleController(
            self, "ShippedNotifier", table=table,
            code=lambda_.Code.from_asset(str(HERE / "handlers" / "shipped")),
            handler="index.handler",
            filters=[StreamFilter(event_names=["MODIFY"],
                                  new_image={"orderState": Rule.equals("SHIPPED")})])


app = cdk.App()
MyStack(app, "MyStack")
app.synth()
"""

HANDLER = """\
from ddb_stream_runtime import StreamRecord, stream_handler


def on_record(record: StreamRecord) -> None:
    print("shipped", record.keys)


handler = stream_handler(on_record)
"""


def test_the_cli_runs_a_users_app_with_the_users_items(tmp_path):
    project = tmp_path / "orders-app"
    (project / "handlers" / "shipped").mkdir(parents=True)
    (project / "app.py").write_text(APP)
    (project / "handlers" / "shipped" / "index.py").write_text(HANDLER)
    (project / "cdk.json").write_text(json.dumps({"app": "python3 app.py"}))
    lines = [{"orderId": f"o-{i}", "orderState": "PLACED"} for i in range(4)]
    lines += [{"orderId": "o-0", "orderState": "SHIPPED"}, {"orderId": "o-1", "orderState": "SHIPPED"},
              {"orderId": "o-2", "orderState": "CANCELLED"}]
    items = project / "orders.jsonl"
    items.write_text("".join(json.dumps(line) + "\n" for line in lines))
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO / "constructs"), str(REPO / "lambda_src")])}
    done = subprocess.run(
        [sys.executable, "-m", "ddb_stream_patterns.local", "--items-file",
         f"MyStack/Orders={items}", "--timeout", "60"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "wrote your items for MyStack/Orders" in out
    assert "4 inserted, 3 modified" in out
    [row] = [line for line in out.splitlines() if "ShippedNotifier (stream)" in line]
    # read 7, filtered 5 (4 inserts + the CANCELLED modify), 2 succeeded, nothing failed,
    # nothing given up on (to DLQ, to S3, dropped), 1 call, no error
    assert row.split()[-9:] == ["7", "5", "2", "0", "0", "0", "0", "1", "0"], row
    assert "sample" not in out  # no fixed sample items written

    bad = project / "bad.jsonl"
    bad.write_text('{"orderId": "o-9"}\n{"id": "o-9"}\n')
    done = subprocess.run(
        [sys.executable, "-m", "ddb_stream_patterns.local", "--items-file",
         f"MyStack/Orders={bad}", "--timeout", "30"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2
    assert f"error: {bad} line 2: no key attribute 'orderId' (the key of MyStack/Orders " \
           f"is orderId (S))" in done.stderr
