"""What the tests do to a PolicyCluster again and again: read every instance, warm every cache.

A module of its own so that test modules share these without importing one
another (the fault tests, the cluster tests and the store contract use them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_quantum_p1._harness import PolicyCluster

__all__ = ["cache_everywhere", "values"]


def values(cluster: PolicyCluster, name: str) -> list[dict[str, Any]]:
    """What every instance reads for ``name``, as plain dicts (instance order)."""
    return [dict(v) for v in cluster.read_all(name)]


def cache_everywhere(cluster: PolicyCluster, name: str, value: Mapping[str, Any]) -> None:
    """Update through instance 0; every instance then caches ``value``.

    Proven by a second round of reads costing no storage read. Settling first
    matters on a real server: an invalidation landing after a read would empty
    the cache the test is about to rely on.
    """
    cluster.update(0, name, value)
    cluster.settle()
    assert values(cluster, name) == [value] * cluster.size
    before = cluster.storage_reads
    assert values(cluster, name) == [value] * cluster.size
    assert cluster.storage_reads == before, "the instances did not cache what they read"
