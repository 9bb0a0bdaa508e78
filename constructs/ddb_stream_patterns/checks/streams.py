"""Rules on stream readers: how many read one DynamoDB stream, and how each one fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._model import PACK, Assembly, Finding, Ref, Rule, Template, as_list, boolean, number, text

__all__ = ["READERS", "RETRIES", "RECORD_AGE", "ON_FAILURE", "BISECT", "CHECKS"]

_DDB_PARAMS = "https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html"

READERS = Rule(
    f"{PACK}-DDB1",
    "More than two readers on one DynamoDB stream",
    "DynamoDB Streams allows no more than two processes to read from the same stream shard "
    "at the same time; exceeding this limit results in request throttling. Every event "
    "source mapping and every EventBridge pipe on a stream is a reader: fan out behind one "
    "reader (a router) or split the readers across tables.",
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
    "ServiceQuotas.html#limits-dynamodb-streams",
)
RETRIES = Rule(
    f"{PACK}-ESM1",
    "Stream event source mapping with infinite retries",
    "MaximumRetryAttempts defaults to -1, which means infinite: a failed batch is retried "
    "until its records expire (24 hours on DynamoDB Streams). Set a bounded retry count.",
    _DDB_PARAMS,
)
RECORD_AGE = Rule(
    f"{PACK}-ESM2",
    "Stream event source mapping without a maximum record age",
    "MaximumRecordAgeInSeconds defaults to -1, which means infinite: failed records are "
    "retried until they expire. Set a maximum age (60 to 604,800 seconds) so records too "
    "old to matter are discarded to the on-failure destination.",
    _DDB_PARAMS,
)
ON_FAILURE = Rule(
    f"{PACK}-ESM3",
    "Stream event source mapping without an on-failure destination",
    "Records Lambda discards after the retry or age limit are lost unless DestinationConfig "
    "names an on-failure destination (an SQS queue, SNS topic or S3 bucket) that keeps "
    "their metadata.",
    _DDB_PARAMS,
)
BISECT = Rule(
    f"{PACK}-ESM4",
    "Stream event source mapping without batch splitting or partial batch responses",
    "BisectBatchOnFunctionError defaults to false: one bad record fails and retries the "
    "whole batch. Split failing batches, or let the function report the failed records "
    "(ReportBatchItemFailures in FunctionResponseTypes).",
    "https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html",
)


def dynamodb_stream(asm: Assembly, template: Template, value: Any) -> tuple[Any, Ref | None]:
    """A key identifying the DynamoDB stream ``value`` names (``None`` if it names none),
    and the table resource when it is in the app."""
    ref = asm.target(template, value)
    if ref is not None:
        if ref.type in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable") and ref.attribute in (
            "StreamArn",
            "LatestStreamArn",
        ):
            return ("table", *ref.key), ref
        return None, None
    arn = text(value)
    if arn and ":dynamodb:" in arn and "/stream/" in arn:
        return ("arn", arn), None
    return None, None


def stream_source(asm: Assembly, template: Template, value: Any) -> str | None:
    """``"DynamoDB"`` or ``"Kinesis"`` when ``value`` names a stream of that kind."""
    if dynamodb_stream(asm, template, value)[0] is not None:
        return "DynamoDB"
    ref = asm.target(template, value)
    if ref is not None:
        kinesis = ref.type in ("AWS::Kinesis::Stream", "AWS::Kinesis::StreamConsumer")
        return "Kinesis" if kinesis else None
    arn = text(value)
    return "Kinesis" if arn and ":kinesis:" in arn else None


def check_readers(asm: Assembly) -> Iterator[Finding]:
    readers: dict[Any, list[tuple[Template, str, str]]] = {}
    tables: dict[Any, Ref] = {}
    for template in asm.templates.values():
        mappings = template.properties_of("AWS::Lambda::EventSourceMapping")
        pipes = template.properties_of("AWS::Pipes::Pipe")
        sources = [(logical_id, p.get("EventSourceArn"), p) for logical_id, p in mappings]
        sources += [(logical_id, p.get("Source"), None) for logical_id, p in pipes]
        for logical_id, source, mapping in sources:
            key, table = dynamodb_stream(asm, template, source)
            if key is None:
                continue
            function = asm.function(template, mapping.get("FunctionName")) if mapping else None
            label = f"function {function.name}" if function else template.name_of(logical_id)
            readers.setdefault(key, []).append((template, logical_id, label))
            if table is not None:
                tables[key] = table
    for key, found in readers.items():
        if len(found) <= 2:
            continue
        names = ", ".join(label for _, _, label in found)
        table = tables.get(key)
        if table is not None:
            yield asm.finding(
                READERS,
                table.template,
                table.logical_id,
                f"the stream of table {table.name} has {len(found)} readers: {names}",
                "Properties/StreamSpecification",
            )
            continue
        for template, logical_id, _ in found:  # an imported stream: flag every reader
            yield asm.finding(
                READERS,
                template,
                logical_id,
                f"stream {key[1]} has {len(found)} readers: {names}",
                "Properties/EventSourceArn",
            )


def _stream_mappings(asm: Assembly) -> Iterator[tuple[Template, str, dict[str, Any], str]]:
    for template in asm.templates.values():
        for logical_id, props in template.properties_of("AWS::Lambda::EventSourceMapping"):
            kind = stream_source(asm, template, props.get("EventSourceArn"))
            if kind is not None:
                yield template, logical_id, props, kind


def _unbounded(props: dict[str, Any], key: str) -> bool:
    """Absent or -1 (infinite); an intrinsic we cannot read is given the benefit."""
    if key not in props:
        return True
    return number(props[key]) == -1


def check_retries(asm: Assembly) -> Iterator[Finding]:
    for template, logical_id, props, kind in _stream_mappings(asm):
        if _unbounded(props, "MaximumRetryAttempts"):
            yield asm.finding(
                RETRIES,
                template,
                logical_id,
                f"{kind} event source mapping {template.name_of(logical_id)} retries a failed "
                "batch without limit (MaximumRetryAttempts absent or -1)",
                "Properties/MaximumRetryAttempts",
            )


def check_record_age(asm: Assembly) -> Iterator[Finding]:
    for template, logical_id, props, kind in _stream_mappings(asm):
        if _unbounded(props, "MaximumRecordAgeInSeconds"):
            yield asm.finding(
                RECORD_AGE,
                template,
                logical_id,
                f"{kind} event source mapping {template.name_of(logical_id)} has no maximum "
                "record age (MaximumRecordAgeInSeconds absent or -1)",
                "Properties/MaximumRecordAgeInSeconds",
            )


def check_on_failure(asm: Assembly) -> Iterator[Finding]:
    for template, logical_id, props, kind in _stream_mappings(asm):
        config = props.get("DestinationConfig")
        on_failure = config.get("OnFailure") if isinstance(config, dict) else None
        if not (isinstance(on_failure, dict) and on_failure.get("Destination")):
            yield asm.finding(
                ON_FAILURE,
                template,
                logical_id,
                f"{kind} event source mapping {template.name_of(logical_id)} has no on-failure "
                "destination (DestinationConfig.OnFailure)",
                "Properties/DestinationConfig",
            )


def check_bisect(asm: Assembly) -> Iterator[Finding]:
    for template, logical_id, props, kind in _stream_mappings(asm):
        bisect = boolean(props.get("BisectBatchOnFunctionError"))
        partial = "ReportBatchItemFailures" in as_list(props.get("FunctionResponseTypes"))
        if "BisectBatchOnFunctionError" in props and bisect is None:
            continue  # an intrinsic: unknown until deploy
        if not bisect and not partial:
            yield asm.finding(
                BISECT,
                template,
                logical_id,
                f"{kind} event source mapping {template.name_of(logical_id)} neither splits "
                "failing batches (BisectBatchOnFunctionError) nor takes partial batch "
                "responses (ReportBatchItemFailures)",
                "Properties/BisectBatchOnFunctionError",
            )


CHECKS = (
    (READERS, check_readers),
    (RETRIES, check_retries),
    (RECORD_AGE, check_record_age),
    (ON_FAILURE, check_on_failure),
    (BISECT, check_bisect),
)
