"""What the data patterns share: a runtime handler from ``ddb_stream_runtime`` bound to a
change source (``source=``: the table's stream through a ``SimpleController``, or a
``StreamFanOut`` through a ``FanOutConsumer``; see ``change_source``), so every pattern gets
the same safe event source, failure queue, alarms and metrics, and checks on the source
stream's view type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
from constructs import Construct

from . import _validation as v
from ._resources import build_function
from ._validation import check_duration_range, check_range
from .change_source import ConsumerSpec, SourceBinding, check_source
from .monitoring import Monitoring
from .runtime_assets import runtime_code
from .simple_controller import DEFAULT_RUNTIME
from .stream_filter import StreamFilter
from .stream_table import StreamTable

__all__ = ["StreamOptions", "runtime_controller", "require_view_type", "ControllerPattern"]

# What each runtime handler asks of its source beyond the records (see ``ConsumerSpec``):
# the replicator and indexer order one item's changes; the counter's idempotency markers
# must outlive every redelivery (``MARKER_RETENTION_SECONDS``).
_ORDERED_HANDLERS = frozenset({
    "ddb_stream_runtime.replicator.handler", "ddb_stream_runtime.indexer.handler",
})
_REDELIVERY_ENV = {"ddb_stream_runtime.counter.handler": "MARKER_RETENTION_SECONDS"}

_VIEWS_WITH_OLD = {dynamodb.StreamViewType.OLD_IMAGE, dynamodb.StreamViewType.NEW_AND_OLD_IMAGES}
_VIEWS_WITH_NEW = {dynamodb.StreamViewType.NEW_IMAGE, dynamodb.StreamViewType.NEW_AND_OLD_IMAGES}
VIEWS = {"old": _VIEWS_WITH_OLD, "new": _VIEWS_WITH_NEW, "both": _VIEWS_WITH_OLD & _VIEWS_WITH_NEW}


@dataclass(frozen=True)
class StreamOptions:
    """The stream event source of a data pattern's handler (as in ``SimpleController``).

    Parameters
    ----------
    batch_size
        1-10,000. Default: 100.
    max_batching_window
        0-300 s. Default: none.
    parallelization_factor
        1-10. Default: 1.
    retry_attempts
        0-10,000. Default: 10.
    max_record_age
        60 s to 7 days; on the table's stream below its 24 h retention, on a Kinesis
        stream below the stream's retention where it is known (an error at synth
        otherwise: records the stream trims while they are retried are lost). Default:
        ``DEFAULT_MAX_RECORD_AGE`` (20 hours).
    starting_position
        Default: ``TRIM_HORIZON``.
    failure_destination
        Where the records given up on go (a ``FailureDestination``). Default:
        ``FailureDestination.s3()``: a new bucket that keeps them, payload included, 90
        days; ``FailureDestination.sqs()`` keeps their stream coordinates only.
    """

    batch_size: int = 100
    max_batching_window: cdk.Duration | None = None
    parallelization_factor: int = 1
    retry_attempts: int = 10
    max_record_age: cdk.Duration | None = None
    starting_position: lambda_.StartingPosition = lambda_.StartingPosition.TRIM_HORIZON
    failure_destination: Any = None

    def __post_init__(self) -> None:
        from .simple_controller import FailureDestination

        v.check_types("StreamOptions", {
            "batch_size": int, "max_batching_window": cdk.Duration,
            "parallelization_factor": int, "retry_attempts": int,
            "max_record_age": cdk.Duration, "starting_position": lambda_.StartingPosition,
            "failure_destination": FailureDestination,
        }, vars(self))
        # The same limits SimpleController checks, raised here with this struct's names.
        check_range("stream_options.batch_size", self.batch_size, 1, 10_000)
        check_range("stream_options.parallelization_factor", self.parallelization_factor, 1, 10)
        check_range("stream_options.retry_attempts", self.retry_attempts, 0, 10_000)
        check_duration_range("stream_options.max_batching_window", self.max_batching_window, 0, 300)
        check_duration_range("stream_options.max_record_age", self.max_record_age, 60, 604_800)


def require_view_type(
    table: dynamodb.ITable, needs: str, pattern: str, *, source: Any = None
) -> None:
    """Fail at synth when a ``StreamTable``'s view type lacks the images ``pattern`` reads.

    ``needs`` is ``"old"``, ``"new"`` or ``"both"``. Other tables' view types are not
    known here: the runtime then fails the records it cannot use (they reach the DLQ).
    A ``source`` whose records carry both images whatever the view type
    (``carries_both_images``: a ``KinesisSource``) needs nothing of it.
    """
    if getattr(source, "carries_both_images", False):
        return
    if not isinstance(table, StreamTable):
        return
    if table.stream_view_type not in VIEWS[needs]:
        wanted = sorted(v.value for v in VIEWS[needs])
        raise ValueError(
            f"table {table.node.path!r} streams {table.stream_view_type.value}, but {pattern} "
            f"reads {'both images' if needs == 'both' else f'the {needs} image'}: "
            f"use stream_view_type {' or '.join(wanted)}"
        )


def runtime_controller(
    scope: Construct,
    *,
    table: dynamodb.ITable,
    handler: str,
    environment: dict[str, str],
    function_options: lambda_.FunctionOptions | None,
    stream_options: StreamOptions | None,
    monitoring: Monitoring | None,
    removal_policy: cdk.RemovalPolicy,
    filters: Sequence[StreamFilter] = (),
    code: lambda_.Code | None = None,
    layers: list[lambda_.ILayerVersion] | None = None,
    source: Any = None,
    needs: str | None = None,
) -> SourceBinding:
    """Build ``Function`` running ``handler`` and bind it to ``source`` as ``Controller``.

    ``source`` ``None`` is the table's stream (a ``SimpleController``); a
    ``StreamFanOut`` gives a ``FanOutConsumer``. ``needs`` names the images the
    handler reads (``"old"``, ``"new"``, ``"both"``).
    """
    pattern = type(scope).__name__
    change_source = check_source(pattern, source, table)
    function = build_function(
        scope,
        "Function",
        code=code or runtime_code(),
        handler=handler,
        runtime=DEFAULT_RUNTIME,
        removal_policy=removal_policy,
        options=function_options,
        environment=environment,
        layers=layers,
    )
    return change_source.bind(
        scope,
        "Controller",
        function=function,
        consumer=ConsumerSpec(
            pattern=pattern,
            table=table,
            filters=tuple(filters),
            needs=needs,
            stream_options=stream_options,
            monitoring=monitoring,
            removal_policy=removal_policy,
            ordered=handler in _ORDERED_HANDLERS,
            redelivery_env=_REDELIVERY_ENV.get(handler),
        ),
    )


class ControllerPattern:
    """Function, alarms, metrics and dashboard rows of a pattern whose handler is bound
    to its source as ``self.controller`` (a ``SimpleController`` on the table's stream, a
    ``FanOutConsumer`` on a ``StreamFanOut``): derived from it, never copied."""

    controller: Any  # a SourceBinding

    @property
    def function(self) -> lambda_.Function:
        """The pattern's handler function (run by ``controller``): built here, so a
        ``lambda_.Function`` (``add_environment``, ``add_layers``... are yours)."""
        return cast(lambda_.Function, self.controller.function)

    @property
    def alarms(self) -> dict[str, cloudwatch.Alarm]:
        """The handler's alarms: on the stream iterator age, errors, throttles, records
        sent to the failure bucket (or failure queue depth), records dropped; on a fan-out
        errors, throttles, DLQ and oldest queued message."""
        return self.controller.alarms

    @property
    def alarm_topic(self) -> sns.ITopic | None:
        """The topic the handler's alarms notify (``None``: alarms off, or no action)."""
        return self.controller.alarm_topic

    def metric_iterator_age(self) -> cloudwatch.Metric:
        """Maximum iterator age of the pattern's handler (ms); a ``ValueError`` on a
        fan-out, whose handler reads a queue (see ``metric_oldest_message_age``)."""
        return self.controller.metric_iterator_age()

    def metric_oldest_message_age(self) -> cloudwatch.Metric:
        """Age of the oldest message in the handler's queue (s), on a fan-out; a
        ``ValueError`` on the table's stream (see ``metric_iterator_age``)."""
        metric = getattr(self.controller, "metric_oldest_message_age", None)
        if metric is None:
            raise ValueError(
                f"{cast(Construct, self).node.path} reads a stream (the table's, or Kinesis), "
                "not a queue: use metric_iterator_age()"
            )
        return metric()

    def metric_errors(self) -> cloudwatch.Metric:
        """Sum of the handler's errors (failed batches are retried, then sent to the DLQ)."""
        return self.controller.metric_errors()

    def metric_failure_queue_depth(self) -> cloudwatch.Metric:
        """Records given up on, waiting in the failure queue (a fan-out's DLQ, or a
        stream's ``FailureDestination.sqs()``); a ``ValueError`` with a failure bucket
        (see ``metric_failure_deliveries``)."""
        return self.controller.metric_failure_queue_depth()

    def metric_failure_deliveries(self) -> cloudwatch.Metric:
        """Records the handler's stream mapping sent to its failure destination (Lambda's
        ``OnFailureDestinationDeliveredEventCount``); a ``ValueError`` on a fan-out."""
        return self._stream_metric("metric_failure_deliveries")

    def metric_dropped_records(self) -> cloudwatch.Metric:
        """Records the handler's stream mapping gave up on and could not deliver (Lambda's
        ``DroppedEventCount``); a ``ValueError`` on a fan-out."""
        return self._stream_metric("metric_dropped_records")

    def _stream_metric(self, name: str) -> cloudwatch.Metric:
        metric = getattr(self.controller, name, None)
        if metric is None:
            raise ValueError(
                f"{name} is a stream mapping's metric; {cast(Construct, self).node.path} "
                "reads a queue: use metric_failure_queue_depth()"
            )
        return metric()

    def dashboard_rows(self) -> list[list[cloudwatch.IWidget]]:
        """The handler and its failure queue (and, on a fan-out, its queue): rows for a
        ``StreamDashboard``."""
        return self.controller.dashboard_rows()
