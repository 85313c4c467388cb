"""P1-2 on a Redis Cluster: invalidation across shards, through failover and node loss.

Collected only with ``--p1-redis=cluster`` (a 3 masters + 3 replicas cluster
of the harness's own) or a cluster URL (``redis+cluster://``). On a cluster,
classic ``PUBLISH`` crosses the cluster bus, failovers move slots, and a dead
node cuts every subscription it held; these criteria prove the store keeps
its promises there:

- ``P1-2.cluster-shards``: instances converge after updates whose keys span
  every master (which masters hold them is read from the cluster);
- ``P1-2.cluster-failover``: a failover of every master under a steady update
  stream (every 10 ms) loses no acknowledged invalidation: no instance serves
  an older value afterwards;
- ``P1-2.cluster-node-loss``: the node holding the subscriptions dies
  (SIGKILL): each instance drops its cache (serves from storage), and is
  subscribed again within the cluster's failover time plus 1 s, without read
  traffic of its own.

The last two need the cluster's nodes in the harness's hands: on a cluster
URL they are skipped, saying so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.drive import probe_name
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.verdict import fail

if TYPE_CHECKING:
    from pytest_quantum_p1._harness import PolicyCluster, PolicyClusterFactory
    from pytest_quantum_p1._options import P1Settings
    from pytest_quantum_p1._redis.cluster import ClusterNode, LocalRedisCluster
    from pytest_quantum_p1._redis.source import RedisSource
    from pytest_quantum_p1._target import P1Target

__all__ = [
    "CLUSTER_IDS",
    "criterion_cluster_failover",
    "criterion_cluster_node_loss",
    "criterion_cluster_shards",
]

#: The cluster criteria, in checklist order.
CLUSTER_IDS = ("P1-2.cluster-shards", "P1-2.cluster-failover", "P1-2.cluster-node-loss")

#: Policies updated across the shards: with 24 names, keys miss a master of
#: three with probability 3 * (2/3)**24 (2e-4); the figures say how they fell.
_SHARD_NAMES = 24
#: Seconds between updates of the stream a failover runs under.
_STREAM_EVERY_S = 0.01
#: Slack on top of the cluster's own failover time for a store to subscribe again.
_RESUBSCRIBE_SLACK_S = 1.0
#: How long a cluster may take to promote a replica after its master died.
_FAILOVER_LIMIT_S = 15.0


def _local_cluster(request: pytest.FixtureRequest, p1_settings: P1Settings) -> LocalRedisCluster:
    if p1_settings.redis_mode != "cluster":
        pytest.skip(_messages.P1_2_CLUSTER_NOT_OURS)
    cluster: LocalRedisCluster = request.getfixturevalue("_p1_redis_cluster")
    return cluster


def _masters_holding(source: RedisSource, names: list[str]) -> dict[str, int]:
    """How many keys naming each of ``names`` every master holds (``SCAN`` on each)."""
    import redis

    counts: dict[str, int] = {}
    for url in source.master_addresses():
        with redis.Redis.from_url(url) as node:
            found = 0
            for key in node.scan_iter(match="*p1-shard-*", count=1000):
                text = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
                found += any(name in text for name in names)
            counts[str(node.connection_pool.connection_kwargs.get("port"))] = found
    return counts


def _converge(cluster: PolicyCluster, name: str, value: Mapping[str, Any], where: str) -> None:
    try:
        cluster.assert_converged(name, value)
    except (AssertionError, TimeoutError) as exc:
        fail(
            _messages.P1_2_CLUSTER_NOT_CONVERGED.format(where=where),
            str(exc),
            _messages.P1_2_CLUSTER_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )


def criterion_cluster_shards(
    p1_settings: P1Settings,
    policy_cluster: PolicyClusterFactory,
    _p1_redis_source: RedisSource,
    _p1_criterion: CriterionRecord,
) -> None:
    """Instances converge after updates whose keys span every master."""
    instances = p1_settings.instances
    cluster = policy_cluster(instances)
    names = [probe_name(f"shard-{i}") for i in range(_SHARD_NAMES)]
    for k, name in enumerate(names):
        cluster.update(k % instances, name, {"v": 1})
    cluster.settle()
    for name in names:
        cluster.read_all(name)  # cached everywhere: a lost invalidation shows
    for k, name in enumerate(names):
        value = {"v": 2, "writer": k % instances}
        cluster.update(k % instances, name, value)
        _converge(cluster, name, value, _messages.P1_2_CLUSTER_WHERE_SHARDS)
    holding = _masters_holding(_p1_redis_source, names)
    stats = cluster.stats()
    _p1_criterion.figures = {
        "instances": instances,
        "updates": 2 * len(names),
        "masters": len(holding),
        "masters_with_keys": sum(1 for n in holding.values() if n),
        "propagation_p50_ms": round(stats.propagation_p50_ms or 0.0, 3),
        "propagation_p99_ms": round(stats.propagation_p99_ms or 0.0, 3),
    }
    _p1_criterion.summary = _messages.P1_2_CLUSTER_SHARDS_SUMMARY.format(
        instances=instances,
        names=len(names),
        spread=sum(1 for n in holding.values() if n),
        masters=len(holding),
        p50=stats.propagation_p50_ms or 0.0,
        p99=stats.propagation_p99_ms or 0.0,
    )


class _Stream:
    """Updates on instance 0 every 10 ms, in a thread, recording what Redis acknowledged."""

    def __init__(self, cluster: PolicyCluster, names: list[str]) -> None:
        self._cluster = cluster
        self._names = names
        self.acknowledged: dict[str, dict[str, Any]] = {}
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="p1-update-stream", daemon=True)

    def __enter__(self) -> _Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30.0)

    def _run(self) -> None:
        version = 0
        while not self._stop.is_set():
            version += 1
            name = self._names[version % len(self._names)]
            value = {"v": version}
            try:
                self._cluster.update(0, name, value)
            except Exception:  # refused during the failover: not acknowledged, not owed
                self.failed += 1
            else:
                self.acknowledged[name] = value
            self._stop.wait(_STREAM_EVERY_S)

    @property
    def updates(self) -> int:
        return len(self._cluster.updates)


def criterion_cluster_failover(
    request: pytest.FixtureRequest,
    p1_settings: P1Settings,
    policy_cluster: PolicyClusterFactory,
    _p1_criterion: CriterionRecord,
) -> None:
    """A failover of every master under a steady update stream: no stale read afterwards."""
    local = _local_cluster(request, p1_settings)
    cluster = policy_cluster(2)
    names = [probe_name(f"failover-{i}") for i in range(6)]
    for name in names:
        cluster.update(0, name, {"v": 0})
    cluster.settle()
    for name in names:
        cluster.read_all(name)
    took: list[float] = []
    with _Stream(cluster, names) as stream:
        for master in list(local.masters):
            started = time.perf_counter()
            local.failover(master)
            took.append(time.perf_counter() - started)
            time.sleep(0.1)  # updates keep flowing on the new topology
    _p1_criterion.figures = {
        "failovers": len(took),
        "failover_max_s": round(max(took), 3),
        "updates": stream.updates,
        "updates_refused": stream.failed,
    }
    for name, value in stream.acknowledged.items():
        _converge(cluster, name, value, _messages.P1_2_CLUSTER_WHERE_FAILOVER)
    _p1_criterion.summary = _messages.P1_2_CLUSTER_FAILOVER_SUMMARY.format(
        failovers=len(took), updates=stream.updates, refused=stream.failed, slowest=max(took)
    )


def _subscription_holder(local: LocalRedisCluster, channel: str) -> ClusterNode | None:
    """The running node where most clients subscribe to ``channel`` (``PUBSUB NUMSUB`` is per node)."""
    best: tuple[int, ClusterNode] | None = None
    for node in local.nodes:
        if not node.running:
            continue
        with node.admin() as admin:
            [(_, count)] = admin.pubsub_numsub(channel)
        if int(count) and (best is None or int(count) > best[0]):
            best = (int(count), node)
    return None if best is None else best[1]


def criterion_cluster_node_loss(
    request: pytest.FixtureRequest,
    p1_settings: P1Settings,
    p1_target: P1Target,
    policy_cluster: PolicyClusterFactory,
    _p1_criterion: CriterionRecord,
) -> None:
    """The node holding the subscriptions dies: each instance flushes and subscribes again in time."""
    local = _local_cluster(request, p1_settings)
    instances = 2
    cluster = policy_cluster(instances)
    name = probe_name("nodeloss")
    cluster.update(0, name, {"v": 1})
    cluster.settle()
    cluster.read_all(name)
    holder = _subscription_holder(local, p1_target.invalidation_channel)
    if holder is None:
        fail(
            _messages.P1_2_CLUSTER_NO_SUBSCRIBER.format(channel=p1_target.invalidation_channel),
            _messages.ACCEPTANCE_READ_MORE,
        )
    was_master = holder.role == "master"
    replica = local.replica_of(holder) if was_master else None
    before = cluster.subscriptions
    killed_at = time.perf_counter()
    holder.kill()
    # How long the cluster itself takes: a dead master's replica is promoted
    # and every node serves every slot again.
    failover_s = 0.0
    if replica is not None:
        deadline = killed_at + _FAILOVER_LIMIT_S
        while time.perf_counter() < deadline and not (replica.role == "master" and local.ok()):
            time.sleep(0.02)
        failover_s = time.perf_counter() - killed_at
    allowed = failover_s + _RESUBSCRIBE_SLACK_S
    late: list[str] = []
    back: list[float] = []
    for i in range(instances):
        left = max(allowed - (time.perf_counter() - killed_at), 0.0)
        try:
            back.append(cluster.wait_resubscribed(i, after=before[i], timeout=left) - killed_at)
        except TimeoutError as exc:
            late.append(f"  - instance {i}: {exc}")
    _p1_criterion.figures = {
        "holder_was_master": int(was_master),
        "failover_s": round(failover_s, 3),
        "resubscribed_max_s": round(max(back), 3) if back else -1,
        "allowed_s": round(allowed, 3),
    }
    if late:
        fail(
            _messages.P1_2_CLUSTER_NOT_RESUBSCRIBED.format(
                port=holder.port, allowed=allowed, failover=failover_s
            ),
            *late,
            _messages.P1_2_CLUSTER_RESUBSCRIBE_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    # Whatever was published while it had no link is lost: it must not serve its old copy.
    reads = cluster.storage_reads
    cluster.read_all(name)
    uncached = [i for i in range(instances) if cluster.storage_reads[i] == reads[i]]
    if uncached:
        fail(
            _messages.P1_2_CLUSTER_KEPT_CACHE.format(
                instances=", ".join(map(str, uncached)), port=holder.port
            ),
            _messages.P1_2_CLUSTER_RESUBSCRIBE_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    value = {"v": 2}
    cluster.update(0, name, value)
    _converge(cluster, name, value, _messages.P1_2_CLUSTER_WHERE_NODE_LOSS)
    slowest = max(back) if back else 0.0
    _p1_criterion.summary = _messages.P1_2_CLUSTER_NODE_LOSS_SUMMARY.format(
        port=holder.port, slowest=slowest, failover=failover_s
    )
