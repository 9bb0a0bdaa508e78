"""Lambda runtime for ddb-stream-patterns: record model, deserializer, batch processors, router.

Every handler takes events from a DynamoDB stream, from an SQS queue of the SNS fan-out
and from a Kinesis data stream fed by the table (see :mod:`ddb_stream_runtime.intake`).

Imports only the standard library (no aws_cdk; boto3 only inside the functions
that need a client, on first use) to keep cold starts short.

Examples
--------
>>> from ddb_stream_runtime import stream_handler
>>> @stream_handler
... def handler(record):
...     if record.is_ttl_expiry:
...         print("expired", record.keys)
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Public name -> submodule. Loaded on first access (PEP 562), so a handler module
# (``ddb_stream_runtime.archiver``) does not pay for the router, the processor or the
# batch processor it never uses: that is cold-start time.
_EXPORTS = {
    "BatchItemFailure": "batch",
    "LambdaHandler": "batch",
    "PartialBatchResponse": "batch",
    "RecordHandler": "batch",
    "process_stream_batch": "batch",
    "stream_handler": "batch",
    "DeserializationError": "deserialize",
    "deserialize_image": "deserialize",
    "deserialize_value": "deserialize",
    "process_sqs_batch": "processor",
    "sqs_record_handler": "processor",
    "read_batch": "intake",
    "EventName": "records",
    "MalformedRecordError": "records",
    "StreamRecord": "records",
    "Router": "router",
    "RouterConfig": "router",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    qualified = f"{__name__}.{module}"
    __import__(qualified)  # not importlib: ~0.3 ms of cold start for one call
    value = getattr(sys.modules[qualified], name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # static type checkers and IDEs see the eager imports
    from .batch import (
        BatchItemFailure,
        LambdaHandler,
        PartialBatchResponse,
        RecordHandler,
        process_stream_batch,
        stream_handler,
    )
    from .deserialize import DeserializationError, deserialize_image, deserialize_value
    from .intake import read_batch
    from .processor import process_sqs_batch, sqs_record_handler
    from .records import EventName, MalformedRecordError, StreamRecord
    from .router import Router, RouterConfig
