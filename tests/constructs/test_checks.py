"""StreamPatternsChecks: each rule on a failing and a passing stack, acknowledgments, the
plugin inside synth, and the example app.

The fixture stacks (``checks_fixtures.py``) share one synth; the rules then run on the
assembly in Python (``check_assembly``), as the plugin does inside ``app.synth()``.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import aws_cdk as cdk
import pytest

from ddb_stream_patterns import StreamPatternsChecks
from ddb_stream_patterns.checks import RULES, Finding, check_assembly
from tests.examples.conftest import load_module
from tests.support import REPO

from . import checks_fixtures as fx

PASSING = [
    "Readers-Pass",
    "Readers-CrossStack",  # its readers' finding lands on the table, in Readers-Table
    "Mapping-Pass",
    "Alarms-Pass",
    "Queues-Pass",
    "Buckets-Pass",
    "Search-Pass",
    "Search-NoPolicy",
]


@pytest.fixture(scope="module")
def assembly(tmp_path_factory):
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("checks")))
    return fx.build(app).synth()


@pytest.fixture(scope="module")
def findings(assembly) -> list[Finding]:
    return check_assembly(assembly, include_acknowledged=True)


def found(findings: list[Finding], stack: str, rule: str | None = None) -> list[Finding]:
    """Unacknowledged findings in ``stack`` (of ``rule``), sorted by resource."""
    return sorted(
        (
            f
            for f in findings
            if f.stack == stack and f.acknowledgment is None and rule in (None, f.rule_id)
        ),
        key=lambda f: f.logical_id,
    )


def logical_ids(assembly, stack: str, resource_type: str) -> list[str]:
    template = assembly.get_stack_by_name(stack).template
    return sorted(k for k, r in template["Resources"].items() if r["Type"] == resource_type)


def test_rules_follow_cdk_nag_conventions():
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids)) == 12
    for rule in RULES:
        assert re.fullmatch(r"StreamPatterns-[A-Z0-9]+", rule.id)
        assert rule.doc_url.startswith("https://docs.aws.amazon.com/")
        assert len(rule.explanation) > 80
    assert StreamPatternsChecks().rule_ids == ids
    assert StreamPatternsChecks().name == "StreamPatterns"


@pytest.mark.parametrize("stack", PASSING)
def test_passing_fixture_has_no_finding(assembly, findings, stack):
    assert assembly.get_stack_by_name(stack).template["Resources"]
    assert found(findings, stack) == []


# -- DDB1 ---------------------------------------------------------------------------------


def test_three_readers_on_a_stream_are_flagged_on_the_table(assembly, findings):
    [table] = logical_ids(assembly, "Readers-Fail", "AWS::DynamoDB::Table")
    assert len(logical_ids(assembly, "Readers-Fail", "AWS::Lambda::EventSourceMapping")) == 2
    assert len(logical_ids(assembly, "Readers-Fail", "AWS::Pipes::Pipe")) == 1
    [finding] = found(findings, "Readers-Fail")
    assert (finding.rule_id, finding.logical_id) == ("StreamPatterns-DDB1", table)
    assert finding.path == "Readers-Fail/Table/Resource"
    assert "table Table has 3 readers" in finding.message
    assert "function First" in finding.message and "Pipe" in finding.message


def test_readers_in_another_stack_count_through_import_value(assembly, findings):
    consumer = assembly.get_stack_by_name("Readers-CrossStack").template
    mappings = [
        r for r in consumer["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert len(mappings) == 3
    assert all("Fn::ImportValue" in m["Properties"]["EventSourceArn"] for m in mappings)
    [finding] = found(findings, "Readers-Table")
    assert finding.rule_id == "StreamPatterns-DDB1"
    assert "3 readers" in finding.message and "Readers-CrossStack" not in finding.message


def test_readers_of_an_imported_stream_are_each_flagged(assembly, findings):
    mappings = logical_ids(assembly, "Readers-Imported", "AWS::Lambda::EventSourceMapping")
    flagged = found(findings, "Readers-Imported", "StreamPatterns-DDB1")
    assert [f.logical_id for f in flagged] == mappings and len(mappings) == 3
    assert all(fx.IMPORTED_STREAM in f.message and "3 readers" in f.message for f in flagged)


# -- ESM1-4 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("StreamPatterns-ESM1", "retries a failed batch without limit"),
        ("StreamPatterns-ESM2", "has no maximum record age"),
        ("StreamPatterns-ESM3", "has no on-failure destination"),
        ("StreamPatterns-ESM4", "neither splits failing batches"),
    ],
)
def test_stream_mapping_defaults_are_flagged(findings, rule, says):
    flagged = found(findings, "Mapping-Fail", rule)
    assert [f.logical_id for f in flagged] == ["DynamoMapping", "KinesisMapping"]
    assert [f.message.split(" ")[0] for f in flagged] == ["DynamoDB", "Kinesis"]
    assert all(says in f.message and f.path.startswith("Mapping-Fail/") for f in flagged)


def test_mapping_fail_has_only_the_four_mapping_rules(findings):
    counts = Counter(f.rule_id for f in found(findings, "Mapping-Fail"))
    assert counts == {f"StreamPatterns-ESM{i}": 2 for i in range(1, 5)}


# -- SNS1 ---------------------------------------------------------------------------------


def test_alarm_topics_cloudwatch_cannot_publish_to_are_flagged(assembly, findings):
    topics = logical_ids(assembly, "Alarms-Fail", "AWS::SNS::Topic")
    flagged = {f.path.split("/")[1]: f for f in found(findings, "Alarms-Fail")}
    assert sorted(f.logical_id for f in flagged.values()) == topics
    assert {f.rule_id for f in flagged.values()} == {"StreamPatterns-SNS1"}
    assert "encrypted with the AWS managed key (alias/aws/sns)" in flagged["ManagedKeyTopic"].message
    assert (
        "the policy of its key Key does not allow cloudwatch.amazonaws.com "
        "kms:GenerateDataKey* and kms:Decrypt" in flagged["UngrantedKeyTopic"].message
    )
    assert (
        "its topic policy TlsOnlyTopic/Policy does not allow cloudwatch.amazonaws.com to sns:Publish"
        in flagged["TlsOnlyTopic"].message
    )
    assert "alarms (TlsOnlyAlarm) notify topic TlsOnlyTopic" in flagged["TlsOnlyTopic"].message


# -- SQS1-4 ---------------------------------------------------------------------------------


def test_lambda_polled_queue_rules(assembly, findings):
    by_rule = {f.rule_id: f for f in found(findings, "Queues-Fail")}
    assert sorted(by_rule) == [f"StreamPatterns-SQS{i}" for i in range(1, 5)]
    assert by_rule["StreamPatterns-SQS1"].path == "Queues-Fail/Work/Resource"
    assert "after 3 receives (maxReceiveCount), below 5" in by_rule["StreamPatterns-SQS1"].message
    assert by_rule["StreamPatterns-SQS2"].path == "Queues-Fail/Work/Resource"
    assert "120 s, under 6 x the 60 s timeout of its function Worker (360 s)" in (
        by_rule["StreamPatterns-SQS2"].message
    )
    assert by_rule["StreamPatterns-SQS3"].path == "Queues-Fail/WorkDlq/Resource"
    assert "keeps messages 345600 s, not longer than the 345600 s of its source queue Work" in (
        by_rule["StreamPatterns-SQS3"].message
    )
    assert by_rule["StreamPatterns-SQS4"].path == "Queues-Fail/Worker/Resource"
    assert "reserves 2 concurrent executions but its SQS event sources may run 5" in (
        by_rule["StreamPatterns-SQS4"].message
    )


# -- S31 ----------------------------------------------------------------------------------


def test_transitions_small_objects_never_make_are_flagged(assembly, findings):
    buckets = logical_ids(assembly, "Buckets-Fail", "AWS::S3::Bucket")
    flagged = {f.path.split("/")[1]: f for f in found(findings, "Buckets-Fail")}
    assert sorted(f.logical_id for f in flagged.values()) == buckets
    assert {f.rule_id for f in flagged.values()} == {"StreamPatterns-S31"}
    assert "to GLACIER_IR" in flagged["Archive"].message
    assert "(TransitionDefaultMinimumObjectSize not set, so all_storage_classes_128K)" in (
        flagged["Archive"].message
    )
    assert "to STANDARD_IA" in flagged["Varies"].message
    assert "varies_by_storage_class" in flagged["Varies"].message
    assert "receives Lambda on-failure records" in flagged["Failures"].message
    assert "on-failure" not in flagged["Archive"].message


# -- OS1 ----------------------------------------------------------------------------------


def test_domain_not_waiting_for_its_log_policy_is_flagged(assembly, findings):
    domain = assembly.get_stack_by_name("Search-Fail").template["Resources"]["Domain"]
    assert domain["Properties"]["LogPublishingOptions"] and "DependsOn" not in domain
    waiting = assembly.get_stack_by_name("Search-Pass").template["Resources"]["Domain"]
    assert [d[: len("LogsPolicy")] for d in waiting["DependsOn"]] == ["LogsPolicy"]
    [finding] = found(findings, "Search-Fail")
    assert (finding.rule_id, finding.logical_id, finding.location) == (
        "StreamPatterns-OS1",
        "Domain",
        "DependsOn",
    )
    assert "does not depend on the resource policy granting es.amazonaws.com (LogsPolicy" in (
        finding.message
    )


# -- acknowledgments ----------------------------------------------------------------------


def test_acknowledgments_suppress_their_findings_only(findings):
    # The same resources as Queues-Fail, whose four findings stand unacknowledged.
    assert len(found(findings, "Queues-Fail")) == 4
    assert found(findings, "Acknowledged") == []
    acknowledged = {f.rule_id: f.acknowledgment for f in findings if f.stack == "Acknowledged"}
    assert acknowledged == fx.Acknowledged.REASONS


def test_check_assembly_leaves_out_acknowledged_findings(assembly):
    shown = check_assembly(assembly.directory)
    assert shown and not any(f.stack == "Acknowledged" for f in shown)
    assert all(f.acknowledgment is None for f in shown)


def test_every_failing_fixture_fails_and_every_rule_fires(findings):
    fired = {f.rule_id for f in findings if f.acknowledgment is None}
    assert fired == {rule.id for rule in RULES}


# -- the plugin, inside synth -------------------------------------------------------------


def plugin_app(outdir) -> cdk.App:
    app = cdk.App(outdir=str(outdir))
    cdk.Validations.of(app).add_plugins(StreamPatternsChecks())
    return app


def test_plugin_findings_make_synth_fail_with_a_report(tmp_path):
    app = plugin_app(tmp_path)
    fx.QueuesFail(app, "Queues-Fail")
    fx.Acknowledged(app, "Acknowledged")
    with pytest.raises(RuntimeError, match="ValidationFailed") as raised:
        app.synth()
    assert "StreamPatterns-SQS1: Lambda-polled queue Work" in str(raised.value)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    [ours] = [r for r in report["pluginReports"] if r["pluginName"] == "StreamPatterns"]
    assert ours["conclusion"] == "failure"
    violations = {v["ruleName"]: v for v in ours["violations"]}
    assert sorted(violations) == [f"StreamPatterns-SQS{i}" for i in range(1, 5)]
    for rule, violation in violations.items():
        [resource] = violation["violatingConstructs"]
        assert resource["constructPath"].startswith("Queues-Fail/")
        assert violation["description"].startswith(f"{rule}: ")
        assert violation["suggestedFix"] in violation["description"]
        assert violation["severity"] == "error"
    # Acknowledged in the plugin's namespace: the CDK itself suppresses and records it.
    [suppressed] = ours["suppressedViolations"]
    assert suppressed["ruleName"] == "StreamPatterns-SQS3"
    assert suppressed["reason"] == fx.Acknowledged.REASONS["StreamPatterns-SQS3"]
    assert suppressed["violatingConstructs"][0]["constructPath"] == "Acknowledged/WorkDlq/Resource"


def test_plugin_honours_acknowledgments_up_to_the_app_and_stages(tmp_path):
    app = plugin_app(tmp_path)
    fx.Acknowledged(app, "Acknowledged")
    fx.AlarmsFail(app, "Alarms-Fail")
    fx.acknowledge(app, "StreamPatterns-SNS1", "acknowledged on the App for every alarm topic")
    stage = cdk.Stage(app, "Prod")
    fx.QueuesFail(stage, "Queues")
    for i in range(1, 5):
        fx.acknowledge(stage, f"StreamPatterns-SQS{i}", "acknowledged on the stage, above the stack")
    assembly = app.synth()  # raises on any unacknowledged finding
    nested = assembly.get_nested_assembly("assembly-Prod")
    assert [s.stack_name for s in nested.stacks] == ["Prod-Queues"]
    # Without the plugin's view of the App and Stage, the same app has findings.
    assert {f.rule_id for f in check_assembly(assembly)} == {
        "StreamPatterns-SNS1",
        *(f"StreamPatterns-SQS{i}" for i in range(1, 5)),
    }


# -- the example app ------------------------------------------------------------------------


def test_example_app_has_no_finding_and_acknowledges_only_what_it_must(tmp_path):
    example = load_module(REPO / "examples" / "app.py", "example_app_for_checks")
    assembly = example.build_app(cdk.App(outdir=str(tmp_path))).synth()
    every = check_assembly(assembly, include_acknowledged=True)
    acknowledged = sorted((f.rule_id, f.path) for f in every if f.acknowledgment is not None)
    # The rules did run on the example (this finding exists), and it is acknowledged in
    # examples/app.py with its reason; nothing else is found. The todo table's stream has one
    # reader (its StreamFanOut), so there is no DDB1 finding to acknowledge any more.
    assert acknowledged == [
        ("StreamPatterns-S31", "DdbStreamPatterns-DataPatterns/ExpiredTasks/ArchiveBucket/Resource"),
    ]
    assert check_assembly(assembly) == []
