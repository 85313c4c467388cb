"""The health report: bus, Redis, cache link and v2 node statuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis

from reference_impl.core.event_bus import CATALOGUE, EventBus
from reference_impl.health import health
from reference_impl.p1_target import TARGET
from reference_impl.services.policy_store_v2 import PolicyStoreV2


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@asynccontextmanager
async def fake_redis(*, connected: bool = True) -> AsyncIterator[Redis]:
    server = fakeredis.FakeServer()
    server.connected = connected
    client = fakeredis.FakeAsyncRedis(server=server)
    try:
        yield client
    finally:
        await client.aclose()


def run_health(bus: EventBus, **kwargs: Any) -> dict[str, Any]:
    async def scenario() -> dict[str, Any]:
        async with fake_redis() as redis:
            return await health(bus, redis, **kwargs)

    return asyncio.run(scenario())


class StubRedis:
    """Stands in for a Redis client whose PING misbehaves in a given way."""

    def __init__(self, ping: Callable[[], Awaitable[bool]]) -> None:
        self.ping = ping


async def hang() -> bool:
    await asyncio.Event().wait()
    return True


async def refuse() -> bool:
    raise ConnectionRefusedError(111, "Connection refused")


@dataclass(frozen=True)
class Stats:
    hits: int = 9
    misses: int = 1
    invalidations: int = 2
    rejected_messages: int = 0
    reconnects: int = 1

    @property
    def hit_rate(self) -> float:
        return 0.9


@dataclass
class StubStore:
    link_up: bool
    stats: Stats = field(default_factory=Stats)


@dataclass
class StubEngine:
    node_statuses: dict[str, str]


def test_a_reachable_redis_is_ok(bus: EventBus) -> None:
    report = run_health(bus)
    assert report["status"] == "ok"
    assert report["redis"]["ok"] is True
    assert isinstance(report["redis"]["latency_ms"], float)
    assert report["redis"]["latency_ms"] >= 0
    assert "error" not in report["redis"]
    assert "cache" not in report
    assert "federation" not in report


def test_the_bus_section_counts_events_and_subscribers(bus: EventBus) -> None:
    bus.subscribe("model.promoted", lambda n, p: None)
    bus.subscribe("model.promoted", lambda n, p: None)
    bus.subscribe("ai.hfos.mode_changed", lambda n, p: None)
    assert run_health(bus)["bus"] == {"events": len(CATALOGUE), "subscribers": 3}


def test_a_disconnected_redis_is_degraded_not_an_error(bus: EventBus) -> None:
    async def scenario() -> dict[str, Any]:
        async with fake_redis(connected=False) as redis:
            return await health(bus, redis)

    report = asyncio.run(scenario())
    assert report["status"] == "degraded"
    assert report["redis"]["ok"] is False
    assert report["redis"]["error"].startswith("ConnectionError: ")
    assert "latency_ms" not in report["redis"]


def test_a_refused_connection_is_degraded(bus: EventBus) -> None:
    report = asyncio.run(health(bus, StubRedis(refuse)))  # type: ignore[arg-type]
    assert report["status"] == "degraded"
    assert report["redis"] == {
        "ok": False,
        "error": "ConnectionRefusedError: [Errno 111] Connection refused",
    }


def test_a_redis_that_does_not_answer_in_time_is_degraded(bus: EventBus) -> None:
    report = asyncio.run(health(bus, StubRedis(hang), ping_timeout=0.001))  # type: ignore[arg-type]
    assert report["status"] == "degraded"
    assert report["redis"] == {"ok": False, "error": "no answer to PING within 0.001s"}


def test_the_cache_section_reports_stats_and_link(bus: EventBus) -> None:
    report = run_health(bus, store=StubStore(link_up=True))
    assert report["status"] == "ok"
    assert report["cache"] == {
        "hits": 9,
        "misses": 1,
        "invalidations": 2,
        "rejected_messages": 0,
        "reconnects": 1,
        "hit_rate": 0.9,
        "link_up": True,
    }


def test_a_store_without_its_invalidation_link_is_degraded(bus: EventBus) -> None:
    report = run_health(bus, store=StubStore(link_up=False))
    assert report["redis"]["ok"] is True
    assert report["cache"]["link_up"] is False
    assert report["status"] == "degraded"


def test_a_real_store_is_ok_while_subscribed_and_degraded_once_closed(bus: EventBus) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with fake_redis() as redis:
            store = PolicyStoreV2(redis)
            await store.initialize()
            try:
                await store.update_policy("orchestrator", {"max_leverage": 2})
                await store.get_policy("orchestrator")
                await store.get_policy("orchestrator")
                live = await health(bus, redis, store=store)
            finally:
                await store.close()
            return live, await health(bus, redis, store=store)

    live, closed = asyncio.run(scenario())
    assert live["status"] == "ok"
    assert live["cache"]["link_up"] is True
    assert (live["cache"]["hits"], live["cache"]["misses"]) == (1, 1)
    assert live["cache"]["hit_rate"] == 0.5
    assert closed["status"] == "degraded"
    assert closed["cache"]["link_up"] is False


def test_the_federation_section_reports_node_statuses(bus: EventBus) -> None:
    statuses = {"n1": "online", "n2": "offline"}
    report = run_health(bus, engine=StubEngine(statuses))
    assert report["federation"] == {"node_statuses": {"n1": "online", "n2": "offline"}}
    assert report["federation"]["node_statuses"] is not statuses
    # v2 is legacy: an offline v2 node does not degrade the backend.
    assert report["status"] == "ok"


def test_the_federation_section_reads_the_bridged_engine(bus: EventBus) -> None:
    from reference_impl.federation.federation_v2_event_bridge import FederationV2EventBridge

    with pytest.warns(DeprecationWarning, match="FederatedEngineV2 is deprecated"):
        engine = FederationV2EventBridge(bus).engine
    asyncio.run(engine.update_node_status("n1", "degraded"))
    assert run_health(bus, engine=engine)["federation"] == {"node_statuses": {"n1": "degraded"}}


def test_the_target_health_reports_on_the_given_bus(bus: EventBus) -> None:
    assert TARGET.health is not None
    probe = TARGET.health
    bus.subscribe("model.rollback", lambda n, p: None)

    async def scenario() -> Any:
        async with fake_redis() as redis:
            return await probe(bus, redis)

    report = asyncio.run(scenario())
    assert report["status"] == "ok"
    assert report["bus"]["subscribers"] == 1
