"""What every handler that calls AWS shares: lazy clients, retry settings, client images.

Kept apart from the handlers so that importing one handler never imports another
(cold start), and so the rules are written once.
"""

from __future__ import annotations

from ._lazy import lazy_import
from .deserialize import DeserializationError, _short

TYPE_CHECKING = False
if TYPE_CHECKING:
    from base64 import b64decode
    from typing import Any
else:
    # Only binary values need it; base64 loads re (with enum), which a pure handler skips.
    b64decode = lazy_import(globals(), "b64decode", "base64", "b64decode")

__all__ = ["aws_client", "check_retry_settings", "client_image"]


# functools.cache by hand: functools (and collections) stay off a pure handler's cold start.
_CLIENTS: dict[tuple[str, int | None], Any] = {}


def aws_client(service: str, *, max_pool_connections: int | None = None) -> Any:
    """A boto3 client, created once per service (and pool size) and process.

    boto3 is imported here, not at module level: it costs ~150-230 ms of cold start,
    and functions that never need a client (or get one injected) never pay it.
    ``max_pool_connections``: for clients shared by threads (botocore keeps 10
    connections unless told otherwise). Default: botocore's. ``aws_client.cache_clear()``
    forgets the clients, as with ``functools.cache``.
    """
    key = (service, max_pool_connections)
    client = _CLIENTS.get(key)
    if client is None:
        client = _CLIENTS.setdefault(key, _new_client(service, max_pool_connections))
    return client


aws_client.cache_clear = _CLIENTS.clear  # type: ignore[attr-defined]


def _new_client(service: str, max_pool_connections: int | None) -> Any:
    import boto3

    if max_pool_connections is None:
        return boto3.client(service)
    from botocore.config import Config

    return boto3.client(service, config=Config(max_pool_connections=max_pool_connections))


def check_retry_settings(max_attempts: object, backoff_seconds: float) -> None:
    """Validate a handler config's retry settings (``ValueError`` naming the bad one)."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise ValueError(f"max_attempts must be an integer, got {max_attempts!r}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if backoff_seconds < 0:
        raise ValueError(f"backoff_seconds must be >= 0, got {backoff_seconds}")


# --- stream DynamoDB JSON -> client DynamoDB JSON ----------------------------------------
# Stream images carry B / BS as base64 text, but the boto3 client wants bytes and
# base64-encodes whatever it gets: passing the text through would store it encoded twice.
# The replicator writes images back to DynamoDB, the archiver to an archive table.


def _binary(value: Any) -> bytes:
    try:
        return b64decode(value, validate=True)
    except (TypeError, ValueError):
        raise DeserializationError(f"type tag 'B' needs base64 text, got {_short(value)}") from None


def _client_binary(av: dict[str, Any], value: Any) -> dict[str, Any]:
    return {"B": _binary(value)}


def _client_binary_set(av: dict[str, Any], value: Any) -> dict[str, Any]:
    if not isinstance(value, list):
        raise DeserializationError(f"type tag 'BS' needs a list, got {_short(value)}")
    return {"BS": [_binary(v) for v in value]}


def _client_map(av: dict[str, Any], value: Any) -> dict[str, Any]:
    converted = client_image(value) if isinstance(value, dict) else value
    return av if converted is value else {"M": converted}


def _client_list(av: dict[str, Any], value: Any) -> dict[str, Any]:
    if not isinstance(value, list):
        return av  # botocore's parameter validation names the problem
    out = None
    for index, element in enumerate(value):
        converted = _client_value(element)
        if converted is not element:
            if out is None:
                out = list(value)
            out[index] = converted
    return av if out is None else {"L": out}


def _client_value(av: Any) -> Any:
    if av.__class__ is not dict or len(av) != 1:
        return av  # not valid DynamoDB JSON: botocore's validation rejects it by name
    # S, N, BOOL, NULL, SS, NS (nearly every value) hold no binary: two membership
    # tests, no unpacking, no call. Only B / BS are converted, only M / L looked into.
    if "M" in av:
        return _client_map(av, av["M"])
    if "L" in av:
        return _client_list(av, av["L"])
    if "B" in av:
        return _client_binary(av, av["B"])
    if "BS" in av:
        return _client_binary_set(av, av["BS"])
    return av


def client_image(image: dict[str, Any]) -> dict[str, Any]:
    """A stream image as the client takes it: the same object when it holds no binary.

    Copy-on-write, never in place: the event belongs to the caller.

    Examples
    --------
    >>> client_image({"pk": {"S": "a"}, "blob": {"B": "AAH+/w=="}})
    {'pk': {'S': 'a'}, 'blob': {'B': b'\\x00\\x01\\xfe\\xff'}}
    """
    out = None
    for name, av in image.items():
        if av.__class__ is dict and ("S" in av or "N" in av):  # the common case, no call
            continue
        converted = _client_value(av)
        if converted is not av:
            if out is None:
                out = dict(image)
            out[name] = converted
    return image if out is None else out
