"""The whole repository's test setup: what every pytest run from this checkout shares.

Fixtures for the project's own tests live in ``tests/conftest.py``; this file
holds only what applies to every run started here (the suite, the benchmarks,
``pytest -p quantum_p1 --p1``), and imports nothing but pytest, so it costs
those runs nothing.
"""

from __future__ import annotations

import pytest

# For the plugin's tests, which run pytest inside pytest. Declared here: pytest
# takes pytest_plugins only from the conftest files it loads at start-up.
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _isolate_pytester_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Options meant for the outer run must not leak into pytester's inner runs.
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
