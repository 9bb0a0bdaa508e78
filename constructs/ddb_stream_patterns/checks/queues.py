"""Rules on SQS queues that Lambda polls: redrive, visibility, DLQ retention, concurrency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ._model import PACK, Assembly, Finding, Ref, Rule, Template, boolean, number

__all__ = ["RECEIVE_COUNT", "VISIBILITY", "DLQ_RETENTION", "CONCURRENCY", "CHECKS"]

# Defaults from the SQS API reference (CreateQueue) and the Lambda one (CreateFunction).
DEFAULT_VISIBILITY_S = 30
DEFAULT_RETENTION_S = 345_600
DEFAULT_FUNCTION_TIMEOUT_S = 3
MIN_RECEIVE_COUNT = 5
VISIBILITY_FACTOR = 6
_SQS_CONFIGURE = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html"

RECEIVE_COUNT = Rule(
    f"{PACK}-SQS1",
    "Lambda-polled queue dead-letters after fewer than 5 receives",
    "Set the maxReceiveCount of a Lambda-polled queue's redrive policy to at least 5, so "
    "that messages are not sent to the dead-letter queue only because the function was "
    "throttled.",
    _SQS_CONFIGURE,
)
VISIBILITY = Rule(
    f"{PACK}-SQS2",
    "Lambda-polled queue with a visibility timeout under 6 times the function timeout",
    "Set the source queue's visibility timeout to at least six times the function's "
    "timeout (3 seconds by default), so Lambda has time to retry if the function is "
    "throttled while processing a previous batch.",
    _SQS_CONFIGURE,
)
DLQ_RETENTION = Rule(
    f"{PACK}-SQS3",
    "Dead-letter queue that keeps messages no longer than its source queue",
    "For standard queues a message's expiry stays based on its original enqueue time when "
    "it moves to the dead-letter queue: a message that spent 1 day in the source is deleted "
    "from a 4-day DLQ after 3 days. Set the DLQ's retention period (345,600 s by default) "
    "longer than the source queue's.",
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
    "setting-up-dead-letter-queue-retention.html",
)
CONCURRENCY = Rule(
    f"{PACK}-SQS4",
    "SQS event sources whose maximum concurrency exceeds the function's reserved concurrency",
    "Maximum concurrency and reserved concurrency are independent settings: the function's "
    "reserved concurrency must be at least the total maximum concurrency of all its SQS "
    "event sources, or Lambda throttles and the messages come back (and may reach the DLQ).",
    "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html",
)


_Polled = tuple[Template, str, dict[str, Any], Ref, Ref | None]


def _polled_queues(asm: Assembly) -> Iterator[_Polled]:
    """``(template, mapping ID, mapping props, queue, function)`` per SQS event source."""
    for template in asm.templates.values():
        for logical_id, props in template.properties_of("AWS::Lambda::EventSourceMapping"):
            queue = asm.target(template, props.get("EventSourceArn"))
            if queue is None or queue.type != "AWS::SQS::Queue":
                continue
            function = asm.function(template, props.get("FunctionName"))
            yield template, logical_id, props, queue, function


def _redrive(queue: Ref) -> dict[str, Any]:
    policy = queue.properties.get("RedrivePolicy")
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return {}
    return policy if isinstance(policy, dict) else {}


def _value(props: dict[str, Any], key: str, default: float) -> float | None:
    return default if key not in props else number(props[key])


def check_receive_count(asm: Assembly) -> Iterator[Finding]:
    seen: set[tuple[str, str]] = set()
    for _, _, _, queue, _ in _polled_queues(asm):
        count = number(_redrive(queue).get("maxReceiveCount"))
        if count is not None and count < MIN_RECEIVE_COUNT and queue.key not in seen:
            seen.add(queue.key)
            yield asm.finding(
                RECEIVE_COUNT,
                queue.template,
                queue.logical_id,
                f"Lambda-polled queue {queue.name} moves messages to its dead-letter queue "
                f"after {count:g} receives (maxReceiveCount), below {MIN_RECEIVE_COUNT}",
                "Properties/RedrivePolicy",
            )


def check_visibility(asm: Assembly) -> Iterator[Finding]:
    for _, _, _, queue, function in _polled_queues(asm):
        if function is None:
            continue
        visibility = _value(queue.properties, "VisibilityTimeout", DEFAULT_VISIBILITY_S)
        timeout = _value(function.properties, "Timeout", DEFAULT_FUNCTION_TIMEOUT_S)
        if visibility is None or timeout is None or visibility >= VISIBILITY_FACTOR * timeout:
            continue
        yield asm.finding(
            VISIBILITY,
            queue.template,
            queue.logical_id,
            f"queue {queue.name} hides a received message for {visibility:g} s, under "
            f"{VISIBILITY_FACTOR} x the {timeout:g} s timeout of its function {function.name} "
            f"({VISIBILITY_FACTOR * timeout:g} s)",
            "Properties/VisibilityTimeout",
        )


def check_dlq_retention(asm: Assembly) -> Iterator[Finding]:
    seen: set[tuple[str, str]] = set()
    for _, _, _, queue, _ in _polled_queues(asm):
        if queue.key in seen or boolean(queue.properties.get("FifoQueue")):
            continue  # a FIFO queue's enqueue time resets when a message moves to its DLQ
        seen.add(queue.key)
        dlq = asm.target(queue.template, _redrive(queue).get("deadLetterTargetArn"))
        if dlq is None or dlq.type != "AWS::SQS::Queue":
            continue
        source = _value(queue.properties, "MessageRetentionPeriod", DEFAULT_RETENTION_S)
        kept = _value(dlq.properties, "MessageRetentionPeriod", DEFAULT_RETENTION_S)
        if source is None or kept is None or kept > source:
            continue
        yield asm.finding(
            DLQ_RETENTION,
            dlq.template,
            dlq.logical_id,
            f"dead-letter queue {dlq.name} keeps messages {kept:g} s, not longer than the "
            f"{source:g} s of its source queue {queue.name}",
            "Properties/MessageRetentionPeriod",
        )


def check_concurrency(asm: Assembly) -> Iterator[Finding]:
    per_function: dict[tuple[str, str], tuple[Ref, list[tuple[Template, str, float]]]] = {}
    for template, logical_id, props, _, function in _polled_queues(asm):
        scaling = props.get("ScalingConfig")
        maximum = number(scaling.get("MaximumConcurrency")) if isinstance(scaling, dict) else None
        if function is None or maximum is None:
            continue
        _, sources = per_function.setdefault(function.key, (function, []))
        sources.append((template, logical_id, maximum))
    for function, sources in per_function.values():
        reserved = number(function.properties.get("ReservedConcurrentExecutions"))
        total = sum(maximum for _, _, maximum in sources)
        if reserved is None or total <= reserved:
            continue
        names = ", ".join(f"{t.name_of(i)} ({m:g})" for t, i, m in sources)
        yield asm.finding(
            CONCURRENCY,
            function.template,
            function.logical_id,
            f"function {function.name} reserves {reserved:g} concurrent executions but its SQS "
            f"event sources may run {total:g} at once: {names}",
            "Properties/ReservedConcurrentExecutions",
        )


CHECKS = (
    (RECEIVE_COUNT, check_receive_count),
    (VISIBILITY, check_visibility),
    (DLQ_RETENTION, check_dlq_retention),
    (CONCURRENCY, check_concurrency),
)
