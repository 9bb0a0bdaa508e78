"""Standard-library names imported on first use, for the cold start of the pure handlers.

A handler that reads a DynamoDB stream and calls no AWS API (``batch``, ``processor``)
pays, on every cold start, for each module its import path loads: ``typing`` with
``re`` and ``enum`` (~7 ms), ``logging`` (~5 ms), ``hashlib`` (OpenSSL, ~2.5 ms),
``datetime``, ``json``, ``base64`` (which loads ``re``). Most are needed only on a
rare path (a binary value, a record's content hash, a Kinesis or SQS body), so
the modules on the hot path name them through :func:`lazy`: a stand-in that imports
the real object on its first use and then replaces itself in the module's globals,
so later uses cost nothing extra.

Type checkers see the real imports (``if TYPE_CHECKING:``); the handlers that call AWS
load all of these anyway with boto3.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["lazy", "lazy_import"]


class _Lazy:
    """Stands for ``namespace[name]`` until first used, then puts the real value there."""

    __slots__ = ("_namespace", "_name", "_load")

    def __init__(self, namespace: dict[str, Any], name: str, load: Callable[[], Any]) -> None:
        self._namespace = namespace
        self._name = name
        self._load = load

    def _value(self) -> Any:
        value = self._load()
        if self._namespace.get(self._name) is self:
            self._namespace[self._name] = value
        return value

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._value(), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._value()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<lazy {self._name}>"


def lazy(namespace: dict[str, Any], name: str, load: Callable[[], Any]) -> Any:
    """A stand-in for ``namespace[name]``: ``load()`` is called on its first use.

    Examples
    --------
    >>> ns = {}
    >>> ns["pi"] = lazy(ns, "pi", lambda: 3.14)
    >>> ns["pi"].hex()
    '0x1.91eb851eb851fp+1'
    >>> ns["pi"]
    3.14
    """
    return _Lazy(namespace, name, load)


def lazy_import(
    namespace: dict[str, Any], name: str, module: str, attribute: str | None = None
) -> Any:
    """``import module`` (or ``from module import attribute``) on first use of ``name``.

    Examples
    --------
    >>> ns = {}
    >>> ns["b64decode"] = lazy_import(ns, "b64decode", "base64", "b64decode")
    >>> ns["b64decode"]("AAE=")
    b'\\x00\\x01'
    >>> ns["b64decode"].__module__
    'base64'
    """

    def load() -> Any:
        __import__(module)
        value = sys.modules[module]
        return value if attribute is None else getattr(value, attribute)

    return _Lazy(namespace, name, load)
