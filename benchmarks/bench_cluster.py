"""Invalidation propagation of the reference store: a Redis Cluster against one redis-server.

Run, from the repository root, with a ``redis-server`` binary on ``PATH``::

    python benchmarks/bench_cluster.py [UPDATES]

It spawns, in the same run, a private 3 masters + 3 replicas cluster and one
private redis-server (free loopback ports; nothing shared is touched), opens a
writer store and a reader store on each (each store with a client of its own:
``RedisCluster`` on the cluster), and times ``UPDATES`` updates (default 2000)
on each backend, in alternating blocks of 100 so that drift in the machine's
load weighs on both alike. An update's propagation runs from the start of the
writer's ``update_policy`` to the end of the reader's handling of the
invalidation, on one clock (both stores share the process and its loop).

On the cluster the updated keys are spread over every shard, and its figures
are also split by where the key lives: on the node the reader listens on
(``local``: the ``PUBLISH`` reaches it directly) or on another master
(``bus``: the cluster forwards it over its bus). It also prints what each
backend costs to start and its resident memory (``VmRSS`` of its processes).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from pytest_quantum_p1._redis.cluster import LocalRedisCluster, spawn_redis_cluster
from pytest_quantum_p1._redis.server import RedisServer, spawn_redis_server
from reference_impl.services.policy_store_v2 import PolicyStoreV2

UPDATES: Final = 2000
BLOCK: Final = 100
PREFIX: Final = "policy:"
CHANNEL: Final = "policy:invalidate"
#: How long one update may take to reach the reader before the run is abandoned.
PATIENCE: Final = 5.0


@dataclass
class Side:
    """One backend: a writer, a reader that reports when it applied each name, the names."""

    label: str
    writer: PolicyStoreV2
    reader: PolicyStoreV2
    #: (name, where its key lives: "local", "bus" or "server"), updated in turn.
    names: list[tuple[str, str]]
    samples: dict[str, list[float]] = field(default_factory=dict)
    _pending: dict[str, asyncio.Future[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The one hook into the reader: when it finished applying a message.
        apply: Callable[[object], None] = self.reader._apply

        def timed_apply(data: object) -> None:
            apply(data)
            name = data.decode() if isinstance(data, bytes) else str(data)
            waiter = self._pending.pop(name, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(time.perf_counter())

        setattr(self.reader, "_apply", timed_apply)  # noqa: B010  # the store's own method slot

    async def update(self, tick: int) -> None:
        """Update the next name and record how long until the reader applied it."""
        name, where = self.names[tick % len(self.names)]
        applied = self._pending[name] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        await self.writer.update_policy(name, {"v": tick})
        done = await asyncio.wait_for(applied, PATIENCE)
        self.samples.setdefault(where, []).append((done - started) * 1000)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def rss_mb(pids: list[int | None]) -> float:
    """Resident memory of the processes, in MB (``VmRSS``)."""
    total_kb = 0
    for pid in pids:
        if pid is None:
            continue
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def listening_port(cluster: LocalRedisCluster) -> int:
    """The port of the node the stores subscribe on (``PUBSUB NUMSUB`` counts per node)."""
    for node in cluster.nodes:
        with node.admin() as admin:
            [(_, count)] = admin.pubsub_numsub(CHANNEL)
        if count:
            return node.port
    raise RuntimeError("no node has a subscriber")


@asynccontextmanager
async def open_sides(cluster: LocalRedisCluster, server: RedisServer) -> AsyncIterator[list[Side]]:
    async with AsyncExitStack() as stack:

        async def store(client: Redis | RedisCluster) -> PolicyStoreV2:
            stack.push_async_callback(client.aclose)
            opened = PolicyStoreV2(client, ttl=60.0)
            stack.push_async_callback(opened.close)
            await opened.initialize()
            return opened

        single = Side(
            "redis-server",
            await store(Redis.from_url(server.url)),
            await store(Redis.from_url(server.url)),
            [(f"p{i}", "server") for i in range(6)],
        )
        router = RedisCluster.from_url(cluster.startup_url)
        writer, reader = (
            await store(router),
            await store(RedisCluster.from_url(cluster.startup_url)),
        )
        listened_on = listening_port(cluster)
        names: list[tuple[str, str]] = []
        per_master: dict[str, int] = {}
        for index in itertools.count():
            node = router.get_node_from_key(f"{PREFIX}p{index}")
            assert node is not None
            if per_master.get(node.name, 0) < 2:
                per_master[node.name] = per_master.get(node.name, 0) + 1
                names.append((f"p{index}", "local" if node.port == listened_on else "bus"))
            if len(names) == 6:
                break
        yield [single, Side("cluster 3+3", writer, reader, names)]


async def measure(cluster: LocalRedisCluster, server: RedisServer, updates: int) -> list[Side]:
    async with open_sides(cluster, server) as sides:
        for block in range(0, updates, BLOCK):
            for side in sides:
                for tick in range(block, min(block + BLOCK, updates)):
                    await side.update(tick)
        return sides


def main(updates: int) -> None:
    started = time.perf_counter()
    server = spawn_redis_server()
    server_start_s = time.perf_counter() - started
    started = time.perf_counter()
    cluster = spawn_redis_cluster()
    cluster_start_s = time.perf_counter() - started
    try:
        server_mb = rss_mb([server.pid])
        cluster_mb = rss_mb([node.pid for node in cluster.nodes])
        sides = asyncio.run(measure(cluster, server, updates))
    finally:
        cluster.close()
        server.stop()
    print(f"propagation of {updates} updates per backend, ms (writer call start -> reader applied)")
    print(f"{'backend':<14}{'keys':<8}{'n':>6}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    p50s: dict[str, float] = {}
    p99s: dict[str, float] = {}
    for side in sides:
        every = [value for values in side.samples.values() for value in values]
        groups = [("all", every), *sorted(side.samples.items())]
        for where, values in groups if len(side.samples) > 1 else groups[:1]:
            print(
                f"{side.label:<14}{where:<8}{len(values):>6}"
                f"{percentile(values, 0.5):>8.3f}{percentile(values, 0.9):>8.3f}"
                f"{percentile(values, 0.99):>8.3f}{max(values):>8.3f}"
            )
        p50s[side.label] = statistics.median(every)
        p99s[side.label] = percentile(every, 0.99)
    single, clustered = (side.label for side in sides)
    print(
        f"cluster / single: p50 x{p50s[clustered] / p50s[single]:.2f},"
        f" p99 x{p99s[clustered] / p99s[single]:.2f}"
    )
    print(
        f"start: redis-server {server_start_s:.2f} s, cluster {cluster_start_s:.2f} s;"
        f" memory: redis-server {server_mb:.1f} MB, cluster {cluster_mb:.1f} MB (6 processes)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else UPDATES)
