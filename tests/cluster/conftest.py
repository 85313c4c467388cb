"""A private Redis Cluster (3 masters, 1 replica each) for the cluster tests, once per session.

``redis_cluster`` starts it (skipped locally, failed under ``CI=true`` without
redis-server); ``cluster_url`` empties it for one test and gives the URL a
``redis.asyncio.cluster.RedisCluster`` starts from. A test that fails nodes over
or kills them leaves the cluster ready again (``wait_ready``) for the next.
Mark each module here ``pytestmark = pytest.mark.real_redis``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_quantum_p1._redis.cluster import LocalRedisCluster, require_redis_cluster

#: The shape of the session's cluster.
MASTERS = 3


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A private 3+3 Redis Cluster on free loopback ports, for the whole session."""
    with require_redis_cluster(masters=MASTERS) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: LocalRedisCluster) -> str:
    """The session's cluster, every node running and every master emptied, for this test."""
    # A node an earlier test killed comes back: each test starts from a whole cluster.
    redis_cluster.heal(MASTERS)
    redis_cluster.flush()
    return redis_cluster.startup_url
