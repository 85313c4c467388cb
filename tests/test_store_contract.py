"""The store contract: what every correct policy store does, run against each store.

In the cachetools manner: :class:`StoreContract` holds the promises as tests,
and one subclass per implementation runs them: the toy store
(:mod:`tests.stores`), the reference ``PolicyStoreV2`` and the port of the
seed's sketch. Every test runs on fakeredis and on a private redis-server.

The stores are driven through the harness's public
:class:`~pytest_quantum_p1.PolicyCluster`, two instances on one Redis: storage
reads are counted by the harness, not by the store, and every wait is
event-driven (``settle()`` returns once each listener processed everything it
received before a barrier token, sent on a harness-only channel of its own
connection, came back). The seed port is known to be broken; the
promises it breaks are ``xfail(strict=True)`` naming the bug, so a change in
what it breaks shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, cast

import pytest
from redis.asyncio import Redis

from pytest_quantum_p1 import (
    Clock,
    ClusterTimeout,
    PolicyCluster,
    PolicyStore,
    VirtualClock,
)
from reference_impl.errors import PolicyNotFoundError
from reference_impl.services.policy_store_v2 import PolicyStoreV2
from tests.clusters import cache_everywhere
from tests.conftest import RedisBackend
from tests.seed_port.policy_store_seed import seed_store_factory
from tests.stores import TTL, ToyStore

V1 = {"limit": 1}
V2 = {"limit": 2}


def values(cluster: PolicyCluster, name: str) -> list[dict[str, Any]]:
    return [dict(v) for v in cluster.read_all(name)]


def lose_invalidation(cluster: PolicyCluster, instance: int, name: str, value: Any) -> None:
    """Update ``name`` through instance 0; ``instance`` never hears of it."""
    pubsub = cluster.pubsub(instance)
    pubsub.hold()
    cluster.update(0, name, value)
    pubsub.wait_pending(1)
    pubsub.drop(1)
    pubsub.release()


class StoreContract:
    """The promises of a policy store; a subclass makes its store in :meth:`store`."""

    #: The TTL of the stores :meth:`store` makes, in seconds of the injected clock.
    ttl: ClassVar[float] = TTL
    #: What ``get_policy`` raises for a name never stored.
    missing_error: ClassVar[type[Exception]] = KeyError

    def store(self, redis: Redis, clock: Clock) -> PolicyStore:
        """A new, not yet initialised store on ``redis`` (the harness's store factory)."""
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> VirtualClock:
        return VirtualClock()

    @pytest.fixture
    def cluster(self, redis_backend: RedisBackend, clock: VirtualClock) -> Iterator[PolicyCluster]:
        # open() returns only once Redis confirmed each instance's subscription.
        with PolicyCluster.open(
            self.store, redis_backend.source, instances=2, clock=clock
        ) as cluster:
            yield cluster

    def test_initialize_subscribes_a_listener_that_handles_messages(
        self, cluster: PolicyCluster
    ) -> None:
        cluster.settle()

    def test_an_update_reads_back_at_once_on_its_own_instance(self, cluster: PolicyCluster) -> None:
        cluster.update(0, "risk", V1)
        assert dict(cluster.read(0, "risk")) == V1
        cluster.update(0, "risk", V2)  # drops the cached V1 itself, before any message
        assert dict(cluster.read(0, "risk")) == V2

    def test_a_missing_policy_raises(self, cluster: PolicyCluster) -> None:
        with pytest.raises(self.missing_error):
            cluster.read(0, "absent")

    def test_a_cached_read_costs_no_storage_read(self, cluster: PolicyCluster) -> None:
        cluster.update(0, "risk", V1)
        cluster.settle()  # a late invalidation would evict what the first read cached
        for _ in range(5):
            assert dict(cluster.read(1, "risk")) == V1
        assert cluster.storage_reads == (0, 1)

    def test_entries_expire_after_the_ttl_on_the_injected_clock(
        self, cluster: PolicyCluster, clock: VirtualClock
    ) -> None:
        cluster.update(0, "risk", V1)
        cluster.settle()
        cluster.read(1, "risk")
        clock.advance(self.ttl * 0.9)
        cluster.read(1, "risk")
        assert cluster.storage_reads == (0, 1)
        clock.advance(self.ttl * 0.2)
        cluster.read(1, "risk")
        assert cluster.storage_reads == (0, 2)

    def test_a_lost_invalidation_heals_by_the_ttl(
        self, cluster: PolicyCluster, clock: VirtualClock
    ) -> None:
        cache_everywhere(cluster, "risk", V1)
        lose_invalidation(cluster, 1, "risk", V2)
        clock.advance(self.ttl + 1)
        cluster.assert_converged("risk", V2)

    def test_an_update_on_one_instance_invalidates_the_other(self, cluster: PolicyCluster) -> None:
        cache_everywhere(cluster, "risk", V1)
        cluster.update(1, "risk", V2)
        cluster.assert_converged("risk", V2)
        cluster.update(0, "risk", V1)
        cluster.assert_converged("risk", V1)

    def test_a_read_racing_an_invalidation_is_not_cached(self, cluster: PolicyCluster) -> None:
        cluster.update(0, "risk", V1)
        cluster.settle()
        observed = cluster.observed(1)
        observed.hold_reads()
        read = cluster.spawn_read(1, "risk")  # a miss: the GET ran, its result is held
        observed.wait_pending_reads(1)
        cluster.update(0, "risk", V2)
        cluster.settle()  # instance 1 handled the invalidation while its read was in flight
        observed.release_reads()
        assert dict(read.result(timeout=5)) == V1  # an in-flight read may answer the old value
        cluster.assert_converged("risk", V2)  # ... but must not have cached it

    def test_a_slow_miss_never_overwrites_a_newer_fill(self, cluster: PolicyCluster) -> None:
        cluster.update(0, "risk", V1)
        cluster.settle()
        observed = cluster.observed(1)
        observed.hold_reads()
        earlier = cluster.spawn_read(1, "risk")
        observed.wait_pending_reads(1)  # V1 is in hand
        # Never announced to instance 1, so only the order in which its misses
        # began can keep its cache from going backwards.
        lose_invalidation(cluster, 1, "risk", V2)
        later = cluster.spawn_read(1, "risk")
        first, second = observed.wait_pending_reads(2)
        second.release()
        assert dict(later.result(timeout=5)) == V2
        first.release()
        assert dict(earlier.result(timeout=5)) == V1
        observed.release_reads()
        assert dict(cluster.read(1, "risk")) == V2

    def test_a_lost_link_flushes_and_resubscribes(self, cluster: PolicyCluster) -> None:
        cache_everywhere(cluster, "risk", V1)
        before = cluster.subscriptions
        reads = cluster.storage_reads[1]
        cluster.pubsub(1).disconnect()
        cluster.wait_resubscribed(1, after=before[1])
        # Invalidations may have been lost with the link: the cached copy must go.
        assert dict(cluster.read(1, "risk")) == V1
        assert cluster.storage_reads[1] == reads + 1
        cluster.update(0, "risk", V2)
        cluster.assert_converged("risk", V2)

    def test_a_message_that_is_not_utf8_is_survived(self, cluster: PolicyCluster) -> None:
        cache_everywhere(cluster, "risk", V1)
        cluster.pubsub(1).inject(b"\xff\xfe\xfd")
        cluster.update(0, "risk", V2)
        # settle() inside proves instance 1's listener read past the garbage.
        cluster.assert_converged("risk", V2)


class TestToyStore(StoreContract):
    def store(self, redis: Redis, clock: Clock) -> PolicyStore:
        return ToyStore(redis, clock)


class TestReferenceStore(StoreContract):
    missing_error = PolicyNotFoundError

    def store(self, redis: Redis, clock: Clock) -> PolicyStore:
        return PolicyStoreV2(redis, ttl=TTL, clock=clock)


def known_bug(reason: str, raises: type[Exception]) -> pytest.MarkDecorator:
    """Expected to fail with ``raises`` (a failure of another kind is an error)."""
    return pytest.mark.xfail(strict=True, raises=raises, reason=f"the seed's bug: {reason}")


STALE_FILL = (
    "stale-fill race: the cache is filled after the awaited read, unguarded, so a read "
    "racing an invalidation (or a newer read) caches the old value"
)
WALL_CLOCK_TTL = "wall-clock TTL: entries age by datetime.utcnow(), the injected clock is ignored"
SURVIVES_DISCONNECT = (
    "the cache survives a disconnect: the unsupervised listener dies with the "
    "connection, nothing flushes and nothing resubscribes"
)
DIES_ON_NON_UTF8 = "the listener dies on the first message that is not UTF-8 (.decode())"


class TestSeedPort(StoreContract):
    def store(self, redis: Redis, clock: Clock) -> PolicyStore:
        # The sketch types update_policy's policy as dict, narrower than the
        # protocol's Mapping; at run time it takes what the harness passes.
        return cast("PolicyStore", seed_store_factory(redis, clock))

    @known_bug(
        "a missing key reads as json.loads(None), a TypeError, not KeyError "
        "(the sketch does not show its storage read; the port's is a plain GET)",
        TypeError,
    )
    def test_a_missing_policy_raises(self, cluster: PolicyCluster) -> None:
        super().test_a_missing_policy_raises(cluster)

    @known_bug(WALL_CLOCK_TTL, AssertionError)
    def test_entries_expire_after_the_ttl_on_the_injected_clock(
        self, cluster: PolicyCluster, clock: VirtualClock
    ) -> None:
        super().test_entries_expire_after_the_ttl_on_the_injected_clock(cluster, clock)

    @known_bug(WALL_CLOCK_TTL, AssertionError)
    def test_a_lost_invalidation_heals_by_the_ttl(
        self, cluster: PolicyCluster, clock: VirtualClock
    ) -> None:
        super().test_a_lost_invalidation_heals_by_the_ttl(cluster, clock)

    @known_bug(STALE_FILL, AssertionError)
    def test_a_read_racing_an_invalidation_is_not_cached(self, cluster: PolicyCluster) -> None:
        super().test_a_read_racing_an_invalidation_is_not_cached(cluster)

    @known_bug(STALE_FILL, AssertionError)
    def test_a_slow_miss_never_overwrites_a_newer_fill(self, cluster: PolicyCluster) -> None:
        super().test_a_slow_miss_never_overwrites_a_newer_fill(cluster)

    @known_bug(SURVIVES_DISCONNECT, TimeoutError)
    def test_a_lost_link_flushes_and_resubscribes(self, cluster: PolicyCluster) -> None:
        super().test_a_lost_link_flushes_and_resubscribes(cluster)

    @known_bug(DIES_ON_NON_UTF8, ClusterTimeout)
    def test_a_message_that_is_not_utf8_is_survived(self, cluster: PolicyCluster) -> None:
        super().test_a_message_that_is_not_utf8_is_survived(cluster)
