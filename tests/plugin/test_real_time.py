"""Stores that keep time themselves (``P1Target.real_time``): checked in real time, with a short TTL.

A store reading :func:`time.monotonic` itself cannot be given the harness's
virtual clock. Its target declares ``real_time=True`` and a short real
``policy_ttl``; the harness then waits for real (:class:`RealClock`), and the
time-driven criteria say so. Here: the clock, the setting's validation, the
``virtual_clock`` fixture's choice, a correct clockless store passing every
P1-2 criterion on both observation paths, and broken ones failing theirs.
"""

from __future__ import annotations

import dataclasses
import math
import time

import pytest

from pytest_quantum_p1 import P1Target, TargetError, VirtualClock, _messages
from pytest_quantum_p1._clock import RealClock
from pytest_quantum_p1._target import MAX_REAL_TIME_TTL
from reference_impl.p1_target import TARGET
from tests.plugin import broken_real_time as brt
from tests.plugin.broken_targets import read_report, run_p1
from tests.plugin.verdicts import REPORT

#: The criteria that move time: waited for real on a real-time target.
TIME_DRIVEN = ("P1-2.cold-vs-warm", "P1-2.hit-rate", "P1-2.counters", "P1-2.ttl")

# -- RealClock ------------------------------------------------------------------------------


def test_the_real_clock_reads_the_machines_monotonic_time() -> None:
    clock = RealClock()
    before = time.monotonic()
    now = clock()
    assert before <= now <= time.monotonic()
    assert isinstance(clock, VirtualClock)  # fits wherever a VirtualClock is expected


def test_advancing_the_real_clock_sleeps_at_least_that_long() -> None:
    clock = RealClock()
    started = time.monotonic()
    returned = clock.advance(0.05)
    # A lower bound only: a loaded machine may sleep longer, never shorter.
    assert time.monotonic() - started >= 0.05
    assert returned >= started + 0.05


@pytest.mark.parametrize("seconds", [-0.1, math.nan, math.inf])
def test_the_real_clock_refuses_what_virtual_time_refuses(seconds: float) -> None:
    with pytest.raises(ValueError, match="only moves forward") as info:
        RealClock().advance(seconds)
    assert str(info.value) == _messages.CLOCK_BACKWARDS.format(seconds=seconds)


# -- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [10.0, MAX_REAL_TIME_TTL + 0.001, 0.0, -1.0, math.nan, True])
def test_real_time_with_a_ttl_that_is_not_short_is_a_target_error(ttl: float) -> None:
    with pytest.raises(TargetError) as info:
        dataclasses.replace(TARGET, real_time=True, policy_ttl=ttl)
    assert str(info.value) == _messages.TARGET_REAL_TIME_TTL.format(
        ttl=ttl, maximum=MAX_REAL_TIME_TTL
    )
    assert "waited for real" in str(info.value)
    assert "environment variable" in str(info.value)


@pytest.mark.parametrize(
    ("real_time", "ttl"),
    [
        (True, MAX_REAL_TIME_TTL),
        (True, 0.05),
        (False, 600.0),  # a virtual TTL may be any length
    ],
    ids=["at-the-limit", "short", "virtual"],
)
def test_a_short_real_ttl_or_a_virtual_one_of_any_length_is_accepted(
    real_time: bool, ttl: float
) -> None:
    target = dataclasses.replace(TARGET, real_time=real_time, policy_ttl=ttl)
    assert isinstance(target, P1Target)
    assert (target.real_time, target.policy_ttl) == (real_time, ttl)


def test_a_long_real_ttl_stops_the_run_as_a_setting_to_fix(pytester: pytest.Pytester) -> None:
    result = run_p1(pytester, "-k", "P1-2.ttl", target=brt.clockless_toy_with_a_long_ttl)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = _messages.TARGET_REAL_TIME_TTL.format(ttl=10.0, maximum=MAX_REAL_TIME_TTL)
    assert expected in result.stderr.str()
    assert "--p1-target" in result.stderr.str()


# -- the virtual_clock fixture ----------------------------------------------------------------

_CLOCK_PROBE = """
from pytest_quantum_p1._target import TARGET_KEY

def test_clock(virtual_clock, request):
    loaded = request.config.stash.get(TARGET_KEY, None)
    print("CLOCK", type(virtual_clock).__name__, "LOADED", loaded is not None)
"""


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "CLOCK VirtualClock LOADED False"),  # never loads a target it was not given
        ("reference", "CLOCK VirtualClock LOADED True"),
        ("broken_target:TARGET", "CLOCK RealClock LOADED True"),
    ],
    ids=["no-target", "virtual-target", "real-time-target"],
)
def test_virtual_clock_is_real_only_for_a_target_that_keeps_time(
    pytester: pytest.Pytester, target: str | None, expected: str
) -> None:
    from tests.plugin.broken_targets import write_target_module

    pytester.syspathinsert()
    write_target_module(pytester.path, brt.clockless_toy_with_counters)
    pytester.makepyfile(_CLOCK_PROBE)
    args = () if target is None else (f"--p1-target={target}",)
    result = pytester.runpytest("-p", "quantum_p1", "-s", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{expected}"])


# -- the acceptance run -------------------------------------------------------------------------


@pytest.mark.parametrize("wire", [pytest.param(False, id="client"), pytest.param(True, id="wire")])
def test_a_store_keeping_its_own_time_passes_every_p1_2_criterion_in_real_time(
    pytester: pytest.Pytester, wire: bool
) -> None:
    run_p1(
        pytester,
        REPORT,
        "-k",
        "P1-2 and not no-stale-reads",
        target=brt.clockless_toy_with_counters,
        wire=wire,
    )
    found = {c["id"]: c for c in read_report(pytester.path / "p1.json")["criteria"]}
    assert len(found) == 11
    assert {name: c["outcome"] for name, c in found.items()} == dict.fromkeys(found, "passed")
    for name in TIME_DRIVEN:  # each says its time was real
        assert found[name]["figures"]["real_time"] == 1
    for name in ("P1-2.cold-vs-warm", "P1-2.counters", "P1-2.ttl"):
        assert found[name]["summary"].endswith(_messages.REAL_TIME_NOTE)
    hit = found["P1-2.hit-rate"]
    assert "simulated_s" not in hit["figures"]
    # 30 TTLs of 0.2 s planned; a loaded machine may stretch them, never shrink them.
    assert hit["figures"]["ttl_periods"] >= 30
    assert hit["figures"]["wall_s"] >= 30 * brt.REAL_TTL
    assert hit["figures"]["reads"] == 60_000  # the whole workload: steps shortened, not thinned
    assert " TTL periods in real time (" in hit["summary"]
    assert "simulated" not in hit["summary"]


def test_a_clockless_store_whose_entries_never_expire_fails_the_ttl_check(
    pytester: pytest.Pytester,
) -> None:
    run_p1(pytester, REPORT, "-k", "P1-2.ttl", target=brt.clockless_toy_caching_forever)
    (ttl,) = read_report(pytester.path / "p1.json")["criteria"]
    assert ttl["outcome"] == "failed"
    assert ttl["message"].startswith(
        "an entry outlived its TTL: 0.2 s after it was cached, with its invalidation lost, "
        "instance 1 still served {'v': 1} instead of {'v': 2}"
    )
    assert ttl["summary"] == (
        _messages.P1_2_TTL_OUTLIVED_SUMMARY.format(ttl=brt.REAL_TTL) + _messages.REAL_TIME_NOTE
    )


def test_a_clockless_store_expiring_too_soon_fails_the_hit_rate_in_real_time(
    pytester: pytest.Pytester,
) -> None:
    run_p1(pytester, REPORT, "-k", "hit-rate", target=brt.clockless_toy_expiring_too_soon)
    (hit,) = read_report(pytester.path / "p1.json")["criteria"]
    assert hit["outcome"] == "failed"
    assert "TTL periods in real time" in hit["message"]
    assert "the store keeping its own clock" in hit["message"]
    assert (
        "run in 6 s of real time: every read and update made, while 30 TTLs of 0.2 s passed"
        in hit["message"]
    )
    assert _messages.P1_2_HIT_RATE_TOO_LOW_FIX in hit["message"]
    assert hit["figures"]["hit_rate"] <= 0.90


def test_the_stale_read_search_runs_in_real_time_on_a_store_keeping_its_own_time(
    pytester: pytest.Pytester,
) -> None:
    """The machine's clock steps wait for real: a correct clockless store is not called stale."""
    run_p1(
        pytester,
        REPORT,
        "--p1-scenarios=30",
        "-k",
        "no-stale-reads",
        target=brt.clockless_toy_with_counters,
    )
    (search,) = read_report(pytester.path / "p1.json")["criteria"]
    assert search["outcome"] == "passed", search["message"]
    assert search["figures"]["scenarios"] >= 30


@pytest.mark.slow  # real time: each clock step of the search and of its shrinking waits
def test_the_stale_read_search_finds_a_clockless_store_caching_forever(
    pytester: pytest.Pytester,
) -> None:
    run_p1(
        pytester,
        REPORT,
        "--p1-scenarios=200",
        "-k",
        "no-stale-reads",
        target=brt.clockless_toy_caching_forever,
    )
    (search,) = read_report(pytester.path / "p1.json")["criteria"]
    assert search["outcome"] == "failed"
    assert "the property-based search found a stale read:" in search["message"]
