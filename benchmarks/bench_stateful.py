"""How fast the stale-read search runs, in scenarios per second, and how soon it finds the seed's bugs.

Run the measurement (pytest-benchmark)::

    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -p pytest_benchmark.plugin \\
        benchmarks/bench_stateful.py --benchmark-json=stateful.json

``test_scenarios_per_second`` times ``check_no_stale_reads`` as
``P1-2.no-stale-reads`` runs it (the reference store, fakeredis, the default
minimum of scenarios, steps and seed), three rounds; ``extra_info`` holds
``scenarios``, ``steps``, ``scenarios_per_s`` and ``steps_per_s`` of the
median round. ``test_steps_per_scenario`` shows what a scenario's length
costs (5, 15 and 30 steps). Each round searches the same scenarios (the seed
is fixed), so rounds differ only by the machine's load.

Or, as a script, how soon the search finds the seed port's bugs::

    python benchmarks/bench_stateful.py [--redis fake|server] [--seeds 10] [--steps 15]

prints, for each of ``--seeds`` seeds, how many scenarios it takes to find
the seed port's stale-fill race (rules that cannot reach its other bugs left
out), its dead listener (garbage on the channel), and with every rule on, the
first bug of any kind; with the medians. A private redis-server is spawned
for ``--redis server``; the shared one on 6379 is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest

from pytest_quantum_p1._redis.source import RedisSource
from pytest_quantum_p1._stateful import (
    DEFAULT_SCENARIOS,
    DEFAULT_STEPS,
    InvalidationError,
    InvalidationMachine,
    NoStaleReadsResult,
    check_no_stale_reads,
    machine_for,
    seeded_search,
)
from reference_impl.p1_target import TARGET
from tests.plugin.test_stateful import RACE_ONLY
from tests.plugin.test_stateful_seed import LISTENER_ONLY
from tests.seed_port.policy_store_seed import seed_store_factory

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture


@pytest.fixture(autouse=True)
def _quiet_stores() -> Iterator[None]:
    # The stores log every lost link and rejected message; not what is measured here.
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def _search(steps: int = DEFAULT_STEPS) -> NoStaleReadsResult:
    return check_no_stale_reads(
        TARGET.store_factory,
        TARGET.policy_ttl,
        scenarios=DEFAULT_SCENARIOS,
        step_count=steps,
        channel=TARGET.invalidation_channel,
    )


def _record(benchmark: BenchmarkFixture, results: list[NoStaleReadsResult]) -> None:
    median = sorted(results, key=lambda r: r.elapsed_s)[len(results) // 2]
    assert median.failures is None
    benchmark.extra_info.update(
        {
            "scenarios": median.scenarios,
            "steps": median.steps,
            "elapsed_s": round(median.elapsed_s, 3),
            "scenarios_per_s": round(median.scenarios_per_second, 1),
            "steps_per_s": round(median.steps / median.elapsed_s, 1),
        }
    )


def test_scenarios_per_second(benchmark: BenchmarkFixture) -> None:
    results: list[NoStaleReadsResult] = []
    benchmark.pedantic(lambda: results.append(_search()), rounds=3, iterations=1)  # type: ignore[no-untyped-call]
    _record(benchmark, results)
    # The same seed searched the same scenarios in every round.
    assert len({(r.scenarios, r.steps) for r in results}) == 1


@pytest.mark.parametrize("steps", [5, 15, 30])
def test_steps_per_scenario(benchmark: BenchmarkFixture, steps: int) -> None:
    results: list[NoStaleReadsResult] = []
    benchmark.pedantic(lambda: results.append(_search(steps)), rounds=1, iterations=1)  # type: ignore[no-untyped-call]
    _record(benchmark, results)


# -- as a script: how soon the seed's bugs are found --------------------------------------


@contextlib.contextmanager
def clients(kind: str) -> Iterator[Callable[[], Any] | None]:
    if kind == "fake":
        yield None
        return
    from pytest_quantum_p1._redis.server import spawn_redis_server

    with spawn_redis_server() as server:
        yield RedisSource.server(server.url).client


def run(machine: type[InvalidationMachine], *, examples: int, seed: int, steps: int) -> str | None:
    """Generate (never shrink) up to ``examples`` examples; the first failure's kind or None."""
    try:
        seeded_search(machine, examples=examples, steps=steps, seed=seed, shrink=False)
    except InvalidationError as exc:
        return exc.kind
    except Exception as exc:
        return f"error: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def hunt(
    label: str,
    make_client: Callable[[], Any] | None,
    disabled: Sequence[str],
    seeds: int,
    steps: int,
) -> None:
    found_after: list[int] = []
    kinds: list[str] = []
    took: list[float] = []
    for seed in range(seeds):
        machine = machine_for(
            seed_store_factory,  # type: ignore[arg-type]  # the seed's own store
            ttl=10.0,
            make_client=make_client,
            disabled_rules=disabled,
        )
        started = time.perf_counter()
        kind = run(machine, examples=2000, seed=seed, steps=steps)
        took.append(time.perf_counter() - started)
        kinds.append(kind or "not found")
        if machine.stats.first_failure_at is not None:
            found_after.append(machine.stats.first_failure_at)
    median = statistics.median(found_after) if found_after else float("nan")
    print(
        f"{label}: found in {len(found_after)}/{seeds} seeds after {found_after} scenarios "
        f"(median {median:g}); kinds {sorted(set(kinds))}; median time to find "
        f"{statistics.median(took):.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis", choices=("fake", "server"), default="fake")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with clients(args.redis) as make_client:
        print(f"redis: {args.redis}; python {sys.version.split()[0]}")
        hunt("seed port, stale-fill race", make_client, RACE_ONLY, args.seeds, args.steps)
        hunt("seed port, dead listener", make_client, LISTENER_ONLY, args.seeds, args.steps)
        hunt("seed port, all rules (first bug)", make_client, (), args.seeds, args.steps)


if __name__ == "__main__":
    main()
