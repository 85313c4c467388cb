"""The reference ``PolicyStoreV2`` on a private Redis Cluster (3 masters, 1 replica each).

Each store has its own ``redis.asyncio.cluster.RedisCluster`` client, made
inside the running loop; TTLs run on a :class:`~pytest_quantum_p1.VirtualClock`
that never moves, so a stale read can only come from a lost invalidation. The
nodes gossip on their own clock, so waits on the cluster poll it; waits on a
store poll its public state (``link_up``, ``stats``) every millisecond without
reading, since reads would help a store that needs traffic to recover.

A store that listens only on the channel's slot owner and never asks the
cluster for its topology again (redis-py's default pubsub) is the broken target
of the node-loss test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode as ClientNode
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    MovedError,
    RedisClusterException,
    SlotNotCoveredError,
)

from pytest_quantum_p1 import VirtualClock
from pytest_quantum_p1._redis.cluster import ClusterNode, LocalRedisCluster
from pytest_quantum_p1._redis.server import free_port
from reference_impl.errors import StoreUnavailableError
from reference_impl.services.policy_store_v2 import (
    CLUSTER_ERROR,
    CLUSTER_REDIRECT,
    PLAIN_CLIENT_REDIRECT,
    PolicyStoreV2,
)

pytestmark = pytest.mark.real_redis

CHANNEL: Final = "policy:invalidate"
PREFIX: Final = "policy:"
STORES: Final = 3
#: The steady update stream of the failover test: one update every this many seconds.
UPDATE_EVERY: Final = 0.01
#: How long the stream runs steadily before each failover (and after the last).
STEADY_BEFORE: Final = 0.3
#: What the node-loss promise allows beyond the cluster's own failover time.
RESUBSCRIBE_GRACE: Final = 1.0
_POLL: Final = 0.001


@dataclass
class Fleet:
    """Stores on one cluster, each with a cluster client of its own (same order)."""

    stores: list[PolicyStoreV2]
    clients: list[RedisCluster]

    def names_by_master(self, per_master: int) -> dict[str, list[str]]:
        """``per_master`` policy names whose keys live on each master, by master ``host:port``."""
        client = self.clients[0]
        by_master: dict[str, list[str]] = {node.name: [] for node in client.get_primaries()}
        for index in itertools.count():
            name = f"p{index}"
            node = client.get_node_from_key(PREFIX + name)
            assert node is not None
            bucket = by_master[node.name]
            if len(bucket) < per_master:
                bucket.append(name)
            if all(len(bucket) == per_master for bucket in by_master.values()):
                return by_master
        raise AssertionError("unreachable")

    async def truth(self, name: str) -> Any:
        """What Redis holds for ``name``, decoded (its master's copy)."""
        raw = await self.clients[0].get(PREFIX + name)
        return None if raw is None else json.loads(raw)


class PinnedStore(PolicyStoreV2):
    """Broken on purpose: listens on the channel's slot owner only, and never asks the
    cluster for its topology again (what redis-py's ``pubsub()`` does by itself)."""

    async def _learn_topology(self, cluster: RedisCluster, *, refresh: bool) -> None:
        if not refresh:
            await super()._learn_topology(cluster, refresh=False)

    def _listening_nodes(self, cluster: RedisCluster) -> list[ClientNode]:
        return super()._listening_nodes(cluster)[:1]


@asynccontextmanager
async def open_fleet(
    url: str, size: int = STORES, store_class: type[PolicyStoreV2] = PolicyStoreV2
) -> AsyncIterator[Fleet]:
    """``size`` initialised stores on the cluster at ``url``; closed, with their clients, after."""
    clock = VirtualClock()
    async with AsyncExitStack() as stack:
        fleet = Fleet([], [])
        for _ in range(size):
            client = RedisCluster.from_url(url)  # fresh: the store must initialise it
            stack.push_async_callback(client.aclose)
            store = store_class(client, clock=clock, ttl=60.0)
            stack.push_async_callback(store.close)
            await store.initialize()
            fleet.stores.append(store)
            fleet.clients.append(client)
        yield fleet


async def until(condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Return once ``condition()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(_POLL)


async def until_served(fleet: Fleet, name: str, value: Any, within: float = 5.0) -> None:
    """Return once every store serves ``value`` for ``name`` (a cached old value never changes)."""
    deadline = time.monotonic() + within
    for index, store in enumerate(fleet.stores):
        while (served := dict(await store.get_policy(name))) != value:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"store {index} still serves {served} for {name!r} {within}s after the"
                    f" update to {value}: an invalidation was lost without a flush"
                )
            await asyncio.sleep(_POLL)


async def update_and_cache(fleet: Fleet, names: list[str], value: Any, *, writers: int = 1) -> None:
    """Update ``names`` (through the first ``writers`` stores in turn); every store then
    serves ``value`` for each, from its cache.

    Reading only after every store took every invalidation: one landing after a
    read would empty the cache that later checks rely on.
    """
    seen = [store.stats.invalidations for store in fleet.stores]
    for index, name in enumerate(names):
        await fleet.stores[index % writers].update_policy(name, value)

    def heard_all() -> bool:
        return all(
            store.stats.invalidations - before >= len(names)
            for store, before in zip(fleet.stores, seen, strict=True)
        )

    # Whichever master published it, every store hears every update.
    await until(heard_all, "every store to take the invalidation of every update")
    for index, store in enumerate(fleet.stores):
        for name in names:
            assert dict(await store.get_policy(name)) == value, f"store {index}, {name!r}"
        hits = store.stats.hits
        for name in names:
            await store.get_policy(name)
        assert store.stats.hits - hits == len(names), f"store {index} did not cache"


def holder_of_subscriptions(cluster: LocalRedisCluster, expected: int) -> ClusterNode:
    """The node where ``expected`` clients subscribe to the channel (``PUBSUB NUMSUB`` is local)."""
    counts: dict[int, int] = {}
    for node in cluster.nodes:
        with node.admin() as admin:
            [(_, count)] = admin.pubsub_numsub(CHANNEL)
        counts[node.port] = int(count)
    holders = [node for node in cluster.nodes if counts[node.port] == expected]
    assert len(holders) == 1, f"subscribers per node port: {counts}"
    return holders[0]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await scenario()

    asyncio.run(main())


# -- invalidation across shards --------------------------------------------------


def test_stores_converge_after_updates_spanning_every_shard(cluster_url: str) -> None:
    async def scenario() -> None:
        async with open_fleet(cluster_url) as fleet:
            names = [n for ns in fleet.names_by_master(2).values() for n in ns]
            for round_ in range(3):
                # Each store writes some shard's keys; every store caches every key.
                await update_and_cache(fleet, names, {"v": round_}, writers=STORES)
            assert all(store.stats.reconnects == 0 for store in fleet.stores)

    run(scenario)


def test_a_fresh_cluster_client_is_initialised_by_the_store(cluster_url: str) -> None:
    # redis-py 8.1: a fresh RedisCluster's pubsub() raises a bare KeyError.
    async def scenario() -> None:
        client = RedisCluster.from_url(cluster_url)
        store = PolicyStoreV2(client)
        try:
            await store.initialize()
            assert store.link_up
            await store.update_policy("risk", {"v": 1})
            assert dict(await store.get_policy("risk")) == {"v": 1}
        finally:
            await store.close()
            await client.aclose()

    run(scenario)


def test_a_store_made_from_a_cluster_url_owns_its_cluster_client(cluster_url: str) -> None:
    async def scenario() -> None:
        async with PolicyStoreV2.from_url(cluster_url, cluster=True) as store:
            await store.update_policy("risk", {"v": 1})
            assert dict(await store.get_policy("risk")) == {"v": 1}
            assert store.stats.misses == 1

    run(scenario)


# -- failover under a steady update stream ------------------------------------------


@dataclass
class Stream:
    """The update stream's tally."""

    acknowledged: int = 0
    failed: int = 0
    values: dict[str, int] = field(default_factory=dict)


def test_no_stale_read_after_a_failover_of_each_master_under_a_steady_update_stream(
    redis_cluster: LocalRedisCluster, cluster_url: str, request: pytest.FixtureRequest
) -> None:
    async def scenario() -> None:
        async with open_fleet(cluster_url) as fleet:
            by_master = fleet.names_by_master(3)
            # One name per shard settles it afterwards: a shard's messages reach
            # a node in order over one bus link, so its marker comes last.
            markers = [names.pop() for names in by_master.values()]
            names = [n for ns in by_master.values() for n in ns]
            writer = fleet.stores[0]
            await update_and_cache(fleet, names + markers, {"v": -1})
            before = [store.stats for store in fleet.stores]
            stream = Stream()
            stop = asyncio.Event()

            async def update_steadily() -> None:
                for tick in itertools.count():
                    if stop.is_set():
                        return
                    name = names[tick % len(names)]
                    try:
                        await writer.update_policy(name, {"v": tick})
                    except StoreUnavailableError:
                        stream.failed += 1  # may or may not have happened
                    else:
                        stream.acknowledged += 1
                    await asyncio.sleep(UPDATE_EVERY)

            async def read_steadily(store: PolicyStoreV2) -> None:
                while not stop.is_set():  # keeps every cache warm, so staleness would show
                    for name in names:
                        with contextlib.suppress(StoreUnavailableError):  # failing over
                            await store.get_policy(name)
                    await asyncio.sleep(0.002)

            tasks = [asyncio.create_task(update_steadily())]
            tasks += [asyncio.create_task(read_steadily(s)) for s in fleet.stores[1:]]
            failovers = []
            for master in list(redis_cluster.masters):
                await asyncio.sleep(STEADY_BEFORE)
                started = time.monotonic()
                await asyncio.to_thread(redis_cluster.failover, master)
                failovers.append(time.monotonic() - started)
            await asyncio.sleep(STEADY_BEFORE)
            stop.set()
            await asyncio.gather(*tasks)

            for marker in markers:
                await writer.update_policy(marker, {"v": "end"})
                await until_served(fleet, marker, {"v": "end"})
            stale = []
            for name in names:
                truth = await fleet.truth(name)
                for index, store in enumerate(fleet.stores):
                    served = dict(await store.get_policy(name))
                    if served != truth:
                        stale.append(f"store {index} serves {served} for {name!r}; Redis: {truth}")
            assert not stale, "stale reads after the failovers:\n" + "\n".join(stale)
            for index, (store, old) in enumerate(zip(fleet.stores, before, strict=True)):
                now = store.stats
                if now.reconnects == old.reconnects:  # no flush: every acknowledged one arrived
                    taken = now.invalidations - old.invalidations
                    assert taken >= stream.acknowledged + len(markers), (
                        f"store {index} took {taken} invalidations of {stream.acknowledged}"
                        f" acknowledged updates (+{len(markers)} markers) and never flushed"
                    )
            assert stream.acknowledged > 0
            request.node.user_properties.append(("failover_s", [round(s, 3) for s in failovers]))
            request.node.user_properties.append(("updates_acknowledged", stream.acknowledged))
            request.node.user_properties.append(("updates_failed", stream.failed))
            request.node.user_properties.append(
                ("reconnects", [s.stats.reconnects for s in fleet.stores])
            )

    run(scenario)


# -- loss of the node holding the subscriptions -------------------------------------


@dataclass
class NodeLoss:
    """What the stores did after the node holding their subscriptions was SIGKILLed."""

    failover_s: float
    #: Per store, seconds from the kill until it was subscribed again; None if never.
    resubscribed_s: list[float | None]
    #: Per store, reads of warm policies served from its cache after the loss (0: flushed).
    cached_after: list[int] = field(default_factory=list)

    @property
    def in_time(self) -> list[bool]:
        limit = self.failover_s + RESUBSCRIBE_GRACE
        return [s is not None and s <= limit for s in self.resubscribed_s]


async def lose_the_subscription_node(
    cluster: LocalRedisCluster, url: str, store_class: type[PolicyStoreV2]
) -> NodeLoss:
    """SIGKILL the node the stores listen on; check they flush, serve uncached and converge."""
    async with open_fleet(url, store_class=store_class) as fleet:
        holder = holder_of_subscriptions(cluster, STORES)
        replica = cluster.replica_of(holder)
        by_master = fleet.names_by_master(2)
        dead_shard = by_master.pop(f"127.0.0.1:{holder.port}")
        survivors = [n for ns in by_master.values() for n in ns]
        await update_and_cache(fleet, survivors + dead_shard, {"v": 0})
        reconnects = [store.stats.reconnects for store in fleet.stores]

        promoted_at: list[float] = []

        def wait_promotion() -> None:
            deadline = time.monotonic() + 20
            while replica.role != "master" and time.monotonic() < deadline:
                time.sleep(0.01)
            promoted_at.append(time.monotonic())

        killed = time.monotonic()
        holder.kill()
        promotion = asyncio.create_task(asyncio.to_thread(wait_promotion))
        resubscribed: list[float | None] = [None] * STORES
        # No reads meanwhile: a store must recover without traffic of its own.
        limit: float | None = None
        while limit is None or time.monotonic() < limit:
            now = time.monotonic()
            if limit is None and promoted_at:
                limit = now + RESUBSCRIBE_GRACE
            for index, store in enumerate(fleet.stores):
                if (
                    resubscribed[index] is None
                    and store.link_up
                    and store.stats.reconnects > reconnects[index]
                ):
                    resubscribed[index] = now - killed
            if promoted_at and None not in resubscribed:
                break
            await asyncio.sleep(_POLL)
        await promotion
        loss = NodeLoss(failover_s=promoted_at[0] - killed, resubscribed_s=resubscribed)
        if not all(loss.in_time):
            return loss
        # Flushed: every read misses, on every store, and is right.
        for store in fleet.stores:
            hits = store.stats.hits
            for name in survivors:
                assert dict(await store.get_policy(name)) == {"v": 0}
            loss.cached_after.append(store.stats.hits - hits)
        if any(loss.cached_after):
            return loss
        # Subscribed again for real: updates of every shard, the failed-over one
        # included, reach every store.
        for name in (survivors[0], dead_shard[0]):
            await fleet.stores[1].update_policy(name, {"v": 1})
            await until_served(fleet, name, {"v": 1})
        return loss


def test_each_store_resubscribes_in_time_when_the_node_holding_the_subscriptions_dies(
    redis_cluster: LocalRedisCluster, cluster_url: str, request: pytest.FixtureRequest
) -> None:
    loss: list[NodeLoss] = []

    async def scenario() -> None:
        loss.append(await lose_the_subscription_node(redis_cluster, cluster_url, PolicyStoreV2))

    run(scenario)
    [figures] = loss
    request.node.user_properties.append(("failover_s", round(figures.failover_s, 3)))
    request.node.user_properties.append(("resubscribed_s", figures.resubscribed_s))
    assert all(figures.in_time), (
        f"resubscribed after {figures.resubscribed_s} s; the cluster failed over in"
        f" {figures.failover_s:.3f} s"
    )
    assert figures.cached_after == [0] * STORES, "a store served its cache after the loss"


class NoFlushStore(PolicyStoreV2):
    """Broken on purpose: ignores the lost-link rule (keeps its cache when the link drops)."""

    def _set_link(self, *, up: bool) -> None:
        self._link_up = up


def test_a_store_pinned_to_the_slot_owner_does_not_resubscribe_in_time(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    loss: list[NodeLoss] = []

    async def scenario() -> None:
        loss.append(await lose_the_subscription_node(redis_cluster, cluster_url, PinnedStore))

    run(scenario)
    [figures] = loss
    assert figures.resubscribed_s == [None] * STORES, figures


def test_a_store_ignoring_the_lost_link_rule_serves_its_cache_after_the_node_loss(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    loss: list[NodeLoss] = []

    async def scenario() -> None:
        loss.append(await lose_the_subscription_node(redis_cluster, cluster_url, NoFlushStore))

    run(scenario)
    [figures] = loss
    assert all(figures.in_time), figures  # it resubscribes: only the flush is missing
    assert figures.cached_after == [4] * STORES, figures  # the survivors' 2 x 2 policies


# -- cluster failures, typed and readable -------------------------------------------


def test_a_plain_client_on_a_cluster_node_is_told_moved_and_what_to_use(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    node = redis_cluster.masters[0]

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            router = RedisCluster.from_url(cluster_url)
            stack.push_async_callback(router.aclose)
            await router.initialize()
            local = remote = None
            for index in itertools.count():
                name = f"p{index}"
                owner = router.get_node_from_key(PREFIX + name)
                assert owner is not None
                if owner.port == node.port:
                    local = local or name
                else:
                    remote = remote or (name, owner)
                if local and remote:
                    break
            assert local is not None
            assert remote is not None
            name, owner = remote
            client = Redis.from_url(node.url)
            stack.push_async_callback(client.aclose)
            store = PolicyStoreV2(client)
            stack.push_async_callback(store.close)
            await store.initialize()  # SUBSCRIBE names no key: any node takes it
            redirect = PLAIN_CLIENT_REDIRECT.format(
                kind="MOVED", slot=key_slot((PREFIX + name).encode()), node=owner.name
            )
            with pytest.raises(StoreUnavailableError) as read:
                await store.get_policy(name)
            assert str(read.value) == f"cannot read policy {name!r}: {redirect}"
            with pytest.raises(StoreUnavailableError) as write:
                await store.update_policy(name, {"v": 1})
            assert str(write.value) == f"cannot update policy {name!r}: {redirect}"
            assert "MOVED" in redirect
            assert "Redis Cluster" in redirect
            # A key this node owns works through the same client.
            await store.update_policy(local, {"v": 1})
            assert dict(await store.get_policy(local)) == {"v": 1}

    run(scenario)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            ClusterDownError("CLUSTERDOWN The cluster is down"),
            CLUSTER_ERROR.format(type="ClusterDownError", error="CLUSTERDOWN The cluster is down"),
            id="clusterdown",
        ),
        pytest.param(
            SlotNotCoveredError('Slot "7" is not covered by the cluster.'),
            CLUSTER_ERROR.format(
                type="SlotNotCoveredError", error='Slot "7" is not covered by the cluster.'
            ),
            id="slot-not-covered",
        ),
        pytest.param(
            MovedError("7693 127.0.0.1:30002"),
            CLUSTER_REDIRECT.format(kind="MOVED", slot=7693, node="127.0.0.1:30002"),
            id="moved-surfaced",
        ),
    ],
)
def test_cluster_failures_are_the_typed_unavailable_error_saying_so(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    async def failing(*args: object, **kwargs: object) -> None:
        raise error

    async def scenario() -> None:
        client = RedisCluster(host="127.0.0.1", port=free_port())  # never connected
        monkeypatch.setattr(client, "get", failing)
        monkeypatch.setattr(client, "execute_command", failing)
        store = PolicyStoreV2(client)
        with pytest.raises(StoreUnavailableError) as read:
            await store.get_policy("risk")
        assert str(read.value) == f"cannot read policy 'risk': {expected}"
        with pytest.raises(StoreUnavailableError) as write:
            await store.update_policy("risk", {"v": 1})
        assert str(write.value) == f"cannot update policy 'risk': {expected}"

    run(scenario)


def test_a_cluster_with_no_reachable_node_is_the_typed_unavailable_error() -> None:
    async def scenario() -> None:
        client = RedisCluster(host="127.0.0.1", port=free_port())
        store = PolicyStoreV2(client)
        try:
            with pytest.raises(StoreUnavailableError) as info:
                await store.initialize()
        finally:
            await store.close()
            await client.aclose()
        assert str(info.value).startswith(
            f"cannot subscribe to the invalidation channel {CHANNEL!r}: Redis Cluster"
            " unavailable (RedisClusterException): "
        )
        assert isinstance(info.value.__cause__, RedisClusterException)

    run(scenario)
