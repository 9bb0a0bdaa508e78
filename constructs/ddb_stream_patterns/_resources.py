"""Secure defaults for the supporting resources every pattern creates (queues, buckets, logs).

Pure functions returning props, merged with user overrides by the caller, in the manner
of AWS Solutions Constructs' ``*-defaults.ts``.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_logs as logs
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sqs as sqs

from constructs import Construct

__all__ = ["secure_queue", "secure_bucket", "function_log_group", "struct_values"]


def struct_values(struct: Any) -> dict[str, Any]:
    """The props set on a jsii struct (e.g. ``lambda_.FunctionOptions``), as keyword arguments.

    jsii structs keep exactly the fields the user set in ``_values``; there is no public
    accessor, and iterating the class's properties would also yield the unset ``None`` ones.
    """
    return dict(struct._values) if struct is not None else {}


def secure_queue(
    scope: Construct, id: str, *, removal_policy: cdk.RemovalPolicy, **overrides: Any
) -> sqs.Queue:
    """An SQS queue encrypted at rest (SQS-managed keys), TLS-only, keeping messages 14 days."""
    props: dict[str, Any] = {
        "encryption": sqs.QueueEncryption.SQS_MANAGED,
        "enforce_ssl": True,
        "retention_period": cdk.Duration.days(14),
        "removal_policy": removal_policy,
    }
    return sqs.Queue(scope, id, **{**props, **overrides})


def secure_bucket(
    scope: Construct, id: str, *, removal_policy: cdk.RemovalPolicy, **overrides: Any
) -> s3.Bucket:
    """An S3 bucket encrypted at rest, TLS-only, with all public access blocked."""
    props: dict[str, Any] = {
        "encryption": s3.BucketEncryption.S3_MANAGED,
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "enforce_ssl": True,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        "removal_policy": removal_policy,
    }
    return s3.Bucket(scope, id, **{**props, **overrides})


def function_log_group(
    scope: Construct, id: str, *, removal_policy: cdk.RemovalPolicy
) -> logs.LogGroup:
    """A log group with a finite retention (Lambda's implicit one keeps logs forever)."""
    return logs.LogGroup(
        scope, id, retention=logs.RetentionDays.ONE_MONTH, removal_policy=removal_policy
    )
