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
import urllib.parse
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
import redis
import redis.asyncio

from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._harness import (
    ClusterTimeout,
    MemberProcessError,
    PolicyCluster,
    resolve_store_factory,
)
from pytest_quantum_p1._harness.factory import factory_spec
from pytest_quantum_p1._messages import (
    FACTORY_NOT_IMPORTABLE,
    NOT_A_SERVER,
    NOT_CONVERGED,
    WHERE_BACKLOG_NOT_FINISHED,
)
from pytest_quantum_p1._redis.source import RedisSource
from pytest_quantum_p1._target import TargetError
from reference_impl.errors import InvalidPolicyNameError, PolicyNotFoundError
from reference_impl.p1_target import TARGET
from tests.realredis import REFERENCE, REFERENCE_TTL
from tests.stores import KEY_PREFIX, DiesWithItsLink, encode

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
    cluster = open_cluster("tests.stores:SwallowsMessages")
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
    cluster = open_cluster("tests.stores:ToyStore")
    cluster.update(0, "risk", V1)
    cluster.read_all("risk")
    cluster.update(0, "risk", V2)
    cluster.assert_converged("risk", V2)


def test_settle_names_the_child_whose_listener_stopped(open_cluster: OpenCluster) -> None:
    cluster = open_cluster("tests.stores:StopsReading", instances=2)
    cluster.update(0, "risk", V1)  # each listener takes this one and never returns
    with pytest.raises(ClusterTimeout) as caught:
        cluster.settle(timeout=0.5)
    assert caught.value.instances == (0, 1)
    message = str(caught.value)
    for pid in cluster.pids:
        # The diagnosis is made in the child, where the subscription lives.
        assert f"(pid {pid}): {WHERE_BACKLOG_NOT_FINISHED.format(data='risk')}" in message


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
    with pytest.raises(TypeError) as caught:
        PolicyCluster.open(
            REFERENCE, RedisSource.fake(), instances=1, clock=VirtualClock(), processes=True
        )
    assert str(caught.value).startswith(NOT_A_SERVER.split("{", 1)[0])
    assert "--p1-redis=server" in str(caught.value)


# -- names instead of objects ----------------------------------------------------------


def test_factory_specs_resolve_to_the_store_factory() -> None:
    assert resolve_store_factory(REFERENCE) is TARGET.store_factory
    assert factory_spec(TARGET.store_factory) == "reference_impl.p1_target:_store_factory"
    assert resolve_store_factory("tests.stores:DiesWithItsLink") is DiesWithItsLink
    with pytest.raises(TargetError, match="import string"):
        resolve_store_factory("no-colon")
    with pytest.raises(TargetError) as caught:
        factory_spec("no_such_module_p1:factory")
    # The one module:attr resolver reports the import that failed, and keeps it as the cause.
    assert isinstance(caught.value.__cause__, TargetError)
    assert isinstance(caught.value.__cause__.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("redis://127.0.0.1:7001/3", {"host": "127.0.0.1", "port": 7001, "db": 3}),
        (
            "redis://bob:s3cr%40t@h:1/2",
            {"host": "h", "port": 1, "db": 2, "username": "bob", "password": "s3cr@t"},
        ),
        ("unix:///tmp/r.sock?db=0", {"path": "/tmp/r.sock", "db": 0}),
    ],
)
def test_the_address_given_to_children_reaches_the_same_server(
    address: str, expected: dict[str, Any]
) -> None:
    source = RedisSource.external(address)
    # Children get the address as given: nothing is rebuilt from a client or re-quoted.
    assert source.address == address

    async def connection_of(made: RedisSource) -> dict[str, Any]:
        client = made.client()
        try:
            kwargs = client.connection_pool.connection_kwargs
            return {key: kwargs.get(key) for key in expected}
        finally:
            await client.aclose()

    # What the parent connects to, and what a child makes from the address.
    assert asyncio.run(connection_of(source)) == expected
    assert asyncio.run(connection_of(RedisSource.external(source.address))) == expected


def test_children_reach_the_same_database_with_the_same_credentials(url: str) -> None:
    user, password, db = "p1-bob", "s3cr@t", 3
    with redis.Redis.from_url(url) as admin:
        admin.acl_setuser(
            user,
            enabled=True,
            passwords=[f"+{password}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        try:
            parts = urllib.parse.urlsplit(url)
            quoted = urllib.parse.quote(password, safe="")
            address = f"redis://{user}:{quoted}@{parts.hostname}:{parts.port}/{db}"
            with PolicyCluster.open(
                REFERENCE,
                RedisSource.external(address),
                instances=1,
                clock=VirtualClock(),
                processes=True,
            ) as cluster:
                # Runs in the child; the parent's own client has not connected yet.
                cluster.update(0, "risk", V1)
                assert dict(cluster.read(0, "risk")) == V1
                connections = admin.client_list()
                assert any(c["user"] == user and c["db"] == str(db) for c in connections)
                assert not any(c["user"] != user and c["db"] == str(db) for c in connections), (
                    "only the child's connections use the database"
                )
            with redis.Redis(host=parts.hostname or "", port=parts.port or 0, db=db) as in_db:
                assert in_db.get(KEY_PREFIX + "risk") is not None
            assert admin.get(KEY_PREFIX + "risk") is None  # database 0 was not touched
        finally:
            admin.acl_deluser(user)


def test_a_redis_source_works_like_a_url(url: str) -> None:
    with PolicyCluster.open(
        REFERENCE,
        RedisSource.server(url),
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
