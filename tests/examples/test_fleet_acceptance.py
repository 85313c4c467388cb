"""The acceptance run on the fleet example, through its adapter alone: each criterion's true verdict.

fleet (``examples/fleet``) was written in a style of its own and adopted with
one adapter module (``examples/fleet_p1_target.py``), changing nothing in the
backend. fleet does every P1 task right, so every criterion passes. Its
invalidations are JSON (``{"op": "invalidate", "name": ...}``), not bare
policy names: the harness settles by a barrier on each instance's own pubsub
connection, judges convergence by what the instances serve and matches
propagation by position, so the message format does not matter.

fleet's cache builds its own client from a URL (``decode_responses=True``):
the adapter gives it in the URL form (``from_url``), and the harness observes
each instance on the wire. The run happens once per module and Redis, in a
subprocess, as a team runs it: on fakeredis, and on a private redis-server.
The adapter stays one module of at most 120 lines.
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


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("server", id="server", marks=pytest.mark.real_redis),
    ],
)
def fleet_report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The JSON report of one acceptance run on fleet, in a subprocess: fakeredis, then a server."""
    redis: str = request.param
    if redis == "server":
        # The same rule as every real-Redis test: skipped without the binary, failed under CI=true.
        request.getfixturevalue("redis_server")
    folder = tmp_path_factory.mktemp(f"fleet-p1-{redis}")
    # On a server the stale-read search runs its parts one after the other, and
    # fleet backs off up to 1 s before subscribing again after each lost link:
    # about 100 s for 200 scenarios here, against a default deadline of 120 s.
    slower = ["--p1-timeout=60s"] if redis == "server" else []
    return _run_p1(folder, TARGET, f"--p1-redis={redis}", *slower)


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
    assert fleet_report["meta"]["target"] == TARGET
    assert fleet_report["meta"]["redis"] in ("fake", "server")


def test_the_adapter_is_one_module_of_at_most_120_lines() -> None:
    adapter = EXAMPLES / "fleet_p1_target.py"
    assert len(adapter.read_text(encoding="utf-8").splitlines()) <= 120


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
