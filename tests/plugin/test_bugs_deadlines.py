"""Never hang, never crash, and tell failed from error: the acceptance run against hostile targets.

Each hostile target (:mod:`tests.plugin.broken_hostile`) makes one kind of
call into the target never return. The run must end in bounded time with the
criteria making that call failed, each naming the call, every other criterion
passed, and the reports written. A short ``--p1-timeout`` keeps the runs quick;
times are compared with wide margins, never to tight absolute figures.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pytest_quantum_p1 import _messages, _options
from pytest_quantum_p1._acceptance import drive
from tests.plugin import broken_hostile as hostile
from tests.plugin.broken_targets import (
    NOT_SLOW,
    Builder,
    Checklist,
    outcomes,
    read_report,
    run_p1,
)
from tests.plugin.verdicts import FAST_IDS, REPORT, Break, assert_breaks_exactly

#: The deadline of an ordinary criterion in these runs: ten times the slowest
#: one's time on the reference (the hit-rate simulation gets 4x it).
TIMEOUT = "--p1-timeout=2s"
#: What every "did not return" message says first, and its advice.
DID_NOT_RETURN = "a call into the backend did not return: "
FIX = "Every call into the backend must return"


@dataclass(frozen=True)
class Hang:
    """A target whose ``call`` never returns, and the criteria that make that call."""

    builder: Builder
    #: The criterion this call belongs to: it must fail, naming the call.
    criterion: str
    #: The target function the harness called, as the message names it.
    call: str
    #: Phrases of the message besides the call.
    found: tuple[str, ...]
    #: Which other criteria make the same call, and so may fail the same way.
    also: Callable[[str], bool]


def _performs_actions(criterion: str) -> bool:
    # P1-1 criteria perform the actions, and so does the run-time v2 guard.
    return criterion.startswith("P1-1.") or criterion == "P1-3.bridge-only-at-runtime"


def _uses_stores(criterion: str) -> bool:
    return criterion.startswith("P1-2.")


def _runs_probe_or_health(criterion: str) -> bool:
    return criterion == "P1-3.bridge-only-at-runtime"


HANGS = [
    Hang(
        hostile.sync_action_that_never_returns,
        "P1-1.hfos-mode",
        "_mode_change_blocking",
        ("- stuck at: _block (", "broken_hostile.py:", "blocked in "),
        _performs_actions,
    ),
    Hang(
        hostile.async_action_awaiting_forever,
        "P1-1.safety-level",
        "_safety_change_awaiting_forever",
        ("- stuck at: _await_forever (", "- the harness was in: "),
        _performs_actions,
    ),
    Hang(
        hostile.async_action_blocking_its_loop,
        "P1-1.shadow-test",
        "_shadow_test_blocking_its_loop",
        ("- stuck at: _block (", "blocked in "),
        _performs_actions,
    ),
    Hang(
        hostile.store_whose_initialize_never_returns_in_one_instance,
        "P1-2.ttl",
        "_StuckStore.initialize",
        ("- the harness was in: criterion_ttl (",),
        _uses_stores,
    ),
    Hang(
        hostile.store_whose_get_policy_never_returns_in_one_instance,
        "P1-2.ttl",
        "_StuckStore.get_policy",
        ("- stuck at: _await_forever (",),
        _uses_stores,
    ),
    Hang(
        hostile.store_whose_get_policy_blocks_its_loop_in_one_instance,
        "P1-2.ttl",
        "_StuckStore.get_policy",
        ("- stuck at: _block (", "blocked in "),
        _uses_stores,
    ),
    Hang(
        hostile.store_whose_close_never_returns,
        "P1-2.cached-read",
        "_StuckStore.close",
        ("- stuck at: _await_forever (",),
        _uses_stores,
    ),
    Hang(
        hostile.health_check_awaiting_forever,
        "deploy.health",
        "_health_awaiting_forever",
        ("- the harness was in: criterion_health (",),
        _runs_probe_or_health,
    ),
    Hang(
        hostile.relay_probe_awaiting_forever,
        "P1-3.bridge-relays",
        "_relay_awaiting_forever",
        ("- the harness was in: criterion_bridge_relays (",),
        _runs_probe_or_health,
    ),
]


@pytest.mark.parametrize("case", HANGS, ids=lambda case: case.builder.__name__)
def test_a_call_that_never_returns_fails_its_criteria_naming_the_call(
    pytester: pytest.Pytester, case: Hang
) -> None:
    """The criteria making the call fail, naming it; all others pass; the reports are written."""
    started = time.monotonic()
    result = run_p1(pytester, REPORT, TIMEOUT, *NOT_SLOW, target=case.builder)
    elapsed = time.monotonic() - started

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    report = read_report(pytester.path / "p1.json")
    assert (pytester.path / "p1.html").is_file()
    found = outcomes(report)
    assert list(found) == FAST_IDS
    stuck = {name for name, outcome in found.items() if outcome != "passed"}
    assert case.criterion in stuck
    assert all(case.also(name) for name in stuck - {case.criterion})
    checklist = Checklist.parse(result.outlines)
    headline = _messages.DEADLINE_DID_NOT_RETURN.partition("{")[0] + case.call
    for name in stuck:
        # Every one of them failed for this call, and says so where users read it.
        assert found[name] == "failed"
        (message,) = (c["message"] for c in report["criteria"] if c["id"] == name)
        assert message.startswith(headline)
        assert FIX in message
        line = checklist.lines[name]
        assert line.detail == _messages.DEADLINE_SUMMARY.format(function=case.call)
    (message,) = (c["message"] for c in report["criteria"] if c["id"] == case.criterion)
    for phrase in case.found:
        assert phrase in message
    # Each stuck criterion costs one deadline (2 s; 8 s for the hit-rate
    # simulation): nothing may wait anywhere near the harness's own per-call
    # timeouts (10-30 s each, which made this 110-220 s before).
    assert elapsed < 30 + 4 * len(stuck)


def test_every_stuck_criterion_reads_as_did_not_finish_in_the_checklist(
    pytester: pytest.Pytester,
) -> None:
    result = run_p1(
        pytester, REPORT, TIMEOUT, "-k", "health", target=hostile.health_check_awaiting_forever
    )
    line = Checklist.parse(result.outlines).lines["deploy.health"]
    assert line.mark == "FAIL"
    assert line.detail == _messages.DEADLINE_SUMMARY.format(function="_health_awaiting_forever")


def test_a_store_stuck_in_one_instance_costs_one_deadline_per_criterion(
    pytester: pytest.Pytester,
) -> None:
    """Was 221 s here: cluster timeouts, then portal timeouts, then a fixture teardown waiting again."""
    started = time.monotonic()
    result = run_p1(
        pytester,
        REPORT,
        TIMEOUT,
        "-k",
        "P1-2.ttl or P1-2.invalidation",
        target=hostile.store_whose_get_policy_blocks_its_loop_in_one_instance,
    )
    elapsed = time.monotonic() - started
    assert outcomes(read_report(pytester.path / "p1.json")) == {
        "P1-2.ttl": "failed",
        "P1-2.invalidation": "failed",
    }
    assert "INTERNALERROR" not in result.stdout.str()
    assert elapsed < 30  # two deadlines of 2 s, with room for a loaded machine


def test_a_harness_timeout_while_a_target_call_is_stuck_fails_naming_the_call(
    pytester: pytest.Pytester,
) -> None:
    """Under a long deadline the cluster's own 10 s ``initialize`` wait gives up first."""
    result = run_p1(
        pytester,
        REPORT,
        "--p1-timeout=60s",
        "-k",
        "P1-2.ttl",
        target=hostile.store_whose_initialize_never_returns_in_one_instance,
    )
    (ttl,) = read_report(pytester.path / "p1.json")["criteria"]
    assert ttl["outcome"] == "failed"
    assert ttl["message"].startswith(
        _messages.DEADLINE_HARNESS_GAVE_UP.format(function="_StuckStore.initialize")
    )
    assert "instance 1: initialize() did not return within 10s" in ttl["message"]
    assert "- stuck at: _await_forever (" in ttl["message"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# -- the watchdog on its own ------------------------------------------------------------


def _run(check: Callable[[], object], seconds: float = 5.0) -> object:
    return drive.run_within(check, seconds, name="unit", timeout_option="--p1-timeout")


def test_the_watchdog_returns_and_raises_what_the_check_does() -> None:
    assert _run(lambda: 42) == 42
    with pytest.raises(ValueError, match="boom"):
        _run(lambda: int("boom"))
    with pytest.raises(KeyboardInterrupt):  # the user's Ctrl-C is nobody's verdict
        _run(_raise(KeyboardInterrupt()))


def _raise(exc: BaseException) -> Callable[[], object]:
    def check() -> object:
        raise exc

    return check


def test_an_overrun_with_no_target_code_running_is_a_harness_error() -> None:
    started = time.monotonic()
    # time.sleep has no Python frame: nothing of the target's is running.
    with pytest.raises(drive.DeadlineExceeded, match="no backend code was running"):
        _run(functools.partial(time.sleep, 30), seconds=0.3)
    assert time.monotonic() - started < 10


def test_an_overrun_in_target_code_is_a_verdict_naming_it() -> None:
    with pytest.raises(pytest.fail.Exception) as caught:
        _run(hostile.block_for_a_test, seconds=0.3)
    assert str(caught.value).startswith(DID_NOT_RETURN + "block_for_a_test was still running")


def test_where_an_error_was_raised_prefers_the_targets_frame() -> None:
    try:
        hostile.raise_from_the_target()
    except RuntimeError as exc:
        where = drive.raised_at(exc)
    assert where is not None
    site, in_target = where
    assert in_target
    assert site.function == "raise_from_the_target"
    assert site.file.endswith("broken_hostile.py")


# -- no INTERNALERROR -----------------------------------------------------------------


def test_a_target_module_calling_sys_exit_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.syspathinsert()
    spec = hostile.target_module_calling_sys_exit(pytester.path)
    result = run_p1(pytester, f"--p1-target={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(
        [
            "ERROR: quantum-p1: cannot load the target 'exiting_target:TARGET' (from --p1-target): "
            "importing module 'exiting_target' raised SystemExit: backend refuses to load*"
        ]
    )


ERRORS = [
    Break(
        "P1-1.hfos-mode",
        hostile.action_raising_a_base_exception,
        (
            "the check could not run: HostileExit: the action gave up",
            "raised in the backend at _mode_change_raising_a_base_exception (",
            "broken_hostile.py:",
        ),
        None,
        outcome="error",
        collateral=frozenset(
            {"P1-1.logged", "P1-1.failing-subscriber", "P1-3.bridge-only-at-runtime"}
        )
        & frozenset(FAST_IDS),
    ),
    Break(
        "P1-1.node-status",
        hostile.action_raising_system_exit,
        (
            "the check could not run: SystemExit: node status: shutting down",
            "raised in the backend at _node_status_calling_sys_exit (",
        ),
        None,
        outcome="error",
        collateral=frozenset(
            {"P1-1.logged", "P1-1.failing-subscriber", "P1-3.bridge-only-at-runtime"}
        )
        & frozenset(FAST_IDS),
    ),
    Break(
        "P1-1.safety-level",
        hostile.action_calling_pytest_fail,
        (
            "the check could not run: Failed: governor: not in a test",
            "raised in the backend at _level_change_calling_pytest_fail (",
        ),
        None,
        outcome="error",
        collateral=frozenset(
            {"P1-1.logged", "P1-1.failing-subscriber", "P1-3.bridge-only-at-runtime"}
        )
        & frozenset(FAST_IDS),
    ),
]


@pytest.mark.parametrize("case", ERRORS, ids=lambda case: case.builder.__name__)
def test_a_target_raising_what_it_must_not_is_an_error_with_its_cause(
    pytester: pytest.Pytester, case: Break
) -> None:
    """Not a verdict, not an INTERNALERROR: an error naming the exception and the backend's frame."""
    assert_breaks_exactly(pytester, case)
    report = read_report(pytester.path / "p1.json")
    (errored,) = (c for c in report["criteria"] if c["id"] == case.criterion)
    # Never worded as a broken promise, nor with a claim the check made on the way.
    assert not errored["message"].startswith(DID_NOT_RETURN)
    assert errored["summary"] == ""


def test_the_reference_passes_under_the_default_deadline(pytester: pytest.Pytester) -> None:
    result = run_p1(pytester, REPORT, *NOT_SLOW)
    assert result.ret == pytest.ExitCode.OK
    assert set(outcomes(read_report(pytester.path / "p1.json")).values()) == {"passed"}


# -- the option ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0s", "30", "soon", "-1s"])
def test_a_bad_timeout_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    result = run_p1(pytester, f"{_options.OPT_TIMEOUT}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = _messages.USAGE_BAD_VALUE.format(
        source=_options.OPT_TIMEOUT, expected=_messages.EXPECT_DURATION, value=value
    )
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_the_ini_twin_sets_the_deadline(pytester: pytest.Pytester) -> None:
    pytester.makeini(f"[pytest]\n{_options.INI_TIMEOUT} = 2s\n")
    started = time.monotonic()
    result = run_p1(pytester, REPORT, "-k", "health", target=hostile.health_check_awaiting_forever)
    assert outcomes(read_report(pytester.path / "p1.json")) == {"deploy.health": "failed"}
    assert time.monotonic() - started < 25  # 2 s, not the default 30 s
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_bad_ini_timeout_names_the_ini_key(pytester: pytest.Pytester) -> None:
    pytester.makeini(f"[pytest]\n{_options.INI_TIMEOUT} = forever\n")
    result = run_p1(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: *{_options.INI_TIMEOUT} (ini)*forever*"])
