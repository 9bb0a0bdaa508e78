"""``TtlArchiver``: items that TTL deletes are archived to S3 (or an archive table)."""

from __future__ import annotations

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_iam as iam
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_s3 as s3
from constructs import Construct

from . import _validation as v
from ._nag import acknowledge
from ._resources import secure_bucket
from ._stream_pattern import ControllerPattern, StreamOptions, require_view_type, runtime_controller
from ._validation import check_duration_range
from .change_source import ChangeSource
from .monitoring import Monitoring
from .stream_filter import StreamFilter
from .stream_table import StreamTable

__all__ = ["TtlArchiver", "TRANSITION_MINIMUM_WARNING"]

# S3 lifecycle does not transition objects under 128 KB by default (the bucket's
# TransitionDefaultMinimumObjectSize is all_storage_classes_128K), and S3 advises against
# transitioning them since each transition is a billed request (S3 User Guide,
# "Transitioning objects using Amazon S3 Lifecycle").
S3_TRANSITION_MINIMUM_BYTES = 128 * 1024
TRANSITION_MINIMUM_WARNING = "ddb-stream-patterns:archive-transition-minimum-size"


class TtlArchiver(ControllerPattern, Construct):
    """Archive the old image of every item that TTL expires.

    The event source mapping filters to TTL deletions (REMOVE by the DynamoDB service
    principal), so manual deletes never invoke the function unless
    ``include_manual_deletes``. On the table's stream each batch becomes one gzip
    JSON-lines object in S3, partitioned by date; its key comes from the batch's sequence
    range, so a retried batch overwrites its object instead of duplicating it. Behind a
    queue (``source=`` a fan-out) or Kinesis, batches are re-formed on redelivery, so each
    record becomes its own object, written with a conditional put under a key derived from
    the record's identity: exactly one copy per record, at one PUT request per record.

    Parameters
    ----------
    table
        The source table; its stream must carry old images. Required.
    ttl_attribute
        Enable TTL on this attribute when the table is a ``StreamTable`` of this app
        without TTL. Default: none (the table must have TTL already; a ``StreamTable``
        without it is an error: nothing would ever be archived).
    bucket
        Archive into this bucket. Default: a new bucket (encrypted, TLS-only, no public
        access, ``removal_policy``).
    archive_table
        Archive into this table instead (PutItem of the image as is). Give this *or*
        ``bucket``, not both. Default: none.
    prefix
        Object key prefix. Default: ``archive/``.
    transition_to, transition_after
        Lifecycle of a created bucket (an error with ``bucket``: set your bucket's lifecycle
        where it is defined): move objects to this storage class after this time (at least
        30 days). Default: none (stay in S3 Standard). S3 does not transition objects under
        128 KB by default (``TransitionDefaultMinimumObjectSize``), and S3 advises against
        transitioning small objects (each transition is a billed request). How big an
        archive object gets depends on the source:

        * on the table's stream, an object holds one batch: at most
          ``stream_options.batch_size`` records (100 by default), gzip-compressed, so it
          reaches 128 KB only if its records average 128 KB / batch size after
          compression (1.28 KB at the default 100); raise the batch size and batching
          window so that objects grow;
        * on a fan-out (or any queue or Kinesis source) the runtime writes ONE OBJECT PER
          RECORD (a conditional ``PutObject`` keyed by the record's identity, so that a
          redelivered record never makes a second copy, whatever batch it comes back
          in). Each object is one gzip-compressed image, so only records of 128 KB or
          more after compression ever transition, whatever the queue's batch size. The
          cost follows: one S3 PUT request per archived record instead of one per batch
          (at the commonly quoted S3 Standard PUT price, $0.005 per 1,000 requests in
          us-east-1, a million TTL expiries cost about $5 in PUTs behind a queue against
          about $0.05 in batches of 100 on the stream; see the README's Fan-out section).

        Smaller objects stay in S3 Standard. Synth warns with these numbers
        (``ddb-stream-patterns:archive-transition-minimum-size``); acknowledge it with
        ``cdk.Annotations.of(archiver).acknowledge_warning(id, reason)`` once that is what
        you want.
    include_manual_deletes
        Also archive items deleted by users. Default: ``False``.
    stream_options, function_options, monitoring, removal_policy
        As for the other patterns (``StreamOptions``, ``FunctionOptions``, ``Monitoring``;
        ``RETAIN``).
    source
        Where the handler gets the table's changes: ``None``, the table's stream (one
        stream reader); or a ``StreamFanOut`` on the same table (``fan_out``, or
        ``fan_out.with_queue(QueueOptions(...))``): the same handler then reads its own SQS
        queue (DLQ, filter policy, alarms), and ``stream_options`` must not be given.
        Default: ``None``.

    Attributes
    ----------
    function, controller (its ``SimpleController``: failure queue, event source),
    bucket (or ``None``), archive_table (or ``None``), alarms, alarm_topic.
    """

    #: Id of the synth warning about objects too small to transition (to acknowledge it).
    TRANSITION_MINIMUM_WARNING = TRANSITION_MINIMUM_WARNING

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.ITable,
        ttl_attribute: str | None = None,
        bucket: s3.IBucket | None = None,
        archive_table: dynamodb.ITable | None = None,
        prefix: str = "archive/",
        transition_to: s3.StorageClass | None = None,
        transition_after: cdk.Duration | None = None,
        include_manual_deletes: bool = False,
        stream_options: StreamOptions | None = None,
        function_options: lambda_.FunctionOptions | None = None,
        monitoring: Monitoring | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        source: ChangeSource | None = None,
    ) -> None:
        v.check_types("TtlArchiver", {
            "table": v.ITABLE, "ttl_attribute": str, "bucket": v.IBUCKET,
            "archive_table": v.ITABLE, "prefix": str, "transition_to": s3.StorageClass,
            "transition_after": cdk.Duration, "include_manual_deletes": bool,
            "stream_options": StreamOptions, "function_options": lambda_.FunctionOptions,
            "monitoring": Monitoring, "removal_policy": cdk.RemovalPolicy,
        }, locals())
        super().__init__(scope, id)
        if bucket is not None and archive_table is not None:
            raise ValueError(
                "give either bucket or archive_table, not both "
                f"(got bucket {bucket.node.path!r} and archive_table {archive_table.node.path!r})"
            )
        if archive_table is not None and (transition_to or transition_after):
            raise ValueError("transition_to and transition_after only apply to an S3 archive")
        if bucket is not None and (transition_to or transition_after):
            raise ValueError(
                "transition_to and transition_after only apply to a bucket created here, not to "
                f"the given bucket {bucket.node.path!r}: add the lifecycle rule where it is defined"
            )
        if not prefix or prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"prefix must be non-empty, relative and end with '/', got {prefix!r}")
        check_duration_range("transition_after", transition_after, 30 * 86_400, 36_500 * 86_400)
        require_view_type(table, "old", "TtlArchiver", source=source)
        _enable_ttl(table, ttl_attribute)

        self.archive_table = archive_table
        self.bucket: s3.IBucket | None = None
        if archive_table is None:
            self.bucket = bucket or self._bucket(removal_policy, transition_to, transition_after)
            environment = {"ARCHIVE_BUCKET": self.bucket.bucket_name, "ARCHIVE_PREFIX": prefix}
        else:
            environment = {"ARCHIVE_TABLE": archive_table.table_name}

        self.controller = runtime_controller(
            self,
            table=table,
            handler="ddb_stream_runtime.archiver.handler",
            environment=environment,
            function_options=function_options,
            stream_options=stream_options,
            monitoring=monitoring,
            removal_policy=removal_policy,
            source=source,
            needs="old",
            filters=[
                StreamFilter(event_names=["REMOVE"])
                if include_manual_deletes
                else StreamFilter.ttl_expiry()
            ],
        )
        self._grant(prefix)
        if transition_to is not None and archive_table is None:
            # A SimpleController on the stream says so; a FanOutConsumer has no such flag.
            if getattr(self.controller, "reads_table_stream", False):
                # One object per batch of the stream.
                batch_size = (stream_options or StreamOptions()).batch_size
                self._warn_small_batches(transition_to, batch_size)
            else:
                # Behind a queue (or Kinesis) the runtime writes one object per record.
                self._warn_object_per_record(transition_to)

    def _warn_small_batches(self, storage_class: s3.StorageClass, batch_size: int) -> None:
        """One archive object is one batch: say how big records must be for it to move."""
        per_record = S3_TRANSITION_MINIMUM_BYTES / batch_size / 1024
        cdk.Annotations.of(self).add_warning_v2(
            TRANSITION_MINIMUM_WARNING,
            f"transition_to {storage_class.value}: S3 lifecycle does not transition objects under "
            "128 KB by default (TransitionDefaultMinimumObjectSize all_storage_classes_128K), and "
            f"each archive object is one batch of at most {batch_size} records, gzip-compressed: "
            f"it reaches 128 KB only if its records average at least {per_record:.2f} KB each "
            "after compression. Smaller objects stay in S3 Standard (S3 advises against "
            "transitioning them: each transition is a billed request). Raise "
            "stream_options batch_size and max_batching_window so objects grow, or acknowledge "
            "this warning",
        )

    def _warn_object_per_record(self, storage_class: s3.StorageClass) -> None:
        """Behind a queue one archive object is one record: batching cannot help."""
        cdk.Annotations.of(self).add_warning_v2(
            TRANSITION_MINIMUM_WARNING,
            f"transition_to {storage_class.value}: S3 lifecycle does not transition objects under "
            "128 KB by default (TransitionDefaultMinimumObjectSize all_storage_classes_128K), and "
            "behind a queue or Kinesis each archive object is ONE record (so that a redelivered "
            "record never makes a second copy), gzip-compressed: only records of at least 128 KB "
            "after compression ever transition, whatever the queue's batch size, and each record "
            "costs one S3 PUT request. Smaller objects stay in S3 Standard (S3 advises against "
            "transitioning them: each transition is a billed request). Read the stream directly "
            "(source=None) for one object per batch, or acknowledge this warning",
        )

    def _bucket(
        self,
        removal_policy: cdk.RemovalPolicy,
        transition_to: s3.StorageClass | None,
        transition_after: cdk.Duration | None,
    ) -> s3.Bucket:
        rules = []
        if transition_to is not None:
            rules.append(
                s3.LifecycleRule(
                    transitions=[
                        s3.Transition(
                            storage_class=transition_to,
                            transition_after=transition_after or cdk.Duration.days(90),
                        )
                    ]
                )
            )
        bucket = secure_bucket(
            self, "ArchiveBucket", removal_policy=removal_policy, lifecycle_rules=rules or None
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "written only by the archiver's role (one object per batch or per record); audit "
            "reads with "
            "CloudTrail data events, or pass your own bucket with access logs",
        )
        return bucket

    def _grant(self, prefix: str) -> None:
        if self.archive_table is not None:
            self.archive_table.grant(self.function, "dynamodb:BatchWriteItem")
            return
        # PutObject on the prefix only (grant_put would add s3:Abort* on the whole bucket).
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{prefix}*")]
            )
        )
        if isinstance(self.bucket, s3.Bucket) and self.bucket.node.scope is self:
            # nag names the resource by its template form: <LogicalId.Arn>/prefix*.
            bucket_id = cdk.Stack.of(self).get_logical_id(self.bucket.node.default_child)
            acknowledge(
                self.function.role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
                "archive object keys are per batch or per record: S3 object ARNs need a "
                "wildcard under the archive prefix",
            )


def _enable_ttl(table: dynamodb.ITable, ttl_attribute: str | None) -> None:
    """Turn TTL on for a StreamTable of this app; refuse what cannot work."""
    if not isinstance(table, StreamTable):
        if ttl_attribute is not None:
            raise ValueError(
                f"ttl_attribute {ttl_attribute!r} can only be enabled on a StreamTable of this "
                f"app, not on {table.node.path!r}: enable TTL where that table is defined"
            )
        return
    current = table.time_to_live_attribute
    if current is not None and ttl_attribute not in (None, current):
        raise ValueError(
            f"ttl_attribute {ttl_attribute!r} differs from the table's TTL attribute {current!r}"
        )
    if current is None and ttl_attribute is None:
        raise ValueError(
            f"table {table.node.path!r} has no TTL, so nothing would ever be archived: "
            "set ttl_attribute (or time_to_live_attribute on the StreamTable)"
        )
    if current is None:
        table.node.default_child.add_property_override(
            "TimeToLiveSpecification", {"AttributeName": ttl_attribute, "Enabled": True}
        )
        table.time_to_live_attribute = ttl_attribute
