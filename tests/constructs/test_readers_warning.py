"""The stream-readers warning prints our message alone, and acknowledging it still works.

``Annotations.add_warning_v2`` stores a Node stack trace with the entry; the CDK CLI prints
its top frame (``/tmp/.../program.js:1:5591``) in front of the message.
"""

from __future__ import annotations

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_

from ddb_stream_patterns import SimpleController, StreamTable

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")
WARNING_ID = "ddb-stream-patterns:stream-readers"


def _three_readers(stack: cdk.Stack) -> list[SimpleController]:
    table = StreamTable(stack, "Table", partition_key=PK)
    return [SimpleController(stack, f"C{i}", table=table, code=CODE, handler="index.handler")
            for i in range(3)]


def _warnings(stack: cdk.Stack) -> list:
    artifact = stack.node.root.synth().get_stack_artifact(stack.artifact_id)
    return [e for e in artifact.find_metadata_by_type("aws:cdk:warning")
            if "stream readers" in str(e.data)]


def test_the_warning_carries_no_stack_trace_only_the_message(stack):
    controllers = _three_readers(stack)
    [warning] = _warnings(stack)
    assert warning.path == "/TestStack/C2"
    assert warning.data == (
        "table 'TestStack/Table' now has 3 stream readers (['TestStack/C0', 'TestStack/C1', "
        "'TestStack/C2']); more than 2 per shard get throttled: read the stream through one "
        f"StreamFanOut (source=fan_out), or accept the extra latency [ack: {WARNING_ID}]")
    assert not warning.trace  # nothing for the CLI to print in front of the message
    # The probe that asks CDK about acknowledgements leaves nothing behind.
    assert [c.node.id for c in controllers[2].node.children if "Probe" in c.node.id] == []


def test_acknowledging_on_the_controller_afterwards_removes_the_warning(stack):
    controllers = _three_readers(stack)
    cdk.Annotations.of(controllers[2]).acknowledge_warning(WARNING_ID, "latency accepted")
    assert _warnings(stack) == []


def test_acknowledging_on_the_stack_beforehand_adds_no_warning(stack):
    cdk.Annotations.of(stack).acknowledge_warning(WARNING_ID, "latency accepted")
    _three_readers(stack)
    assert _warnings(stack) == []


def test_an_acknowledgement_elsewhere_does_not_hide_it(stack):
    other = cdk.Stack(stack.node.root, "Other")
    cdk.Annotations.of(other).acknowledge_warning(WARNING_ID, "only there")
    _three_readers(stack)
    assert len(_warnings(stack)) == 1
