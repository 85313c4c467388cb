"""The reference store under a flood of invalidations: readers and a genuine invalidation.

Run::

    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -p pytest_benchmark.plugin \\
        benchmarks/bench_flood.py --benchmark-json=flood.json

One scenario, on fakeredis and on a private redis-server (spawned on a free
loopback port; the real half skips without the binary, and fails under
``CI=true``), with the store's flood handling off and on, in the same run:

1. a store caches policy ``risk`` (``{"v": 1}``);
2. with the event loop held (a synchronous client, so the store cannot read
   anything yet), ``FLOOD`` valid-looking names (``flood-0`` ...) are published
   on the channel, then ``risk`` is set to ``{"v": 2}`` and its genuine
   invalidation published behind them;
3. the loop is let go: a reader reads ``risk`` every millisecond until the
   store has applied every message.

Figures (``extra_info`` and the terminal summary): ``read_p50_ms``,
``read_p99_ms``, ``read_max_ms`` (how late each read completed after it was
due: loop starvation shows here), ``reads``; ``stale_reads`` and
``first_new_ms`` (the genuine invalidation's delay as readers see it: from
the update to the first read serving ``{"v": 2}``); ``applied_ms`` (until the
listener had worked through the flood and applied the genuine message).

"Off" sets ``TURN_SECONDS`` and ``BEHIND_AFTER`` out of reach: the listener of
before issue 14, which applied a waiting burst without ever letting the loop
run and kept serving its cache meanwhile. ``test_verdicts`` fails unless, on
each backend, flood handling gives a lower read p99 and an earlier first new
read than without it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import fakeredis
import pytest
import redis
import redis.asyncio
from pytest_benchmark.fixture import BenchmarkFixture

from pytest_quantum_p1._redis.server import RedisServer, require_redis_server
from reference_impl.services import policy_store_v2
from reference_impl.services.policy_store_v2 import PolicyStoreV2

FLOOD: Final = 100_000
CHANNEL: Final = "policy:invalidate"
KEY: Final = "policy:risk"
#: The reader's period, in seconds.
READ_EVERY: Final = 0.001
_OUT_OF_REACH: Final = 10**12
_REPORT_PLUGIN: Final = "p1-bench-flood-report"


@dataclass
class Figures:
    """This run's figures, by ``(backend, handling)``."""

    runs: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)


class _Report:
    """Puts the figures into the benchmark JSON and the terminal summary."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_json(
        self, config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]
    ) -> None:
        output_json["flood"] = {f"{b}/{h}": run for (b, h), run in self.figures.runs.items()}

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.figures.runs:
            return
        terminalreporter.section(f"reference store under a flood of {FLOOD:,} names, this run")
        columns = ("read_p50_ms", "read_p99_ms", "read_max_ms", "reads", "stale_reads")
        columns += ("first_new_ms", "applied_ms", "backlogs")
        terminalreporter.line(f"{'run':<18}" + "".join(f"{c:>14}" for c in columns))
        for (backend, handling), run in self.figures.runs.items():
            cells = "".join(f"{run[c]:>14.1f}" for c in columns)
            terminalreporter.line(f"{backend + '/' + handling:<18}{cells}")


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Figures:
    """This module's figures, reported at the end of the session."""
    found = Figures()
    manager = request.config.pluginmanager
    if not manager.has_plugin(_REPORT_PLUGIN):
        manager.register(_Report(found), _REPORT_PLUGIN)
    return found


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A private redis-server for this module."""
    with require_redis_server() as spawned:
        yield spawned


Clients = tuple[Callable[[], redis.asyncio.Redis], redis.Redis]


def _fake() -> Clients:
    shared = fakeredis.FakeServer()
    return (lambda: fakeredis.FakeAsyncRedis(server=shared)), fakeredis.FakeRedis(server=shared)


def _real(url: str) -> Clients:
    sync = redis.Redis.from_url(url)
    sync.flushall()  # the module's own private server
    return (lambda: redis.asyncio.Redis.from_url(url)), sync


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


async def flood_scenario(clients: Clients, flood: int) -> dict[str, float]:
    """Run the scenario once (see the module's docstring) and return its figures."""
    make_client, sync = clients
    sync.set(KEY, json.dumps({"v": 1}))
    client = make_client()
    store = PolicyStoreV2(client)
    await store.initialize()
    try:
        assert (await store.get_policy("risk"))["v"] == 1
        pipe = sync.pipeline(transaction=False)
        for k in range(flood):
            pipe.publish(CHANNEL, f"flood-{k}")
        pipe.execute()
        sync.set(KEY, json.dumps({"v": 2}))
        sync.publish(CHANNEL, "risk")
        updated = time.perf_counter()
        lateness: list[float] = []
        reads: list[tuple[float, int]] = []

        async def reader() -> float:
            """Read every READ_EVERY s until every message was applied; return when that was."""
            while store.stats.invalidations <= flood:
                due = time.perf_counter() + READ_EVERY
                await asyncio.sleep(READ_EVERY)
                policy = await store.get_policy("risk")
                now = time.perf_counter()
                lateness.append(now - due)
                reads.append((now - updated, policy["v"]))
            return time.perf_counter() - updated

        applied = await reader()
    finally:
        await store.close()
        await client.aclose()
        sync.close()
    lateness.sort()
    first_new = next((at for at, v in reads if v == 2), float("nan"))
    return {
        "flood": flood,
        "read_p50_ms": _percentile(lateness, 0.5) * 1e3,
        "read_p99_ms": _percentile(lateness, 0.99) * 1e3,
        "read_max_ms": (lateness[-1] if lateness else 0.0) * 1e3,
        "reads": len(reads),
        "stale_reads": sum(1 for _, v in reads if v == 1),
        "first_new_ms": first_new * 1e3,
        "applied_ms": applied * 1e3,
        "backlogs": store.stats.backlogs,
    }


@pytest.mark.parametrize("handling", ["off", "on"])
@pytest.mark.parametrize("backend", ["fake", "server"])
def test_flood(
    benchmark: BenchmarkFixture,
    figures: Figures,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    handling: str,
) -> None:
    """One flood, timed once; its figures go to ``extra_info`` and the summary."""
    if handling == "off":
        monkeypatch.setattr(policy_store_v2, "TURN_SECONDS", _OUT_OF_REACH)
        monkeypatch.setattr(policy_store_v2, "BEHIND_AFTER", _OUT_OF_REACH)
    clients = _fake() if backend == "fake" else _real(request.getfixturevalue("server").url)
    found: dict[str, float] = {}

    def run() -> None:
        found.update(asyncio.run(flood_scenario(clients, FLOOD)))

    benchmark.pedantic(run, rounds=1, iterations=1)  # type: ignore[no-untyped-call]
    benchmark.extra_info.update(found)
    figures.runs[(backend, handling)] = found


def test_verdicts(figures: Figures) -> None:
    """With flood handling, reads wait less and the genuine invalidation shows sooner."""
    missed: list[str] = []
    for backend in ("fake", "server"):
        off, on = figures.runs.get((backend, "off")), figures.runs.get((backend, "on"))
        if off is None or on is None:
            continue
        if not on["read_p99_ms"] < off["read_p99_ms"]:
            missed.append(f"{backend}: read p99 {on['read_p99_ms']:.1f} ms, not below off")
        if not on["first_new_ms"] < off["first_new_ms"]:
            missed.append(f"{backend}: first new read {on['first_new_ms']:.1f} ms, not sooner")
    if not figures.runs:
        pytest.skip("this run measured no flood")
    assert not missed, "; ".join(missed)
