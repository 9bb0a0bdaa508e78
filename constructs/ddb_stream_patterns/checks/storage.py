"""S3 lifecycle transitions that small objects never make."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._model import PACK, Assembly, Finding, Rule, Template, as_list, text

__all__ = ["SMALL_OBJECTS", "CHECKS"]

DEFAULT_MINIMUM = "all_storage_classes_128K"
# With varies_by_storage_class, objects under 128 KB still transition to these two only.
SMALL_OBJECT_CLASSES = {"varies_by_storage_class": {"GLACIER", "DEEP_ARCHIVE"}}
TRANSITION_KEYS = (
    "Transitions",
    "Transition",
    "NoncurrentVersionTransitions",
    "NoncurrentVersionTransition",
)

SMALL_OBJECTS = Rule(
    f"{PACK}-S31",
    "Lifecycle transition that objects under 128 KB never make",
    "With TransitionDefaultMinimumObjectSize all_storage_classes_128K (what applies when it "
    "is not set), objects smaller than 128 KB do not transition to any storage class; with "
    "varies_by_storage_class they transition only to Glacier Flexible Retrieval or Deep "
    "Archive. Records written one batch or one failure at a time are usually that small: "
    "make objects larger, set ObjectSizeGreaterThan on the rule to state the intent, or "
    "acknowledge this finding if the objects are known to be large.",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/"
    "aws-properties-s3-bucket-lifecycleconfig.html",
)


def _failure_buckets(asm: Assembly) -> set[tuple[str, str]]:
    """Buckets that receive Lambda on-failure records (small by construction)."""
    buckets = set()
    for template in asm.templates.values():
        for _, props in template.properties_of("AWS::Lambda::EventSourceMapping"):
            config = props.get("DestinationConfig")
            on_failure = config.get("OnFailure") if isinstance(config, dict) else None
            if isinstance(on_failure, dict):
                ref = asm.target(template, on_failure.get("Destination"))
                if ref is not None and ref.type == "AWS::S3::Bucket":
                    buckets.add(ref.key)
    return buckets


def _blocked(lifecycle: dict[str, Any], minimum: str) -> list[str]:
    spared = SMALL_OBJECT_CLASSES.get(minimum, set())
    blocked: list[str] = []
    for rule in as_list(lifecycle.get("Rules")):
        if not isinstance(rule, dict) or rule.get("Status") != "Enabled":
            continue
        if "ObjectSizeGreaterThan" in rule or "ObjectSizeLessThan" in rule:
            continue  # a custom size filter takes precedence over the default
        for key in TRANSITION_KEYS:
            for transition in as_list(rule.get(key)):
                if not isinstance(transition, dict):
                    continue
                storage_class = text(transition.get("StorageClass"))
                if storage_class and storage_class not in spared and storage_class not in blocked:
                    blocked.append(storage_class)
    return blocked


def check_small_objects(asm: Assembly) -> Iterator[Finding]:
    failure_buckets = _failure_buckets(asm)
    for template in asm.templates.values():
        for logical_id, props in template.properties_of("AWS::S3::Bucket"):
            yield from _check_bucket(asm, template, logical_id, props, failure_buckets)


def _check_bucket(
    asm: Assembly,
    template: Template,
    logical_id: str,
    props: dict[str, Any],
    failure_buckets: set[tuple[str, str]],
) -> Iterator[Finding]:
    lifecycle = props.get("LifecycleConfiguration")
    if not isinstance(lifecycle, dict):
        return
    setting = lifecycle.get("TransitionDefaultMinimumObjectSize")
    minimum = DEFAULT_MINIMUM if setting is None else text(setting)
    if minimum is None:
        return  # an intrinsic: unknown until deploy
    blocked = _blocked(lifecycle, minimum)
    if not blocked:
        return
    why = " (it receives Lambda on-failure records, small by construction)" if (
        (template.name, logical_id) in failure_buckets
    ) else ""
    shown = minimum if setting is not None else f"not set, so {DEFAULT_MINIMUM}"
    yield asm.finding(
        SMALL_OBJECTS,
        template,
        logical_id,
        f"bucket {template.name_of(logical_id)}{why} transitions objects to "
        f"{', '.join(blocked)}, which objects under 128 KB never reach "
        f"(TransitionDefaultMinimumObjectSize {shown})",
        "Properties/LifecycleConfiguration",
    )


CHECKS = ((SMALL_OBJECTS, check_small_objects),)
