"""URL mode against the client-injection path: what observing at the wire costs.

Run::

    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -p pytest_benchmark.plugin \\
        benchmarks/bench_wire.py --benchmark-json=wire.json

The harness observes a store either by handing it an
:class:`~pytest_quantum_p1._harness.observed.ObservedRedis` (the client-injection
path) or, for a store that builds its own client from a URL, by putting a
:class:`~pytest_quantum_p1._wire.proxy.WireProxy` between that client and Redis
(URL mode). Both run on one event loop, as the harness runs them. Each group
pairs the two, round for round (one round of the partner runs just before each
timed round, so both see the same background load), on a private
``redis-server`` (``server``) and on fakeredis (``fake``: the client path uses
fakeredis in process, URL mode fakeredis's TCP server behind the proxy):

=================  ==========================================  ==========================================
group              subject (URL mode)                          partner (client-injection path)
=================  ==========================================  ==========================================
``cold-read``      the reference store's ``get_policy`` with   the same store on an ``ObservedRedis``
                   ``ttl=0`` (one GET each), its client on
                   the proxy's URL
``wire-get``       a bare ``GET`` through the proxy            a bare ``GET`` on the same Redis, direct
``propagation``    ``PUBLISH`` until a subscriber whose         ``PUBLISH`` until an ``ObservedRedis``
                   connection goes through the proxy got it     pubsub (``ControlledPubSub``) got it
=================  ==========================================  ==========================================

The ratios (median over paired rounds, subject / partner) are in each
subject's ``extra_info``, at ``"wire_ratios"`` in the JSON and in the terminal
summary. The issue's bar is ``cold-read`` and ``propagation`` within 1.5x on a
real server; ``test_bar`` fails with the figures when it is missed there (the
fake groups are reported only: fakeredis's TCP server polls for pushes every
10 ms, which no proxy can hide). The module skips without a ``redis-server``
binary, and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import fakeredis
import pytest
import redis.asyncio
from pytest_benchmark.fixture import BenchmarkFixture

from pytest_quantum_p1._harness.observed import ObservedRedis
from pytest_quantum_p1._redis.server import RedisServer, require_redis_server
from pytest_quantum_p1._wire.proxy import WireProxy
from reference_impl.services.policy_store_v2 import PolicyStoreV2

ROUND_TRIP_CALLS: Final = 200
#: fakeredis's TCP server delivers a push up to 10 ms late: fewer per round.
FAKE_PROPAGATION_CALLS: Final = 20
ROUNDS: Final = 20
BAR: Final = 1.5
NAME: Final = "risk"
POLICY: Final = {"max_position": 1_000_000, "venues": ["XNYS", "XNAS"], "version": 42}
CHANNEL: Final = "bench:wire"

_REPORT_PLUGIN: Final = "p1-bench-wire-report"

Batch = Callable[[int], Coroutine[Any, Any, None]]


@dataclass
class Figures:
    """This run's ratios, by ``group[backend]``."""

    ratios: dict[str, float] = field(default_factory=dict)
    per_call_us: dict[str, float] = field(default_factory=dict)


class _Report:
    """Puts the ratios into the benchmark JSON and the terminal summary."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_json(
        self, config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]
    ) -> None:
        output_json["wire_ratios"] = {
            "ratios": self.figures.ratios,
            "per_call_us": self.figures.per_call_us,
        }

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.figures.ratios:
            return
        terminalreporter.section("URL mode / client-injection path, this run")
        for name, ratio in self.figures.ratios.items():
            subject = self.figures.per_call_us.get(name, float("nan"))
            terminalreporter.line(f"{name:<26} {ratio:8.3f}x   URL mode {subject:9.1f} us/call")


@dataclass
class Rig:
    """One event loop, one Redis, a proxy in front of it, and the clients of both paths."""

    backend: str
    loop: asyncio.AbstractEventLoop
    proxy: WireProxy
    #: The client path's client (fakeredis in process, or direct to the server).
    direct: Any
    #: A client on the proxy's URL, as a store that owns its connection makes one.
    through: redis.asyncio.Redis
    publisher: Any
    closers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    def measure(
        self, benchmark: BenchmarkFixture, batch: Batch, partner: Batch, calls: int
    ) -> tuple[float, float] | None:
        """Seconds per call of ``batch`` and its median ratio to ``partner`` over paired rounds."""
        mine: list[float] = []
        theirs: list[float] = []

        def timed(side: Batch, into: list[float]) -> None:
            started = time.perf_counter()
            self.loop.run_until_complete(side(calls))
            into.append(time.perf_counter() - started)

        def setup() -> tuple[tuple[Batch, list[float]], dict[str, Any]]:
            timed(partner, theirs)
            return (batch, mine), {}

        benchmark.extra_info["calls_per_round"] = calls
        benchmark.pedantic(  # type: ignore[no-untyped-call]
            timed, setup=setup, rounds=ROUNDS, warmup_rounds=2, iterations=1
        )
        if benchmark.stats is None:
            return None
        ratio = statistics.median(a / b for a, b in zip(mine, theirs, strict=True))
        seconds: float = benchmark.stats.stats.median / calls
        benchmark.extra_info["per_call_us"] = seconds * 1e6
        benchmark.extra_info["ratio_to_client_path"] = ratio
        return seconds, ratio


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Figures:
    """This module's figures, reported in the JSON and the terminal summary."""
    found = Figures()
    manager = request.config.pluginmanager
    if not manager.has_plugin(_REPORT_PLUGIN):
        manager.register(_Report(found), _REPORT_PLUGIN)
    return found


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A private redis-server for the module."""
    with require_redis_server() as spawned:
        yield spawned


def _fake_tcp() -> tuple[fakeredis.TcpFakeServer, threading.Thread]:
    tcp = fakeredis.TcpFakeServer(("127.0.0.1", 0))
    thread = threading.Thread(target=tcp.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return tcp, thread


@pytest.fixture(scope="module", params=["server", "fake"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """Both paths on one loop: on the private server, then on fakeredis."""
    loop = asyncio.new_event_loop()
    tcp: fakeredis.TcpFakeServer | None = None
    thread: threading.Thread | None = None
    if request.param == "server":
        server: RedisServer = request.getfixturevalue("server")
        upstream = (server.host, server.port)

        def direct_client() -> Any:
            return redis.asyncio.Redis.from_url(server.url)
    else:
        tcp, thread = _fake_tcp()
        upstream = ("127.0.0.1", tcp.server_address[1])
        # The client path in fake mode shares the TCP server's data, in process.
        shared = tcp.fake_server

        def direct_client() -> Any:
            return fakeredis.FakeAsyncRedis(server=shared)

    async def open_rig() -> Rig:
        proxy = WireProxy(upstream, label="bench", loop=loop)
        await proxy.start_async()
        built = Rig(
            request.param,
            loop,
            proxy,
            direct_client(),
            redis.asyncio.Redis.from_url(proxy.url),
            direct_client(),
        )
        return built

    opened = loop.run_until_complete(open_rig())
    try:
        yield opened
    finally:

        async def close() -> None:
            for closer in reversed(opened.closers):
                await closer()
            for client in (opened.direct, opened.through, opened.publisher):
                await client.aclose()
            await opened.proxy.close_async()

        loop.run_until_complete(close())
        loop.close()
        if tcp is not None and thread is not None:
            tcp.shutdown()
            tcp.server_close()
            thread.join(10)


def _record(figures: Figures, name: str, measured: tuple[float, float] | None) -> None:
    if measured is not None:
        figures.per_call_us[name] = measured[0] * 1e6
        figures.ratios[name] = measured[1]


def _get_policy(store: PolicyStoreV2) -> Batch:
    async def batch(n: int) -> None:
        for _ in range(n):
            await store.get_policy(NAME)

    return batch


def test_cold_read(benchmark: BenchmarkFixture, rig: Rig, figures: Figures) -> None:
    benchmark.group = f"cold-read[{rig.backend}]"

    async def stores() -> tuple[PolicyStoreV2, PolicyStoreV2]:
        observed = ObservedRedis(rig.direct, label="bench", loop=rig.loop)
        client_path = PolicyStoreV2(observed, ttl=0)  # type: ignore[arg-type]
        url_mode = PolicyStoreV2(rig.through, ttl=0)
        for store in (client_path, url_mode):
            await store.initialize()
            rig.closers.append(store.close)
        await client_path.update_policy(NAME, POLICY)
        return client_path, url_mode

    client_path, url_mode = rig.loop.run_until_complete(stores())
    measured = rig.measure(
        benchmark, _get_policy(url_mode), _get_policy(client_path), ROUND_TRIP_CALLS
    )
    _record(figures, f"cold-read[{rig.backend}]", measured)


def test_wire_get(benchmark: BenchmarkFixture, rig: Rig, figures: Figures) -> None:
    benchmark.group = f"wire-get[{rig.backend}]"
    rig.loop.run_until_complete(rig.direct.set("bench:k", "v" * 64))

    def gets(client: Any) -> Batch:
        async def batch(n: int) -> None:
            for _ in range(n):
                await client.get("bench:k")

        return batch

    measured = rig.measure(benchmark, gets(rig.through), gets(rig.direct), ROUND_TRIP_CALLS)
    _record(figures, f"wire-get[{rig.backend}]", measured)


def test_propagation(benchmark: BenchmarkFixture, rig: Rig, figures: Figures) -> None:
    benchmark.group = f"propagation[{rig.backend}]"

    async def subscribers() -> tuple[Any, Any]:
        observed = ObservedRedis(rig.direct, label="bench", loop=rig.loop)
        client_path = observed.pubsub()
        url_mode = rig.through.pubsub()
        # A channel each, so neither side's messages wait in the other's inbox.
        for pubsub, channel in ((client_path, CHANNEL + ":client"), (url_mode, CHANNEL + ":url")):
            await pubsub.subscribe(channel)
            rig.closers.append(pubsub.aclose)
            while await pubsub.get_message(timeout=0.5) is None:  # the confirmation
                pass
        await rig.proxy.wait_subscribed_async(CHANNEL + ":url", 5.0)
        return client_path, url_mode

    client_path, url_mode = rig.loop.run_until_complete(subscribers())

    def propagation(listener: Any, channel: str) -> Batch:
        async def batch(n: int) -> None:
            for i in range(n):
                await rig.publisher.publish(channel, str(i))
                while await listener.get_message(timeout=1.0) is None:
                    pass

        return batch

    calls = ROUND_TRIP_CALLS if rig.backend == "server" else FAKE_PROPAGATION_CALLS
    subject = propagation(url_mode, CHANNEL + ":url")
    partner = propagation(client_path, CHANNEL + ":client")
    measured = rig.measure(benchmark, subject, partner, calls)
    _record(figures, f"propagation[{rig.backend}]", measured)


def test_bar(figures: Figures) -> None:
    """The issue's bar on a real server: cold read and propagation within 1.5x of the client path."""
    if not figures.ratios:
        pytest.skip("benchmarks disabled: no figures")
    missed = {
        name: ratio
        for name, ratio in figures.ratios.items()
        if name in ("cold-read[server]", "propagation[server]") and ratio > BAR
    }
    assert not missed, f"URL mode over {BAR}x the client-injection path: {missed}"
