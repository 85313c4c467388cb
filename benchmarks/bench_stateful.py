"""How fast the invalidation state machine runs, and how soon it finds the seed's bugs.

Usage (from the repository root)::

    python benchmarks/bench_stateful.py [--redis fake|server] [--seeds 10]
                                        [--budget 10] [--steps 30]

Prints, for the chosen Redis:

- throughput: examples/s and steps/s of the full machine against the
  reference store, generation only (no shrinking), for ``--budget`` seconds;
- for each of ``--seeds`` seeds, how many examples it takes to find the seed
  port's stale-fill race (rules that cannot reach its other bugs left out), and
  its dead listener (garbage on the channel); then with every rule on, the
  first bug of any kind; with the medians.

A private redis-server is spawned for ``--redis server``; the shared one on
6379 is never touched.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from pytest_quantum_p1._redis.source import RedisSource
from pytest_quantum_p1._stateful import (
    InvalidationError,
    InvalidationMachine,
    machine_for,
    seeded_search,
)
from reference_impl.p1_target import TARGET
from tests.plugin.test_stateful import RACE_ONLY
from tests.plugin.test_stateful_seed import LISTENER_ONLY
from tests.seed_port.policy_store_seed import seed_store_factory


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


def throughput(make_client: Callable[[], Any] | None, budget: float, steps: int) -> None:
    machine = machine_for(TARGET, make_client=make_client)
    started = time.perf_counter()
    seed = 0
    found: list[str] = []
    while time.perf_counter() - started < budget:
        kind = run(machine, examples=20, seed=seed, steps=steps)
        if kind is not None:
            found.append(kind)
        seed += 1
    elapsed = time.perf_counter() - started
    stats = machine.stats
    print(
        f"throughput (reference store, {steps} steps/example): {stats.examples} examples in "
        f"{elapsed:.1f}s = {stats.examples / elapsed:.1f} examples/s, "
        f"{stats.steps / elapsed:.0f} steps/s; max write->stale-read age "
        f"{stats.max_stale_age_s:g}s; failures: {found or 'none'}"
    )


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
            seed_store_factory, ttl=10.0, make_client=make_client, disabled_rules=disabled
        )
        started = time.perf_counter()
        kind = run(machine, examples=2000, seed=seed, steps=steps)
        took.append(time.perf_counter() - started)
        kinds.append(kind or "not found")
        if machine.stats.first_failure_at is not None:
            found_after.append(machine.stats.first_failure_at)
    median = statistics.median(found_after) if found_after else float("nan")
    print(
        f"{label}: found in {len(found_after)}/{seeds} seeds after {found_after} examples "
        f"(median {median:g}); kinds {sorted(set(kinds))}; median time to find "
        f"{statistics.median(took):.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", choices=("fake", "server"), default="fake")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    # The stores log every lost link and rejected message; not what is measured here.
    logging.disable(logging.WARNING)
    with clients(args.redis) as make_client:
        print(f"redis: {args.redis}; python {sys.version.split()[0]}")
        throughput(make_client, args.budget, args.steps)
        hunt("seed port, stale-fill race", make_client, RACE_ONLY, args.seeds, args.steps)
        hunt("seed port, dead listener", make_client, LISTENER_ONLY, args.seeds, args.steps)
        hunt("seed port, all rules (first bug)", make_client, (), args.seeds, args.steps)


if __name__ == "__main__":
    main()
