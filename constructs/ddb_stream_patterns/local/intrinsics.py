"""Resolve CloudFormation intrinsic functions in a template's properties.

The deployer creates every resource itself (no CloudFormation engine runs locally), so
it resolves ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``... against what it has
already created: a :class:`Context` maps logical IDs to physical values and attributes.

>>> ctx = Context(refs={"Queue": "https://q"}, attributes={"Queue": {"Arn": "arn:q"}})
>>> resolve({"Fn::Join": ["|", [{"Ref": "Queue"}, {"Fn::GetAtt": ["Queue", "Arn"]}]]}, ctx)
'https://q|arn:q'
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NO_VALUE",
    "Context",
    "IntrinsicError",
    "evaluate_condition",
    "references",
    "resolve",
]

#: The pseudo parameters a ``Ref`` can name (``AWS::NoValue`` removes the property).
PSEUDO_PARAMETERS = (
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
)


class IntrinsicError(ValueError):
    """An intrinsic cannot be resolved: unknown name, bad shape or unsupported function."""


class _NoValue:
    """``Ref: AWS::NoValue``: the enclosing property (or list item) disappears."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()

#: ``fallback(logical_id, attribute)``: a value for a name the context does not hold
#: (``attribute`` is ``None`` for a ``Ref``); raise ``KeyError`` to refuse.
Fallback = Callable[[str, "str | None"], Any]


@dataclass
class Context:
    """What intrinsics resolve against.

    Parameters
    ----------
    refs
        ``Ref`` values: logical ID (resource or parameter) → physical value.
    attributes
        ``Fn::GetAtt`` values: logical ID → attribute name → value.
    conditions
        The template's ``Conditions`` section (raw); evaluated on demand and cached.
    mappings
        The template's ``Mappings`` section, for ``Fn::FindInMap``.
    exports
        Export name → value, for ``Fn::ImportValue`` (stacks deployed earlier).
    fallback
        Called for names missing from ``refs`` / ``attributes`` (see :data:`Fallback`).
    """

    refs: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    stack_name: str = "local-stack"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"
    conditions: Mapping[str, Any] = field(default_factory=dict)
    mappings: Mapping[str, Any] = field(default_factory=dict)
    exports: Mapping[str, Any] = field(default_factory=dict)
    fallback: Fallback | None = None
    _condition_cache: dict[str, bool] = field(default_factory=dict, repr=False)
    _evaluating: set[str] = field(default_factory=set, repr=False)

    @property
    def stack_id(self) -> str:
        return (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:"
            f"stack/{self.stack_name}/00000000-0000-0000-0000-000000000000"
        )

    def pseudo(self, name: str) -> Any:
        values = {
            "AWS::AccountId": self.account_id,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
            "AWS::Partition": self.partition,
            "AWS::Region": self.region,
            "AWS::StackId": self.stack_id,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": self.url_suffix,
        }
        return values[name]

    def ref(self, name: str) -> Any:
        if name in PSEUDO_PARAMETERS:
            return self.pseudo(name)
        if name in self.refs:
            return self.refs[name]
        if self.fallback is not None:
            try:
                return self.fallback(name, None)
            except KeyError:
                pass
        raise IntrinsicError(f"Ref: unknown logical id or parameter {name!r}")

    def get_att(self, name: str, attribute: str) -> Any:
        attrs = self.attributes.get(name)
        if attrs is not None and attribute in attrs:
            return attrs[attribute]
        if self.fallback is not None:
            try:
                return self.fallback(name, attribute)
            except KeyError:
                pass
        if attrs is None and name not in self.refs:
            raise IntrinsicError(f"Fn::GetAtt: unknown logical id {name!r}")
        known = ", ".join(sorted(attrs or {})) or "none"
        raise IntrinsicError(
            f"Fn::GetAtt: {name!r} has no attribute {attribute!r} here (known: {known})"
        )


# --------------------------------------------------------------------------- resolve


def resolve(value: Any, ctx: Context) -> Any:
    """Return ``value`` with every intrinsic resolved; ``AWS::NoValue`` entries removed.

    A top-level ``AWS::NoValue`` comes back as :data:`NO_VALUE`.
    """
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return _call(key, arg, ctx)
        out = {}
        for k, v in value.items():
            r = resolve(v, ctx)
            if r is not NO_VALUE:
                out[k] = r
        return out
    if isinstance(value, list):
        return [r for r in (resolve(v, ctx) for v in value) if r is not NO_VALUE]
    return value


def _call(name: str, arg: Any, ctx: Context) -> Any:
    fn = _FUNCTIONS.get(name)
    if fn is None:
        raise IntrinsicError(f"{name}: intrinsic function not supported locally")
    return fn(arg, ctx)


def _string(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise IntrinsicError(f"{where}: expected a string, got {value!r}")


def _ref(arg: Any, ctx: Context) -> Any:
    if not isinstance(arg, str):
        raise IntrinsicError(f"Ref: expected a name, got {arg!r}")
    return ctx.ref(arg)


def _get_att(arg: Any, ctx: Context) -> Any:
    if isinstance(arg, str):
        if "." not in arg:
            raise IntrinsicError(f"Fn::GetAtt: expected 'LogicalId.Attribute', got {arg!r}")
        name, attribute = arg.split(".", 1)
    elif isinstance(arg, list) and len(arg) == 2:
        name, attribute = arg[0], resolve(arg[1], ctx)
    else:
        raise IntrinsicError(f"Fn::GetAtt: expected [LogicalId, Attribute], got {arg!r}")
    if not isinstance(name, str) or not isinstance(attribute, str):
        raise IntrinsicError(f"Fn::GetAtt: bad arguments {arg!r}")
    return ctx.get_att(name, attribute)


def _join(arg: Any, ctx: Context) -> str:
    if not (isinstance(arg, list) and len(arg) == 2):
        raise IntrinsicError(f"Fn::Join: expected [delimiter, [values]], got {arg!r}")
    delimiter = resolve(arg[0], ctx)
    items = resolve(arg[1], ctx)
    if not isinstance(delimiter, str) or not isinstance(items, list):
        raise IntrinsicError(f"Fn::Join: expected [delimiter, [values]], got {arg!r}")
    return delimiter.join(_string(item, "Fn::Join") for item in items)


def _select(arg: Any, ctx: Context) -> Any:
    if not (isinstance(arg, list) and len(arg) == 2):
        raise IntrinsicError(f"Fn::Select: expected [index, [values]], got {arg!r}")
    index, items = resolve(arg[0], ctx), resolve(arg[1], ctx)
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise IntrinsicError(f"Fn::Select: index must be a number, got {index!r}") from None
    if not isinstance(items, list):
        raise IntrinsicError(f"Fn::Select: expected a list, got {items!r}")
    if not 0 <= index < len(items):
        raise IntrinsicError(f"Fn::Select: index {index} out of range for {items!r}")
    return items[index]


def _split(arg: Any, ctx: Context) -> list[str]:
    if not (isinstance(arg, list) and len(arg) == 2):
        raise IntrinsicError(f"Fn::Split: expected [delimiter, source], got {arg!r}")
    delimiter, source = resolve(arg[0], ctx), resolve(arg[1], ctx)
    if not isinstance(delimiter, str) or not delimiter:
        raise IntrinsicError(f"Fn::Split: bad delimiter {delimiter!r}")
    return _string(source, "Fn::Split").split(delimiter)


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _sub(arg: Any, ctx: Context) -> str:
    if isinstance(arg, str):
        template, variables = arg, {}
    elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
        template = arg[0]
        variables = resolve(arg[1], ctx)
        if not isinstance(variables, dict):
            raise IntrinsicError(f"Fn::Sub: variables must be a map, got {arg[1]!r}")
    else:
        raise IntrinsicError(f"Fn::Sub: expected a string or [string, {{vars}}], got {arg!r}")

    def replace(match: re.Match) -> str:
        name = match.group(1).strip()
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return _string(variables[name], "Fn::Sub")
        if name in PSEUDO_PARAMETERS or "." not in name:
            return _string(ctx.ref(name), "Fn::Sub")
        logical_id, attribute = name.split(".", 1)
        return _string(ctx.get_att(logical_id, attribute), "Fn::Sub")

    return _SUB_VARIABLE.sub(replace, template)


def _if(arg: Any, ctx: Context) -> Any:
    if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
        raise IntrinsicError(f"Fn::If: expected [condition, then, else], got {arg!r}")
    return resolve(arg[1] if evaluate_condition(arg[0], ctx) else arg[2], ctx)


def _condition_value(value: Any, ctx: Context) -> bool:
    if isinstance(value, dict) and len(value) == 1 and "Condition" in value:
        return evaluate_condition(value["Condition"], ctx)
    result = resolve(value, ctx)
    if isinstance(result, bool):
        return result
    if isinstance(result, str) and result.lower() in ("true", "false"):
        return result.lower() == "true"
    raise IntrinsicError(f"condition: expected a boolean, got {result!r}")


def _equals(arg: Any, ctx: Context) -> bool:
    if not (isinstance(arg, list) and len(arg) == 2):
        raise IntrinsicError(f"Fn::Equals: expected [a, b], got {arg!r}")
    a, b = (resolve(v, ctx) for v in arg)
    if isinstance(a, (int, float, bool)) or isinstance(b, (int, float, bool)):
        return _string(a, "Fn::Equals") == _string(b, "Fn::Equals")
    return a == b


def _and(arg: Any, ctx: Context) -> bool:
    if not isinstance(arg, list) or not arg:
        raise IntrinsicError(f"Fn::And: expected a list of conditions, got {arg!r}")
    return all(_condition_value(v, ctx) for v in arg)


def _or(arg: Any, ctx: Context) -> bool:
    if not isinstance(arg, list) or not arg:
        raise IntrinsicError(f"Fn::Or: expected a list of conditions, got {arg!r}")
    return any(_condition_value(v, ctx) for v in arg)


def _not(arg: Any, ctx: Context) -> bool:
    if not (isinstance(arg, list) and len(arg) == 1):
        raise IntrinsicError(f"Fn::Not: expected [condition], got {arg!r}")
    return not _condition_value(arg[0], ctx)


def _find_in_map(arg: Any, ctx: Context) -> Any:
    if not (isinstance(arg, list) and len(arg) in (3, 4)):
        raise IntrinsicError(f"Fn::FindInMap: expected [map, key, key], got {arg!r}")
    name, first, second = (resolve(v, ctx) for v in arg[:3])
    try:
        return ctx.mappings[name][first][second]
    except (KeyError, TypeError):
        if len(arg) == 4 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
            return resolve(arg[3]["DefaultValue"], ctx)
        raise IntrinsicError(f"Fn::FindInMap: no {name!r}/{first!r}/{second!r}") from None


def _import_value(arg: Any, ctx: Context) -> Any:
    name = resolve(arg, ctx)
    if name in ctx.exports:
        return ctx.exports[name]
    raise IntrinsicError(
        f"Fn::ImportValue: no export named {name!r} (deploy the exporting stack in the "
        "same deployment, before this one)"
    )


def _base64(arg: Any, ctx: Context) -> str:
    return base64.b64encode(_string(resolve(arg, ctx), "Fn::Base64").encode()).decode()


def _get_azs(arg: Any, ctx: Context) -> list[str]:
    region = resolve(arg, ctx) or ctx.region
    return [f"{region}{zone}" for zone in "abc"]


def _length(arg: Any, ctx: Context) -> int:
    value = resolve(arg, ctx)
    if not isinstance(value, list):
        raise IntrinsicError(f"Fn::Length: expected a list, got {value!r}")
    return len(value)


def _to_json_string(arg: Any, ctx: Context) -> str:
    return json.dumps(resolve(arg, ctx), separators=(",", ":"))


_FUNCTIONS: dict[str, Callable[[Any, Context], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::Sub": _sub,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Fn::Not": _not,
    "Fn::FindInMap": _find_in_map,
    "Fn::ImportValue": _import_value,
    "Fn::Base64": _base64,
    "Fn::GetAZs": _get_azs,
    "Fn::Length": _length,
    "Fn::ToJsonString": _to_json_string,
}


def evaluate_condition(name: str, ctx: Context) -> bool:
    """Evaluate the template condition ``name`` (cached on the context)."""
    if name in ctx._condition_cache:
        return ctx._condition_cache[name]
    if name not in ctx.conditions:
        raise IntrinsicError(f"condition {name!r} is not defined in the template")
    if name in ctx._evaluating:
        raise IntrinsicError(f"condition {name!r} refers to itself")
    ctx._evaluating.add(name)
    try:
        result = _condition_value(ctx.conditions[name], ctx)
    finally:
        ctx._evaluating.discard(name)
    ctx._condition_cache[name] = result
    return result


# ------------------------------------------------------------------------ references


def references(value: Any) -> set[str]:
    """Every name ``value`` refers to through ``Ref``, ``Fn::GetAtt`` or ``Fn::Sub``.

    Pseudo parameters are left out; parameters are not (the caller knows which names
    are resources). Used to order resource creation.
    """
    found: set[str] = set()
    _collect(value, found)
    return found


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, list):
        for v in value:
            _collect(v, found)
        return
    if not isinstance(value, dict):
        return
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str):
            if arg not in PSEUDO_PARAMETERS:
                found.add(arg)
            return
        if key == "Fn::GetAtt":
            if isinstance(arg, str):
                found.add(arg.split(".", 1)[0])
                return
            if isinstance(arg, list) and arg and isinstance(arg[0], str):
                found.add(arg[0])
                _collect(arg[1:], found)
                return
        if key == "Fn::Sub":
            template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            if isinstance(template, str):
                for match in _SUB_VARIABLE.finditer(template):
                    name = match.group(1).strip()
                    if name.startswith("!") or name in PSEUDO_PARAMETERS:
                        continue
                    if isinstance(variables, dict) and name in variables:
                        continue
                    found.add(name.split(".", 1)[0])
            _collect(variables, found)
            return
    for v in value.values():
        _collect(v, found)
