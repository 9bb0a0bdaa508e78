"""TTL for every table: the sweep DynamoDB Local leaves out, done by the local cloud.

DynamoDB Local (3.3.1) deletes the expired items of at most :data:`SWEEP_LIMIT` (7)
TTL-enabled tables per instance; the expired items of every further table are never
deleted, with no error and no log line (AWS states no such limit). Measured (black box,
six table sets of 8 to 10 TTL tables, repeated, with TTL enabled and disabled and tables
deleted): exactly 7 tables are swept, the same 7 for the same set, but they are neither
the first or last created nor the first by name, and no order we modelled predicted all
six sets; deleting a TTL table (or disabling its TTL) lets a left-out one back in.

So, when an instance holds more than 7 TTL tables (earlier deploys' included), the
deployer starts a :class:`TtlSweeper` on the cloud: every :attr:`~TtlSweeper.interval`
seconds it scans every TTL table for items whose TTL attribute (a Number, epoch seconds)
is more than :attr:`~TtlSweeper.grace` seconds in the past, which DynamoDB Local's own
sweep (about every 10 s) would already have deleted, and deletes each one (conditional
on its TTL value being unchanged). A ``DeleteItem`` writes an ordinary ``REMOVE`` stream
record with no ``userIdentity``; the sweeper remembers each deletion (table, key, TTL
value) and :func:`~ddb_stream_patterns.local.pollers.to_lambda_record` rewrites those
records exactly as it rewrites DynamoDB Local's own TTL records: ``eventName: "REMOVE"``
and ``userIdentity {"type": "Service", "principalId": "dynamodb.amazonaws.com"}``, as AWS
writes a TTL deletion. An expiry on a table DynamoDB Local leaves out is thus delivered
:attr:`~TtlSweeper.grace` to ``grace + interval`` seconds after it expired (AWS: typically
within two days), never lost.

Limits: the remembered deletions live in this process (a poller in another process, or
after a restart, sees a plain ``REMOVE``); a user's own delete of the same key, with the
same TTL value, after the sweeper deleted it, is also reported as a TTL deletion.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SWEEP_LIMIT", "TtlSweeper", "ensure_sweeper", "swept_by_local_sweep",
           "ttl_attributes", "ttl_tables"]

_LOGGER = logging.getLogger(__name__)

#: How many TTL-enabled tables DynamoDB Local's sweep serves (measured with 3.3.1).
SWEEP_LIMIT = 7

#: Deletions made by a :class:`TtlSweeper` in this process: (table, key JSON) → the TTL
#: values of the deleted items, with the time of each deletion.
_SWEPT: dict[tuple[str, str], list[tuple[str, float]]] = {}
_SWEPT_LOCK = threading.Lock()
_REMEMBER_S = 24 * 3600  # a DynamoDB stream keeps records for 24 hours


def table_names(ddb: Any) -> list[str]:
    """Every table of the DynamoDB instance behind the client ``ddb`` (all pages)."""
    return [name for page in ddb.get_paginator("list_tables").paginate()
            for name in page.get("TableNames", [])]


def _missing(exc: Exception) -> bool:
    return "ResourceNotFound" in f"{type(exc).__name__} {exc}"


def ttl_attributes(ddb: Any) -> dict[str, str]:
    """Table → TTL attribute, for every TTL-enabled table (``ENABLED`` or ``ENABLING``)
    of the DynamoDB Local instance behind the client ``ddb``, in ``ListTables`` order."""
    found: dict[str, str] = {}
    for name in table_names(ddb):
        try:
            status = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        except Exception as exc:  # deleted meanwhile (another test, another deploy)
            if _missing(exc):
                continue
            raise
        if status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            found[name] = status.get("AttributeName", "")
    return found


def ttl_tables(ddb: Any) -> list[str]:
    """Every TTL-enabled table of the instance behind ``ddb``, in ``ListTables`` order."""
    return list(ttl_attributes(ddb))


def _key_json(keys: Mapping[str, Any]) -> str:
    """A key in Lambda's JSON form (``{"pk": {"S": "x"}}``, binary as base64), canonical."""
    from .pollers import _json_image  # the form to_lambda_record gives (no import cycle)

    return json.dumps(_json_image(keys), sort_keys=True)


def _remember(table: str, key_json: str, ttl_value: str) -> None:
    now = time.monotonic()
    with _SWEPT_LOCK:
        entries = [e for e in _SWEPT.get((table, key_json), []) if now - e[1] < _REMEMBER_S]
        entries.append((ttl_value, now))
        _SWEPT[(table, key_json)] = entries


def _forget(table: str, key_json: str, ttl_value: str) -> None:
    with _SWEPT_LOCK:
        entries = [e for e in _SWEPT.get((table, key_json), []) if e[0] != ttl_value]
        if entries:
            _SWEPT[(table, key_json)] = entries
        else:
            _SWEPT.pop((table, key_json), None)


def swept_by_local_sweep(stream_arn: str, keys: Mapping[str, Any],
                         old_image: Mapping[str, Any] | None) -> bool:
    """Whether a ``REMOVE`` record (keys and old image in Lambda's JSON form) of the
    stream ``stream_arn`` is a deletion made by a :class:`TtlSweeper`."""
    if not _SWEPT:
        return False
    table = stream_arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
    key_json = json.dumps(dict(keys), sort_keys=True)
    with _SWEPT_LOCK:
        entries = list(_SWEPT.get((table, key_json), ()))
    if not entries:
        return False
    if old_image is None:  # KEYS_ONLY / NEW_IMAGE streams: the key is all there is
        return True
    values = {v.get("N") for v in old_image.values() if isinstance(v, Mapping)}
    return any(ttl_value in values for ttl_value, _ in entries)


class TtlSweeper:
    """Deletes the expired items DynamoDB Local's sweep leaves (see the module's notes).

    Parameters
    ----------
    client_factory
        Service name → boto3 client (``LocalCloud.client``).
    interval
        Seconds between sweeps. Default: 5.
    grace
        Only items whose TTL is more than this many seconds in the past are deleted:
        DynamoDB Local's own sweep (about every 10 s) has deleted those on the tables it
        serves. Default: 20.
    """

    def __init__(self, client_factory: Callable[[str], Any], *, interval: float = 5.0,
                 grace: float = 20.0) -> None:
        self._client = client_factory
        self.interval = interval
        self.grace = grace
        self.deleted = 0  # items this sweeper deleted
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> int:
        """One pass; returns how many items it deleted (0 while ≤ 7 TTL tables)."""
        ddb = self._client("dynamodb")
        tables = ttl_attributes(ddb)
        if len(tables) <= SWEEP_LIMIT:
            return 0
        cutoff = str(int(time.time() - self.grace))
        deleted = 0
        for table, attribute in tables.items():
            try:
                deleted += self._sweep_table(ddb, table, attribute, cutoff)
            except Exception as exc:
                if not _missing(exc):
                    raise
        self.deleted += deleted
        return deleted

    def _sweep_table(self, ddb: Any, table: str, attribute: str, cutoff: str) -> int:
        key_names = [k["AttributeName"]
                     for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
        names = {"#ttl": attribute}
        deleted = 0
        kwargs: dict[str, Any] = {
            "TableName": table, "FilterExpression": "#ttl < :cutoff",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":cutoff": {"N": cutoff}},
        }
        while True:
            page = ddb.scan(**kwargs)
            for item in page.get("Items", []):
                key = {name: item[name] for name in key_names}
                key_json, value = _key_json(key), item[attribute]["N"]
                _remember(table, key_json, value)  # before the record can be read
                try:
                    ddb.delete_item(TableName=table, Key=key,
                                    ConditionExpression="#ttl = :value",
                                    ExpressionAttributeNames=names,
                                    ExpressionAttributeValues={":value": {"N": value}})
                    deleted += 1
                except Exception as exc:  # changed or deleted meanwhile: not ours
                    _forget(table, key_json, value)
                    if "ConditionalCheckFailed" not in f"{type(exc).__name__} {exc}":
                        raise
            if "LastEvaluatedKey" not in page:
                return deleted
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def start(self) -> TtlSweeper:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ttl-sweeper", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except Exception as exc:  # DynamoDB Local restarting or gone: try again later
                _LOGGER.debug("TTL sweep failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def ensure_sweeper(cloud: Any) -> TtlSweeper:
    """The cloud's :class:`TtlSweeper`, started on first call; ``cloud.stop()`` stops it."""
    sweeper = getattr(cloud, "ttl_sweeper", None)
    if sweeper is None:
        sweeper = cloud.ttl_sweeper = TtlSweeper(cloud.client).start()
    return sweeper
