"""Fixtures for construct tests."""

from __future__ import annotations

import aws_cdk as cdk
import pytest


@pytest.fixture
def stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "TestStack")
