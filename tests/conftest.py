"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _isolate_pytester_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Options meant for the outer run must not leak into pytester's inner runs.
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
