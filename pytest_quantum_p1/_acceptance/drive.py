"""How a criterion drives the target: under a deadline, with probe data of its own, v2 warnings quiet.

**Deadlines.** :func:`run_within` runs a criterion's check in a daemon worker
thread and waits for it at most its deadline. A check that overruns is
abandoned (a daemon thread keeps neither the run nor pytest's exit waiting),
and :func:`find_stuck` says why: it reads the stack of every thread the check
drives (``sys._current_frames``) and, for each event loop running in one, the
await chain of every task the harness started there. The innermost frames that
belong to the target (not to the harness, the standard library, redis,
fakeredis, hypothesis or pytest) are the call that did not return.

So an overrun in target code is a *failed* criterion (the backend broke the
promise that every call returns) naming the call, while an overrun with no
target code running is an *error* of the harness (:class:`DeadlineExceeded`).
The harness's own, shorter waits (a cluster's ``initialize`` or ``settle``
timeouts) end a check with a :class:`TimeoutError`; the worker is sampled
while it runs, so such a timeout is a failed criterion too when the same
target call was stuck in two samples in a row.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from types import CodeType, FrameType, TracebackType
from typing import Any, Literal, NoReturn, TypeVar

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.verdict import bullets, fail
from pytest_quantum_p1._redis.namespace import WORKER_THREAD_PREFIX, current_prefix

__all__ = [
    "DeadlineExceeded",
    "Progress",
    "ProgressLine",
    "Site",
    "Stuck",
    "find_stuck",
    "harness_waits",
    "probe_name",
    "quiet_v2_warnings",
    "raised_at",
    "raised_by_target",
    "run",
    "run_within",
    "scenario_progress",
]

T = TypeVar("T")

#: Seconds a check runs before the watchdog first looks at it (quick checks are
#: never disturbed), then between looks.
FIRST_LOOK_S = 1.0
LOOK_EVERY_S = 1.0

#: Top-level packages that are neither the harness nor the target: where a
#: target call is stuck is the innermost frame *outside* these.
_INFRASTRUCTURE = frozenset(
    {
        "_pytest",
        "pytest",
        "pluggy",
        "redis",
        "fakeredis",
        "hypothesis",
        "_hypothesis_pytestplugin",
        "sortedcontainers",
        "async_timeout",
        "lupa",
        "xdist",
        "execnet",
    }
)
_HARNESS = __name__.partition(".")[0]

Origin = Literal["harness", "target", "other"]


def run(awaitable: Awaitable[T]) -> T:
    """Run a target's awaitable (typed ``Awaitable``, not only coroutines) to completion."""

    async def wait() -> T:
        return await awaitable

    return asyncio.run(wait())


def probe_name(prefix: str) -> str:
    """A policy or round name no other probe (nor the target's own data) uses.

    On a Redis the harness does not own it starts with the run's namespace
    (``p1-<token>-t<n>-``, :mod:`pytest_quantum_p1._redis.namespace`), so every
    key a store makes of it can be found and removed.
    """
    return f"{current_prefix() or 'p1-'}{prefix}-{secrets.token_hex(4)}"


@contextmanager
def quiet_v2_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record, instead of raising or showing, the warnings of the block."""
    # Actions legitimately build the deprecated engine through the bridge; its
    # DeprecationWarning is P1-3's business, not a failure of a P1-1 check
    # (and would be an error under -W error).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


# -- where code is ----------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """One frame as a reader finds it: function, file and line."""

    function: str
    file: str
    line: int

    @classmethod
    def of(cls, frame: FrameType) -> Site:
        code = frame.f_code
        return cls(code.co_qualname, code.co_filename, frame.f_lineno or code.co_firstlineno)

    def __str__(self) -> str:
        return f"{self.function} ({self.file}:{self.line})"


@dataclass(frozen=True)
class Stuck:
    """A call into the target that had not returned, and how the harness got there."""

    #: The target function the harness called (the outermost target frame).
    call: Site
    #: The innermost target frame: where the target was when looked at.
    at: Site
    #: The innermost frame of all when it is not the target's (a lock, ``select``).
    blocked_in: Site | None
    #: The harness frames that led to the call, outermost first.
    harness: tuple[Site, ...]
    #: A thread was blocked in it (``True``) or a coroutine awaited in it.
    blocking: bool
    #: Identifies the frame and instruction, to tell "still there" from "moved on".
    key: tuple[int, int] = field(compare=False)


def _origin(frame: FrameType) -> Origin:
    module = frame.f_globals.get("__name__")
    top = module.partition(".")[0] if isinstance(module, str) else ""
    if top == _HARNESS:
        return "harness"
    if not top or top in sys.stdlib_module_names or top in _INFRASTRUCTURE:
        return "other"
    return "target"


def _is_plumbing(code: CodeType) -> bool:
    # This module's own frames (the worker, the watchdog) are not what the
    # harness "was doing"; nor is the criterion item that called it.
    return code.co_filename in (__file__, _CRITERIA_FILE)


_CRITERIA_FILE = __file__.replace("drive.py", "criteria.py")


def _stuck_in(frames: list[FrameType], blocking: bool) -> Stuck | None:
    """The target call in ``frames`` (outermost first), if the innermost target code is there."""
    origins = [_origin(frame) for frame in frames]
    if "target" not in origins:
        return None
    innermost = len(origins) - 1 - origins[::-1].index("target")
    first = innermost
    while first > 0 and origins[first - 1] == "target":
        first -= 1
    harness = tuple(
        Site.of(frame)
        for frame, origin in zip(frames[:first], origins[:first], strict=True)
        if origin == "harness" and not _is_plumbing(frame.f_code)
    )
    last = frames[-1]
    return Stuck(
        call=Site.of(frames[first]),
        at=Site.of(frames[innermost]),
        blocked_in=None if innermost == len(frames) - 1 else Site.of(last),
        harness=harness,
        blocking=blocking,
        key=(id(frames[innermost]), frames[innermost].f_lasti),
    )


def _sync_stack(frame: FrameType | None) -> list[FrameType]:
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames[::-1]


def _await_chain(task: asyncio.Task[object]) -> list[FrameType]:
    """The frames a suspended task is awaiting in, outermost first.

    ``Task.get_stack`` gives only the outermost coroutine's frame; the chain
    of ``await`` s is followed here, through coroutines and generators.
    """
    frames: list[FrameType] = []
    awaited: object = task.get_coro()
    while awaited is not None and len(frames) < 200:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if not isinstance(frame, FrameType):
            break
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return frames


def _loops(frames: Iterable[FrameType]) -> list[asyncio.AbstractEventLoop]:
    """The event loops running in a thread: found by their ``run_forever`` frames."""
    found = []
    for frame in frames:
        if frame.f_code.co_name == "run_forever":
            loop = frame.f_locals.get("self")
            if isinstance(loop, asyncio.AbstractEventLoop) and loop not in found:
                found.append(loop)
    return found


def find_stuck(threads: Iterable[int]) -> list[Stuck]:
    """The target calls the given threads are in, blocked or awaiting; the blocked ones first.

    A thread blocked in target code counts whatever called it; an await chain
    counts only in tasks the harness started (a store's own listener task
    waiting for messages is not a call that did not return).
    """
    stacks = sys._current_frames()
    blocked: list[Stuck] = []
    awaiting: list[Stuck] = []
    prefix: tuple[Site, ...] = ()
    for ident in threads:
        frames = _sync_stack(stacks.get(ident))
        if not frames:
            continue
        stuck = _stuck_in(frames, blocking=True)
        if stuck is not None:
            blocked.append(stuck)
            continue
        if not prefix:  # the first thread is the check's own: its harness frames lead everywhere
            prefix = tuple(
                Site.of(f) for f in frames if _origin(f) == "harness" and not _is_plumbing(f.f_code)
            )
        for loop in _loops(frames):
            with suppress(RuntimeError):  # the loop's task set changed while read: skip it
                for task in asyncio.all_tasks(loop):
                    chain = _await_chain(task)
                    if not chain or _origin(chain[0]) != "harness":
                        continue
                    stuck = _stuck_in(chain, blocking=False)
                    if stuck is not None:
                        awaiting.append(_led_by(stuck, prefix))
    return blocked + awaiting


def harness_waits(threads: Iterable[int]) -> list[Site]:
    """Where the harness is waiting in the given threads: the innermost harness frame of each
    thread's stack and of each task the harness started on a loop running there."""
    stacks = sys._current_frames()
    found: list[Site] = []
    for ident in threads:
        frames = _sync_stack(stacks.get(ident))
        chains = [frames]
        for loop in _loops(frames):
            with suppress(RuntimeError):
                chains += [_await_chain(task) for task in asyncio.all_tasks(loop)]
        for chain in chains:
            own = [f for f in chain if _origin(f) == "harness" and not _is_plumbing(f.f_code)]
            if own and (chain is frames or _origin(chain[0]) == "harness"):
                site = Site.of(own[-1])
                if site not in found:
                    found.append(site)
    return found


def _led_by(stuck: Stuck, prefix: tuple[Site, ...]) -> Stuck:
    return Stuck(
        call=stuck.call,
        at=stuck.at,
        blocked_in=stuck.blocked_in,
        harness=prefix + tuple(s for s in stuck.harness if s not in prefix),
        blocking=stuck.blocking,
        key=stuck.key,
    )


def raised_at(exc: BaseException) -> tuple[Site, bool] | None:
    """Where ``exc`` was raised: the innermost target frame of its traceback (``True``), else the
    innermost harness frame (``False``); the exceptions it was raised from are searched too."""
    seen: set[int] = set()
    harness: Site | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = _traceback_frames(current.__traceback__)
        origins = [_origin(f) for f, _ in frames]
        if "target" in origins:
            index = len(origins) - 1 - origins[::-1].index("target")
            frame, line = frames[index]
            return Site(frame.f_code.co_qualname, frame.f_code.co_filename, line), True
        if harness is None and "harness" in origins:
            index = len(origins) - 1 - origins[::-1].index("harness")
            frame, line = frames[index]
            harness = Site(frame.f_code.co_qualname, frame.f_code.co_filename, line)
        # What it was raised from, as Python shows it: ``from None`` hides the context.
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return None if harness is None else (harness, False)


def raised_by_target(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by the target: the innermost frame of its traceback that is
    either the harness's or the target's (``pytest.fail`` itself is neither) is the target's."""
    origins = [_origin(frame) for frame, _ in _traceback_frames(exc.__traceback__)]
    own = [origin for origin in origins if origin != "other"]
    return bool(own) and own[-1] == "target"


def _traceback_frames(tb: TracebackType | None) -> list[tuple[FrameType, int]]:
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return frames


# -- the watchdog ---------------------------------------------------------------------


class DeadlineExceeded(TimeoutError):
    """A check did not finish within its deadline while no target code was running.

    An error of the harness, not a verdict: nothing shows the backend broke a promise.
    """


@dataclass
class _Worker:
    """The state a check's worker thread shares with the watchdog."""

    #: ``(True, value)`` or ``(False, exception)`` once the check returned or raised.
    outcome: tuple[bool, object] | None = None
    #: The check's own exception when the clean-up after it is what is running.
    check_error: BaseException | None = None
    #: Threads alive before the check started: not the check's to answer for.
    before: frozenset[int] = frozenset()
    #: What the watchdog saw at its last two looks.
    looks: list[list[Stuck]] = field(default_factory=list)
    #: The calls last seen stuck in two looks in a row. Kept apart from ``looks``:
    #: on a loaded machine a later look may come after the harness gave up and
    #: cancelled the stuck call, and must not erase what was seen before.
    confirmed: list[Stuck] = field(default_factory=list)


def _threads_of(worker: threading.Thread, state: _Worker) -> list[int]:
    """The worker first, then every thread started since the check began (portals, loops)."""
    assert worker.ident is not None
    newer = [
        t.ident
        for t in threading.enumerate()
        if t.ident is not None and t.ident != worker.ident and t.ident not in state.before
    ]
    return [worker.ident, *newer]


def run_within(
    check: Callable[[], T],
    seconds: float,
    *,
    name: str,
    timeout_option: str,
    cleanup: Callable[[], None] | None = None,
    on_overrun: Callable[[], None] | None = None,
    on_stuck: Callable[[str], None] | None = None,
    on_tick: Callable[[float], None] | None = None,
) -> T:
    """``check()`` in a daemon thread, for at most ``seconds``; then ``cleanup()``, in the same time.

    Returns what the check returns and raises what it raises, except:

    - on overrun, a failed verdict naming the target call that did not
      return (:func:`find_stuck`), or :class:`DeadlineExceeded` if no target
      code was running; the worker is abandoned;
    - a :class:`TimeoutError` the harness raised while a target call was stuck
      in two looks in a row becomes a verdict naming that call.

    ``on_overrun()`` is called once the worker is abandoned (to let go of what
    it holds); ``on_stuck(function)`` with the target function named by a verdict;
    ``on_tick(elapsed_s)`` in the calling thread about every :data:`LOOK_EVERY_S`
    while the check runs (live progress: see :class:`ProgressLine`).

    ``KeyboardInterrupt`` is left alone: it is the user's Ctrl-C.
    """
    __tracebackhide__ = True
    state = _Worker(before=frozenset(t.ident for t in threading.enumerate() if t.ident))
    context = contextvars.copy_context()

    def work() -> None:
        try:
            state.outcome = (True, context.run(check))
        except BaseException as exc:  # every outcome is re-raised in the caller's thread
            state.outcome = (False, exc)
        if cleanup is not None:
            if state.outcome[0] is False:
                state.check_error = state.outcome[1]  # type: ignore[assignment]
            try:
                context.run(cleanup)
            except BaseException as exc:
                if state.outcome[0]:  # the check's own error is the one to report
                    state.outcome = (False, exc)

    worker = threading.Thread(target=work, name=f"{WORKER_THREAD_PREFIX}{name}", daemon=True)
    started = time.monotonic()
    worker.start()
    end = started + seconds
    next_look = started + FIRST_LOOK_S
    while worker.is_alive():
        now = time.monotonic()
        if now >= end:
            break
        worker.join(max(0.0, min(end, next_look) - now))
        if on_tick is not None and worker.is_alive():
            on_tick(time.monotonic() - started)
        if worker.is_alive() and time.monotonic() >= next_look:
            state.looks = [*state.looks[-1:], find_stuck(_threads_of(worker, state))]
            state.confirmed = _still_stuck(state.looks) or state.confirmed
            next_look = time.monotonic() + LOOK_EVERY_S
    stuck: list[Stuck] = []
    waits: list[Site] = []
    if worker.is_alive():
        threads = _threads_of(worker, state)
        stuck = find_stuck(threads)
        waits = [] if stuck else harness_waits(threads)
    if worker.is_alive():  # (it may have finished while it was being looked at)
        if on_overrun is not None:
            on_overrun()
        if stuck and on_stuck is not None:
            on_stuck(stuck[0].call.function)
        _overrun(seconds, name, timeout_option, stuck, state, waits)
    assert state.outcome is not None
    ok, value = state.outcome
    if ok:
        return value  # type: ignore[return-value]
    assert isinstance(value, BaseException)
    if isinstance(value, TimeoutError) and _raised_by_harness(value):
        stuck = state.confirmed
        if stuck:
            if on_stuck is not None:
                on_stuck(stuck[0].call.function)
            _harness_gave_up(value, stuck, timeout_option)
    raise value


def _raised_by_harness(exc: BaseException) -> bool:
    where = raised_at(exc)
    return where is not None and not where[1]


def _still_stuck(looks: list[list[Stuck]]) -> list[Stuck]:
    """The calls stuck at the same frame and instruction in the last two looks."""
    if len(looks) < 2:
        return []
    earlier = {stuck.key for stuck in looks[-2]}
    return [stuck for stuck in looks[-1] if stuck.key in earlier]


def _evidence(stuck: list[Stuck]) -> list[str]:
    first = stuck[0]
    at = str(first.at)
    if first.blocked_in is not None:
        at = _messages.DEADLINE_BLOCKED_IN.format(at=at, inner=first.blocked_in)
    lines = [
        _messages.DEADLINE_CALL.format(call=first.call),
        _messages.DEADLINE_AT.format(at=at),
    ]
    if first.harness:
        # The criterion's own line, then the innermost steps that made the call.
        path = [str(s) for s in first.harness]
        if len(path) > 3:
            path = [path[0], "...", *path[-2:]]
        lines.append(_messages.DEADLINE_HARNESS.format(path=" > ".join(path)))
    others = [str(s.call) for s in stuck[1:] if s.call != first.call]
    if others:
        lines.append(_messages.DEADLINE_ALSO)
        lines += bullets(sorted(set(others)), limit=3)
    return lines


def _overrun(
    seconds: float,
    name: str,
    timeout_option: str,
    stuck: list[Stuck],
    state: _Worker,
    waits: list[Site],
) -> NoReturn:
    __tracebackhide__ = True
    if not stuck:
        raise DeadlineExceeded(
            "\n".join(
                [
                    _messages.DEADLINE_NO_TARGET_CODE.format(
                        name=name, seconds=seconds, option=timeout_option
                    ),
                    *bullets([str(site) for site in waits], limit=4),
                ]
            )
        )
    earlier: list[str] = []
    if isinstance(state.check_error, pytest.fail.Exception):
        earlier = [_messages.DEADLINE_AFTER_VERDICT, *str(state.check_error).splitlines()]
    fail(
        _messages.DEADLINE_DID_NOT_RETURN.format(function=stuck[0].call.function, seconds=seconds),
        *_evidence(stuck),
        _messages.DEADLINE_FIX.format(option=timeout_option),
        *earlier,
        _messages.ACCEPTANCE_READ_MORE,
    )


def _harness_gave_up(exc: BaseException, stuck: list[Stuck], timeout_option: str) -> NoReturn:
    __tracebackhide__ = True
    fail(
        _messages.DEADLINE_HARNESS_GAVE_UP.format(function=stuck[0].call.function),
        *[f"  {line}" for line in str(exc).splitlines()],
        *_evidence(stuck),
        _messages.DEADLINE_FIX.format(option=timeout_option),
        _messages.ACCEPTANCE_READ_MORE,
    )


# -- live progress of a long criterion ------------------------------------------------

#: A criterion shows progress once it has run this long (most finish well before).
PROGRESS_AFTER_S = 2.0
#: Seconds between progress lines when the output is not a terminal (a CI log):
#: at most one line per this many seconds.
PROGRESS_LOG_EVERY_S = 5.0


class Progress:
    """What a running criterion has done so far; written by its worker, read by the main thread.

    The worker (or a search it drives) reports with :meth:`scenarios`; the
    main thread reads :meth:`snapshot` to print it. A lock makes the pair
    consistent; nothing here blocks for longer than an assignment.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: int | None = None
        self._planned: int | None = None

    def scenarios(self, done: int, planned: int | None = None) -> None:
        """Record that ``done`` scenarios (of ``planned``, if known) have finished."""
        with self._lock:
            self._done = done
            if planned is not None:
                self._planned = planned

    def snapshot(self) -> tuple[int | None, int | None]:
        """``(done, planned)``: scenarios finished and planned, ``None`` where not reported."""
        with self._lock:
            return self._done, self._planned


_PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar(
    "quantum_p1_progress", default=None
)


def scenario_progress(planned: int) -> Callable[[int], None] | None:
    """The callback a criterion passes to a long search (``check_no_stale_reads(progress=...)``).

    ``None`` outside an acceptance criterion. Called with the scenarios
    finished so far, from any thread of the check.
    """
    progress = _PROGRESS.get()
    if progress is None:
        return None
    progress.scenarios(0, planned)

    def report(done: int) -> None:
        progress.scenarios(done)

    return report


class ProgressLine:
    """Live progress of one criterion on the terminal: what runs, scenarios so far, elapsed.

    Printed by the main thread (from ``run_within``'s ``on_tick``) through
    pytest's terminal reporter, with output capture suspended as pytest's live
    logging does. Nothing for a check that ends within :data:`PROGRESS_AFTER_S`,
    under ``-q``, without a terminal reporter, or in an xdist worker (whose
    output nobody sees). On a terminal the line is rewritten in place every
    second; otherwise (a CI log) one line per :data:`PROGRESS_LOG_EVERY_S`.
    """

    def __init__(self, config: pytest.Config, name: str) -> None:
        self.name = name
        self.progress = Progress()
        self._config = config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        quiet = config.get_verbosity() < 0 or hasattr(config, "workerinput")
        self._reporter = None if quiet else reporter
        self._live = bool(getattr(reporter, "isatty", False))
        self._shown_at: float | None = None

    @contextmanager
    def reporting(self) -> Iterator[Progress]:
        """While entered, :func:`scenario_progress` in this context reports to this line."""
        token = _PROGRESS.set(self.progress)
        try:
            yield self.progress
        finally:
            _PROGRESS.reset(token)

    def text(self, elapsed_s: float, *, final: bool = False) -> str:
        """The progress line: ``P1-2.no-stale-reads: 120 of 200 scenarios, 7 s``."""
        done, planned = self.progress.snapshot()
        scenarios = ""
        if done is not None:
            scenarios = (
                _messages.PROGRESS_SCENARIOS.format(done=done)
                if planned is None
                else _messages.PROGRESS_SCENARIOS_OF.format(done=done, planned=planned)
            )
        template = _messages.PROGRESS_DONE if final else _messages.PROGRESS_RUNNING
        return template.format(name=self.name, scenarios=scenarios, elapsed=elapsed_s)

    def tick(self, elapsed_s: float) -> None:
        """Show the progress if the check has run long enough and a line is due."""
        if self._reporter is None or elapsed_s < PROGRESS_AFTER_S:
            return
        if (
            not self._live
            and self._shown_at is not None
            and elapsed_s - self._shown_at < PROGRESS_LOG_EVERY_S
        ):
            return  # a CI log: one line per PROGRESS_LOG_EVERY_S at most
        self._write(self.text(elapsed_s), first=self._shown_at is None)
        self._shown_at = elapsed_s

    def finish(self, elapsed_s: float) -> None:
        """On a terminal, leave the line saying how long the check took (if it was shown)."""
        if self._reporter is None or self._shown_at is None or not self._live:
            return
        self._write(self.text(elapsed_s, final=True), first=False)

    def _write(self, line: str, *, first: bool) -> None:
        reporter: Any = self._reporter
        capture: Any = self._config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            if first:
                reporter.ensure_newline()
            if self._live:
                reporter.rewrite(line)
            else:
                reporter.write_line(line)
