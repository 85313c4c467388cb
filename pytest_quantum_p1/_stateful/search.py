"""Searching with the machine outside a test case: a fixed number of seeded, repeatable scenarios.

:func:`seeded_search` runs a machine class for a number of examples from one
seed, without an example database of the user's; :func:`check_no_stale_reads`
(the criterion ``P1-2.no-stale-reads``) runs at least ``scenarios`` of them and
reports what it found as a :class:`NoStaleReadsResult`, or raises
:class:`~pytest_quantum_p1._stateful.machine.CouldNotRun` when no verdict was
possible.

Repeatable means: the same seed draws the same scenarios in any process.
Hypothesis mixes into what it draws the constants it finds in the source of
every local module imported so far, so a search would draw differently
depending on what the process had imported before; :func:`import_independent`
keeps that pool empty while a search runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import hypothesis
from hypothesis import Phase, Verbosity
from hypothesis.stateful import run_state_machine_as_test

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._redis.namespace import current_prefix
from pytest_quantum_p1._stateful.machine import (
    DEFAULT_RECONNECT_TIMEOUT,
    DEFAULT_SETTLE_TIMEOUT,
    DEFAULT_STEP_TIMEOUT,
    CouldNotRun,
    InvalidationError,
    InvalidationMachine,
    SharedClients,
    machine_for,
    machine_settings,
)
from pytest_quantum_p1._target import DEFAULT_CHANNEL, FromURL, StoreFactory

if TYPE_CHECKING:
    from hypothesis.database import ExampleDatabase
    from redis.asyncio import Redis

    from pytest_quantum_p1._stateful.model import ErrorKind

__all__ = [
    "DEFAULT_SCENARIOS",
    "DEFAULT_STEPS",
    "PARTS",
    "NoStaleReadsResult",
    "check_no_stale_reads",
    "import_independent",
    "seeded_search",
]

# Unannotated in older Hypothesis, typed ``type[RuleBasedStateMachine]`` in recent
# ones, and documented to take any factory returning a machine: one alias typed for all.
_run_machine: Final[Callable[..., None]] = run_state_machine_as_test

#: Scenarios (examples) a search runs at least, unless it finds a failure first.
DEFAULT_SCENARIOS: Final = 200
#: Steps per scenario, at most. Every bug the tests plant shows within 6 steps;
#: past 15, a scenario costs more than it finds (Hypothesis's own work is about
#: 0.7 ms a step here), and 200 scenarios of 15 steps find them sooner than
#: 100 of 30 (``benchmarks/bench_stateful.py``).
DEFAULT_STEPS: Final = 15
#: Failures that show at once, so that shrinking (hundreds of replays) stays quick;
#: a stuck or hung store would be waited for on every replay.
_SHRINKABLE: Final[frozenset[str]] = frozenset(
    {"stale", "monotonic", "ttl", "link-loss", "impossible", "read-your-writes"}
)
#: Batches after the first, each from the next seed, should Hypothesis end a
#: batch before the minimum (it stops early on too many overlong examples).
_MAX_TOP_UPS: Final = 10


@dataclass(frozen=True)
class NoStaleReadsResult:
    """What :func:`check_no_stale_reads` found."""

    #: Scenarios run until the verdict (shrinking not counted).
    scenarios: int
    #: Scenarios asked for: the minimum when nothing fails.
    minimum: int
    seed: int
    #: Hypothesis's report of the failure, with the (shrunk) steps; ``None`` when none.
    failures: str | None
    #: Which property failed (``None`` when none).
    kind: ErrorKind | None
    #: Largest write -> stale read age seen (virtual seconds), over allowed stale reads.
    max_stale_age_s: float
    elapsed_s: float
    #: Scenarios run until the first failure (itself included), or ``None``.
    found_after: int | None = None
    #: Steps run over all scenarios.
    steps: int = 0

    @property
    def scenarios_per_second(self) -> float:
        """Scenarios per second of real time (the search's, shrinking included)."""
        return self.scenarios / self.elapsed_s if self.elapsed_s > 0 else 0.0


def check_no_stale_reads(
    store_factory: StoreFactory | FromURL,
    ttl: float,
    make_client: Callable[[], Redis] | None = None,
    *,
    scenarios: int = DEFAULT_SCENARIOS,
    instances: int = 3,
    channel: str = DEFAULT_CHANNEL,
    step_count: int = DEFAULT_STEPS,
    seed: int = 0,
    disabled_rules: Sequence[str] = (),
    shrink: bool = True,
    settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
    reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
    parallel: bool = True,
    name_prefix: str | None = None,
    progress: Callable[[int], None] | None = None,
    real_time: bool = False,
) -> NoStaleReadsResult:
    """Run at least ``scenarios`` scenarios of the machine against ``store_factory``.

    The criterion ``P1-2.no-stale-reads``. Scenarios come from ``seed`` (no
    example database), the same ones in any process: they are searched in
    :data:`PARTS` parts, part ``k`` from seed ``seed + k``, side by side in
    forked processes when ``parallel``, each on a fakeredis of its own (no
    ``make_client``) and the machine has the cores (Linux), one after the
    other otherwise; the same scenarios and the same verdict either way. The search stops at the first failure (the lowest part's),
    which Hypothesis then shrinks (unless ``shrink`` is false or the failure is
    a store that stopped reacting: each replay would wait for it).
    ``make_client`` makes the stores' clients (default: a fakeredis server of
    the search's own); ``instances``, ``channel``, ``disabled_rules`` and the
    timeouts (real seconds: to settle after a step, to come back after a link
    step, for the setup or one step) configure the machine as in
    :func:`~pytest_quantum_p1._stateful.machine.machine_for`; ``step_count``
    is the most steps per scenario. ``name_prefix`` goes before every policy
    name the stores are given (default: the namespace in force,
    :func:`~pytest_quantum_p1._redis.namespace.current_prefix`).
    ``progress(scenarios)``, if given, is called with the scenarios finished so
    far as parts of the search complete (from the calling thread). ``real_time``:
    the stores keep time themselves (``P1Target.real_time``); the machine's
    clock steps then wait for real.

    Raises :class:`~pytest_quantum_p1._stateful.machine.CouldNotRun`, saying
    why, when the stores cannot be built, started or driven (a factory or a
    store call that raises, a setup that does not finish).
    """
    if scenarios < 1:
        raise ValueError(_messages.MACHINE_AT_LEAST_ONE.format(name="scenarios", value=scenarios))
    machine = machine_for(
        store_factory,
        ttl=ttl,
        instances=instances,
        make_client=make_client,
        channel=channel,
        disabled_rules=disabled_rules,
        settle_timeout=settle_timeout,
        reconnect_timeout=reconnect_timeout,
        step_timeout=step_timeout,
        name="NoStaleReads",
        name_prefix=current_prefix() if name_prefix is None else name_prefix,
        real_time=real_time,
    )
    started = time.perf_counter()
    with _frozen_heap():
        result = _check(
            machine, make_client, scenarios, step_count, seed, shrink, parallel, started
        )
    if progress is not None:
        progress(result.scenarios)
    return result


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep what the process held before the search out of the garbage collector's scans.

    A search allocates a great deal, so the collector runs often, and in a
    pytest run each full collection rescanned everything the run had built up
    (the other criteria's samples, the test items): a tenth of the search.
    """
    # What this collects was left by the run before the search (a connection an
    # earlier check or store dropped unclosed): finalising it here must not be
    # reported as this check's error. Collected, hence closed, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _check(
    machine: type[InvalidationMachine],
    make_client: Callable[[], Redis] | None,
    scenarios: int,
    step_count: int,
    seed: int,
    shrink: bool,
    parallel: bool,
    started: float,
) -> NoStaleReadsResult:
    # Once outside Hypothesis: a store that cannot even be set up is an error
    # with its cause, not a "falsifying example" of zero steps.
    with _shared(machine, make_client):
        machine().teardown()
    share, extra = divmod(scenarios, PARTS)
    plan = [(seed + k, share + (k < extra)) for k in range(PARTS)]
    plan = [(part_seed, count) for part_seed, count in plan if count]
    run: dict[str, Any] = {
        "machine": machine,
        "make_client": make_client,
        "step_count": step_count,
        "shrink": shrink,
    }
    # Side by side only on fakeredis servers of their own: parts sharing one
    # Redis would hear each other's invalidations and read each other's values.
    if parallel and make_client is None and _can_fork() and len(plan) > 1:
        parts = _in_parallel(plan, run)
    else:
        parts = []
        for part_seed, count in plan:
            parts.append(_search_part(seed=part_seed, scenarios=count, **run))
            if parts[-1].failures is not None or parts[-1].could_not_run is not None:
                break
    return _merged(parts, plan, scenarios, seed, time.perf_counter() - started)


#: The parts a search is cut into (see :func:`check_no_stale_reads`): a constant,
#: so that the scenarios do not depend on the machine's cores.
PARTS: Final = 2


@dataclass(frozen=True)
class _Part:
    """What one part of a search found (sent back from a forked process as JSON)."""

    scenarios: int = 0
    steps: int = 0
    found_after: int | None = None
    kind: str | None = None
    failures: str | None = None
    max_stale_age_s: float = 0.0
    #: A :class:`CouldNotRun`'s message: no verdict.
    could_not_run: str | None = None


def _merged(
    parts: list[_Part], plan: list[tuple[int, int]], minimum: int, seed: int, elapsed: float
) -> NoStaleReadsResult:
    ran = steps = 0
    for part, (part_seed, _) in zip(parts, plan, strict=False):
        if part.could_not_run is not None:
            raise CouldNotRun(part.could_not_run)
        if part.failures is not None:
            assert part.found_after is not None
            return NoStaleReadsResult(
                scenarios=ran + part.found_after,
                minimum=minimum,
                seed=part_seed,
                failures=part.failures,
                kind=part.kind,  # type: ignore[arg-type]  # one of ErrorKind, by construction
                max_stale_age_s=max(p.max_stale_age_s for p in parts),
                elapsed_s=elapsed,
                found_after=ran + part.found_after,
                steps=steps + part.steps,
            )
        ran += part.scenarios
        steps += part.steps
    return NoStaleReadsResult(
        scenarios=ran,
        minimum=minimum,
        seed=seed,
        failures=None,
        kind=None,
        max_stale_age_s=max((p.max_stale_age_s for p in parts), default=0.0),
        elapsed_s=elapsed,
        steps=steps,
    )


@contextlib.contextmanager
def _shared(
    machine: type[InvalidationMachine], make_client: Callable[[], Redis] | None
) -> Iterator[None]:
    machine.shared = SharedClients(make_client)
    try:
        yield
    finally:
        machine.shared.close()
        machine.shared = None


def _search_part(
    *,
    machine: type[InvalidationMachine],
    make_client: Callable[[], Redis] | None,
    scenarios: int,
    step_count: int,
    seed: int,
    shrink: bool,
) -> _Part:
    """Search ``scenarios`` scenarios from ``seed`` in this process."""
    stats = machine.stats
    stats.reset()
    failure: BaseException | None = None
    with _shared(machine, make_client), import_independent():
        for batch in range(_MAX_TOP_UPS + 1):
            left = scenarios - stats.examples
            if left < 1:
                break
            try:
                seeded_search(
                    machine,
                    examples=left,
                    steps=step_count,
                    seed=seed + batch * PARTS,
                    shrink=False,
                )
            except Exception as exc:
                failure = _verdict_of(exc)
                break
        found_after = stats.first_failure_at
        # Hypothesis runs a failing scenario once more to report it: not a new one.
        ran = stats.examples if found_after is None else found_after
        steps, age = stats.steps, stats.max_stale_age_s
        kind = failure.kind if isinstance(failure, InvalidationError) else None
        # On the wire a stale read is known only once the store had the settle
        # time to serve the new value: every failing replay of a shrink would
        # wait that long. The steps are reported as found.
        on_the_wire = isinstance(getattr(machine, "store_factory", None), FromURL)
        if shrink and kind in _SHRINKABLE and not on_the_wire:
            # Search the same batch again, now shrinking: the same seed finds the
            # same failure first. (Keeping an example database during the
            # search instead costs every passing run about a tenth more.)
            with contextlib.suppress(Exception):
                failure = _shrunk(machine, left, step_count, seed + batch * PARTS) or failure
    if isinstance(failure, CouldNotRun):
        return _Part(could_not_run=str(failure))
    return _Part(
        scenarios=ran,
        steps=steps,
        found_after=found_after if failure is not None else None,
        kind=kind,
        failures=None if failure is None else _describe(failure),
        max_stale_age_s=age,
    )


def _can_fork() -> bool:
    # Only where forking a process that may run other threads is well trodden.
    return sys.platform == "linux" and hasattr(os, "fork") and (os.cpu_count() or 1) > 1


def _in_parallel(plan: list[tuple[int, int]], run: dict[str, Any]) -> list[_Part]:
    """Part 0 here, the others in forked processes; their results, in order."""
    children: list[tuple[int, int]] = []
    try:
        for part_seed, count in plan[1:]:
            children.append(_fork_part(seed=part_seed, scenarios=count, **run))
        parts = [_search_part(seed=plan[0][0], scenarios=plan[0][1], **run)]
        for pid, fd in children:
            if parts[-1].failures is not None or parts[-1].could_not_run is not None:
                break  # a lower part decided the verdict: the others do not count
            parts.append(_collect(pid, fd))
        return parts
    finally:
        for pid, fd in children:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)


def _exit_with(parent: int) -> None:
    """End this forked child as soon as ``parent`` is gone (a Ctrl-C, a kill).

    An orphaned part would go on writing to the Redis after the run removed
    what it wrote there.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_ORPHAN_POLL_S)  # no portable way to be told: polled
        os._exit(1)

    threading.Thread(target=watch, name="quantum-p1 orphan watch", daemon=True).start()


#: Seconds between a search part's looks at whether its parent process still lives.
_ORPHAN_POLL_S: Final = 0.2


def _fork_part(**kwargs: Any) -> tuple[int, int]:
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    # The child: search, send the part back as JSON, and leave without running
    # anything of the parent's (pytest's exit hooks, atexit handlers).
    status = 0
    try:
        _exit_with(parent)
        os.close(read)
        try:
            part = _search_part(**kwargs)
        except BaseException as exc:  # sent back as no verdict, with the cause
            part = _Part(could_not_run=_describe(exc))
        payload = json.dumps(dataclasses.asdict(part)).encode()
        with os.fdopen(write, "wb") as out:
            out.write(payload)
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _collect(pid: int, fd: int) -> _Part:
    with os.fdopen(fd, "rb", closefd=False) as received:
        payload = received.read()
    os.waitpid(pid, 0)
    if not payload:
        return _Part(could_not_run=_messages.MACHINE_PART_DIED.format(pid=pid))
    return _Part(**json.loads(payload))


def _verdict_of(exc: Exception) -> BaseException:
    """The machine's own exception in what Hypothesis raised; anything else is re-raised."""
    if isinstance(exc, InvalidationError | CouldNotRun):
        return exc
    if isinstance(exc, BaseExceptionGroup):  # a flaky failure: the first of ours inside
        group = exc.subgroup(lambda e: isinstance(e, InvalidationError | CouldNotRun))
        ours: BaseException | None = group
        while isinstance(ours, BaseExceptionGroup):
            ours = ours.exceptions[0]
        if ours is not None:
            return ours
    if isinstance(exc, hypothesis.errors.Flaky):
        # Hypothesis could not replay a scenario the same way: what the machine
        # could do next depended on timing it does not control. No verdict on
        # the store either way (a bare re-raise read as the backend's error).
        first = (str(exc).strip().splitlines() or [""])[0]
        return CouldNotRun(
            _messages.MACHINE_NOT_REPLAYABLE.format(type=type(exc).__name__, error=first)
        )
    raise exc


def _shrunk(
    machine: type[InvalidationMachine], examples: int, steps: int, seed: int
) -> BaseException | None:
    try:
        seeded_search(machine, examples=examples, steps=steps, seed=seed, shrink=True)
    except InvalidationError as exc:
        return exc
    return None


def _describe(failure: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(failure), failure)).rstrip()


def seeded_search(
    machine: type[InvalidationMachine],
    *,
    examples: int,
    steps: int,
    seed: int,
    shrink: bool,
    database: ExampleDatabase | None = None,
    phases: Sequence[Phase] | None = None,
) -> None:
    """Run ``machine`` for up to ``examples`` examples from ``seed``: repeatable.

    Raises what the first failing example raised, shrunk when ``shrink``. No
    example database unless one is given (the search uses one of its own to
    shrink a failure it found without shrinking); ``phases`` overrides the
    phases ``shrink`` implies. The same in any process: see :func:`import_independent`.
    """

    # A function of its own: hypothesis.seed marks what it decorates, and the
    # machine class must stay unmarked for the next search.
    def make() -> InvalidationMachine:
        return machine()

    if phases is None:
        phases = (Phase.generate, Phase.shrink) if shrink else (Phase.generate,)
    pinned: dict[str, Any] = {}
    if hasattr(hypothesis.settings.default, "backend"):
        pinned["backend"] = "hypothesis"  # whatever a profile says: the default provider
    config = machine_settings(
        max_examples=examples,
        stateful_step_count=steps,
        database=database,
        derandomize=False,  # whatever the profile says: the seed decides
        print_blob=False,
        verbosity=Verbosity.normal,
        phases=tuple(phases),
        **pinned,
    )
    with import_independent():
        _run_machine(hypothesis.seed(seed)(make), settings=config)


@contextlib.contextmanager
def import_independent() -> Iterator[None]:
    """While it is entered, Hypothesis draws the same from a seed whatever was imported.

    Hypothesis (since 6.131) adds to what it may draw the constants found in
    the source of every local module loaded so far, and caches the choices
    they allow; so the same seed drew different scenarios in a process that
    had imported other modules (a pytest run against a small script). This
    keeps that pool empty, and its cache clear, while a search runs. There is
    no public switch for it: the two names are looked up in the module that
    holds them, and on a Hypothesis without them nothing needs pinning.
    """
    from hypothesis.internal.conjecture import providers

    pool_name, cache_name = "_get_local_constants", "CONSTANTS_CACHE"
    original = getattr(providers, pool_name, None)
    cache = getattr(providers, cache_name, None)
    constants = getattr(providers, "Constants", None)
    if (
        original is None
        or cache is None
        or constants is None
        or getattr(original, "_p1_pinned", False)
    ):
        yield
        return
    empty = constants()

    def pinned() -> Any:
        return empty

    pinned._p1_pinned = True  # type: ignore[attr-defined]
    cache.cache.clear()  # choices computed from the imported pool
    setattr(providers, pool_name, pinned)
    try:
        yield
    finally:
        setattr(providers, pool_name, original)
        cache.cache.clear()  # choices computed from the empty pool
