"""PolicyStoreV2 (seed task P1-2), run on fakeredis and on a private redis-server.

Every scenario is a sync test driving async code with ``asyncio.run``; clients
are made inside the running loop. Waits are event-driven: a condition on a
store is checked each time a store's listener turns to its subscription (see
:class:`ListenerTurns`), never by polling or sleeping; TTLs run on the
harness's :class:`~pytest_quantum_p1.VirtualClock`. The private-server helpers
of ``pytest_quantum_p1._redis`` are tested at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from types import MappingProxyType
from typing import Any, Protocol

import fakeredis
import pytest
import redis.asyncio
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from pytest_quantum_p1 import VirtualClock
from pytest_quantum_p1._redis.server import (
    RedisServer,
    RedisServerUnavailable,
    free_port,
    redact_url,
    spawn_redis_server,
)
from reference_impl.errors import (
    InvalidPayloadError,
    InvalidPolicyNameError,
    PolicyDecodeError,
    PolicyNotFoundError,
    StoreUnavailableError,
)
from reference_impl.services import policy_store_v2
from reference_impl.services.policy_store_v2 import CacheStats, PolicyStoreV2, get_policy_store
from tests.conftest import RedisBackend

CHANNEL = "policy:invalidate"
KEY = "policy:risk"
OLD = {"max_position": 100, "tags": ["a", "b"]}
NEW = {"max_position": 50, "tags": []}
LOGGER = policy_store_v2.__name__
# Short, so that on fakeredis (where a killed connection goes silent instead of
# failing) the PING probe notices quickly.
FAST_KEEPALIVE = 0.05


class ListenerTurns:
    """Wakes waiters whenever a watched store's listener turns to its subscription.

    The store handles one message fully before asking for the next, and makes a
    new pubsub when it (re)subscribes; its counters and its link state change
    only in between. So a condition checked at each ``get_message()`` and
    ``pubsub()`` call on a watched client is waited for without polling: the
    harness's own rule for "processed" (see ``PolicyCluster.settle``).
    """

    def __init__(self, patch: pytest.MonkeyPatch) -> None:
        self._patch = patch
        self._watched: list[Redis] = []
        self._turned = asyncio.Event()

    def watch(self, client: Redis) -> None:
        """Count every later ``pubsub()`` and ``get_message()`` call on ``client`` as a turn."""
        if any(client is watched for watched in self._watched):
            return
        self._watched.append(client)
        real_pubsub = client.pubsub

        def pubsub(**options: Any) -> PubSub:
            created = real_pubsub(**options)
            real_get_message = created.get_message

            async def get_message(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
                self._turn()
                message: dict[str, Any] | None = await real_get_message(*args, **kwargs)
                return message

            self._patch.setattr(created, "get_message", get_message)
            self._turn()
            return created

        self._patch.setattr(client, "pubsub", pubsub)

    def _turn(self) -> None:
        self._turned.set()
        self._turned = asyncio.Event()

    async def until(self, condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
        """Return once ``condition()`` holds; fail after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while True:
                    turned = self._turned  # before the check: a turn during it is not lost
                    if condition():
                        return
                    await turned.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {within}s waiting for {what}") from None


async def poll_server(check: Callable[[], Awaitable[bool]], what: str, within: float = 5.0) -> None:
    """Ask the server until ``check()`` holds; fail after ``within`` seconds.

    Only for facts on the server's side that nothing on the client signals (a
    closed connection's subscription being released): there is no event to wait for.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.001)


class Backend(Protocol):
    """Where a scenario's clients come from: ``RedisBackend``, or a :class:`FlakyBackend`."""

    name: str

    def client(self, **options: Any) -> Redis: ...


class Kit:
    """Clients and stores of one scenario, all closed when it ends."""

    def __init__(self, backend: Backend, stack: AsyncExitStack, patch: pytest.MonkeyPatch) -> None:
        self.backend = backend
        self._stack = stack
        self._turns = ListenerTurns(patch)

    def client(self, **options: Any) -> Redis:
        client = self.backend.client(**options)
        self._stack.push_async_callback(client.aclose)
        return client

    async def store(
        self, client: Redis | None = None, *, start: bool = True, **options: Any
    ) -> PolicyStoreV2:
        client = client if client is not None else self.client()
        self._turns.watch(client)
        store = PolicyStoreV2(client, **options)
        self._stack.push_async_callback(store.close)
        if start:
            await store.initialize()
        return store

    async def until(self, condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
        """Wait, event-driven, until ``condition()`` holds for this scenario's stores."""
        await self._turns.until(condition, what, within)


@asynccontextmanager
async def kit_for(backend: Backend) -> AsyncIterator[Kit]:
    with pytest.MonkeyPatch.context() as patch:
        async with AsyncExitStack() as stack:
            yield Kit(backend, stack, patch)


def invalidated(store: PolicyStoreV2, count: int = 1) -> Callable[[], bool]:
    """A predicate: ``store`` has applied ``count`` invalidations."""
    return lambda: store.stats.invalidations == count


def count_gets(monkeypatch: pytest.MonkeyPatch, client: Redis) -> list[str]:
    """Record every GET issued on ``client``: storage reads counted by the test itself."""
    keys: list[str] = []
    real_get = client.get

    async def get(name: str) -> Any:
        keys.append(name)
        return await real_get(name)

    monkeypatch.setattr(client, "get", get)
    return keys


def run(scenario: Callable[[Kit], Awaitable[None]], backend: Backend) -> None:
    async def main() -> None:
        async with kit_for(backend) as kit:
            await scenario(kit)

    asyncio.run(main())


# -- reads, TTL, counters -------------------------------------------------------


def test_a_read_misses_once_then_hits(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, json.dumps(OLD))
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client)
        first = await store.get_policy("risk")
        assert first == OLD
        assert await store.get_policy("risk") is first
        assert await store.get_policy("risk") is first
        assert gets == [KEY]
        assert store.stats == CacheStats(
            hits=2, misses=1, invalidations=0, rejected_messages=0, reconnects=0
        )
        assert store.stats.hit_rate == pytest.approx(2 / 3)

    run(scenario, redis_backend)


def test_entries_expire_after_ttl_on_the_injected_clock(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, json.dumps(OLD))
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        clock = VirtualClock()
        store = await kit.store(client, ttl=10.0, clock=clock)
        await store.get_policy("risk")
        clock.advance(9.999)
        await store.get_policy("risk")
        assert len(gets) == 1
        clock.advance(0.001)  # exactly ttl seconds after the read began: stale
        await store.get_policy("risk")
        assert len(gets) == 2
        assert (store.stats.hits, store.stats.misses) == (1, 2)

    run(scenario, redis_backend)


def test_ttl_zero_never_caches(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, json.dumps(OLD))
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client, ttl=0)
        for _ in range(3):
            assert await store.get_policy("risk") == OLD
        assert len(gets) == 3
        assert store.stats.hit_rate == 0.0

    run(scenario, redis_backend)


def test_a_store_not_initialised_reads_through_without_caching(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a confirmed subscription it could not hear invalidations.
    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, json.dumps(OLD))
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client, start=False)
        assert not store.link_up
        assert await store.get_policy("risk") == OLD
        assert await store.get_policy("risk") == OLD
        assert len(gets) == 2

    run(scenario, redis_backend)


def test_counters_and_hit_rate(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        assert store.stats == CacheStats(0, 0, 0, 0, 0)
        assert store.stats.hit_rate == 0.0
        await store.update_policy("risk", OLD)
        await store.update_policy("limits", NEW)
        # Heard before reading, or a late echo would turn a hit into a miss.
        await kit.until(lambda: store.stats.invalidations == 2, "own updates heard")
        for _ in range(3):
            await store.get_policy("risk")
        await store.get_policy("limits")
        store.invalidate("risk")
        store.invalidate()
        with pytest.raises(PolicyNotFoundError):
            await store.get_policy("absent")
        stats = store.stats
        assert (stats.hits, stats.misses) == (2, 3)
        assert stats.hit_rate == pytest.approx(0.4)
        assert stats.invalidations == 4  # its own two updates, then two local calls

    run(scenario, redis_backend)


def test_hit_rate_is_zero_without_reads() -> None:
    assert CacheStats(0, 0, 5, 1, 1).hit_rate == 0.0
    assert CacheStats(9, 1, 0, 0, 0).hit_rate == pytest.approx(0.9)


# -- invalidation across stores -------------------------------------------------


def test_initialize_returns_once_subscribed_and_is_idempotent(
    redis_backend: RedisBackend,
) -> None:
    async def scenario(kit: Kit) -> None:
        writer = kit.client()
        store = await kit.store()
        assert store.link_up
        # PUBLISH answers how many subscribers received the message.
        assert await writer.publish(CHANNEL, "risk") == 1
        await store.initialize()
        assert await writer.publish(CHANNEL, "risk") == 1
        await kit.until(lambda: store.stats.invalidations == 2, "both messages applied")

    run(scenario, redis_backend)


def test_an_update_on_one_store_invalidates_every_store(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        writer = await kit.store()
        await writer.update_policy("risk", OLD)
        await writer.update_policy("other", NEW)
        clients = [kit.client() for _ in range(3)]
        gets = [count_gets(monkeypatch, client) for client in clients]
        readers = [await kit.store(client) for client in clients]
        for reader in readers:
            assert await reader.get_policy("risk") == OLD
            assert await reader.get_policy("other") == NEW

        await writer.update_policy("risk", NEW)
        assert await writer.get_policy("risk") == NEW  # its own copy went at once
        for reader, keys in zip(readers, gets, strict=True):
            await kit.until(invalidated(reader), "the invalidation")
            assert await reader.get_policy("risk") == NEW
            assert await reader.get_policy("other") == NEW  # untouched: still cached
            assert keys == [KEY, "policy:other", KEY]

    run(scenario, redis_backend)


def test_star_on_the_channel_flushes_everything(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        writer = kit.client()
        await writer.mset({KEY: json.dumps(OLD), "policy:other": json.dumps(NEW)})
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client)
        await store.get_policy("risk")
        await store.get_policy("other")
        await writer.publish(CHANNEL, "*")
        await kit.until(lambda: store.stats.invalidations == 1, "the flush")
        await store.get_policy("risk")
        await store.get_policy("other")
        assert len(gets) == 4
        assert store.stats.rejected_messages == 0

    run(scenario, redis_backend)


def test_local_invalidate(redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(kit: Kit) -> None:
        await kit.client().mset({KEY: json.dumps(OLD), "policy:other": json.dumps(NEW)})
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client)
        await store.get_policy("risk")
        await store.get_policy("other")
        store.invalidate("risk")
        await store.get_policy("risk")
        await store.get_policy("other")
        assert gets == [KEY, "policy:other", KEY]
        store.invalidate()
        await store.get_policy("other")
        assert len(gets) == 4
        assert store.stats.invalidations == 2

    run(scenario, redis_backend)


@pytest.mark.parametrize("event", ["none", "update", "flush", "local", "link-lost"])
def test_a_read_racing_an_invalidation_never_caches_the_old_value(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch, event: str
) -> None:
    """The seed sketch's race: GET returns the old value after its invalidation."""

    async def scenario(kit: Kit) -> None:
        writer = kit.client()
        await writer.set(KEY, json.dumps(OLD))
        client = kit.client()
        fetched, release = asyncio.Event(), asyncio.Event()
        real_get = client.get

        async def slow_get(name: str) -> Any:
            value = await real_get(name)
            fetched.set()
            await release.wait()
            return value

        monkeypatch.setattr(client, "get", slow_get)
        store = await kit.store(client, keepalive=FAST_KEEPALIVE)
        other = await kit.store()
        read = asyncio.create_task(store.get_policy("risk"))
        await asyncio.wait_for(fetched.wait(), 5)  # the old value is in hand

        if event == "update":
            await other.update_policy("risk", NEW)
            await kit.until(lambda: store.stats.invalidations == 1, "the invalidation")
        elif event == "flush":
            await writer.publish(CHANNEL, "*")
            await kit.until(lambda: store.stats.invalidations == 1, "the flush")
        elif event == "local":
            store.invalidate("risk")
        elif event == "link-lost":
            assert await writer.client_kill_filter(_type="pubsub") >= 1
            await kit.until(lambda: store.stats.reconnects == 1, "the resubscription")
        release.set()
        assert await read == OLD  # it began before the invalidation

        expected = NEW if event == "update" else OLD
        assert await store.get_policy("risk") == expected
        if event == "none":
            assert (store.stats.hits, store.stats.misses) == (1, 1)
        else:
            assert (store.stats.hits, store.stats.misses) == (0, 2)
            assert await store.get_policy("risk") == expected
            assert store.stats.hits == 1  # the second read did fill

    run(scenario, redis_backend)


@pytest.mark.parametrize("first_done", ["later", "earlier"])
def test_overlapping_misses_leave_the_newest_value_cached(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch, first_done: str
) -> None:
    """Two misses of one name overlap, a write between their GETs: the newer value stays.

    The write is never announced (as when its invalidation is lost), so only the
    order in which the misses began can keep the cache from going backwards,
    whichever of them completes first.
    """

    async def scenario(kit: Kit) -> None:
        writer = kit.client()
        await writer.set(KEY, json.dumps(OLD))
        client = kit.client()
        fetched = [asyncio.Event(), asyncio.Event()]
        release = [asyncio.Event(), asyncio.Event()]
        calls = itertools.count()
        real_get = client.get

        async def get(name: str) -> Any:
            n = next(calls)
            value = await real_get(name)
            if n < 2:  # hold the two racing reads once their values are in hand
                fetched[n].set()
                await release[n].wait()
            return value

        monkeypatch.setattr(client, "get", get)
        store = await kit.store(client)
        earlier = asyncio.create_task(store.get_policy("risk"))
        await asyncio.wait_for(fetched[0].wait(), 5)
        await writer.set(KEY, json.dumps(NEW))
        later = asyncio.create_task(store.get_policy("risk"))
        await asyncio.wait_for(fetched[1].wait(), 5)
        order = [(1, later), (0, earlier)] if first_done == "later" else [(0, earlier), (1, later)]
        for n, read in order:
            release[n].set()
            await read
        assert (earlier.result(), later.result()) == (OLD, NEW)
        assert await store.get_policy("risk") == NEW
        assert (store.stats.hits, store.stats.misses) == (1, 2)

    run(scenario, redis_backend)


# -- garbage on the channel ------------------------------------------------------

GARBAGE_REASONS: dict[str, tuple[bytes, str]] = {
    "non-utf8": (b"\xff\xfe\xfd", "not valid UTF-8"),
    "empty": (b"", "must not be empty"),
    "oversized": (b"x" * 1025, "1025 bytes, over the limit of 1024"),
    "long-name": (b"a" * 129, "129 characters long"),
    "space": (b"two words", "must start with a letter or digit"),
    "path": (b"../etc/passwd", "path separator"),
    "dotdot": (b"a..b", "contains '..'"),
    "non-ascii": ("caf\u00e9".encode(), "only letters, digits"),
}


@pytest.mark.parametrize(
    ("garbage", "reason"), list(GARBAGE_REASONS.values()), ids=list(GARBAGE_REASONS)
)
def test_garbage_on_the_channel_is_counted_logged_and_flushes(
    redis_backend: RedisBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    garbage: bytes,
    reason: str,
) -> None:
    async def scenario(kit: Kit) -> None:
        writer = kit.client()
        await writer.mset({KEY: json.dumps(OLD), "policy:other": json.dumps(NEW)})
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client)
        await store.get_policy("risk")
        await store.get_policy("other")

        await writer.publish(CHANNEL, garbage)
        await kit.until(lambda: store.stats.rejected_messages == 1, "the rejection")
        assert store.stats.invalidations == 0
        await store.get_policy("risk")
        await store.get_policy("other")
        assert len(gets) == 4, "a rejected message must flush the whole cache"

        # The listener is alive and still applies real invalidations.
        await writer.publish(CHANNEL, "risk")
        await kit.until(lambda: store.stats.invalidations == 1, "the real invalidation")
        await store.get_policy("risk")
        await store.get_policy("other")
        assert gets[4:] == [KEY]
        assert store.link_up

    run(scenario, redis_backend)
    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert "rejected invalidation message #1" in record.getMessage()
    assert reason in record.getMessage()


def test_ten_thousand_garbage_messages_then_a_real_invalidation_still_applies(
    redis_backend: RedisBackend, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = [message for message, _ in GARBAGE_REASONS.values()]
    count = 10_000

    async def scenario(kit: Kit) -> None:
        writer = kit.client()
        writer_store = await kit.store(start=False)  # writes only: one listener logs
        await writer_store.update_policy("risk", OLD)
        store = await kit.store()
        for start in range(0, count, 1000):
            async with writer.pipeline(transaction=False) as pipe:
                for i in range(start, start + 1000):
                    pipe.publish(CHANNEL, garbage[i % len(garbage)])
                await pipe.execute()
        await kit.until(
            lambda: store.stats.rejected_messages == count, "every rejection", within=60
        )
        assert await store.get_policy("risk") == OLD
        await writer_store.update_policy("risk", NEW)
        await kit.until(lambda: store.stats.invalidations == 1, "the real invalidation")
        assert await store.get_policy("risk") == NEW
        assert store.link_up
        assert store.stats.reconnects == 0

    run(scenario, redis_backend)
    warned = [
        r.args[0]  # type: ignore[index]
        for r in caplog.records
        if r.name == LOGGER and r.getMessage().startswith("rejected invalidation message")
    ]
    assert warned == [1, 10, 100, 1000, 10_000]


# -- losing the invalidation link ---------------------------------------------------


def on_each_pubsub(
    monkeypatch: pytest.MonkeyPatch, client: Redis, patch: Callable[[PubSub, int], None]
) -> None:
    """Call ``patch(pubsub, n)`` on the n-th pubsub (from 0) that ``client`` makes from now on."""
    real_pubsub = client.pubsub
    made = itertools.count()

    def pubsub(**options: Any) -> PubSub:
        created = real_pubsub(**options)
        patch(created, next(made))
        return created

    monkeypatch.setattr(client, "pubsub", pubsub)


def gate_resubscription(monkeypatch: pytest.MonkeyPatch, client: Redis) -> asyncio.Event:
    """Make every later subscription on ``client`` wait until the returned event is set."""
    gate = asyncio.Event()

    def patch(pubsub: PubSub, _: int) -> None:
        real_subscribe = pubsub.subscribe

        async def subscribe(*args: Any, **kwargs: Any) -> None:
            await gate.wait()
            await real_subscribe(*args, **kwargs)

        monkeypatch.setattr(pubsub, "subscribe", subscribe)

    on_each_pubsub(monkeypatch, client, patch)
    return gate


def test_a_lost_link_flushes_serves_nothing_cached_and_resubscribes(
    redis_backend: RedisBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(kit: Kit) -> None:
        writer = kit.client()
        await writer.set(KEY, json.dumps(OLD))
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client, keepalive=FAST_KEEPALIVE)
        other = await kit.store()
        await store.get_policy("risk")
        await store.get_policy("risk")
        assert len(gets) == 1
        gate = gate_resubscription(monkeypatch, client)

        assert await writer.client_kill_filter(_type="pubsub") == 2  # store's and other's
        await kit.until(lambda: not store.link_up, "the loss to be noticed")
        # Down: the cache was flushed, and nothing is cached until resubscribed.
        for _ in range(3):
            assert await store.get_policy("risk") == OLD
        assert len(gets) == 4
        assert store.stats.reconnects == 0

        gate.set()
        await kit.until(lambda: store.link_up, "the link to come back")
        assert store.stats.reconnects == 1
        await store.get_policy("risk")
        await store.get_policy("risk")
        assert len(gets) == 5

        await kit.until(lambda: other.link_up, "the other store's link")
        await other.update_policy("risk", NEW)
        await kit.until(lambda: store.stats.invalidations == 1, "a later invalidation")
        assert await store.get_policy("risk") == NEW

    run(scenario, redis_backend)
    assert any(
        "invalidation link to" in r.getMessage() and "lost" in r.getMessage()
        for r in caplog.records
        if r.name == LOGGER
    )


def test_a_silent_reconnect_by_redis_py_still_flushes(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client with retries re-subscribes by itself inside get_message; the store
    # notices the fresh subscription confirmation instead of an error.
    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, json.dumps(OLD))
        client = kit.client()
        client.set_retry(Retry(NoBackoff(), 3))
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client, keepalive=FAST_KEEPALIVE)
        await store.get_policy("risk")
        await kit.client().client_kill_filter(_type="pubsub")
        await kit.until(lambda: store.stats.reconnects == 1, "the re-subscription")
        await store.get_policy("risk")
        assert len(gets) == 2
        assert store.link_up

    run(scenario, redis_backend)


def test_an_unexpected_listener_error_is_logged_and_survived(
    redis_backend: RedisBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(kit: Kit) -> None:
        client = kit.client()

        def patch(pubsub: PubSub, _: int) -> None:
            real_get_message = pubsub.get_message

            async def get_message(**kwargs: Any) -> dict[str, Any] | None:
                message: dict[str, Any] | None = await real_get_message(**kwargs)
                if message is not None and message["data"] == b"boom":
                    raise RuntimeError("boom")
                return message

            monkeypatch.setattr(pubsub, "get_message", get_message)

        on_each_pubsub(monkeypatch, client, patch)
        store = await kit.store(client)
        other = await kit.store()
        await other.update_policy("risk", OLD)
        await store.get_policy("risk")
        await other.update_policy("boom", OLD)
        await kit.until(lambda: store.stats.reconnects == 1, "the resubscription")
        assert store.link_up
        await other.update_policy("risk", NEW)
        await kit.until(lambda: store.stats.invalidations == 2, "a later invalidation")
        assert await store.get_policy("risk") == NEW

    run(scenario, redis_backend)
    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert "unexpected error on the invalidation link" in record.getMessage()
    assert record.exc_info is not None


def test_a_silent_link_is_caught_by_the_ping_probe(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A half-open connection delivers nothing and raises nothing; PING exposes it."""

    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, json.dumps(OLD))
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        mute = asyncio.Event()

        def patch(pubsub: PubSub, n: int) -> None:
            if n > 0:
                return
            real_get_message, real_ping = pubsub.get_message, pubsub.ping

            async def get_message(**kwargs: Any) -> dict[str, Any] | None:
                if mute.is_set():  # what a dead link looks like: nothing, ever
                    await asyncio.sleep(kwargs["timeout"])
                    return None
                message: dict[str, Any] | None = await real_get_message(**kwargs)
                return message

            async def ping(*args: Any) -> Any:
                return None if mute.is_set() else await real_ping(*args)

            monkeypatch.setattr(pubsub, "get_message", get_message)
            monkeypatch.setattr(pubsub, "ping", ping)

        on_each_pubsub(monkeypatch, client, patch)
        store = await kit.store(client, keepalive=FAST_KEEPALIVE)
        await store.get_policy("risk")
        mute.set()
        await kit.until(lambda: store.stats.reconnects == 1, "the silent link to be replaced")
        await store.get_policy("risk")
        assert len(gets) == 2, "the cache must be flushed when the link is replaced"

    run(scenario, redis_backend)


def test_an_idle_healthy_link_is_kept(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        client = kit.client()
        pings: list[float] = []

        def patch(pubsub: PubSub, _: int) -> None:
            real_ping = pubsub.ping

            async def ping(*args: Any) -> Any:
                pings.append(asyncio.get_running_loop().time())
                return await real_ping(*args)

            monkeypatch.setattr(pubsub, "ping", ping)

        on_each_pubsub(monkeypatch, client, patch)
        store = await kit.store(client, keepalive=FAST_KEEPALIVE)
        await kit.until(lambda: len(pings) >= 4, "several keepalive probes")
        assert store.link_up
        assert store.stats.reconnects == 0

    run(scenario, redis_backend)


def test_initialize_waits_for_the_subscription_confirmation(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        client = kit.client()
        held, release = asyncio.Event(), asyncio.Event()

        def patch(pubsub: PubSub, _: int) -> None:
            real_get_message = pubsub.get_message

            async def get_message(**kwargs: Any) -> dict[str, Any] | None:
                message: dict[str, Any] | None = await real_get_message(**kwargs)
                if message is not None and message["type"] == "subscribe":
                    held.set()
                    await release.wait()
                return message

            monkeypatch.setattr(pubsub, "get_message", get_message)

        on_each_pubsub(monkeypatch, client, patch)
        store = await kit.store(client, start=False)
        starting = asyncio.create_task(store.initialize())
        await asyncio.wait_for(held.wait(), 5)
        await asyncio.sleep(0)  # let initialize() run on, if it wrongly would
        assert not starting.done()
        assert not store.link_up
        release.set()
        await asyncio.wait_for(starting, 5)
        assert store.link_up

    run(scenario, redis_backend)


def test_close_stops_a_listener_whose_client_swallows_cancellation(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py on Python 3.11 can lose a cancellation inside a command
    # (asyncio.wait_for's race); close() must not hang on it.
    async def scenario(kit: Kit) -> None:
        client = kit.client()
        swallowed = asyncio.Event()

        def patch(pubsub: PubSub, _: int) -> None:
            real_get_message = pubsub.get_message

            async def get_message(**kwargs: Any) -> dict[str, Any] | None:
                try:
                    message: dict[str, Any] | None = await real_get_message(**kwargs)
                except asyncio.CancelledError:
                    if swallowed.is_set():
                        raise
                    swallowed.set()  # and read on, as if nothing had happened
                    message = await real_get_message(**kwargs)
                return message

            monkeypatch.setattr(pubsub, "get_message", get_message)

        on_each_pubsub(monkeypatch, client, patch)
        store = await kit.store(client, keepalive=60)
        await asyncio.wait_for(store.close(), 5)
        assert swallowed.is_set()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(scenario, redis_backend)


class FlakyBackend:
    """A Redis the test can take away entirely and bring back."""

    def __init__(
        self,
        name: str,
        factory: Callable[..., Redis],
        down: Callable[[], None],
        up: Callable[[], None],
    ) -> None:
        self.name = name
        self._factory = factory
        self.down = down
        self.up = up

    def client(self, **options: Any) -> Redis:
        return self._factory(**options)


@pytest.fixture(
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("server", id="server", marks=pytest.mark.real_redis),
    ]
)
def flaky_backend(request: pytest.FixtureRequest) -> Iterator[FlakyBackend]:
    if request.param == "fake":
        fake_server = fakeredis.FakeServer()

        def switch(connected: bool) -> Callable[[], None]:
            return lambda: setattr(fake_server, "connected", connected)

        yield FlakyBackend(
            "fake",
            lambda **options: fakeredis.FakeAsyncRedis(server=fake_server, **options),
            down=switch(False),
            up=switch(True),
        )
        return
    request.getfixturevalue("redis_server")  # skips, or fails under CI, without a binary
    with spawn_redis_server() as server:  # its own: the session server must stay up
        yield FlakyBackend(
            "server",
            lambda **options: redis.asyncio.Redis.from_url(server.url, **options),
            down=server.stop,
            up=server.start,
        )


def test_redis_gone_raises_store_unavailable_and_recovers(flaky_backend: FlakyBackend) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store(keepalive=FAST_KEEPALIVE)
        await store.update_policy("risk", OLD)
        await kit.until(lambda: store.stats.invalidations == 1, "the update's own invalidation")
        await store.get_policy("risk")
        await store.get_policy("risk")
        assert store.stats.hits == 1

        flaky_backend.down()
        await kit.until(lambda: not store.link_up, "the loss to be noticed")
        with pytest.raises(StoreUnavailableError, match="cannot read policy 'risk'"):
            await store.get_policy("risk")  # flushed: nothing stale is served
        with pytest.raises(StoreUnavailableError, match="cannot update policy 'risk'"):
            await store.update_policy("risk", NEW)

        flaky_backend.up()
        await kit.until(lambda: store.link_up, "recovery", within=5)
        assert store.stats.reconnects == 1
        if flaky_backend.name == "server":  # a restarted server is empty
            with pytest.raises(PolicyNotFoundError):
                await store.get_policy("risk")
        invalidations = store.stats.invalidations
        await store.update_policy("risk", NEW)
        # The update's own invalidation comes back over pub/sub after the call
        # returns; once it is processed, the cache serves again.
        await kit.until(
            lambda: store.stats.invalidations > invalidations, "the update's own invalidation"
        )
        assert await store.get_policy("risk") == NEW
        assert await store.get_policy("risk") == NEW
        assert store.stats.hits == 2

    run(scenario, flaky_backend)


def test_initialize_without_redis_raises_store_unavailable() -> None:
    async def scenario() -> None:
        fake_server = fakeredis.FakeServer()
        fake_server.connected = False
        client = fakeredis.FakeAsyncRedis(server=fake_server)
        store = PolicyStoreV2(client)
        with pytest.raises(StoreUnavailableError, match=r"cannot subscribe to .*policy:invalidate"):
            await store.initialize()
        assert not store.link_up
        fake_server.connected = True
        await store.initialize()  # it may be retried
        assert store.link_up
        await store.close()
        await client.aclose()

    asyncio.run(scenario())


# -- writes -------------------------------------------------------------------------


def test_an_update_is_one_atomic_round_trip(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        client = kit.client()
        executed: list[tuple[bool, list[str]]] = []
        direct: list[str] = []
        real_pipeline, real_execute_command = client.pipeline, client.execute_command

        def pipeline(transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
            pipe = real_pipeline(transaction=transaction, shard_hint=shard_hint)
            real_execute = pipe.execute

            async def execute(raise_on_error: bool = True) -> list[Any]:
                commands = [str(args[0]) for args, _ in pipe.command_stack]
                executed.append((pipe.is_transaction, commands))
                result: list[Any] = await real_execute(raise_on_error=raise_on_error)
                return result

            monkeypatch.setattr(pipe, "execute", execute)
            return pipe

        async def execute_command(*args: Any, **options: Any) -> Any:
            direct.append(str(args[0]))
            return await real_execute_command(*args, **options)  # type: ignore[no-untyped-call]

        monkeypatch.setattr(client, "pipeline", pipeline)
        monkeypatch.setattr(client, "execute_command", execute_command)
        store = await kit.store(client)
        await store.update_policy("risk", NEW)  # a new server may first answer NOSCRIPT
        executed.clear()
        direct.clear()
        await store.update_policy("risk", OLD)
        if redis_backend.name == "server":  # one server-side script: SET and PUBLISH
            assert (executed, direct) == ([], ["EVALSHA"])
        else:  # fakeredis has no scripting: MULTI/EXEC, and no more EVALSHA attempts
            assert (executed, direct) == ([(True, ["SET", "PUBLISH"])], [])
        stored = await kit.client().get(KEY)
        assert stored is not None
        assert json.loads(stored) == OLD

    run(scenario, redis_backend)


def test_a_failed_update_raises_and_still_drops_the_local_copy(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(kit: Kit) -> None:
        client = kit.client()
        store = await kit.store(client)
        await store.update_policy("risk", OLD)
        await store.get_policy("risk")
        real_pipeline, real_execute_command = client.pipeline, client.execute_command

        def failing_pipeline(transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
            pipe = real_pipeline(transaction=transaction, shard_hint=shard_hint)

            async def execute(raise_on_error: bool = True) -> list[Any]:
                raise RedisConnectionError("Connection reset by peer")

            monkeypatch.setattr(pipe, "execute", execute)
            return pipe

        async def failing_script(*args: Any, **options: Any) -> Any:
            if str(args[0]) in ("EVALSHA", "EVAL"):
                raise RedisConnectionError("Connection reset by peer")
            return await real_execute_command(*args, **options)  # type: ignore[no-untyped-call]

        # The write is a script on a real server, MULTI/EXEC on fakeredis.
        monkeypatch.setattr(client, "pipeline", failing_pipeline)
        monkeypatch.setattr(client, "execute_command", failing_script)
        with pytest.raises(StoreUnavailableError, match="cannot update policy 'risk': Connection"):
            await store.update_policy("risk", NEW)
        misses = store.stats.misses
        assert await store.get_policy("risk") == OLD
        assert store.stats.misses == misses + 1

    run(scenario, redis_backend)


# -- bad input ----------------------------------------------------------------------

BAD_NAMES = [
    pytest.param("", "must not be empty", id="empty"),
    pytest.param("a" * 129, "129 characters long; the limit is 128", id="too-long"),
    pytest.param("a/b", "path separator", id="slash"),
    pytest.param("a\\b", "path separator", id="backslash"),
    pytest.param("a..b", "contains '..'", id="dotdot"),
    pytest.param("-risk", "must start with a letter or digit", id="leading-dash"),
    pytest.param("risk\n", "only letters, digits", id="newline"),
    pytest.param("r isk", "only letters, digits", id="space"),
    pytest.param(None, "must be a str, got NoneType", id="none"),
    pytest.param(42, "must be a str, got int", id="int"),
    pytest.param(["risk"], "must be a str, got list", id="unhashable"),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_bad_names_are_rejected_everywhere(name: Any, message: str) -> None:
    async def scenario() -> None:
        client = fakeredis.FakeAsyncRedis()
        store = PolicyStoreV2(client)
        with pytest.raises(InvalidPolicyNameError, match=message):
            await store.get_policy(name)
        with pytest.raises(InvalidPolicyNameError, match=message):
            await store.update_policy(name, OLD)
        if name is not None:  # invalidate(None) flushes everything
            with pytest.raises(InvalidPolicyNameError, match=message):
                store.invalidate(name)
        assert store.stats == CacheStats(0, 0, 0, 0, 0)
        await client.aclose()

    asyncio.run(scenario())


@given(
    st.text(alphabet="aZ09_.:-/\\ \n\u00e9", max_size=140)
    | st.text(alphabet="ab.", min_size=125, max_size=135)
)
def test_the_fast_name_check_agrees_with_the_explained_rules(name: str) -> None:
    # The miss path and the listener use one regex; errors explain with the rules.
    assert (policy_store_v2._VALID_NAME.fullmatch(name) is not None) == (
        policy_store_v2._name_problem(name) is None
    )


def test_names_at_the_limits_are_accepted(redis_backend: RedisBackend) -> None:
    names = ["a" * 128, "0", "risk.v2:eu-west_1", "A-1"]

    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        for name in names:
            await store.update_policy(name, OLD)
            assert await store.get_policy(name) == OLD

    run(scenario, redis_backend)


def _nested(depth: int) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    for _ in range(depth):
        policy = {"x": policy}
    return policy


BAD_POLICIES = [
    pytest.param(["a"], "policy 'risk' must be a mapping, got list", id="list"),
    pytest.param("{}", "must be a mapping, got str", id="str"),
    pytest.param(None, "must be a mapping, got NoneType", id="none"),
    pytest.param({"a": {1, 2}}, r"policy 'risk'\.a is a set, which is not JSON", id="set"),
    pytest.param({"a": [1, object()]}, r"\.a\[1\] is a object", id="object"),
    pytest.param({"a": math.nan}, r"\.a is nan, which JSON cannot represent", id="nan"),
    pytest.param({"a": math.inf}, "inf, which JSON cannot represent", id="inf"),
    pytest.param({1: "x"}, "has the key 1, which is not a str", id="int-key"),
    pytest.param({"a": b"x"}, "is a bytes", id="bytes"),
    pytest.param(_nested(70), "nested deeper than 64 levels", id="deep"),
]


@pytest.mark.parametrize(("policy", "message"), BAD_POLICIES)
def test_bad_policies_are_rejected_before_writing(
    redis_backend: RedisBackend, policy: Any, message: str
) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        with pytest.raises(InvalidPayloadError, match=message):
            await store.update_policy("risk", policy)
        assert await kit.client().exists(KEY) == 0

    run(scenario, redis_backend)


def test_mappings_and_tuples_are_stored_as_plain_json(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        await store.update_policy("risk", MappingProxyType({"a": (1, 2.5, None, True)}))
        assert await store.get_policy("risk") == {"a": [1, 2.5, None, True]}

    run(scenario, redis_backend)


STORED = [
    pytest.param(b"{not json", "policy 'risk' is not valid JSON", id="malformed"),
    pytest.param(b"[1, 2]", "policy 'risk' is stored as an array, not a JSON object", id="array"),
    pytest.param(b'"text"', "stored as a string", id="string"),
    pytest.param(b"42", "stored as a number", id="number"),
    pytest.param(b"null", "stored as null", id="null"),
    pytest.param(b"\xff\xfe{}", "is not valid JSON", id="not-utf8"),
    pytest.param(b"", "is not valid JSON", id="empty"),
    pytest.param(b'{"a": 1} {"b": 2}', "is not valid JSON: Extra data", id="trailing"),
]


@pytest.mark.parametrize(("stored", "message"), STORED)
def test_stored_bytes_that_are_not_a_json_object(
    redis_backend: RedisBackend, stored: bytes, message: str
) -> None:
    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, stored)
        store = await kit.store()
        with pytest.raises(PolicyDecodeError, match=message):
            await store.get_policy("risk")
        with pytest.raises(PolicyDecodeError):  # and nothing was cached
            await store.get_policy("risk")

    run(scenario, redis_backend)


def test_json_with_surrounding_whitespace_is_read(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, b' \n {"a": [1, 2]}\t ')
        store = await kit.store()
        assert await store.get_policy("risk") == {"a": [1, 2]}

    run(scenario, redis_backend)


def test_a_client_decoding_responses_works_end_to_end(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store(kit.client(decode_responses=True))
        writer = await kit.store(kit.client(decode_responses=True), start=False)
        await writer.update_policy("risk", OLD)
        assert await store.get_policy("risk") == OLD
        await writer.update_policy("risk", NEW)
        await kit.until(invalidated(store, 2), "both invalidations")
        assert await store.get_policy("risk") == NEW
        await kit.client().publish(CHANNEL, "x" * 2000)
        await kit.until(lambda: store.stats.rejected_messages == 1, "the rejection")

    run(scenario, redis_backend)


def test_a_key_of_the_wrong_redis_type_is_a_decode_error(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        await kit.client().hset(KEY, "a", "b")
        store = await kit.store()
        with pytest.raises(PolicyDecodeError, match="'risk' is stored as a non-string Redis type"):
            await store.get_policy("risk")

    run(scenario, redis_backend)


def test_a_missing_policy(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        with pytest.raises(PolicyNotFoundError, match="no policy named 'absent'") as caught:
            await store.get_policy("absent")
        assert isinstance(caught.value, KeyError)
        assert caught.value.name == "absent"

    run(scenario, redis_backend)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": -1}, "ttl must be >= 0"),
        ({"ttl": math.nan}, "ttl must be >= 0"),
        ({"keepalive": 0}, "keepalive must be > 0"),
        ({"channel": ""}, "channel must not be empty"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PolicyStoreV2(fakeredis.FakeAsyncRedis(), **options)


# -- lifecycle ----------------------------------------------------------------------


def test_close_is_idempotent_and_releases_everything(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        writer = kit.client()
        never_started = await kit.store(start=False)
        await never_started.close()
        store = await kit.store()
        await store.update_policy("risk", OLD)
        await store.close()
        await store.close()
        assert not store.link_up
        assert asyncio.all_tasks() == {asyncio.current_task()}, "the listener is gone"

        async def unsubscribed() -> bool:
            [(_, subscribers)] = await writer.pubsub_numsub(CHANNEL)
            return int(subscribers) == 0

        # fakeredis keeps a closed connection's subscriptions; a real server drops them.
        if redis_backend.name == "server":
            await poll_server(unsubscribed, "the subscription to be released")
        with pytest.raises(RuntimeError, match="closed"):
            await store.initialize()

    run(scenario, redis_backend)


def test_async_with_initializes_and_closes(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        async with PolicyStoreV2(kit.client()) as store:
            assert store.link_up
        assert not store.link_up
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(scenario, redis_backend)


@pytest.mark.real_redis
def test_from_url_owns_and_closes_its_client(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = PolicyStoreV2.from_url(redis_server.url, ttl=5.0)
        await store.initialize()
        await store.update_policy("risk", OLD)
        assert await store.get_policy("risk") == OLD
        await store.close()
        await store.close()

    asyncio.run(scenario())


def test_get_policy_store_is_lazy_process_wide_and_reads_the_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls: list[str] = []
    real_from_url = PolicyStoreV2.from_url

    def from_url(url: str, **options: Any) -> PolicyStoreV2:
        urls.append(url)
        return real_from_url(url, **options)

    monkeypatch.setattr(PolicyStoreV2, "from_url", from_url)
    monkeypatch.setattr(policy_store_v2, "_default_store", None)
    monkeypatch.delenv("QUANTUM_REDIS_URL", raising=False)
    store = get_policy_store()
    assert get_policy_store() is store
    assert urls == ["redis://localhost:6379/0"]  # named, never connected to

    monkeypatch.setattr(policy_store_v2, "_default_store", None)
    monkeypatch.setenv("QUANTUM_REDIS_URL", "redis://127.0.0.1:1/3")
    assert get_policy_store() is not store
    assert urls[-1] == "redis://127.0.0.1:1/3"


# -- pytest_quantum_p1._redis ---------------------------------------------------------


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16) == b"+PONG\r\n"
    except OSError:
        return False


@pytest.mark.real_redis
def test_spawned_server_stops_and_restarts_on_the_same_port(redis_server: RedisServer) -> None:
    # redis_server: the binary is there (without one the test skips, or fails under CI).
    with spawn_redis_server() as server:
        assert server.host == "127.0.0.1"
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.running
        assert _answers_ping(server.port)
        port = server.port
        server.stop()
        assert not server.running
        assert not _answers_ping(port)
        server.start()
        assert server.port == port
        assert _answers_ping(port)
        server.kill()
        assert not server.running
        assert not _answers_ping(port)
        server.start()
        assert _answers_ping(port)
    assert not server.running
    server.stop()  # idempotent


@pytest.mark.real_redis
def test_a_server_that_cannot_start_reports_its_log_tail(redis_server: RedisServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RedisServer(redis_server.binary, taken.getsockname()[1], startup_timeout=10)
        with pytest.raises(RedisServerUnavailable, match=r"(?s)exited; its log ends with.*in use"):
            server.start()
    assert not server.running


def test_a_missing_binary_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RedisServerUnavailable, match="'/nonexistent/redis-server' is not an exec"):
        spawn_redis_server("/nonexistent/redis-server")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RedisServerUnavailable) as caught:
        spawn_redis_server()
    message = str(caught.value)
    assert "'redis-server' is not on PATH" in message
    assert "apt-get install redis-server" in message
    assert "path of a redis-server binary" in message
    assert "--p1-redis=fake" in message


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://user:secret@h:1/0", "redis://user:***@h:1/0"),
        ("redis://:secret@h", "redis://:***@h"),
        ("rediss://u:p%40ss@h:6380/2", "rediss://u:***@h:6380/2"),
        ("redis://u:se/cr@t@h/0", "redis://u:***@h/0"),
        ("redis://h:1/0?password=secret&db=2", "redis://h:1/0?password=***&db=2"),
        ("unix://:pw@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://h:1/0", "redis://h:1/0"),
        ("redis://user@h:1/0", "redis://user@h:1/0"),
        ("redis://h:1/0?tag=a@b", "redis://h:1/0?tag=a@b"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
