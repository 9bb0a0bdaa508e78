from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_s3 as s3
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from ddb_stream_patterns import FailureDestination, StreamFilter, StreamOptions, TtlArchiver

from .data_support import (
    KEY,
    actions,
    env_of,
    mapping_of,
    patterns,
    resource,
    role_statements,
    tasks,
)


def test_filters_ttl_expiries_and_writes_one_prefix_of_a_secure_bucket(stack):
    archiver = TtlArchiver(stack, "Archive", table=tasks(stack))
    mapping = mapping_of(stack, archiver.controller)
    assert patterns(mapping) == [StreamFilter.ttl_expiry().to_pattern()]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert resource(stack, archiver.function)["Properties"]["Handler"] == "ddb_stream_runtime.archiver.handler"
    env = env_of(stack, archiver.function)
    bucket = stack.get_logical_id(archiver.bucket.node.default_child)
    assert env == {"ARCHIVE_BUCKET": {"Ref": bucket}, "ARCHIVE_PREFIX": "archive/"}
    # The archive bucket's statements (the failure bucket's are SimpleController's tests).
    s3_statements = [s for s in role_statements(stack, archiver.function)
                     if "s3" in str(s["Action"]) and bucket in json.dumps(s["Resource"])]
    assert s3_statements == [{
        "Action": "s3:PutObject", "Effect": "Allow",
        "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/archive/*"]]},
    }]
    props = resource(stack, archiver.bucket)
    assert props["DeletionPolicy"] == "Retain"
    assert props["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True
    assert "LifecycleConfiguration" not in props["Properties"]


def test_manual_deletes_option_and_lifecycle(stack):
    archiver = TtlArchiver(stack, "Archive", table=tasks(stack), include_manual_deletes=True,
                           transition_to=s3.StorageClass.GLACIER, transition_after=cdk.Duration.days(60))
    assert patterns(mapping_of(stack, archiver.controller)) == [{"eventName": ["REMOVE"]}]
    rules = resource(stack, archiver.bucket)["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules[0]["Transitions"] == [{"StorageClass": "GLACIER", "TransitionInDays": 60}]


def test_archive_table_mode(stack):
    archive = dynamodb.TableV2(stack, "Archive", **KEY)
    archiver = TtlArchiver(stack, "Archiver", table=tasks(stack), archive_table=archive)
    assert archiver.bucket is None
    assert env_of(stack, archiver.function) == {"ARCHIVE_TABLE": {"Ref": stack.get_logical_id(archive.node.default_child)}}
    assert actions(role_statements(stack, archiver.function)) >= {"dynamodb:BatchWriteItem"}
    # The only bucket is the stream mapping's failure bucket, and the only S3 access.
    failures = stack.get_logical_id(archiver.controller.failure_bucket.node.default_child)
    s3_statements = [s for s in role_statements(stack, archiver.function) if "s3:" in str(s["Action"])]
    assert s3_statements and all(failures in json.dumps(s["Resource"]) for s in s3_statements)
    Template.from_stack(stack).resource_count_is("AWS::S3::Bucket", 1)


def test_enables_ttl_on_an_owned_table_without_it(stack):
    table = tasks(stack, time_to_live_attribute=None)
    TtlArchiver(stack, "Archive", table=table, ttl_attribute="expiresAt")
    assert resource(stack, table)["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expiresAt", "Enabled": True}


def test_alarms_and_stream_options(stack):
    archiver = TtlArchiver(stack, "Archive", table=tasks(stack), stream_options=StreamOptions(batch_size=500))
    assert mapping_of(stack, archiver.controller)["BatchSize"] == 500
    assert {"handlerIteratorAge", "handlerErrors", "failureDeliveries"} <= set(archiver.alarms)
    assert archiver.controller.failure_bucket is not None
    assert archiver.metric_errors().metric_name == "Errors"
    assert archiver.metric_failure_deliveries().metric_name == "OnFailureDestinationDeliveredEventCount"
    assert archiver.dashboard_rows()


def test_stream_options_choose_the_failure_queue(stack):
    archiver = TtlArchiver(stack, "Archive", table=tasks(stack), stream_options=StreamOptions(
        failure_destination=FailureDestination.sqs()))
    queue = archiver.controller.failure_queue
    assert queue is not None and archiver.controller.failure_bucket is None
    assert mapping_of(stack, archiver.controller)["DestinationConfig"]["OnFailure"] == {
        "Destination": {"Fn::GetAtt": [stack.get_logical_id(queue.node.default_child), "Arn"]}}
    assert "failureQueueMessages" in archiver.alarms and "failureDeliveries" not in archiver.alarms
    assert archiver.metric_failure_queue_depth().metric_name == "ApproximateNumberOfMessagesVisible"
    with pytest.raises(TypeError, match="failure_destination"):
        StreamOptions(failure_destination="sqs")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ttl_attribute": None, "table_ttl": None}, "has no TTL, so nothing would ever be archived"),
    ({"ttl_attribute": "other"}, "ttl_attribute 'other' differs from the table's TTL attribute 'expiresAt'"),
    ({"prefix": "archive"}, "prefix must be non-empty, relative and end with '/', got 'archive'"),
    ({"transition_to": s3.StorageClass.GLACIER, "transition_after": cdk.Duration.days(7)}, "transition_after must be between"),
    ({"view": dynamodb.StreamViewType.NEW_IMAGE}, "streams NEW_IMAGE, but TtlArchiver reads the old image"),
])
def test_fails_bad_props(stack, kwargs, message):
    table_kwargs = {}
    if "table_ttl" in kwargs:
        table_kwargs["time_to_live_attribute"] = kwargs.pop("table_ttl")
    if "view" in kwargs:
        table_kwargs["stream_view_type"] = kwargs.pop("view")
    with pytest.raises(ValueError, match=message):
        TtlArchiver(stack, "Archive", table=tasks(stack, **table_kwargs), **kwargs)


def test_fails_bucket_and_archive_table(stack):
    with pytest.raises(ValueError, match="give either bucket or archive_table, not both"):
        TtlArchiver(stack, "Archive", table=tasks(stack), bucket=s3.Bucket(stack, "B"),
                    archive_table=dynamodb.TableV2(stack, "A", **KEY))


def test_fails_ttl_on_imported_table(stack):
    imported = dynamodb.TableV2.from_table_attributes(
        stack, "Imported", table_name="t",
        table_stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000")
    with pytest.raises(ValueError, match="can only be enabled on a StreamTable of this app"):
        TtlArchiver(stack, "Archive", table=imported, ttl_attribute="expiresAt")
    archiver = TtlArchiver(stack, "Archive2", table=imported)  # no TTL to enable: accepted
    assert archiver.bucket is not None


def _transition_warnings(stack, archiver) -> list:
    return Annotations.from_stack(stack).find_warning(
        f"/{archiver.node.path}", Match.string_like_regexp("128 KB")
    )


def test_transition_warns_that_small_batches_never_move(stack):
    archiver = TtlArchiver(stack, "Archive", table=tasks(stack),
                           transition_to=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                           stream_options=StreamOptions(batch_size=200))
    rules = resource(stack, archiver.bucket)["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules[0]["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": 90}]
    warnings = _transition_warnings(stack, archiver)
    assert len(warnings) == 1
    message = warnings[0].entry.data
    assert message.startswith("transition_to GLACIER_IR: S3 lifecycle does not transition objects under 128 KB")
    assert "all_storage_classes_128K" in message
    assert "at most 200 records" in message and "at least 0.64 KB each" in message  # 128 KiB / 200
    assert TtlArchiver.TRANSITION_MINIMUM_WARNING in message  # CDK appends the id to acknowledge


def test_transition_warning_can_be_acknowledged_and_is_absent_without_transition(stack):
    table = tasks(stack)
    archiver = TtlArchiver(stack, "Archive", table=table, transition_to=s3.StorageClass.GLACIER)
    cdk.Annotations.of(archiver).acknowledge_warning(TtlArchiver.TRANSITION_MINIMUM_WARNING, "tiny is fine")
    assert _transition_warnings(stack, archiver) == []
    plain = TtlArchiver(stack, "Plain", table=table)
    assert _transition_warnings(stack, plain) == []


def test_transition_is_refused_for_a_given_bucket(stack):
    with pytest.raises(ValueError, match="transition_to and transition_after only apply to a bucket created here, "
                                         "not to the given bucket 'TestStack/Mine'"):
        TtlArchiver(stack, "Archive", table=tasks(stack), bucket=s3.Bucket(stack, "Mine"),
                    transition_to=s3.StorageClass.GLACIER)


@pytest.mark.parametrize(("manual", "policy"), [
    (False, {"eventName": ["REMOVE"], "ttlExpiry": ["true"]}),
    (True, {"eventName": ["REMOVE"]}),
])
def test_on_a_fan_out_the_deletion_filter_is_the_subscription_policy(stack, manual, policy):
    from ddb_stream_patterns import StreamFanOut

    table = tasks(stack)
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    archiver = TtlArchiver(stack, "Archive", table=table, source=fan_out,
                           include_manual_deletes=manual)
    queue = stack.get_logical_id(archiver.controller.queue.node.default_child)
    [sub] = [s["Properties"] for s in Template.from_stack(stack).find_resources(
        "AWS::SNS::Subscription").values()]
    assert sub["Endpoint"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert sub["FilterPolicy"] == policy
    # Same handler and environment as on the stream.
    assert resource(stack, archiver.function)["Properties"]["Handler"] == (
        "ddb_stream_runtime.archiver.handler")
    bucket = stack.get_logical_id(archiver.bucket.node.default_child)
    assert env_of(stack, archiver.function) == {"ARCHIVE_BUCKET": {"Ref": bucket},
                                                "ARCHIVE_PREFIX": "archive/"}


def test_transition_warning_on_a_fan_out_counts_one_object_per_record(stack):
    """Behind a queue the runtime writes one object per record: the queue's batch size
    does not make objects bigger, so the warning must not tell the user to raise it."""
    from ddb_stream_patterns import QueueOptions, StreamFanOut

    table = tasks(stack)
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    archiver = TtlArchiver(
        stack, "Archive", table=table, transition_to=s3.StorageClass.GLACIER,
        source=fan_out.with_queue(QueueOptions(batch_size=64,
                                               max_batching_window=cdk.Duration.seconds(30))))
    [warning] = _transition_warnings(stack, archiver)
    message = warning.entry.data
    assert "each archive object is ONE record" in message
    assert "whatever the queue's batch size" in message and "one S3 PUT request" in message
    assert "64" not in message and "batch_size" not in message  # no advice to raise it
    assert TtlArchiver.TRANSITION_MINIMUM_WARNING in message
