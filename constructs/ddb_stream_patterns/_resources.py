"""Secure defaults for the supporting resources every pattern creates (queues, buckets, logs).

Pure functions returning props, merged with user overrides by the caller, in the manner
of AWS Solutions Constructs' ``*-defaults.ts``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_iam as iam
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_logs as logs
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_sqs as sqs
import jsii
from constructs import Construct

from ._validation import duration

__all__ = [
    "secure_queue",
    "secure_bucket",
    "function_log_group",
    "build_function",
    "struct_values",
    "merge_function_options",
]


def struct_values(struct: Any) -> dict[str, Any]:
    """The props set on a jsii struct (e.g. ``lambda_.FunctionOptions``), as keyword arguments.

    jsii structs keep exactly the fields the user set in ``_values``; there is no public
    accessor, and iterating the class's properties would also yield the unset ``None`` ones.
    """
    return dict(struct._values) if struct is not None else {}


def merge_function_options(
    defaults: lambda_.FunctionOptions | None,
    overrides: lambda_.FunctionOptions | None,
) -> lambda_.FunctionOptions:
    """``defaults`` under ``overrides``: the props a subclass sets, then the caller's.

    A prop set in ``overrides`` wins; ``environment`` is merged key by key (the caller's
    values win) and ``layers`` are concatenated (defaults first). Either may be ``None``.

    >>> merged = merge_function_options(
    ...     lambda_.FunctionOptions(memory_size=512, environment={"A": "1", "B": "1"}),
    ...     lambda_.FunctionOptions(timeout=cdk.Duration.seconds(10), environment={"B": "2"}),
    ... )
    >>> merged.memory_size, merged.environment
    (512, {'A': '1', 'B': '2'})
    """
    from ._validation import check_type

    check_type("merge_function_options", "defaults", defaults, lambda_.FunctionOptions)
    check_type("merge_function_options", "overrides", overrides, lambda_.FunctionOptions)
    base, top = struct_values(defaults), struct_values(overrides)
    merged = {**base, **top}
    if "environment" in base or "environment" in top:
        merged["environment"] = {**base.get("environment", {}), **top.get("environment", {})}
    if "layers" in base or "layers" in top:
        merged["layers"] = [*base.get("layers", []), *top.get("layers", [])]
    return lambda_.FunctionOptions(**merged)


def secure_queue(
    scope: Construct, id: str, *, removal_policy: cdk.RemovalPolicy, **overrides: Any
) -> sqs.Queue:
    """An SQS queue encrypted at rest (SQS-managed keys), TLS-only, keeping messages 14 days."""
    props: dict[str, Any] = {
        "encryption": sqs.QueueEncryption.SQS_MANAGED,
        "enforce_ssl": True,
        "retention_period": duration("days", 14),
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


def build_function(
    scope: Construct,
    id: str,
    *,
    code: lambda_.Code,
    handler: str,
    runtime: lambda_.Runtime,
    removal_policy: cdk.RemovalPolicy,
    options: lambda_.FunctionOptions | None = None,
    layers: list[lambda_.ILayerVersion] | None = None,
    environment: dict[str, str] | None = None,
    timeout: cdk.Duration | None = None,
) -> lambda_.Function:
    """A function with this library's defaults, then the user's ``options`` over them.

    Defaults: ARM64 (cheaper per GB-second), 256 MB, ``timeout`` (30 s), a log group kept
    one month (``<id>Logs``), and a role that may only write to that log group (the
    AWSLambdaBasicExecutionRole managed policy would allow every log group). ``layers``
    come first and ``environment`` is merged under the user's own.
    """
    user = struct_values(options)
    log_group = user.get("log_group") or function_log_group(
        scope, f"{id}Logs", removal_policy=removal_policy
    )
    props: dict[str, Any] = {
        "architecture": _arm64(),
        "memory_size": 256,
        "timeout": timeout or duration("seconds", 30),
        **user,
        "log_group": log_group,
        "layers": [*(layers or []), *user.get("layers", [])],
        "environment": {**(environment or {}), **user.get("environment", {})},
    }
    if "role" not in user:
        props["role"] = iam.Role(scope, f"{id}Role", assumed_by=_lambda_principal())
        props["role"].add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
    function = lambda_.Function(scope, id, code=code, handler=handler, runtime=runtime, **props)
    if "role" not in user:
        _drop_role_dependency(function.node.default_child, props["role"].node.default_child)
    return function


# One object each per process (each is a jsii round trip to make or read; both are values
# that never change, safe to share between functions, stacks and apps).
@cache
def _arm64() -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64


@cache
def _lambda_principal() -> iam.ServicePrincipal:
    return iam.ServicePrincipal("lambda.amazonaws.com")


@jsii.implements(cdk.IStableListProducer)
class _DependsOnWithoutRole:
    """The function's DependsOn, as CDK computes it at synth, minus its own role.

    CDK makes a function depend on its role and the role's policy; the role is already
    read through Fn::GetAtt, so that one entry is redundant (cfn-lint W3005). Computed
    lazily so that dependencies added later (by users, by other constructs) are kept.
    """

    def __init__(self, function: cdk.CfnResource, role: cdk.CfnResource) -> None:
        self.function, self.role = function, role

    def produce(self, context: cdk.IResolveContext | None = None) -> list[str]:
        stack = cdk.Stack.of(self.function)
        role = stack.get_logical_id(self.role)
        ids = {
            stack.get_logical_id(dependency)
            for dependency in self.function.obtain_dependencies()
            if isinstance(dependency, cdk.CfnResource) and cdk.Stack.of(dependency) is stack
        }
        return sorted(ids - {role})


def _drop_role_dependency(function: cdk.CfnResource, role: cdk.CfnResource) -> None:
    function.add_override("DependsOn", cdk.Lazy.list(_DependsOnWithoutRole(function, role)))
