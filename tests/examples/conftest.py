"""Load ``examples/app.py`` (a script, not a package) once for the example tests."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.support import REPO


def load_module(path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def example_app_module() -> ModuleType:
    return load_module(REPO / "examples" / "app.py", "example_app")


@pytest.fixture(scope="session")
def example_app(example_app_module):
    """The example app, built once: synth is the slow part (~0.3 s a stack after the first)."""
    return example_app_module.build_app()
