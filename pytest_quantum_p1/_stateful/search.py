"""Searching with the machine outside a test case: seeded, repeatable, within a time budget.

:func:`seeded_search` runs a machine class for a number of examples from one
seed, without an example database; :func:`check_no_stale_reads` (the criterion
``P1-2.no-stale-reads``) runs such searches in batches sized to end within a
time budget, and reports what it found as a :class:`NoStaleReadsResult`.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import hypothesis
from hypothesis import Phase
from hypothesis.stateful import run_state_machine_as_test

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._stateful.machine import InvalidationMachine, machine_for, machine_settings
from pytest_quantum_p1._target import DEFAULT_CHANNEL, StoreFactory

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["NoStaleReadsResult", "check_no_stale_reads", "seeded_search"]

#: The first batch: measures the examples-per-second rate.
_CALIBRATION_EXAMPLES: Final = 5
#: Keep this share of the remaining budget free when sizing the next batch.
_BUDGET_SAFETY: Final = 0.8


@dataclass(frozen=True)
class NoStaleReadsResult:
    """What :func:`check_no_stale_reads` found."""

    #: Examples run (with shrinking, when something failed).
    examples: int
    #: Hypothesis's report of the failure, with the shrunk steps; ``None`` when none.
    failures: str | None
    #: Largest write -> stale read age seen (virtual seconds), over allowed stale reads.
    max_stale_age_s: float
    elapsed_s: float
    #: Examples run until the first failure, or ``None``.
    found_after: int | None = None
    steps: int = 0

    @property
    def examples_per_second(self) -> float:
        """Examples per second of real time."""
        return self.examples / self.elapsed_s if self.elapsed_s > 0 else 0.0


def check_no_stale_reads(
    store_factory: StoreFactory,
    ttl: float,
    make_client: Callable[[], Redis] | None = None,
    *,
    time_budget_s: float = 3.0,
    max_examples: int = 1000,
    instances: int = 3,
    channel: str = DEFAULT_CHANNEL,
    step_count: int = 30,
    seed: int = 0,
    disabled_rules: Sequence[str] = (),
    shrink: bool = True,
) -> NoStaleReadsResult:
    """Run the machine against ``store_factory`` for about ``time_budget_s`` seconds.

    The criterion ``P1-2.no-stale-reads``. Examples run in seeded batches (seed
    ``seed``, ``seed + 1``...; no example database), so a run is repeatable;
    after a small first batch measures the rate, the next batch is sized to end
    within the budget. Stops at the first failure, which Hypothesis shrinks
    unless ``shrink`` is false: shrinking replays hundreds of examples, so a
    failing run typically takes 2-15 s more than the budget (without it, the
    failure lists every step of the failing example). ``make_client`` makes the
    stores' clients (default: fakeredis); ``instances``, ``channel`` and
    ``disabled_rules`` configure the machine as in :func:`machine_for`;
    ``step_count`` is the steps per example. ``examples`` in the result counts
    machines run (a few are abandoned early by Hypothesis, and shrinking runs
    count too).
    """
    if time_budget_s <= 0:
        raise ValueError(_messages.MACHINE_BUDGET_NOT_POSITIVE.format(budget=time_budget_s))
    if max_examples < 1:
        raise ValueError(
            _messages.MACHINE_AT_LEAST_ONE.format(name="max_examples", value=max_examples)
        )
    machine = machine_for(
        store_factory,
        ttl=ttl,
        instances=instances,
        make_client=make_client,
        channel=channel,
        disabled_rules=disabled_rules,
        name="NoStaleReads",
    )
    stats = machine.stats
    started = time.perf_counter()
    failures: str | None = None
    batch = 0
    while stats.examples < max_examples:
        elapsed = time.perf_counter() - started
        if batch == 0:
            size = min(_CALIBRATION_EXAMPLES, max_examples)
        else:
            rate = stats.examples / elapsed if elapsed > 0 else float(max_examples)
            size = min(
                max_examples - stats.examples,
                math.floor((time_budget_s - elapsed) * rate * _BUDGET_SAFETY),
            )
            if size < 1:
                break
        failures = _run_batch(machine, size, seed + batch, step_count, shrink=shrink)
        batch += 1
        if failures is not None:
            break
    return NoStaleReadsResult(
        examples=stats.examples,
        failures=failures,
        max_stale_age_s=stats.max_stale_age_s,
        elapsed_s=time.perf_counter() - started,
        found_after=stats.first_failure_at,
        steps=stats.steps,
    )


def seeded_search(
    machine: type[InvalidationMachine], *, examples: int, steps: int, seed: int, shrink: bool
) -> None:
    """Run ``machine`` for up to ``examples`` examples from ``seed``: repeatable, no database.

    Raises what the first failing example raised, shrunk when ``shrink``.
    """

    # A function of its own: hypothesis.seed marks what it decorates, and the
    # machine class must stay unmarked for the next search.
    def make() -> InvalidationMachine:
        return machine()

    config = machine_settings(
        max_examples=examples,
        stateful_step_count=steps,
        database=None,
        derandomize=False,  # whatever the profile says: the seed decides
        print_blob=False,
        phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
    )
    run_state_machine_as_test(hypothesis.seed(seed)(make), settings=config)  # type: ignore[no-untyped-call]  # hypothesis leaves it unannotated


def _run_batch(
    machine: type[InvalidationMachine], size: int, seed: int, step_count: int, *, shrink: bool
) -> str | None:
    """Search one batch; the failure as ``traceback`` words it, or ``None``."""
    try:
        seeded_search(machine, examples=size, steps=step_count, seed=seed, shrink=shrink)
    except Exception as exc:
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    return None
