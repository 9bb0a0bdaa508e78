"""Acknowledged cdk-nag findings, each with its reason, recorded where the resource is made.

Uses CDK's own ``Validations`` API, so the library needs no cdk-nag at run time; apps
that add ``AwsSolutionsChecks`` see these findings acknowledged, not hidden.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

__all__ = ["acknowledge"]


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (e.g. ``AwsSolutions-SQS3``) on ``construct``, with ``reason``."""
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))
