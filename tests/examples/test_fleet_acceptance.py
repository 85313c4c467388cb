"""The acceptance run on the fleet example, through its adapter alone: each criterion's true verdict.

fleet (``examples/fleet``) was written in a style of its own and adopted with
one adapter module (``examples/fleet_p1_target.py``), changing nothing in the
backend. fleet does every P1 task right, so every criterion passes. Its
invalidations are JSON (``{"op": "invalidate", "name": ...}``), not bare
policy names: the harness settles by a barrier on each instance's own pubsub
connection, judges convergence by what the instances serve and matches
propagation by position, so the message format does not matter.

The run happens once per module, in a subprocess: the adapter replaces what
``fleet.cache.policies`` calls ``from_url`` (see the adapter), which must not
leak into the other tests of this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.examples.conftest import EXAMPLES
from tests.plugin.verdicts import ALL_IDS

TARGET = "fleet_p1_target:TARGET"

#: Every criterion the run collects for fleet, in checklist order: the same checklist as any target.
CRITERIA = ALL_IDS


def _run_p1(folder: Path, target: str, *args: str) -> dict[str, Any]:
    """The JSON report of ``pytest -p quantum_p1 --p1`` on ``target``, run in ``folder``."""
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    paths = [str(EXAMPLES), str(EXAMPLES.parent), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-p", "quantum_p1", "--p1", f"--p1-target={target}"]
    result = subprocess.run(
        [*command, "--p1-report=p1.json", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # Any criterion not passing makes the exit status 1; anything else is a broken run.
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report: dict[str, Any] = json.loads((folder / "p1.json").read_text(encoding="utf-8"))
    return report


@pytest.fixture(scope="module")
def fleet_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON report of one acceptance run on fleet (fakeredis), in a subprocess."""
    return _run_p1(tmp_path_factory.mktemp("fleet-p1"), TARGET)


@pytest.fixture(scope="module")
def deaf_fleet_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The P1-2 invalidation criteria on fleet with a listener deaf to named invalidations."""
    folder = tmp_path_factory.mktemp("fleet-deaf-p1")
    only = "P1-2.invalidation or P1-2.no-stale-reads"
    return _run_p1(folder, "tests.examples.broken_fleet:TARGET", "-k", only)


def _criterion(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = (c for c in report["criteria"] if c["id"] == name)
    return dict(found)


def test_the_run_collects_every_criterion_for_the_fleet_target(
    fleet_report: dict[str, Any],
) -> None:
    assert [c["id"] for c in fleet_report["criteria"]] == CRITERIA
    assert (fleet_report["meta"]["target"], fleet_report["meta"]["redis"]) == (TARGET, "fake")


@pytest.mark.parametrize("criterion", CRITERIA)
def test_each_criterion_gets_its_true_verdict_on_fleet(
    fleet_report: dict[str, Any], criterion: str
) -> None:
    found = _criterion(fleet_report, criterion)
    assert found["outcome"] == "passed", f"{found['summary']}\n{found['message']}"


# -- the same criteria on fleet with a planted bug --------------------------------------


def test_a_fleet_deaf_to_named_invalidations_fails_the_stale_read_search(
    deaf_fleet_report: dict[str, Any],
) -> None:
    found = _criterion(deaf_fleet_report, "P1-2.no-stale-reads")
    assert found["outcome"] == "failed"
    assert "the property-based search found a stale read:" in found["message"]
    assert "the value came from its cache (no storage read)" in found["message"]


def test_a_fleet_deaf_to_named_invalidations_does_not_converge(
    deaf_fleet_report: dict[str, Any],
) -> None:
    found = _criterion(deaf_fleet_report, "P1-2.invalidation")
    assert found["outcome"] == "failed"
    assert "not every instance converged" in found["message"]
