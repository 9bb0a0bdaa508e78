"""DynamoDB-JSON -> Python: every type tag, exact numbers, errors, parity with boto3."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from ddb_stream_runtime import DeserializationError, deserialize_image, deserialize_value

RICH_EXPECTED = {
    "pk": "ORDER#000123",
    "sk": 7,
    "status": "SHIPPED",
    "empty_string": "",
    "unicode": "Grüße, 世界 🚀",
    "quantity": 3,
    "negative": -42,
    "big_int": 12345678901234567890123456789012345678,
    "price": Decimal("129.95"),
    "tenth": Decimal("0.1"),
    "hundred_exp": Decimal("1E+2"),
    "tiny": Decimal("1e-130"),
    "huge": Decimal("9.9999999999999999999999999999999999999E+125"),
    "is_gift": True,
    "is_paid": False,
    "note": None,
    "thumbnail": b"\x00\x01\xfe\xff",
    "tags": {"red", "blue"},
    "scores": {1, Decimal("2.5"), -7},
    "checksums": {b"hello", b"world"},
    "address": {
        "street": "1 Main St",
        "geo": {"lat": Decimal("40.1"), "lon": Decimal("-89.25")},
        "apartment": None,
    },
    "lines": [
        {"sku": "SKU-1", "qty": 1, "price": Decimal("9.99")},
        {"sku": "SKU-2", "qty": 2, "price": Decimal("59.98")},
        ["nested", 0, False, b"hello"],
        {"x"},
    ],
    "empty_list": [],
    "empty_map": {},
}


def _types(value: Any) -> Any:
    """The value's shape with every leaf replaced by its exact type (== ignores int/Decimal)."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((type(v).__name__, str(v)) for v in value)
    return type(value)


@pytest.mark.parametrize(
    ("av", "expected", "kind"),
    [
        ({"S": "New item!"}, "New item!", str),
        ({"S": ""}, "", str),
        ({"N": "101"}, 101, int),
        ({"N": "-0"}, Decimal("-0"), Decimal),  # the sign kept, as boto3 keeps it
        ({"N": "0.1"}, Decimal("0.1"), Decimal),
        ({"N": "1E+2"}, Decimal("100"), Decimal),
        ({"N": "2.5e-3"}, Decimal("0.0025"), Decimal),
        ({"B": "aGVsbG8="}, b"hello", bytes),
        ({"BOOL": True}, True, bool),
        ({"BOOL": False}, False, bool),
        ({"NULL": True}, None, type(None)),
        ({"SS": ["a", "b"]}, {"a", "b"}, set),
        ({"NS": ["1", "1.5"]}, {1, Decimal("1.5")}, set),
        ({"BS": ["aGVsbG8=", "AAH+/w=="]}, {b"hello", b"\x00\x01\xfe\xff"}, set),
        ({"L": [{"S": "a"}, {"N": "1"}]}, ["a", 1], list),
        ({"M": {"a": {"N": "1"}}}, {"a": 1}, dict),
    ],
)
def test_each_type_tag(av: dict[str, Any], expected: Any, kind: type) -> None:
    result = deserialize_value(av)
    assert result == expected
    assert type(result) is kind


def test_rich_image_every_tag_nested(rich_image: dict[str, Any]) -> None:
    result = deserialize_image(rich_image)
    assert result == RICH_EXPECTED
    # == treats 1 == Decimal(1) == True; compare the exact types too.
    assert _types(result) == _types(RICH_EXPECTED)


def test_numbers_are_exact_and_never_float(rich_image: dict[str, Any]) -> None:
    result = deserialize_image(rich_image)
    assert result is not None
    assert str(result["tenth"]) == "0.1"  # not 0.1000000000000000055511151231257827
    assert str(result["hundred_exp"]) == "1E+2"
    assert result["big_int"] == 12345678901234567890123456789012345678
    assert str(result["huge"]) == "9.9999999999999999999999999999999999999E+125"
    assert "float" not in json.dumps(_types(result), default=str)


NULLS_IN_LISTS = {
    "L": [
        {"NULL": True},
        {"S": "a"},
        {"NULL": True},
        {"NULL": True},
        {"L": [{"NULL": True}]},
        {"M": {"n": {"NULL": True}, "l": {"L": [{"N": "1"}, {"NULL": True}]}}},
        {"NULL": True},
    ]
}


def test_a_list_holding_nulls_round_trips() -> None:
    # Every NULL keeps its place: at the start, in a run, nested, and at the end.
    value = deserialize_value(NULLS_IN_LISTS)
    assert value == [None, "a", None, None, [None], {"n": None, "l": [1, None]}, None]
    assert deserialize_value({"L": [{"NULL": True}] * 3}) == [None, None, None]
    image = {"list": NULLS_IN_LISTS, "only": {"L": [{"NULL": True}]}}
    assert deserialize_image(image) == {"list": value, "only": [None]}
    # Back to the same DynamoDB JSON (what the replicator writes), and boto3 agrees.
    from boto3.dynamodb.types import TypeDeserializer

    from ddb_stream_runtime.replicator import serialize_value

    assert serialize_value(value) == NULLS_IN_LISTS
    assert TypeDeserializer().deserialize(NULLS_IN_LISTS) == value


def test_image_none_and_empty() -> None:
    assert deserialize_image(None) is None
    assert deserialize_image({}) == {}


def test_sample_event_images(sample_event: dict[str, Any]) -> None:
    modify = sample_event["Records"][1]["dynamodb"]
    assert deserialize_image(modify["NewImage"]) == {"Message": "This item has changed", "Id": 101}
    assert deserialize_image(modify["OldImage"]) == {"Message": "New item!", "Id": 101}


@pytest.mark.parametrize(
    ("av", "names"),
    [
        ({"X": "1"}, "unknown type tag 'X'"),
        ({"s": "lowercase"}, "unknown type tag 's'"),
        ({}, "exactly one type tag"),
        ({"S": "a", "N": "1"}, "exactly one type tag"),
        ("plain string", "'plain string'"),
        (None, "got None"),
        ({"S": 5}, "'S' needs a string, got 5"),
        ({"N": "abc"}, "'N' needs a number string, got 'abc'"),
        ({"N": ""}, "'N' needs a number string, got ''"),
        ({"N": "1.2.3"}, "'N' needs a number string, got '1.2.3'"),
        ({"N": "NaN"}, "'N' needs a number string, got 'NaN'"),
        ({"N": 5}, "'N' needs a number string, got 5"),
        ({"N": 1.5}, "'N' needs a number string, got 1.5"),
        ({"B": "not base64!"}, "'B' needs base64 text, got 'not base64!'"),
        ({"B": 12}, "'B' needs base64 text, got 12"),
        ({"BOOL": "true"}, "'BOOL' needs true or false, got 'true'"),
        ({"NULL": False}, "'NULL' needs true, got False"),
        ({"SS": "abc"}, "'SS' needs a list, got 'abc'"),
        ({"SS": [1]}, "'S' needs a string, got 1"),
        ({"NS": ["x"]}, "'N' needs a number string, got 'x'"),
        ({"BS": ["@@"]}, "'B' needs base64 text, got '@@'"),
        ({"L": {"S": "a"}}, "'L' needs a list, got {'S': 'a'}"),
        ({"M": [1, 2]}, "'M' needs an object, got [1, 2]"),
    ],
)
def test_bad_values_raise_naming_the_tag_or_value(av: Any, names: str) -> None:
    with pytest.raises(DeserializationError) as caught:
        deserialize_value(av)
    assert names in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_error_names_the_attribute_path() -> None:
    image = {
        "ok": {"S": "fine"},
        "a": {"M": {"b": {"L": [{"S": "x"}, {"M": {"c": {"N": "twelve"}}}]}}},
    }
    with pytest.raises(DeserializationError) as caught:
        deserialize_image(image)
    assert caught.value.path == ("a", "b", 1, "c")
    assert str(caught.value) == "a.b[1].c: type tag 'N' needs a number string, got 'twelve'"


def test_error_for_unknown_tag_deep_in_a_list() -> None:
    with pytest.raises(DeserializationError, match=r"^lines\[0\]: unknown type tag 'Q'"):
        deserialize_image({"lines": {"L": [{"Q": 1}]}})


def test_error_message_truncates_large_values() -> None:
    with pytest.raises(DeserializationError) as caught:
        deserialize_value({"N": "9" * 10_000 + "x"})
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("image", ["not a map", ["a"], 5])
def test_image_must_be_an_object(image: Any) -> None:
    with pytest.raises(DeserializationError, match="an image is an object"):
        deserialize_image(image)


# --- parity with boto3 ------------------------------------------------------------------


def _for_boto3(value: Any) -> Any:
    """Lambda delivers B/BS as base64 text; boto3's client would have decoded it already."""
    if isinstance(value, dict):
        if len(value) == 1 and "B" in value:
            return {"B": deserialize_value(value)}
        if len(value) == 1 and "BS" in value:
            return {"BS": sorted(deserialize_value(value))}
        return {k: _for_boto3(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_for_boto3(v) for v in value]
    return value


def _normalise(value: Any) -> Any:
    """Common ground: every number a Decimal, boto3's Binary as bytes, sets frozen."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, Decimal)):
        return ("number", Decimal(value))
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return frozenset(_normalise(v) for v in value)
    return value


def test_parity_with_boto3_type_deserializer(rich_image: dict[str, Any]) -> None:
    from boto3.dynamodb import types  # boto3 is a runtime dependency: never skip
    boto = types.TypeDeserializer()
    theirs = {k: boto.deserialize(v) for k, v in _for_boto3(rich_image).items()}
    ours = deserialize_image(rich_image)
    assert _normalise(ours) == _normalise(theirs)
    assert len(ours or {}) == len(rich_image) == len(theirs)


# --- property: parity with boto3 on generated items, signs and exponents included --------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _strict(value: Any) -> Any:
    """Like _normalise, but numbers by their text: -0 and 0, 1.50 and 1.5 differ."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, Decimal)):
        return ("number", str(Decimal(value)))
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return frozenset(_strict(v) for v in value)
    return value


_NUMBER_TEXT = st.one_of(
    st.sampled_from(["-0", "0", "-0.0", "0.0", "-0.5", "1e3", "-1E-3", "1.50", "-00"]),
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1).map(str),
    # Bounded both ways: DynamoDB numbers carry at most 38 significant digits (without a
    # lower bound hypothesis drew -1e35 with 3 places, 39 digits, which boto3 rejects).
    st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-(10**30), max_value=10**30
    ).map(str),
    st.builds(
        lambda digits, exp, neg: f"{'-' if neg else ''}{digits}e{exp}",
        st.integers(min_value=0, max_value=10**20),
        st.integers(min_value=-100, max_value=100),
        st.booleans(),
    ),
)
_B64 = st.binary(max_size=12).map(lambda b: __import__("base64").b64encode(b).decode())
_SCALAR = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=8)),
    st.builds(lambda n: {"N": n}, _NUMBER_TEXT),
    st.builds(lambda b: {"B": b}, _B64),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda s: {"SS": s}, st.lists(st.text(max_size=5), min_size=1, unique=True)),
    st.builds(
        lambda s: {"NS": s},
        st.lists(_NUMBER_TEXT, min_size=1, max_size=5, unique_by=lambda t: Decimal(t)),
    ),
    st.builds(
        lambda s: {"BS": s},
        st.lists(st.binary(max_size=6), min_size=1, max_size=4, unique=True).map(
            lambda bs: [__import__("base64").b64encode(b).decode() for b in bs]
        ),
    ),
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"L": xs}, st.lists(inner, max_size=4)),
        st.builds(lambda m: {"M": m}, st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    ),
    max_leaves=12,
)
_ITEM = st.dictionaries(st.text(min_size=1, max_size=6), _VALUE, max_size=8)


@settings(max_examples=300, deadline=None)
@given(_ITEM)
def test_parity_with_boto3_on_generated_items(item: dict[str, Any]) -> None:
    from boto3.dynamodb import types

    from ddb_stream_runtime._aws import client_image  # B/BS decoded, as the client gives them

    boto = types.TypeDeserializer()
    theirs = {k: boto.deserialize(v) for k, v in client_image(item).items()}
    ours = deserialize_image(item)
    assert len(ours or {}) == len(item) == len(theirs)
    assert _strict(ours) == _strict(theirs)


def test_negative_zero_keeps_its_sign() -> None:
    from boto3.dynamodb import types

    theirs = types.TypeDeserializer().deserialize({"N": "-0"})
    ours = deserialize_value({"N": "-0"})
    assert str(theirs) == "-0" and ours == theirs
    assert isinstance(ours, Decimal) and ours.is_signed()
    negative, positive = deserialize_value({"L": [{"N": "-0"}, {"N": "0"}]})
    assert negative.is_signed() and str(negative) == "-0"
    assert positive == 0 and not isinstance(positive, Decimal)
    assert deserialize_image({"z": {"N": "-0"}})["z"].is_signed()  # type: ignore[index]


# --- the fast walk: same values as the strict walk, never accepts what it rejects ----------

from ddb_stream_runtime import deserialize as deserialize_module  # noqa: E402


def _typed(value: Any) -> Any:
    """Values with their exact types: int and Decimal, -0 and 0, 1.50 and 1.5 all differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(_typed(v) for v in value))
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(_ITEM)
def test_fast_walk_gives_the_strict_walks_values(item: dict[str, Any]) -> None:
    strict = deserialize_module._map(item)
    fast = deserialize_module._fast_map(item)
    assert len(fast) == len(item)
    assert _typed(fast) == _typed(strict)
    assert list(fast) == list(strict)  # attribute order kept


def test_valid_images_never_take_the_strict_walk(
    rich_image: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def strict_walk_used(value: Any) -> Any:
        raise AssertionError(f"strict walk used for valid input {value!r:.80}")

    monkeypatch.setattr(deserialize_module, "_map", strict_walk_used)
    assert deserialize_image(rich_image) == RICH_EXPECTED  # every tag, nested
    negative_zero = deserialize_image({"z": {"NS": ["-0", "1"]}, "n": {"N": "-0100"}})
    assert negative_zero == {"z": {Decimal("-0"), 1}, "n": -100}


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ({"S": "a", "N": "1"}, "exactly one type tag"),
        ({}, "exactly one type tag"),
        ({"S": 5}, "'S' needs a string, got 5"),
        ({"N": "NaN"}, "'N' needs a number string"),
        ({"N": "-Infinity"}, "'N' needs a number string"),
        ({"N": ""}, "'N' needs a number string"),
        ({"N": "-"}, "'N' needs a number string"),
        ({"BOOL": 1}, "'BOOL' needs true or false"),
        ({"NULL": False}, "'NULL' needs true"),
        ({"SS": ["a", 1]}, "'S' needs a string, got 1"),
        ({"SS": "ab"}, "'SS' needs a list"),
        ({"NS": ["1", ""]}, "'N' needs a number string, got ''"),
        ({"NS": ["1", "x"]}, "'N' needs a number string, got 'x'"),
        ({"NS": ["1", "\u00b2"]}, "'N' needs a number string"),
        ({"BS": ["AAE=", "@@"]}, "'B' needs base64 text, got '@@'"),
        ({"B": "AAE"}, "'B' needs base64 text"),
        ({"L": "ab"}, "'L' needs a list"),
        ({"M": ["a"]}, "'M' needs an object"),
        ({"Q": "1"}, "unknown type tag 'Q'"),
        ("S", "an attribute value is an object"),
    ],
)
def test_malformed_values_deep_inside_are_diagnosed(value: Any, names: str) -> None:
    # Inside a map inside a list: the fast walk meets them first and must not accept them.
    image = {"ok": {"S": "x"}, "a": {"L": [{"N": "1"}, {"M": {"b": value}}]}}
    with pytest.raises(DeserializationError) as caught:
        deserialize_image(image)
    assert names in str(caught.value)
    assert caught.value.path[:3] == ("a", 1, "b")
