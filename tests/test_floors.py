"""The suite passes on the oldest releases ``pyproject.toml`` allows, not only on today's.

The README's command 2 (what CI runs) installs current releases. The floors
are checked here: a fresh venv gets the project with ``constraints-oldest.txt``
(one ``name==floor`` line per dependency), and a representative part of the
suite plus one acceptance run against the reference must pass in it.

Building that venv takes ~20 s and its run ~2-3 min, so locally the test runs
only when asked (``QUANTUM_P1_FLOORS=1``); under ``CI=true`` it always runs,
and a venv it cannot build is a failure, never a skip.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints-oldest.txt"
OPT_IN = "QUANTUM_P1_FLOORS"

#: What runs on the floors: the criteria against backends broken one way each,
#: the fixtures users write tests with, and the reference backend's own tests.
SUITE = (
    "tests/plugin/test_acceptance.py",
    "tests/plugin/test_fixtures.py",
    "tests/reference",
)

_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<op>==|>=)\s*(?P<version>[^\s,;#]+)"
)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(lines: list[str], op: str) -> dict[str, str]:
    """``{name: version}`` of the requirement lines using ``op`` (comments and others ignored)."""
    found: dict[str, str] = {}
    for line in lines:
        match = _REQUIREMENT.match(line.split("#", 1)[0])
        if match and match["op"] == op:
            found[_normalize(match["name"])] = match["version"]
    return found


def floor_mismatches(dependencies: list[str], constraints: list[str]) -> list[str]:
    """Where the constraints file does not pin exactly the floors of ``dependencies``."""
    floors = pinned(dependencies, ">=")
    pins = pinned(constraints, "==")
    problems = [
        f"{name}: no floor (>=) in pyproject.toml" for name in sorted(set(pins) - set(floors))
    ]
    for name, floor in sorted(floors.items()):
        if name not in pins:
            problems.append(f"{name}: floor {floor} is not pinned in {CONSTRAINTS.name}")
        elif Version(pins[name]) != Version(floor):
            problems.append(
                f"{name}: pyproject.toml says >={floor}, {CONSTRAINTS.name} pins {pins[name]}"
            )
    return problems


def floors_wanted(environ: Mapping[str, str]) -> str | None:
    """``None`` when the floors run must happen, else why it is skipped."""
    if environ.get("CI") == "true" or environ.get(OPT_IN) == "1":
        return None
    return (
        f"the floors venv takes minutes to build and run; set {OPT_IN}=1 to run it "
        "(it always runs under CI=true)"
    )


def test_the_oldest_constraints_pin_exactly_the_declared_floors() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert floor_mismatches(dependencies, CONSTRAINTS.read_text().splitlines()) == []


def test_a_floor_out_of_step_with_pyproject_is_named() -> None:
    problems = floor_mismatches(
        ["redis>=5.0.1", "hypothesis>=6.140", "pytest>=8.4"],
        ["# comment", "redis==5.0.0", "hypothesis==6.140  # why", "fakeredis==2.26.0"],
    )
    assert problems == [
        "fakeredis: no floor (>=) in pyproject.toml",
        "pytest: floor 8.4 is not pinned in constraints-oldest.txt",
        "redis: pyproject.toml says >=5.0.1, constraints-oldest.txt pins 5.0.0",
    ]


def test_a_floor_written_shorter_than_its_pin_is_the_same_version() -> None:
    assert (
        floor_mismatches(["pytest>=8.4", "redis >= 5.0.1"], ["pytest==8.4.0", "Redis==5.0.1"]) == []
    )


def test_the_floors_run_happens_under_ci_or_when_asked_and_says_how_to_ask() -> None:
    assert floors_wanted({"CI": "true"}) is None
    assert floors_wanted({OPT_IN: "1"}) is None
    reason = floors_wanted({"CI": "false"})
    assert reason is not None
    assert f"{OPT_IN}=1" in reason


def _run(command: list[str], cwd: Path, env: Mapping[str, str], timeout: float) -> str:
    """Run ``command``; its output, or a failure (never a skip) showing the output's tail."""
    done = subprocess.run(
        command,
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.splitlines()[-60:])
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{tail}", pytrace=False)
    return output


@pytest.mark.slow
def test_the_suite_passes_on_the_declared_floors(tmp_path: Path) -> None:
    reason = floors_wanted(os.environ)
    if reason is not None:
        pytest.skip(reason)
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    _run([sys.executable, "-m", "venv", str(venv)], ROOT, env, timeout=120)
    _run(
        [str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]", "-c", str(CONSTRAINTS)],
        ROOT,
        env,
        timeout=600,
    )
    installed = _run([str(python), "-m", "pip", "freeze"], ROOT, env, timeout=60).splitlines()
    floors = pinned(CONSTRAINTS.read_text().splitlines(), "==")
    versions = pinned(installed, "==")
    assert {name: versions.get(name) for name in floors} == floors

    suite = _run(
        [str(python), "-m", "pytest", "-p", "quantum_p1", "-p", "no:cacheprovider", "-q", *SUITE],
        ROOT,
        env,
        timeout=420,
    )
    assert re.search(r"\b\d+ passed\b", suite), suite[-2000:]

    # As a user runs it: from a directory of their own, the criteria only.
    user = tmp_path / "user"
    user.mkdir()
    run = _run(
        [str(python), "-m", "pytest", "-p", "quantum_p1", "--p1", "--p1-target=reference", "-q"],
        user,
        env,
        timeout=300,
    )
    assert re.search(r"\b\d+ passed\b", run), run[-2000:]
    assert " failed" not in run
