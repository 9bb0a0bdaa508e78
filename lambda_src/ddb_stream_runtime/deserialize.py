"""Fast DynamoDB-JSON (stream record images) to plain Python values.

This is hand-written rather than ``boto3.dynamodb.types.TypeDeserializer``
because it is the hot path of every stream Lambda: importing boto3 costs
~230 ms of cold start, and TypeDeserializer spends most of its time in
``getattr`` dispatch and 38-digit ``Decimal`` contexts.

Two walks give the same values. The fast walk (``_fast_*``) inlines the
common tags (``S``, ``N``, ``M``, ``L``, ``BOOL``, ``NULL``) in one loop per
container, takes a whole ``SS``/``NS`` at once, and on anything unexpected
just raises; the public functions then re-run the strict walk (``_map``,
``_list``, ``_DISPATCH``), which names the bad value and its path in a
:class:`DeserializationError`. Valid input pays for no diagnosis.

Type mapping
------------
=====  ==========================================================
tag    Python value
=====  ==========================================================
S      ``str``
N      ``int`` for an integer, else an exact ``decimal.Decimal``
       (never ``float``); ``-0`` is ``Decimal('-0')``, keeping its
       sign as boto3's ``TypeDeserializer`` does
B      ``bytes`` (base64-decoded)
BOOL   ``bool``
NULL   ``None``
SS     ``set[str]``
NS     ``set`` of ``int`` / ``Decimal``
BS     ``set[bytes]``
L      ``list`` (recursively)
M      ``dict`` (recursively)
=====  ==========================================================
"""

from __future__ import annotations

from decimal import Decimal

from ._lazy import lazy_import

TYPE_CHECKING = False
if TYPE_CHECKING:
    from base64 import b64decode
    from collections.abc import Callable
    from typing import Any
else:  # only binary values need base64 (which loads re): imported on the first one
    b64decode = lazy_import(globals(), "b64decode", "base64", "b64decode")

__all__ = ["DeserializationError", "deserialize_image", "deserialize_value"]

# Errors that a malformed attribute value raises on the inline fast path;
# they are turned into a DeserializationError by ``_explain``.
_SHAPE_ERRORS = (AttributeError, ArithmeticError, KeyError, TypeError, ValueError)
_MAX_REPR = 80


class ItemPathError(ValueError):
    """A bad value somewhere inside an item, with its path (map keys, list indexes).

    The base of :class:`DeserializationError` and the replicator's
    ``SerializationError``: containers add their key on the way out.
    """

    def __init__(self, reason: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def _prepend(self, step: str | int) -> None:
        # Containers add their key on the way out, so the path is built for free
        # on the error path and costs nothing when the input is valid.
        self.path = (step, *self.path)

    def __str__(self) -> str:
        if not self.path:
            return self.reason
        where = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in self.path)
        return f"{where.lstrip('.')}: {self.reason}"


class DeserializationError(ItemPathError):
    """An attribute value is not valid DynamoDB JSON.

    Parameters
    ----------
    reason : str
        What is wrong, naming the bad type tag or value.
    path : tuple of str or int, optional
        Where the bad value sits inside the image: map keys and list indexes.

    Examples
    --------
    >>> try:
    ...     deserialize_image({"a": {"M": {"b": {"X": "1"}}}})
    ... except DeserializationError as exc:
    ...     print(exc)
    a.b: unknown type tag 'X' in {'X': '1'}
    """


def _short(value: Any) -> str:
    # Never dump a whole item into an error message (or the logs).
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise DeserializationError(f"type tag 'S' needs a string, got {_short(value)}")


def _number(value: Any) -> int | Decimal:
    try:
        return int(value) if value.isdigit() else _other_number(value)
    except _SHAPE_ERRORS:
        raise DeserializationError(
            f"type tag 'N' needs a number string, got {_short(value)}"
        ) from None


def _other_number(text: str) -> int | Decimal:
    # Not plain digits: a negative integer, or a fraction / exponent (exact Decimal: never
    # rounds). A negative zero keeps its sign as Decimal('-0'), as boto3's
    # TypeDeserializer gives it: an int cannot hold it.
    if text[:1] == "-" and text[1:].isdigit():
        number = int(text)
        return number if number else Decimal(text)
    number = Decimal(text)
    if number.is_finite():
        return number
    raise ValueError(text)  # NaN, Infinity: DynamoDB has no such numbers


def _binary(value: Any) -> bytes:
    try:
        return b64decode(value, validate=True)
    except (TypeError, ValueError):
        raise DeserializationError(f"type tag 'B' needs base64 text, got {_short(value)}") from None


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise DeserializationError(f"type tag 'BOOL' needs true or false, got {_short(value)}")


def _null(value: Any) -> None:
    if value is True:
        return None
    raise DeserializationError(f"type tag 'NULL' needs true, got {_short(value)}")


def _require_list(tag: str, value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    raise DeserializationError(f"type tag {tag!r} needs a list, got {_short(value)}")


def _string_set(value: Any) -> set[str]:
    return {_string(v) for v in _require_list("SS", value)}


def _number_set(value: Any) -> set[int | Decimal]:
    return {_number(v) for v in _require_list("NS", value)}


def _binary_set(value: Any) -> set[bytes]:
    return {_binary(v) for v in _require_list("BS", value)}


def _list(value: Any) -> list[Any]:
    out: list[Any] = []
    append = out.append
    try:
        for av in _require_list("L", value):
            [(tag, v)] = av.items()
            if tag == "S" and v.__class__ is str:
                append(v)
            elif tag == "N":
                append(int(v) if v.isdigit() else _other_number(v))
            else:
                append(_DISPATCH[tag](v))
    except DeserializationError as exc:
        if isinstance(value, list):  # else the list check itself failed: no index
            exc._prepend(len(out))
        raise
    except _SHAPE_ERRORS:
        raise _explain(value[len(out)], len(out)) from None
    return out


def _map(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    name = None
    try:
        for name, av in value.items():
            [(tag, v)] = av.items()
            if tag == "S" and v.__class__ is str:
                out[name] = v
            elif tag == "N":
                out[name] = int(v) if v.isdigit() else _other_number(v)
            else:
                out[name] = _DISPATCH[tag](v)
    except DeserializationError as exc:
        exc._prepend(name)  # type: ignore[arg-type]
        raise
    except _SHAPE_ERRORS:
        if not hasattr(value, "items"):
            raise DeserializationError(
                f"type tag 'M' needs an object, got {_short(value)}"
            ) from None
        raise _explain(value[name], name) from None
    return out


# Tag -> converter. S and N are also inlined in the loops above (fast path);
# their entries here serve deserialize_value and the strict fallback.
_DISPATCH: dict[str, Callable[[Any], Any]] = {
    "S": _string,
    "N": _number,
    "B": _binary,
    "BOOL": _bool,
    "NULL": _null,
    "SS": _string_set,
    "NS": _number_set,
    "BS": _binary_set,
    "L": _list,
    "M": _map,
}


# --- the fast walk ---------------------------------------------------------------------
# Same values as the strict walk above, fewer Python-level steps per value. It checks what
# it must to never accept what the strict walk rejects (one tag per value, S a str, BOOL a
# bool, NULL true, finite numbers, lists for L and sets) but raises bare exceptions: the
# public functions then re-run the strict walk, which raises the DeserializationError.


def _fast_number(text: str) -> int | Decimal:
    # Not plain digits (the callers try that first): as _other_number.
    if text[0] == "-" and text[1:].isdigit():
        number = int(text)
        if number:
            return number
    number = Decimal(text)
    if number.is_finite():
        return number
    raise ValueError(text)


_a2b_base64: Any = None  # binascii.a2b_base64, bound on first use (no import at load)


def _fast_binary(value: Any) -> bytes:
    # b64decode(value, validate=True) is a2b_base64(value, strict_mode=True) after a
    # str -> ASCII bytes step that a2b_base64 does itself; without b64decode's Python frame.
    global _a2b_base64
    if _a2b_base64 is None:
        from binascii import a2b_base64

        _a2b_base64 = a2b_base64
    return _a2b_base64(value, strict_mode=True)


def _fast_string_set(value: Any) -> set[str]:
    if value.__class__ is not list:
        raise TypeError
    "".join(value)  # every member a str, or TypeError
    return set(value)


def _fast_number_set(value: Any) -> set[int | Decimal]:
    if value.__class__ is not list:
        raise TypeError
    if "".join(value).isdigit():  # all plain digits (an empty member: int("") raises)
        return set(map(int, value))
    return {int(v) if v.isdigit() else _fast_number(v) for v in value}


def _fast_binary_set(value: Any) -> set[bytes]:
    if value.__class__ is not list:
        raise TypeError
    return {_fast_binary(v) for v in value}


_FAST_RARE: dict[str, Callable[[Any], Any]] = {
    "B": _fast_binary,
    "SS": _fast_string_set,
    "NS": _fast_number_set,
    "BS": _fast_binary_set,
}


def _fast_map(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, av in value.items():
        [(tag, v)] = av.items()
        if tag == "S":
            if v.__class__ is not str:
                raise TypeError
            out[name] = v
        elif tag == "N":
            if v.isdigit():
                out[name] = int(v)
            elif v[0] == "-" and v[1:].isdigit() and v[1:].strip("0"):
                out[name] = int(v)  # a negative integer (not -0: that is Decimal('-0'))
            else:
                number = Decimal(v)
                if not number.is_finite():
                    raise ValueError
                out[name] = number
        elif tag == "M":
            out[name] = _fast_map(v)
        elif tag == "L":
            out[name] = _fast_list(v)
        elif tag == "BOOL":
            if v is not True and v is not False:
                raise TypeError
            out[name] = v
        elif tag == "NULL":
            if v is not True:
                raise TypeError
            out[name] = None
        else:
            out[name] = _FAST_RARE[tag](v)
    return out


def _fast_list(value: Any) -> list[Any]:
    if value.__class__ is not list:
        raise TypeError
    out: list[Any] = []
    append = out.append
    for av in value:
        [(tag, v)] = av.items()
        if tag == "S":
            if v.__class__ is not str:
                raise TypeError
            append(v)
        elif tag == "N":
            if v.isdigit():
                append(int(v))
            elif v[0] == "-" and v[1:].isdigit() and v[1:].strip("0"):
                append(int(v))
            else:
                number = Decimal(v)
                if not number.is_finite():
                    raise ValueError
                append(number)
        elif tag == "M":
            append(_fast_map(v))
        elif tag == "L":
            append(_fast_list(v))
        elif tag == "BOOL":
            if v is not True and v is not False:
                raise TypeError
            append(v)
        elif tag == "NULL":
            if v is not True:
                raise TypeError
            append(None)
        else:
            append(_FAST_RARE[tag](v))
    return out


def _explain(av: Any, step: str | int | None = None) -> DeserializationError:
    """Diagnose an attribute value that failed on the fast path (error path only)."""
    try:
        deserialize_value(av)
    except DeserializationError as exc:
        error = exc
    else:  # pragma: no cover - the fast path and the strict path disagree
        error = DeserializationError(f"malformed attribute value {_short(av)}")
    if step is not None:
        error._prepend(step)
    return error


def deserialize_value(av: dict[str, Any]) -> Any:
    """Convert one DynamoDB-JSON attribute value to a Python value.

    Parameters
    ----------
    av : dict
        An attribute value with exactly one type tag, e.g. ``{"N": "42"}``.

    Returns
    -------
    Any
        See the module docstring for the type mapping.

    Raises
    ------
    DeserializationError
        If the type tag is unknown or the value does not fit its tag.

    Examples
    --------
    >>> deserialize_value({"N": "0.1"})
    Decimal('0.1')
    >>> deserialize_value({"L": [{"S": "a"}, {"N": "2"}, {"NULL": True}]})
    ['a', 2, None]
    """
    if not isinstance(av, dict):
        raise DeserializationError(
            f"an attribute value is an object with one type tag, got {_short(av)}"
        )
    if len(av) != 1:
        raise DeserializationError(
            f"an attribute value has exactly one type tag, got {sorted(map(str, av))}"
        )
    if av.__class__ is dict:
        try:
            return _fast_map({"": av})[""]
        except Exception:  # malformed somewhere: the strict walk below says where
            pass
    [(tag, value)] = av.items()
    convert = _DISPATCH.get(tag)
    if convert is None:
        raise DeserializationError(f"unknown type tag {tag!r} in {_short(av)}")
    return convert(value)


def deserialize_image(image: dict[str, Any] | None) -> dict[str, Any] | None:
    """Convert a whole item (``Keys``, ``NewImage`` or ``OldImage``) to a dict.

    Parameters
    ----------
    image : dict or None
        Attribute name -> DynamoDB-JSON attribute value, or ``None`` when the
        stream record has no such image (e.g. ``OldImage`` of an INSERT).

    Returns
    -------
    dict or None
        Attribute name -> Python value; ``None`` if ``image`` is ``None``.

    Raises
    ------
    DeserializationError
        If any attribute value is malformed; the message names the attribute
        path, e.g. ``address.geo.lat: type tag 'N' needs a number string``.

    Examples
    --------
    >>> deserialize_image({"Id": {"N": "101"}, "Message": {"S": "New item!"}})
    {'Id': 101, 'Message': 'New item!'}
    >>> deserialize_image(None) is None
    True
    """
    if image is None:
        return None
    if image.__class__ is dict:
        try:
            return _fast_map(image)
        except Exception:  # malformed somewhere: the strict walk below says where
            pass
    if not isinstance(image, dict):
        raise DeserializationError(f"an image is an object of attributes, got {_short(image)}")
    return _map(image)
