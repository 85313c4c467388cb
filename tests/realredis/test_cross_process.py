"""A PolicyCluster whose instances are separate OS processes sharing one real Redis.

Each promise of the in-process cluster is checked across processes: updates
converge, settle and the convergence verdict work, figures (storage reads,
propagation) are measured in the children and come back, TTLs follow the
parent's virtual clock, typed errors cross the boundary; and each check can
fail: a store that never invalidates, a listener that stopped, a child that
died, a factory that cannot be built.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import fakeredis
import pytest
import redis
import redis.asyncio

from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._cluster import (
    NOT_CONVERGED,
    ClusterTimeout,
    MemberProcessError,
    PolicyCluster,
)
from pytest_quantum_p1._process import (
    FACTORY_NOT_IMPORTABLE,
    NOT_A_SERVER,
    factory_spec,
    redis_url_of,
    resolve_store_factory,
)
from reference_impl.errors import InvalidPolicyNameError, PolicyNotFoundError
from reference_impl.p1_target import TARGET
from tests.realredis import KEY_PREFIX, REFERENCE, REFERENCE_TTL, encode

pytestmark = pytest.mark.real_redis

V1 = {"limit": 1}
V2 = {"limit": 2}


class OpenCluster(Protocol):
    def __call__(
        self, factory: Any = REFERENCE, *, instances: int = 3, timeout: float = 10.0
    ) -> PolicyCluster: ...


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def open_cluster(url: str, clock: VirtualClock) -> Iterator[OpenCluster]:
    opened: list[PolicyCluster] = []

    def open_(
        factory: Any = REFERENCE, *, instances: int = 3, timeout: float = 10.0
    ) -> PolicyCluster:
        cluster = PolicyCluster.open(
            factory, url, instances=instances, clock=clock, timeout=timeout, processes=True
        )
        opened.append(cluster)
        return cluster

    yield open_
    for cluster in opened:
        cluster.close()


def raw_set(url: str, name: str, policy: dict[str, Any]) -> None:
    """Write a policy behind every store's back: no invalidation is sent."""
    with redis.Redis.from_url(url) as admin:
        admin.set(KEY_PREFIX + name, encode(policy))


# -- convergence across processes -----------------------------------------------------


def test_instances_are_processes_of_their_own_and_converge(open_cluster: OpenCluster) -> None:
    cluster = open_cluster(instances=4)
    assert cluster.processes
    assert len(set(cluster.pids)) == 4
    assert os.getpid() not in cluster.pids
    for k in range(8):
        value = {"v": k, "writer": k % 4}
        if k:
            cluster.read_all("risk")  # warm every instance: a missed invalidation shows
        cluster.update(k % 4, "risk", value)
        cluster.assert_converged("risk", value)
    stats = cluster.stats()
    assert (stats.instances, stats.updates) == (4, 8)
    # Every instance, the writer included, handled every update's invalidation.
    assert (stats.propagations, stats.missing_propagations) == (32, 0)
    assert stats.propagation_p99_ms is not None
    assert 0 < stats.propagation_p99_ms < 5_000
    assert [p.source for p in cluster.propagation()[::4]] == [k % 4 for k in range(8)]


def test_a_store_that_never_invalidates_fails_the_verdict_across_processes(
    open_cluster: OpenCluster,
) -> None:
    cluster = open_cluster("tests.realredis:SwallowingStore")
    cluster.update(0, "risk", V1)
    assert [dict(v) for v in cluster.read_all("risk")] == [V1, V1, V1]
    cluster.update(0, "risk", V2)
    with pytest.raises(AssertionError) as caught:
        cluster.assert_converged("risk", V2)
    message = str(caught.value)
    assert message.startswith(NOT_CONVERGED.format(name="risk", count=2, total=3))
    assert "  - instance 1: {'limit': 1}" in message
    assert "  - instance 2: {'limit': 1}" in message
    assert "instances reading the expected value: 0" in message


def test_the_correct_twin_of_that_store_converges(open_cluster: OpenCluster) -> None:
    cluster = open_cluster("tests.realredis:CorrectStore")
    cluster.update(0, "risk", V1)
    cluster.read_all("risk")
    cluster.update(0, "risk", V2)
    cluster.assert_converged("risk", V2)


def test_settle_names_the_child_whose_listener_stopped(open_cluster: OpenCluster) -> None:
    cluster = open_cluster("tests.realredis:DeafStore", instances=2)
    cluster.update(0, "risk", V1)  # each listener takes this one and never returns
    with pytest.raises(ClusterTimeout) as caught:
        cluster.settle(timeout=0.5)
    assert caught.value.instances == (0, 1)
    message = str(caught.value)
    for pid in cluster.pids:
        # The diagnosis is made in the child, where the subscription lives.
        assert f"(pid {pid}): has not taken the marker from its subscription" in message


# -- figures and time across processes -------------------------------------------------


def test_storage_reads_are_counted_in_the_children(open_cluster: OpenCluster) -> None:
    cluster = open_cluster(instances=2)
    cluster.update(0, "risk", V1)
    cluster.settle()  # a read racing the update's invalidation would rightly not be cached
    for _ in range(10):
        assert dict(cluster.read(1, "risk")) == V1
    assert cluster.storage_reads == (0, 1)  # one miss, nine hits
    assert cluster.reads == (0, 10)


def test_ttl_follows_the_parents_virtual_clock(
    open_cluster: OpenCluster, clock: VirtualClock, url: str
) -> None:
    cluster = open_cluster(instances=2)
    cluster.update(0, "risk", V1)
    cluster.settle()
    assert dict(cluster.read(1, "risk")) == V1
    raw_set(url, "risk", V2)
    clock.advance(REFERENCE_TTL * 0.9)
    assert dict(cluster.read(1, "risk")) == V1  # still cached: the clock has not passed the TTL
    clock.advance(REFERENCE_TTL * 0.2)
    assert dict(cluster.read(1, "risk")) == V2
    assert cluster.storage_reads[1] == 2


def test_typed_errors_cross_the_process_boundary(open_cluster: OpenCluster) -> None:
    cluster = open_cluster(instances=1)
    with pytest.raises(PolicyNotFoundError, match="no policy named 'absent'") as missing:
        cluster.read(0, "absent")
    assert any(f"(pid {cluster.pids[0]})" in note for note in missing.value.__notes__)
    with pytest.raises(InvalidPolicyNameError, match="path separator"):
        cluster.update(0, "../etc/passwd", V1)


# -- what can go wrong with processes --------------------------------------------------


def test_a_killed_child_is_reported_with_its_exit_code(open_cluster: OpenCluster) -> None:
    cluster = open_cluster(instances=2)
    cluster.update(0, "risk", V1)
    victim = cluster.pids[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(
        MemberProcessError, match=rf"instance 1 \(pid {victim}\) exited with code -9"
    ):
        cluster.read(1, "risk")
    with pytest.raises(ClusterTimeout) as caught:
        cluster.settle(timeout=1.0)
    assert caught.value.instances == (1,)
    assert dict(cluster.read(0, "risk")) == V1  # the survivor still serves


def test_a_factory_that_fails_in_the_child_is_reported_with_its_traceback(url: str) -> None:
    with pytest.raises(MemberProcessError, match="could not start the store") as caught:
        PolicyCluster.open(
            "tests.realredis:exploding_factory",
            url,
            instances=1,
            clock=VirtualClock(),
            processes=True,
        )
    assert "RuntimeError: exploding_factory: this store cannot be built" in str(caught.value)


def test_a_factory_without_an_import_name_is_refused_before_spawning(url: str) -> None:
    def local_factory(redis: Any, clock: Any) -> Any:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="lambda, a local function") as caught:
        PolicyCluster.open(local_factory, url, instances=1, clock=VirtualClock(), processes=True)
    assert str(caught.value).startswith(FACTORY_NOT_IMPORTABLE.split("{", 1)[0])


def test_fakeredis_is_refused_for_processes() -> None:
    server = fakeredis.FakeServer()

    def make() -> Any:
        return fakeredis.FakeAsyncRedis(server=server)

    with pytest.raises(TypeError) as caught:
        PolicyCluster.open(REFERENCE, make, instances=1, clock=VirtualClock(), processes=True)
    assert str(caught.value).startswith(NOT_A_SERVER.split("{", 1)[0])
    assert "--p1-redis=server" in str(caught.value)


# -- names instead of objects ----------------------------------------------------------


def test_factory_specs_resolve_to_the_store_factory() -> None:
    assert resolve_store_factory(REFERENCE) is TARGET.store_factory
    assert factory_spec(TARGET.store_factory) == "reference_impl.p1_target:_store_factory"
    assert resolve_store_factory("tests.realredis:CorrectStore").__name__ == "CorrectStore"
    with pytest.raises(ValueError, match="import string"):
        resolve_store_factory("no-colon")
    with pytest.raises(ModuleNotFoundError):
        factory_spec("no_such_module_p1:factory")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: redis.asyncio.Redis(host="127.0.0.1", port=7001, db=3),
            "redis://127.0.0.1:7001/3",
        ),
        (
            lambda: redis.asyncio.Redis.from_url("redis://bob:s3cr%40t@h:1/2"),
            "redis://bob:s3cr%40t@h:1/2",
        ),
        (lambda: redis.asyncio.Redis(unix_socket_path="/tmp/r.sock"), "unix:///tmp/r.sock?db=0"),
    ],
)
def test_the_url_given_to_children_reaches_the_same_server(
    make: Callable[[], redis.asyncio.Redis], expected: str
) -> None:
    async def url_of() -> str:
        client = make()
        try:
            return redis_url_of(client)
        finally:
            await client.aclose()

    assert asyncio.run(url_of()) == expected


def test_make_client_callable_works_like_a_url(url: str) -> None:
    with PolicyCluster.open(
        REFERENCE,
        lambda: redis.asyncio.Redis.from_url(url),
        instances=2,
        clock=VirtualClock(),
        processes=True,
    ) as cluster:
        cluster.update(1, "risk", V1)
        cluster.assert_converged("risk", V1)


def test_async_twins_drive_processes_from_another_loop(url: str) -> None:
    async def scenario() -> list[dict[str, Any]]:
        cluster = await PolicyCluster.open_async(
            REFERENCE, url, instances=2, clock=VirtualClock(), processes=True
        )
        async with cluster:
            await cluster.update_async(0, "risk", V1)
            await cluster.assert_converged_async("risk", V1)
            return [dict(v) for v in await cluster.read_all_async("risk")]

    assert asyncio.run(scenario()) == [V1, V1]
