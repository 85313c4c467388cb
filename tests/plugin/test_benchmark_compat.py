"""pytest-benchmark reads the plugin's latency figures as benchmarks of its own.

Every ``p1_latency`` measurement and the acceptance run's cached read
(``P1-2.cached-read``, one round per read) are entries of pytest-benchmark's
run: in ``--benchmark-json``, in what ``--benchmark-autosave`` stores, listed by
``pytest-benchmark compare``, and failed by ``--benchmark-compare-fail``.
Checked with the real pytest-benchmark, in both ways it is loaded: autoloaded
through its entry point, and ``-p pytest_benchmark.plugin`` with autoloading off.

Every run is a subprocess: pytest-benchmark 5.2 opens the ``--benchmark-json``
file while options are parsed, which an in-process run would leave open.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_quantum_p1 import _messages

#: The two ways pytest-benchmark and this plugin get loaded.
LOADING = {
    "autoload": ((), False),
    "explicit": (("-p", "pytest_benchmark.plugin", "-p", "quantum_p1"), True),
}

#: The reference's store with a hit path three times as slow: each hit spins for
#: twice what the real hit took. (A relative slowdown: the test holds on any machine.)
SLOW_TARGET = """
import time
from dataclasses import replace

from reference_impl.p1_target import TARGET as REFERENCE
from reference_impl.services.policy_store_v2 import PolicyStoreV2


class ThreeTimesSlowerHits(PolicyStoreV2):
    async def get_policy(self, name):
        start = time.perf_counter_ns()
        policy = await super().get_policy(name)
        spent = time.perf_counter_ns() - start
        while time.perf_counter_ns() - start < 3 * spent:
            pass
        return policy


TARGET = replace(
    REFERENCE, store_factory=lambda redis, clock: ThreeTimesSlowerHits(redis, clock=clock)
)
"""


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, loading: str, *args: str
) -> pytest.RunResult:
    plugins, disabled = LOADING[loading]
    if disabled:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    else:
        monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return pytester.runpytest_subprocess(*plugins, "-p", "no:cacheprovider", *args)


def _entries(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return {bench["name"]: bench for bench in data["benchmarks"]}


@pytest.mark.parametrize("loading", list(LOADING))
def test_each_p1_latency_measurement_is_a_benchmark_with_one_round_per_call(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, loading: str
) -> None:
    pytester.makepyfile(
        test_timed="""
        import pytest

        def test_reads(p1_latency):
            p1_latency(lambda: None, label="noop", calls=300)
            p1_latency(lambda: sum(range(50)), label="sum", calls=200)

        @pytest.mark.parametrize("size", [10])
        def test_sized(p1_latency, size):
            p1_latency(lambda: list(range(size)), label="list", calls=100)
        """
    )
    result = _run(pytester, monkeypatch, loading, "--benchmark-json=bench.json")
    result.assert_outcomes(passed=2)
    entries = _entries(pytester.path / "bench.json")
    assert set(entries) == {"test_reads[noop]", "test_reads[sum]", "test_sized[10-list]"}
    noop = entries["test_reads[noop]"]
    assert noop["fullname"] == "test_timed.py::test_reads[noop]"
    assert noop["group"] == _messages.BENCHMARK_GROUP_LATENCY
    assert noop["stats"]["rounds"] == 300
    assert len(noop["stats"]["data"]) == 300  # one sample per call, in seconds
    assert 0 < noop["stats"]["min"] <= noop["stats"]["median"] <= noop["stats"]["max"] < 1
    assert noop["extra_info"]["p1_calls"] == 300
    assert entries["test_sized[10-list]"]["stats"]["rounds"] == 100


def test_a_disabled_pytest_benchmark_gets_no_entries_and_the_test_still_measures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        def test_reads(p1_latency):
            stats = p1_latency(lambda: None, label="noop", calls=100)
            assert stats.calls == 100
        """
    )
    result = _run(
        pytester, monkeypatch, "explicit", "--benchmark-disable", "--benchmark-json=bench.json"
    )
    result.assert_outcomes(passed=1)
    path = pytester.path / "bench.json"
    assert not path.exists() or not path.read_text().strip() or not _entries(path)


def test_without_pytest_benchmark_p1_latency_works_as_before(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        def test_reads(p1_latency, pytestconfig):
            assert pytestconfig.pluginmanager.get_plugin("pytest-benchmark") is None
            assert p1_latency(lambda: None, label="noop", calls=100).calls == 100
        """
    )
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess("-p", "quantum_p1", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("loading", list(LOADING))
def test_compare_lists_the_cached_read_of_two_runs_and_fails_a_3x_slower_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, loading: str
) -> None:
    pytester.makepyfile(slow_target=SLOW_TARGET)
    acceptance = ("--p1", "-k", "cached-read")
    # Run 1 (stored as 0001) and run 2 of the same correct backend.
    first = _run(
        pytester,
        monkeypatch,
        loading,
        *acceptance,
        "--p1-target=reference",
        "--benchmark-autosave",
        "--benchmark-json=first.json",
    )
    first.assert_outcomes(passed=1, deselected=25)
    entry = _entries(pytester.path / "first.json")["P1-2.cached-read"]
    assert entry["fullname"] == "quantum-p1::P1-2.cached-read"
    assert entry["group"] == _messages.BENCHMARK_GROUP_ACCEPTANCE
    assert entry["stats"]["rounds"] == 20_000  # every warm read, timed on its own
    # Two runs apart, a machine's load moves a median by 2x (seen here, other tests
    # running): the gate a run of the same backend must pass is a tenfold one.
    second = _run(
        pytester,
        monkeypatch,
        loading,
        *acceptance,
        "--p1-target=reference",
        "--benchmark-json=second.json",
        "--benchmark-compare=0001",
        "--benchmark-compare-fail=median:1000%",
    )
    second.assert_outcomes(passed=1, deselected=25)
    assert second.ret == pytest.ExitCode.OK
    assert "P1-2.cached-read" in _entries(pytester.path / "second.json")

    listed = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", "first.json", "second.json"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "P1-2.cached-read" in line]
    assert len(rows) == 2, listed.stdout  # one per run, side by side

    # A gate at +50% fails a backend whose cached read is three times as slow
    # (+200%); the criterion itself still passes (its p99 is far under 1 ms).
    slow = _run(
        pytester,
        monkeypatch,
        loading,
        *acceptance,
        "--p1-target=slow_target:TARGET",
        "--benchmark-compare=0001",
        "--benchmark-compare-fail=median:50%",
    )
    assert slow.ret != pytest.ExitCode.OK
    regressed = [line for line in slow.outlines + slow.errlines if "P1-2.cached-read" in line]
    assert any("median" in line for line in regressed), slow.outlines + slow.errlines
