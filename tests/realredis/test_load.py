"""Eight store processes on one real Redis under a minute of mixed reads and updates.

The workload runs in batches. In each batch ``WRITERS`` writers, each owning
its own policies, make ``UPDATES_PER_WRITER`` updates one after the other through
random instances, each writing the next value of one global counter
(``{"v": n}``): a policy has one writer, so its versions only grow and the last
acknowledged one is the latest. Meanwhile one reader per instance makes
``READS_PER_BATCH`` reads of random policies. Then the cluster settles and every
instance reads every policy.

Asserted: after each settle, every instance reads the latest version of every
policy (0 stale reads); no instance ever reads a version older than one it read
before (versions monotonic); at the end, Redis and every instance hold each
policy's last acknowledged version (0 lost updates), and every instance handled
every update's invalidation. Reported: read and update throughput, and
propagation p50/p99/max measured by the harness across processes.

``P1_LOAD_SECONDS`` (default 60) sets the duration of the mixed phase, so a
developer can run ``P1_LOAD_SECONDS=5``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Mapping
from typing import Any

import pytest
import redis

from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._harness import PolicyCluster
from tests.realredis import REFERENCE
from tests.stores import KEY_PREFIX, encode

pytestmark = [pytest.mark.real_redis, pytest.mark.slow]

LOAD_SECONDS = float(os.environ.get("P1_LOAD_SECONDS", "60"))
INSTANCES = 8
POLICIES = 16
WRITERS = 4
UPDATES_PER_WRITER = 8
READS_PER_BATCH = 48  # per instance


class Workload:
    """The bookkeeping of one run: what was written, what each instance read."""

    def __init__(self, cluster: PolicyCluster, seed: int = 2) -> None:
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.names = [f"load-{k}" for k in range(POLICIES)]
        self.latest: dict[str, int] = {}
        self.version = 0
        self.seen: dict[tuple[int, str], int] = {}
        self.regressions: list[str] = []
        self.stale: list[str] = []
        self.reads = 0
        self.updates = 0
        self.batches = 0
        self.mixed_s = 0.0

    async def update(self, instance: int, name: str) -> None:
        self.version += 1
        version = self.version  # other writers move the counter while this one awaits
        await self.cluster.update_async(instance, name, {"v": version})
        self.latest[name] = version  # acknowledged
        self.updates += 1

    async def read(self, instance: int, name: str) -> int:
        got = (await self.cluster.read_async(instance, name))["v"]
        before = self.seen.get((instance, name), 0)
        if got < before:
            self.regressions.append(f"instance {instance} read {name} v{got} after v{before}")
        self.seen[(instance, name)] = max(got, before)
        self.reads += 1
        return int(got)

    async def writer(self, owned: list[str]) -> None:
        rng = random.Random(self.rng.random())
        for _ in range(UPDATES_PER_WRITER):
            await self.update(rng.randrange(INSTANCES), rng.choice(owned))

    async def reader(self, instance: int) -> None:
        rng = random.Random(self.rng.random())
        for _ in range(READS_PER_BATCH):
            await self.read(instance, rng.choice(self.names))

    async def verify(self) -> None:
        """Every instance reads every policy's latest version (the cluster has settled)."""
        for name in self.names:
            results = await asyncio.gather(*(self.read(i, name) for i in range(INSTANCES)))
            for instance, got in enumerate(results):
                if got != self.latest[name]:
                    self.stale.append(
                        f"batch {self.batches}: instance {instance} read {name} v{got}, "
                        f"latest v{self.latest[name]}"
                    )

    async def run(self, seconds: float) -> None:
        for name in self.names:
            await self.update(0, name)
        await self.cluster.settle_async(timeout=30.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            started = loop.time()
            await asyncio.gather(
                *(self.writer(self.names[w::WRITERS]) for w in range(WRITERS)),
                *(self.reader(i) for i in range(INSTANCES)),
            )
            self.mixed_s += loop.time() - started
            await self.cluster.settle_async(timeout=30.0)
            await self.verify()
            self.batches += 1


def test_eight_processes_under_mixed_load_read_nothing_stale_and_lose_no_update(
    url: str, record_property: Any
) -> None:
    with PolicyCluster.open(
        REFERENCE, url, instances=INSTANCES, clock=VirtualClock(), processes=True
    ) as cluster:
        work = Workload(cluster)
        wall = time.perf_counter()
        cluster.portal.call(work.run, LOAD_SECONDS, timeout=LOAD_SECONDS + 300)
        wall = time.perf_counter() - wall
        stats = cluster.stats()

    with redis.Redis.from_url(url) as admin:
        stored = {name: admin.get(KEY_PREFIX + name) for name in work.names}
    lost = [
        f"{name}: Redis holds {raw!r}, last acknowledged v{work.latest[name]}"
        for name, raw in stored.items()
        if raw != encode({"v": work.latest[name]}).encode()
    ]
    figures: Mapping[str, Any] = {
        "seconds": round(wall, 1),
        "batches": work.batches,
        "updates": work.updates,
        "reads": work.reads,
        "mixed_reads_per_s": round(READS_PER_BATCH * INSTANCES * work.batches / work.mixed_s),
        "mixed_updates_per_s": round(WRITERS * UPDATES_PER_WRITER * work.batches / work.mixed_s),
        "overall_reads_per_s": round(work.reads / wall),
        "overall_updates_per_s": round(work.updates / wall),
        "propagation_p50_ms": round(stats.propagation_p50_ms or 0.0, 3),
        "propagation_p99_ms": round(stats.propagation_p99_ms or 0.0, 3),
        "propagation_max_ms": round(stats.propagation_max_ms or 0.0, 3),
        "propagations": stats.propagations,
        "stale_reads_after_settle": len(work.stale),
        "version_regressions": len(work.regressions),
        "lost_updates": len(lost),
    }
    for key, value in figures.items():
        record_property(key, value)
    print("load:", ", ".join(f"{k}={v}" for k, v in figures.items()))

    assert work.batches > 0
    assert work.stale == [], "\n".join(work.stale[:20])
    assert work.regressions == [], "\n".join(work.regressions[:20])
    assert lost == [], "\n".join(lost)
    # Every instance handled every update's invalidation, the writer included.
    assert stats.updates == work.updates
    assert stats.missing_propagations == 0
    assert stats.propagations == INSTANCES * work.updates
