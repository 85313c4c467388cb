"""Latency percentiles: measuring sync and async callables, budgets, reporting.

Speed is only ever compared within one run (a slow callable against a fast
one) or against budgets far from the measured figures, never against a tight
absolute number.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from pytest_quantum_p1 import LatencyStats, _messages, measure_latency, measure_latency_async
from pytest_quantum_p1._latency import Budget

SLOW_WORK = 20_000


def _noop() -> None:
    return None


def _slow() -> int:
    return sum(range(SLOW_WORK))


async def _async_noop() -> None:
    return None


async def _async_slow() -> int:
    return sum(range(SLOW_WORK))


# -- measure_latency ------------------------------------------------------------------


def test_sync_measurement_shape() -> None:
    stats = measure_latency(_noop, warmup=5, calls=95)
    assert stats.calls == len(stats.samples) == 95  # one sample per call
    assert stats.warmup == 5
    assert 0 < stats.p50_ns <= stats.p90_ns <= stats.p99_ns <= stats.p999_ns <= stats.max_ns
    assert stats.max_ns == max(stats.samples)
    assert min(stats.samples) <= stats.mean_ns <= max(stats.samples)
    assert stats.timer_ns > 0


def test_the_default_puts_ten_calls_above_the_p999() -> None:
    stats = measure_latency(_noop, warmup=0)
    assert stats.calls * (1 - 0.999) >= 10


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_rare_stall_shows_in_the_tail_as_the_stall_it_is(kind: str) -> None:
    # Every 50th call stalls 3 ms: 2 % of calls, so the p99 is a stalled call.
    # Averaged in batches it would read ~60 us; timed per call it cannot read less than 3 ms.
    counter = iter(range(10**9))

    def read() -> None:
        if next(counter) % 50 == 49:
            time.sleep(0.003)

    async def read_async() -> None:
        read()

    fn: Callable[[], object] = read if kind == "sync" else read_async
    stats = measure_latency(fn, warmup=0, calls=2_000)
    assert stats.p50_ns < 1_000_000
    assert stats.p99_ns >= 3_000_000
    assert stats.max_ns >= 3_000_000
    with pytest.raises(AssertionError, match=r"p99 latency .* is over the budget of 1 ms"):
        stats.assert_below("1ms")


@pytest.mark.parametrize(
    ("fast", "slow"),
    [(_noop, _slow), (_async_noop, _async_slow), (lambda: _async_noop(), lambda: _async_slow())],
    ids=["sync", "async", "lambda-returning-a-coroutine"],
)
def test_a_slow_callable_measures_slower_than_a_fast_one(
    fast: Callable[[], object], slow: Callable[[], object]
) -> None:
    fast_stats = measure_latency(fast, warmup=20, calls=200)
    slow_stats = measure_latency(slow, warmup=20, calls=200)
    # sum(range(20000)) costs hundreds of times a no-op; 5x leaves a wide margin.
    assert slow_stats.p50_ns > 5 * fast_stats.p50_ns


def test_async_calls_measure_the_callable_not_the_event_loop() -> None:
    async def through_the_loop() -> None:
        await asyncio.sleep(0)  # one trip through the loop's scheduler per call

    direct = measure_latency(_async_noop, warmup=50, calls=500)
    scheduled = measure_latency(through_the_loop, warmup=50, calls=500)
    # Were each call scheduled on the loop, both would cost about the same.
    assert scheduled.p50_ns > 2 * direct.p50_ns


def test_runner_runs_the_measurement_where_the_caller_wants() -> None:
    from pytest_quantum_p1._harness.portal import Portal

    seen: list[asyncio.AbstractEventLoop] = []

    async def probe() -> None:
        seen.append(asyncio.get_running_loop())

    with Portal() as portal:
        stats = measure_latency(probe, warmup=2, calls=10, runner=portal.run)
        assert {*seen} == {portal.loop}
    assert stats.calls == 10


def test_in_a_running_loop_the_sync_form_says_to_use_the_async_one() -> None:
    async def scenario() -> LatencyStats:
        with pytest.raises(RuntimeError, match=re.escape(_messages.LATENCY_IN_RUNNING_LOOP)):
            measure_latency(_async_noop, calls=10)
        return await measure_latency_async(_async_noop, warmup=1, calls=10)

    assert asyncio.run(scenario()).calls == 10


@pytest.mark.parametrize(
    "kwargs",
    [{"calls": 0}, {"warmup": -1}, {"calls": 1.5}, {"calls": True}],
    ids=str,
)
def test_bad_counts_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be an int >= \d"):
        measure_latency(_noop, **kwargs)


def test_percentiles_are_nearest_rank() -> None:
    stats = LatencyStats.from_samples([float(n) for n in range(1, 1001)])
    assert (stats.p50_ns, stats.p90_ns, stats.p99_ns, stats.p999_ns, stats.max_ns) == (
        500.0,
        900.0,
        990.0,
        999.0,
        1000.0,
    )
    assert stats.percentile("p90") == 900.0
    assert stats.percentile("max") == 1000.0
    assert math.isclose(stats.mean_ns, 500.5)
    assert stats.percentile("p99.9") == stats.percentile("p999") == 999.0
    with pytest.raises(ValueError, match="percentile must be one of"):
        stats.percentile("p75")  # type: ignore[arg-type]


# -- budgets ----------------------------------------------------------------------------

STATS = LatencyStats.from_samples([1_000.0] * 98 + [5_000.0, 9_000.0], warmup=100, timer_ns=40.0)


@pytest.mark.parametrize("budget", ["1ms", timedelta(milliseconds=1), 1_000_000, "5001ns"])
def test_assert_below_passes_under_the_budget(budget: Budget) -> None:
    STATS.assert_below(budget)


def test_assert_below_compares_the_chosen_percentile() -> None:
    STATS.assert_below("2us", percentile="p50")
    with pytest.raises(AssertionError):
        STATS.assert_below("2us")


def test_assert_below_failure_names_every_percentile_and_the_budget() -> None:
    with pytest.raises(AssertionError) as info:
        STATS.assert_below("3us")
    assert str(info.value).splitlines() == [
        _messages.LATENCY_OVER_BUDGET.format(percentile="p99", measured="5 us", budget="3 us"),
        _messages.LATENCY_MEASURED.format(calls=100, warmup=100, timer="40 ns"),
        "  - p50: 1 us",
        "  - p90: 1 us",
        "  - p99: 5 us",
        "  - p99.9: 9 us",
        "  - max: 9 us",
        "  - mean: 1.12 us",
        _messages.LATENCY_TUNE,
        _messages.LATENCY_READ_MORE,
    ]


@pytest.mark.parametrize(
    ("budget", "error"),
    [("fast", ValueError), ("1", ValueError), (0, ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_bad_budgets_are_rejected(budget: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        STATS.assert_below(budget)


# -- the p1_latency fixture -------------------------------------------------------------

_FIXTURE_TESTS = f"""
import asyncio

SLOW_WORK = {SLOW_WORK}

def slow():
    return sum(range(SLOW_WORK))

def test_fast_within_budget(p1_latency):
    stats = p1_latency(lambda: None, label="noop", budget="1s", calls=100)
    assert p1_latency.results["noop"] is stats

def test_slow_over_budget(p1_latency):
    p1_latency(slow, budget="1ns", calls=50, warmup=5)

def test_async_form(p1_latency):
    async def get():
        return 1

    async def main():
        return await p1_latency.measure_async(get, label="get", budget="1s", calls=100)

    assert asyncio.run(main()).calls == 100

def test_default_budget(p1_latency):
    assert p1_latency.default_budget_ns == 250_000
"""


def test_fixture_passes_fails_and_records_user_properties(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(_FIXTURE_TESTS)
    result = pytester.runpytest(
        "-p", "quantum_p1", "--p1-latency-budget=250us", "--junitxml=junit.xml"
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       p1_latency(slow, budget="1ns", calls=50, warmup=5)',
            "E       AssertionError: p99 latency * is over the budget of 1 ns",
            "E       " + _messages.LATENCY_MEASURED.format(calls=50, warmup=5, timer="*"),
            "E         - p50: *",
            "E         - p90: *",
            "E         - p99: *",
            "E         - p99.9: *",
            "E         - max: *",
            "E         - mean: *",
            f"E       {_messages.LATENCY_TUNE}",
            f"E       {_messages.LATENCY_READ_MORE}",
        ]
    )
    assert "_latency.py" not in result.stdout.str()
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "junit.xml").iter("testcase")
    }
    figures = ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns", "timer_ns", "calls")
    assert set(properties["test_fast_within_budget"]) == {f"p1.latency.noop.{f}" for f in figures}
    assert set(properties["test_async_form"]) == {f"p1.latency.get.{f}" for f in figures}
    # Recorded before the budget was checked, so a failing test still reports them.
    assert "p1.latency.slow.p99_ns" in properties["test_slow_over_budget"]
    assert float(properties["test_slow_over_budget"]["p1.latency.slow.p99_ns"] or 0) > 0


def test_fixture_rejects_a_label_used_twice(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_twice(p1_latency):
            p1_latency(lambda: None, label="x", calls=10)
            p1_latency(lambda: None, label="x", calls=10)
        """
    )
    result = pytester.runpytest("-p", "quantum_p1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E   *" + _messages.LATENCY_LABEL_TAKEN.format(label="x")])


def test_user_properties_survive_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(_FIXTURE_TESTS)
    # pytest-benchmark warns under xdist; keep it out even when plugins autoload.
    result = pytester.runpytest(
        "-p",
        "quantum_p1",
        "-p",
        "no:benchmark",
        "-p",
        "xdist",
        "-n",
        "2",
        "--junitxml=junit.xml",
        "--p1-latency-budget=250us",
    )
    result.assert_outcomes(passed=3, failed=1)
    names = {p.get("name") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert {"p1.latency.noop.p99_ns", "p1.latency.get.p99_ns", "p1.latency.slow.p99_ns"} <= names


# pytest-benchmark: tests/plugin/test_benchmark_compat.py (each measurement an entry of its own).
