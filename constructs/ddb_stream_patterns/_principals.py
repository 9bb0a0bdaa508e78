"""IAM principals as the search patterns take them: validated, and classified for OpenSearch
fine-grained access control (which maps IAM role ARNs as backend roles and IAM user ARNs
as users, and cannot map an account).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import aws_cdk.aws_iam as iam

from ._validation import is_token

__all__ = [
    "backfill_principal",
    "describe",
    "fgac_entry",
    "is_role",
    "not_an_account",
    "principal_list",
]

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_USER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:user/.+$")
_ROOT_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:root$")


def describe(value: Any) -> str:
    """A principal (or any value) as an error message shows it: a literal role ARN, else
    CDK's own description (``ServicePrincipal(...)``, a construct path), else ``repr``."""
    arn = getattr(value, "role_arn", None)
    if isinstance(arn, str) and not is_token(arn):
        return arn
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else repr(value)


def is_role(value: Any) -> bool:
    """Whether ``value`` is an IAM role (``iam.IRole``: it has a ``role_arn``)."""
    return isinstance(getattr(value, "role_arn", None), str)


def backfill_principal(grantee: Any, prop: str) -> iam.IPrincipal:
    """The principal of an ``iam.IGrantable``; ValueError naming ``prop`` for anything else."""
    principal = getattr(grantee, "grant_principal", None)
    if principal is None:
        raise ValueError(
            f"{prop} must be IAM roles or users (iam.IGrantable), got {describe(grantee)}"
        )
    return principal


def principal_list(
    prop: str, value: Any, *, grantable: bool = False
) -> list[Any] | None:
    """``value`` as a list of principals (or grantables), validated; None stays None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{prop} must be a list of IAM principals, got {describe(value)}")
    for item in value:
        if grantable:
            if fgac_entry(backfill_principal(item, prop), prop) is None:
                not_an_account(prop, item)
        elif not hasattr(item, "policy_fragment"):
            raise ValueError(
                f"{prop} must hold IAM principals (iam.IRole, iam.IUser, iam.ArnPrincipal, "
                f"iam.AccountRootPrincipal), got {describe(item)}"
            )
        else:
            fgac_entry(item, prop)
    return list(value)


def not_an_account(prop: str, item: Any) -> None:
    """Raise: ``prop`` needs an IAM role or user where ``item`` is an account."""
    raise ValueError(
        f"{prop} must be IAM roles or users (fine-grained access control maps no accounts), "
        f"got {describe(item)}"
    )


def fgac_entry(principal: Any, prop: str) -> tuple[str, str] | None:
    """How fine-grained access control maps ``principal``: ``("backend_roles", role ARN)``,
    ``("users", user ARN)``, or None for an account (it can be trusted, not mapped)."""
    if isinstance(principal, iam.AccountPrincipal):  # AccountRootPrincipal too
        return None
    if is_role(principal):
        return ("backend_roles", principal.role_arn)
    if isinstance(getattr(principal, "user_arn", None), str):
        return ("users", principal.user_arn)
    if isinstance(principal, iam.ArnPrincipal):
        arn = principal.arn
        if is_token(arn):
            raise ValueError(
                f"{prop}: an ArnPrincipal whose ARN is known only at deploy time cannot be "
                f"told apart as a role or user; pass the iam.IRole or iam.IUser, got {arn}"
            )
        if _ROOT_ARN.match(arn):
            return None
        if _ROLE_ARN.match(arn):
            return ("backend_roles", arn)
        if _USER_ARN.match(arn):
            return ("users", arn)
    raise ValueError(
        f"{prop} must hold IAM roles, users or accounts (iam.IRole, iam.IUser, "
        f"iam.ArnPrincipal, iam.AccountRootPrincipal), got {describe(principal)}"
    )
