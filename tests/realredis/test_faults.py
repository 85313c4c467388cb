"""Faults on a real redis-server, each with its outcome asserted and its recovery measured.

- the invalidation connections are killed (``CLIENT KILL TYPE pubsub``) while
  an update's invalidation is lost with them;
- Redis is killed and restarted mid-run;
- 10,000 garbage messages land on the invalidation channel;
- a subscriber raises on every event (a Redis subscriber, and a bus subscriber).

Every test owns its redis-server (killing connections or the server would
disturb other tests) and runs the reference store twice: all instances on one
loop in this process, and each instance in a process of its own. Recovery is
measured from the fault (or the server's return) to the moment each instance's
new subscription was confirmed, seen by the harness when it happened (no
polling); the issue's 1 s bound is asserted with the measured value.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import redis
import redis.asyncio

from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._harness import PolicyCluster
from pytest_quantum_p1._redis.server import RedisServer, require_redis_server
from reference_impl.core.event_bus import EventBus
from reference_impl.errors import PolicyNotFoundError, StoreUnavailableError
from tests.clusters import cache_everywhere
from tests.realredis import RECOVERY_BOUND_S, REFERENCE
from tests.stores import CHANNEL, KEY_PREFIX, encode

pytestmark = pytest.mark.real_redis

INSTANCES = 4
GARBAGE_MESSAGES = 10_000
V1 = {"limit": 1}
V2 = {"limit": 2}
V3 = {"limit": 3}


@pytest.fixture
def server() -> Iterator[RedisServer]:
    # A server of the test's own: the faults stop or kill it.
    with require_redis_server() as running:
        yield running


@pytest.fixture(params=["in-process", "processes"])
def cluster(request: pytest.FixtureRequest, server: RedisServer) -> Iterator[PolicyCluster]:
    with PolicyCluster.open(
        REFERENCE,
        server.url,
        instances=INSTANCES,
        clock=VirtualClock(),
        processes=request.param == "processes",
    ) as opened:
        yield opened


def recoveries(cluster: PolicyCluster, after: tuple[int, ...], since: float) -> list[float]:
    """Seconds from ``since`` until each instance's new subscription was confirmed."""
    return [
        cluster.wait_resubscribed(i, after=after[i], timeout=10.0) - since
        for i in range(cluster.size)
    ]


def assert_within_bound(what: str, seconds: list[float]) -> None:
    __tracebackhide__ = True
    shown = ", ".join(f"{s * 1000:.1f} ms" for s in seconds)
    assert max(seconds) <= RECOVERY_BOUND_S, (
        f"{what}: an instance took {max(seconds) * 1000:.1f} ms to resubscribe, over the "
        f"{RECOVERY_BOUND_S:g} s bound (per instance: {shown})"
    )


def report(record_property: Any, key: str, seconds: list[float]) -> None:
    values = [round(s * 1000, 2) for s in seconds]
    record_property(key, values)
    print(f"{key}: max {max(values):.2f} ms, per instance {values}")


# -- the pub/sub connections are killed ------------------------------------------------


def test_killed_pubsub_connections_flush_and_resubscribe_within_1s(
    cluster: PolicyCluster, server: RedisServer, record_property: Any
) -> None:
    cache_everywhere(cluster, "risk", V1)
    before = cluster.subscriptions
    with redis.Redis.from_url(server.url) as admin:
        # One pipeline, so the server runs all three before any store can
        # reconnect: the update's invalidation reaches nobody and is lost.
        pipe = admin.pipeline(transaction=False)
        pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        pipe.set(KEY_PREFIX + "risk", encode(V2))
        pipe.publish(CHANNEL, "risk")
        killed_at = time.perf_counter()
        killed, _, receivers = pipe.execute()
    assert killed == INSTANCES
    assert receivers == 0, "the invalidation must be lost for this test to mean anything"

    took = recoveries(cluster, before, killed_at)
    report(record_property, "pubsub_kill_recovery_ms", took)
    assert_within_bound("after CLIENT KILL TYPE pubsub", took)
    # Only a flush on the lost link can explain V2 here: V1 was cached and its
    # invalidation went nowhere.
    reads = cluster.storage_reads
    assert [dict(v) for v in cluster.read_all("risk")] == [V2] * INSTANCES
    assert all(now > was for now, was in zip(cluster.storage_reads, reads, strict=True))
    # Invalidation works again on the new subscriptions.
    cluster.update(INSTANCES - 1, "risk", V3)
    cluster.assert_converged("risk", V3)


def test_a_store_that_never_resubscribes_is_caught(server: RedisServer) -> None:
    with PolicyCluster.open(
        "tests.stores:DiesWithItsLink",
        server.url,
        instances=2,
        clock=VirtualClock(),
        processes=True,
    ) as cluster:
        cache_everywhere(cluster, "risk", V1)
        before = cluster.subscriptions
        with redis.Redis.from_url(server.url) as admin:
            admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            admin.set(KEY_PREFIX + "risk", encode(V2))
        with pytest.raises(TimeoutError, match=r"did not resubscribe to 'policy:invalidate'"):
            cluster.wait_resubscribed(0, after=before[0], timeout=0.5)
        # And what that costs: the lost link flushed nothing, so V1 is served stale.
        assert [dict(v) for v in cluster.read_all("risk")] == [V1, V1]


# -- Redis restarts --------------------------------------------------------------------


def test_a_restarted_redis_gives_typed_errors_then_recovers_within_1s(
    cluster: PolicyCluster, server: RedisServer, record_property: Any
) -> None:
    cache_everywhere(cluster, "risk", V1)
    before = cluster.subscriptions
    server.kill()  # as a crash would: no persistence, the data is gone too
    for i in range(INSTANCES):
        cluster.wait_subscription_lost(i, timeout=5.0)
    for i in range(INSTANCES):
        # Nothing is served from a cache that can no longer hear invalidations.
        with pytest.raises(StoreUnavailableError, match="cannot read policy 'risk'"):
            cluster.read(i, "risk")
        with pytest.raises(StoreUnavailableError, match="cannot update policy 'risk'"):
            cluster.update(i, "risk", V2)

    server.start()
    back_at = time.perf_counter()
    took = recoveries(cluster, before, back_at)
    report(record_property, "restart_recovery_ms", took)
    assert_within_bound("after Redis came back", took)
    # The new server is empty: an instance answering V1 would be serving stale data.
    for i in range(INSTANCES):
        with pytest.raises(PolicyNotFoundError):
            cluster.read(i, "risk")
    cluster.update(1, "risk", V3)
    cluster.assert_converged("risk", V3)


# -- garbage on the channel ------------------------------------------------------------


def garbage(count: int, seed: int = 1) -> list[bytes]:
    """Messages no store should take for a policy name: bad UTF-8, paths, oversized, empty ..."""
    rng = random.Random(seed)
    kinds: list[Callable[[], bytes]] = [
        lambda: bytes(rng.randrange(128, 256) for _ in range(rng.randrange(1, 64))),
        lambda: b"../" + rng.randbytes(8).hex().encode(),
        lambda: b"x" * rng.randrange(1025, 1500),
        lambda: b"",
        lambda: b"policy name with spaces",
        lambda: b"\x00\xff\xfe",
        lambda: b'{"name": "risk"}',
        lambda: "ré/sk".encode(),
    ]
    return [rng.choice(kinds)() for _ in range(count)]


def test_garbage_on_the_channel_leaves_the_listeners_alive(
    cluster: PolicyCluster, server: RedisServer, record_property: Any
) -> None:
    cache_everywhere(cluster, "risk", V1)
    before = cluster.subscriptions
    messages = garbage(GARBAGE_MESSAGES)
    started = time.perf_counter()
    with redis.Redis.from_url(server.url) as admin:
        for start in range(0, len(messages), 1000):
            pipe = admin.pipeline(transaction=False)
            for message in messages[start : start + 1000]:
                pipe.publish(CHANNEL, message)
            assert pipe.execute() == [INSTANCES] * len(messages[start : start + 1000])
    # Settling means every listener processed all 10,000 (its barrier came back after them).
    cluster.settle(timeout=60.0)
    chewed = time.perf_counter() - started
    report(record_property, "garbage_10k_processed_ms", [chewed])
    assert cluster.subscriptions == before, "a listener died and had to resubscribe"
    # Later invalidations still apply (the clock never moves: no TTL can help).
    cache_everywhere(cluster, "risk", V2)
    cluster.update(2, "risk", V3)
    cluster.assert_converged("risk", V3)


# -- a subscriber that raises on every event -------------------------------------------


def test_a_redis_subscriber_raising_on_every_event_affects_no_one(
    cluster: PolicyCluster, server: RedisServer
) -> None:
    raised: list[bytes] = []

    def explode(message: Mapping[str, Any]) -> None:
        raised.append(message["data"])
        raise RuntimeError("a neighbour's subscriber bug")

    async def neighbour() -> asyncio.Task[None]:
        client = redis.asyncio.Redis.from_url(server.url)
        pubsub = client.pubsub()
        await pubsub.subscribe(**{CHANNEL: explode})
        confirmation = await pubsub.get_message(timeout=5.0)
        assert confirmation is not None
        assert confirmation["type"] == "subscribe"

        async def run() -> None:
            try:
                # It keeps raising: the handler is called again for every event.
                await pubsub.run(exception_handler=lambda exc, ps: None)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it bare
                await client.aclose()

        return asyncio.create_task(run())

    task = cluster.portal.call(neighbour)
    try:
        updates = 20
        for k in range(updates):
            if k:
                cluster.read_all("risk")  # cached everywhere: a lost invalidation would show
            cluster.update(k % INSTANCES, "risk", {"v": k})
            cluster.assert_converged("risk", {"v": k})
        stats = cluster.stats()
        assert stats.missing_propagations == 0
        # Settle markers and invalidations alike reached the raising subscriber.
        assert raised.count(b"risk") == updates
    finally:
        task.cancel()


def test_a_bus_subscriber_raising_on_every_event_affects_no_one(
    cluster: PolicyCluster, caplog: pytest.LogCaptureFixture
) -> None:
    bus = EventBus()
    seen: list[Mapping[str, Any]] = []

    def broken(name: str, payload: Mapping[str, Any]) -> None:
        raise RuntimeError("sync subscriber bug")

    async def broken_async(name: str, payload: Mapping[str, Any]) -> None:
        raise RuntimeError("async subscriber bug")

    async def promote(name: str, payload: Mapping[str, Any]) -> None:
        # The backend's reaction: the promoted model becomes the policy, on every instance.
        await cluster.update_async(payload["version"] % INSTANCES, "promoted", dict(payload))

    def record(name: str, payload: Mapping[str, Any]) -> None:
        seen.append(payload)

    for handler in (broken, promote, broken_async, record):
        bus.subscribe("model.promoted", handler)

    events = [{"model_id": f"m{k}", "version": k} for k in range(30)]

    async def publish_all() -> None:
        for payload in events:
            await bus.publish("model.promoted", payload)

    with caplog.at_level(logging.ERROR, logger="reference_impl.core.event_bus"):
        asyncio.run(publish_all())
    assert seen == events
    assert len(cluster.updates) == len(events)
    cluster.assert_converged("promoted", events[-1])
    failures = [r for r in caplog.records if "failed handling event model.promoted" in r.message]
    assert len(failures) == 2 * len(events)
