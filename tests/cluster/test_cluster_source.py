"""The private Redis Cluster, the harness's cluster source, and ``--p1-redis`` on a cluster.

One cluster serves the session (``conftest.py``); tests that fail nodes over or
kill them leave it to ``cluster_url`` to make it whole again for the next.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from pytest_quantum_p1 import _messages, _options
from pytest_quantum_p1._redis.clients import LeftOpen, TrackedClients, close_client
from pytest_quantum_p1._redis.cluster import (
    LocalRedisCluster,
    RedisClusterUnavailable,
    require_redis_cluster,
    spawn_redis_cluster,
)
from pytest_quantum_p1._redis.namespace import Namespace
from pytest_quantum_p1._redis.server import RedisServer, RedisServerUnavailable
from pytest_quantum_p1._redis.source import (
    RedisSource,
    RedisTooOld,
    initialized,
    probe_cluster,
    require_cluster_pubsub,
)

real_redis = pytest.mark.real_redis

#: Keys whose hash slots lie on every one of three masters (slots 866, 4768, 15495).
SPREAD = ["a", "b", "c", "d", "e", "f", "g", "h"]


def _slot_owners(cluster: LocalRedisCluster, keys: list[str]) -> set[int]:
    with redis.cluster.RedisCluster.from_url(cluster.startup_url) as client:
        return {client.get_node_from_key(key).port for key in keys}


def _keys_per_node(cluster: LocalRedisCluster) -> dict[int, int]:
    counts = {}
    for node in cluster.nodes:
        with node.admin() as client:
            counts[node.port] = int(client.dbsize())
    return counts


# -- the private cluster ----------------------------------------------------------------


@real_redis
def test_a_spawned_cluster_has_three_masters_each_with_a_replica_in_sync(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    masters, replicas = redis_cluster.masters, redis_cluster.replicas
    assert (len(masters), len(replicas)) == (3, 3)
    assert {redis_cluster.replica_of(m).port for m in masters} == {r.port for r in replicas}
    assert all(node.cluster_state() == "ok" for node in redis_cluster.nodes)
    assert len({node.pid for node in redis_cluster.nodes}) == 6
    assert re.fullmatch(r"redis://127\.0\.0\.1:\d+", cluster_url)
    assert _slot_owners(redis_cluster, SPREAD) == {m.port for m in masters}


@real_redis
def test_flush_empties_every_master_and_replica(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    with redis.cluster.RedisCluster.from_url(cluster_url) as client:
        for key in SPREAD:
            client.set(key, "1")
    assert sum(_keys_per_node(redis_cluster).values()) == 2 * len(SPREAD)  # masters + replicas
    redis_cluster.flush()
    assert set(_keys_per_node(redis_cluster).values()) == {0}


@real_redis
def test_failover_swaps_master_and_replica_and_keeps_the_data(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    with redis.cluster.RedisCluster.from_url(cluster_url) as client:
        client.set("a", "kept")
        client.wait(1, 1000)
    old = next(m for m in redis_cluster.masters if m.port in _slot_owners(redis_cluster, ["a"]))
    new = redis_cluster.failover(old)
    assert (old.role, new.role) == ("replica", "master")
    assert _slot_owners(redis_cluster, ["a"]) == {new.port}
    with redis.cluster.RedisCluster.from_url(cluster_url) as client:
        assert client.get("a") == b"kept"


@real_redis
def test_a_killed_master_is_replaced_and_heal_brings_it_back_as_a_replica(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    victim = redis_cluster.masters[0]
    replica = redis_cluster.replica_of(victim)
    victim.kill()
    assert victim.role == "down"
    assert victim.pid is None
    redis_cluster.wait_ready(3)  # the replica wins the election after ~2 node timeouts
    assert replica.role == "master"
    redis_cluster.heal(3)
    assert victim in redis_cluster.replicas
    assert len(redis_cluster.masters) == 3


@real_redis
def test_failover_of_a_master_without_a_replica_says_so(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    master = redis_cluster.masters[0]
    replica = redis_cluster.replica_of(master)
    replica.kill()
    with pytest.raises(RedisClusterUnavailable) as excinfo:
        redis_cluster.failover(master)
    assert str(excinfo.value).startswith(
        _messages.REDIS_CLUSTER_NO_REPLICA.format(port=master.port)
    )


def test_a_binary_that_is_no_redis_server_is_unavailable_with_its_log() -> None:
    with pytest.raises(RedisServerUnavailable) as excinfo:
        spawn_redis_cluster("false")
    assert _messages.REDIS_SERVER_EXITED in str(excinfo.value)


def test_a_cluster_without_masters_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("masters=0, replicas_per_master=1")):
        spawn_redis_cluster(masters=0)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_no_cluster_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(
        outcome,
        match=re.escape(
            _messages.REDIS_SERVER_NOT_EXECUTABLE.format(binary="/nonexistent/redis-server")
        ),
    ):
        require_redis_cluster("/nonexistent/redis-server")


@real_redis
def test_a_one_master_cluster_without_replicas_is_another_shape_that_works() -> None:
    with require_redis_cluster(masters=1, replicas_per_master=0) as cluster:
        assert [node.role for node in cluster.nodes] == ["master"]
        with redis.cluster.RedisCluster.from_url(cluster.startup_url) as client:
            client.mset_nonatomic({key: "1" for key in SPREAD})
        cluster.flush()  # no replica to WAIT for: returns at once
        assert _keys_per_node(cluster) == {cluster.nodes[0].port: 0}


# -- the source ---------------------------------------------------------------------------


@real_redis
def test_a_cluster_source_makes_cluster_clients_and_flushes_every_master(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    source = RedisSource.cluster(cluster_url, owned=True)
    assert source.is_cluster
    assert not source.is_fake
    assert sorted(source.master_addresses()) == sorted(m.url for m in redis_cluster.masters)

    async def use() -> list[Any]:
        client = await initialized(source.client(decode_responses=True))
        assert isinstance(client, RedisCluster)
        try:
            for key in SPREAD:
                await client.set(key, key)
            pubsub = client.pubsub()  # needs the slot table initialize() fills
            await pubsub.subscribe("channel")
            await pubsub.aclose()
            return [await client.get(key) for key in SPREAD]
        finally:
            await close_client(client)

    assert asyncio.run(use()) == SPREAD
    source.flush()
    assert set(_keys_per_node(redis_cluster).values()) == {0}


@real_redis
def test_a_cluster_source_not_owned_is_never_flushed(cluster_url: str) -> None:
    spelled = cluster_url.replace("redis://", "redis+cluster://")
    source = RedisSource.cluster(spelled)
    assert source.address == cluster_url  # redis-py takes redis://
    with pytest.raises(PermissionError):
        source.flush()


@real_redis
def test_tracked_clients_close_cluster_clients_on_their_loop(cluster_url: str) -> None:
    clients = TrackedClients(RedisSource.cluster(cluster_url))

    async def use() -> None:
        client = await initialized(clients())
        await client.set("a", "1")

    asyncio.run(use())
    clients.close()
    assert all(loop.is_closed() for loop, _, _ in clients._closers)
    assert len(clients._closers) >= 1  # every node connection was tracked


@real_redis
def test_tracked_cluster_clients_stranded_by_a_closed_loop_are_reported(cluster_url: str) -> None:
    clients = TrackedClients(RedisSource.cluster(cluster_url))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(clients().set("a", "1"))
    loop.close()  # without shutdown_asyncgens: the connection is stranded
    left_open = re.escape(_messages.REDIS_CONNECTIONS_LEFT_OPEN).replace(r"\{count\}", r"\d+")
    with pytest.raises(LeftOpen, match=left_open):
        clients.close()


def test_cluster_pubsub_needs_redis_py_8() -> None:
    require_cluster_pubsub("8.0.0")
    require_cluster_pubsub("8.1.0")
    with pytest.raises(RedisTooOld) as excinfo:
        require_cluster_pubsub("7.4.0")
    assert str(excinfo.value) == _messages.REDIS_CLUSTER_REDIS_PY_TOO_OLD.format(
        installed="7.4.0", needed="8.0"
    )


# -- namespace clean-up ------------------------------------------------------------------


@real_redis
def test_namespace_keys_are_removed_from_every_master(
    redis_cluster: LocalRedisCluster, cluster_url: str
) -> None:
    source = RedisSource.cluster(cluster_url)
    namespace = Namespace.claim(source)
    mine = [f"policy:{namespace.prefix}{key}" for key in SPREAD]
    others = [f"policy:other-{key}" for key in SPREAD]
    with redis.cluster.RedisCluster.from_url(cluster_url) as client:
        client.mset_nonatomic({key: "1" for key in mine + others})
        assert len({client.keyslot(key) for key in mine}) > 1
    assert len(_slot_owners(redis_cluster, mine)) == 3
    assert namespace.remove(source) == len(mine)
    with redis.cluster.RedisCluster.from_url(cluster_url) as client:
        assert client.exists(*mine) == 0
        assert client.exists(*others) == len(others)


@real_redis
def test_a_namespace_claim_skips_a_token_some_master_holds(cluster_url: str) -> None:
    source = RedisSource.cluster(cluster_url)
    with redis.cluster.RedisCluster.from_url(cluster_url) as client:
        client.set("x-taken0-y", "1")
    tokens = iter(["taken0", "free01"])
    assert Namespace.claim(source, tokens=lambda: next(tokens)).token == "free01"


# -- --p1-redis ---------------------------------------------------------------------------


def _usage(pytester: pytest.Pytester, value: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "quantum_p1", f"{_options.OPT_REDIS}={value}")


@real_redis
def test_a_plain_url_at_a_cluster_node_is_a_usage_error_naming_the_cluster_spelling(
    pytester: pytest.Pytester, cluster_url: str
) -> None:
    result = _usage(pytester, cluster_url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = _messages.REDIS_URL_IS_CLUSTER_NODE.format(
        source=_options.OPT_REDIS,
        url=cluster_url,
        option=_options.OPT_REDIS,
        suggestion=cluster_url.replace("redis://", "redis+cluster://"),
    )
    assert "ERROR: " + expected in result.stderr.str()


@real_redis
def test_a_cluster_url_at_a_standalone_server_is_a_usage_error(
    pytester: pytest.Pytester, redis_server: RedisServer
) -> None:
    spelled = redis_server.url.replace("redis://", "redis+cluster://")
    assert probe_cluster(spelled) is None
    result = _usage(pytester, spelled)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        _messages.REDIS_CLUSTER_URL_NOT_CLUSTER.format(
            source=_options.OPT_REDIS,
            url=spelled,
            option=_options.OPT_REDIS,
            suggestion=redis_server.url,
        )
        in result.stderr.str()
    )


@real_redis
def test_a_cluster_url_runs_with_its_node_count_in_the_header(
    pytester: pytest.Pytester, cluster_url: str
) -> None:
    pytester.makepyfile(
        """
        import asyncio

        def test_sees_cluster(p1_redis, p1_redis_namespace):
            async def go():
                await p1_redis.initialize()
                await p1_redis.set(p1_redis_namespace + "k", "1")
                return await p1_redis.get(p1_redis_namespace + "k")
            assert asyncio.run(go()) == b"1"
        """
    )
    spelled = cluster_url.replace("redis://", "redis+cluster://")
    probe = probe_cluster(spelled)
    assert probe is not None
    assert (probe.nodes, probe.masters) == (6, 3)
    result = _usage(pytester, spelled)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*redis=" + _messages.HEADER_REDIS_CLUSTER_URL.format(url=spelled, nodes="") + "*",
            _messages.HEADER_REDIS_CLUSTER_SEEN.format(nodes=6, masters=3),
        ]
    )
    with redis.cluster.RedisCluster.from_url(cluster_url) as client:
        assert client.dbsize() == 0  # the probe key went with the namespace


@real_redis
def test_p1_redis_cluster_spawns_a_private_cluster_emptied_between_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.parametrize("run", [1, 2])
        def test_empty_then_write(p1_redis, run):
            async def go():
                await p1_redis.initialize()
                before = await p1_redis.dbsize()
                await p1_redis.mset_nonatomic({k: "1" for k in "abcdefgh"})
                return before
            assert asyncio.run(go()) == 0
        """
    )
    result = _usage(pytester, "cluster")
    result.assert_outcomes(passed=2)
    masters, replicas = _options.CLUSTER_SHAPE
    result.stdout.fnmatch_lines(
        [
            "*redis="
            + _messages.HEADER_REDIS_CLUSTER_PRIVATE.format(
                nodes=masters * (1 + replicas), masters=masters, replicas=masters * replicas
            )
            + "*"
        ]
    )


@pytest.mark.parametrize(
    "value", ["redis+cluster://h:1/2", "http+cluster://h:1", "redis+cluster://h:notaport"]
)
def test_a_bad_cluster_url_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    result = _usage(pytester, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert _messages.EXPECT_REDIS_CLUSTER in result.stderr.str()
