"""PolicyCluster on stores of the URL form: each builds its own client, observed on the wire.

The stores are the toy store (:mod:`tests.stores`) and its broken variants,
each on a client of its own made from the URL the harness gives it
(``decode_responses=True`` or RESP2 bytes): the harness sees them through a
wire proxy per instance, on fakeredis (served over TCP) and on a private
redis-server, in this process and in child processes.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
import redis.asyncio

from pytest_quantum_p1 import FromURL, from_url
from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._harness import ClusterTimeout, PolicyCluster
from pytest_quantum_p1._harness.wire_member import WireControls
from pytest_quantum_p1._messages import (
    CLUSTER_INSTANCE_NOT_WIRE,
    CLUSTER_INSTANCE_ON_THE_WIRE,
    FROM_URL_NOT_CALLABLE,
    NOT_CONVERGED,
    NOT_SUBSCRIBED,
    WIRE_FAKE_NEEDS,
    WIRE_STATE_NO_CONNECTION,
    WIRE_UPSTREAM_TLS,
)
from pytest_quantum_p1._redis.source import RedisSource
from pytest_quantum_p1._target import Clock, PolicyStore, TargetError
from pytest_quantum_p1._wire.upstream import upstream_of
from tests.stores import (
    KeepsCacheOnLinkLoss,
    NeverSubscribes,
    SwallowsMessages,
    ToyStore,
)

V1 = {"limit": 1}
V2 = {"limit": 2}


def _owning(cls: type[ToyStore], **options: Any) -> type[ToyStore]:
    """``cls`` building its own client from a URL, and closing it."""

    class Owning(cls):  # type: ignore[valid-type,misc]  # a class built per toy variant
        def __init__(self, url: str, clock: Clock) -> None:
            super().__init__(redis.asyncio.from_url(url, **options), clock)

        async def close(self) -> None:
            try:
                await super().close()
            finally:
                await self.redis.aclose()

    Owning.__name__ = Owning.__qualname__ = f"Owning{cls.__name__}"
    return Owning


# Module-level: a process-backed cluster imports them by name.
OwningToy = _owning(ToyStore, decode_responses=True)
OwningToyResp2 = _owning(ToyStore, protocol=2)
OwningSwallower = _owning(SwallowsMessages, decode_responses=True)
OwningCacheKeeper = _owning(KeepsCacheOnLinkLoss, decode_responses=True)
OwningNonSubscriber = _owning(NeverSubscribes, decode_responses=True)

TOY = from_url(OwningToy)
SWALLOWER = from_url(OwningSwallower)


def _open(source: RedisSource, factory: FromURL | str, **options: Any) -> PolicyCluster:
    options.setdefault("instances", 3)
    options.setdefault("timeout", 5.0)
    return PolicyCluster.open(factory, source, clock=VirtualClock(), **options)


@pytest.mark.parametrize("store", [OwningToy, OwningToyResp2], ids=["resp3-decoded", "resp2-bytes"])
def test_a_correct_store_owning_its_client_converges_and_is_measured(
    redis_source: RedisSource, store: type[ToyStore]
) -> None:
    with _open(redis_source, from_url(store)) as cluster:
        for k in range(4):
            if k:
                cluster.read_all("p")  # cached everywhere: a missed invalidation shows
            cluster.update(k % cluster.size, "p", {"v": k})
            cluster.assert_converged("p", {"v": k})
        stats = cluster.stats()
        assert stats.missing_propagations == 0
        assert stats.propagations == 4 * cluster.size
        # Counted on the wire: the first read of each value on each instance.
        assert all(reads >= 3 for reads in cluster.storage_reads)
        assert isinstance(cluster.controls(0), WireControls)
        assert isinstance(cluster.observer(0), WireControls)
        with pytest.raises(TypeError) as failure:
            cluster.pubsub(0)
        assert str(failure.value) == CLUSTER_INSTANCE_ON_THE_WIRE.format(label="instance 0")
        assert cluster.wire(0).proxy.storage_reads == cluster.storage_reads[0]


def test_a_store_that_swallows_invalidations_fails_after_serving_stale_values(
    redis_source: RedisSource,
) -> None:
    with _open(redis_source, SWALLOWER) as cluster:
        cluster.update(0, "p", V1)
        cluster.settle()  # its own invalidation first: a fill racing it is rightly not cached
        cluster.read_all("p")
        cluster.update(1, "p", V2)
        started = time.perf_counter()
        with pytest.raises(AssertionError) as failure:
            cluster.assert_converged("p", V2, timeout=1.0)
        # Judged by serving: the stale instances were read again until the time was up.
        assert time.perf_counter() - started >= 0.5
    message = str(failure.value)
    assert message.startswith(NOT_CONVERGED.format(name="p", count=2, total=3))
    assert "  - instance 0: {'limit': 1}" in message
    assert "and each instance was read again for" in message


def test_a_store_that_never_subscribes_is_named_when_the_cluster_opens(
    redis_source: RedisSource,
) -> None:
    with pytest.raises(ClusterTimeout) as failure:
        _open(redis_source, from_url(OwningNonSubscriber), instances=2, timeout=1.0)
    message = str(failure.value)
    assert message.startswith(
        NOT_SUBSCRIBED.format(count=2, total=2, channel="policy:invalidate", timeout=1.0)
    )
    # It connected for nothing but its reads, and it made none yet.
    assert f"  - instance 0: {WIRE_STATE_NO_CONNECTION}" in message


def test_a_cut_link_is_seen_on_the_wire_and_a_store_keeping_its_cache_serves_stale(
    redis_source: RedisSource,
) -> None:
    with _open(redis_source, from_url(OwningCacheKeeper), instances=2) as cluster:
        cluster.update(0, "p", V1)
        cluster.settle()  # its own invalidation first: a fill racing it is rightly not cached
        cluster.read_all("p")
        before = cluster.subscriptions[1]
        proxy = cluster.wire(1).proxy
        # The link stays down while the update is published: its invalidation is lost.
        proxy.disconnect(subscriptions_only=True, refuse_for=5.0)
        cluster.wait_subscription_lost(1)
        cluster.update(0, "p", V2)
        proxy.accept()
        cluster.wait_resubscribed(1, after=before)
        with pytest.raises(AssertionError, match=r"  - instance 1: \{'limit': 1\}"):
            cluster.assert_converged("p", V2, timeout=0.5)


def test_the_correct_store_flushes_on_a_cut_link_and_converges(
    redis_source: RedisSource,
) -> None:
    with _open(redis_source, TOY, instances=2) as cluster:
        cluster.update(0, "p", V1)
        cluster.settle()  # its own invalidation first: a fill racing it is rightly not cached
        cluster.read_all("p")
        before = cluster.subscriptions[1]
        cluster.controls(1).disconnect()
        cluster.wait_resubscribed(1, after=before)
        cluster.update(0, "p", V2)
        cluster.assert_converged("p", V2)


def test_held_invalidations_keep_the_cluster_from_settling_until_released(
    redis_source: RedisSource,
) -> None:
    with _open(redis_source, TOY, instances=2) as cluster:
        cluster.update(0, "p", V1)
        cluster.settle()  # its own invalidation first: a fill racing it is rightly not cached
        cluster.read_all("p")
        controls = cluster.controls(1)
        controls.hold()
        cluster.update(0, "p", V2)
        controls.wait_pending(1)
        with pytest.raises(ClusterTimeout, match=r"instance 1: 1 push\(es\) held at the proxy"):
            cluster.settle(timeout=0.3)
        controls.release()
        cluster.assert_converged("p", V2)


@pytest.mark.real_redis
def test_processes_owning_their_clients_converge_and_report_propagation(url: str) -> None:
    source = RedisSource.server(url)
    with _open(source, f"{__name__}:TOY", processes=True) as cluster:
        for k in range(3):
            if k:
                cluster.read_all("p")
            cluster.update(k % cluster.size, "p", {"v": k})
            cluster.assert_converged("p", {"v": k})
        assert cluster.stats().missing_propagations == 0
        assert len(set(cluster.pids)) == cluster.size


@pytest.mark.real_redis
def test_processes_swallowing_invalidations_fail_the_verdict(url: str) -> None:
    source = RedisSource.server(url)
    with _open(source, f"{__name__}:SWALLOWER", processes=True) as cluster:
        cluster.update(0, "p", V1)
        cluster.settle()  # its own invalidation first: a fill racing it is rightly not cached
        cluster.read_all("p")
        cluster.update(0, "p", V2)
        with pytest.raises(AssertionError, match="did not converge"):
            cluster.assert_converged("p", V2, timeout=0.5)


def test_wire_controls_are_for_url_stores_only(redis_source: RedisSource) -> None:
    def client_form(client: Any, clock: Clock) -> PolicyStore:
        return ToyStore(client, clock)

    with (
        PolicyCluster.open(client_form, redis_source, instances=1, clock=VirtualClock()) as cluster,
        pytest.raises(TypeError) as failure,
    ):
        cluster.wire(0)
    assert str(failure.value) == CLUSTER_INSTANCE_NOT_WIRE.format(label="instance 0")


def test_from_url_takes_a_callable_only() -> None:
    with pytest.raises(TargetError) as failure:
        from_url("redis://nowhere")  # type: ignore[arg-type]  # the mistake under test
    assert str(failure.value) == FROM_URL_NOT_CALLABLE.format(got="str")
    assert from_url(TOY) is TOY


def test_an_old_fakeredis_is_refused_with_the_version_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the module reads the installed version with.
    monkeypatch.setattr("importlib.metadata.version", lambda name: "2.26.0")
    with pytest.raises(TypeError) as failure, upstream_of(RedisSource.fake()):
        pass
    assert str(failure.value) == WIRE_FAKE_NEEDS.format(needed="2.39", found="2.26.0")


def test_a_tls_redis_is_refused_naming_it_without_its_password() -> None:
    source = RedisSource.external("rediss://user:s3cret@redis.example:6380/0")
    with pytest.raises(TypeError) as failure, upstream_of(source):
        pass
    assert str(failure.value) == WIRE_UPSTREAM_TLS.format(url=source)
    assert "s3cret" not in str(failure.value)


def test_a_store_url_keeps_the_sources_credentials_and_database() -> None:
    source = RedisSource.external("redis://app:p%40ss@10.0.0.5:6390/4")
    with upstream_of(source) as upstream:
        assert upstream.address == ("10.0.0.5", 6390)
        assert upstream.store_url(("127.0.0.1", 5000)) == "redis://app:p%40ss@127.0.0.1:5000/4"


def test_the_fake_tcp_server_stops_with_its_block() -> None:
    source = RedisSource.fake()
    with upstream_of(source) as upstream:
        address = upstream.address
    import socket

    with contextlib.suppress(OSError), socket.create_connection(address, timeout=0.5):
        pytest.fail("the fake TCP server still accepts connections")
