"""The rule pack's engine: synthesized templates in, findings out. Pure Python, no jsii.

A cloud assembly directory holds each stack's template and a metadata file that maps
construct paths to logical IDs and records acknowledgments
(``Validations.of(x).acknowledge(...)``). The rules read the templates; the engine
resolves references between resources (``Ref``, ``Fn::GetAtt``, ``Fn::ImportValue``
across stacks) and drops findings acknowledged on the resource or any ancestor.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "PACK",
    "Assembly",
    "Finding",
    "Ref",
    "Rule",
    "Template",
    "allows",
    "as_list",
    "boolean",
    "number",
    "policy_statements",
    "text",
]

PACK = "StreamPatterns"
ACKNOWLEDGED = "aws:cdk:acknowledged-rules"
LOGICAL_ID = "aws:cdk:logicalId"
UNKNOWN = "{?}"  # stands for an intrinsic inside text we can only partly read


@dataclass(frozen=True)
class Rule:
    """One rule: its id (``StreamPatterns-XXX``), what it flags, why, and the AWS page."""

    id: str
    title: str
    explanation: str
    doc_url: str


@dataclass(frozen=True)
class Finding:
    """One resource breaking one rule.

    ``message`` names the resource and the numbers; :meth:`describe` adds the rule's
    explanation and documentation link, as the validation report shows it.
    """

    rule: Rule
    template: str  # the template file name, e.g. ``MyStack.template.json``
    template_path: str  # absolute path of that file
    logical_id: str
    message: str
    location: str = "Properties"
    path: str | None = None  # construct path, when the metadata maps the logical ID
    acknowledgment: str | None = None  # the reason, when acknowledged

    @property
    def rule_id(self) -> str:
        return self.rule.id

    @property
    def stack(self) -> str:
        return self.template.removesuffix(".template.json")

    def describe(self) -> str:
        return (
            f"{self.rule.id}: {self.message}. {self.rule.explanation} "
            f"See {self.rule.doc_url}"
        )

    def __str__(self) -> str:
        return f"[{self.rule.id}] {self.path or self.logical_id}: {self.message}"


@dataclass
class Template:
    """One synthesized stack template, with its logical ID -> construct path map."""

    name: str
    path: Path
    body: dict[str, Any]
    construct_paths: dict[str, str] = field(default_factory=dict)
    stack_path: str | None = None  # the stack's construct path, e.g. ``Stage/MyStack``

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources = self.body.get("Resources")
        return resources if isinstance(resources, dict) else {}

    def of_type(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if isinstance(resource, dict) and resource.get("Type") in types:
                yield logical_id, resource

    def properties_of(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(logical ID, Properties)`` of every resource of ``types``."""
        for logical_id, resource in self.of_type(*types):
            yield logical_id, props(resource)

    def name_of(self, logical_id: str) -> str:
        """What users call ``logical_id``: its construct path inside the stack (without
        a final ``/Resource``) when the metadata maps it, else the logical ID."""
        path = self.construct_paths.get(logical_id)
        if path is None:
            return logical_id
        if self.stack_path and path.startswith(self.stack_path + "/"):
            path = path[len(self.stack_path) + 1 :]
        return path.removesuffix("/Resource")


@dataclass(frozen=True)
class Ref:
    """A resource some value points at: ``Ref`` (attribute ``None``) or ``Fn::GetAtt``."""

    template: Template
    logical_id: str
    attribute: str | None

    @property
    def resource(self) -> dict[str, Any]:
        return self.template.resources[self.logical_id]

    @property
    def type(self) -> str:
        return str(self.resource.get("Type", ""))

    @property
    def properties(self) -> dict[str, Any]:
        return props(self.resource)

    @property
    def key(self) -> tuple[str, str]:
        return (self.template.name, self.logical_id)

    @property
    def name(self) -> str:
        return self.template.name_of(self.logical_id)


def props(resource: Mapping[str, Any]) -> dict[str, Any]:
    properties = resource.get("Properties")
    return properties if isinstance(properties, dict) else {}


def text(value: Any) -> str | None:
    """The literal text of ``value``: strings as they are, ``Fn::Join``/``Fn::Sub``
    with every intrinsic part as ``{?}``; ``None`` for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
            delimiter, parts = arg
            if isinstance(delimiter, str) and isinstance(parts, list):
                return delimiter.join(
                    part if isinstance(part, str) else (text(part) or UNKNOWN) for part in parts
                )
        if fn == "Fn::Sub":
            template = arg[0] if isinstance(arg, list) and arg else arg
            if isinstance(template, str):
                return re.sub(r"\$\{[^}]*\}", UNKNOWN, template)
    return None


def number(value: Any) -> float | None:
    """A number from a template value (``5`` or ``"5"``); ``None`` for intrinsics."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def policy_statements(document: Any) -> list[dict[str, Any]]:
    """The statements of a policy document given as an object or a JSON string."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    if not isinstance(document, dict):
        return []
    return [s for s in as_list(document.get("Statement")) if isinstance(s, dict)]


def _names_principal(statement: Mapping[str, Any], service: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if "*" in as_list(principal.get("AWS")):
        return True
    return service in as_list(principal.get("Service"))


def _names_action(statement: Mapping[str, Any], action: str) -> bool:
    return any(
        isinstance(pattern, str) and fnmatch.fnmatch(action.lower(), pattern.lower())
        for pattern in as_list(statement.get("Action"))
    )


def allows(document: Any, service: str, action: str) -> bool:
    """Whether an ``Allow`` statement of ``document`` names the ``service`` principal (or
    ``*``) and ``action`` (wildcards honoured). Conditions are not evaluated: scoping a
    grant with ``aws:SourceAccount``/``aws:SourceArn`` is what AWS recommends."""
    return any(
        statement.get("Effect") == "Allow"
        and _names_principal(statement, service)
        and _names_action(statement, action)
        for statement in policy_statements(document)
    )


class Assembly:
    """The templates of one app (every stack, across stages), ready for the rules."""

    def __init__(
        self,
        templates: Iterable[Template],
        acknowledgments: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.templates: dict[str, Template] = {t.name: t for t in templates}
        # construct path (no leading slash) -> {acknowledged id as recorded: reason}
        self.acknowledgments: dict[str, dict[str, str]] = {
            path: dict(ids) for path, ids in (acknowledgments or {}).items()
        }
        self.exports: dict[str, tuple[Template, Any]] = {}
        for template in self.templates.values():
            outputs = template.body.get("Outputs")
            for output in (outputs or {}).values() if isinstance(outputs, dict) else ():
                export = output.get("Export") if isinstance(output, dict) else None
                name = text(export.get("Name")) if isinstance(export, dict) else None
                if name and UNKNOWN not in name:
                    self.exports[name] = (template, output.get("Value"))

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def from_directory(cls, directory: str | Path) -> Assembly:
        """Every stack of the cloud assembly in ``directory``, nested stages included."""
        templates: list[Template] = []
        acknowledgments: dict[str, dict[str, str]] = {}
        for stack_dir, artifact in _stack_artifacts(Path(directory)):
            cls._load(stack_dir, artifact, templates, acknowledgments)
        return cls(templates, acknowledgments)

    @classmethod
    def from_template_paths(
        cls,
        template_paths: Iterable[str | Path],
        acknowledgments: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Assembly:
        """The given templates (as a validation plugin receives them), with the metadata
        their assembly's manifest records for them."""
        wanted = [Path(p) for p in template_paths]
        templates: list[Template] = []
        found: dict[str, dict[str, str]] = {
            path: dict(ids) for path, ids in (acknowledgments or {}).items()
        }
        loaded: set[Path] = set()
        for directory in dict.fromkeys(p.parent for p in wanted):
            names = {p.name for p in wanted if p.parent == directory}
            for stack_dir, artifact in _stack_artifacts(directory, recurse=False):
                if artifact["properties"].get("templateFile") in names:
                    loaded.add(stack_dir / artifact["properties"]["templateFile"])
                    cls._load(stack_dir, artifact, templates, found)
        for path in wanted:  # templates the manifest does not describe: no metadata
            if path not in loaded:
                templates.append(Template(path.name, path, json.loads(path.read_text())))
        return cls(templates, found)

    @staticmethod
    def _load(
        directory: Path,
        artifact: Mapping[str, Any],
        templates: list[Template],
        acknowledgments: dict[str, dict[str, str]],
    ) -> None:
        path = directory / artifact["properties"]["templateFile"]
        metadata = artifact.get("metadata") or {}
        extra = artifact.get("additionalMetadataFile")
        if extra and (directory / extra).exists():
            metadata = {**metadata, **json.loads((directory / extra).read_text())}
        construct_paths: dict[str, str] = {}
        for construct_path, entries in metadata.items():
            for entry in entries if isinstance(entries, list) else ():
                kind, data = entry.get("type"), entry.get("data")
                if kind == LOGICAL_ID and isinstance(data, str):
                    construct_paths[data] = construct_path.lstrip("/")
                elif kind == ACKNOWLEDGED and isinstance(data, dict):
                    acknowledgments.setdefault(construct_path.lstrip("/"), {}).update(data)
        stack_path = artifact.get("displayName")
        templates.append(
            Template(
                path.name,
                path,
                json.loads(path.read_text()),
                construct_paths,
                stack_path if isinstance(stack_path, str) else None,
            )
        )

    # -- references ------------------------------------------------------------------------

    def target(self, template: Template, value: Any, _depth: int = 0) -> Ref | None:
        """The resource ``value`` points at, following ``Fn::ImportValue`` across stacks."""
        if not isinstance(value, dict) or len(value) != 1 or _depth > 5:
            return None
        ((fn, arg),) = value.items()
        if fn == "Ref" and isinstance(arg, str) and arg in template.resources:
            return Ref(template, arg, None)
        if fn == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else arg
            if (
                isinstance(parts, list)
                and len(parts) == 2
                and isinstance(parts[0], str)
                and parts[0] in template.resources
                and isinstance(parts[1], str)
            ):
                return Ref(template, parts[0], parts[1])
        if fn == "Fn::ImportValue":
            name = text(arg)
            if name in self.exports:
                exporter, exported = self.exports[name]
                return self.target(exporter, exported, _depth + 1)
        return None

    def function(self, template: Template, value: Any) -> Ref | None:
        """The ``AWS::Lambda::Function`` behind a function name, alias or version."""
        ref = self.target(template, value)
        for _ in range(3):
            if ref is None or ref.type == "AWS::Lambda::Function":
                return ref
            if ref.type not in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
                return None
            ref = self.target(ref.template, ref.properties.get("FunctionName"))
        return None

    # -- findings --------------------------------------------------------------------------

    def finding(
        self,
        rule: Rule,
        template: Template,
        logical_id: str,
        message: str,
        location: str = "Properties",
    ) -> Finding:
        return Finding(
            rule=rule,
            template=template.name,
            template_path=str(template.path),
            logical_id=logical_id,
            message=message,
            location=location,
            path=template.construct_paths.get(logical_id),
        )

    def acknowledgment(
        self, finding: Finding, namespaces: Iterable[str] = ("", "annotation")
    ) -> str | None:
        """The reason ``finding`` was acknowledged with, on its construct or an ancestor.

        Acknowledged ids are recorded as ``Annotation::StreamPatterns-XXX`` (the form
        ``Validations.of(x).acknowledge(id="StreamPatterns-XXX")`` writes) or under the
        plugin's namespace, ``StreamPatterns::StreamPatterns-XXX``; ``namespaces`` says
        which prefixes (lowercase, ``""`` for none) count.
        """
        if finding.path is None:
            return None
        wanted = {n.lower() for n in namespaces}
        segments = finding.path.split("/")
        for depth in range(len(segments), -1, -1):
            recorded_here = self.acknowledgments.get("/".join(segments[:depth]), {})
            for recorded, reason in recorded_here.items():
                namespace, _, rule_id = recorded.rpartition("::")
                if rule_id == finding.rule_id and namespace.lower() in wanted:
                    return str(reason)
        return None


def _stack_artifacts(
    directory: Path, recurse: bool = True
) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    manifest_file = directory / "manifest.json"
    if not manifest_file.exists():
        return
    manifest = json.loads(manifest_file.read_text())
    for artifact in (manifest.get("artifacts") or {}).values():
        kind = artifact.get("type")
        properties = artifact.get("properties") or {}
        if kind == "aws:cloudformation:stack" and properties.get("templateFile"):
            yield directory, artifact
        elif kind == "cdk:cloud-assembly" and recurse and properties.get("directoryName"):
            yield from _stack_artifacts(directory / properties["directoryName"])


CheckFunction = Callable[[Assembly], Iterable[Finding]]


def run(
    assembly: Assembly,
    checks: Iterable[tuple[Rule, CheckFunction]],
    namespaces: Iterable[str] = ("", "annotation"),
) -> list[Finding]:
    """Every finding of ``checks`` on ``assembly``, each with its acknowledgment if any.

    A rule that fails on an unexpected template shape is itself a finding (as in
    cdk-nag), so a bug never hides a stack from the pack silently.
    """
    namespaces = tuple(namespaces)
    findings: list[Finding] = []
    for rule, check in checks:
        try:
            found = list(check(assembly))
        except Exception as error:  # reported as a finding, never swallowed
            template = next(iter(assembly.templates.values()), None)
            if template is None:
                raise
            found = [
                assembly.finding(
                    rule, template, "*", f"the rule could not evaluate the app: {error!r}"
                )
            ]
        for finding in found:
            reason = assembly.acknowledgment(finding, namespaces)
            findings.append(replace(finding, acknowledgment=reason) if reason else finding)
    return findings
