"""PolicyCluster: N store instances on one Redis, settled without sleeping, judged by reads.

The stores are the tests' toy store (:mod:`tests.stores`: a TTL cache, a
listener on ``client.pubsub().get_message``, a guard against a read racing an
invalidation, resubscription that flushes) and its broken variants, each missing
exactly one of those. Every verdict of the cluster is shown to pass on the
correct store and to fail, with its message, on the broken one. The correct-store
tests also run against the reference ``PolicyStoreV2`` when it exists, and
everything runs on fakeredis and on a private redis-server.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import pytest

from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._harness import ClusterTimeout, PolicyCluster
from pytest_quantum_p1._messages import (
    NOT_CONVERGED,
    NOT_SETTLED_BARRIER,
    NOT_SUBSCRIBED,
    WHERE_BACKLOG_HELD,
    WHERE_BACKLOG_NOT_FINISHED,
    WHERE_BACKLOG_NOT_TAKEN,
)
from pytest_quantum_p1._redis.source import RedisSource
from pytest_quantum_p1._target import Clock, PolicyStore, StoreFactory
from tests.clusters import cache_everywhere, values
from tests.stores import (
    CHANNEL,
    TTL,
    CachesForever,
    DiesOnUnknownMessages,
    HangsOnInitialize,
    InvalidatesByKeyList,
    KeepsCacheOnLinkLoss,
    NeverPublishes,
    NeverReads,
    NeverSubscribes,
    RacyFill,
    StopsReading,
    SwallowsMessages,
    ToyStore,
    WordsItsOwnMessages,
)

V1 = {"limit": 1}
V2 = {"limit": 2}


def factory_of(cls: type[ToyStore]) -> StoreFactory:
    def make(redis: Any, clock: Clock) -> PolicyStore:
        return cls(redis, clock)

    return make


def mixed(default: type[ToyStore], **odd: type[ToyStore]) -> StoreFactory:
    """A factory making ``default`` stores except at the instance indexes given (``i2=...``)."""
    made = 0

    def make(redis: Any, clock: Clock) -> PolicyStore:
        nonlocal made
        cls = odd.get(f"i{made}", default)
        made += 1
        return cls(redis, clock)

    return make


def reference_factory() -> StoreFactory:
    try:
        module = importlib.import_module("reference_impl.services.policy_store_v2")
    except ModuleNotFoundError:
        pytest.skip("reference_impl.services.policy_store_v2 does not exist yet")
    store_class = module.PolicyStoreV2

    def make(redis: Any, clock: Clock) -> PolicyStore:
        store: PolicyStore = store_class(redis, ttl=TTL, clock=clock)
        return store

    return make


@pytest.fixture(params=["toy", "reference"])
def correct_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """A correct store: the tests' toy store, and the reference implementation."""
    return factory_of(ToyStore) if request.param == "toy" else reference_factory()


class MakeCluster(Protocol):
    def __call__(
        self, factory: StoreFactory, *, instances: int = 4, timeout: float = 10.0
    ) -> PolicyCluster: ...


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def make_cluster(redis_source: RedisSource, clock: VirtualClock) -> Iterator[MakeCluster]:
    opened: list[PolicyCluster] = []

    def make(factory: StoreFactory, *, instances: int = 4, timeout: float = 10.0) -> PolicyCluster:
        cluster = PolicyCluster.open(
            factory, redis_source, instances=instances, clock=clock, timeout=timeout
        )
        opened.append(cluster)
        return cluster

    yield make
    for cluster in opened:
        cluster.close()


# -- convergence ---------------------------------------------------------------------


def test_correct_store_converges_after_an_update(
    make_cluster: MakeCluster, correct_factory: StoreFactory
) -> None:
    cluster = make_cluster(correct_factory)
    cache_everywhere(cluster, "risk", V1)
    cluster.update(1, "risk", V2)
    cluster.assert_converged("risk", V2)
    assert values(cluster, "risk") == [V2] * 4


@pytest.mark.parametrize("broken", [NeverPublishes, SwallowsMessages], ids=lambda c: c.__name__)
def test_store_that_does_not_invalidate_fails_naming_the_stale_instances(
    make_cluster: MakeCluster, broken: type[ToyStore]
) -> None:
    cluster = make_cluster(factory_of(broken))
    cache_everywhere(cluster, "risk", V1)
    cluster.update(0, "risk", V2)
    with pytest.raises(AssertionError) as failure:
        cluster.assert_converged("risk", V2)
    message = str(failure.value)
    assert message.startswith(NOT_CONVERGED.format(name="risk", count=3, total=4))
    assert "expected (last updated through instance 0): {'limit': 2}" in message
    for stale in (1, 2, 3):
        assert f"\n  - instance {stale}: {{'limit': 1}}" in message
    assert "instances reading the expected value: 0\n" in message


def test_differing_instances_are_listed_closest_first(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(factory_of(NeverPublishes), instances=3)
    cluster.update(0, "p", {"a": 9, "b": 9})
    cluster.read(1, "p")  # instance 1 keeps the oldest value
    cluster.update(0, "p", {"a": 1, "b": 2})
    cluster.read(2, "p")  # instance 2 keeps one much closer to the last
    cluster.update(0, "p", {"a": 1, "b": 3})
    with pytest.raises(AssertionError) as failure:
        cluster.assert_converged("p", {"a": 1, "b": 3})
    message = str(failure.value)
    closer = message.index("  - instance 2: {'a': 1, 'b': 2}")
    farther = message.index("  - instance 1: {'a': 9, 'b': 9}")
    assert closer < farther


def test_an_instance_that_raises_is_reported_with_its_error(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(factory_of(ToyStore), instances=2)
    with pytest.raises(AssertionError, match=r"  - instance 0: raised KeyError: 'nothing'"):
        cluster.assert_converged("nothing", V1)


# -- settle -------------------------------------------------------------------------------


def test_settle_returns_without_sleeping(
    make_cluster: MakeCluster, correct_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = make_cluster(correct_factory)
    cache_everywhere(cluster, "risk", V1)
    real_asyncio_sleep = asyncio.sleep

    async def no_waiting_sleep(delay: float, *args: Any) -> Any:
        assert delay <= 0, f"something slept {delay}s to wait"
        return await real_asyncio_sleep(delay, *args)

    def no_time_sleep(delay: float) -> None:
        raise AssertionError(f"time.sleep({delay}) called")

    monkeypatch.setattr(asyncio, "sleep", no_waiting_sleep)
    monkeypatch.setattr(time, "sleep", no_time_sleep)
    cluster.update(2, "risk", V2)
    took = cluster.settle()
    assert took > 0
    cluster.assert_converged("risk", V2)


def test_settle_names_the_instance_whose_listener_stopped_reading(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(mixed(ToyStore, i2=StopsReading))
    cluster.update(0, "risk", V1)  # instance 2 takes this one and never comes back
    with pytest.raises(ClusterTimeout) as failure:
        cluster.settle(timeout=0.3)
    assert failure.value.instances == (2,)
    message = str(failure.value)
    assert message.startswith(
        NOT_SETTLED_BARRIER.format(timeout=0.3, count=1, total=4, channel=CHANNEL)
    )
    took = WHERE_BACKLOG_NOT_FINISHED.format(data="risk")
    assert f"\n  - instance 2: {took}" in message
    assert "instance 0" not in message


def test_settle_names_an_instance_that_never_reads_what_it_received(
    make_cluster: MakeCluster,
) -> None:
    # Nothing of the harness's is awaited: the store's own invalidation, received
    # before the barrier and never taken, is what keeps it unsettled.
    cluster = make_cluster(mixed(ToyStore, i1=NeverReads), instances=2)
    cluster.update(0, "risk", V1)
    with pytest.raises(ClusterTimeout) as failure:
        cluster.settle(timeout=0.3)
    assert failure.value.instances == (1,)
    untaken = WHERE_BACKLOG_NOT_TAKEN.format(count=1)
    assert f"\n  - instance 1: {untaken}" in str(failure.value)


def test_settle_names_an_instance_whose_messages_are_held(
    make_cluster: MakeCluster, correct_factory: StoreFactory
) -> None:
    cluster = make_cluster(correct_factory)
    cluster.pubsub(1).hold()
    cluster.update(0, "risk", V1)
    held = WHERE_BACKLOG_HELD.format(count=1)
    with pytest.raises(ClusterTimeout, match=re.escape(f"  - instance 1: {held}")):
        cluster.settle(timeout=0.3)
    assert cluster.pubsub(1).release() == 1  # the invalidation: nothing of the harness's
    cluster.settle()
    cluster.assert_converged("risk", V1)


def test_open_fails_when_a_store_never_subscribes(
    redis_source: RedisSource, clock: VirtualClock
) -> None:
    with pytest.raises(ClusterTimeout) as failure:
        PolicyCluster.open(
            mixed(ToyStore, i1=NeverSubscribes),
            redis_source,
            instances=2,
            clock=clock,
            timeout=0.3,
        )
    assert failure.value.instances == (1,)
    message = str(failure.value)
    assert message.startswith(NOT_SUBSCRIBED.format(count=1, total=2, channel=CHANNEL, timeout=0.3))
    assert "  - instance 1: never called client.pubsub()" in message


def test_open_fails_naming_a_store_whose_initialize_hangs(
    redis_source: RedisSource, clock: VirtualClock
) -> None:
    with pytest.raises(
        ClusterTimeout, match=r"instance 2: initialize\(\) did not return"
    ) as failure:
        PolicyCluster.open(
            mixed(ToyStore, i2=HangsOnInitialize),
            redis_source,
            instances=3,
            clock=clock,
            timeout=0.3,
        )
    assert failure.value.instances == (2,)


# -- faults injected through the pubsub ------------------------------------------------


@pytest.mark.parametrize(
    ("store", "heals"), [(ToyStore, True), (CachesForever, False)], ids=["ttl", "forever"]
)
def test_a_dropped_invalidation_heals_only_by_ttl(
    make_cluster: MakeCluster, clock: VirtualClock, store: type[ToyStore], heals: bool
) -> None:
    cluster = make_cluster(factory_of(store))
    cache_everywhere(cluster, "risk", V1)
    pubsub = cluster.pubsub(1)
    pubsub.hold()
    cluster.update(0, "risk", V2)
    pubsub.wait_pending(1)
    pubsub.drop(1)
    pubsub.release()
    with pytest.raises(AssertionError, match=r"  - instance 1: \{'limit': 1\}"):
        cluster.assert_converged("risk", V2)
    clock.advance(TTL + 1)
    if heals:
        cluster.assert_converged("risk", V2)
    else:
        with pytest.raises(AssertionError, match=r"  - instance 1: \{'limit': 1\}"):
            cluster.assert_converged("risk", V2)


def test_duplicate_and_garbage_invalidations_are_survived(
    make_cluster: MakeCluster, correct_factory: StoreFactory
) -> None:
    cluster = make_cluster(correct_factory)
    cache_everywhere(cluster, "risk", V1)
    pubsub = cluster.pubsub(3)
    before = len(pubsub.log)
    pubsub.hold()
    cluster.update(0, "risk", V2)
    pubsub.wait_pending(1)
    pubsub.duplicate(1)
    pubsub.inject(b"\xff\xfe\x00 not a policy name")
    pubsub.release()
    cluster.assert_converged("risk", V2)  # settle() proves the listener survived
    # The copy, the garbage, then the original.
    assert [d.kind for d in pubsub.log][before : before + 3] == ["duplicate", "injected", "message"]


@pytest.mark.parametrize(
    ("store", "flushes"),
    [(ToyStore, True), (KeepsCacheOnLinkLoss, False)],
    ids=["flush", "keep"],
)
def test_lost_connection_resubscribes_and_flushes(
    make_cluster: MakeCluster, store: type[ToyStore], flushes: bool
) -> None:
    cluster = make_cluster(factory_of(store))
    cache_everywhere(cluster, "risk", V1)
    reads_before = cluster.storage_reads[1]
    cluster.pubsub(1).disconnect()
    observed = cluster.observed(1)
    observed.wait_subscriptions(2)
    observed.wait_subscribed(CHANNEL)
    cluster.read(1, "risk")
    # Invalidations may have been lost with the connection: a correct store refetches.
    assert cluster.storage_reads[1] == reads_before + (1 if flushes else 0)
    cluster.update(0, "risk", V2)
    cluster.assert_converged("risk", V2)
    assert observed.subscriptions == 2


def test_lost_connection_is_survived_by_the_reference_store(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(reference_factory(), instances=2)
    cache_everywhere(cluster, "risk", V1)
    reads_before = cluster.storage_reads[1]
    cluster.pubsub(1).disconnect()
    cluster.observed(1).wait_subscriptions(2)
    cluster.observed(1).wait_subscribed(CHANNEL)
    cluster.read(1, "risk")
    assert cluster.storage_reads[1] == reads_before + 1
    cluster.update(0, "risk", V2)
    cluster.assert_converged("risk", V2)


@pytest.mark.parametrize(("store", "guarded"), [(ToyStore, True), (RacyFill, False)])
def test_a_read_racing_an_invalidation_is_not_cached(
    make_cluster: MakeCluster, store: type[ToyStore], guarded: bool
) -> None:
    cluster = make_cluster(factory_of(store), instances=2)
    cluster.update(0, "risk", V1)
    observed = cluster.observed(1)
    observed.hold_reads()
    read = cluster.spawn_read(1, "risk")  # miss: the GET runs, its result is held
    observed.wait_pending_reads(1)
    cluster.update(0, "risk", V2)
    cluster.settle()  # instance 1 handled the invalidation while its fetch was in flight
    observed.release_reads()
    assert dict(read.result(timeout=5)) == V1  # an in-flight read may answer the old value
    if guarded:
        cluster.assert_converged("risk", V2)  # ... but must not have cached it
    else:
        with pytest.raises(AssertionError, match=r"  - instance 1: \{'limit': 1\}"):
            cluster.assert_converged("risk", V2)


def test_the_reference_store_does_not_cache_a_racing_read(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(reference_factory(), instances=2)
    cluster.update(0, "risk", V1)
    cluster.observed(1).hold_reads()
    read = cluster.spawn_read(1, "risk")
    cluster.observed(1).wait_pending_reads(1)
    cluster.update(0, "risk", V2)
    cluster.settle()
    cluster.observed(1).release_reads()
    assert dict(read.result(timeout=5)) == V1
    cluster.assert_converged("risk", V2)


# -- figures ------------------------------------------------------------------------------


def test_propagation_is_recorded_per_instance_per_update(
    make_cluster: MakeCluster, correct_factory: StoreFactory
) -> None:
    cluster = make_cluster(correct_factory)
    for k in range(3):
        cluster.update(k, "risk", {"limit": k})
        cluster.settle()
    found = cluster.propagation()
    assert len(found) == 12
    assert {(p.update, p.instance) for p in found} == {(u, i) for u in range(3) for i in range(4)}
    assert all(p.ms is not None and p.ms > 0 for p in found)
    assert [p.source for p in found[::4]] == [0, 1, 2]
    assert sorted(cluster.propagation_ms()) == sorted(p.ms for p in found if p.ms is not None)
    stats = cluster.stats()
    assert (stats.instances, stats.updates, stats.propagations) == (4, 3, 12)
    assert stats.missing_propagations == 0
    p50, p99, worst = stats.propagation_p50_ms, stats.propagation_p99_ms, stats.propagation_max_ms
    assert p50 is not None
    assert p99 is not None
    assert worst is not None
    assert 0 < p50 <= p99 <= worst


# -- any message format: the harness publishes nothing on the store's channel -----------


OWN_FORMATS = [WordsItsOwnMessages, InvalidatesByKeyList, DiesOnUnknownMessages]


@pytest.mark.parametrize("store", OWN_FORMATS, ids=lambda c: c.__name__)
def test_a_store_with_its_own_message_format_converges_with_every_propagation_measured(
    make_cluster: MakeCluster, store: type[ToyStore]
) -> None:
    # JSON objects, lists of keys, and a listener that dies on anything else:
    # settling must not put a word of the harness's in front of any of them.
    cluster = make_cluster(factory_of(store))
    for k in range(3):
        if k:  # warm every instance, so a missed invalidation shows as a stale read
            cluster.read_all("risk")
        cluster.update(k, "risk", {"limit": k})
        cluster.assert_converged("risk", {"limit": k})
    stats = cluster.stats()
    assert (stats.propagations, stats.missing_propagations) == (12, 0)
    for index in range(4):
        # Only the store's own messages reached it: one per update, none of the harness's.
        texts = [d.text for d in cluster.observed(index).deliveries]
        assert len(texts) == 3
        assert all(d.processed for d in cluster.observed(index).deliveries)
        listener = cluster.store(index).listener  # type: ignore[attr-defined]
        assert listener is not None
        assert not listener.done()


def test_settle_sends_nothing_a_store_receives(
    make_cluster: MakeCluster, correct_factory: StoreFactory
) -> None:
    cluster = make_cluster(correct_factory)
    for _ in range(3):
        cluster.settle()
    assert [cluster.observed(i).deliveries for i in range(4)] == [()] * 4
    assert all(cluster.pubsub(i).confirmed_channels == {CHANNEL} for i in range(4))


def test_a_store_deaf_to_its_own_format_does_not_converge(make_cluster: MakeCluster) -> None:
    # It takes every message and drops nothing: settled (nothing left unprocessed),
    # yet stale, which only reading the instances shows.
    cluster = make_cluster(mixed(WordsItsOwnMessages, i2=SwallowsMessages))
    cache_everywhere(cluster, "risk", V1)
    cluster.update(0, "risk", V2)
    cluster.settle()
    with pytest.raises(AssertionError) as failure:
        cluster.assert_converged("risk", V2)
    assert str(failure.value).startswith(NOT_CONVERGED.format(name="risk", count=1, total=4))
    assert "\n  - instance 2: {'limit': 1}" in str(failure.value)


def test_propagation_is_matched_by_position_not_by_what_the_message_says(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(factory_of(InvalidatesByKeyList), instances=2)
    cluster.update(0, "risk", V1)
    cluster.settle()
    (first, second) = cluster.propagation()
    delivery = cluster.observed(1).deliveries[0]
    assert delivery.text == '["policy:risk"]'
    assert delivery.processed_at is not None
    started = cluster.updates[0].started_at
    assert second.ms == pytest.approx((delivery.processed_at - started) * 1000)
    assert first.ms is not None


def test_missing_propagations_are_counted(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(factory_of(NeverPublishes), instances=3)
    cluster.update(0, "risk", V1)
    cluster.settle()
    assert [p.ms for p in cluster.propagation()] == [None, None, None]
    stats = cluster.stats()
    assert (stats.propagations, stats.missing_propagations) == (0, 3)
    assert stats.propagation_p50_ms is None


def test_storage_reads_are_counted_by_the_harness(
    make_cluster: MakeCluster, correct_factory: StoreFactory, clock: VirtualClock
) -> None:
    cluster = make_cluster(correct_factory, instances=2)
    cluster.update(0, "risk", V1)
    cluster.settle()  # a late invalidation would evict what the first read cached
    for _ in range(10):
        cluster.read(1, "risk")
    assert cluster.storage_reads == (0, 1)  # one miss, nine hits
    clock.advance(TTL + 1)
    cluster.read(1, "risk")
    assert cluster.storage_reads == (0, 2)
    stats = cluster.stats()
    assert stats.reads == (0, 11)
    assert stats.total_storage_reads == 2
    assert stats.hit_rate == pytest.approx(1 - 2 / 11)


def test_cluster_from_an_async_test_on_another_loop(
    redis_source: RedisSource, clock: VirtualClock
) -> None:
    async def scenario() -> tuple[list[Mapping[str, Any]], float]:
        async with await PolicyCluster.open_async(
            factory_of(ToyStore), redis_source, instances=3, clock=clock
        ) as cluster:
            await cluster.update_async(0, "risk", V1)
            await cluster.read_all_async("risk")
            await cluster.update_async(2, "risk", V2)
            took = await cluster.settle_async()
            await cluster.assert_converged_async("risk", V2)
            return await cluster.read_all_async("risk"), took

    read, took = asyncio.run(scenario())
    assert [dict(v) for v in read] == [V2] * 3
    assert took > 0


def test_instances_are_checked(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(factory_of(ToyStore), instances=2)
    with pytest.raises(IndexError, match=r"no instance 2: this cluster has instances 0\.\.1"):
        cluster.read(2, "risk")
    assert len(cluster) == cluster.size == 2
    with pytest.raises(ValueError, match="at least one instance, got 0"):
        make_cluster(factory_of(ToyStore), instances=0)


# -- the virtual clock ----------------------------------------------------------------------


def test_virtual_clock_moves_only_forward_when_told() -> None:
    clock = VirtualClock()
    assert clock() == clock.now == 1000.0
    assert clock.advance(2.5) == 1002.5
    assert clock() == 1002.5
    assert clock.advance(0) == 1002.5
    for bad in (-0.001, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="only moves forward"):
            clock.advance(bad)
    assert clock() == 1002.5
    assert repr(clock) == "VirtualClock(now=1002.5)"
