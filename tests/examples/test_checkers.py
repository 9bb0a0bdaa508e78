"""The checkers the field uses, over every example stack: cdk-nag AwsSolutions and cfn-lint.

Findings the library accepts are acknowledged where the resource is made, each with a
reason (see ``ddb_stream_patterns._nag``); anything else fails these tests.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, lint

from ddb_stream_patterns import StreamPatternsChecks

from .test_app import STACKS


@pytest.fixture(scope="module")
def nagged_assembly(example_app_module, tmp_path_factory):
    """The example app under AwsSolutionsChecks and StreamPatternsChecks: findings raise."""
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("nag")))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), StreamPatternsChecks())
    example_app_module.build_app(app)
    return app.synth()


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(nagged_assembly):
    assert sorted(s.stack_name for s in nagged_assembly.stacks) == sorted(STACKS)


def test_every_acknowledgment_has_a_specific_reason(example_app):
    acknowledgments = {}  # "Annotation::AwsSolutions-XX" -> reason, per construct
    for construct in example_app.node.find_all():
        for entry in construct.node.metadata:
            if "acknowledge" in entry.type.lower() and isinstance(entry.data, dict):
                acknowledgments.update(
                    {f"{construct.node.path} {rule}": reason for rule, reason in entry.data.items()}
                )
    assert any("AwsSolutions-SQS3" in key for key in acknowledgments)
    for key, reason in acknowledgments.items():
        assert "AwsSolutions-" in key or "StreamPatterns-" in key
        assert len(reason) >= 40, f"reason too thin for {key}: {reason!r}"


@pytest.mark.parametrize("name", STACKS)
def test_cfn_lint_has_no_error_or_warning(example_app, name):
    template = example_app.synth().get_stack_by_name(name).template
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    findings = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches]
    assert findings == []
