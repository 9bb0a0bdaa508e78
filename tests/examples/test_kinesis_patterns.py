"""The KinesisPatterns example stack: one table's changes through Kinesis to three patterns,
two on enhanced fan-out, none on the table's DynamoDB stream."""

from __future__ import annotations

from aws_cdk.assertions import Template

from ddb_stream_patterns import KinesisController

NAME = "DdbStreamPatterns-KinesisPatterns"


def _get_att(stack, construct, attribute):
    return {"Fn::GetAtt": [stack.get_logical_id(construct.node.default_child), attribute]}


def test_three_consumers_two_on_enhanced_fan_out(example_app):
    stack = example_app.node.find_child(NAME)
    template = Template.from_stack(stack)
    replica = next(iter(template.find_resources("AWS::DynamoDB::GlobalTable").values()))
    assert any(r.get("KinesisStreamSpecification", {}).get(
        "ApproximateCreationDateTimePrecision") == "MICROSECOND"
        for t in template.find_resources("AWS::DynamoDB::GlobalTable").values()
        for r in t["Properties"]["Replicas"]), replica
    mappings = template.find_resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 3
    assert "StreamArn" not in str(mappings)  # the table's DynamoDB stream has no reader
    stream = stack.table.kinesis_stream_created
    expected = {
        "counter": (stack.counter, True), "replicator": (stack.replicator, True),
        "archiver": (stack.archiver, False),
    }
    for name, (pattern, efo) in expected.items():
        controller = pattern.controller
        assert isinstance(controller, KinesisController), name
        arn = template.to_json()["Resources"][stack.get_logical_id(
            controller.event_source_mapping.node.default_child)]["Properties"]["EventSourceArn"]
        if efo:
            assert arn == _get_att(stack, controller.consumer, "ConsumerARN"), name
        else:
            assert controller.consumer is None and arn == _get_att(stack, stream, "Arn"), name
    assert len(template.find_resources("AWS::Kinesis::StreamConsumer")) == 2
    counter_env = template.to_json()["Resources"][stack.get_logical_id(
        stack.counter.function.node.default_child)]["Properties"]["Environment"]["Variables"]
    assert counter_env["MARKER_RETENTION_SECONDS"] == str(72_000 + 86_400)  # 20 h age + 1 day


def test_synth_has_no_warning(example_app):
    artifact = example_app.synth().get_stack_by_name(NAME)
    warnings = [str(e.data) for e in artifact.find_metadata_by_type("aws:cdk:warning")]
    assert warnings == []
