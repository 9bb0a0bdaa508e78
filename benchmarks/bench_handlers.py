"""What do the SQS processor and the other stream handlers cost on top of ``json.loads``?

Processor unwrap (the ComplexController's processor side): an SQS event of
``--records`` raw-delivery messages whose bodies are the MODIFY stream records of
``bench_deserialize.py`` (NEW_AND_OLD_IMAGES, ~1.9 KB each), times, in
interleaved rounds through ``_harness.py`` (GC off and on):

* ``json.loads`` of every message body: the floor every SQS consumer pays;
* + ``ddb_stream_runtime.process_sqs_batch`` with a record handler that does nothing
  (unwrapping, validation, the partial-batch response);
* + the same with a record handler that reads ``new_image`` and ``old_image``.

Then each of ``ddb_stream_runtime.archiver``, ``.counter``, ``.indexer`` and
``.replicator`` that exists: its ``handler`` on a 1,000-record stream event (TTL
REMOVEs for the archiver, MODIFYs for the others), configured through the
environment variables its construct sets, with fake AWS clients that answer
every call with success and make no network request; the floor is ``json.loads``
of that event. A module that is missing, or that cannot be driven this way (an
exception, a reported failure, no AWS call made), stops the script with a non-zero exit:
no figure is printed for what was not measured.

Run: ``python benchmarks/bench_handlers.py [--records 1000] [--repeat 15]``.
Prints ms per batch and the ratio to the floor, min and median over the rounds.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import io
import json
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda_src"))

import _harness  # noqa: E402
from bench_deserialize import make_event  # noqa: E402

from ddb_stream_runtime import StreamRecord, process_sqs_batch  # noqa: E402

QUEUE_ARN = "arn:aws:sqs:us-east-2:123456789012:orders-welcome"


# --- events ----------------------------------------------------------------------------


def make_sqs_event(records: int) -> dict[str, Any]:
    """An SQS event whose message bodies are stream records (raw message delivery)."""
    messages = []
    for i, record in enumerate(make_event(records)["Records"]):
        body = json.dumps(record, separators=(",", ":"))  # what the router publishes
        messages.append(
            {
                "messageId": f"{i:08x}-0000-4000-8000-{i:012x}",
                "receiptHandle": f"AQEB{i:040x}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(1718049976000 + i),
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": str(1718049976100 + i),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-2",
            }
        )
    return {"Records": messages}


def make_ttl_event(records: int) -> dict[str, Any]:
    """TTL expiries: REMOVE records made by the DynamoDB service, OLD_IMAGE views."""
    event = make_event(records)
    for record in event["Records"]:
        record["eventName"] = "REMOVE"
        dynamodb = record["dynamodb"]
        dynamodb["StreamViewType"] = "OLD_IMAGE"
        del dynamodb["NewImage"]
        dynamodb["OldImage"]["expiresAt"] = {"N": "1718049600"}
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return event


# --- fake AWS clients ------------------------------------------------------------------


class _Exceptions:
    """``client.exceptions.X`` for any X: one exception class per name."""

    def __getattr__(self, name: str) -> type[Exception]:
        cls = type(name, (Exception,), {})
        setattr(self, name, cls)
        return cls


class FakeClient:
    """Answers every operation with success, counts calls, never opens a socket."""

    def __init__(self, service: str, *args: Any, **kwargs: Any) -> None:
        self.service = service
        self.calls: dict[str, int] = {}
        self.exceptions = _Exceptions()
        self.meta = types.SimpleNamespace(region_name="us-east-2", service_model=None)
        self._lock = threading.Lock()  # the replicator calls from several threads

    def __getattr__(self, operation: str) -> Callable[..., dict[str, Any]]:
        if operation.startswith("_"):
            raise AttributeError(operation)

        def call(**params: Any) -> dict[str, Any]:
            with self._lock:
                self.calls[operation] = self.calls.get(operation, 0) + 1
            return _success(operation, params)

        return call


def _success(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": 200}}
    if operation == "publish_batch":
        entries = params.get("PublishBatchRequestEntries", [])
        response["Successful"] = [{"Id": e["Id"], "MessageId": e["Id"]} for e in entries]
        response["Failed"] = []
    elif operation == "batch_write_item":
        response["UnprocessedItems"] = {}
    elif operation == "put_object":
        response["ETag"] = '"0"'
    elif operation in ("execute_statement", "batch_execute_statement"):
        response["Responses"] = []
    return response  # put_item, delete_item, transact_write_items...: metadata only


class _FakeResponse(io.BytesIO):
    status = 200


class FakeSearchOpener:
    """A ``urllib`` opener that answers every OpenSearch ``_bulk`` request with success."""

    def __init__(self) -> None:
        self.service = "opensearch"
        self.calls: dict[str, int] = {}

    def open(self, request: Any, timeout: float | None = None) -> _FakeResponse:
        self.calls["POST _bulk"] = self.calls.get("POST _bulk", 0) + 1
        lines = request.data.splitlines()
        items, i = [], 0
        while i < len(lines):
            [action] = json.loads(lines[i])
            items.append({action: {"status": 200 if action != "delete" else 404}})
            i += 1 if action == "delete" else 2  # delete has no source line
        return _FakeResponse(json.dumps({"took": 1, "errors": False, "items": items}).encode())


@contextmanager
def fake_aws() -> Iterator[list[Any]]:
    """Every boto3 client created inside is a :class:`FakeClient`, every urllib opener a
    :class:`FakeSearchOpener`; yields them all."""
    import urllib.request

    import boto3
    import boto3.session

    made: list[Any] = []

    def opener(*handlers: Any) -> FakeSearchOpener:
        made.append(FakeSearchOpener())
        return made[-1]

    def client(*args: Any, **kwargs: Any) -> FakeClient:
        if args and isinstance(args[0], boto3.session.Session):
            args = args[1:]  # called as an unbound Session.client
        service = args[0] if args else kwargs.get("service_name", "?")
        made.append(FakeClient(service))
        return made[-1]

    def session_client(self: Any, *args: Any, **kwargs: Any) -> FakeClient:
        return client(*args, **kwargs)

    from ddb_stream_runtime import _aws

    _aws.aws_client.cache_clear()
    with (
        mock.patch.object(boto3, "client", client),
        mock.patch.object(boto3.session.Session, "client", session_client),
        mock.patch.object(urllib.request, "build_opener", opener),
        mock.patch.dict(os.environ, FAKE_ENVIRONMENT),
    ):
        try:
            yield made
        finally:
            _aws.aws_client.cache_clear()


# --- the optional handlers -------------------------------------------------------------

# Dummy credentials: the indexer signs its requests (SigV4) before the fake answers them.
FAKE_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-2",
    "AWS_REGION": "us-east-2",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}

# Module -> (environment its construct sets, event maker). Names from constructs/.
OPTIONAL: dict[str, tuple[dict[str, str], Callable[[int], dict[str, Any]]]] = {
    "archiver": (
        {"ARCHIVE_BUCKET": "archive-bucket", "ARCHIVE_PREFIX": "expired/"},
        make_ttl_event,
    ),
    "counter": (
        {
            "COUNTER_TABLE": "counters",
            "GROUP_ATTRIBUTE": "status",
            "COUNTER_PARTITION_KEY": "pk",
            "COUNT_ATTRIBUTE": "count",
            "MARKER_TTL_ATTRIBUTE": "expiresAt",
        },
        make_event,
    ),
    "indexer": (
        {
            "SEARCH_ENDPOINT": "https://search-orders.us-east-2.es.amazonaws.com",
            "INDEX_NAME": "orders",
            "ID_ATTRIBUTES": '["pk", "sk"]',
        },
        make_event,
    ),
    "replicator": (
        {"TARGET_TABLE": "orders-copy", "VERSION_ATTRIBUTE": "_streamSequence"},
        make_event,
    ),
}


def optional_module(name: str) -> types.ModuleType | str:
    """The module, or why there is none ("not present", or its import error)."""
    try:
        return importlib.import_module(f"ddb_stream_runtime.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"ddb_stream_runtime.{name}":
            return "not present"
        return f"present, import failed: {type(exc).__name__}: {exc!s:.120}"
    except Exception as exc:  # being written by someone else right now: report, go on
        return f"present, import failed: {type(exc).__name__}: {exc!s:.120}"


def _reset_cached_config(module: types.ModuleType) -> None:
    """Handlers read their environment once (``functools.lru_cache``): forget it."""
    for value in vars(module).values():
        if (
            callable(getattr(value, "cache_clear", None))
            and getattr(value, "__module__", None) == module.__name__
        ):
            value.cache_clear()


# --- timing ----------------------------------------------------------------------------


def body_floor(event: dict[str, Any]) -> None:
    for message in event["Records"]:
        json.loads(message["body"])


def _noop(record: StreamRecord) -> None:
    pass


def _read_images(record: StreamRecord) -> None:
    record.new_image  # noqa: B018
    record.old_image  # noqa: B018


def with_processor(handler: Callable[[StreamRecord], None], event: dict[str, Any]) -> None:
    response = process_sqs_batch(event, handler)
    if response["batchItemFailures"]:
        _harness.fail(f"processor reported failures: {response['batchItemFailures'][:3]}")


def run_handler(module: types.ModuleType, payload: str) -> None:
    response = module.handler(json.loads(payload), None)
    failures = (response or {}).get("batchItemFailures") if isinstance(response, dict) else None
    if failures:
        _harness.fail(f"{module.__name__}.handler reported failures: {failures[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15, help="interleaved rounds")
    args = parser.parse_args()
    n, rounds = args.records, args.repeat

    sqs_event = make_sqs_event(n)
    size = sum(len(m["body"]) for m in sqs_event["Records"])
    floor = "json.loads of each body (floor)"
    results = _harness.measure(
        {
            floor: functools.partial(body_floor, sqs_event),
            "+ process_sqs_batch, no-op record handler": functools.partial(
                with_processor, _noop, sqs_event
            ),
            "+ process_sqs_batch, handler reads both images": functools.partial(
                with_processor, _read_images, sqs_event
            ),
        },
        floor,
        rounds=rounds,
    )
    _harness.print_results(
        f"processor: {n} SQS messages (raw delivery), bodies {size / 1e6:.2f} MB of "
        "MODIFY stream records",
        results,
        floor,
    )
    _harness.summary("processor", results, "+ process_sqs_batch, no-op record handler")

    for name, (environment, make) in OPTIONAL.items():
        module = optional_module(name)
        if isinstance(module, str):
            _harness.fail(f"ddb_stream_runtime.{name}: {module}")
        payload = json.dumps(make(n), separators=(",", ":"))
        label = f"+ {name}.handler"
        floor = f"json.loads of the {name} event (floor)"
        with mock.patch.dict(os.environ, environment), fake_aws() as clients:
            _reset_cached_config(module)
            try:
                results = _harness.measure(
                    {
                        floor: functools.partial(json.loads, payload),
                        label: functools.partial(run_handler, module, payload),
                    },
                    floor,
                    rounds=rounds,
                )
            except SystemExit:
                raise
            except Exception as exc:  # cannot drive it: no figure, and say so loudly
                _harness.fail(f"{name}.handler not driven: {type(exc).__name__}: {exc!s:.200}")
            finally:
                _reset_cached_config(module)
            runs = 1 + 2 * rounds  # warm-up, then once per round per GC mode
            calls = {
                f"{c.service}.{op}": count / runs for c in clients for op, count in c.calls.items()
            }
        if not calls:
            _harness.fail(f"{name}.handler made no AWS call: it was not driven")
        _harness.print_results(
            f"{name}: {n}-record stream event, fake AWS clients; calls per batch: {calls}",
            results,
            floor,
        )
        _harness.summary(f"handler.{name}", results, label, calls=calls)


if __name__ == "__main__":
    main()
