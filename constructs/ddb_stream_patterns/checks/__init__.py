"""StreamPatternsChecks: a rule pack for stream-processing pitfalls, for any CDK app.

It is a ``cdk.Validations`` plugin, registered like cdk-nag 3's packs; findings make
synth fail with a validation report, and are acknowledged the same way::

    import aws_cdk as cdk
    from ddb_stream_patterns import StreamPatternsChecks

    app = cdk.App()
    cdk.Validations.of(app).add_plugins(StreamPatternsChecks())
    ...
    cdk.Validations.of(table).acknowledge(
        cdk.Acknowledgment(id="StreamPatterns-DDB1", reason="why this is fine here")
    )

The rules read the synthesized templates in Python (one call from the CDK per synth, no
walk of the construct tree through jsii). :func:`check_assembly` runs the same rules on
an already synthesized cloud assembly, e.g. in tests.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from constructs import IConstruct

from . import alarms, queues, search, storage, streams
from ._model import PACK, Assembly, Finding, Rule, run

__all__ = ["RULES", "Finding", "Rule", "StreamPatternsChecks", "check_assembly"]

CHECKS = (
    *streams.CHECKS,
    *alarms.CHECKS,
    *queues.CHECKS,
    *storage.CHECKS,
    *search.CHECKS,
)
RULES: tuple[Rule, ...] = tuple(rule for rule, _ in CHECKS)

@cache
def _version() -> str:
    """The installed package's version, looked up on first use: ``importlib.metadata``
    costs tens of milliseconds to import and scan, in every app's ``cdk synth``."""
    from importlib import metadata

    try:
        return metadata.version("cdk-ddb-stream-patterns")
    except metadata.PackageNotFoundError:  # running from a checkout
        return "0.0.0"


def check_assembly(
    assembly: cdk.cx_api.CloudAssembly | str | Path, *, include_acknowledged: bool = False
) -> list[Finding]:
    """Run every rule on a synthesized cloud assembly (an ``app.synth()`` result or its
    directory) and return the findings, acknowledged ones only if asked.

    Acknowledgments recorded on a stack or anything in it count, in every form the CDK
    records them (``StreamPatterns-DDB1``, ``StreamPatterns::StreamPatterns-DDB1``); those
    on the ``App`` or a ``Stage`` itself are not in the assembly: use the plugin for them.
    """
    directory = assembly if isinstance(assembly, str | Path) else assembly.directory
    findings = run(
        Assembly.from_directory(directory), CHECKS, namespaces=("", "annotation", PACK)
    )
    return [f for f in findings if include_acknowledged or f.acknowledgment is None]


@jsii.implements(cdk.IPolicyValidationPlugin)
class StreamPatternsChecks:
    """The rule pack as a validation plugin: ``cdk.Validations.of(app).add_plugins(...)``.

    Each finding is an error in the synth's validation report, naming the rule
    (``StreamPatterns-XXX``), the resource, the numbers, why it matters and the AWS page
    that says so. Acknowledge a finding on the resource or any construct above it with
    ``cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=..., reason=...))``;
    the id is the rule id (as for cdk-nag), or the report's suggested
    ``StreamPatterns::StreamPatterns-XXX``.
    """

    @property
    def name(self) -> str:
        return PACK

    @property
    def version(self) -> str:
        return _version()

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in RULES]

    def validate(self, context: cdk.IPolicyValidationContext) -> cdk.PolicyValidationPluginReport:
        stacks = list(context.stack_templates)
        acknowledgments = _outer_acknowledgments(
            context.app_construct, [s.stack_construct_path for s in stacks]
        )
        assembly = Assembly.from_template_paths([s.template_path for s in stacks], acknowledgments)
        # The CDK itself applies acknowledgments under this plugin's namespace
        # (StreamPatterns::...) and lists them in the report: leave those to it.
        findings = run(assembly, CHECKS, namespaces=("", "annotation"))
        findings = [f for f in findings if f.acknowledgment is None]
        violations = [
            cdk.PolicyViolation(
                rule_name=f.rule_id,
                description=f.describe(),
                fix=f.rule.doc_url,
                severity="error",
                violating_resources=[
                    cdk.PolicyViolatingResource(
                        resource_logical_id=f.logical_id,
                        template_path=f.template_path,
                        locations=[f.location],
                    )
                ],
            )
            for f in findings
        ]
        return cdk.PolicyValidationPluginReport(
            success=not violations, violations=violations, plugin_version=self.version
        )


def _outer_acknowledgments(app: IConstruct, stack_paths: list[str]) -> dict[str, dict[str, str]]:
    """Acknowledgments on the App and Stages above the stacks: the assembly's metadata
    files cover the stacks and what is in them, not their ancestors. A few jsii calls."""
    found: dict[str, dict[str, str]] = {}
    outer = {""} | {
        "/".join(path.split("/")[:depth])
        for path in stack_paths
        for depth in range(1, len(path.split("/")))
    }
    for path in sorted(outer):
        construct: Any = app
        for segment in path.split("/") if path else ():
            construct = construct.node.try_find_child(segment) if construct else None
        if construct is None:
            continue
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY and isinstance(
                entry.data, dict
            ):
                found.setdefault(path, {}).update(entry.data)
    return found
