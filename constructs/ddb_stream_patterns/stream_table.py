"""``StreamTable``: a DynamoDB table (TableV2) with its stream on, and safe defaults."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_kinesis as kinesis
import jsii
from constructs import Construct, IConstruct

from . import _validation as v
from ._validation import is_token

__all__ = ["StreamTable", "require_stream", "table_schema", "check_filters_on_table",
           "ISTREAM"]

#: What a given Kinesis stream must look like (``kinesis.IStream``).
ISTREAM = v.Interface("kinesis.IStream", "stream_arn", "grant_write")


class StreamTable(dynamodb.TableV2):
    """A ``TableV2`` whose stream is always on, for the patterns in this library.

    It *is* a ``TableV2`` (and so an ``ITableV2``/``ITable``): pass it as ``table=`` to
    any pattern, grant on it, or read ``table_stream_arn``.

    Parameters
    ----------
    scope, id
        Construct scope and id. The id is the table's logical id: keep it stable.
    partition_key
        Partition key attribute. Required.
    sort_key
        Sort key attribute. Default: none.
    stream_view_type
        What each stream record carries. Default: ``NEW_AND_OLD_IMAGES``, which every
        pattern here can use (the replicator and counter need both images).
    time_to_live_attribute
        Name of the TTL attribute (epoch seconds). Default: TTL off.
    point_in_time_recovery
        Continuous backups. Default: ``True``.
    encryption
        Encryption at rest. Default: the AWS managed key (``alias/aws/dynamodb``), so the
        key is visible in CloudTrail; pass ``TableEncryptionV2.customer_managed_key(...)``
        for your own key.
    billing
        Default: on-demand (pay per request).
    removal_policy
        Default: ``RETAIN``: deleting the stack never deletes data.
    kinesis_stream
        Also stream every change to a Kinesis data stream ("Kinesis Data Streams for
        DynamoDB"): ``True`` creates one (``kinesis_stream_created``: on-demand capacity,
        encrypted with the ``alias/aws/kinesis`` key, 24 h retention, the table's
        ``removal_policy``); a ``kinesis.IStream`` uses that stream, which must be in the
        table's account and Region (DynamoDB streams only there). Default: none (the
        table's own DynamoDB stream only, which stays on either way).
    kinesis_precision
        ``ApproximateCreationDateTimePrecision`` of the records written to the Kinesis
        stream: ``MICROSECOND`` (the default here; an ordering key for consumers, which
        Kinesis may deliver out of order and duplicated) or ``MILLISECOND``. Only with
        ``kinesis_stream``.
    **overrides
        Any other ``TableV2`` prop (``global_secondary_indexes``, ``table_name``,
        ``deletion_protection``, ...), passed through unchanged.

    Example
    -------
    >>> table = StreamTable(stack, "Tasks",
    ...     partition_key=dynamodb.Attribute(name="ListId", type=dynamodb.AttributeType.STRING),
    ...     sort_key=dynamodb.Attribute(name="TaskId", type=dynamodb.AttributeType.STRING),
    ...     time_to_live_attribute="expiresAt")
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        partition_key: dynamodb.Attribute,
        sort_key: dynamodb.Attribute | None = None,
        stream_view_type: dynamodb.StreamViewType = dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        time_to_live_attribute: str | None = None,
        point_in_time_recovery: bool = True,
        encryption: dynamodb.TableEncryptionV2 | None = None,
        billing: dynamodb.Billing | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        kinesis_stream: kinesis.IStream | bool | None = None,
        kinesis_precision: dynamodb.ApproximateCreationDateTimePrecision | None = None,
        **overrides: Any,
    ) -> None:
        v.check_types("StreamTable", {
            "partition_key": dynamodb.Attribute, "sort_key": dynamodb.Attribute,
            "time_to_live_attribute": str, "point_in_time_recovery": bool,
            "encryption": dynamodb.TableEncryptionV2, "billing": dynamodb.Billing,
            "removal_policy": cdk.RemovalPolicy,
            "kinesis_stream": (bool, ISTREAM),
            "kinesis_precision": dynamodb.ApproximateCreationDateTimePrecision,
        }, locals())
        v.check_type("StreamTable", "stream_view_type", stream_view_type,
                     dynamodb.StreamViewType, "e.g. StreamViewType.NEW_AND_OLD_IMAGES")
        if stream_view_type is None:
            raise ValueError(
                "stream_view_type must be set, got None: a StreamTable always has a stream "
                "(use dynamodb.TableV2 for a table without one)"
            )
        if kinesis_precision is not None and not kinesis_stream:
            raise ValueError(
                f"kinesis_precision {kinesis_precision.value!r} needs a kinesis_stream, "
                f"got kinesis_stream={kinesis_stream!r}"
            )
        for prop in ("dynamo_stream", "point_in_time_recovery_specification"):
            if prop in overrides:
                raise ValueError(
                    f"{prop} cannot be overridden on a StreamTable, got {overrides[prop]!r}: "
                    "use stream_view_type and point_in_time_recovery"
                )
        if time_to_live_attribute is not None and not is_token(time_to_live_attribute):
            if not 1 <= len(time_to_live_attribute) <= 255:
                raise ValueError(
                    "time_to_live_attribute must be 1 to 255 characters, "
                    f"got {time_to_live_attribute!r}"
                )
        # The created stream is a sibling of the table (the table's id + "Changes"): a
        # child would have to exist before TableV2's constructor ran.
        created: kinesis.Stream | None = None
        if kinesis_stream is True:
            created = kinesis.Stream(
                scope, f"{id}Changes",
                stream_mode=kinesis.StreamMode.ON_DEMAND,
                # alias/aws/kinesis: encrypted at rest (cdk-nag KDS1) with the key cdk-nag
                # KDS3 asks for; DynamoDB, a producer, needs no key policy for it.
                encryption=kinesis.StreamEncryption.MANAGED,
                removal_policy=removal_policy,
            )
        elif kinesis_stream is not False and kinesis_stream is not None:
            _check_stream_reachable(scope, id, kinesis_stream)
        stream = created or (kinesis_stream if not isinstance(kinesis_stream, bool) else None)
        if stream is not None:
            overrides["kinesis_stream"] = stream
        super().__init__(
            scope,
            id,
            partition_key=partition_key,
            sort_key=sort_key,
            dynamo_stream=stream_view_type,
            time_to_live_attribute=time_to_live_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=point_in_time_recovery
            ),
            encryption=encryption or dynamodb.TableEncryptionV2.aws_managed_key(),
            billing=billing or dynamodb.Billing.on_demand(),
            removal_policy=removal_policy,
            **overrides,
        )
        self.partition_key = partition_key
        self.sort_key = sort_key
        self.stream_view_type = stream_view_type
        self.time_to_live_attribute = time_to_live_attribute
        #: The Kinesis data stream the table writes its changes to (given or created).
        self.kinesis_stream: kinesis.IStream | None = stream
        #: The stream created here (``kinesis_stream=True``), else ``None``.
        self.kinesis_stream_created: kinesis.Stream | None = created
        #: ``ApproximateCreationDateTimePrecision`` of the Kinesis records (or ``None``).
        self.kinesis_precision: dynamodb.ApproximateCreationDateTimePrecision | None = None
        if stream is not None:
            self.kinesis_precision = (
                kinesis_precision or dynamodb.ApproximateCreationDateTimePrecision.MICROSECOND
            )
            # Escape hatch: TableV2 (aws-cdk-lib 2.275) takes kinesis_stream but has no
            # precision prop (only the v1 Table has kinesis_precision_timestamp), while
            # CloudFormation's KinesisStreamSpecification takes
            # ApproximateCreationDateTimePrecision (MICROSECOND | MILLISECOND) per replica.
            # The primary replica (the one with the stream) is rendered last and replicas
            # may be added after this constructor, so its index is found at synth.
            cdk.Aspects.of(self).add(_KinesisPrecision(self, self.kinesis_precision.value))


@jsii.implements(cdk.IAspect)
class _KinesisPrecision:
    """Set the precision on the replica whose ``KinesisStreamSpecification`` this table's
    stream is (with ``replicas=``, index 0 is a secondary replica without ``StreamArn``,
    which CloudFormation would reject)."""

    def __init__(self, table: StreamTable, precision: str) -> None:
        self._table = table
        self._precision = precision

    def visit(self, node: IConstruct) -> None:
        cfn = self._table.node.default_child
        # By path: jsii may hand the same construct back as another Python proxy.
        if node.node.path != cfn.node.path:
            return
        replicas = cdk.Stack.of(self._table).resolve(cfn.replicas) or []
        for index, replica in enumerate(replicas):
            if "kinesisStreamSpecification" in replica:
                cfn.add_property_override(
                    f"Replicas.{index}.KinesisStreamSpecification."
                    "ApproximateCreationDateTimePrecision", self._precision)
                return


def _check_stream_reachable(scope: Construct, id: str, stream: Any) -> None:
    """DynamoDB writes only to a Kinesis stream in the table's own account and Region
    (DynamoDB developer guide, "Using Kinesis Data Streams to capture changes to
    DynamoDB"): refuse a given stream that is known to be elsewhere."""
    stack = cdk.Stack.of(scope)
    env = getattr(stream, "env", None)
    for what, mine, theirs in (("account", stack.account, getattr(env, "account", None)),
                               ("region", stack.region, getattr(env, "region", None))):
        if mine is None or theirs is None or is_token(mine) or is_token(theirs):
            continue
        if mine != theirs:
            raise ValueError(
                f"kinesis_stream {stream.node.path!r} is in {what} {theirs!r}, but table "
                f"{id!r} is in {what} {mine!r}: dynamodb can only stream changes to a "
                "kinesis data stream in the table's own account and region"
            )


def require_stream(table: dynamodb.ITable, prop: str = "table") -> str:
    """Return the table's stream ARN, or fail at synth with a clear error if it has none."""
    arn = table.table_stream_arn
    if not arn or not _stream_enabled(table):
        raise ValueError(
            f"{prop} {table.node.path!r} has no stream: use a StreamTable, set "
            "dynamo_stream on the TableV2, or import it with table_stream_arn="
        )
    return arn


def _stream_enabled(table: dynamodb.ITable) -> bool:
    # TableV2 returns a StreamArn token even when its stream is off (the deploy then
    # fails), so for a table defined in this app, ask its L1 resource. The public
    # `stream_specification` getter cannot cross jsii (TableV2 sets it lazily), but the
    # resource's protected `updatedProperties` resolves to plain values.
    if isinstance(table, StreamTable):  # always has a stream: no need to ask (6 round trips)
        return True
    resource = table.node.default_child
    if not isinstance(resource, (dynamodb.CfnGlobalTable, dynamodb.CfnTable)):
        return True
    props = cdk.Stack.of(resource).resolve(jsii.get(resource, "updatedProperties"))
    spec = props.get("streamSpecification") if isinstance(props, dict) else None
    return bool(spec and spec.get("streamViewType"))


# What each stream view type carries (the DynamoDB developer guide, "Change data capture
# for DynamoDB Streams": KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES).
_IMAGES_OF_VIEW = {
    "KEYS_ONLY": set(),
    "NEW_IMAGE": {"NewImage"},
    "OLD_IMAGE": {"OldImage"},
    "NEW_AND_OLD_IMAGES": {"NewImage", "OldImage"},
}
_IMAGE_PROP = {"NewImage": "new_image", "OldImage": "old_image"}


def table_schema(table: dynamodb.ITable) -> tuple[list[str], str | None] | None:
    """The key attribute names and stream view type of a table defined in this app
    (a ``StreamTable``, ``TableV2`` or ``Table``), read from its L1 resource; ``None`` for
    an imported table, whose schema is unknown at synth."""
    if isinstance(table, StreamTable):  # its props say it all, without jsii round trips
        keys = [k.name for k in (table.partition_key, table.sort_key) if k is not None]
        return keys, table.stream_view_type.value
    resource = table.node.default_child if isinstance(table, Construct) else None
    if not isinstance(resource, (dynamodb.CfnGlobalTable, dynamodb.CfnTable)):
        return None
    stack = cdk.Stack.of(resource)
    keys = stack.resolve(resource.key_schema) or []
    props = stack.resolve(jsii.get(resource, "updatedProperties"))
    spec = props.get("streamSpecification") if isinstance(props, dict) else None
    view = spec.get("streamViewType") if isinstance(spec, dict) else None
    names = [k["attributeName"] for k in keys if isinstance(k, dict) and "attributeName" in k]
    return names, view if isinstance(view, str) and not is_token(view) else None


def check_filters_on_table(
    owner: str, filters: Any, table: dynamodb.ITable, *, images: bool = True
) -> None:
    """Refuse filters that can never match this table's stream records: a ``keys`` condition
    on an attribute that is not a key, an image the stream view type does not carry
    (unless ``images`` is ``False``: records that carry both images whatever the view
    type, as on Kinesis). Imported tables are not checked (their schema is unknown at
    synth)."""
    patterns = [(i, f.to_pattern().get("dynamodb")) for i, f in enumerate(filters or ())]
    patterns = [(i, p) for i, p in patterns if isinstance(p, dict)]
    if not any(set(p) & {"Keys", "NewImage", "OldImage"} for _, p in patterns):
        return
    schema = table_schema(table)
    if schema is None:
        return
    keys, view = schema
    for index, pattern in patterns:
        for name in pattern.get("Keys", {}):
            if keys and name not in keys and not is_token(name):
                raise ValueError(
                    f"{owner}: filters[{index}] has a keys condition on {name!r}, which is "
                    f"not a key of table {table.node.path!r} (keys: {keys}), so it never "
                    f"matches: filter on new_image or old_image instead"
                )
        if not images or view is None or view not in _IMAGES_OF_VIEW:
            continue
        for image in ("NewImage", "OldImage"):
            if image in pattern and image not in _IMAGES_OF_VIEW[view]:
                raise ValueError(
                    f"{owner}: filters[{index}] has a {_IMAGE_PROP[image]} condition "
                    f"{pattern[image]!r}, but table {table.node.path!r} streams {view}, "
                    f"whose records carry no {image}, so it never matches"
                )
