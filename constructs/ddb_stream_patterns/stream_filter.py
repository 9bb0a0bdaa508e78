"""Typed Lambda filter criteria for DynamoDB stream records, and a local evaluator.

An event source mapping drops (skips) the stream records its filters reject.
:class:`StreamFilter` builds those patterns from typed :class:`Rule` values, validates
them on creation, and evaluates them locally with Lambda's (EventBridge) semantics:

* every key of a pattern must match (AND); the rules of one list are alternatives (OR);
  the filters of one event source mapping are alternatives too (OR);
* a dict recurses into the record; a plain JSON value matches by equality (numbers by
  their text: ``300 != 300.0``); a record field holding a list matches when any of its
  elements does;
* image and key attributes are in DynamoDB JSON: ``{"status": {"S": ["done"]}}``.
  Numbers (``"N"``) are *strings* there, so equality on a number is string equality
  (``"5.0" != "5"``) and ``numeric`` rules never match them: this module refuses them.
  Python numbers given to :meth:`Rule.equals` are written as DynamoDB normalizes them
  (``5.0`` -> ``"5"``, ``Decimal("1.50")`` -> ``"1.5"``); strings are kept verbatim;
* ``exists`` only sees leaves (``{"S": [{"exists": true}]}``); ``exists: false``
  matches an absent attribute (or one of another type); an absent field never
  matches any other rule, ``anything-but`` included;
* ``dynamodb.SizeBytes`` and ``dynamodb.ApproximateCreationDateTime`` are real JSON
  numbers, so numeric rules work on them.

Example
-------
>>> f = StreamFilter(event_names=["MODIFY"], new_image={"status": Rule.equals("done")})
>>> f.to_pattern()
{'eventName': ['MODIFY'], 'dynamodb': {'NewImage': {'status': {'S': ['done']}}}}
>>> f.matches({"eventName": "MODIFY", "dynamodb": {"NewImage": {"status": {"S": "done"}}}})
True
>>> StreamFilter.ttl_expiry().matches({"eventName": "REMOVE", "dynamodb": {}})
False
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Literal

from ._validation import check_list, check_type

__all__ = ["EVENT_NAMES", "KINESIS_RECORD_FIELDS", "MAX_FILTERS", "MAX_PATTERN_LENGTH", "Rule",
           "StreamFilter", "kinesis_filters", "kinesis_pattern"]

EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
MAX_PATTERN_LENGTH = 4096  # characters of one serialized filter pattern
MAX_FILTERS = 5  # filters per event source mapping (the default quota)
TTL_PRINCIPAL = "dynamodb.amazonaws.com"

RuleKind = Literal[
    "equals", "anything-but", "prefix", "suffix", "equals-ignore-case", "exists", "numeric"
]
_N_IS_STRING = (
    "lambda sees dynamodb 'N' values as strings, so a numeric rule never matches; "
    "use Rule.equals with string values or filter in code"
)
_IMAGE_PATHS = {("dynamodb", "NewImage"), ("dynamodb", "OldImage"), ("dynamodb", "Keys")}
_VALUE_KINDS = frozenset({"equals", "anything-but"})
_STRING_KINDS = frozenset({"prefix", "suffix", "equals-ignore-case"})
_METADATA_KINDS = frozenset({"equals", "anything-but", "numeric", "exists"})
_STRING_TYPES = frozenset({"S", "B", "SS", "BS", "N", "NS"})
_JSON_KINDS = {type(None): "null", bool: "bool", int: "number", float: "number", str: "string"}
_VALUE_TYPES = {bool: "BOOL", int: "N", float: "N", Decimal: "N", str: "S"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, "=": operator.eq, ">": operator.gt, ">=": operator.ge
}
_BOUND_SIDE = {">": "lower", ">=": "lower", "<": "upper", "<=": "upper", "=": "equal"}
_MISSING = object()


def _json_kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), "other")


def _is_number(value: Any) -> bool:
    """A finite JSON number (int or float, not bool)."""
    return _json_kind(value) == "number" and math.isfinite(value)


def _fits_n(value: Any) -> bool:
    """A finite Python number, or a string DynamoDB accepts as a number."""
    if _VALUE_TYPES.get(type(value)) == "N":
        return math.isfinite(value)
    try:
        return isinstance(value, str) and Decimal(value).is_finite()
    except InvalidOperation:
        return False


_TYPE_ACCEPTS: dict[str, Callable[[Any], bool]] = {
    **dict.fromkeys(("S", "B", "SS", "BS"), lambda v: isinstance(v, str)),
    **dict.fromkeys(("N", "NS"), _fits_n),
    "BOOL": lambda v: isinstance(v, bool), "NULL": lambda v: v is True,
}


def _dynamodb_number(value: int | float | Decimal) -> str:
    """Write a number as DynamoDB does: no exponent, no leading or trailing zeros."""
    return format(Decimal(str(value)).normalize(), "f")


def _each(op: str) -> Callable[[list[Any]], list[Any]]:
    return lambda values: [{op: value} for value in values]


#: rule kind -> its rule list in a pattern, from its (already typed) values
_SERIALIZE: dict[str, Callable[[list[Any]], list[Any]]] = {
    "equals": list,
    "anything-but": lambda values: [{"anything-but": values}],
    "prefix": _each("prefix"),
    "suffix": _each("suffix"),
    "equals-ignore-case": _each("equals-ignore-case"),
    "exists": _each("exists"),
    "numeric": lambda values: [{"numeric": values}],
}


# --- Rule ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One condition on one field; build it with the static constructors.

    Parameters
    ----------
    kind
        The pattern operator (a key of the pattern syntax, e.g. ``anything-but``).
    values
        Its operands; several operands are alternatives (OR).
    attribute_type
        DynamoDB type key for image and key attributes: ``S``, ``N``, ``B``, ``BOOL``,
        ``NULL``, ``SS``, ``NS`` or ``BS``. Default: inferred from the values (str -> S,
        int/float/Decimal -> N, bool -> BOOL), ``S`` for the other kinds.

    Examples
    --------
    >>> Rule.equals("done", "shipped").to_rules()
    ['done', 'shipped']
    >>> Rule.equals(5.0).type_key, Rule.equals(5.0).to_rules()
    ('N', ['5'])
    >>> Rule.prefix("ORDER#").to_rules()
    [{'prefix': 'ORDER#'}]
    >>> Rule.between(1, 10).to_rules()
    [{'numeric': ['>=', 1, '<=', 10]}]
    """

    kind: RuleKind
    values: tuple[Any, ...]
    attribute_type: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        name = f"Rule.{str(self.kind).replace('-', '_')}"
        check_type(name, "attribute_type", self.attribute_type, str)
        if self.kind not in _SERIALIZE:
            raise ValueError(f"unknown rule kind {self.kind!r}; expected one of {list(_SERIALIZE)}")
        if not self.values:
            raise ValueError(f"{name} needs at least one value, got none")
        if self.attribute_type is not None and self.attribute_type not in _TYPE_ACCEPTS:
            raise ValueError(
                f"{name}: unknown attribute_type {self.attribute_type!r}; "
                f"expected one of {list(_TYPE_ACCEPTS)}"
            )
        if self.kind == "numeric" and self.attribute_type is not None:
            raise ValueError(
                f"{name} cannot take attribute_type {self.attribute_type!r}: numeric rules "
                f"only match json numbers, never strings, and {_N_IS_STRING}"
            )
        if self.kind in _VALUE_KINDS:
            kinds = sorted({_VALUE_TYPES.get(type(v), "?") for v in self.values})
            if "?" in kinds or (self.attribute_type is None and len(kinds) > 1):
                raise ValueError(
                    f"{name}: values {list(self.values)!r} must be str, int, float, Decimal "
                    "or bool, and of one attribute type unless attribute_type is given"
                )
            for value in self.values:
                if not _TYPE_ACCEPTS[self.type_key](value):
                    raise ValueError(f"{name}: {value!r} does not fit type {self.type_key!r}")
        if self.kind in _STRING_KINDS and self.type_key not in _STRING_TYPES:
            raise ValueError(
                f"{name} only applies to string-valued types {sorted(_STRING_TYPES)}, "
                f"got attribute_type {self.attribute_type!r}"
            )
        for rule in self.to_rules():
            _validate_rule(rule, (name,))

    @staticmethod
    def equals(*values: Any, attribute_type: str | None = None) -> Rule:
        """Match any of ``values`` (``Rule.equals("a", "b")`` is ``a OR b``)."""
        return Rule(kind="equals", values=values, attribute_type=attribute_type)

    @staticmethod
    def anything_but(*values: Any, attribute_type: str | None = None) -> Rule:
        """Match a present value equal to none of ``values``."""
        return Rule(kind="anything-but", values=values, attribute_type=attribute_type)

    @staticmethod
    def prefix(text: str, *, attribute_type: str | None = None) -> Rule:
        """Match a string starting with ``text``."""
        return Rule(kind="prefix", values=(text,), attribute_type=attribute_type)

    @staticmethod
    def suffix(text: str, *, attribute_type: str | None = None) -> Rule:
        """Match a string ending with ``text``."""
        return Rule(kind="suffix", values=(text,), attribute_type=attribute_type)

    @staticmethod
    def equals_ignore_case(text: str, *, attribute_type: str | None = None) -> Rule:
        """Match a string equal to ``text``, ignoring case."""
        return Rule(kind="equals-ignore-case", values=(text,), attribute_type=attribute_type)

    @staticmethod
    def exists(attribute_type: str | None = None) -> Rule:
        """Match when the attribute is present with this type (default ``S``)."""
        return Rule(kind="exists", values=(True,), attribute_type=attribute_type)

    @staticmethod
    def not_exists(attribute_type: str | None = None) -> Rule:
        """Match when the attribute is absent, or has another type (default ``S``)."""
        return Rule(kind="exists", values=(False,), attribute_type=attribute_type)

    @staticmethod
    def numeric(op: str, value: float, op2: str | None = None, value2: float | None = None) -> Rule:
        """Compare a JSON number: ``Rule.numeric(">", 100, "<=", 4000)``.

        Only for ``size_bytes`` and ``approximate_creation_time``: image and key numbers
        are strings, which numeric rules never match.
        """
        extra = () if op2 is None and value2 is None else (op2, value2)
        return Rule(kind="numeric", values=(op, value, *extra))

    @staticmethod
    def between(low: float, high: float) -> Rule:
        """Match ``low <= x <= high`` on a JSON number."""
        return Rule.numeric(">=", low, "<=", high)

    @property
    def type_key(self) -> str:
        """The DynamoDB type key this rule sits under in an image or key pattern."""
        if self.attribute_type is not None:
            return self.attribute_type
        return _VALUE_TYPES[type(self.values[0])] if self.kind in _VALUE_KINDS else "S"

    def to_rules(self, *, typed: bool = True) -> list[Any]:
        """The rule list of a pattern; ``typed`` writes numbers as DynamoDB "N" strings."""
        values = list(self.values)
        if typed and self.kind in _VALUE_KINDS and self.type_key in ("N", "NS"):
            values = [v if isinstance(v, str) else _dynamodb_number(v) for v in values]
        return _SERIALIZE[self.kind](values)


# --- pattern validation ----------------------------------------------------------------


def _check_numeric(arg: Any, where: str) -> None:
    if not isinstance(arg, list | tuple) or len(arg) not in (2, 4):
        raise ValueError(f"{where}: needs [op, value] or [op, value, op, value], got {arg!r}")
    ops, bounds = list(arg[0::2]), list(arg[1::2])
    for op in ops:
        if op not in _COMPARE:
            raise ValueError(f"{where}: unknown operator {op!r}; expected one of {list(_COMPARE)}")
    for bound in bounds:
        if not _is_number(bound):
            raise ValueError(f"{where}: value {bound!r} is not a finite number")
    if len(arg) == 2:
        return
    sides = {_BOUND_SIDE[op]: (op, bound) for op, bound in zip(ops, bounds, strict=True)}
    if set(sides) != {"lower", "upper"}:
        raise ValueError(
            f"{where}: a range needs one lower bound (> or >=) and one upper bound "
            f"(< or <=), got {list(arg)!r}"
        )
    (lo_op, lo), (hi_op, hi) = sides["lower"], sides["upper"]
    if lo > hi or (lo == hi and (lo_op, hi_op) != (">=", "<=")):
        raise ValueError(
            f"{where}: range matches nothing: lower bound {lo_op} {lo!r} is above "
            f"upper bound {hi_op} {hi!r}"
        )


def _check_string(arg: Any, where: str) -> None:
    if not isinstance(arg, str):
        raise ValueError(f"{where}: operand must be a string, got {arg!r}")


def _check_scalar(value: Any, where: str) -> None:
    if _json_kind(value) == "other" or (_json_kind(value) == "number" and not _is_number(value)):
        raise ValueError(f"{where}: expected a json string, number, bool or null, got {value!r}")


def _check_anything_but(arg: Any, where: str) -> None:
    if isinstance(arg, Mapping) and len(arg) == 1 and set(arg) <= {"prefix", "suffix"}:
        _check_string(next(iter(arg.values())), where)
    elif isinstance(arg, list) and arg:
        for value in arg:
            _check_scalar(value, where)
    else:
        _check_scalar(arg, where)


def _check_bool(arg: Any, where: str) -> None:
    if not isinstance(arg, bool):
        raise ValueError(f"{where}: operand must be true or false, got {arg!r}")


def _validate_rule(rule: Any, path: tuple[str, ...]) -> None:
    where = f"rule at {'.'.join(path)}"
    if not isinstance(rule, Mapping):
        _check_scalar(rule, where)
        return
    if len(rule) != 1:
        raise ValueError(f"{where} must have exactly one operator, got {dict(rule)!r}")
    ((op, arg),) = rule.items()
    if op not in _OPERATORS:
        raise ValueError(f"{where}: unknown operator {op!r}; expected one of {list(_OPERATORS)}")
    if op == "numeric" and path[:2] in _IMAGE_PATHS:
        raise ValueError(f"{where}: {_N_IS_STRING}")
    _OPERATORS[op][0](arg, f"{where} ({op})")


def _validate_pattern(pattern: Mapping[str, Any], path: tuple[str, ...] = ()) -> None:
    for key, spec in pattern.items():
        where = (*path, str(key))
        if not isinstance(key, str):
            raise ValueError(f"pattern keys must be strings, got {key!r} at {'.'.join(where)}")
        if isinstance(spec, Mapping) and spec:
            _validate_pattern(spec, where)
        elif isinstance(spec, list) and spec:
            for rule in spec:
                _validate_rule(rule, where)
        else:
            raise ValueError(
                f"pattern at {'.'.join(where)} must be a non-empty object or a non-empty "
                f"list of rules, got {spec!r}"
            )


#: The fields of a stream record as Lambda delivers it (the DynamoDB Streams ``Record`` and
#: ``StreamRecord`` shapes, plus Lambda's ``eventSourceARN``): ``None`` is a leaf, ``"item"``
#: an attribute map (any attribute name, then a DynamoDB type key).
_RECORD_FIELDS: dict[str, Any] = {
    "awsRegion": None, "eventID": None, "eventName": None, "eventSource": None,
    "eventSourceARN": None, "eventVersion": None,
    "userIdentity": {"type": None, "principalId": None},
    "dynamodb": {
        "ApproximateCreationDateTime": None, "Keys": "item", "NewImage": "item",
        "OldImage": "item", "SequenceNumber": None, "SizeBytes": None, "StreamViewType": None,
    },
}
_ATTRIBUTE_TYPES = frozenset({*_TYPE_ACCEPTS, "M", "L"})


def _check_fields(
    pattern: Mapping[str, Any], schema: Any = None, path: tuple[str, ...] = ()
) -> None:
    """Refuse pattern fields a stream record never has: such a filter never matches."""
    schema = _RECORD_FIELDS if schema is None else schema
    for key, spec in pattern.items():
        where = ".".join((*path, str(key)))
        if schema == "item":  # key is an attribute name: below it, a DynamoDB type key
            if isinstance(spec, Mapping):
                for type_key in spec:
                    if type_key not in _ATTRIBUTE_TYPES:
                        raise ValueError(
                            f"pattern field {where}.{type_key} never matches: an attribute "
                            f"holds one of the DynamoDB type keys {sorted(_ATTRIBUTE_TYPES)}"
                        )
            continue
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean {'.'.join((*path, close[0]))!r}?)" if close else ""
            raise ValueError(
                f"pattern field {where!r} is never in a dynamodb stream record, so the filter "
                f"never matches{hint}; fields here: {sorted(schema)}"
            )
        below = schema[key]
        if below is not None and isinstance(spec, Mapping):
            _check_fields(spec, below, (*path, str(key)))


# The local cloud also evaluates SQS event-source filters with this class; an SQS message
# record has other fields, so a pattern on them is left to the general validation.
_SQS_ONLY_FIELDS = frozenset(
    {"body", "messageId", "receiptHandle", "attributes", "messageAttributes", "md5OfBody"}
)
_SQS_FIELDS = _SQS_ONLY_FIELDS | {"eventSource", "eventSourceARN", "awsRegion"}


def _is_sqs_pattern(pattern: Mapping[str, Any]) -> bool:
    return bool(set(pattern) & _SQS_ONLY_FIELDS) and set(pattern) <= _SQS_FIELDS


# --- local evaluation ------------------------------------------------------------------


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values; numbers compare by their text, as Lambda does (300 != 300.0)."""
    return _json_kind(a) == _json_kind(b) != "other" and json.dumps(a) == json.dumps(b)


def _match_anything_but(arg: Any, leaves: list[Any]) -> bool:
    if isinstance(arg, Mapping):
        ((op, operand),) = arg.items()
        return any(not _OPERATORS[op][1](operand, [leaf]) for leaf in leaves)
    excluded = arg if isinstance(arg, list) else [arg]
    return any(not any(_json_equal(x, leaf) for x in excluded) for leaf in leaves)


def _match_numeric(arg: list[Any], leaves: list[Any]) -> bool:
    conditions = list(zip(arg[0::2], arg[1::2], strict=True))
    return any(
        _is_number(leaf) and all(_COMPARE[op](leaf, bound) for op, bound in conditions)
        for leaf in leaves
    )


def _strings(leaves: list[Any]) -> list[str]:
    return [leaf for leaf in leaves if isinstance(leaf, str)]


#: operator -> (operand check, matcher over the scalar values found at the field)
_OPERATORS: dict[str, tuple[Callable[[Any, str], None], Callable[[Any, list[Any]], bool]]] = {
    "prefix": (_check_string, lambda arg, leaves: any(s.startswith(arg) for s in _strings(leaves))),
    "suffix": (_check_string, lambda arg, leaves: any(s.endswith(arg) for s in _strings(leaves))),
    "equals-ignore-case": (
        _check_string,
        lambda arg, leaves: any(s.lower() == arg.lower() for s in _strings(leaves)),
    ),
    "anything-but": (_check_anything_but, _match_anything_but),
    "numeric": (_check_numeric, _match_numeric),
    "exists": (_check_bool, lambda arg, leaves: bool(leaves) == arg),
}


def _leaves(value: Any) -> list[Any]:
    """The scalar values at a field: none when absent or an object, a list's scalars."""
    if value is _MISSING or isinstance(value, Mapping):
        return []
    if isinstance(value, list):
        return [v for v in value if not isinstance(v, Mapping | list)]
    return [value]


def _match_rule(rule: Any, leaves: list[Any]) -> bool:
    if isinstance(rule, Mapping):
        ((op, arg),) = rule.items()
        return _OPERATORS[op][1](arg, leaves)
    return any(_json_equal(rule, leaf) for leaf in leaves)


def _match_object(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches ``pattern`` (every key; any rule of a list)."""
    for key, spec in pattern.items():
        value = event.get(key, _MISSING)
        if isinstance(spec, Mapping):  # an absent or non-object field has no leaves below
            items = value if isinstance(value, list) else [value]
            objects = [v for v in items if isinstance(v, Mapping)] or [{}]
            matched = any(_match_object(spec, obj) for obj in objects)
        else:
            matched = any(_match_rule(rule, _leaves(value)) for rule in spec)
        if not matched:
            return False
    return True


# --- StreamFilter ----------------------------------------------------------------------


_RULE_HINT = "e.g. Rule.equals('done')"


def _freeze_attributes(name: str, attributes: Any) -> Mapping[str, Rule]:
    check_type("StreamFilter", name, attributes, Mapping, "a dict of attribute name -> Rule")
    if not attributes:
        raise ValueError(f"{name} must be a non-empty mapping of name to Rule, got {attributes!r}")
    for attr, rule in attributes.items():
        check_type("StreamFilter", f"{name}[{attr!r}]", rule, Rule, _RULE_HINT)
        if rule.kind == "numeric":
            raise ValueError(f"{name}[{attr!r}]: numeric {list(rule.values)!r}: {_N_IS_STRING}")
    return MappingProxyType(dict(attributes))


def _check_metadata(name: str, rule: Any) -> None:
    check_type("StreamFilter", name, rule, Rule, _RULE_HINT)
    if rule.kind not in _METADATA_KINDS:
        raise ValueError(
            f"{name} is a json number: use Rule.numeric, equals, anything_but or exists, "
            f"got a {rule.kind} rule {list(rule.values)!r}"
        )
    if rule.attribute_type is not None:
        raise ValueError(f"{name} takes no attribute_type, got {rule.attribute_type!r}")
    if rule.kind in _VALUE_KINDS and not all(_is_number(v) for v in rule.values):
        raise ValueError(f"{name} compares json numbers (int or float), got {list(rule.values)!r}")


def _serialize(pattern: Mapping[str, Any]) -> str:
    """The pattern JSON as CDK writes it (compact, non-ASCII kept)."""
    return json.dumps(pattern, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, kw_only=True)
class StreamFilter:
    """One Lambda filter for DynamoDB stream records: every given field must match.

    Parameters
    ----------
    event_names
        Any of ``INSERT``, ``MODIFY``, ``REMOVE`` (OR). Default: any event.
    new_image, old_image, keys
        Attribute name -> :class:`Rule` on ``dynamodb.NewImage``/``OldImage``/``Keys``.
        Default: no condition. Numeric rules are refused (DynamoDB numbers are strings).
    size_bytes
        Rule on ``dynamodb.SizeBytes`` (a JSON number). Default: no condition.
    approximate_creation_time
        Rule on ``dynamodb.ApproximateCreationDateTime`` (epoch seconds, a JSON number,
        e.g. ``1678831218.0``). Default: no condition. Prefer numeric rules for both:
        ``Rule.equals`` compares a number's text, and ``1678831218 != 1678831218.0``.

    Raises
    ------
    ValueError
        When the filter is empty, a field or rule is invalid, or the serialized pattern
        is longer than 4096 characters.

    Examples
    --------
    >>> f = StreamFilter(keys={"pk": Rule.prefix("ORDER#")}, size_bytes=Rule.numeric(">", 100))
    >>> f.to_pattern()["dynamodb"]
    {'Keys': {'pk': {'S': [{'prefix': 'ORDER#'}]}}, 'SizeBytes': [{'numeric': ['>', 100]}]}
    >>> f.matches({"dynamodb": {"Keys": {"pk": {"S": "ORDER#1"}}, "SizeBytes": 26}})
    False
    """

    event_names: Sequence[str] | None = None
    new_image: Mapping[str, Rule] | None = None
    old_image: Mapping[str, Rule] | None = None
    keys: Mapping[str, Rule] | None = None
    size_bytes: Rule | None = None
    approximate_creation_time: Rule | None = None
    _extra: Mapping[str, Any] | None = field(default=None, repr=False)  # raw pattern entries

    def __post_init__(self) -> None:
        if self.event_names is not None:
            check_list("StreamFilter", "event_names", self.event_names, str)
            if not self.event_names:
                raise ValueError(f"event_names must be a non-empty list, got {self.event_names!r}")
            unknown = [name for name in self.event_names if name not in EVENT_NAMES]
            if unknown:
                raise ValueError(f"unknown event_names {unknown!r}; expected {list(EVENT_NAMES)}")
            object.__setattr__(self, "event_names", tuple(self.event_names))
        for name in ("new_image", "old_image", "keys"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _freeze_attributes(name, getattr(self, name)))
        for name in ("size_bytes", "approximate_creation_time"):
            if getattr(self, name) is not None:
                _check_metadata(name, getattr(self, name))
        pattern = self.to_pattern()
        if not pattern:
            raise ValueError(
                "stream filter is empty: give at least one of event_names, new_image, "
                "old_image, keys, size_bytes, approximate_creation_time"
            )
        _validate_pattern(pattern)
        if _is_kinesis_pattern(pattern):  # a raw Kinesis pattern (local cloud evaluation)
            _check_fields(pattern["data"], KINESIS_RECORD_FIELDS, ("data",))
        elif not _is_sqs_pattern(pattern):
            _check_fields(pattern)
        if len(_serialize(pattern)) > MAX_PATTERN_LENGTH:
            raise ValueError(
                f"filter pattern is {len(_serialize(pattern))} characters long; lambda "
                f"allows at most {MAX_PATTERN_LENGTH}"
            )

    def __hash__(self) -> int:
        return hash(_serialize(self.to_pattern()))

    @classmethod
    def from_pattern(cls, pattern: Mapping[str, Any]) -> StreamFilter:
        """Wrap a raw pattern dict, validated like a built one.

        >>> StreamFilter.from_pattern({"eventName": ["INSERT"]}).to_pattern()
        {'eventName': ['INSERT']}
        """
        check_type("StreamFilter.from_pattern", "pattern", pattern, Mapping, optional=False)
        if not pattern:
            raise ValueError(f"pattern must be a non-empty dict, got {pattern!r}")
        return cls(_extra=copy.deepcopy(dict(pattern)))

    @classmethod
    def ttl_expiry(
        cls, *, keys: Mapping[str, Rule] | None = None, old_image: Mapping[str, Rule] | None = None
    ) -> StreamFilter:
        """Deletions by DynamoDB's TTL process (not by users), optionally narrowed.

        TTL deletes carry ``userIdentity {"type": "Service", "principalId":
        "dynamodb.amazonaws.com"}``; user deletes carry no ``userIdentity``. DynamoDB
        Local's TTL records carry none either, so this filter never matches them.
        """
        identity = {"type": ["Service"], "principalId": [TTL_PRINCIPAL]}
        return cls(
            event_names=["REMOVE"], keys=keys, old_image=old_image,
            _extra={"userIdentity": identity},
        )

    @staticmethod
    def to_filters(
        filters: Sequence[StreamFilter], *, max_filters: int = MAX_FILTERS
    ) -> list[dict[str, Any]]:
        """Check a list of filters (OR-ed) and return them for ``DynamoEventSource(filters=)``.

        ``max_filters`` is Lambda's default quota (5); raise it only with the quota.
        """
        check_list("StreamFilter.to_filters", "filters", filters, StreamFilter)
        filters = list(filters)
        if len(filters) > max_filters:
            raise ValueError(
                f"too many filters: {len(filters)} given, an event source mapping takes at "
                f"most {max_filters}"
            )
        return [item.to_filter() for item in filters]

    def to_pattern(self) -> dict[str, Any]:
        """The filter pattern, as a fresh dict."""
        pattern: dict[str, Any] = {}
        if self.event_names is not None:
            pattern["eventName"] = list(self.event_names)
        pattern.update(copy.deepcopy(dict(self._extra or {})))
        ddb: dict[str, Any] = {}
        images = (("Keys", self.keys), ("NewImage", self.new_image), ("OldImage", self.old_image))
        for key, attributes in images:
            if attributes is not None:
                ddb[key] = {n: {r.type_key: r.to_rules()} for n, r in attributes.items()}
        metadata = (("SizeBytes", self.size_bytes),
                    ("ApproximateCreationDateTime", self.approximate_creation_time))
        for key, rule in metadata:
            if rule is not None:
                ddb[key] = rule.to_rules(typed=False)
        if ddb:
            pattern["dynamodb"] = {**pattern.get("dynamodb", {}), **ddb}
        return pattern

    def to_filter(self) -> dict[str, Any]:
        """``aws_lambda.FilterCriteria.filter(pattern)``, i.e. ``{"pattern": "<json>"}``."""
        from aws_cdk import aws_lambda as lambda_  # here, so matches() needs no jsii start-up

        return dict(lambda_.FilterCriteria.filter(self.to_pattern()))

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether Lambda would deliver this stream ``record`` (one item of ``Records``)."""
        if not isinstance(record, Mapping):
            raise TypeError(f"record must be a dict, got {type(record).__name__}")
        return _match_object(self.to_pattern(), record)


# --- Kinesis Data Streams for DynamoDB -----------------------------------------------------
#
# On a Kinesis event source Lambda filters only on the record's ``data`` key, decoded as
# JSON (Lambda developer guide, "Using event filtering with a Kinesis event source":
# "Kinesis event source mappings only support filtering on the data key"). There the data
# is the change record DynamoDB writes to Kinesis, which is not the DynamoDB Streams record
# Lambda delivers from a table's stream: it has ``tableName`` and ``recordFormat``, no
# ``eventVersion``/``eventSourceARN``/``awsRegion`` of Lambda's making, no
# ``dynamodb.SequenceNumber`` or ``StreamViewType``, and its
# ``dynamodb.ApproximateCreationDateTime`` counts milliseconds or microseconds (the table's
# ``ApproximateCreationDateTimePrecision``), not seconds. So a filter is wrapped under
# ``data`` and refused when it names a field the Kinesis record never has, or compares the
# creation time (its unit differs between the two sources).

#: The fields of the change record DynamoDB writes to a Kinesis data stream.
KINESIS_RECORD_FIELDS: dict[str, Any] = {
    "awsRegion": None, "eventID": None, "eventName": None, "eventSource": None,
    "recordFormat": None, "tableName": None,
    "userIdentity": {"type": None, "principalId": None},
    "dynamodb": {
        "ApproximateCreationDateTime": None, "ApproximateCreationDateTimePrecision": None,
        "Keys": "item", "NewImage": "item", "OldImage": "item", "SizeBytes": None,
    },
}


def _is_kinesis_pattern(pattern: Mapping[str, Any]) -> bool:
    """A pattern for a Kinesis source fed by a table: ``{"data": {...}}``."""
    return set(pattern) == {"data"} and isinstance(pattern["data"], Mapping)


def kinesis_pattern(stream_filter: StreamFilter) -> dict[str, Any]:
    """The pattern of ``stream_filter`` for a Kinesis event source fed by a table.

    Raises ``ValueError`` naming the field when the filter cannot apply to the DynamoDB
    change records in a Kinesis stream (see the notes above).

    >>> kinesis_pattern(StreamFilter(event_names=["INSERT"]))
    {'data': {'eventName': ['INSERT']}}
    """
    check_type("kinesis_pattern", "stream_filter", stream_filter, StreamFilter, optional=False)
    pattern = stream_filter.to_pattern()
    if "ApproximateCreationDateTime" in pattern.get("dynamodb", {}):
        raise ValueError(
            "filter on dynamodb.ApproximateCreationDateTime "
            f"{pattern['dynamodb']['ApproximateCreationDateTime']!r} cannot apply to a kinesis "
            "source: there it counts milliseconds or microseconds, on a dynamodb stream "
            "seconds; filter on it in code"
        )
    try:
        _check_fields(pattern, KINESIS_RECORD_FIELDS)
    except ValueError as exc:
        raise ValueError(
            f"filter {pattern!r} cannot apply to a kinesis source: "
            + str(exc).replace("a dynamodb stream record", "the record dynamodb writes to "
                               "kinesis")
        ) from None
    wrapped = {"data": pattern}
    if len(_serialize(wrapped)) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"filter pattern wrapped under data is {len(_serialize(wrapped))} characters "
            f"long; lambda allows at most {MAX_PATTERN_LENGTH}"
        )
    return wrapped


def kinesis_filters(
    filters: Sequence[StreamFilter], *, max_filters: int = MAX_FILTERS
) -> list[dict[str, Any]]:
    """``StreamFilter.to_filters`` for a Kinesis event source: each pattern under ``data``."""
    check_list("kinesis_filters", "filters", filters, StreamFilter)
    filters = list(filters)
    if len(filters) > max_filters:
        raise ValueError(
            f"too many filters: {len(filters)} given, an event source mapping takes at "
            f"most {max_filters}"
        )
    from aws_cdk import aws_lambda as lambda_  # here, so the module needs no jsii start-up

    return [dict(lambda_.FilterCriteria.filter(kinesis_pattern(f))) for f in filters]
