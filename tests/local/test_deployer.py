"""The deployer: intrinsics, names, a hand-written assembly and the whole example app.

The example app is synthesized once per session and deployed once per module into the
session's DynamoDB Local and moto server (with a unique name prefix: other tests
share those servers).
"""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddb_stream_patterns.local import Deployment, DeploymentError, LocalCloud, deploy
from ddb_stream_patterns.local.deployer import physical_name
from ddb_stream_patterns.local.intrinsics import (
    NO_VALUE,
    Context,
    IntrinsicError,
    references,
    resolve,
)
from ddb_stream_patterns.local.model import MappingSpec
from ddb_stream_patterns.local.servers import DynamoDBLocal

REPO = Path(__file__).resolve().parents[2]
SIMPLE = "DdbStreamPatterns-SimpleController"
COMPLEX = "DdbStreamPatterns-ComplexController"
DATA = "DdbStreamPatterns-DataPatterns"
KINESIS = "DdbStreamPatterns-KinesisPatterns"


# =========================================================================== intrinsics


@pytest.fixture
def ctx() -> Context:
    return Context(
        refs={"Queue": "https://sqs/q", "Env": "prod", "Names": ["a", "b"]},
        attributes={"Queue": {"Arn": "arn:aws:sqs:us-east-1:123456789012:q", "QueueName": "q"}},
        stack_name="MyStack",
        conditions={
            "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
            "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
            "Both": {"Fn::And": [{"Condition": "IsProd"}, {"Fn::Equals": ["1", 1]}]},
            "Either": {"Fn::Or": [{"Condition": "IsDev"}, {"Condition": "IsProd"}]},
            "Loop": {"Fn::Not": [{"Condition": "Loop"}]},
        },
        mappings={"Sizes": {"prod": {"Batch": 100}}},
        exports={"shared-table": "Orders"},
    )


def test_ref_resources_parameters_and_pseudo_parameters(ctx: Context) -> None:
    assert resolve({"Ref": "Queue"}, ctx) == "https://sqs/q"
    assert resolve({"Ref": "AWS::Region"}, ctx) == "us-east-1"
    assert resolve({"Ref": "AWS::AccountId"}, ctx) == "123456789012"
    assert resolve({"Ref": "AWS::Partition"}, ctx) == "aws"
    assert resolve({"Ref": "AWS::StackName"}, ctx) == "MyStack"
    assert resolve({"Ref": "AWS::URLSuffix"}, ctx) == "amazonaws.com"
    assert resolve({"Ref": "AWS::StackId"}, ctx).startswith(
        "arn:aws:cloudformation:us-east-1:123456789012:stack/MyStack/"
    )
    with pytest.raises(IntrinsicError, match="'Nope'"):
        resolve({"Ref": "Nope"}, ctx)


def test_get_att_in_both_forms(ctx: Context) -> None:
    assert resolve({"Fn::GetAtt": ["Queue", "Arn"]}, ctx).endswith(":q")
    assert resolve({"Fn::GetAtt": "Queue.QueueName"}, ctx) == "q"
    assert resolve({"Fn::GetAtt": ["Queue", {"Ref": "AttrName"}]}, Context(
        refs={"AttrName": "Arn"}, attributes={"Queue": {"Arn": "x"}}
    )) == "x"
    with pytest.raises(IntrinsicError, match="no attribute 'StreamArn'.*Arn, QueueName"):
        resolve({"Fn::GetAtt": ["Queue", "StreamArn"]}, ctx)
    with pytest.raises(IntrinsicError, match="unknown logical id 'Table'"):
        resolve({"Fn::GetAtt": ["Table", "Arn"]}, ctx)


def test_join_select_split_nest(ctx: Context) -> None:
    joined = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":sqs:", {"Ref": "AWS::Region"}]]}
    assert resolve(joined, ctx) == "arn:aws:sqs:us-east-1"
    assert resolve({"Fn::Join": [",", {"Ref": "Names"}]}, ctx) == "a,b"
    assert resolve({"Fn::Select": ["1", {"Fn::Split": ["/", "a/b/c"]}]}, ctx) == "b"
    assert resolve({"Fn::Select": [0, {"Fn::GetAZs": ""}]}, ctx) == "us-east-1a"
    with pytest.raises(IntrinsicError, match="out of range"):
        resolve({"Fn::Select": [5, ["a"]]}, ctx)


def test_sub_with_attributes_variables_and_escapes(ctx: Context) -> None:
    assert resolve({"Fn::Sub": "${AWS::Region}/${Queue}/${Queue.Arn}"}, ctx) == (
        "us-east-1/https://sqs/q/arn:aws:sqs:us-east-1:123456789012:q"
    )
    assert resolve({"Fn::Sub": ["${Greeting}, ${Env}", {"Greeting": "hi"}]}, ctx) == "hi, prod"
    assert resolve({"Fn::Sub": "${!Literal} stays"}, ctx) == "${Literal} stays"
    assert resolve(
        {"Fn::Sub": "cdk-assets-${AWS::AccountId}-${AWS::Region}"}, ctx
    ) == "cdk-assets-123456789012-us-east-1"


def test_conditions_if_and_no_value(ctx: Context) -> None:
    value = {
        "A": {"Fn::If": ["IsProd", "big", "small"]},
        "B": {"Fn::If": ["IsDev", "x", {"Ref": "AWS::NoValue"}]},
        "C": [1, {"Fn::If": ["Both", 2, {"Ref": "AWS::NoValue"}]}, {"Fn::If": ["Either", 3, 4]}],
    }
    assert resolve(value, ctx) == {"A": "big", "C": [1, 2, 3]}
    assert resolve({"Ref": "AWS::NoValue"}, ctx) is NO_VALUE
    with pytest.raises(IntrinsicError, match="refers to itself"):
        resolve({"Fn::If": ["Loop", 1, 2]}, ctx)
    with pytest.raises(IntrinsicError, match="not defined"):
        resolve({"Fn::If": ["Missing", 1, 2]}, ctx)


def test_find_in_map_import_value_and_unsupported_functions(ctx: Context) -> None:
    assert resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Batch"]}, ctx) == 100
    assert resolve({"Fn::ImportValue": "shared-table"}, ctx) == "Orders"
    with pytest.raises(IntrinsicError, match="no export named 'other'"):
        resolve({"Fn::ImportValue": "other"}, ctx)
    with pytest.raises(IntrinsicError, match="Fn::Cidr: intrinsic function not supported"):
        resolve({"Fn::Cidr": ["10.0.0.0/16", 2, 8]}, ctx)


def test_fallback_supplies_placeholders_for_resources_not_created() -> None:
    def fallback(logical_id: str, attribute: str | None) -> Any:
        if logical_id != "Domain":
            raise KeyError(logical_id)
        return "domain-name" if attribute is None else "unsupported.local"

    ctx = Context(fallback=fallback)
    assert resolve({"Fn::Join": ["", ["https://", {"Fn::GetAtt": ["Domain", "DomainEndpoint"]}]]},
                   ctx) == "https://unsupported.local"
    assert resolve({"Ref": "Domain"}, ctx) == "domain-name"
    with pytest.raises(IntrinsicError):
        resolve({"Ref": "Other"}, ctx)


def test_references_finds_every_dependency() -> None:
    value = {
        "A": {"Ref": "Table"},
        "B": {"Fn::GetAtt": ["Queue", "Arn"]},
        "C": {"Fn::GetAtt": "Topic.TopicName"},
        "D": {"Fn::Sub": ["${Bucket.Arn}/${AWS::Region}/${Var}/${!Not}", {"Var": {"Ref": "Key"}}]},
        "E": [{"Ref": "AWS::AccountId"}, {"Fn::Sub": "${Fn}"}],
        # IAM-style multi-key dicts are data, not intrinsics
        "F": {"Condition": {"Bool": {"aws:SecureTransport": "false"}}, "Effect": "Deny"},
    }
    assert references(value) == {"Table", "Queue", "Topic", "Bucket", "Key", "Fn"}


def test_multi_key_dicts_are_data(ctx: Context) -> None:
    statement = {"Effect": "Allow", "Resource": {"Fn::GetAtt": ["Queue", "Arn"]}, "Ref": "x"}
    assert resolve(statement, ctx)["Resource"].endswith(":q")
    assert resolve(statement, ctx)["Ref"] == "x"


# =========================================================================== names


def test_physical_names_are_valid_for_each_service() -> None:
    long_stack = "DdbStreamPatterns-ComplexController"
    bucket = physical_name(long_stack, "CustomerEventsClaimCheckBucket1F512412", "bucket")
    assert len(bucket) <= 63 and bucket == bucket.lower()
    assert set(bucket) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    # deterministic, and distinct for distinct inputs that share a long prefix
    assert bucket == physical_name(long_stack, "CustomerEventsClaimCheckBucket1F512412", "bucket")
    assert bucket != physical_name(long_stack, "CustomerEventsClaimCheckBucket99999999", "bucket")
    queue = physical_name(long_stack, "X" * 100, "queue", ".fifo")
    assert len(queue) <= 80 and queue.endswith(".fifo")
    assert len(physical_name(long_stack, "Fn" * 40, "function")) <= 64
    assert len(physical_name("", "A", "table")) >= 3


# =========================================================================== hand-written assembly


def _write_assembly(directory: Path, stacks: dict[str, dict], deps: dict[str, list[str]]) -> Path:
    artifacts = {}
    for name, template in stacks.items():
        (directory / f"{name}.template.json").write_text(json.dumps(template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/unknown-region",
            "properties": {"templateFile": f"{name}.template.json"},
            "dependencies": deps.get(name, []),
        }
    (directory / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return directory


@pytest.fixture(scope="module")
def local_cloud(request: pytest.FixtureRequest) -> Iterator[LocalCloud]:
    """The session's servers (tests/local/conftest.py) when there, else our own."""
    servers = []
    for names in (("ddb_local", "dynamodb_local"), ("moto_server",)):
        server = None
        for name in names:
            try:
                server = request.getfixturevalue(name)
                break
            except pytest.FixtureLookupError:
                continue
        servers.append(server)
    with LocalCloud(*servers) as cloud:
        yield cloud


def test_hand_written_assembly(local_cloud: LocalCloud, tmp_path: Path) -> None:
    producer = {
        "Parameters": {"Env": {"Type": "String", "Default": "dev"}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
        "Resources": {
            "Jobs": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"FifoQueue": True, "ContentBasedDeduplication": True},
            },
            "Events": {"Type": "AWS::SNS::Topic", "Properties": {"FifoTopic": True}},
            "Items": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "AttributeDefinitions": [
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "gsi", "AttributeType": "S"},
                    ],
                    "BillingMode": "PROVISIONED",
                    "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                    "GlobalSecondaryIndexes": [{
                        "IndexName": "byGsi",
                        "KeySchema": [{"AttributeName": "gsi", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                        "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                    }],
                    "StreamSpecification": {"StreamViewType": "KEYS_ONLY"},
                },
            },
            "ProdOnly": {"Type": "AWS::SQS::Queue", "Condition": "IsProd"},
            "Mystery": {"Type": "AWS::Custom::Thing", "Properties": {"Size": 1}},
            "Waits": {
                "Type": "AWS::SQS::Queue",
                "DependsOn": "Mystery",
                "Properties": {"DelaySeconds": {"Fn::If": ["IsProd", 10, 5]},
                               "Tags": [{"Key": "thing", "Value": {"Ref": "Mystery"}}]},
            },
        },
        "Outputs": {
            "ItemsName": {"Value": {"Ref": "Items"}, "Export": {"Name": "items-table"}},
        },
    }
    consumer = {
        "Resources": {
            "Copy": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": {"Fn::Join": ["-", [{"Fn::ImportValue": "items-table"}, "copy"]]}},
            },
        },
    }
    directory = _write_assembly(tmp_path, {"Consumer": consumer, "Producer": producer},
                                {"Consumer": ["Producer"]})
    with deploy(local_cloud, directory, name_prefix=f"hw{uuid.uuid4().hex[:6]}-") as d:
        assert list(d.stacks) == ["Producer", "Consumer"]  # dependencies first
        jobs = d.find("Producer", "Jobs")
        assert jobs.physical_id.endswith(".fifo")
        sqs = local_cloud.client("sqs")
        attrs = sqs.get_queue_attributes(QueueUrl=d.queues["Jobs"], AttributeNames=["All"])
        assert attrs["Attributes"]["FifoQueue"] == "true"
        assert attrs["Attributes"]["ContentBasedDeduplication"] == "true"
        assert d.topics["Events"].endswith(".fifo")
        table = local_cloud.client("dynamodb").describe_table(TableName=d.tables["Items"])["Table"]
        assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "byGsi"
        assert table["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY"
        assert d.streams["Items"] == table["LatestStreamArn"]
        assert "PAY_PER_REQUEST" in d.find("Producer", "Items").notes[0]
        prod_only = d.find("Producer", "ProdOnly")
        assert (prod_only.status, prod_only.reason) == ("skipped", "condition 'IsProd' is false")
        mystery = d.find("Producer", "Mystery")
        assert mystery.status == "unsupported"
        assert "AWS::Custom::Thing" in mystery.reason
        waits = sqs.get_queue_attributes(QueueUrl=d.queues["Waits"], AttributeNames=["DelaySeconds"])
        assert waits["Attributes"]["DelaySeconds"] == "5"
        assert d.exports["items-table"] == d.tables["Items"]
        assert d.queues["Copy"].endswith(f"/{d.tables['Items']}-copy")

    with pytest.raises(DeploymentError, match="no stack named"):
        deploy(local_cloud, directory, stacks=["Nope"])


def test_functions_that_cannot_run_and_their_mappings(local_cloud: LocalCloud, tmp_path: Path) -> None:
    template = {"Resources": {
        "Inline": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "index.handler", "Timeout": 5,
            "Code": {"ZipFile": "def handler(event, context):\n    return {'ok': event['x']}\n"},
            "Environment": {"Variables": {"FLAG": True}},
        }},
        "Node": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "nodejs20.x", "Handler": "index.handler", "Code": {"ZipFile": "x"},
        }},
        "Jobs": {"Type": "AWS::SQS::Queue"},
        "Off": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "FunctionName": {"Ref": "Inline"}, "Enabled": False,
            "EventSourceArn": {"Fn::GetAtt": ["Jobs", "Arn"]},
        }},
        "NodeJobs": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "FunctionName": {"Fn::GetAtt": ["Node", "Arn"]},
            "EventSourceArn": {"Fn::GetAtt": ["Jobs", "Arn"]},
        }},
        "Kinesis": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "FunctionName": {"Ref": "Inline"}, "StartingPosition": "LATEST",
            "EventSourceArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        }},
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "MetricName": "Errors", "Namespace": "AWS/Lambda", "Statistic": "Sum", "Period": 60,
            "EvaluationPeriods": 1, "Threshold": 1, "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "Node"}}],
        }},
    }}
    directory = _write_assembly(tmp_path, {"Fns": template}, {})
    with deploy(local_cloud, directory, name_prefix=f"fn{uuid.uuid4().hex[:6]}-") as d:
        inline = d.functions["Inline"]
        assert inline.invoke({"x": 1}) == {"ok": 1}
        assert inline.environment["FLAG"] == "true"
        node = d.find("Fns", "Node")
        assert node.status == "unsupported" and "nodejs20.x" in node.reason
        assert d.find("Fns", "Off").status == "skipped"
        assert "its function Node" in d.find("Fns", "NodeJobs").reason
        # Kinesis mappings are polled by local/kinesis.py (before: "not emulated").
        assert d.find("Fns", "Kinesis").status == "deployed"
        assert d.find("Fns", "Alarm").status == "deployed"  # refers to the placeholder name
        assert [(m.kind, m.logical_id) for m in d.mappings] == [("kinesis", "Kinesis")]


def test_stand_ins_replace_placeholders(local_cloud: LocalCloud, tmp_path: Path) -> None:
    template = {"Resources": {
        "Domain": {"Type": "AWS::OpenSearchService::Domain", "Properties": {}},
        "Indexer": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "index.handler", "Code": {"ZipFile": "x"},
            "Environment": {"Variables": {
                "SEARCH_ENDPOINT": {"Fn::Join": ["", ["https://", {"Fn::GetAtt": ["Domain", "DomainEndpoint"]}]]},
                "DOMAIN": {"Ref": "Domain"},
            }},
        }},
    }}
    directory = _write_assembly(tmp_path, {"Search": template}, {})
    stand_ins = {"AWS::OpenSearchService::Domain": {"DomainEndpoint": "127.0.0.1:9200"}}
    with deploy(local_cloud, directory, stand_ins=stand_ins) as d:
        env = d.functions["Indexer"].environment
        assert env["SEARCH_ENDPOINT"] == "https://127.0.0.1:9200"
        assert env["DOMAIN"] == d.find("Search", "Domain").physical_id
        assert d.find("Search", "Domain").status == "unsupported"


def test_cycles_and_missing_imports_are_errors(local_cloud: LocalCloud, tmp_path: Path) -> None:
    cycle = {"Resources": {
        "A": {"Type": "AWS::SQS::Queue", "Properties": {"Tags": [{"Key": "k", "Value": {"Ref": "B"}}]}},
        "B": {"Type": "AWS::SQS::Queue", "DependsOn": ["A"]},
    }}
    with pytest.raises(DeploymentError, match="cycle: A, B"):
        deploy(local_cloud, _write_assembly(tmp_path, {"Cycle": cycle}, {}))
    importer = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {
        "QueueName": {"Fn::ImportValue": "nobody-exports-this"}}}}}
    with pytest.raises(DeploymentError, match=r"Importer/Q \(AWS::SQS::Queue\).*nobody-exports-this"):
        deploy(local_cloud, _write_assembly(tmp_path, {"Importer": importer}, {}))


def _ttl_tables_template(names: list[str]) -> dict:
    return {"Resources": {
        name.replace("-", ""): {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": name,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
        }} for name in names
    }}


def _stream_records(cloud: LocalCloud, stream_arn: str) -> list[dict]:
    streams = cloud.client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def test_ttl_expires_on_every_table_past_dynamodb_locals_sweep_limit(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """DynamoDB Local sweeps TTL on 7 tables only. The deploy that takes an instance past
    7 (an earlier deploy's tables count) starts the local cloud's own sweep and says so;
    every table's expired item is then deleted, each as the same TTL REMOVE record."""
    from ddb_stream_patterns.local.pollers import TTL_USER_IDENTITY, to_lambda_record

    try:
        moto = request.getfixturevalue("moto_server")
    except pytest.FixtureLookupError:
        moto = None
    early = [f"ttl-early-{i}" for i in range(4)]
    late = [f"ttl-late-{i}" for i in range(5)]
    with DynamoDBLocal() as ddb_local, LocalCloud(ddb_local, moto) as cloud:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = deploy(cloud, _write_assembly(tmp_path / "a", {"Early": _ttl_tables_template(early)}, {}))
        assert sorted(first.ttl_tables) == early
        assert (first.ttl_sweep_overflow, first.notes, cloud.ttl_sweeper) == (0, [], None)
        second = deploy(cloud, _write_assembly(tmp_path / "b", {"Late": _ttl_tables_template(late)}, {}))
        assert sorted(second.ttl_tables) == sorted(early + late)
        assert second.ttl_sweep_overflow == 2 and cloud.ttl_sweeper is not None
        [note] = second.notes
        assert "9 TTL-enabled tables (4 from earlier deploys)" in note
        assert "sweep serves only 7" in note and "20-25 s after they expire" in note
        assert f"note: {note}" in second.summary()

        ddb = cloud.client("dynamodb")
        now = int(time.time())
        for table in early + late:  # expired just now: DynamoDB Local's sweep goes first
            ddb.put_item(TableName=table, Item={"pk": {"S": "x"}, "expiresAt": {"N": str(now - 1)}})
        # a user's delete of an item that has not expired stays a user's delete
        ddb.put_item(TableName=late[0], Item={"pk": {"S": "mine"}, "expiresAt": {"N": str(now + 3600)}})
        ddb.delete_item(TableName=late[0], Key={"pk": {"S": "mine"}})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            left = [t for t in early + late if ddb.get_item(TableName=t, Key={"pk": {"S": "x"}}).get("Item")]
            if not left:
                break
            time.sleep(1)
        assert left == []
        assert cloud.ttl_sweeper.deleted >= 2  # the tables DynamoDB Local left out

        raw_names, shapes = [], set()
        for table in early + late:
            stream = second.streams.get(table.replace("-", "")) or first.streams[table.replace("-", "")]
            removes = [r for r in _stream_records(cloud, stream)
                       if r["eventName"] != "INSERT" and r["dynamodb"]["Keys"]["pk"]["S"] == "x"]
            assert len(removes) == 1, (table, removes)
            raw_names.append(removes[0]["eventName"])
            record = to_lambda_record(removes[0], stream)
            assert record["eventName"] == "REMOVE"
            assert record["userIdentity"] == TTL_USER_IDENTITY
            assert record["dynamodb"]["OldImage"] == {"pk": {"S": "x"}, "expiresAt": {"N": str(now - 1)}}
            shapes.add((tuple(record), tuple(record["dynamodb"])))
            if table == late[0]:
                [mine] = [to_lambda_record(r, stream) for r in _stream_records(cloud, stream)
                          if r["eventName"] == "REMOVE" and r["dynamodb"]["Keys"]["pk"]["S"] == "mine"]
                assert "userIdentity" not in mine
        assert len(shapes) == 1  # ours and DynamoDB Local's, rewritten: the same record
        assert "UNKNOWN_TO_SDK_VERSION" in raw_names and "REMOVE" in raw_names
        first.close()
        second.close()


# =========================================================================== the example app


def _load_example_app() -> Any:
    spec = importlib.util.spec_from_file_location("example_app_local", REPO / "examples" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def example_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example app synthesized once per session into a cloud assembly."""
    import aws_cdk as cdk

    outdir = tmp_path_factory.mktemp("example-cdk-out")
    # The built-in template validation only reports (~2 s): the templates are the same.
    app = cdk.App(outdir=str(outdir), builtin_cloud_formation_validation=False, stack_traces=False)
    _load_example_app().build_app(app)
    app.synth()
    return outdir


@pytest.fixture(scope="module")
def deployment(local_cloud: LocalCloud, example_assembly: Path) -> Iterator[Deployment]:
    with deploy(local_cloud, example_assembly, name_prefix=f"t{uuid.uuid4().hex[:6]}-") as d:
        d.start_functions()  # workers import their handlers in parallel meanwhile
        yield d
    # DynamoDB Local sweeps TTL on only the first few TTL tables (see conftest.py).
    ddb = local_cloud.client("dynamodb")
    for table in d.tables.values():
        ddb.delete_table(TableName=table)


def _templates(assembly: Path) -> dict[str, dict]:
    return {
        name: json.loads((assembly / f"{name}.template.json").read_text())
        for name in (SIMPLE, COMPLEX, DATA)
    }


def test_every_resource_is_accounted_for(deployment: Deployment, example_assembly: Path) -> None:
    for stack, template in _templates(example_assembly).items():
        recorded = {r.logical_id: r for r in deployment.stacks[stack]}
        assert set(recorded) == set(template["Resources"])
        for logical_id, resource in template["Resources"].items():
            r = recorded[logical_id]
            assert r.type == resource["Type"]
            assert r.status in ("deployed", "enforced", "skipped", "unsupported")
            assert (r.status == "enforced") == (
                r.type in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::SQS::QueuePolicy",
                           "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy", "AWS::KMS::Key"))
            assert r.physical_id
            if r.status != "deployed":
                assert r.reason
    assert not deployment.warnings


def test_tables_have_streams_and_ttl(
    deployment: Deployment, example_assembly: Path, local_cloud: LocalCloud
) -> None:
    ddb = local_cloud.client("dynamodb")
    tables = 0
    for stack, template in _templates(example_assembly).items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::DynamoDB::GlobalTable":
                continue
            tables += 1
            props = resource["Properties"]
            name = deployment.tables[f"{stack}/{logical_id}"]
            table = ddb.describe_table(TableName=name)["Table"]
            assert table["KeySchema"] == props["KeySchema"]
            assert table["StreamSpecification"] == {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
            assert deployment.streams[f"{stack}/{logical_id}"] == table["LatestStreamArn"]
            ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if "TimeToLiveSpecification" in props:
                assert ttl["TimeToLiveStatus"] == "ENABLED"
                assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
            else:
                assert ttl["TimeToLiveStatus"] == "DISABLED"
    assert tables == 5


def test_queues_have_redrive_delay_and_visibility(
    deployment: Deployment, local_cloud: LocalCloud
) -> None:
    sqs = local_cloud.client("sqs")
    queue = deployment.find(COMPLEX, "CustomerEventsStatusNotifierQueue")
    dlq = deployment.find(COMPLEX, "CustomerEventsStatusNotifierDlq")
    attrs = sqs.get_queue_attributes(QueueUrl=queue.physical_id, AttributeNames=["All"])["Attributes"]
    assert attrs["DelaySeconds"] == "300"
    assert attrs["VisibilityTimeout"] == "180"
    assert attrs["MessageRetentionPeriod"] == "345600"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq.attributes["Arn"],
        "maxReceiveCount": 5,  # the Processor default (AWS: at least 5)
    }
    assert queue.attributes["QueueUrl"] == queue.physical_id == deployment.queues[queue.key]
    assert queue.attributes["QueueName"] == queue.physical_id.rsplit("/", 1)[1]


def test_subscriptions_filter_and_deliver_raw(
    deployment: Deployment, local_cloud: LocalCloud
) -> None:
    sns = local_cloud.client("sns")
    topic = deployment.by_path(f"{COMPLEX}/CustomerEvents/Topic")
    assert topic.physical_id == deployment.topics[topic.key]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic.physical_id)["Subscriptions"]
    by_queue = {s["Endpoint"].rsplit(":", 1)[1]: s for s in subscriptions}
    assert len(by_queue) == 3
    expected = {
        "Welcome": {"eventName": ["INSERT"]},
        "StatusNotifier": {"eventName": ["MODIFY"], "status": [{"exists": True}]},
        "Audit": {"eventName": ["REMOVE"]},
    }
    shared_dlq = deployment.find(COMPLEX, "CustomerEventsSubscriptionDlq").attributes["Arn"]
    for processor, policy in expected.items():
        queue = deployment.find(COMPLEX, f"CustomerEvents{processor}Queue")
        subscription = by_queue[queue.attributes["QueueName"]]
        attrs = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])[
            "Attributes"
        ]
        assert json.loads(attrs["FilterPolicy"]) == policy
        assert attrs["RawMessageDelivery"] == "true"
        assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": shared_dlq}


def test_buckets_exist_with_lifecycle(deployment: Deployment, local_cloud: LocalCloud) -> None:
    s3 = local_cloud.client("s3")
    # Two claim-check buckets (fan-outs), the two archives (DataPatterns, KinesisPatterns)
    # and the failure buckets of the stream mappings (the simple controller, the three
    # Kinesis patterns, the two fan-out routers).
    assert len(deployment.buckets) == 10
    assert sum("ArchiveBucket" in key for key in deployment.buckets) == 2
    failure_buckets = [name for key, name in deployment.buckets.items() if "FailureBucket" in key]
    assert len(failure_buckets) == 6
    for name in deployment.buckets.values():
        s3.head_bucket(Bucket=name)
    for name in failure_buckets:
        [rule] = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        assert (rule["ID"], rule["Expiration"]) == ("ExpireFailureRecords", {"Days": 90})
    archive = deployment.by_path(f"{DATA}/ExpiredTasks/ArchiveBucket")
    rules = s3.get_bucket_lifecycle_configuration(Bucket=archive.physical_id)["Rules"]
    assert rules[0]["Transitions"][0]["StorageClass"] == "GLACIER_IR"
    assert archive.attributes["Arn"] == f"arn:aws:s3:::{archive.physical_id}"


def test_every_function_imports_its_handler_and_runs(deployment: Deployment) -> None:
    # 11 in the first three stacks, and the archiver, counter and replicator on Kinesis.
    assert len(deployment.functions) == 14
    assert sum(key.startswith(KINESIS) for key in deployment.functions) == 3
    for key, function in deployment.functions.items():
        if function.handler == "ddb_stream_runtime.role_mapping.handler":
            continue  # a custom resource's provider: custom resources are not run locally
        assert function.invoke({"Records": []}) == {"batchItemFailures": []}, key
        assert function.errors == 0


def test_function_configuration(deployment: Deployment) -> None:
    notifier = deployment.functions[deployment.find(SIMPLE, "StatusNotifierFunction").key]
    assert notifier.handler == "index.handler"
    assert notifier.timeout_s == 30
    assert notifier.memory_mb == 256
    assert notifier.environment["TOPIC_ARN"] == deployment.topics[
        deployment.find(SIMPLE, "StatusNotifications").key
    ]
    assert notifier.environment["AWS_ENDPOINT_URL_DYNAMODB"] == deployment.cloud.dynamodb_endpoint
    # the runtime comes from the layer, never from the repository's lambda_src
    assert len(notifier.layer_dirs) == 1
    assert (notifier.layer_dirs[0] / "python" / "ddb_stream_runtime").is_dir()
    assert REPO not in notifier.code_dir.parents
    search = deployment.by_path(f"{DATA}/TaskSearch/Function")
    assert search.local.environment["SEARCH_ENDPOINT"] == "https://unsupported.local"


def test_mappings_carry_every_property(deployment: Deployment) -> None:
    specs = {m.logical_id: m for m in deployment.mappings}
    # 10 in the first three stacks; on Kinesis three consumers and the feeder (DynamoDB's
    # side: the table's changes written to the Kinesis stream).
    assert len(specs) == 14
    assert sorted(m.kind for m in deployment.mappings).count("kinesis") == 3
    assert all(isinstance(m, MappingSpec) for m in specs.values())

    notifier = deployment.find(SIMPLE, "StatusNotifierFunctionDynamoDBEventSource").local
    assert notifier.kind == "dynamodb"
    assert notifier.source_arn == deployment.streams[deployment.find(SIMPLE, "Orders").key]
    assert notifier.filter_patterns == [
        {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"status": {"S": [{"exists": True}]}}}}
    ]
    assert (notifier.batch_size, notifier.starting_position) == (100, "TRIM_HORIZON")
    assert notifier.bisect_on_error and notifier.report_batch_item_failures
    assert (notifier.max_retry_attempts, notifier.max_record_age_s) == (10, 72000)
    # The default failure destination: a bucket, whose ARN the mapping sends to.
    assert notifier.on_failure_arn == deployment.find(SIMPLE, "StatusNotifierFailureBucket").attributes["Arn"]
    assert notifier.function is deployment.functions[deployment.find(SIMPLE, "StatusNotifierFunction").key]

    sqs_mappings = [m for m in specs.values() if m.kind == "sqs"]
    assert len(sqs_mappings) == 7  # 3 ComplexController processors, 4 DataPatterns consumers
    for m in sqs_mappings:
        assert m.queue_url and m.queue_url.endswith(m.source_arn.rsplit(":", 1)[1])
        assert (m.batch_size, m.report_batch_item_failures) == (10, True)
        assert m.on_failure_arn is None
    throttled = deployment.find(COMPLEX, "CustomerEventsStatusNotifierFunctionSqsEventSource").local
    assert throttled.max_concurrency == 2
    assert sorted(m.max_concurrency or 0 for m in sqs_mappings) == [0, 0, 0, 0, 0, 0, 2]

    # DataPatterns reads its stream through a StreamFanOut: one stream mapping (the router);
    # the archiver's TTL filter is its subscription's filter policy, not a mapping filter.
    router = deployment.find(DATA, "TodoListTaskFanOutControllerFunctionDynamoDBEventSource").local
    assert router.kind == "dynamodb"
    # What the router gives up on goes to its failure bucket, payload included.
    assert router.on_failure_arn == deployment.find(
        DATA, "TodoListTaskFanOutControllerFailureBucket").attributes["Arn"]
    archiver = deployment.find(DATA, "ExpiredTasksFunctionSqsEventSource").local
    assert archiver.kind == "sqs" and not archiver.filter_patterns


def test_opensearch_is_unsupported_policies_skipped_iam_enforced(deployment: Deployment) -> None:
    [domain] = [r for r in deployment.unsupported if r.type == "AWS::OpenSearchService::Domain"]
    assert domain.stack == DATA
    # Its fine-grained access control mappings (custom resources) are listed, not dropped.
    mappings = [r for r in deployment.unsupported if r.type == "Custom::OpenSearchRoleMapping"]
    assert len(mappings) == 3 and len(deployment.unsupported) == 4
    assert all("custom resources" in r.reason for r in mappings)
    assert "OpenSearch" in domain.reason
    assert domain.path == f"{DATA}/TaskSearch/Domain/Resource"
    skipped_types = {r.type for r in deployment.skipped}
    assert {"AWS::Logs::LogGroup", "AWS::Logs::ResourcePolicy"} <= skipped_types
    assert all("not enforced locally" in r.reason for r in deployment.skipped)
    # IAM is enforced (LocalCloud(enforce_iam=True), the default): identity policies, and
    # the resource policies that decide whether the patterns work.
    enforced_types = {r.type for r in deployment.enforced}
    assert enforced_types == {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::SQS::QueuePolicy",
                              "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy", "AWS::KMS::Key"}
    assert all("enforced locally" in r.reason for r in deployment.enforced)
    assert " enforced, " in deployment.summary()
    # Every function's role has its policies, intrinsics resolved.
    assert deployment.role_policies and all(
        isinstance(doc["Statement"], list) for docs in deployment.role_policies.values()
        for doc in docs)
    assert "unsupported" in deployment.summary() and "OpenSearch" in deployment.summary()


def test_lookup_helpers(deployment: Deployment) -> None:
    orders = deployment.by_path(f"{SIMPLE}/Orders")
    assert orders.logical_id.startswith("Orders") and orders.type == "AWS::DynamoDB::GlobalTable"
    assert deployment.find(SIMPLE, "Orders") is orders
    assert deployment.find(SIMPLE, orders.logical_id) is orders
    assert {r.type for r in deployment.under(f"{SIMPLE}/StatusNotifier")} >= {
        "AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::S3::Bucket"
    }
    with pytest.raises(LookupError, match="no single resource"):
        deployment.by_path(f"{SIMPLE}/StatusNotifier")
    with pytest.raises(LookupError, match="no stack"):
        deployment.find("Nope", "Orders")
    # logical IDs repeat across stacks: a bare one must be unique
    with pytest.raises(KeyError, match="several stacks"):
        deployment.topics["AlarmsTopic3A2DFEBA"]
    assert deployment.topics[f"{COMPLEX}/AlarmsTopic3A2DFEBA"] != deployment.topics[f"{DATA}/AlarmsTopic3A2DFEBA"]
    assert deployment.tables["OrdersA9B65338"] == orders.physical_id
    assert deployment.function_for(orders.physical_id) is None


# =========================================================================== end to end


def _drain(sqs: Any, url: str) -> list[dict]:
    return sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    ).get("Messages", [])


def test_topic_routes_by_event_name(deployment: Deployment, local_cloud: LocalCloud) -> None:
    sns, sqs = local_cloud.client("sns"), local_cloud.client("sqs")
    topic = deployment.by_path(f"{COMPLEX}/CustomerEvents/Topic").physical_id
    queues = {p: deployment.find(COMPLEX, f"CustomerEvents{p}Queue").physical_id
              for p in ("Welcome", "StatusNotifier", "Audit")}

    def attributes(event_name: str, **extra: str) -> dict:
        values = {"eventName": event_name, **extra}
        return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}

    sns.publish(TopicArn=topic, Message='{"n": 1}', MessageAttributes=attributes("INSERT"))
    sns.publish(TopicArn=topic, Message='{"n": 2}', MessageAttributes=attributes("REMOVE"))
    sns.publish(TopicArn=topic, Message='{"n": 3}', MessageAttributes=attributes("MODIFY"))
    welcome, audit = _drain(sqs, queues["Welcome"]), _drain(sqs, queues["Audit"])
    assert [m["Body"] for m in welcome] == ['{"n": 1}']  # raw delivery: the body as published
    assert [m["Body"] for m in audit] == ['{"n": 2}']
    # MODIFY without a status matches nothing; with one it waits out the 5-minute delay
    sns.publish(TopicArn=topic, Message='{"n": 4}',
                MessageAttributes=attributes("MODIFY", status="shipped"))
    notifier = sqs.get_queue_attributes(QueueUrl=queues["StatusNotifier"], AttributeNames=["All"])
    assert notifier["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert not _drain(sqs, queues["Welcome"]) and not _drain(sqs, queues["Audit"])


def _stream_record(event_name: str, keys: dict, new: dict | None, old: dict | None) -> dict:
    record: dict[str, Any] = {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"Keys": keys, "SequenceNumber": "100", "SizeBytes": 10,
                     "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    if new is not None:
        record["dynamodb"]["NewImage"] = new
    if old is not None:
        record["dynamodb"]["OldImage"] = old
    return record


def test_controller_function_publishes_through_the_topic_to_its_queue(
    deployment: Deployment, local_cloud: LocalCloud
) -> None:
    """The router runs in its worker, its boto3 talks to moto: record → SNS → Welcome queue."""
    controller = deployment.by_path(f"{COMPLEX}/CustomerEvents/ControllerFunction").local
    keys = {"customerId": {"S": "c-1"}}
    record = _stream_record("INSERT", keys, {**keys, "name": {"S": "Ada"}}, None)
    assert controller.invoke({"Records": [record]}) == {"batchItemFailures": []}
    sqs = local_cloud.client("sqs")
    [message] = _drain(sqs, deployment.find(COMPLEX, "CustomerEventsWelcomeQueue").physical_id)
    assert json.loads(message["Body"])["eventID"] == record["eventID"]

    welcome = deployment.by_path(f"{COMPLEX}/CustomerEvents/WelcomeFunction").local
    sqs_event = {"Records": [{"messageId": message["MessageId"], "body": message["Body"],
                              "receiptHandle": message["ReceiptHandle"], "attributes": {},
                              "messageAttributes": {}, "eventSource": "aws:sqs"}]}
    assert welcome.invoke(sqs_event) == {"batchItemFailures": []}
    assert any('"action": "welcome"' in line and "Ada" in line for line in welcome.logs)


def test_status_notifier_publishes_to_its_topic(
    deployment: Deployment, local_cloud: LocalCloud
) -> None:
    sns, sqs = local_cloud.client("sns"), local_cloud.client("sqs")
    topic = deployment.topics[deployment.find(SIMPLE, "StatusNotifications").key]
    probe = sqs.create_queue(QueueName=f"probe-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=probe_arn,
                  Attributes={"RawMessageDelivery": "true"})
    notifier = deployment.functions[deployment.find(SIMPLE, "StatusNotifierFunction").key]
    keys = {"orderId": {"S": "o-1"}}
    record = _stream_record("MODIFY", keys, {**keys, "status": {"S": "shipped"}},
                            {**keys, "status": {"S": "new"}})
    assert notifier.invoke({"Records": [record]}) == {"batchItemFailures": []}
    [message] = _drain(sqs, probe)
    assert json.loads(message["Body"]) == {"keys": {"orderId": "o-1"}, "from": "new", "to": "shipped"}
