"""Lambda runtime for ddb-stream-patterns: record model, deserializer, batch processors, router.

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

from .batch import (
    BatchItemFailure,
    LambdaHandler,
    PartialBatchResponse,
    RecordHandler,
    process_stream_batch,
    stream_handler,
)
from .deserialize import DeserializationError, deserialize_image, deserialize_value
from .processor import process_sqs_batch, sqs_record_handler
from .records import EventName, MalformedRecordError, StreamRecord
from .router import Router, RouterConfig

__all__ = [
    "BatchItemFailure",
    "DeserializationError",
    "EventName",
    "LambdaHandler",
    "MalformedRecordError",
    "PartialBatchResponse",
    "RecordHandler",
    "Router",
    "RouterConfig",
    "StreamRecord",
    "deserialize_image",
    "deserialize_value",
    "process_sqs_batch",
    "process_stream_batch",
    "sqs_record_handler",
    "stream_handler",
]
