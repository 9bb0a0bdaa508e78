"""Synth-time validation helpers shared by every construct.

Errors follow aws-cdk-lib's style: lowercase, naming the prop and showing the bad
value. Unresolved tokens are skipped: their value is only known at deploy time.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: StreamFilter must not start jsii
    import aws_cdk as cdk

__all__ = [
    "check_range",
    "check_exclusive",
    "check_duration_range",
    "duration",
    "duration_fact",
    "is_token",
    "check_type",
    "check_list",
    "check_mapping",
    "check_types",
    "Interface",
]


def is_token(value: Any) -> bool:
    """Whether ``value`` is a CDK token (unknown until deploy), which we must not validate."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int) and abs(value) < 2**53:
        return False  # CDK encodes number tokens as doubles near -1.9e289, never small ints
    if isinstance(value, str) and _ANY_TOKEN_MARKER not in value:
        return False  # what Token.isUnresolved checks first: saves a jsii round trip
    import aws_cdk as cdk

    return cdk.Token.is_unresolved(value)


#: aws-cdk-lib's ANY_TOKEN_MARKER (core/lib/private/encoding.ts): ``Token.isUnresolved``
#: of a string without it is false.
_ANY_TOKEN_MARKER = "Token["


def check_range(prop: str, value: int | float | None, low: int | float, high: int | float) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high`` (``None`` and tokens pass)."""
    if value is None or is_token(value):
        return
    if not low <= value <= high:
        raise ValueError(f"{prop} must be between {low} and {high}, got {value!r}")


@cache
def duration(unit: str, amount: int) -> cdk.Duration:
    """``cdk.Duration.<unit>(amount)``, one shared object per value (a ``Duration`` is
    immutable): the defaults every construct uses cost one jsii round trip per process,
    and :func:`duration_fact` reads them once."""
    import aws_cdk as cdk

    return getattr(cdk.Duration, unit)(amount)


#: Answers of a ``Duration``'s methods, per object (a ``Duration`` never changes).
_DURATION_FACTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def duration_fact(value: cdk.Duration, method: str) -> Any:
    """``value.<method>()`` (``to_seconds``, ``to_string``...), asked once per object:
    each is a jsii round trip, and patterns ask the same defaults again and again."""
    facts = _DURATION_FACTS.setdefault(value, {})
    if method not in facts:
        facts[method] = getattr(value, method)()
    return facts[method]


def check_duration_range(
    prop: str, value: cdk.Duration | None, low_s: int, high_s: int
) -> None:
    """Like :func:`check_range` for a ``Duration``, compared in whole seconds."""
    if value is None or is_token(duration_fact(value, "to_string")):
        return
    seconds = duration_fact(value, "to_seconds")
    # A Duration of a number token (``Duration.seconds(param.value_as_number)``) prints
    # its amount as a plain double near -1.9e289: asked only when out of range.
    if not low_s <= seconds <= high_s and not is_token(seconds):
        raise ValueError(
            f"{prop} must be between {low_s} and {high_s} seconds, got {seconds} seconds"
        )


def check_exclusive(**props: Any) -> None:
    """Raise unless exactly one of ``props`` is set (the "existing resource or props" pairs)."""
    given = [name for name, value in props.items() if value is not None]
    names = " or ".join(props)
    if len(given) > 1:
        raise ValueError(f"give either {names}, not both (got {', '.join(given)})")
    if not given:
        raise ValueError(f"one of {names} is required")


# --- type checks at construct entry ------------------------------------------------------
#
# Plain isinstance checks on the Python side (no jsii round trips): a wrong type fails
# here with the prop's name instead of deep inside CDK (``'<=' not supported ...``).


class Interface:
    """A jsii interface (``dynamodb.ITable``...) checked by a property its class defines.

    jsii interfaces are Protocols that ``isinstance`` refuses; looking the property up
    on the *class* costs nothing (reading it on the instance would call into jsii).
    """

    def __init__(self, name: str, *properties: str) -> None:
        self.__name__ = name
        self.properties = properties

    def accepts(self, value: Any) -> bool:
        cls = type(value)
        if cls.__name__ == "InterfaceDynamicProxy":  # jsii's proxy: forwards every attribute
            return True
        return all(hasattr(cls, p) for p in self.properties)


ITABLE = Interface("dynamodb.ITable", "table_arn", "table_name")
IFUNCTION = Interface("lambda_.IFunction", "function_arn", "add_event_source")
ITOPIC = Interface("sns.ITopic", "topic_arn")
IBUCKET = Interface("s3.IBucket", "bucket_arn")
IQUEUE = Interface("sqs.IQueue", "queue_arn")
IROLE = Interface("iam.IRole", "role_arn")
IPRINCIPAL = Interface("iam.IPrincipal", "policy_fragment")
IGRANTABLE = Interface("iam.IGrantable", "grant_principal")
IDOMAIN = Interface("opensearch.IDomain", "domain_arn")
IVPC = Interface("ec2.IVpc", "vpc_id")
ILAYER = Interface("lambda_.ILayerVersion", "layer_version_arn")

_ARTICLE = {"int": "an int", "Interface": "an interface"}
#: (expected type name, given type name) -> the usual fix
_HINTS = {
    ("cdk.Duration", "int"): "e.g. Duration.seconds({value})",
    ("cdk.Duration", "float"): "e.g. Duration.seconds({value})",
    ("cdk.Duration", "str"): "e.g. Duration.hours(1)",
    ("lambda_.FunctionOptions", "dict"): "use lambda_.FunctionOptions({kwargs})",
}


def _type_name(expected: Any) -> str:
    if isinstance(expected, Interface):
        return expected.__name__
    if expected is Mapping:
        return "dict"
    module = getattr(expected, "__module__", "")
    name = getattr(expected, "__name__", str(expected))
    if module == "aws_cdk":
        return f"cdk.{name}"
    if module.startswith("aws_cdk.aws_"):
        short = module.removeprefix("aws_cdk.aws_")
        return f"{'lambda_' if short == 'lambda' else short}.{name}"
    return name


def _a(name: str) -> str:
    return _ARTICLE.get(name) or (f"an {name}" if name[:1] in "aeiouAEIOU" else f"a {name}")


def _show(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return f"{type(value).__name__} {text}"


def _accepts(expected: Any, value: Any) -> bool:
    if isinstance(expected, Interface):
        return expected.accepts(value)
    if expected is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and is_token(value)
        )
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def _hint_for(expected: tuple[Any, ...], value: Any) -> str | None:
    for option in expected:
        template = _HINTS.get((_type_name(option), type(value).__name__))
        if template:
            kwargs = ", ".join(f"{k}={v!r}" for k, v in value.items()) if isinstance(
                value, dict) else ""
            return template.format(value=value, kwargs=kwargs or "memory_size=512")
    return None


def check_type(
    owner: str, prop: str, value: Any, expected: Any, hint: str | None = None,
    *, optional: bool = True,
) -> None:
    """Raise ``TypeError`` unless ``value`` is an ``expected`` (a type, Interface, or tuple).

    ``None`` passes when ``optional``; an ``int`` never accepts a ``bool``, but accepts a
    number token; ``hint`` (or a built-in one for common mistakes) says how to fix it.

    >>> check_type("SimpleController", "batch_size", "100", int)
    Traceback (most recent call last):
    TypeError: SimpleController: batch_size must be an int, got str '100'
    """
    if value is None and optional:
        return
    options = expected if isinstance(expected, tuple) else (expected,)
    if any(_accepts(option, value) for option in options):
        return
    names = " or ".join(_a(_type_name(option)) for option in options)
    hint = hint or _hint_for(options, value)
    names = f"{names} ({hint})" if hint else names
    raise TypeError(f"{owner}: {prop} must be {names}, got {_show(value)}")


def check_list(
    owner: str, prop: str, value: Any, item: Any, *, optional: bool = True
) -> None:
    """Raise ``TypeError`` unless ``value`` is a list (or tuple) of ``item``."""
    if value is None and optional:
        return
    name = _type_name(item)
    if not isinstance(value, list | tuple):
        hint = " (wrap it in [...])" if _accepts(item, value) else ""
        raise TypeError(f"{owner}: {prop} must be a list of {name}, got {_show(value)}{hint}")
    for index, element in enumerate(value):
        if not _accepts(item, element):
            raise TypeError(
                f"{owner}: {prop}[{index}] must be {_a(name)}, got {_show(element)}"
            )


def check_mapping(
    owner: str, prop: str, value: Any, item: Any, *, key: str = "name", optional: bool = True
) -> None:
    """Raise ``TypeError`` unless ``value`` is a dict of ``str`` -> ``item``."""
    if value is None and optional:
        return
    name = _type_name(item)
    if not isinstance(value, Mapping):
        raise TypeError(f"{owner}: {prop} must be a dict of {key} -> {name}, got {_show(value)}")
    for k, element in value.items():
        if not isinstance(k, str):
            raise TypeError(f"{owner}: {prop} keys must be str, got {_show(k)}")
        if not _accepts(item, element):
            raise TypeError(f"{owner}: {prop}[{k!r}] must be {_a(name)}, got {_show(element)}")


def check_types(owner: str, spec: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Check many props at once: ``spec`` maps prop -> expected, ``[item]`` for a list,
    ``{str: item}`` for a dict; a prop absent from ``values`` is skipped."""
    for prop, expected in spec.items():
        if prop not in values:
            continue
        value = values[prop]
        if isinstance(expected, list):
            check_list(owner, prop, value, expected[0])
        elif isinstance(expected, dict):
            check_mapping(owner, prop, value, next(iter(expected.values())))
        else:
            check_type(owner, prop, value, expected)
