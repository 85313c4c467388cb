"""Per-call latency percentiles of a sync or async callable, measured after warm-up.

Every call is timed on its own with :func:`time.perf_counter_ns`, so the
percentiles are over single calls: a read that stalls once in fifty shows in
the p99 as the stall it is, not averaged away in a batch. The timer's own cost
(one pair of clock reads, measured before each run) is part of every sample;
it is stated as ``timer_ns`` next to the figures rather than subtracted.

An async callable is measured inside one coroutine: each call is awaited
directly between the two clock reads, so the event loop's scheduling is not
in the figure (unless the call itself yields to the loop). The coroutine runs
on ``runner`` (default :func:`asyncio.run`), so a caller can run it on a loop
of its own.

The default of 10,000 calls puts at least 10 calls above the p99.9, so that
figure rests on samples rather than on the single slowest call.

Nothing here needs pytest or pytest-benchmark; :class:`BenchmarkEntries`, the
optional bridge into pytest-benchmark, imports it when it adds an entry.
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._units import format_duration, parse_duration, percentile

if TYPE_CHECKING:
    import pytest

__all__ = [
    "PROPERTY_PREFIX",
    "BenchmarkEntries",
    "Budget",
    "LatencyRecorder",
    "LatencyStats",
    "Percentile",
    "Runner",
    "benchmark_entries",
    "benchmark_name",
    "measure_latency",
    "measure_latency_async",
]

#: ``item.user_properties`` names are ``p1.latency.<label>.<figure>_ns``.
PROPERTY_PREFIX = "p1.latency."

DEFAULT_WARMUP = 100
#: Enough that the p99.9 has at least 10 calls above it.
DEFAULT_CALLS = 10_000
#: Clock-read pairs timed to state the timer's own cost.
_TIMER_PAIRS = 1_000

Percentile = Literal["p50", "p90", "p99", "p99.9", "p999", "max", "mean"]
#: A budget: a duration string (``"1ms"``), a :class:`~datetime.timedelta`, or
#: an ``int`` number of nanoseconds.
Budget: TypeAlias = "str | timedelta | int"
#: Runs a coroutine to completion and returns its result (``asyncio.run``-like).
Runner: TypeAlias = "Callable[[Coroutine[Any, Any, list[int]]], list[int]]"

_PERCENTILE_FIELDS: Mapping[str, str] = {
    "p50": "p50_ns",
    "p90": "p90_ns",
    "p99": "p99_ns",
    "p99.9": "p999_ns",
    "p999": "p999_ns",
    "max": "max_ns",
    "mean": "mean_ns",
}


def _budget_ns(budget: Budget) -> int:
    if isinstance(budget, bool):
        raise TypeError(_messages.LATENCY_BUDGET_TYPE.format(kind="bool"))
    if isinstance(budget, int):
        if budget <= 0:
            raise ValueError(_messages.LATENCY_BUDGET_NOT_POSITIVE.format(budget=f"{budget} ns"))
        return budget
    if isinstance(budget, timedelta):
        nanoseconds = round(budget.total_seconds() * 1_000_000_000)
        if nanoseconds <= 0:
            raise ValueError(_messages.LATENCY_BUDGET_NOT_POSITIVE.format(budget=budget))
        return nanoseconds
    if isinstance(budget, str):
        try:
            return parse_duration(budget)
        except ValueError:
            raise ValueError(
                _messages.USAGE_BAD_VALUE.format(
                    source=_messages.LATENCY_BUDGET_SOURCE,
                    expected=_messages.EXPECT_DURATION,
                    value=budget,
                )
            ) from None
    raise TypeError(_messages.LATENCY_BUDGET_TYPE.format(kind=type(budget).__name__))


def timer_cost_ns() -> float:
    """The median cost of one pair of ``perf_counter_ns`` reads, in nanoseconds.

    Every sample includes it once: a call that takes no time at all measures this.
    """
    clock = time.perf_counter_ns
    pairs = []
    for _ in range(_TIMER_PAIRS):
        start = clock()
        pairs.append(clock() - start)
    return float(statistics.median(pairs))


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency figures in nanoseconds: nearest-rank percentiles over single calls."""

    p50_ns: float
    p90_ns: float
    p99_ns: float
    p999_ns: float
    max_ns: float
    mean_ns: float
    #: Measured calls (warm-up excluded).
    calls: int
    #: Each measured call's time, in measurement order.
    samples: tuple[float, ...]
    #: Warm-up calls made before measuring.
    warmup: int = 0
    #: The timer's own cost, included in every sample (see :func:`timer_cost_ns`).
    timer_ns: float = 0.0

    @classmethod
    def from_samples(
        cls, samples: Sequence[float], *, warmup: int = 0, timer_ns: float = 0.0
    ) -> LatencyStats:
        """Summarise per-call times."""
        if not samples:
            raise ValueError(_messages.LATENCY_NO_SAMPLES)
        ordered = sorted(samples)
        return cls(
            p50_ns=percentile(ordered, 50),
            p90_ns=percentile(ordered, 90),
            p99_ns=percentile(ordered, 99),
            p999_ns=percentile(ordered, 99.9),
            max_ns=ordered[-1],
            mean_ns=math.fsum(samples) / len(samples),
            calls=len(samples),
            samples=tuple(samples),
            warmup=warmup,
            timer_ns=timer_ns,
        )

    def percentile(self, which: Percentile) -> float:
        """One figure by name: ``"p50"``, ``"p90"``, ``"p99"``, ``"p99.9"`` (or ``"p999"``), ``"max"``, ``"mean"``."""
        try:
            return float(getattr(self, _PERCENTILE_FIELDS[which]))
        except KeyError:
            choices = ", ".join(map(repr, _PERCENTILE_FIELDS))
            raise ValueError(
                _messages.LATENCY_UNKNOWN_PERCENTILE.format(choices=choices, which=which)
            ) from None

    def figures(self) -> dict[str, float]:
        """The figures by name: ``p50_ns``, ``p90_ns``, ``p99_ns``, ``p999_ns``, ``max_ns``, ``mean_ns``, ``timer_ns``."""
        return {
            "p50_ns": self.p50_ns,
            "p90_ns": self.p90_ns,
            "p99_ns": self.p99_ns,
            "p999_ns": self.p999_ns,
            "max_ns": self.max_ns,
            "mean_ns": self.mean_ns,
            "timer_ns": self.timer_ns,
        }

    def summary(self) -> str:
        """``p50 1.2 us, p99 3.4 us, p99.9 5.6 us, max 40 us over 10000 calls``."""
        return (
            f"p50 {format_duration(self.p50_ns)}, p99 {format_duration(self.p99_ns)}, "
            f"p99.9 {format_duration(self.p999_ns)}, max {format_duration(self.max_ns)} "
            f"over {self.calls} calls"
        )

    def assert_below(self, budget: Budget, percentile: Percentile = "p99") -> None:
        """Fail unless the ``percentile`` latency is strictly below ``budget``."""
        __tracebackhide__ = True
        limit = _budget_ns(budget)
        measured = self.percentile(percentile)
        if measured < limit:
            return
        raise AssertionError(
            "\n".join(
                [
                    _messages.LATENCY_OVER_BUDGET.format(
                        percentile=percentile,
                        measured=format_duration(measured),
                        budget=format_duration(limit),
                    ),
                    _messages.LATENCY_MEASURED.format(
                        calls=self.calls,
                        warmup=self.warmup,
                        timer=format_duration(self.timer_ns),
                    ),
                    f"  - p50: {format_duration(self.p50_ns)}",
                    f"  - p90: {format_duration(self.p90_ns)}",
                    f"  - p99: {format_duration(self.p99_ns)}",
                    f"  - p99.9: {format_duration(self.p999_ns)}",
                    f"  - max: {format_duration(self.max_ns)}",
                    f"  - mean: {format_duration(self.mean_ns)}",
                    _messages.LATENCY_TUNE,
                    _messages.LATENCY_READ_MORE,
                ]
            )
        )


def _check_counts(warmup: int, calls: int) -> None:
    for label, value, least in (("warmup", warmup, 0), ("calls", calls, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(
                _messages.LATENCY_BAD_COUNT.format(label=label, least=least, value=value)
            )


async def _async_samples(
    fn: Callable[[], Awaitable[object]],
    first: Awaitable[object] | None,
    warmup: int,
    calls: int,
) -> list[int]:
    clock = time.perf_counter_ns
    if first is not None:
        await first
    for _ in range(warmup):
        await fn()
    samples: list[int] = []
    append = samples.append
    for _ in range(calls):
        start = clock()
        await fn()
        append(clock() - start)
    return samples


def _sync_samples(fn: Callable[[], object], warmup: int, calls: int) -> list[int]:
    clock = time.perf_counter_ns
    for _ in range(warmup):
        fn()
    samples: list[int] = []
    append = samples.append
    for _ in range(calls):
        start = clock()
        fn()
        append(clock() - start)
    return samples


def _is_async(fn: Callable[[], object]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 -- async __call__ on an instance
    )


def _in_running_loop() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def measure_latency(
    fn: Callable[[], object],
    *,
    warmup: int = DEFAULT_WARMUP,
    calls: int = DEFAULT_CALLS,
    runner: Runner | None = None,
) -> LatencyStats:
    """Time ``fn()`` (sync, or returning an awaitable) call by call and return its figures.

    ``warmup`` calls are made first and not timed; then ``calls`` calls are
    timed one at a time. An async callable is measured in one coroutine run
    by ``runner`` (default :func:`asyncio.run`); inside a running loop use
    :func:`measure_latency_async`.
    """
    _check_counts(warmup, calls)
    timer_ns = timer_cost_ns()
    first: Awaitable[object] | None = None
    is_async = _is_async(fn)
    if not is_async:
        # A lambda around a coroutine function is async too: find out from the
        # first call, which then counts as a warm-up call.
        result = fn()
        if inspect.isawaitable(result):
            is_async, first = True, result
    if is_async:
        coroutine = _async_samples(fn, first, warmup, calls)  # type: ignore[arg-type]
        if runner is None:
            if _in_running_loop():
                coroutine.close()
                if inspect.iscoroutine(first):
                    first.close()
                raise RuntimeError(_messages.LATENCY_IN_RUNNING_LOOP)
            import asyncio

            runner = asyncio.run
        samples = runner(coroutine)
        return LatencyStats.from_samples(samples, warmup=warmup, timer_ns=timer_ns)
    samples = _sync_samples(fn, max(warmup - 1, 0), calls)
    return LatencyStats.from_samples(samples, warmup=max(warmup, 1), timer_ns=timer_ns)


async def measure_latency_async(
    fn: Callable[[], Awaitable[object]],
    *,
    warmup: int = DEFAULT_WARMUP,
    calls: int = DEFAULT_CALLS,
) -> LatencyStats:
    """The async form of :func:`measure_latency`, on the running event loop."""
    _check_counts(warmup, calls)
    timer_ns = timer_cost_ns()
    samples = await _async_samples(fn, None, warmup, calls)
    return LatencyStats.from_samples(samples, warmup=warmup, timer_ns=timer_ns)


class LatencyRecorder:
    """The ``p1_latency`` fixture: measure, record in the test's report, optionally assert.

    Each measurement is recorded in ``item.user_properties`` as
    ``p1.latency.<label>.p50_ns`` / ``p90_ns`` / ``p99_ns`` / ``p999_ns`` /
    ``max_ns`` / ``mean_ns`` / ``timer_ns`` and ``.calls`` (so it reaches
    JUnit XML and xdist's controller), and handed to ``on_measured(label,
    stats)`` (with pytest-benchmark: an entry of its own, see
    :class:`BenchmarkEntries`), before any budget is checked.
    """

    def __init__(
        self,
        properties: list[tuple[str, object]],
        default_budget_ns: int,
        on_measured: Callable[[str, LatencyStats], None] | None = None,
    ) -> None:
        self._properties = properties
        self._default_budget_ns = default_budget_ns
        self._on_measured = on_measured
        #: Every measurement of this test, by label.
        self.results: dict[str, LatencyStats] = {}

    @property
    def default_budget_ns(self) -> int:
        """The configured budget (``--p1-latency-budget``), in nanoseconds."""
        return self._default_budget_ns

    def _label(self, fn: Callable[..., object], label: str | None) -> str:
        if label is None:
            label = getattr(fn, "__name__", type(fn).__name__)
            if label == "<lambda>":
                label = f"call{len(self.results) + 1}"
        if label in self.results:
            raise ValueError(_messages.LATENCY_LABEL_TAKEN.format(label=label))
        return label

    def _record(
        self, label: str, stats: LatencyStats, budget: Budget | None, percentile: Percentile
    ) -> LatencyStats:
        __tracebackhide__ = True
        self.results[label] = stats
        for figure, value in stats.figures().items():
            self._properties.append((f"{PROPERTY_PREFIX}{label}.{figure}", round(value, 1)))
        self._properties.append((f"{PROPERTY_PREFIX}{label}.calls", stats.calls))
        if self._on_measured is not None:
            self._on_measured(label, stats)
        if budget is not None:
            stats.assert_below(budget, percentile)
        return stats

    def __call__(
        self,
        fn: Callable[[], object],
        *,
        label: str | None = None,
        budget: Budget | None = None,
        percentile: Percentile = "p99",
        warmup: int = DEFAULT_WARMUP,
        calls: int = DEFAULT_CALLS,
        runner: Runner | None = None,
    ) -> LatencyStats:
        """Measure ``fn`` (see :func:`measure_latency`), record it, check ``budget`` if given."""
        __tracebackhide__ = True
        name = self._label(fn, label)
        stats = measure_latency(fn, warmup=warmup, calls=calls, runner=runner)
        return self._record(name, stats, budget, percentile)

    async def measure_async(
        self,
        fn: Callable[[], Awaitable[object]],
        *,
        label: str | None = None,
        budget: Budget | None = None,
        percentile: Percentile = "p99",
        warmup: int = DEFAULT_WARMUP,
        calls: int = DEFAULT_CALLS,
    ) -> LatencyStats:
        """The async form of calling the fixture, on the running event loop."""
        __tracebackhide__ = True
        name = self._label(fn, label)
        stats = await measure_latency_async(fn, warmup=warmup, calls=calls)
        return self._record(name, stats, budget, percentile)


class BenchmarkEntries:
    """Adds latency measurements to pytest-benchmark's run as benchmarks of their own.

    Each measurement becomes one entry of ``benchmarksession.benchmarks``, built
    the way pytest-benchmark builds its own (a ``Metadata`` holding a ``Stats``
    fed one sample per call, in seconds, one iteration per round). So the entry
    is in ``--benchmark-json``, in what ``--benchmark-autosave`` stores, in the
    results table, and ``--benchmark-compare`` / ``--benchmark-compare-fail`` and
    ``pytest-benchmark compare`` treat it like any benchmark: its ``min``,
    ``mean``, ``median``, ``max`` are those of single calls.

    Entries are made in the process that measured (pytest-benchmark disables
    itself under xdist, so there is nothing to add to there) and only while
    pytest-benchmark is enabled (not ``--benchmark-disable``).
    """

    def __init__(self, session: Any) -> None:
        # pytest-benchmark's BenchmarkSession, as its plugin manager names it.
        self._session = session

    @property
    def enabled(self) -> bool:
        """Whether pytest-benchmark records benchmarks in this process."""
        return not getattr(self._session, "disabled", True)

    def add(
        self,
        *,
        name: str,
        fullname: str,
        group: str,
        stats: LatencyStats,
        extra_info: Mapping[str, object] | None = None,
    ) -> None:
        """Add one entry: ``stats.samples`` (nanoseconds per call) as its rounds."""
        if not self.enabled or not stats.samples:
            return
        from pytest_benchmark.stats import Metadata

        source = _EntrySource(
            name=name,
            fullname=fullname,
            group=group,
            extra_info={
                **(extra_info or {}),
                "p1_figures": {k: round(v, 1) for k, v in stats.figures().items()},
                "p1_calls": stats.calls,
            },
        )
        # pytest-benchmark leaves both unannotated.
        entry = Metadata(source, iterations=1, options=_ENTRY_OPTIONS)  # type: ignore[no-untyped-call]
        for sample in stats.samples:
            entry.update(sample / 1e9)  # type: ignore[no-untyped-call]
        self._session.benchmarks.append(entry)


#: What an entry says it was measured with (pytest-benchmark prints it with ``--benchmark-verbose``).
_ENTRY_OPTIONS: Mapping[str, object] = {"timer": "perf_counter_ns", "measured_by": "quantum-p1"}


@dataclass
class _EntrySource:
    """What pytest-benchmark's ``Metadata`` reads from the fixture that measured."""

    name: str
    fullname: str
    group: str
    extra_info: dict[str, object]
    param: str | None = None
    params: dict[str, object] | None = None
    cprofile_stats: None = None
    has_error: bool = False


def benchmark_name(test_name: str, label: str) -> str:
    """The entry name of a ``p1_latency`` measurement: ``test_name[label]``.

    A parametrized test's name already ends in ``[...]``: the label joins it
    (``test_read[fake-label]``), so ``-k``-style matching still finds both.
    """
    if test_name.endswith("]"):
        return f"{test_name[:-1]}-{label}]"
    return f"{test_name}[{label}]"


#: The name pytest-benchmark registers its session under, in every loading form.
_BENCHMARK_SESSION_PLUGIN = "pytest-benchmark"


def benchmark_entries(config: pytest.Config) -> BenchmarkEntries | None:
    """The bridge into pytest-benchmark's run, or ``None`` when it is not active.

    Looked up when a measurement is made, not at configure time:
    pytest-benchmark creates its session in a ``trylast`` ``pytest_configure``,
    after this plugin's, whether it was autoloaded or loaded with ``-p``.
    """
    session = config.pluginmanager.get_plugin(_BENCHMARK_SESSION_PLUGIN)
    if session is None or not hasattr(session, "benchmarks"):
        return None
    return BenchmarkEntries(session)
