"""Tests for ``StreamFilter``/``Rule``: pattern shapes, CDK output, local matching, validation."""

from __future__ import annotations

import copy
import doctest
import json
import re
from decimal import Decimal

import pytest

import ddb_stream_patterns.stream_filter as stream_filter_module
from ddb_stream_patterns.stream_filter import Rule, StreamFilter

# --- records -------------------------------------------------------------------------

# The sample record of the AWS Lambda guide, "Using event filtering with a DynamoDB event
# source" (primary key CustomerName; attributes AccountManager, PaymentTerms), plus an
# eventName. The guide prints ApproximateCreationDateTime as a string; Lambda delivers a
# JSON number (epoch seconds), as here.
DOC_RECORD = {
    "eventID": "1",
    "eventVersion": "1.0",
    "eventName": "INSERT",
    "eventSource": "aws:dynamodb",
    "dynamodb": {
        "ApproximateCreationDateTime": 1678831218.0,
        "Keys": {"CustomerName": {"S": "AnyCompany Industries"}},
        "NewImage": {
            "AccountManager": {"S": "Pat Candella"},
            "PaymentTerms": {"S": "60 days"},
            "CustomerName": {"S": "AnyCompany Industries"},
        },
        "SequenceNumber": "111",
        "SizeBytes": 26,
        "StreamViewType": "NEW_IMAGE",
    },
}


def remove_record(user_identity: dict | None) -> dict:
    """A REMOVE record shaped like the DynamoDB TTL guide's example."""
    record = {
        "eventID": "a0d2d4e3",
        "eventName": "REMOVE",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "ApproximateCreationDateTime": 1700000000,
            "Keys": {"pk": {"S": "SESSION#42"}},
            "OldImage": {
                "pk": {"S": "SESSION#42"},
                "expiresAt": {"N": "1699999000"},
                "owner": {"S": "alice"},
            },
            "SequenceNumber": "4200000000000000000001",
            "SizeBytes": 60,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    if user_identity is not None:
        record["userIdentity"] = user_identity
    return record


TTL_DELETE = remove_record({"type": "Service", "principalId": "dynamodb.amazonaws.com"})
MANUAL_DELETE = remove_record(None)


def modify_record(**new_image: dict) -> dict:
    return {
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"pk": {"S": "ORDER#1"}},
            "NewImage": {"pk": {"S": "ORDER#1"}, **new_image},
            "OldImage": {"pk": {"S": "ORDER#1"}, "status": {"S": "pending"}},
            "SizeBytes": 120,
        },
    }


def image(rule: Rule, attr: str = "a") -> dict:
    """The NewImage pattern fragment a single rule produces."""
    return StreamFilter(new_image={attr: rule}).to_pattern()["dynamodb"]["NewImage"][attr]


# --- pattern shapes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (Rule.equals("done", "shipped"), {"S": ["done", "shipped"]}),
        (Rule.equals(5), {"N": ["5"]}),
        (Rule.equals(5.0, 2.50), {"N": ["5", "2.5"]}),
        (Rule.equals(Decimal("1.50"), 100, 1e20), {"N": ["1.5", "100", "100000000000000000000"]}),
        (Rule.equals("5.0", attribute_type="N"), {"N": ["5.0"]}),
        (Rule.equals(True), {"BOOL": [True]}),
        (Rule.equals("AQID", attribute_type="B"), {"B": ["AQID"]}),
        (Rule.equals("red", attribute_type="SS"), {"SS": ["red"]}),
        (Rule.equals(True, attribute_type="NULL"), {"NULL": [True]}),
        (Rule.anything_but("done"), {"S": [{"anything-but": ["done"]}]}),
        (Rule.anything_but("a", "b"), {"S": [{"anything-but": ["a", "b"]}]}),
        (Rule.anything_but(0), {"N": [{"anything-but": ["0"]}]}),
        (Rule.prefix("ORDER#"), {"S": [{"prefix": "ORDER#"}]}),
        (Rule.prefix("12", attribute_type="N"), {"N": [{"prefix": "12"}]}),
        (Rule.suffix(".png"), {"S": [{"suffix": ".png"}]}),
        (Rule.equals_ignore_case("Done"), {"S": [{"equals-ignore-case": "Done"}]}),
        (Rule.exists(), {"S": [{"exists": True}]}),
        (Rule.exists("N"), {"N": [{"exists": True}]}),
        (Rule.not_exists(), {"S": [{"exists": False}]}),
        (Rule.not_exists(attribute_type="BOOL"), {"BOOL": [{"exists": False}]}),
    ],
)
def test_image_rule_patterns(rule: Rule, expected: dict) -> None:
    assert image(rule) == expected


def test_keys_and_old_image_sit_under_their_dynamodb_keys() -> None:
    f = StreamFilter(keys={"pk": Rule.prefix("ORDER#")}, old_image={"s": Rule.equals("x")})
    assert f.to_pattern() == {
        "dynamodb": {
            "Keys": {"pk": {"S": [{"prefix": "ORDER#"}]}},
            "OldImage": {"s": {"S": ["x"]}},
        }
    }


def test_event_names_pattern() -> None:
    f = StreamFilter(event_names=["INSERT", "MODIFY"])
    assert f.to_pattern() == {"eventName": ["INSERT", "MODIFY"]}
    assert f.event_names == ("INSERT", "MODIFY")


def test_metadata_patterns_are_plain_json_numbers() -> None:
    f = StreamFilter(
        size_bytes=Rule.numeric(">", 100, "<=", 4000),
        approximate_creation_time=Rule.between(1_700_000_000, 1_800_000_000),
    )
    assert f.to_pattern() == {
        "dynamodb": {
            "SizeBytes": [{"numeric": [">", 100, "<=", 4000]}],
            "ApproximateCreationDateTime": [
                {"numeric": [">=", 1_700_000_000, "<=", 1_800_000_000]}
            ],
        }
    }
    assert StreamFilter(size_bytes=Rule.equals(26)).to_pattern() == {
        "dynamodb": {"SizeBytes": [26]}
    }
    assert StreamFilter(size_bytes=Rule.exists()).to_pattern() == {
        "dynamodb": {"SizeBytes": [{"exists": True}]}
    }


def test_combined_filter_pattern() -> None:
    f = StreamFilter(
        event_names=["MODIFY"],
        new_image={"status": Rule.equals("done", "shipped")},
        old_image={"status": Rule.anything_but("done")},
        keys={"pk": Rule.prefix("ORDER#")},
        size_bytes=Rule.numeric(">", 100, "<=", 4000),
    )
    assert f.to_pattern() == {
        "eventName": ["MODIFY"],
        "dynamodb": {
            "Keys": {"pk": {"S": [{"prefix": "ORDER#"}]}},
            "NewImage": {"status": {"S": ["done", "shipped"]}},
            "OldImage": {"status": {"S": [{"anything-but": ["done"]}]}},
            "SizeBytes": [{"numeric": [">", 100, "<=", 4000]}],
        },
    }


def test_ttl_expiry_pattern() -> None:
    assert StreamFilter.ttl_expiry().to_pattern() == {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
    }


def test_ttl_expiry_can_be_narrowed() -> None:
    f = StreamFilter.ttl_expiry(keys={"pk": Rule.prefix("SESSION#")})
    assert f.to_pattern()["dynamodb"] == {"Keys": {"pk": {"S": [{"prefix": "SESSION#"}]}}}
    assert f.matches(TTL_DELETE)
    assert not f.matches(remove_record({"type": "Service", "principalId": "x"}))


def test_from_pattern_keeps_the_pattern_and_is_isolated_from_the_caller() -> None:
    raw = {"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}
    f = StreamFilter.from_pattern(raw)
    raw["dynamodb"]["Keys"]["CustomerName"]["S"].append("Other")
    assert f.to_pattern() == {
        "dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}
    }
    f.to_pattern()["dynamodb"].clear()
    assert f.matches(DOC_RECORD)


def test_filters_are_immutable_values() -> None:
    attrs = {"status": Rule.equals("done")}
    f = StreamFilter(new_image=attrs)
    attrs["other"] = Rule.equals("x")
    assert list(f.new_image) == ["status"]
    with pytest.raises(TypeError):
        f.new_image["x"] = Rule.equals("y")  # type: ignore[index]
    with pytest.raises(AttributeError):
        f.event_names = ["INSERT"]  # type: ignore[misc]
    assert f == StreamFilter(new_image={"status": Rule.equals("done")})
    assert len({f, StreamFilter(new_image={"status": Rule.equals("done")})}) == 1


def test_module_doctests_pass() -> None:
    result = doctest.testmod(stream_filter_module)
    assert result.attempted >= 8
    assert result.failed == 0


# --- CDK output ----------------------------------------------------------------------


def test_to_filter_equals_cdk_filter_criteria() -> None:
    from aws_cdk import aws_lambda as lambda_

    f = StreamFilter(
        event_names=["MODIFY"],
        new_image={"status": Rule.equals("done"), "n": Rule.equals(5)},
        size_bytes=Rule.numeric(">", 100),
    )
    assert f.to_filter() == lambda_.FilterCriteria.filter(f.to_pattern())
    assert json.loads(f.to_filter()["pattern"]) == f.to_pattern()


def test_to_filter_round_trips_the_ttl_preset_and_from_pattern() -> None:
    ttl = StreamFilter.ttl_expiry()
    assert json.loads(ttl.to_filter()["pattern"]) == ttl.to_pattern()
    again = StreamFilter.from_pattern(json.loads(ttl.to_filter()["pattern"]))
    assert again.to_filter() == ttl.to_filter()


def test_to_filters_returns_one_filter_per_stream_filter() -> None:
    a, b = StreamFilter(event_names=["INSERT"]), StreamFilter.ttl_expiry()
    assert StreamFilter.to_filters([a, b]) == [a.to_filter(), b.to_filter()]
    assert StreamFilter.to_filters([]) == []
    assert len(StreamFilter.to_filters([a] * 5)) == 5


def test_filters_synthesize_into_the_event_source_mapping() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk.assertions import Template
    from aws_cdk.aws_lambda_event_sources import DynamoEventSource

    stack = cdk.Stack(cdk.App(), "FilterStack")
    table = dynamodb.Table(
        stack,
        "T",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
    )
    fn = lambda_.Function(
        stack,
        "F",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(e, c): pass"),
    )
    filters = [StreamFilter(new_image={"status": Rule.equals("done")}), StreamFilter.ttl_expiry()]
    fn.add_event_source(
        DynamoEventSource(
            table,
            starting_position=lambda_.StartingPosition.LATEST,
            filters=StreamFilter.to_filters(filters),
        )
    )
    mapping = next(
        iter(Template.from_stack(stack).find_resources("AWS::Lambda::EventSourceMapping").values())
    )
    patterns = [
        json.loads(f["Pattern"]) for f in mapping["Properties"]["FilterCriteria"]["Filters"]
    ]
    assert patterns == [f.to_pattern() for f in filters]


# --- matching: the AWS Lambda guide's examples ---------------------------------------


def new_image(**attrs: list) -> dict:
    return {"dynamodb": {"NewImage": attrs}}


# The guide's DynamoDB filters, verbatim (its AND example repeats the "dynamodb" key, which
# JSON parsers collapse; here it is written once with both images).
GUIDE_KEYS = {"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}
GUIDE_MANAGERS = new_image(AccountManager={"S": ["Pat Candella", "Shirley Rodriguez"]})
GUIDE_AND = {
    "dynamodb": {
        "NewImage": {"AccountManager": {"S": ["Pat Candella"]}},
        "OldImage": {"AccountManager": {"S": ["Terry Whitlock"]}},
    }
}
GUIDE_EXISTS_INTERMEDIATE = new_image(Organizations=[{"exists": True}])
GUIDE_EXISTS_LEAF = new_image(Organizations={"L": {"S": [{"exists": True}]}})


def test_guide_key_filter() -> None:
    f = StreamFilter.from_pattern(GUIDE_KEYS)
    assert f.matches(DOC_RECORD)
    other = copy.deepcopy(DOC_RECORD)
    other["dynamodb"]["Keys"]["CustomerName"]["S"] = "Example Corp"
    assert not f.matches(other)
    built = StreamFilter(keys={"CustomerName": Rule.equals("AnyCompany Industries")})
    assert built.to_pattern() == GUIDE_KEYS


def test_guide_attribute_filter_is_an_or_of_values() -> None:
    f = StreamFilter.from_pattern(GUIDE_MANAGERS)
    assert f.matches(DOC_RECORD)
    shirley = copy.deepcopy(DOC_RECORD)
    shirley["dynamodb"]["NewImage"]["AccountManager"]["S"] = "Shirley Rodriguez"
    assert f.matches(shirley)
    terry = copy.deepcopy(DOC_RECORD)
    terry["dynamodb"]["NewImage"]["AccountManager"]["S"] = "Terry Whitlock"
    assert not f.matches(terry)
    built = StreamFilter(
        new_image={"AccountManager": Rule.equals("Pat Candella", "Shirley Rodriguez")}
    )
    assert built.to_pattern() == GUIDE_MANAGERS


def test_guide_and_filter_needs_both_images() -> None:
    handover = copy.deepcopy(DOC_RECORD)
    handover["eventName"] = "MODIFY"
    handover["dynamodb"]["OldImage"] = {"AccountManager": {"S": "Terry Whitlock"}}
    f = StreamFilter.from_pattern(GUIDE_AND)
    assert f.matches(handover)
    assert not f.matches(DOC_RECORD)  # NEW_IMAGE records carry no OldImage
    handover["dynamodb"]["OldImage"]["AccountManager"]["S"] = "Pat Candella"
    assert not f.matches(handover)


def test_guide_exists_only_works_on_leaves() -> None:
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "NewImage": {
                "UserID": {"S": "12345"},
                "Name": {"S": "John Doe"},
                "Organizations": {"L": [{"S": "Sales"}, {"S": "Marketing"}, {"S": "Support"}]},
            }
        },
    }
    assert not StreamFilter.from_pattern(GUIDE_EXISTS_INTERMEDIATE).matches(record)
    assert StreamFilter.from_pattern(GUIDE_EXISTS_LEAF).matches(record)
    assert not StreamFilter.from_pattern(GUIDE_EXISTS_LEAF).matches(DOC_RECORD)


def test_guide_multi_level_number_key_is_a_string() -> None:
    # "Multi-level filtering": {"Keys": {"Id": {"N": ["101"]}}} on a numeric key
    record = {"dynamodb": {"Keys": {"Id": {"N": "101"}}, "NewImage": {"Id": {"N": "101"}}}}
    f = StreamFilter(keys={"Id": Rule.equals(101)})
    assert f.to_pattern() == {"dynamodb": {"Keys": {"Id": {"N": ["101"]}}}}
    assert f.matches(record)
    assert not StreamFilter.from_pattern({"dynamodb": {"Keys": {"Id": {"N": [101]}}}}).matches(
        record
    )


def test_numbers_compare_by_their_text_but_numeric_compares_values() -> None:
    # the guide: "300, 300.0, and 3.0e2 are not considered equal"
    def size(value: object) -> dict:
        return {"dynamodb": {"SizeBytes": value}}

    assert StreamFilter.from_pattern(size([300])).matches(size(300))
    assert not StreamFilter.from_pattern(size([300])).matches(size(300.0))
    assert StreamFilter.from_pattern(size([{"numeric": ["=", 300]}])).matches(size(300.0))


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (new_image(AccountManager={"S": [{"prefix": "Pat"}]}), True),
        (new_image(AccountManager={"S": [{"prefix": "Terry"}]}), False),
        (new_image(AccountManager={"S": ["Pat Candella"]}, PaymentTerms={"S": ["60 days"]}), True),
        (new_image(AccountManager={"S": ["Pat Candella"]}, PaymentTerms={"S": ["30 days"]}), False),
        (new_image(AccountManager={"S": [{"exists": True}]}), True),
        (new_image(AccountManager=[{"exists": True}]), False),  # not a leaf
        (new_image(Region={"S": [{"exists": False}]}), True),
        (new_image(AccountManager={"S": [{"exists": False}]}), False),
        (new_image(PaymentTerms={"S": [{"anything-but": ["30 days"]}]}), True),
        (new_image(PaymentTerms={"S": [{"anything-but": ["60 days"]}]}), False),
        (new_image(Region={"S": [{"anything-but": ["EU"]}]}), False),  # missing field
        (new_image(PaymentTerms={"S": [{"suffix": "days"}]}), True),
        (new_image(AccountManager={"S": [{"equals-ignore-case": "pat CANDELLA"}]}), True),
        ({"dynamodb": {"SizeBytes": [{"numeric": [">", 10, "<=", 26]}]}}, True),
        ({"dynamodb": {"SizeBytes": [{"numeric": ["<", 26]}]}}, False),
        ({"eventName": ["INSERT"], "dynamodb": {"StreamViewType": ["NEW_IMAGE"]}}, True),
        ({"eventName": ["MODIFY", "REMOVE"]}, False),
        ({"dynamodb": {"OldImage": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}, False),
    ],
)
def test_more_filters_on_the_guide_record(pattern: dict, expected: bool) -> None:
    assert StreamFilter.from_pattern(pattern).matches(DOC_RECORD) is expected


def test_ttl_expiry_matches_ttl_deletes_only() -> None:
    ttl = StreamFilter.ttl_expiry()
    assert ttl.matches(TTL_DELETE)
    assert not ttl.matches(MANUAL_DELETE)
    assert not ttl.matches(remove_record({"type": "Service", "principalId": "someone"}))
    assert not ttl.matches({**TTL_DELETE, "eventName": "INSERT"})


def test_manual_deletes_are_selected_by_userIdentity_not_existing() -> None:
    manual = StreamFilter.from_pattern(
        {"eventName": ["REMOVE"], "userIdentity": {"type": [{"exists": False}]}}
    )
    assert manual.matches(MANUAL_DELETE)
    assert not manual.matches(TTL_DELETE)


# --- matching: each rule kind --------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (Rule.equals("done", "shipped"), {"S": "shipped"}, True),
        (Rule.equals("done", "shipped"), {"S": "pending"}, False),
        (Rule.equals("done"), {"S": "DONE"}, False),
        (Rule.equals(5), {"N": "5"}, True),
        (Rule.equals(5.0), {"N": "5"}, True),
        (Rule.equals(5), {"N": "5.0"}, False),  # "N" equality is string equality
        (Rule.equals("5.0", attribute_type="N"), {"N": "5"}, False),
        (Rule.equals(5), {"S": "5"}, False),  # other type key
        (Rule.equals(True), {"BOOL": True}, True),
        (Rule.equals(True), {"BOOL": False}, False),
        (Rule.equals(True), {"N": "1"}, False),
        (Rule.equals(True, attribute_type="NULL"), {"NULL": True}, True),
        (Rule.equals("red", attribute_type="SS"), {"SS": ["blue", "red"]}, True),  # any element
        (Rule.equals("green", attribute_type="SS"), {"SS": ["blue", "red"]}, False),
        (Rule.equals(7, attribute_type="NS"), {"NS": ["1", "7"]}, True),
        (Rule.anything_but("done"), {"S": "pending"}, True),
        (Rule.anything_but("done", "shipped"), {"S": "shipped"}, False),
        (Rule.anything_but("blue", attribute_type="SS"), {"SS": ["blue", "red"]}, True),
        (Rule.anything_but("done"), None, False),  # missing attribute
        (Rule.prefix("ORDER#"), {"S": "ORDER#1"}, True),
        (Rule.prefix("ORDER#"), {"S": "order#1"}, False),
        (Rule.prefix("12", attribute_type="N"), {"N": "123"}, True),
        (Rule.suffix(".png"), {"S": "a.png"}, True),
        (Rule.suffix(".png"), {"S": "a.jpg"}, False),
        (Rule.equals_ignore_case("Done"), {"S": "dONE"}, True),
        (Rule.equals_ignore_case("Done"), {"S": "undone"}, False),
        (Rule.exists(), {"S": ""}, True),
        (Rule.exists(), None, False),
        (Rule.exists(), {"N": "1"}, False),  # present, but not as S
        (Rule.exists("N"), {"N": "1"}, True),
        (Rule.not_exists(), None, True),
        (Rule.not_exists(), {"S": "x"}, False),
        (Rule.not_exists(), {"N": "1"}, True),
    ],
)
def test_rule_matching(rule: Rule, value: dict | None, expected: bool) -> None:
    new_image = {} if value is None else {"a": value}
    record = {"eventName": "MODIFY", "dynamodb": {"NewImage": new_image}}
    assert StreamFilter(new_image={"a": rule}).matches(record) is expected


def test_image_rule_on_a_record_without_that_image() -> None:
    # REMOVE records carry no NewImage: only exists-false rules can match there
    assert not StreamFilter(new_image={"owner": Rule.equals("alice")}).matches(TTL_DELETE)
    assert not StreamFilter(new_image={"owner": Rule.anything_but("bob")}).matches(TTL_DELETE)
    assert StreamFilter(new_image={"owner": Rule.not_exists()}).matches(TTL_DELETE)
    assert StreamFilter(old_image={"owner": Rule.equals("alice")}).matches(TTL_DELETE)


def test_combined_filter_matching() -> None:
    f = StreamFilter(
        event_names=["MODIFY"],
        new_image={"status": Rule.equals("done", "shipped")},
        old_image={"status": Rule.anything_but("done")},
        keys={"pk": Rule.prefix("ORDER#")},
        size_bytes=Rule.numeric(">", 100, "<=", 4000),
    )
    record = modify_record(status={"S": "shipped"})
    assert f.matches(record)
    assert not f.matches(modify_record(status={"S": "pending"}))
    assert not f.matches({**record, "eventName": "INSERT"})
    small = copy.deepcopy(record)
    small["dynamodb"]["SizeBytes"] = 100
    assert not f.matches(small)
    other_key = copy.deepcopy(record)
    other_key["dynamodb"]["Keys"]["pk"]["S"] = "USER#1"
    assert not f.matches(other_key)
    was_done = copy.deepcopy(record)
    was_done["dynamodb"]["OldImage"]["status"]["S"] = "done"
    assert not f.matches(was_done)


@pytest.mark.parametrize(
    ("size", "expected"), [(100, False), (101, True), (4000, True), (4001, False)]
)
def test_numeric_range_bounds(size: int, expected: bool) -> None:
    f = StreamFilter(size_bytes=Rule.numeric(">", 100, "<=", 4000))
    assert f.matches({"dynamodb": {"SizeBytes": size}}) is expected


@pytest.mark.parametrize(
    ("rule", "created", "expected"),
    [
        (Rule.between(1_700_000_000, 1_700_000_100), 1_700_000_000, True),
        (Rule.between(1_700_000_000, 1_700_000_100), 1_700_000_100.5, False),
        (Rule.numeric("=", 1_700_000_000), 1_700_000_000.0, True),
        (Rule.numeric(">=", 1_700_000_000), "1700000001.0", False),  # a string is not a number
        (Rule.equals(1_700_000_000), 1_700_000_000, True),
        (Rule.anything_but(1_700_000_000), 1_700_000_001, True),
    ],
)
def test_creation_time_rules(rule: Rule, created: object, expected: bool) -> None:
    f = StreamFilter(approximate_creation_time=rule)
    assert f.matches({"dynamodb": {"ApproximateCreationDateTime": created}}) is expected


def test_numeric_never_matches_dynamodb_numbers() -> None:
    # why numeric rules on images are refused: the evaluator, like Lambda, sees "N" values as
    # strings; the private matcher is used because the public API refuses this pattern
    pattern = {"dynamodb": {"NewImage": {"price": {"N": [{"numeric": [">", 1]}]}}}}
    record = modify_record(price={"N": "5"})
    assert stream_filter_module._match_object(pattern, record) is False
    assert StreamFilter(new_image={"price": Rule.equals(5)}).matches(record)


@pytest.mark.parametrize(
    ("pattern", "record", "expected"),
    [
        ({"x": [None]}, {"x": None}, True),
        ({"x": [None]}, {}, False),
        ({"x": [""]}, {"x": ""}, True),
        ({"x": ["a"]}, {"x": ["b", "a"]}, True),  # list-valued field: any element
        ({"x": ["c"]}, {"x": ["b", "a"]}, False),
        ({"x": [{"anything-but": "a"}]}, {"x": ["a", "b"]}, True),
        ({"x": [{"anything-but": {"prefix": "tmp"}}]}, {"x": "tmp1"}, False),
        ({"x": [{"anything-but": {"prefix": "tmp"}}]}, {"x": "keep"}, True),
        ({"x": [{"anything-but": {"suffix": ".tmp"}}]}, {"x": "a.tmp"}, False),
        ({"x": [1]}, {"x": 1.0}, False),  # numbers compare by their text
        ({"x": [1]}, {"x": "1"}, False),
        ({"x": [1]}, {"x": True}, False),
        ({"x": {"y": ["1"]}}, {"x": [{"y": "2"}, {"y": "1"}]}, True),  # list of objects
        ({"x": {"y": ["1"]}}, {"x": "flat"}, False),
        ({"x": {"y": [{"exists": False}]}}, {}, True),
        ({"x": [{"exists": True}, "a"]}, {"x": "b"}, True),  # OR of rule kinds
        ({"x": [{"exists": True}]}, {"x": []}, False),
    ],
)
def test_general_pattern_semantics(pattern: dict, record: dict, expected: bool) -> None:
    # EventBridge semantics on a made-up field "x": from_pattern refuses fields a stream
    # record never has, so the (validated) pattern goes to the private matcher
    stream_filter_module._validate_pattern(pattern)
    assert stream_filter_module._match_object(pattern, record) is expected


def test_matches_rejects_a_non_dict_record() -> None:
    with pytest.raises(TypeError, match="record must be a dict, got list"):
        StreamFilter(event_names=["INSERT"]).matches([DOC_RECORD])  # type: ignore[arg-type]


# --- validation ----------------------------------------------------------------------


def test_fails_empty_filter() -> None:
    with pytest.raises(
        ValueError, match="stream filter is empty: give at least one of event_names"
    ):
        StreamFilter()


def test_fails_equals_without_values() -> None:
    with pytest.raises(ValueError, match="Rule.equals needs at least one value, got none"):
        Rule.equals()


def test_fails_anything_but_without_values() -> None:
    with pytest.raises(ValueError, match="Rule.anything_but needs at least one value"):
        Rule.anything_but()


def test_fails_unknown_event_name() -> None:
    with pytest.raises(ValueError, match=r"unknown event_names \['UPDATE'\]"):
        StreamFilter(event_names=["INSERT", "UPDATE"])


def test_fails_event_names_empty() -> None:
    with pytest.raises(ValueError, match=re.escape("event_names must be a non-empty list, got []")):
        StreamFilter(event_names=[])


def test_fails_event_names_not_a_list() -> None:
    with pytest.raises(
        TypeError,
        match=re.escape("event_names must be a list of str, got str 'MODIFY' (wrap it in [...])"),
    ):
        StreamFilter(event_names="MODIFY")  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["new_image", "old_image", "keys"])
def test_fails_numeric_on_image_or_key_attribute(field: str) -> None:
    with pytest.raises(
        ValueError,
        match=rf"{field}\['price'\]: numeric \['>', 5\]: lambda sees dynamodb 'N' values as "
        r"strings, so a numeric rule never matches; use Rule.equals with string values",
    ):
        StreamFilter(**{field: {"price": Rule.numeric(">", 5)}})


@pytest.mark.parametrize("attribute_type", ["S", "N"])
def test_fails_numeric_with_an_attribute_type(attribute_type: str) -> None:
    with pytest.raises(
        ValueError, match=f"Rule.numeric cannot take attribute_type '{attribute_type}'"
    ):
        Rule(kind="numeric", values=(">", 1), attribute_type=attribute_type)


@pytest.mark.parametrize("make", [Rule.prefix, Rule.suffix, Rule.equals_ignore_case])
def test_fails_string_rule_with_a_non_string(make) -> None:
    with pytest.raises(
        ValueError, match=r"rule at Rule\.\w+ \(.+\): operand must be a string, got 5"
    ):
        make(5)


def test_fails_string_rule_on_a_non_string_type() -> None:
    with pytest.raises(ValueError, match="Rule.prefix only applies to string-valued types.*'BOOL'"):
        Rule.prefix("t", attribute_type="BOOL")


@pytest.mark.parametrize("op", ["=>", "!=", "=="])
def test_fails_bad_numeric_operator(op: str) -> None:
    with pytest.raises(ValueError, match=f"unknown operator '{op}'; expected one of"):
        Rule.numeric(op, 1)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Rule.numeric(">", 10, "<", 5),
        lambda: Rule.between(10, 5),
        lambda: Rule.numeric("<=", 5, ">=", 10),
    ],
)
def test_fails_lower_bound_above_upper_bound(make) -> None:
    with pytest.raises(
        ValueError, match="range matches nothing: lower bound >=? 10 is above upper"
    ):
        make()


def test_fails_empty_strict_range() -> None:
    with pytest.raises(ValueError, match="range matches nothing: lower bound > 5"):
        Rule.numeric(">", 5, "<", 5)
    assert Rule.between(5, 5).to_rules() == [{"numeric": [">=", 5, "<=", 5]}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((">", 1, ">", 2), r"one lower bound \(> or >=\) and one upper bound.*\['>', 1, '>', 2\]"),
        (("=", 1, "<", 2), r"one lower bound .*\['=', 1, '<', 2\]"),
        ((">", "1"), "value '1' is not a finite number"),
        ((">", True), "value True is not a finite number"),
        ((">", float("nan")), "value nan is not a finite number"),
        ((">", 1, "<", None), "value None is not a finite number"),
    ],
)
def test_fails_malformed_numeric(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule.numeric(*args)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Rule.equals("a", 1), r"values \['a', 1\] must be .* of one attribute type"),
        (lambda: Rule.equals(None), r"values \[None\] must be str, int, float, Decimal or bool"),
        (lambda: Rule.equals(1, attribute_type="S"), "1 does not fit type 'S'"),
        (lambda: Rule.equals("five", attribute_type="N"), "'five' does not fit type 'N'"),
        (lambda: Rule.equals(float("inf")), "inf does not fit type 'N'"),
        (lambda: Rule.equals(1, attribute_type="BOOL"), "1 does not fit type 'BOOL'"),
        (lambda: Rule.equals("x", attribute_type="STRING"), "unknown attribute_type 'STRING'"),
        (lambda: Rule(kind="contains", values=("x",)), "unknown rule kind 'contains'"),
        (lambda: Rule(kind="exists", values=(1,)), r"rule at Rule.exists \(exists\): .*got 1"),
    ],
)
def test_fails_bad_rule_values(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"new_image": {}}, "new_image must be a non-empty mapping of name to Rule, got {}"),
        ({"size_bytes": Rule.prefix("2")}, r"size_bytes is a json number: .*prefix rule \['2'\]"),
        ({"size_bytes": Rule.equals("26")}, r"size_bytes compares json numbers .*\['26'\]"),
        ({"approximate_creation_time": Rule.exists("N")}, "takes no attribute_type, got 'N'"),
    ],
)
def test_fails_bad_fields(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamFilter(**kwargs)


def test_fails_pattern_too_long() -> None:
    values = [f"value-{i:04d}" for i in range(400)]
    with pytest.raises(
        ValueError, match=r"filter pattern is \d{4} characters long; lambda allows at most 4096"
    ):
        StreamFilter(new_image={"status": Rule.equals(*values)})
    assert (
        len(StreamFilter(new_image={"status": Rule.equals(*values[:250])}).to_filter()["pattern"])
        <= 4096
    )


def test_pattern_length_is_counted_as_cdk_serializes_it() -> None:
    # pad to exactly the limit: the CDK's JSON is compact, so the limit is reached exactly
    base = StreamFilter(new_image={"s": Rule.equals("")}).to_filter()["pattern"]
    exact = StreamFilter(new_image={"s": Rule.equals("é" * (4096 - len(base)))})
    assert len(exact.to_filter()["pattern"]) == 4096
    with pytest.raises(ValueError, match="filter pattern is 4097 characters long"):
        StreamFilter(new_image={"s": Rule.equals("é" * (4097 - len(base)))})


def test_fails_too_many_filters() -> None:
    with pytest.raises(
        ValueError, match="too many filters: 6 given, an event source mapping takes at most 5"
    ):
        StreamFilter.to_filters([StreamFilter(event_names=["INSERT"])] * 6)


def test_to_filters_follows_a_raised_quota() -> None:
    assert (
        len(StreamFilter.to_filters([StreamFilter(event_names=["INSERT"])] * 6, max_filters=10))
        == 6
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keys": {"pk": "ORDER#1"}}, r"keys\['pk'\] must be a Rule .*, got str 'ORDER#1'"),
        ({"size_bytes": 26}, r"size_bytes must be a Rule .*, got int 26"),
    ],
)
def test_fails_wrong_field_types(kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        StreamFilter(**kwargs)


def test_fails_to_filters_with_a_raw_pattern() -> None:
    with pytest.raises(
        TypeError, match=r"filters\[0\] must be a StreamFilter, got dict \{'eventName'"
    ):
        StreamFilter.to_filters([{"eventName": ["INSERT"]}])  # type: ignore[list-item]


def test_fails_from_pattern_empty() -> None:
    with pytest.raises(ValueError, match=re.escape("pattern must be a non-empty dict, got {}")):
        StreamFilter.from_pattern({})


@pytest.mark.parametrize("pattern", [[], "{}", None, '{"eventName": ["INSERT"]}'])
def test_fails_from_pattern_not_a_dict(pattern: object) -> None:
    with pytest.raises(
        TypeError,
        match=re.escape(f"pattern must be a dict, got {type(pattern).__name__} {pattern!r}"),
    ):
        StreamFilter.from_pattern(pattern)  # type: ignore[arg-type]


@pytest.mark.parametrize("section", ["NewImage", "OldImage", "Keys"])
def test_fails_from_pattern_numeric_on_image_or_key(section: str) -> None:
    pattern = {"dynamodb": {section: {"price": {"N": [{"numeric": [">", 5]}]}}}}
    with pytest.raises(
        ValueError,
        match=rf"rule at dynamodb\.{section}\.price\.N: lambda sees dynamodb 'N' values as strings",
    ):
        StreamFilter.from_pattern(pattern)


def test_fails_from_pattern_too_long() -> None:
    pattern = {"dynamodb": {"NewImage": {"s": {"S": ["x" * 5000]}}}}
    length = len('{"dynamodb":{"NewImage":{"s":{"S":[""]}}}}') + 5000
    with pytest.raises(
        ValueError, match=f"filter pattern is {length} characters long; lambda allows at most 4096"
    ):
        StreamFilter.from_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (
            {"eventName": "INSERT"},
            "pattern at eventName must be a non-empty object or a non-empty list of rules, "
            "got 'INSERT'",
        ),
        ({"eventName": []}, r"pattern at eventName .* got \[\]"),
        ({"dynamodb": {}}, "pattern at dynamodb must be a non-empty object"),
        ({"x": [{"wildcard": "a*"}]}, "rule at x: unknown operator 'wildcard'"),
        ({"x": [{"prefix": "a", "suffix": "b"}]}, "rule at x must have exactly one operator"),
        ({"x": [{"prefix": 1}]}, r"rule at x \(prefix\): operand must be a string, got 1"),
        (
            {"x": [{"exists": "yes"}]},
            r"rule at x \(exists\): operand must be true or false, got 'yes'",
        ),
        ({"x": [{"numeric": [">", 5, "<", 1]}]}, "range matches nothing"),
        (
            {"x": [{"anything-but": []}]},
            r"rule at x \(anything-but\): expected a json string.*got \[\]",
        ),
        ({"x": [["a"]]}, r"rule at x: expected a json string, number, bool or null, got \['a'\]"),
        ({1: ["a"]}, "pattern keys must be strings, got 1"),
    ],
)
def test_fails_from_pattern_malformed(pattern: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamFilter.from_pattern(pattern)
