"""Lambda runtime for ddb-stream-patterns: record model, deserializer, batch processor.

Imports only the standard library (no boto3, no aws_cdk) to keep cold starts short.

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
from .records import EventName, MalformedRecordError, StreamRecord

__all__ = [
    "BatchItemFailure",
    "DeserializationError",
    "EventName",
    "LambdaHandler",
    "MalformedRecordError",
    "PartialBatchResponse",
    "RecordHandler",
    "StreamRecord",
    "deserialize_image",
    "deserialize_value",
    "process_stream_batch",
    "stream_handler",
]
