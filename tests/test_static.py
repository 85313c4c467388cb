"""The codebase stays typed and lint-clean: mypy --strict and ruff run as tests.

They run inside the suite (not as separate CI steps) so that the README's one
test command is the whole definition of green. Both cover the whole checkout:
the two packages, ``tests/`` and the root ``conftest.py`` (ruff from ``.``, mypy
from the files pyproject's ``[tool.mypy]`` names).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_mypy_strict_on_the_packages_and_the_tests() -> None:
    # No paths: pyproject's [tool.mypy] names what to check, so `mypy` run by hand
    # and this test check the same files.
    result = _run(sys.executable, "-m", "mypy", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_configured_to_check_the_tests_too() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert {"pytest_quantum_p1", "reference_impl", "tests"} <= set(config["packages"])
    assert "conftest" in config["modules"]


@pytest.mark.parametrize(
    "args", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"]
)
def test_ruff(args: tuple[str, ...]) -> None:
    ruff = shutil.which("ruff")
    assert ruff is not None, "ruff is a test dependency: pip install -e '.[test]'"
    result = _run(ruff, *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_packages_ship_py_typed() -> None:
    for package in ("pytest_quantum_p1", "reference_impl"):
        assert (ROOT / package / "py.typed").is_file(), package
