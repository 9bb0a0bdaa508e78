"""Index what a table already holds: a parallel Scan, one ``_bulk`` request per page.

The SearchIndexer only sees changes; this fills the index with the items that
existed before its stream was wired up. Deploy the indexer first and run the
backfill after: every change made during the scan then reaches the index
through the stream, and the versions below make the two writers commute.

Examples
--------
From a shell with credentials that may ``dynamodb:Scan`` the table and write
to the index (the indexer's own ``es:ESHttpPost`` / ``aoss:APIAccessAll``, and on
a domain with fine-grained access control a mapping to a role that may write the
index): a principal the ``SearchIndexer`` construct was given in
``backfill_principals`` (or ``grant_backfill``), or its ``admin_role``::

    python -m ddb_stream_runtime.backfill --table Tasks \\
        --endpoint https://search-tasks-abc.eu-west-1.es.amazonaws.com \\
        --index tasks --id-attributes ListId,TaskId --segments 8

It prints a JSON summary (``scanned``, ``indexed``, ``skipped``, ``failed``,
``requests``) and exits 0, or 1 if some documents failed, or 2 if it stopped.

Who wins: backfill or stream
----------------------------
``versioning="external"`` (domains): every backfilled document is indexed with
``version=0`` (:data:`~ddb_stream_runtime.indexer.BACKFILL_VERSION`) and
``version_type=external_gte``, while stream records carry
:func:`~ddb_stream_runtime.indexer.sequence_version` of their sequence number,
which is above 5 * 10**17 for every real (21+ digit) sequence number. So:

* a stream update (version >= 1) always replaces a backfilled document (0);
* a backfill never replaces a stream-indexed document: 0 is lower, OpenSearch
  answers 409, counted as ``skipped``;
* a backfill over its own earlier run (0 >= 0) refreshes the document;
* an item the stream deleted leaves a version tombstone for
  ``index.gc_deletes`` (60 s by default), which rejects a stale backfilled copy.
  Each page is written right after it is read, so only a page taking longer
  than that between its read and its write could re-create a deleted item.

``versioning="none"`` (OpenSearch Serverless, no external versions): documents
are sent as ``create`` actions, which never replace an existing document
(409, ``skipped``); a later stream ``index`` replaces them. A delete that
happens between a page's read and its write can re-create the item.

Scan cost: one read of the whole table (eventually consistent: 0.5 RCU per
4 KB). ``segments`` parallel workers each scan one segment
(``Segment``/``TotalSegments``), ``page_size`` items per Scan page.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

from .indexer import (
    BACKFILL_VERSION,
    BulkRequestError,
    IndexerConfig,
    document_id,
    image_to_document,
    item_succeeded,
)

__all__ = ["BackfillError", "BackfillResult", "backfill", "main"]

_LOGGER = logging.getLogger(__name__)

_MAX_SEGMENTS = 1_000_000  # Scan's TotalSegments limit
_LOGGED_FAILURES = 10  # per run: enough to diagnose, not a log flood

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


class BackfillResult(TypedDict):
    """What a backfill did."""

    scanned: int
    """Items read from the table."""
    indexed: int
    """Documents written."""
    skipped: int
    """Documents not written because the index holds a newer (stream) version (409)."""
    failed: int
    """Items that could not be indexed (no id attribute, or a per-item bulk error)."""
    requests: int
    """``_bulk`` requests sent (one per non-empty Scan page)."""
    segments: int


class BackfillError(RuntimeError):
    """A Scan or a ``_bulk`` request failed for good; the backfill stopped.

    Attributes
    ----------
    result : BackfillResult
        What was done before it stopped. Running the backfill again is safe.
    """

    def __init__(self, message: str, result: BackfillResult) -> None:
        super().__init__(message)
        self.result = result


def _wire(av: Any) -> Any:
    """A boto3 attribute value as stream DynamoDB JSON: binary back to base64 text."""
    [(tag, value)] = av.items()
    if tag == "B" and isinstance(value, (bytes, bytearray)):
        return {"B": b64encode(value).decode("ascii")}
    if tag == "BS":
        return {"BS": [b64encode(v).decode("ascii") if isinstance(v, bytes) else v for v in value]}
    if tag == "M":
        return {"M": {k: _wire(v) for k, v in value.items()}}
    if tag == "L":
        return {"L": [_wire(v) for v in value]}
    return av


class _Run:
    """Shared state of one backfill: the totals, and the signal to stop."""

    def __init__(self, segments: int, log: logging.Logger) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.log = log
        self.result: BackfillResult = {
            "scanned": 0,
            "indexed": 0,
            "skipped": 0,
            "failed": 0,
            "requests": 0,
            "segments": segments,
        }
        self.failures_logged = 0

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, count in counts.items():
                self.result[name] += count  # type: ignore[literal-required]

    def failure(self, doc_id: str | None, reason: str) -> None:
        with self.lock:
            self.result["failed"] += 1
            if self.failures_logged >= _LOGGED_FAILURES:
                return
            self.failures_logged += 1
        self.log.warning("backfill: document %s not indexed: %s", doc_id, reason)


def backfill(
    table_name: str,
    *,
    endpoint: str,
    index: str,
    region: str,
    id_attributes: Sequence[str],
    segments: int = 4,
    page_size: int = 1000,
    service: str = "es",
    versioning: str = "external",
    dynamodb_client: Any = None,
    credentials: Any = None,
    opener: Any = None,
    max_attempts: int = 5,
    backoff_seconds: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
    logger: logging.Logger | None = None,
) -> BackfillResult:
    """Index every item of ``table_name``; never overwrite what the stream indexed.

    Parameters
    ----------
    table_name : str
        The source table.
    endpoint, index, region : str
        As for the indexer (``SEARCH_ENDPOINT``, ``INDEX_NAME``, ``AWS_REGION``).
    id_attributes : sequence of str
        As the indexer's ``ID_ATTRIBUTES``: the ids must match, or each item is
        indexed twice.
    segments : int, optional
        Parallel Scan segments, one worker thread each. Default: 4.
    page_size : int, optional
        Scan ``Limit``: items per page and so per ``_bulk`` request (a page
        also ends at 1 MB). Default: 1000.
    service : {"es", "aoss"}, optional
        Default ``"es"``.
    versioning : {"external", "none"}, optional
        As the indexer's ``VERSIONING``. Default ``"external"``.
    dynamodb_client : object, optional
        Anything with boto3's ``scan`` (shared by the threads: boto3 clients are
        thread-safe). Default: a boto3 client for ``region``.
    credentials : botocore Credentials, optional
        For signing. Default: botocore's credential chain.
    opener : urllib.request.OpenerDirector, optional
        Default: ``urllib.request.build_opener()``.
    max_attempts, backoff_seconds : optional
        Retries of each ``_bulk`` request for 429, 5xx and connection errors.
        Default: 5 attempts, 0.5 s doubling.
    sleep : callable, optional
        Default: ``time.sleep``.
    logger : logging.Logger, optional
        Default: the ``ddb_stream_runtime.backfill`` logger.

    Returns
    -------
    BackfillResult

    Raises
    ------
    ValueError
        If an argument is invalid.
    BackfillError
        If a Scan or a ``_bulk`` request failed for good; the other segments
        stop after their current page. Its ``result`` holds the totals so far.
    """
    if isinstance(segments, bool) or not isinstance(segments, int) or not (
        1 <= segments <= _MAX_SEGMENTS
    ):
        raise ValueError(f"segments must be an integer from 1 to {_MAX_SEGMENTS}, got {segments!r}")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
    if not isinstance(table_name, str) or not table_name:
        raise ValueError(f"table_name must be a non-empty string, got {table_name!r}")
    config = IndexerConfig(
        endpoint,
        index,
        region,
        tuple(id_attributes),
        service=service,
        versioning=versioning,  # type: ignore[arg-type]
        max_attempts=max_attempts,
        backoff_seconds=backoff_seconds,
    )
    client = config.client(credentials=credentials, opener=opener, sleep=sleep)
    if dynamodb_client is None:
        import boto3  # only here: the Lambda handlers never pay for it

        dynamodb_client = boto3.client("dynamodb", region_name=region)
    run = _Run(segments, logger or _LOGGER)
    if versioning == "external":
        meta: dict[str, Any] = {"version": BACKFILL_VERSION, "version_type": "external_gte"}
        action = "index"
    else:
        meta, action = {}, "create"  # never replaces a document the stream wrote

    def index_page(items: list[dict[str, Any]]) -> None:
        lines: list[bytes] = []
        ids: list[str] = []
        for item in items:
            try:
                wire = {name: _wire(av) for name, av in item.items()}
                doc_id = document_id(config.id_attributes, wire)
                source = _encode(image_to_document(wire))
            except Exception as exc:  # one bad item is counted, not fatal
                run.failure(None, f"{type(exc).__name__}: {exc}")
                continue
            ids.append(doc_id)
            lines.append(f"{_encode({action: {'_id': doc_id, **meta}})}\n{source}\n".encode())
        if not lines:
            return
        response = client.bulk(b"".join(lines))
        run.add(requests=1)
        results = response["items"]
        if len(results) != len(ids):
            raise BulkRequestError(
                f"bulk response has {len(results)} items for {len(ids)} actions",
                status=None,
                attempts=1,
            )
        indexed = skipped = 0
        for doc_id, item in zip(ids, results, strict=True):
            result = item.get(action) if isinstance(item, dict) else None
            result = result if isinstance(result, dict) else {}
            if not item_succeeded(result, action):
                error = result.get("error")
                kind = error.get("type") if isinstance(error, dict) else error
                run.failure(doc_id, f"status {result.get('status')} ({kind})")
            elif result.get("status") == 409:
                skipped += 1
            else:
                indexed += 1
        run.add(indexed=indexed, skipped=skipped)

    def scan_segment(segment: int) -> None:
        request: dict[str, Any] = {
            "TableName": table_name,
            "Segment": segment,
            "TotalSegments": segments,
            "Limit": page_size,
        }
        while not run.stop.is_set():
            page = dynamodb_client.scan(**request)
            items = page.get("Items") or []
            run.add(scanned=len(items))
            if items:
                index_page(items)
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return
            request["ExclusiveStartKey"] = last_key

    started = time.monotonic()
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=segments, thread_name_prefix="backfill") as pool:
        futures = [pool.submit(scan_segment, s) for s in range(segments)]
        for future in futures:
            exc = future.exception()
            if exc is not None:
                run.stop.set()  # the others finish their current page, then stop
                errors.append(exc)
    result = dict(run.result)
    if errors:
        first = errors[0]
        raise BackfillError(
            f"backfill of {table_name} stopped: {type(first).__name__}: {first}",
            result,  # type: ignore[arg-type]
        ) from first
    run.log.info(
        "backfill of %s into %s: %s in %.1f s",
        table_name,
        index,
        result,
        time.monotonic() - started,
    )
    return result  # type: ignore[return-value]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ddb_stream_runtime.backfill",
        description="Index the items a DynamoDB table already holds into OpenSearch.",
    )
    parser.add_argument("--table", required=True, help="the source table")
    parser.add_argument("--endpoint", required=True, help="https://<domain or collection>")
    parser.add_argument("--index", required=True, help="the index the indexer writes to")
    parser.add_argument(
        "--id-attributes",
        required=True,
        help="comma-separated key attributes, as the indexer's ID_ATTRIBUTES: ListId,TaskId",
    )
    parser.add_argument("--segments", type=int, default=4, help="parallel scan segments")
    parser.add_argument("--page-size", type=int, default=1000, help="items per scan page")
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="default: AWS_REGION or AWS_DEFAULT_REGION",
    )
    parser.add_argument("--service", choices=("es", "aoss"), default="es")
    parser.add_argument(
        "--versioning",
        choices=("external", "none"),
        default=None,
        help="default: external for es, none for aoss",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m ddb_stream_runtime.backfill --help``.

    Returns
    -------
    int
        0 if everything was indexed (or skipped as older), 1 if some documents
        failed, 2 if the backfill stopped.
    """
    args = _parser().parse_args(argv)
    if not args.region:
        _parser().error("--region is required (or set AWS_REGION)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    versioning = args.versioning or ("none" if args.service == "aoss" else "external")
    try:
        result = backfill(
            args.table,
            endpoint=args.endpoint,
            index=args.index,
            region=args.region,
            id_attributes=[a.strip() for a in args.id_attributes.split(",") if a.strip()],
            segments=args.segments,
            page_size=args.page_size,
            service=args.service,
            versioning=versioning,
        )
    except ValueError as exc:
        _parser().error(str(exc))
    except BackfillError as exc:
        print(json.dumps(exc.result), flush=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
