"""ddb-stream-patterns: AWS CDK v2 constructs for DynamoDB Streams processing patterns.

Each pattern is a construct that provisions the infrastructure and ships the Lambda
runtime (the ``ddb_stream_runtime`` package) that runs it.

>>> from ddb_stream_patterns import StreamTable, SimpleController, StreamFilter, Rule
"""

from typing import TYPE_CHECKING

from ._resources import merge_function_options
from ._stream_pattern import StreamOptions
from .aggregate_counter import AggregateCounter
from .alarm_topic import AlarmTopic
from .change_source import ChangeSource, ConsumerSpec, SourceBinding, TableStream
from .complex_controller import PUBLISHED_ATTRIBUTES, ComplexController, Processor, Route
from .kinesis_source import KinesisController, KinesisSource
from .monitoring import AlarmThresholds, Monitoring, StreamDashboard
from .runtime_assets import StreamRuntimeLayer, runtime_code
from .search_indexer import SearchIndexer
from .simple_controller import (
    DEFAULT_FAILURE_EXPIRATION,
    DEFAULT_MAX_RECORD_AGE,
    DEFAULT_RUNTIME,
    FailureDestination,
    SimpleController,
)
from .stream_fan_out import FanOutConsumer, QueueOptions, StreamFanOut
from .stream_filter import Rule, StreamFilter
from .stream_table import StreamTable, require_stream
from .table_replicator import TableReplicator
from .ttl_archiver import TtlArchiver

__all__ = [
    "StreamPatternsChecks",
    "AggregateCounter",
    "AlarmTopic",
    "SearchIndexer",
    "StreamOptions",
    "TableReplicator",
    "TtlArchiver",
    "AlarmThresholds",
    "Monitoring",
    "StreamDashboard",
    "ComplexController",
    "KinesisController",
    "KinesisSource",
    "PUBLISHED_ATTRIBUTES",
    "Processor",
    "Route",
    "DEFAULT_RUNTIME",
    "DEFAULT_FAILURE_EXPIRATION",
    "DEFAULT_MAX_RECORD_AGE",
    "FailureDestination",
    "Rule",
    "SimpleController",
    "StreamFilter",
    "StreamFanOut",
    "QueueOptions",
    "FanOutConsumer",
    "ChangeSource",
    "ConsumerSpec",
    "SourceBinding",
    "TableStream",
    "StreamRuntimeLayer",
    "StreamTable",
    "require_stream",
    "merge_function_options",
    "runtime_code",
]

if TYPE_CHECKING:
    from .checks import StreamPatternsChecks


def __getattr__(name: str) -> object:
    # The checks (a validation plugin) load on first use: most apps never use them, and
    # their imports would cost every app's synth (issue 16, synth time).
    if name == "StreamPatternsChecks":
        from .checks import StreamPatternsChecks

        return StreamPatternsChecks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
