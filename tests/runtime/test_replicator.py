"""Replicator: a target table kept in step with the source by conditional, versioned writes."""

from __future__ import annotations

import base64
import copy
import doctest
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import ddb_stream_runtime.replicator as replicator_module
from ddb_stream_runtime import deserialize_image, deserialize_value
from ddb_stream_runtime.replicator import (
    Replicator,
    ReplicatorConfig,
    SerializationError,
    handler,
    load_transform,
    sequence_version,
    serialize_item,
    serialize_value,
)

LOGGER_NAME = "ddb_stream_runtime.replicator"
OK: dict[str, Any] = {"batchItemFailures": []}

Item = dict[str, Any]


def failed(sequence_number: str) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": sequence_number}]}


def seq_of(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


# --- moto (in process) -----------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A DynamoDB client inside moto's mock_aws, with dummy credentials."""
    import boto3
    import moto

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        yield boto3.client("dynamodb")


def create_table(client: Any, name: str, *keys: tuple[str, str]) -> None:
    key_types = ("HASH", "RANGE")
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": n, "KeyType": t}
            for (n, _), t in zip(keys, key_types[: len(keys)], strict=True)
        ],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
        BillingMode="PAY_PER_REQUEST",
    )


def items(client: Any, table: str, key: str) -> dict[Any, Item]:
    """The table's items as plain Python values, by key (B values back in stream form)."""
    out = {}
    for item in client.scan(TableName=table)["Items"]:
        plain = deserialize_image(_stream_form(item))
        assert plain is not None
        out[plain[key]] = plain
    return out


def _stream_form(value: Any) -> Any:
    # The client returns B / BS as bytes; the stream (and our deserializer) use base64 text.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _stream_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stream_form(v) for v in value]
    return value


@pytest.fixture
def users(load_event: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """INSERT u-1, MODIFY u-1, INSERT u-2, REMOVE u-1 of a Users table (both images)."""
    return load_event("users_replication.json")


@pytest.fixture
def users_copy(aws: Any) -> Replicator:
    create_table(aws, "UsersCopy", ("id", "S"))
    return Replicator(ReplicatorConfig("UsersCopy"), dynamodb_client=aws)


def test_copy_insert_modify_remove(aws: Any, users_copy: Replicator, users: dict[str, Any]) -> None:
    insert, modify, insert_2, remove = users["Records"]
    assert users_copy.replicate({"Records": [insert]}) == OK
    assert items(aws, "UsersCopy", "id")["u-1"]["name"] == "Ada"
    assert users_copy.replicate({"Records": [modify, insert_2]}) == OK
    copied = items(aws, "UsersCopy", "id")
    assert copied["u-1"]["name"] == "Ada Lovelace"
    assert copied["u-1"]["roles"] == {"reader", "writer"}
    assert copied["u-2"]["logins"] == 3
    assert users_copy.replicate({"Records": [remove]}) == OK
    assert set(items(aws, "UsersCopy", "id")) == {"u-2"}


def test_version_attribute_written(aws: Any, users: dict[str, Any]) -> None:
    create_table(aws, "UsersCopy", ("id", "S"))
    replicator = Replicator(ReplicatorConfig("UsersCopy", "_v"), dynamodb_client=aws)
    assert replicator.replicate(users) == OK
    [item] = aws.scan(TableName="UsersCopy")["Items"]
    version = item["_v"]["S"]
    assert len(version) == 40 and version.lstrip("0") == seq_of(users["Records"][2])
    source = users["Records"][2]["dynamodb"]["NewImage"]
    assert {k: v for k, v in item.items() if k != "_v"} == source  # an exact copy


def test_older_record_after_a_newer_one_is_skipped(
    aws: Any, users_copy: Replicator, users: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    insert, modify, _, remove = users["Records"]
    assert users_copy.replicate({"Records": [modify]}) == OK
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        assert users_copy.replicate({"Records": [insert]}) == OK  # stale: success, no write
    assert items(aws, "UsersCopy", "id")["u-1"]["name"] == "Ada Lovelace"
    assert "1 stale records skipped" in caplog.text
    # A stale REMOVE does not delete newer data either.
    late_remove = copy.deepcopy(remove)
    late_remove["dynamodb"]["SequenceNumber"] = seq_of(insert)
    assert users_copy.replicate({"Records": [late_remove]}) == OK
    assert "u-1" in items(aws, "UsersCopy", "id")


def test_a_replayed_record_with_an_equal_version_is_skipped_and_a_newer_one_applied(
    aws: Any, users_copy: Replicator, users: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    insert = users["Records"][0]
    assert users_copy.replicate({"Records": [insert]}) == OK
    stored = aws.get_item(TableName="UsersCopy", Key={"id": {"S": "u-1"}})["Item"]
    assert stored["_streamSequence"] == {"S": sequence_version(seq_of(insert))}
    # The same sequence number again: a replay. Its data differs only so that a write
    # would show; the target holds this version already, so nothing is written.
    replay = copy.deepcopy(insert)
    replay["dynamodb"]["NewImage"]["name"] = {"S": "written by the replay"}
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        assert users_copy.replicate({"Records": [replay]}) == OK
    assert "0 puts, 0 deletes, 1 stale records skipped" in caplog.text
    assert items(aws, "UsersCopy", "id")["u-1"]["name"] == "Ada"
    # One sequence number later: newer, applied.
    newer = copy.deepcopy(replay)
    newer["dynamodb"]["SequenceNumber"] = str(int(seq_of(insert)) + 1)
    assert users_copy.replicate({"Records": [newer]}) == OK
    copied = items(aws, "UsersCopy", "id")["u-1"]
    assert copied["name"] == "written by the replay"
    assert copied["_streamSequence"] == sequence_version(seq_of(newer))
    # Deletes compare the same way: a REMOVE at the stored version is skipped ...
    remove = copy.deepcopy(users["Records"][3])
    remove["dynamodb"]["SequenceNumber"] = seq_of(newer)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        assert users_copy.replicate({"Records": [remove]}) == OK
    assert "0 puts, 0 deletes, 1 stale records skipped" in caplog.text
    assert "u-1" in items(aws, "UsersCopy", "id")
    # ... and one a sequence number later deletes.
    remove["dynamodb"]["SequenceNumber"] = str(int(seq_of(newer)) + 1)
    assert users_copy.replicate({"Records": [remove]}) == OK
    assert "u-1" not in items(aws, "UsersCopy", "id")


def test_replaying_a_batch_gives_the_same_state(
    aws: Any, users_copy: Replicator, users: dict[str, Any]
) -> None:
    assert users_copy.replicate(users) == OK
    first = items(aws, "UsersCopy", "id")
    assert set(first) == {"u-2"}
    for start in (0, 1, 2, 3):  # Lambda replays a suffix of the shard, in order
        assert users_copy.replicate({"Records": users["Records"][start:]}) == OK
        assert items(aws, "UsersCopy", "id") == first
    assert users_copy.replicate(users) == OK
    assert items(aws, "UsersCopy", "id") == first


def test_every_type_is_copied_exactly(aws: Any, rich_event: dict[str, Any]) -> None:
    create_table(aws, "OrdersCopy", ("pk", "S"), ("sk", "N"))
    replicator = Replicator(ReplicatorConfig("OrdersCopy"), dynamodb_client=aws)
    original = copy.deepcopy(rich_event)
    assert replicator.replicate(rich_event) == OK
    assert rich_event == original  # the event is not changed
    [item] = aws.scan(TableName="OrdersCopy")["Items"]
    del item["_streamSequence"]
    expected = deserialize_image(rich_event["Records"][0]["dynamodb"]["NewImage"])
    # Binary values stored once-encoded: bytes come back equal to the stream's base64.
    assert item["thumbnail"] == {"B": b"\x00\x01\xfe\xff"}
    assert deserialize_image(_stream_form(item)) == expected


def test_copy_mode_never_deserializes(
    users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(image: Any) -> Any:
        raise AssertionError("a copy must not deserialize images")

    monkeypatch.setattr("ddb_stream_runtime.records.deserialize_image", boom)
    client = FakeDynamoDB()
    assert Replicator(ReplicatorConfig("T"), dynamodb_client=client).replicate(users) == OK
    assert sorted(call[0] for call in client.calls) == ["delete", "put", "put", "put"]


# --- transforms ---------------------------------------------------------------------------


def app_user(user: Item) -> Item | None:
    """Users -> AppUsers: keyed by userId, no password hash, only active users."""
    if user.get("status") != "active":
        return None
    return {
        "userId": user["id"],
        "displayName": user["name"],
        "email": user["email"],
        "isAdmin": "admin" in user.get("roles", ()),
        "score": user["logins"] * 1.5,  # a float: stored as Decimal(str(x))
    }


@pytest.fixture
def app_users(aws: Any) -> Replicator:
    create_table(aws, "AppUsers", ("userId", "S"))
    return Replicator(ReplicatorConfig("AppUsers"), dynamodb_client=aws, transform=app_user)


def test_transform_reshapes(aws: Any, app_users: Replicator, users: dict[str, Any]) -> None:
    assert app_users.replicate({"Records": users["Records"][:3]}) == OK
    view = items(aws, "AppUsers", "userId")
    assert view["u-1"] == {
        "userId": "u-1",
        "displayName": "Ada Lovelace",
        "email": "ada@example.com",
        "isAdmin": False,
        "score": Decimal("1.5"),
        "_streamSequence": sequence_version(seq_of(users["Records"][1])),
    }
    assert view["u-2"]["isAdmin"] is True and "passwordHash" not in view["u-2"]
    assert app_users.replicate({"Records": users["Records"][3:]}) == OK  # REMOVE u-1
    assert set(items(aws, "AppUsers", "userId")) == {"u-2"}


def test_item_transformed_away_is_deleted(
    aws: Any, app_users: Replicator, users: dict[str, Any]
) -> None:
    insert, modify, insert_2, _ = users["Records"]
    suspend = copy.deepcopy(modify)
    suspend["dynamodb"]["SequenceNumber"] = str(int(seq_of(modify)) + 1)
    suspend["dynamodb"]["OldImage"] = modify["dynamodb"]["NewImage"]
    suspend["dynamodb"]["NewImage"] = {
        **modify["dynamodb"]["NewImage"],
        "status": {"S": "suspended"},
    }
    assert app_users.replicate({"Records": [insert, modify, suspend]}) == OK
    assert items(aws, "AppUsers", "userId") == {}
    # An INSERT the transform drops writes nothing.
    hidden = copy.deepcopy(insert_2)
    hidden["dynamodb"]["NewImage"]["status"] = {"S": "invited"}
    assert app_users.replicate({"Records": [hidden]}) == OK
    assert items(aws, "AppUsers", "userId") == {}
    # Replaying the whole history changes nothing.
    assert app_users.replicate({"Records": [insert, modify, suspend, hidden]}) == OK
    assert items(aws, "AppUsers", "userId") == {}


def test_modify_that_moves_the_target_key(aws: Any, users: dict[str, Any]) -> None:
    create_table(aws, "ByEmail", ("email", "S"))

    def by_email(user: Item) -> Item:
        return {"email": user["email"], "id": user["id"]}

    replicator = Replicator(ReplicatorConfig("ByEmail"), dynamodb_client=aws, transform=by_email)
    insert, modify, _, _ = users["Records"]
    moved = copy.deepcopy(modify)
    moved["dynamodb"]["NewImage"]["email"] = {"S": "ada@lovelace.example"}
    assert replicator.replicate({"Records": [insert, moved]}) == OK
    assert set(items(aws, "ByEmail", "email")) == {"ada@lovelace.example"}


def test_transform_imported_from_the_functions_code(
    aws: Any,
    users: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_replicator: None,
) -> None:
    module = f"views_{uuid.uuid4().hex}"  # unique: sys.modules outlives the test
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            def app_user(user):
                return {"userId": user["id"], "name": user["name"].upper()}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(replicator_module, "aws_client", lambda service, **config: aws)
    monkeypatch.setenv("TARGET_TABLE", "AppUsers")
    monkeypatch.setenv("TRANSFORM", f"{module}:app_user")
    monkeypatch.delenv("VERSION_ATTRIBUTE", raising=False)
    create_table(aws, "AppUsers", ("userId", "S"))
    assert handler(users, None) == OK
    view = items(aws, "AppUsers", "userId")
    assert {k: v["name"] for k, v in view.items()} == {"u-2": "ALAN"}
    assert module in sys.modules


def test_transform_errors_fail_the_record(users: dict[str, Any]) -> None:
    def bad(user: Item) -> Any:
        return [user["id"]] if user["id"] == "u-2" else user

    client = FakeDynamoDB(key_schema=("id",))
    replicator = Replicator(ReplicatorConfig("T"), dynamodb_client=client, transform=bad)
    assert replicator.replicate(users) == failed(seq_of(users["Records"][2]))
    assert len(client.calls) == 2  # the INSERT and MODIFY of u-1; nothing after u-2


def test_transform_without_the_target_key_fails(
    users: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = FakeDynamoDB(key_schema=("userId",))
    replicator = Replicator(
        ReplicatorConfig("AppUsers"), dynamodb_client=client, transform=lambda u: {"id": u["id"]}
    )
    with caplog.at_level(logging.ERROR):
        assert replicator.replicate(users) == failed(seq_of(users["Records"][1]))
    assert "has no 'userId'" in caplog.text and "table 'AppUsers'" in caplog.text
    assert client.describes == 1


def test_transform_needs_the_old_image(users: dict[str, Any]) -> None:
    remove = users["Records"][3]
    del remove["dynamodb"]["OldImage"]
    remove["dynamodb"]["StreamViewType"] = "NEW_IMAGE"
    replicator = Replicator(
        ReplicatorConfig("AppUsers"), dynamodb_client=FakeDynamoDB(), transform=app_user
    )
    assert replicator.replicate({"Records": [remove]}) == failed(seq_of(remove))


# --- failures -------------------------------------------------------------------------------


class ClientError(Exception):
    """Shaped like botocore's ClientError: the code is in ``response``."""

    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code, "Message": "..."}}


class ConditionalCheckFailedException(Exception):
    """Like the client's modeled exception class of that name."""


class FakeDynamoDB:
    """Records put_item / delete_item calls; ``fail(kind, params)`` may return an exception."""

    def __init__(
        self,
        fail: Callable[[str, dict[str, Any]], Exception | None] | None = None,
        key_schema: tuple[str, ...] = ("id",),
    ) -> None:
        self.fail = fail or (lambda kind, params: None)
        self.key_schema = key_schema
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.describes = 0

    def _call(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((kind, copy.deepcopy(params)))
        error = self.fail(kind, params)
        if error is not None:
            raise error
        return {}

    def put_item(self, **params: Any) -> dict[str, Any]:
        return self._call("put", params)

    def delete_item(self, **params: Any) -> dict[str, Any]:
        return self._call("delete", params)

    def describe_table(self, TableName: str) -> dict[str, Any]:  # noqa: N803
        self.describes += 1
        return {"Table": {"KeySchema": [{"AttributeName": n} for n in self.key_schema]}}


@pytest.mark.parametrize("concurrency", [1, 16])
def test_other_error_reports_that_record_and_stops(
    users: dict[str, Any], caplog: pytest.LogCaptureFixture, concurrency: int
) -> None:
    third = seq_of(users["Records"][2])  # INSERT u-2; the REMOVE after it is u-1's

    def fail(kind: str, params: dict[str, Any]) -> Exception | None:
        version = params["ExpressionAttributeValues"][":seq"]["S"]
        return ClientError("ValidationException") if version.endswith(third) else None

    client = FakeDynamoDB(fail)
    config = ReplicatorConfig("T", write_concurrency=concurrency)
    with caplog.at_level(logging.ERROR):
        assert Replicator(config, dynamodb_client=client).replicate(users) == failed(third)
    versions = [params["ExpressionAttributeValues"][":seq"]["S"] for _, params in client.calls]
    assert sum(v.endswith(third) for v in versions) == 1
    if concurrency == 1:
        assert len(client.calls) == 3  # one writer: the REMOVE after it was not attempted
    else:  # u-1's records may all be written: another item, replayed harmlessly
        assert 3 <= len(client.calls) <= 4
    assert "ValidationException" in caplog.text and "Ada" not in caplog.text


@pytest.mark.parametrize(
    "error", [ClientError("ConditionalCheckFailedException"), ConditionalCheckFailedException()]
)
def test_condition_failure_is_success(users: dict[str, Any], error: Exception) -> None:
    client = FakeDynamoDB(lambda kind, params: error)
    assert Replicator(ReplicatorConfig("T"), dynamodb_client=client).replicate(users) == OK
    assert len(client.calls) == 4


def test_write_parameters(users: dict[str, Any]) -> None:
    client = FakeDynamoDB()
    replicator = Replicator(ReplicatorConfig("Target", "ver"), dynamodb_client=client)
    assert replicator.replicate({"Records": [users["Records"][0], users["Records"][3]]}) == OK
    (put_kind, put), (delete_kind, delete) = client.calls
    assert (put_kind, delete_kind) == ("put", "delete")
    for params, record in ((put, users["Records"][0]), (delete, users["Records"][3])):
        assert params["TableName"] == "Target"
        assert params["ConditionExpression"] == "attribute_not_exists(#v) OR #v < :seq"
        assert params["ExpressionAttributeNames"] == {"#v": "ver"}
        assert params["ExpressionAttributeValues"] == {
            ":seq": {"S": sequence_version(seq_of(record))}
        }
    assert delete["Key"] == {"id": {"S": "u-1"}}
    assert put["Item"]["ver"] == {"S": sequence_version(seq_of(users["Records"][0]))}


def test_missing_new_image_is_malformed(users: dict[str, Any]) -> None:
    insert = users["Records"][0]
    del insert["dynamodb"]["NewImage"]
    insert["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
    client = FakeDynamoDB()
    response = Replicator(ReplicatorConfig("T"), dynamodb_client=client).replicate(users)
    assert response == failed(seq_of(insert)) and client.calls == []


# --- versions and values ---------------------------------------------------------------------


def test_sequence_version_orders_like_numbers() -> None:
    numbers = ["9", "111", "4421584500000000017450439091", "1" + "0" * 39]
    versions = [sequence_version(n) for n in numbers]
    assert all(len(v) == 40 for v in versions)
    assert versions == sorted(versions)
    assert [int(v) for v in versions] == [int(n) for n in numbers]


@pytest.mark.parametrize("bad", ["", "12a", "1" * 41, "١٢", "-1"])
def test_sequence_version_rejects_non_numbers(bad: str) -> None:
    with pytest.raises(ValueError, match="at most 40 digits"):
        sequence_version(bad)


ROUND_TRIP = [
    "text",
    "",
    "Grüße 🚀",
    0,
    -42,
    12345678901234567890123456789012345678,
    Decimal("129.95"),
    Decimal("1E+2"),
    Decimal("-1e-130"),
    b"\x00\x01\xfe\xff",
    b"",
    True,
    False,
    None,
    [],
    ["a", 1, None, [b"x", {"k": Decimal("0.1")}]],
    {},
    {"nested": {"deeper": {"n": 7, "flag": False}}},
    {"a", "b"},
    {1, Decimal("2.5"), -7},
    {b"hello", b"world"},
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_serializer_round_trip(value: Any) -> None:
    av = serialize_value(value)
    back = deserialize_value(_stream_form(av))
    assert back == value and type(back) is type(value)


def test_float_becomes_its_shortest_decimal() -> None:
    assert serialize_value(0.1) == {"N": "0.1"}
    assert serialize_value(1e16) == {"N": "1E+16"}
    assert deserialize_value(serialize_value(2.5)) == Decimal("2.5")
    assert serialize_value({0.5, 1}) in ({"NS": ["0.5", "1"]}, {"NS": ["1", "0.5"]})


def test_tuples_and_subclasses() -> None:
    from collections import OrderedDict
    from enum import IntEnum

    class Level(IntEnum):
        HIGH = 3

    assert serialize_value((1, "a")) == {"L": [{"N": "1"}, {"S": "a"}]}
    assert serialize_value(Level.HIGH) == {"N": "3"}
    assert serialize_value(OrderedDict(a=1)) == {"M": {"a": {"N": "1"}}}
    assert serialize_value(bytearray(b"ab")) == {"B": b"ab"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": float("nan")}, "x: dynamodb cannot store nan"),
        ({"x": [float("inf")]}, r"x\[0\]: dynamodb cannot store inf"),
        ({"x": Decimal("NaN")}, "cannot store Decimal"),
        ({"x": set()}, "x: dynamodb cannot store an empty set"),
        ({"x": {1, "a"}}, "only strings, only numbers or only bytes, got int, str"),
        ({"x": {1: "a"}}, "x: attribute names are strings, got 1"),
        ({"x": object()}, "x: dynamodb has no type for a object"),
    ],
)
def test_serializer_errors(value: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        serialize_item(value)


# --- configuration and the Lambda entry point ---------------------------------------------------


def test_config_from_env() -> None:
    assert ReplicatorConfig.from_env({"TARGET_TABLE": "T"}) == ReplicatorConfig(
        "T", "_streamSequence", None
    )
    config = ReplicatorConfig.from_env(
        {"TARGET_TABLE": "T", "VERSION_ATTRIBUTE": "v", "TRANSFORM": " pkg.views:app_user "}
    )
    assert config == ReplicatorConfig("T", "v", "pkg.views:app_user")
    with pytest.raises(ValueError, match="TARGET_TABLE is required"):
        ReplicatorConfig.from_env({})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("views", "TRANSFORM must be 'module:function'"),
        ("views:", "TRANSFORM must be 'module:function'"),
        ("views:app-user", "TRANSFORM must be 'module:function'"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz': ModuleNotFoundError"),
        ("json:nothing", "module 'json' has no attribute 'nothing'"),
        ("json:JSONDecoder.nothing", "'json:JSONDecoder' has no attribute 'nothing'"),
        ("json.decoder:__doc__", "'__doc__' is a str, not a function"),
    ],
)
def test_transform_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_transform(spec)
    with pytest.raises(ValueError, match=message):  # the same error through the config
        Replicator(ReplicatorConfig.from_env({"TARGET_TABLE": "T", "TRANSFORM": spec}))


def test_transform_module_that_fails_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"broken_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text("raise RuntimeError('missing dependency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="RuntimeError: missing dependency") as caught:
        load_transform(f"{module}:f")
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.fixture
def fresh_replicator() -> Iterator[None]:
    replicator_module._default_replicator.cache_clear()
    yield
    replicator_module._default_replicator.cache_clear()


def test_handler_reads_env_once(
    fresh_replicator: None, monkeypatch: pytest.MonkeyPatch, users: dict[str, Any]
) -> None:
    client = FakeDynamoDB()
    created: list[str] = []
    monkeypatch.setattr(replicator_module, "aws_client", lambda s, **config: created.append(s) or client)
    monkeypatch.setenv("TARGET_TABLE", "T")
    monkeypatch.delenv("VERSION_ATTRIBUTE", raising=False)
    monkeypatch.delenv("TRANSFORM", raising=False)
    assert handler(users, None) == OK
    monkeypatch.setenv("TARGET_TABLE", "Other")
    assert handler(users, None) == OK
    assert {params["TableName"] for _, params in client.calls} == {"T"}
    assert created == ["dynamodb"]


def test_handler_config_error_surfaces(
    fresh_replicator: None, monkeypatch: pytest.MonkeyPatch, users: dict[str, Any]
) -> None:
    monkeypatch.setenv("TARGET_TABLE", "T")
    monkeypatch.setenv("TRANSFORM", "no_such_module_xyz:f")
    with pytest.raises(ValueError, match="cannot import module"):
        handler(users, None)


def test_import_loads_neither_boto3_nor_cdk() -> None:
    # A fresh interpreter: this test process may well have imported boto3 already.
    code = (
        "import json, sys, ddb_stream_runtime.replicator; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'boto3', 'botocore', 'aws_cdk', 'jsii'})))"
    )
    lambda_src = Path(replicator_module.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(lambda_src)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == []


def test_docstring_examples_run() -> None:
    result = doctest.testmod(replicator_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# --- concurrent writes: order per item, earliest failure, same table as one writer ------

import random  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402


def shard(n_items: int, n_records: int, seed: int) -> list[dict[str, Any]]:
    """A stream of INSERT / MODIFY / REMOVE records over a few items, sequence numbers rising."""
    rng = random.Random(seed)
    alive: dict[str, int] = {}
    records = []
    for i in range(n_records):
        key = f"k{rng.randrange(n_items)}"
        seq = str(10**20 + i * 7)
        keys = {"id": {"S": key}}
        if key in alive and rng.random() < 0.25:
            name, new = "REMOVE", None
            del alive[key]
        else:
            name = "MODIFY" if key in alive else "INSERT"
            alive[key] = alive.get(key, 0) + 1
            new = {"id": {"S": key}, "n": {"N": str(alive[key])}, "at": {"N": seq}}
        dynamodb: dict[str, Any] = {"Keys": keys, "SequenceNumber": seq}
        if new is not None:
            dynamodb["NewImage"] = new
        records.append({"eventName": name, "eventID": f"e{i}", "dynamodb": dynamodb})
    return records


class SlowDynamoDB(FakeDynamoDB):
    """Random delays per call: without ordering per item, writes would overtake each other."""

    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0

    def _call(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            delay = self.rng.random() * 0.002
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(delay)
        try:
            with self.lock:
                return super()._call(kind, params)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_records_of_one_item_are_written_in_stream_order() -> None:
    records = shard(n_items=12, n_records=300, seed=1)
    client = SlowDynamoDB(seed=2)
    replicator = Replicator(ReplicatorConfig("T", write_concurrency=8), dynamodb_client=client)
    assert replicator.replicate({"Records": records}) == OK
    assert len(client.calls) == 300  # every record written, once
    assert client.most_in_flight > 1  # they did overlap
    by_item: dict[str, list[str]] = {}
    for _kind, params in client.calls:
        key = (params.get("Item") or params.get("Key"))["id"]["S"]
        by_item.setdefault(key, []).append(params["ExpressionAttributeValues"][":seq"]["S"])
    assert len(by_item) == 12
    for versions in by_item.values():
        assert versions == sorted(versions)  # each item's writes in stream order


def test_concurrency_is_bounded_by_write_concurrency() -> None:
    client = SlowDynamoDB(seed=3)
    replicator = Replicator(ReplicatorConfig("T", write_concurrency=4), dynamodb_client=client)
    assert replicator.replicate({"Records": shard(64, 200, seed=4)}) == OK
    assert len(client.calls) == 200
    assert 1 < client.most_in_flight <= 4


def test_the_earliest_failed_record_is_reported_when_a_later_one_fails_first() -> None:
    records = shard(n_items=40, n_records=120, seed=5)
    early, late = seq_of(records[30]), seq_of(records[100])

    def fail(kind: str, params: dict[str, Any]) -> Exception | None:
        version = params["ExpressionAttributeValues"][":seq"]["S"]
        if version.endswith(early):
            time.sleep(0.05)  # the later failure is seen first
            return ClientError("ValidationException")
        return ClientError("InternalServerError") if version.endswith(late) else None

    client = FakeDynamoDB(fail)
    replicator = Replicator(ReplicatorConfig("T", write_concurrency=16), dynamodb_client=client)
    assert replicator.replicate({"Records": records}) == failed(early)
    written = {p["ExpressionAttributeValues"][":seq"]["S"] for _, p in client.calls}
    # Everything before the reported record was written; its item's later records were not.
    assert {sequence_version(seq_of(r)) for r in records[:31]} <= written
    early_item = records[30]["dynamodb"]["Keys"]["id"]["S"]
    later_same_item = [
        sequence_version(seq_of(r))
        for r in records[31:]
        if r["dynamodb"]["Keys"]["id"]["S"] == early_item
    ]
    assert later_same_item and not set(later_same_item) & written


def _deliveries(records: list[dict[str, Any]], seed: int) -> list[list[dict[str, Any]]]:
    """How Lambda may deliver a shard: batches, retried suffixes, a whole batch again late."""
    rng = random.Random(seed)
    batches = [records[i : i + 50] for i in range(0, len(records), 50)]
    out: list[list[dict[str, Any]]] = []
    for n, batch in enumerate(batches):
        out.append(batch)
        cut = rng.randrange(len(batch))
        out.append(batch[cut:])  # a retried suffix: duplicates
        if n:
            out.append(batches[n - 1])  # an older batch delivered again, out of order
            out.append(batch)
    return out


@pytest.mark.parametrize("seed", [7, 8])
def test_target_table_is_the_same_as_one_writers(aws: Any, seed: int) -> None:
    records = shard(n_items=25, n_records=300, seed=seed)
    create_table(aws, "One", ("id", "S"))
    create_table(aws, "Many", ("id", "S"))
    one = Replicator(ReplicatorConfig("One", write_concurrency=1), dynamodb_client=aws)
    many = Replicator(ReplicatorConfig("Many", write_concurrency=16), dynamodb_client=aws)
    for batch in _deliveries(records, seed):
        assert one.replicate({"Records": batch}) == OK
        assert many.replicate({"Records": batch}) == OK
    expected = items(aws, "One", "id")
    assert expected  # the shard leaves items behind
    assert items(aws, "Many", "id") == expected
    # ... and both hold each surviving item's last image.
    last: dict[str, Any] = {}
    for record in records:
        key = record["dynamodb"]["Keys"]["id"]["S"]
        last[key] = record["dynamodb"].get("NewImage")
    assert set(expected) == {k for k, image in last.items() if image is not None}


@pytest.mark.parametrize("bad", [0, 65, "8", True, 1.5])
def test_write_concurrency_is_validated(bad: Any) -> None:
    with pytest.raises(ValueError, match=f"write_concurrency must be an integer from 1 to 64, got {bad!r}"):
        ReplicatorConfig("T", write_concurrency=bad)


def test_write_concurrency_from_the_environment() -> None:
    assert ReplicatorConfig.from_env({"TARGET_TABLE": "T"}).write_concurrency == 16
    config = ReplicatorConfig.from_env({"TARGET_TABLE": "T", "WRITE_CONCURRENCY": " 4 "})
    assert config.write_concurrency == 4
    with pytest.raises(ValueError, match="WRITE_CONCURRENCY must be an integer from 1 to 64"):
        ReplicatorConfig.from_env({"TARGET_TABLE": "T", "WRITE_CONCURRENCY": "many"})


@pytest.mark.parametrize("concurrency", [1, 16])
def test_a_system_exit_in_a_write_fails_the_record_not_the_invocation(
    users: dict[str, Any], concurrency: int
) -> None:
    second = seq_of(users["Records"][1])

    def fail(kind: str, params: dict[str, Any]) -> Exception | None:
        if params["ExpressionAttributeValues"][":seq"]["S"].endswith(second):
            raise SystemExit(3)
        return None

    client = FakeDynamoDB(fail)
    config = ReplicatorConfig("T", write_concurrency=concurrency)
    assert Replicator(config, dynamodb_client=client).replicate(users) == failed(second)
    assert client.calls  # the writes were attempted
