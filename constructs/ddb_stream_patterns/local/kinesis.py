"""Kinesis Data Streams for DynamoDB, locally: streams in moto, a feeder, a Lambda-like poller.

* **Streams and consumers.** ``AWS::Kinesis::Stream`` and ``AWS::Kinesis::StreamConsumer``
  are created in moto's server (its Kinesis: ``CreateStream`` — an on-demand stream gets
  4 shards, as AWS starts one — ``ListShards``, ``GetShardIterator``, ``GetRecords``,
  ``PutRecords``, ``RegisterStreamConsumer``; no ``SubscribeToShard``).
* **The feeder** stands in for DynamoDB writing a table's changes to its Kinesis stream
  (the table's ``KinesisStreamSpecification``). It is a stream event source mapping on
  the table's DynamoDB Local stream (so the stream poller's shard walking, TTL rewrite,
  empty-map repair and checkpoints are reused) whose "function" is
  :class:`KinesisWriter`: each change record becomes the JSON record DynamoDB writes to
  Kinesis (:func:`kinesis_change_record`), put with ``PutRecords``, partition key from the
  item's key (so one item's changes stay in one shard, in order). ``duplicate_rate``
  writes a share of the records twice, as Kinesis may deliver them.
* **The poller** (:class:`KinesisPoller`, ``kind="kinesis"``) gives an event source
  mapping on a stream (or an enhanced fan-out consumer's ARN) Lambda's Kinesis semantics
  with the stream poller's machinery: per-shard order (parents first), batches, filters
  on the decoded ``data``, bisect on error, retries, maximum record age (from
  ``approximateArrivalTimestamp``), partial batch responses by ``kinesis.sequenceNumber``
  and on-failure records with ``KinesisBatchInfo``.

Where it differs from AWS
-------------------------
* ``ApproximateCreationDateTime``: DynamoDB Local truncates it to the minute; the feeder
  writes the time it read the record (clamped into that minute), in ms or µs per the
  table's precision, strictly increasing per feeder at µs precision.
* The DynamoDB-to-Kinesis ``eventID`` is a UUID (AWS writes one per record); here it is
  derived from the DynamoDB stream record's ``eventID``, so a forced duplicate carries
  the same one. AWS documents neither how it picks the partition key (observed: 32
  upper-case hex digits) nor whether a duplicate keeps its ``eventID``.
* Enhanced fan-out consumers are read with ``GetRecords`` like shared readers (moto has
  no ``SubscribeToShard``): same records, same order, no push latency or 2 MB/s pipe.

The on-failure record is AWS's, as for DynamoDB sources (see :mod:`.pollers`): an SQS
queue or an SNS topic gets the metadata only, ``KinesisBatchInfo``'s coordinates (shard,
start and end sequence numbers, batch size), and the records must be re-read from the
stream within its retention period (24 h by default, up to 365 days); an S3 bucket also
gets them, as the ``payload`` of the object ``aws/lambda/<ESM-UUID>/<shardID>/...``.
``KinesisPoller.failure_records`` keeps them locally.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .model import MappingSpec
from .pollers import (
    _REOPEN,
    ClientFactory,
    StreamPoller,
    _error_code,
    _iso,
    _Outcome,
    _Pending,
    _Shard,
)

__all__ = [
    "CREATORS",
    "KINESIS_READ_ACTIONS",
    "KinesisPoller",
    "KinesisWriter",
    "feeders",
    "kinesis_change_record",
    "partition_key",
    "to_lambda_kinesis_record",
]

_LOGGER = logging.getLogger(__name__)

_PUT_RECORDS_MAX = 500  # PutRecords entries per request
_GET_RECORDS_LIMIT = 10_000  # GetRecords maximum
#: The calls the poller makes on the stream (all in AWS's ``AWSLambdaKinesisExecutionRole``,
#: https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaKinesisExecutionRole.html).
KINESIS_READ_ACTIONS = ("kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords")
_MINUTE_S = 60


# --- the records --------------------------------------------------------------------------


def partition_key(table_name: str, keys: Mapping[str, Any]) -> str:
    """The partition key the feeder writes a change under: 32 upper-case hex digits (the
    shape AWS's records show), the same for every change of one item."""
    text = json.dumps([table_name, keys], sort_keys=True, separators=(",", ":"))
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


def kinesis_change_record(record: Mapping[str, Any], *, table_name: str,
                          created_at: int, precision: str = "MICROSECOND") -> dict[str, Any]:
    """A DynamoDB stream record as Lambda delivers it -> the record DynamoDB writes to
    Kinesis: ``awsRegion``, ``eventID`` (a UUID), ``eventName``, ``userIdentity`` (``null``,
    or the TTL service identity), ``recordFormat`` ``application/json``, ``tableName``,
    ``dynamodb`` (``ApproximateCreationDateTime`` = ``created_at`` in ms or µs, ``Keys``,
    ``NewImage``, ``OldImage``, ``SizeBytes``, and ``ApproximateCreationDateTimePrecision``
    when MICROSECOND), ``eventSource`` ``aws:dynamodb``. No ``SequenceNumber``, no
    ``StreamViewType``, no ``eventVersion``.

    >>> r = kinesis_change_record({"eventID": "1", "eventName": "INSERT",
    ...     "awsRegion": "us-east-1", "dynamodb": {"Keys": {"pk": {"S": "a"}},
    ...     "NewImage": {"pk": {"S": "a"}}, "SequenceNumber": "9", "SizeBytes": 9}},
    ...     table_name="T", created_at=1700000000000000)
    >>> list(r), list(r["dynamodb"])  # doctest: +NORMALIZE_WHITESPACE
    (['awsRegion', 'eventID', 'eventName', 'userIdentity', 'recordFormat', 'tableName',
      'dynamodb', 'eventSource'],
     ['ApproximateCreationDateTime', 'Keys', 'NewImage', 'SizeBytes',
      'ApproximateCreationDateTimePrecision'])
    """
    source = record.get("dynamodb") or {}
    ddb: dict[str, Any] = {"ApproximateCreationDateTime": int(created_at)}
    for key in ("Keys", "NewImage", "OldImage", "SizeBytes"):
        if key in source:
            ddb[key] = source[key]
    if precision == "MICROSECOND":
        ddb["ApproximateCreationDateTimePrecision"] = "MICROSECOND"
    identity = record.get("userIdentity")
    return {
        "awsRegion": record.get("awsRegion"),
        "eventID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{table_name}/{record.get('eventID')}")),
        "eventName": record.get("eventName"),
        "userIdentity": dict(identity) if identity else None,
        "recordFormat": "application/json",
        "tableName": table_name,
        "dynamodb": ddb,
        "eventSource": "aws:dynamodb",
    }


def to_lambda_kinesis_record(api_record: Mapping[str, Any], *, shard_id: str, stream_arn: str,
                             region: str, invoke_identity_arn: str) -> dict[str, Any]:
    """One Kinesis ``GetRecords`` record (as boto3 parses it) -> the record Lambda delivers
    (Lambda developer guide, "Using Lambda to process records from Amazon Kinesis Data
    Streams", example event)."""
    data = api_record["Data"]
    arrival = api_record.get("ApproximateArrivalTimestamp")
    arrival_s = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival or 0)
    sequence = api_record["SequenceNumber"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": api_record["PartitionKey"],
            "sequenceNumber": sequence,
            "data": base64.b64encode(data).decode("ascii") if isinstance(
                data, (bytes, bytearray)) else data,
            "approximateArrivalTimestamp": round(arrival_s, 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": invoke_identity_arn,
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def _decoded(record: Mapping[str, Any]) -> Any:
    try:
        return json.loads(base64.b64decode(record["kinesis"]["data"]))
    except (ValueError, KeyError, TypeError):
        return None


# --- the feeder ---------------------------------------------------------------------------


class KinesisWriter:
    """DynamoDB's side of "Kinesis Data Streams for DynamoDB", as an :class:`Invocable`: takes
    a batch of the table's stream records (``{"Records": [...]}``, Lambda's shape) and puts
    them into the Kinesis stream in the shape DynamoDB writes.

    Parameters
    ----------
    client_factory
        Service name -> boto3 client (``"kinesis"`` at moto).
    stream_name, table_name
        Where to write, and the ``tableName`` of the records.
    precision
        ``MICROSECOND`` or ``MILLISECOND`` (``ApproximateCreationDateTimePrecision``).
    duplicate_rate
        Share of the records written twice in a row (0 to 1). Default: 0.
    seed
        Seed of the duplicate draw. Default: 0 (the same records each run).
    """

    #: Not a function: DynamoDB itself writes, with no execution role to check.
    service_principal = "dynamodb.amazonaws.com"

    def __init__(self, client_factory: ClientFactory, *, stream_name: str, table_name: str,
                 precision: str = "MICROSECOND", duplicate_rate: float = 0.0,
                 seed: int = 0) -> None:
        if precision not in ("MICROSECOND", "MILLISECOND"):
            raise ValueError(f"precision must be MICROSECOND or MILLISECOND, got {precision!r}")
        self.name = f"dynamodb-to-kinesis:{table_name}"
        self.stream_name = stream_name
        self.table_name = table_name
        self.precision = precision
        self.duplicate_rate = duplicate_rate
        self._random = random.Random(seed)
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self._last = 0
        #: Records written, duplicates included, and the duplicates alone.
        self.written = 0
        self.duplicates = 0

    def _created_at(self, approximate_s: Any) -> int:
        now_us = time.time_ns() // 1000
        if approximate_s is not None:  # DynamoDB Local: truncated to the minute
            low = int(float(approximate_s) * 1_000_000)
            now_us = min(max(now_us, low), low + _MINUTE_S * 1_000_000 - 1)
        with self._lock:
            if self.precision == "MICROSECOND":
                now_us = max(now_us, self._last + 1)
                self._last = now_us
                return now_us
            return now_us // 1000

    def entries(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The ``PutRecords`` entries for ``records``, duplicates drawn in."""
        out = []
        for record in records:
            created = self._created_at((record.get("dynamodb") or {}).get(
                "ApproximateCreationDateTime"))
            change = kinesis_change_record(record, table_name=self.table_name,
                                           created_at=created, precision=self.precision)
            entry = {"Data": json.dumps(change, separators=(",", ":")).encode(),
                     "PartitionKey": partition_key(self.table_name,
                                                   change["dynamodb"].get("Keys", {}))}
            out.append(entry)
            if self.duplicate_rate and self._random.random() < self.duplicate_rate:
                out.append(dict(entry))
                self.duplicates += 1
        return out

    def invoke(self, event: Mapping[str, Any]) -> None:
        entries = self.entries(event.get("Records") or [])
        kinesis = self._client_factory("kinesis")
        for start in range(0, len(entries), _PUT_RECORDS_MAX):
            chunk = entries[start:start + _PUT_RECORDS_MAX]
            response = kinesis.put_records(StreamName=self.stream_name, Records=chunk)
            if response.get("FailedRecordCount"):
                # The stream poller retries the whole batch: what was written is written
                # again, as DynamoDB's retries can duplicate records.
                raise RuntimeError(
                    f"PutRecords to {self.stream_name}: {response['FailedRecordCount']} of "
                    f"{len(chunk)} records failed")
            self.written += len(chunk)


def feeder_spec(d: Any, logical_id: str, props: Mapping[str, Any], table_name: str,
                stream_arn: str | None) -> MappingSpec | None:
    """The feeder of a table whose template streams it to Kinesis, or ``None``."""
    spec = props.get("KinesisStreamSpecification")
    for replica in props.get("Replicas") or []:
        if not spec and replica.get("Region") in (None, d.cloud.region):
            spec = replica.get("KinesisStreamSpecification")
    if not spec or not spec.get("StreamArn"):
        return None
    if not stream_arn:
        raise ValueError(f"table {table_name} streams to Kinesis but has no DynamoDB stream")
    target = str(spec["StreamArn"])
    writer = KinesisWriter(
        d.cloud.client, stream_name=target.rsplit("/", 1)[-1], table_name=table_name,
        precision=str(spec.get("ApproximateCreationDateTimePrecision") or "MILLISECOND"),
    )
    return MappingSpec(
        logical_id=f"{logical_id}KinesisFeed", function=writer, kind="dynamodb",
        source_arn=stream_arn, batch_size=1000, starting_position="TRIM_HORIZON",
    )


def feeders(deployment: Any) -> dict[str, KinesisWriter]:
    """The feeders of a deployment, by table name: set ``duplicate_rate`` on them to force
    duplicates (before the pollers run)."""
    return {m.function.table_name: m.function for m in deployment.mappings
            if isinstance(m.function, KinesisWriter)}


# --- the deployer's creators ----------------------------------------------------------------


def _create_stream(d: Any, logical_id: str, props: dict) -> Any:
    from .deployer import _Created

    kinesis = d.cloud.client("kinesis")
    name = props.get("Name") or d.name(logical_id)
    request: dict[str, Any] = {"StreamName": name}
    mode = (props.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
    if mode == "ON_DEMAND":
        request["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
    else:
        request["ShardCount"] = int(props.get("ShardCount", 1))
    notes = []
    if props.get("StreamEncryption"):
        notes.append("encryption is not enforced locally")
    try:
        kinesis.create_stream(**request)
    except Exception as exc:
        if _error_code(exc) != "ResourceInUseException":
            raise
        d.deployment.warnings.append(f"{d.stack.name}/{logical_id}: stream {name} existed: reused")
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    return _Created(name, {"Arn": arn}, notes)


def _create_consumer(d: Any, logical_id: str, props: dict) -> Any:
    from .deployer import _Created

    kinesis = d.cloud.client("kinesis")
    stream_arn, name = str(props["StreamARN"]), str(props["ConsumerName"])
    try:
        consumer = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name)
    except Exception as exc:
        if _error_code(exc) != "ResourceInUseException":
            raise
        consumer = kinesis.describe_stream_consumer(StreamARN=stream_arn, ConsumerName=name)
        consumer = {"Consumer": consumer["ConsumerDescription"]}
    arn = consumer["Consumer"]["ConsumerARN"]
    created = consumer["Consumer"].get("ConsumerCreationTimestamp")
    return _Created(arn, {
        "ConsumerARN": arn, "ConsumerName": name, "StreamARN": stream_arn,
        "ConsumerStatus": "ACTIVE",
        "ConsumerCreationTimestamp": str(created.timestamp() if hasattr(created, "timestamp")
                                         else created),
    }, ["read with GetRecords locally (no SubscribeToShard)"])


#: Resource type -> creator, merged into the deployer's.
CREATORS = {
    "AWS::Kinesis::Stream": _create_stream,
    "AWS::Kinesis::StreamConsumer": _create_consumer,
}


# --- the poller ---------------------------------------------------------------------------


@dataclass
class _KinesisPending(_Pending):
    @property
    def sequence_number(self) -> str:
        return self.record["kinesis"]["sequenceNumber"]

    def created_at(self) -> float:
        """Lambda ages Kinesis records from their arrival in the stream."""
        return float(self.record["kinesis"].get("approximateArrivalTimestamp") or self.read_at)


def stream_arn_of(source_arn: str) -> str:
    """The stream ARN of a stream or enhanced fan-out consumer ARN."""
    return source_arn.split("/consumer/", 1)[0]


class KinesisPoller(StreamPoller):
    """A Kinesis event source mapping (``kind == "kinesis"``) against moto's Kinesis.

    ``source_arn`` is the stream's ARN, or an enhanced fan-out consumer's
    (``.../stream/<name>/consumer/<consumer>:<timestamp>``), read the same way. The client
    factory must give ``"kinesis"`` (moto) and the failure destination's service.
    """

    _KIND = "kinesis"
    _PENDING = _KinesisPending

    def __init__(self, mapping: MappingSpec, client_factory: ClientFactory, **kwargs: Any
                 ) -> None:
        self.kinesis_stream_arn = stream_arn_of(mapping.source_arn)
        self.stream_name = self.kinesis_stream_arn.rsplit("/", 1)[-1]
        function = mapping.function
        role = getattr(function, "role_arn", None)
        parts = self.kinesis_stream_arn.split(":")
        self._region = parts[3] if len(parts) > 5 else "us-east-1"
        self._identity = role or (f"arn:aws:iam::{parts[4] if len(parts) > 5 else ''}:role/"
                                  f"{getattr(function, 'name', 'function')}")
        super().__init__(mapping, client_factory, **kwargs)

    def _may_read_source(self) -> bool:
        """The mapping reads the stream with the function's role, as Lambda does: the
        calls this poller makes (:data:`KINESIS_READ_ACTIONS`, in
        ``AWSLambdaKinesisExecutionRole``) on the stream, and ``kinesis:SubscribeToShard``
        on an enhanced fan-out consumer. Denied: nothing is read, the stats say why."""
        if not self._may_read(KINESIS_READ_ACTIONS, self.kinesis_stream_arn):
            return False
        if self.mapping.source_arn != self.kinesis_stream_arn:
            return self._may_read(("kinesis:SubscribeToShard",), self.mapping.source_arn)
        return True

    def _list_shards(self) -> list[dict[str, Any]]:
        kinesis = self._client("kinesis")
        described: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        while True:
            page = kinesis.list_shards(**kwargs)
            described.extend(page.get("Shards", []))
            if not page.get("NextToken"):
                return described
            kwargs = {"NextToken": page["NextToken"]}

    def _open(self, shard: _Shard) -> None:
        kinesis = self._client("kinesis")
        kwargs: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard.shard_id}
        if shard.last_read is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                          StartingSequenceNumber=shard.last_read)
        else:
            kwargs["ShardIteratorType"] = shard.iterator_type
        try:
            shard.iterator = kinesis.get_shard_iterator(**kwargs)["ShardIterator"]
        except Exception as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            _LOGGER.warning("%s: shard %s is gone", self.mapping.logical_id, shard.shard_id)
            shard.exhausted = True
        if shard.iterator is None and not shard.exhausted:
            shard.exhausted = True

    def _passes(self, record: Mapping[str, Any]) -> bool:
        # Lambda filters a Kinesis record on its data, decoded as JSON.
        return not self._filters or any(
            f.matches({**record, "data": _decoded(record)}) for f in self._filters)

    def _read_page(self, shard: _Shard) -> Any:
        try:
            return self._client("kinesis").get_records(ShardIterator=shard.iterator,
                                                       Limit=_GET_RECORDS_LIMIT)
        except Exception as exc:
            code = _error_code(exc)
            if code == "ExpiredIteratorException":
                shard.iterator = None
                return _REOPEN
            if code == "ResourceNotFoundException":
                shard.exhausted = True
                return None
            if code in ("ProvisionedThroughputExceededException", "LimitExceededException"):
                return None
            raise

    def _lambda_record(self, api_record: dict[str, Any], shard: _Shard
                       ) -> tuple[dict[str, Any], str | None]:
        record = to_lambda_kinesis_record(
            api_record, shard_id=shard.shard_id, stream_arn=self.kinesis_stream_arn,
            region=self._region, invoke_identity_arn=self._identity)
        return record, record["kinesis"]["sequenceNumber"]

    def _failure_record(self, shard: _Shard, items: list[_Pending], condition: str,
                        invoke_count: int, outcome: _Outcome | None) -> dict[str, Any]:
        """Lambda's on-failure record for a Kinesis source (Lambda developer guide,
        "Retain discarded batch records for a Kinesis Data Streams event source")."""
        first, last = items[0].record["kinesis"], items[-1].record["kinesis"]
        return {
            **self._failure_envelope(condition, invoke_count, outcome),
            "KinesisBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first["sequenceNumber"],
                "endSequenceNumber": last["sequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first["approximateArrivalTimestamp"]),
                "approximateArrivalOfLastRecord": _iso(last["approximateArrivalTimestamp"]),
                "batchSize": len(items),
                "streamArn": self.kinesis_stream_arn,
            },
        }


def streams_to_kinesis(props: Mapping[str, Any]) -> bool:
    """Whether a table's properties stream its changes to a Kinesis data stream."""
    return bool(props.get("KinesisStreamSpecification") or any(
        (r or {}).get("KinesisStreamSpecification") for r in props.get("Replicas") or []))
