"""The maximum record age of every stream mapping stays below the retention of the stream it
reads: a record the stream trims while the mapping still retries it never reaches the
failure destination, and ``DroppedEventCount`` does not count it. The default (20 hours)
on every path, and the refusal, naming the prop, the value and the fix, on both sources."""

from __future__ import annotations

import aws_cdk as cdk
import aws_cdk.aws_kinesis as kinesis
import aws_cdk.aws_lambda as lambda_
import pytest

import ddb_stream_patterns
from ddb_stream_patterns import (
    AggregateCounter,
    ComplexController,
    KinesisController,
    KinesisSource,
    Processor,
    Route,
    SimpleController,
    StreamFanOut,
    StreamOptions,
    TtlArchiver,
)
from ddb_stream_patterns.kinesis_source import REDELIVERY_MARGIN
from ddb_stream_patterns.simple_controller import (
    DEFAULT_MAX_RECORD_AGE,
    DYNAMODB_STREAM_RETENTION,
)
from ddb_stream_runtime.counter import MARKER_RETENTION_BY_SOURCE
from tests.constructs.data_support import env_of, mapping_of, tasks

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return None\n")
TWENTY_HOURS = 20 * 3600


def _simple(stack, table, **kwargs):
    return SimpleController(stack, "User", table=table, code=CODE, handler="index.handler",
                            **kwargs)


def _processors():
    return {"p": Processor(route=Route(), code=CODE, handler="index.handler")}


# -- the default, in the templates -------------------------------------------------------

def test_the_default_is_20_hours_below_the_24_hour_retention():
    assert ddb_stream_patterns.DEFAULT_MAX_RECORD_AGE is DEFAULT_MAX_RECORD_AGE  # README names it
    assert DEFAULT_MAX_RECORD_AGE.to_seconds() == TWENTY_HOURS
    assert DYNAMODB_STREAM_RETENTION.to_seconds() == 24 * 3600
    assert DEFAULT_MAX_RECORD_AGE.to_seconds() < DYNAMODB_STREAM_RETENTION.to_seconds()


@pytest.mark.parametrize("build", [
    lambda stack, table: _simple(stack, table),
    lambda stack, table: TtlArchiver(stack, "Archive", table=table).controller,
    lambda stack, table: StreamFanOut(stack, "FanOut", table=table).controller,
    lambda stack, table: ComplexController(stack, "Complex", table=table,
                                           processors=_processors()).controller,
], ids=["controller", "pattern", "fan-out router", "complex router"])
def test_table_stream_mappings_default_to_20_hours(stack, build):
    controller = build(stack, tasks(stack))
    assert mapping_of(stack, controller)["MaximumRecordAgeInSeconds"] == TWENTY_HOURS


@pytest.mark.parametrize("build", [
    lambda stack, table: KinesisController(stack, "K", source=KinesisSource.of_table(table),
                                           code=CODE, handler="index.handler"),
    lambda stack, table: TtlArchiver(stack, "Archive", table=table,
                                     source=KinesisSource.of_table(table)).controller,
    lambda stack, table: _simple(stack, table, source=KinesisSource.of_table(table)).source_binding,
], ids=["kinesis controller", "pattern", "controller"])
def test_kinesis_mappings_default_to_20_hours(stack, build):
    controller = build(stack, tasks(stack, kinesis_stream=True))
    assert isinstance(controller, KinesisController)
    assert mapping_of(stack, controller)["MaximumRecordAgeInSeconds"] == TWENTY_HOURS


def test_the_kinesis_counter_markers_outlive_the_default_age_by_the_margin(stack):
    table = tasks(stack, kinesis_stream=True)
    counter = AggregateCounter(stack, "Counts", table=table, group_attribute="ListId",
                               source=KinesisSource.of_table(table))
    assert mapping_of(stack, counter.controller)["MaximumRecordAgeInSeconds"] == TWENTY_HOURS
    assert env_of(stack, counter.function)["MARKER_RETENTION_SECONDS"] == str(
        TWENTY_HOURS + int(REDELIVERY_MARGIN.to_seconds()))


def test_the_table_stream_counter_markers_outlive_every_redelivery(stack):
    # On the table's stream the counter keeps its per-source default (2 days): a record is
    # trimmed after 24 h whatever max_record_age says, so that bound holds with margin.
    counter = AggregateCounter(stack, "Counts", table=tasks(stack), group_attribute="ListId")
    assert mapping_of(stack, counter.controller)["MaximumRecordAgeInSeconds"] == TWENTY_HOURS
    assert "MARKER_RETENTION_SECONDS" not in env_of(stack, counter.function)
    assert MARKER_RETENTION_BY_SOURCE["aws:dynamodb"] >= (
        DYNAMODB_STREAM_RETENTION.to_seconds() + REDELIVERY_MARGIN.to_seconds())


# -- the refusal ------------------------------------------------------------------------

def _kinesis_table(stack, retention_hours=None):
    """A table writing to a stream built here, with that retention (None: CDK's 24 h)."""
    if retention_hours is None:
        return tasks(stack, kinesis_stream=True)
    stream = kinesis.Stream(stack, "Changes", stream_mode=kinesis.StreamMode.ON_DEMAND,
                            encryption=kinesis.StreamEncryption.MANAGED,
                            retention_period=cdk.Duration.hours(retention_hours))
    return tasks(stack, kinesis_stream=stream)


DAY = cdk.Duration.days(1)
# (case, build(stack), the prop named, the value shown, the fix)
REFUSED = [
    ("controller-1-day", lambda s: _simple(s, tasks(s), max_record_age=DAY),
     "max_record_age", "86400 seconds (1 day)", "give less (e.g. 20 hours"),
    ("controller-7-days", lambda s: _simple(s, tasks(s), max_record_age=cdk.Duration.days(7)),
     "max_record_age", "604800 seconds", "or leave it unset"),
    ("pattern-stream-options", lambda s: TtlArchiver(
        s, "Archive", table=tasks(s), stream_options=StreamOptions(max_record_age=DAY)),
     "stream_options.max_record_age", "86400 seconds", "give less"),
    ("fan-out-router", lambda s: StreamFanOut(
        s, "FanOut", table=tasks(s), max_record_age=cdk.Duration.hours(30)),
     "max_record_age", "108000 seconds", "give less"),
    ("complex-router", lambda s: ComplexController(
        s, "Complex", table=tasks(s), processors=_processors(), max_record_age=DAY),
     "max_record_age", "86400 seconds", "give less"),
    ("kinesis-controller", lambda s: KinesisController(
        s, "K", source=KinesisSource.of_table(_kinesis_table(s)), code=CODE,
        handler="index.handler", max_record_age=DAY),
     "max_record_age", "86400 seconds", "raise the stream's retention_period"),
    ("kinesis-source", lambda s: TtlArchiver(
        s, "Archive", table=(t := _kinesis_table(s)),
        source=KinesisSource.of_table(t, max_record_age=DAY)),
     "KinesisSource max_record_age", "86400 seconds", "raise the stream's retention_period"),
    ("kinesis-stream-options", lambda s: TtlArchiver(
        s, "Archive", table=(t := _kinesis_table(s)), source=KinesisSource.of_table(t),
        stream_options=StreamOptions(max_record_age=DAY)),
     "stream_options.max_record_age", "86400 seconds", "raise the stream's retention_period"),
    ("kinesis-via-controller", lambda s: _simple(
        s, (t := _kinesis_table(s)), source=KinesisSource.of_table(t), max_record_age=DAY),
     "max_record_age", "86400 seconds", "raise the stream's retention_period"),
    ("kinesis-48h-retention", lambda s: KinesisController(
        s, "K", source=KinesisSource.of_table(_kinesis_table(s, 48)), code=CODE,
        handler="index.handler", max_record_age=cdk.Duration.hours(48)),
     "max_record_age", "172800 seconds (2 days)", "48 h retention"),
]


@pytest.mark.parametrize(("build", "prop", "value", "fix"),
                         [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_max_record_age_at_or_above_the_retention_is_refused(stack, build, prop, value, fix):
    with pytest.raises(ValueError) as info:
        build(stack)
    message = str(info.value)
    assert f"{prop} must be below the " in message, message
    assert value in message and fix in message, message
    assert "never reach the failure destination" in message


def test_the_refusal_names_the_stream(stack):
    with pytest.raises(ValueError, match=r"24 h retention of the DynamoDB stream of table "
                                         r"'TestStack/Tasks'"):
        _simple(stack, tasks(stack), max_record_age=DAY)


@pytest.mark.parametrize("build", [
    # just below the table stream's retention
    lambda s: _simple(s, tasks(s), max_record_age=cdk.Duration.hours(23)),
    # a longer Kinesis retention allows a longer age
    lambda s: KinesisController(s, "K", source=KinesisSource.of_table(_kinesis_table(s, 168)),
                                code=CODE, handler="index.handler",
                                max_record_age=cdk.Duration.days(2)),
    # an imported stream's retention is unknown: nothing to check (documented)
    lambda s: KinesisController(s, "K", source=KinesisSource(stream=kinesis.Stream.from_stream_arn(
        s, "Imported", "arn:aws:kinesis:eu-west-1:111111111111:stream/changes")),
        code=CODE, handler="index.handler", max_record_age=cdk.Duration.days(7)),
], ids=["23 hours on the table stream", "2 days on a 7-day stream", "imported stream"])
def test_an_age_below_or_unknown_against_the_retention_is_accepted(stack, build):
    controller = build(stack)
    assert controller.event_source_mapping is not None
    assert mapping_of(stack, controller)["MaximumRecordAgeInSeconds"] in (
        23 * 3600, 2 * 86_400, 7 * 86_400)



def test_a_token_duration_is_left_to_deploy(stack):
    """A Duration of a number token (a CfnParameter) prints its amount as a double near
    -1.9e289: neither the range check nor the retention check may read that as a value
    (both did: "must be between 60 and 604800 seconds, got -1.88e+289 seconds")."""
    from ddb_stream_patterns._validation import check_duration_range
    from ddb_stream_patterns.simple_controller import _check_record_age

    param = cdk.CfnParameter(stack, "Seconds", type="Number").value_as_number
    token = cdk.Duration.seconds(param)
    check_duration_range("max_record_age", token, 60, 604_800)
    _check_record_age("max_record_age", cdk.Duration.hours(30), token,
                      lambda: "a stream", lambda: "a fix")
    # plain values are still checked, naming the prop
    with pytest.raises(ValueError, match="max_record_age must be between 60 and 604800"):
        check_duration_range("max_record_age", cdk.Duration.seconds(5), 60, 604_800)
    with pytest.raises(ValueError, match="max_record_age must be below the 24 h retention"):
        _check_record_age("max_record_age", cdk.Duration.hours(30), cdk.Duration.hours(24),
                          lambda: "a stream", lambda: "a fix")
