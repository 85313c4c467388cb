"""A private Redis Cluster for tests: masters and replicas on free loopback ports.

``--p1-redis=cluster`` and the project's own cluster tests spawn one (3 masters,
1 replica each, by default) with :func:`spawn_redis_cluster`. The nodes are
:class:`~.server.RedisServer` processes with cluster settings; the cluster is
bootstrapped directly (``CLUSTER ADDSLOTSRANGE``, ``MEET``, ``REPLICATE``), not
with ``redis-cli --cluster create``, which would be one more binary to find and
waits seconds between its steps. Standard library and redis-py only (pytest is
imported by :func:`require_redis_cluster` alone).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

import redis

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._redis.server import (
    HOST,
    RedisServer,
    RedisServerUnavailable,
    find_binary,
    free_port,
)

__all__ = [
    "ClusterNode",
    "LocalRedisCluster",
    "NodeRole",
    "RedisClusterUnavailable",
    "require_redis_cluster",
    "spawn_redis_cluster",
]

#: Redis Cluster's hash slots.
SLOTS: Final = 16384
#: ``cluster-node-timeout``: a dead master is failed over after about twice this.
NODE_TIMEOUT_MS: Final = 1000
_START_ATTEMPTS: Final = 3
_POLL_S: Final = 0.02

NodeRole = Literal["master", "replica", "down"]


class RedisClusterUnavailable(RedisServerUnavailable):
    """No private Redis Cluster could be started (or it did not form in time)."""


class ClusterNode:
    """One node of a :class:`LocalRedisCluster`: a redis-server in cluster mode.

    Its cluster state (``nodes-<port>.conf``) lives in the cluster's directory,
    so a node ended with :meth:`kill` comes back from :meth:`restart` as the
    same node (same id), and rejoins: as a replica if its slots moved meanwhile.
    """

    def __init__(self, binary: str, port: int, bus_port: int, config_dir: Path) -> None:
        self.port = port
        #: The cluster bus port, chosen free: ``port + 10000`` may be past 65535.
        self.bus_port = bus_port
        args = (
            *("--cluster-enabled", "yes", "--cluster-port", str(bus_port)),
            *("--cluster-config-file", str(config_dir / f"nodes-{port}.conf")),
            *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
            *("--cluster-replica-no-failover", "no"),
            *("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"),
        )
        self._server = RedisServer(binary, port, args=args)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT``."""
        return f"redis://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while it runs, else ``None``."""
        return self._server.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._server.running

    @property
    def role(self) -> NodeRole:
        """What the node says it is now (``ROLE``); ``"down"`` if it does not answer."""
        if not self.running:
            return "down"
        try:
            with self.admin() as client:
                role = client.execute_command("ROLE")[0]
        except redis.RedisError:
            return "down"
        return "master" if _text(role) == "master" else "replica"

    @property
    def node_id(self) -> str:
        """Its cluster node id (``CLUSTER MYID``)."""
        with self.admin() as client:
            return _text(client.execute_command("CLUSTER MYID"))

    def admin(self) -> redis.Redis:
        """A new sync client on this node alone (no redirects followed); close it."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5.0)

    def start(self) -> None:
        """Spawn the process; wait until it answers ``PING``."""
        self._server.start()

    def kill(self) -> None:
        """End it with SIGKILL, as a crash would; its cluster state is kept for :meth:`restart`."""
        self._server.kill()

    def stop(self) -> None:
        """Terminate it."""
        self._server.stop()

    def restart(self, *, timeout: float = 15.0) -> None:
        """Start it again on the same ports; return once it sees the cluster ``ok``.

        Its data is gone (no persistence): a replica syncs again from its master.
        """
        self._server.start()
        _wait_until(
            lambda: self.cluster_state() == "ok",
            timeout,
            _messages.REDIS_CLUSTER_NODE_NOT_BACK.format(port=self.port),
        )

    def cluster_state(self) -> str:
        """``cluster_state`` of ``CLUSTER INFO`` (``ok`` / ``fail``); ``""`` if it does not answer."""
        try:
            with self.admin() as client:
                fields = client.execute_command("CLUSTER INFO")
        except redis.RedisError:
            return ""
        return str(fields.get("cluster_state", ""))

    def info(self, section: str) -> dict[str, str]:
        """``INFO <section>`` as text fields; ``{}`` if the node does not answer."""
        try:
            with self.admin() as client:
                raw = client.execute_command("INFO", section)
        except redis.RedisError:
            return {}
        return {str(k): str(v) for k, v in raw.items()}

    def __repr__(self) -> str:
        return f"<ClusterNode {HOST}:{self.port} {self.role}>"


class LocalRedisCluster:
    """A Redis Cluster of private redis-server processes on loopback, owned by the caller.

    Build one with :func:`spawn_redis_cluster`. :attr:`nodes` are all nodes in
    start order (masters first); roles change with :meth:`failover` and node
    loss, so :attr:`masters` and :attr:`replicas` ask the nodes.
    """

    def __init__(self, nodes: list[ClusterNode], directory: Path) -> None:
        self.nodes = nodes
        self._dir: Path | None = directory

    @property
    def startup_url(self) -> str:
        """``redis://127.0.0.1:PORT`` of a running node: what a cluster client starts from."""
        for node in self.nodes:
            if node.running:
                return node.url
        raise RedisClusterUnavailable(_messages.REDIS_CLUSTER_ALL_DOWN)

    @property
    def masters(self) -> list[ClusterNode]:
        """The nodes that are masters now."""
        return [node for node in self.nodes if node.role == "master"]

    @property
    def replicas(self) -> list[ClusterNode]:
        """The nodes that are replicas now."""
        return [node for node in self.nodes if node.role == "replica"]

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        """A running replica of ``master`` (by its ``INFO replication``)."""
        for node in self.replicas:
            if node.info("replication").get("master_port") == str(master.port):
                return node
        raise RedisClusterUnavailable(_messages.REDIS_CLUSTER_NO_REPLICA.format(port=master.port))

    def flush(self) -> None:
        """Empty every master (``FLUSHALL``) and wait until their replicas have it too."""
        for node in self.masters:
            replicas = int(node.info("replication").get("connected_slaves", "0"))
            with node.admin() as client:
                client.flushall()
                if replicas:
                    # Replicas serve reads in some tests: let them catch up first.
                    client.execute_command("WAIT", replicas, 1000)

    def failover(self, master: ClusterNode, *, timeout: float = 15.0) -> ClusterNode:
        """``CLUSTER FAILOVER`` on a replica of ``master``; return it once it is the master.

        Returns when the promoted node is master, the old one its replica in
        sync, and every running node sees the cluster ``ok``.
        """
        replica = self.replica_of(master)
        with replica.admin() as client:
            client.execute_command("CLUSTER FAILOVER")

        def done() -> bool:
            return (
                replica.role == "master"
                and master.role == "replica"
                and _in_sync(master)
                and self._all_ok()
            )

        _wait_until(
            done,
            timeout,
            _messages.REDIS_CLUSTER_FAILOVER_TIMEOUT.format(
                port=master.port, replica=replica.port, timeout=timeout
            ),
        )
        return replica

    def wait_ready(self, masters: int, timeout: float = 15.0) -> None:
        """Wait until every running node sees the cluster ``ok``, with ``masters`` masters
        whose replicas are in sync."""

        def ready() -> bool:
            running = [node for node in self.nodes if node.running]
            replicas = [node for node in running if node.role == "replica"]
            return (
                self._all_ok()
                and len(running) - len(replicas) == masters
                and all(_in_sync(node) for node in replicas)
                and all(_knows_all(node, len(running)) for node in running)
            )

        _wait_until(ready, timeout, _messages.REDIS_CLUSTER_NOT_READY.format(timeout=timeout))

    def heal(self, masters: int, timeout: float = 15.0) -> None:
        """Restart every node that is down, then :meth:`wait_ready`: a whole cluster again."""
        for node in self.nodes:
            if not node.running:
                node.restart(timeout=timeout)
        self.wait_ready(masters, timeout)

    def ok(self) -> bool:
        """Whether every running node sees the cluster ``ok`` (every slot served)."""
        return self._all_ok()

    def _all_ok(self) -> bool:
        return all(node.cluster_state() == "ok" for node in self.nodes if node.running)

    def close(self) -> None:
        """Stop every node and remove the cluster's directory. Idempotent."""
        for node in self.nodes:
            node.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __iter__(self) -> Iterator[ClusterNode]:
        return iter(self.nodes)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        ports = ",".join(str(node.port) for node in self.nodes)
        return f"<LocalRedisCluster {len(self.nodes)} nodes on {HOST}:{ports}>"


def spawn_redis_cluster(
    binary: str | None = None,
    *,
    masters: int = 3,
    replicas_per_master: int = 1,
    timeout: float = 20.0,
) -> LocalRedisCluster:
    """Start a private Redis Cluster on free loopback ports and return it, ready.

    ``masters`` masters share the 16384 slots evenly, each with
    ``replicas_per_master`` replicas. Returns once every node sees
    ``cluster_state:ok`` and every replica is in sync. Raises
    :class:`RedisClusterUnavailable` (a :class:`~.server.RedisServerUnavailable`)
    when no cluster can be started. The caller closes it.
    """
    if masters < 1 or replicas_per_master < 0:
        raise ValueError(
            _messages.REDIS_CLUSTER_SHAPE.format(masters=masters, replicas=replicas_per_master)
        )
    path = find_binary(binary)
    directory = Path(tempfile.mkdtemp(prefix="p1-cluster-"))
    cluster = LocalRedisCluster([], directory)
    try:
        for _ in range(masters * (1 + replicas_per_master)):
            cluster.nodes.append(_start_node(path, directory))
        _bootstrap(cluster, masters, replicas_per_master, timeout)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _start_node(binary: str, directory: Path) -> ClusterNode:
    error: RedisServerUnavailable | None = None
    for _ in range(_START_ATTEMPTS):
        node = ClusterNode(binary, free_port(), free_port(), directory)
        try:
            node.start()
        except RedisServerUnavailable as exc:
            error = exc
            if "in use" not in str(exc):
                break
        else:
            return node
    assert error is not None
    raise error


def _bootstrap(
    cluster: LocalRedisCluster, masters: int, replicas_per_master: int, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    primaries = cluster.nodes[:masters]
    try:
        for index, node in enumerate(primaries):
            first = index * SLOTS // masters
            last = (index + 1) * SLOTS // masters - 1
            with node.admin() as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        seed = cluster.nodes[0]
        with seed.admin() as client:
            for node in cluster.nodes[1:]:
                client.execute_command("CLUSTER MEET", HOST, node.port, node.bus_port)
        total = len(cluster.nodes)
        _wait_until(
            lambda: all(_knows_all(node, total) for node in cluster.nodes),
            deadline - time.monotonic(),
            _messages.REDIS_CLUSTER_NOT_READY.format(timeout=timeout),
        )
        ids = [node.node_id for node in primaries]
        for index, node in enumerate(cluster.nodes[masters:]):
            with node.admin() as client:
                client.execute_command("CLUSTER REPLICATE", ids[index % masters])
    except redis.RedisError as exc:
        raise RedisClusterUnavailable(
            _messages.REDIS_CLUSTER_BOOTSTRAP_FAILED.format(error=exc)
        ) from exc
    cluster.wait_ready(masters, max(0.0, deadline - time.monotonic()))


def _knows_all(node: ClusterNode, total: int) -> bool:
    """The node's view lists ``total`` connected nodes, none failing or still handshaking."""
    try:
        with node.admin() as client:
            # redis-py parses the reply: {"host:port": {"flags": ..., "connected": ...}}
            view: dict[str, dict[str, object]] = client.execute_command("CLUSTER NODES")
    except redis.RedisError:
        return False
    healthy = [
        entry
        for entry in view.values()
        if entry.get("connected")
        and not {"fail", "fail?", "handshake", "noaddr"} & set(str(entry["flags"]).split(","))
    ]
    return len(healthy) == total


def _in_sync(replica: ClusterNode) -> bool:
    fields = replica.info("replication")
    return (
        fields.get("role") == "slave"
        and fields.get("master_link_status") == "up"
        and fields.get("master_sync_in_progress") == "0"
    )


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RedisClusterUnavailable(what)
        time.sleep(_POLL_S)  # the nodes gossip on their own clock; nothing to wait on


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def require_redis_cluster(
    binary: str | None = None,
    *,
    masters: int = 3,
    replicas_per_master: int = 1,
    why: str = "{error}",
) -> LocalRedisCluster:
    """A private cluster for a test, fixture or benchmark, by the rule of
    :func:`~.server.require_redis_server`: none skips locally, fails under ``CI=true``."""
    import pytest

    try:
        return spawn_redis_cluster(binary, masters=masters, replicas_per_master=replicas_per_master)
    except RedisServerUnavailable as exc:
        problem = why.format(error=exc)
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs a real Redis Cluster: {problem}", pytrace=False)
    pytest.skip(problem)
