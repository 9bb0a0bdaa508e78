"""Helpers for testing stacks built with these constructs (shipped in the wheel).

* :func:`snapshot_template`: a stack's template, ready for a snapshot: asset hashes,
  staging keys and asset paths masked, so it is the same on every machine and from every
  working directory, and a code edit does not churn it;
* :func:`mask_assets`: the masking alone, for a template you already have;
* :func:`resources_of`: the resources a construct created, by construct path;
* the local-cloud pytest helpers (``local_cloud``, ``deploy_app``, ``run_pollers``,
  ``describe_errors``), imported from ``ddb_stream_patterns.local`` on first use (they need
  the ``local`` extra: ``pip install "cdk-ddb-stream-patterns[local]"``).

Example
-------
>>> from ddb_stream_patterns.testing import resources_of, snapshot_template
>>> def test_orders(snapshot):
...     stack = OrdersStack(cdk.App(), "Orders")
...     assert snapshot_template(stack) == snapshot
...     [mapping] = resources_of(stack, stack.notifier, "AWS::Lambda::EventSourceMapping")
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aws_cdk as cdk
    from constructs import IConstruct

    from .local.pytest_plugin import deploy_app, describe_errors, local_cloud, run_pollers

__all__ = [
    "ASSET_HASH_MARKER",
    "mask_assets",
    "snapshot_template",
    "resources_of",
    "local_cloud",
    "deploy_app",
    "run_pollers",
    "describe_errors",
]

ASSET_HASH_MARKER = "<asset-hash>"
ASSET_PATH_MARKER = "<asset-path>"

# An asset's hash (64 hex digits) is in its S3 key ("<hash>.zip"), its staging directory
# ("asset.<hash>") and its metadata; it changes with any edit of the asset's files.
_ASSET_HASH = re.compile(r"[0-9a-f]{64}")
# Metadata keys whose values are local paths (only present with asset metadata on).
_PATH_KEYS = frozenset({"aws:asset:path"})

_LOCAL_HELPERS = frozenset({"local_cloud", "deploy_app", "run_pollers", "describe_errors"})


def mask_assets(value: Any) -> Any:
    """Replace every asset hash in a template (any JSON value) with ``<asset-hash>`` and
    every local asset path with ``<asset-path>``; returns a new value."""
    if isinstance(value, dict):
        return {
            k: ASSET_PATH_MARKER if k in _PATH_KEYS and isinstance(v, str) else mask_assets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_assets(v) for v in value]
    if isinstance(value, str):
        return _ASSET_HASH.sub(ASSET_HASH_MARKER, value)
    return value


def snapshot_template(stack: cdk.Stack) -> dict[str, Any]:
    """``Template.from_stack(stack).to_json()`` with :func:`mask_assets` applied."""
    from aws_cdk.assertions import Template

    return mask_assets(Template.from_stack(stack).to_json())


def resources_of(
    stack: cdk.Stack,
    construct: IConstruct,
    type: str | None = None,
    template: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The resources of ``stack``'s template created under ``construct`` (its construct
    path, the construct itself included), optionally of one CloudFormation ``type``.

    Each is the template's resource dict plus ``"LogicalId"``, in construct-tree order.
    Give ``template`` (e.g. a :func:`snapshot_template`) to avoid synthesizing again.
    """
    import aws_cdk as cdk

    if template is None:
        from aws_cdk.assertions import Template

        template = Template.from_stack(stack).to_json()
    resources = template.get("Resources", {})
    found: list[dict[str, Any]] = []
    for child in construct.node.find_all():
        if not isinstance(child, cdk.CfnResource) or cdk.Stack.of(child) is not stack:
            continue
        logical_id = stack.resolve(stack.get_logical_id(child))
        resource = resources.get(logical_id)
        if resource is not None and (type is None or resource.get("Type") == type):
            found.append({"LogicalId": logical_id, **resource})
    return found


def __getattr__(name: str) -> Any:
    # The local cloud needs pytest and the `local` extra: import it only when asked for.
    if name in _LOCAL_HELPERS:
        from .local import pytest_plugin

        return getattr(pytest_plugin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
