"""Live progress of a long acceptance criterion: what runs, scenarios so far, elapsed.

A criterion running longer than ``PROGRESS_AFTER_S`` says so on the terminal:
rewritten in place every second on a terminal, one line per
``PROGRESS_LOG_EVERY_S`` at most in a log (CI), nothing under ``-q``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_quantum_p1 import _messages, _options
from pytest_quantum_p1._acceptance import drive
from pytest_quantum_p1._acceptance.drive import ProgressLine, run_within, scenario_progress


@dataclass
class FakeReporter:
    """Records what a ProgressLine writes, as pytest's terminal reporter would show it."""

    isatty: bool
    lines: list[str] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)
    newlines: int = 0

    def ensure_newline(self) -> None:
        self.newlines += 1

    def write_line(self, line: str) -> None:
        self.lines.append(line)

    def rewrite(self, line: str) -> None:
        self.rewrites.append(line)


class FakePlugins:
    def __init__(self, reporter: FakeReporter | None) -> None:
        self.reporter = reporter

    def get_plugin(self, name: str) -> Any:
        return self.reporter if name == "terminalreporter" else None


@dataclass
class FakeConfig:
    pluginmanager: FakePlugins
    verbosity: int = 0

    def get_verbosity(self) -> int:
        return self.verbosity


def _line(reporter: FakeReporter | None, verbosity: int = 0) -> ProgressLine:
    config: Any = FakeConfig(FakePlugins(reporter), verbosity)
    return ProgressLine(config, "P1-2.no-stale-reads")


def _running(elapsed: float, scenarios: str = "") -> str:
    return _messages.PROGRESS_RUNNING.format(
        name="P1-2.no-stale-reads", scenarios=scenarios, elapsed=elapsed
    )


def test_a_quick_check_shows_nothing() -> None:
    reporter = FakeReporter(isatty=True)
    line = _line(reporter)
    line.tick(0.5)
    line.tick(drive.PROGRESS_AFTER_S - 0.1)
    line.finish(drive.PROGRESS_AFTER_S - 0.05)
    assert reporter.rewrites == reporter.lines == []


def test_on_a_terminal_the_line_is_rewritten_every_tick_and_ends_with_the_duration() -> None:
    reporter = FakeReporter(isatty=True)
    line = _line(reporter)
    for elapsed in (1.0, 2.0, 3.0, 4.0):
        line.tick(elapsed)
    line.finish(4.5)
    assert reporter.newlines == 1  # off the progress dots once, then in place
    assert reporter.rewrites == [
        _running(2.0),
        _running(3.0),
        _running(4.0),
        _messages.PROGRESS_DONE.format(name="P1-2.no-stale-reads", scenarios="", elapsed=4.5),
    ]
    assert reporter.lines == []


def test_in_a_log_there_is_one_line_per_five_seconds_at_most() -> None:
    reporter = FakeReporter(isatty=False)
    line = _line(reporter)
    ticks = [1.0 + 0.5 * i for i in range(40)]  # 1 s .. 20.5 s
    for elapsed in ticks:
        line.tick(elapsed)
    line.finish(21.0)
    assert reporter.rewrites == []
    assert reporter.lines == [_running(t) for t in (2.0, 7.0, 12.0, 17.0)]


@pytest.mark.parametrize(
    "line", [_line(FakeReporter(isatty=True), verbosity=-1), _line(None)], ids=["-q", "no-terminal"]
)
def test_quiet_runs_and_runs_without_a_terminal_reporter_show_nothing(line: ProgressLine) -> None:
    line.tick(10.0)
    line.finish(11.0)  # nothing to write to: no error either


def test_a_search_reports_its_scenarios_through_the_context_of_the_criterion() -> None:
    reporter = FakeReporter(isatty=False)
    line = _line(reporter)
    assert scenario_progress(200) is None  # outside a criterion: nobody listens
    reported = threading.Event()

    def check() -> None:
        # In the criterion's worker thread, as check_no_stale_reads(progress=...) calls it.
        report = scenario_progress(200)
        assert report is not None
        report(120)
        reported.set()

    with line.reporting():
        run_within(check, 5.0, name="P1-2.no-stale-reads", timeout_option=_options.OPT_TIMEOUT)
    assert reported.is_set()
    line.tick(3.0)
    scenarios = _messages.PROGRESS_SCENARIOS_OF.format(done=120, planned=200)
    assert reporter.lines == [_running(3.0, scenarios)]


def test_run_within_ticks_in_the_calling_thread_while_the_check_runs() -> None:
    ticks: list[tuple[float, str]] = []
    release = threading.Event()

    def check() -> None:
        release.wait(10)

    def tick(elapsed: float) -> None:
        ticks.append((elapsed, threading.current_thread().name))
        if len(ticks) >= 2:
            release.set()

    run_within(check, 30.0, name="slow", timeout_option=_options.OPT_TIMEOUT, on_tick=tick)
    assert len(ticks) >= 2
    assert all(name == threading.current_thread().name for _, name in ticks)
    assert ticks[0][0] < ticks[1][0]


#: A store whose ``initialize`` never returns: its criterion runs until its deadline.
HANGING_TARGET = """
import asyncio
from dataclasses import replace

from reference_impl.p1_target import TARGET as REFERENCE
from reference_impl.services.policy_store_v2 import PolicyStoreV2


class NeverReady(PolicyStoreV2):
    async def initialize(self):
        await asyncio.Event().wait()


TARGET = replace(REFERENCE, store_factory=lambda redis, clock: NeverReady(redis, clock=clock))
"""


@pytest.mark.parametrize("quiet", [False, True], ids=["default", "-q"])
def test_a_criterion_running_past_two_seconds_says_so_in_the_log_but_not_under_q(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    pytester.makepyfile(hanging_target=HANGING_TARGET)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # A subprocess: its output is a pipe, as in CI (no terminal: plain lines).
    result = pytester.runpytest_subprocess(
        "-p",
        "quantum_p1",
        "-p",
        "no:cacheprovider",
        "--p1",
        "--p1-target=hanging_target:TARGET",
        "-k",
        "cached-read",
        "--p1-timeout=3s",
        *(["-q"] if quiet else []),
    )
    result.assert_outcomes(failed=1, deselected=25)
    running = _messages.PROGRESS_RUNNING.split("{elapsed")[0].format(
        name="P1-2.cached-read", scenarios=""
    )
    progress = [line for line in result.outlines if line.startswith(running)]
    # One line in 3 s: the first at 2 s, the next would be due 5 s later.
    assert len(progress) == (0 if quiet else 1), result.outlines


def test_the_stale_read_search_reports_the_scenarios_it_ran_to_its_progress_callback() -> None:
    from pytest_quantum_p1._stateful import check_no_stale_reads
    from reference_impl.p1_target import TARGET

    reported: list[int] = []
    result = check_no_stale_reads(
        TARGET.store_factory, TARGET.policy_ttl, scenarios=6, progress=reported.append
    )
    assert result.failures is None
    assert reported
    assert reported[-1] == result.scenarios >= 6


def test_a_search_that_finds_a_stale_read_reports_how_far_it_got() -> None:
    from pytest_quantum_p1._stateful import check_no_stale_reads
    from tests.plugin.broken_stateful import store_publishing_before_storing

    target = store_publishing_before_storing(Path("."))
    reported: list[int] = []
    result = check_no_stale_reads(
        target.store_factory, target.policy_ttl, shrink=False, progress=reported.append
    )
    assert result.failures is not None
    assert reported[-1] == result.scenarios
