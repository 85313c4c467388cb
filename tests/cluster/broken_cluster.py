"""Reference stores broken for a Redis Cluster only, as acceptance targets (``root -> P1Target``).

Each keeps every promise on a single Redis and breaks one of the cluster's:
the cluster criteria must fail on exactly it.
"""

from __future__ import annotations

from pathlib import Path

from pytest_quantum_p1 import P1Target
from tests.cluster.test_reference_on_cluster import NoFlushStore, PinnedStore
from tests.plugin.broken_targets import _with_store

__all__ = ["store_ignoring_the_lost_link_rule", "store_pinned_to_the_slot_owner"]


def store_pinned_to_the_slot_owner(root: Path) -> P1Target:
    """Subscribes on the channel's slot owner only and never asks the cluster for its topology again."""
    return _with_store(lambda redis, clock: PinnedStore(redis, clock=clock))


def store_ignoring_the_lost_link_rule(root: Path) -> P1Target:
    """Keeps its cache when its invalidation link drops."""
    return _with_store(lambda redis, clock: NoFlushStore(redis, clock=clock))
