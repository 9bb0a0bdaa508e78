"""Every DynamoDB type survives the local stream: what the handler gets is what was written."""

from __future__ import annotations

import base64
import doctest
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from ddb_stream_patterns.local import stream_images
from ddb_stream_patterns.local.pollers import StreamPoller, to_lambda_record
from ddb_stream_patterns.local.stream_images import repair_image
from ddb_stream_runtime.records import StreamRecord
from tests.local.test_pollers import Recorder, make_table, run, stream_spec

# One item holding every DynamoDB type, at its limits where it has them.
EVERY_TYPE: dict[str, Any] = {
    "pk": {"S": "every-type"},
    "s": {"S": "text"},
    "empty_s": {"S": ""},
    "astral": {"S": "\U0001F600 \U00010348 \U0001D11E"},  # outside the BMP (surrogates in JSON)
    "n": {"N": "42"},
    "n_38_digits": {"N": "99999999999999999999999999999999999999"},
    "n_negative_38": {"N": "-99999999999999999999999999999999999999"},
    "n_smallest": {"N": "1E-130"},
    "n_largest": {"N": "9.99E+125"},
    "n_fraction": {"N": "-0.000123"},
    "b": {"B": b"\x00\xff\x10"},
    "empty_b": {"B": b""},
    "ss": {"SS": ["a", "\U0001F600", "z"]},
    "ns": {"NS": ["1", "-1.5", "1E-130"]},
    "bs": {"BS": [b"\x01", b"\x02\x03"]},
    "null": {"NULL": True},
    "true": {"BOOL": True},
    "false": {"BOOL": False},
    "empty_l": {"L": []},
    "empty_m": {"M": {}},
    "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {}}, {"L": [{"M": {}}, {"L": []}]}, {"NULL": True}]},
    "m": {"M": {
        "inner_empty": {"M": {}},
        "deeper": {"M": {"deepest": {"M": {}}, "list": {"L": [{"M": {}}, {"M": {"a": {"M": {}}}}]}}},
        "s": {"S": ""},
        "bs": {"BS": [b"\xfe"]},
    }},
}


def _as_lambda(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value as Lambda delivers it: binary as base64, sets and numbers
    comparable (sets are unordered; DynamoDB normalizes how a number is spelled)."""
    (tag, inner), = value.items()
    if tag == "B":
        return {"B": base64.b64encode(inner).decode()}
    if tag == "BS":
        return {"BS": sorted(base64.b64encode(b).decode() for b in inner)}
    if tag == "N":
        return {"N": Decimal(inner)}
    if tag == "NS":
        return {"NS": sorted(Decimal(n) for n in inner)}
    if tag == "SS":
        return {"SS": sorted(inner)}
    if tag == "M":
        return {"M": {k: _as_lambda(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [_as_lambda(v) for v in inner]}
    return {tag: inner}


def _comparable(image: dict[str, Any]) -> dict[str, Any]:
    """A delivered image in :func:`_as_lambda`'s comparable form (already base64)."""
    out = {}
    for name, value in image.items():
        (tag, inner), = value.items()  # exactly one type tag, as AWS writes it
        if tag == "B":
            value = {"B": base64.b64decode(inner)}
        elif tag == "BS":
            value = {"BS": [base64.b64decode(b) for b in inner]}
        elif tag == "M":
            value = {"M": _decoded_map(inner)}
        elif tag == "L":
            value = {"L": [_decoded_value(v) for v in inner]}
        out[name] = _as_lambda(value)
    return out


def _decoded_value(value: dict[str, Any]) -> dict[str, Any]:
    return next(iter(_decoded_map({"_": value}).values()))


def _decoded_map(inner: dict[str, Any]) -> dict[str, Any]:
    decoded = {}
    for name, value in inner.items():
        (tag, v), = value.items()
        if tag == "B":
            decoded[name] = {"B": base64.b64decode(v)}
        elif tag == "BS":
            decoded[name] = {"BS": [base64.b64decode(b) for b in v]}
        elif tag == "M":
            decoded[name] = {"M": _decoded_map(v)}
        elif tag == "L":
            decoded[name] = {"L": [_decoded_value(x) for x in v]}
        else:
            decoded[name] = value
    return decoded


def test_doctests():
    assert doctest.testmod(stream_images).failed == 0


def test_only_untagged_empty_maps_are_repaired():
    image = {"e": {}, "m": {"M": {}}, "l": {"L": []}, "s": {"S": ""}, "b": {"B": b""},
             "nested": {"L": [{"M": {"x": {}}}, {}]}}
    repaired = repair_image(image)
    assert repaired["e"] == {"M": {}}
    assert repaired["nested"] == {"L": [{"M": {"x": {"M": {}}}}, {"M": {}}]}
    assert {k: repaired[k] for k in ("m", "l", "s", "b")} == {
        "m": {"M": {}}, "l": {"L": []}, "s": {"S": ""}, "b": {"B": b""}}
    assert repair_image({}) == {}  # an image without attributes stays one
    assert image["e"] == {}  # the input is not mutated


def test_to_lambda_record_repairs_keys_and_both_images():
    damaged = {"pk": {"S": "a"}, "e": {}, "m": {"M": {"x": {}}}}
    record = to_lambda_record({"eventID": "1", "eventName": "MODIFY", "dynamodb": {
        "Keys": {"pk": {"S": "a"}}, "NewImage": damaged, "OldImage": damaged,
        "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"}}, "arn")
    for key in ("NewImage", "OldImage"):
        assert record["dynamodb"][key] == {"pk": {"S": "a"}, "e": {"M": {}},
                                           "m": {"M": {"x": {"M": {}}}}}


def test_every_type_reaches_the_handler_as_written(client_factory, unique):
    table = unique("types")
    stream = make_table(client_factory, table)
    ddb = client_factory("dynamodb")
    ddb.put_item(TableName=table, Item=EVERY_TYPE)
    ddb.put_item(TableName=table, Item={**EVERY_TYPE, "s": {"S": "changed"}})
    ddb.delete_item(TableName=table, Key={"pk": EVERY_TYPE["pk"]})
    fn = Recorder()
    poller = StreamPoller(stream_spec(fn, stream), client_factory)
    run(poller)

    records = [r for batch in fn.batches for r in batch]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert poller.stats.succeeded == 3
    written = {name: _as_lambda(value) for name, value in EVERY_TYPE.items()}
    modified = {**written, "s": _as_lambda({"S": "changed"})}
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert "OldImage" not in insert and "NewImage" not in remove
    assert _comparable(insert["NewImage"]) == written
    assert _comparable(modify["OldImage"]) == written
    assert _comparable(modify["NewImage"]) == modified
    assert _comparable(remove["OldImage"]) == modified
    # The exact tags the handler sees, where DynamoDB Local drops them.
    new = insert["NewImage"]
    assert new["empty_m"] == {"M": {}}
    assert new["l"]["L"][2] == {"M": {}} and new["l"]["L"][3] == {"L": [{"M": {}}, {"L": []}]}
    assert new["m"]["M"]["deeper"]["M"]["list"]["L"] == [{"M": {}}, {"M": {"a": {"M": {}}}}]
    assert new["empty_s"] == {"S": ""} and new["empty_b"] == {"B": ""}
    assert new["astral"] == EVERY_TYPE["astral"]
    # The runtime reads the record into the same Python values boto3 reads from GetItem.
    deserializer = TypeDeserializer()
    expected = {k: deserializer.deserialize(v) for k, v in EVERY_TYPE.items()}
    parsed = StreamRecord.from_lambda(records[0]).new_image
    assert parsed is not None
    assert {k: v for k, v in parsed.items() if k not in ("b", "empty_b", "bs", "m")} == {
        k: v for k, v in expected.items() if k not in ("b", "empty_b", "bs", "m")}
    assert parsed["m"]["deeper"] == {"deepest": {}, "list": [{}, {"a": {}}]}
