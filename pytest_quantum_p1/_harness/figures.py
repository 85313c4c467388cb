"""Figures: what a cluster measured itself (updates, propagation times, reads), and their summary.

Propagation is matched from the harness's own records, by position and never
by content (a store's messages may be names, JSON, lists of keys ...): each
update's start (:class:`UpdateRecord`) against the first delivery
(:class:`~pytest_quantum_p1._harness.pubsub.Delivery`) each instance received
after it. Updates made one at a time with a settle between are matched
exactly; in a burst of overlapping updates, an update may be matched to the
message an earlier one sent (attribution is positional). Percentiles are the
harness's one definition, :func:`pytest_quantum_p1._units.percentile`
(nearest rank: every figure reported was observed).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_quantum_p1._harness.pubsub import Delivery
from pytest_quantum_p1._units import percentile

__all__ = ["ClusterStats", "Propagation", "UpdateRecord", "propagations", "summarize"]


@dataclass(frozen=True)
class UpdateRecord:
    """One ``update()`` the harness made: where, what, and when it started and ended."""

    seq: int
    instance: int
    name: str
    #: :func:`time.perf_counter` at the start and end of ``update_policy``.
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class Propagation:
    """How long one update took to be processed by one instance's listener."""

    update: int
    name: str
    source: int
    instance: int
    #: From the start of the update call until the instance finished handling
    #: the first message it received after that start (whatever it says);
    #: ``None`` when it received none or has not finished it.
    ms: float | None


@dataclass(frozen=True)
class ClusterStats:
    """The cluster's figures, measured by the harness."""

    instances: int
    updates: int
    #: ``get_policy`` calls the harness made, per instance.
    reads: tuple[int, ...]
    #: Storage reads counted on each instance's client.
    storage_reads: tuple[int, ...]
    #: Propagations observed (at most ``instances * updates``).
    propagations: int
    #: Instance-updates with no processed invalidation (so far).
    missing_propagations: int
    propagation_p50_ms: float | None
    propagation_p99_ms: float | None
    propagation_max_ms: float | None

    @property
    def total_storage_reads(self) -> int:
        """Storage reads over all instances."""
        return sum(self.storage_reads)

    @property
    def hit_rate(self) -> float | None:
        """``1 - storage reads / reads`` over the cluster; ``None`` before any read."""
        total = sum(self.reads)
        return None if total == 0 else 1.0 - self.total_storage_reads / total


class _ArrivalIndex:
    """One instance's deliveries in arrival order: the first received at or after t, by bisection.

    Built once per :func:`propagations` call, so figures over long runs cost
    O((updates + messages) log messages), not their product.
    """

    def __init__(self, log: Sequence[Delivery]) -> None:
        self._log = sorted(log, key=lambda d: d.received_at)
        self._received = [d.received_at for d in self._log]

    def first_processed_after(self, since: float) -> float | None:
        """When the first delivery received at or after ``since`` was processed (``None``: not)."""
        i = bisect.bisect_left(self._received, since)
        return self._log[i].processed_at if i < len(self._log) else None


def propagations(
    updates: Sequence[UpdateRecord], deliveries: Sequence[tuple[int, Sequence[Delivery]]]
) -> tuple[Propagation, ...]:
    """For each update and instance (``(index, its deliveries)``), the propagation (positional)."""
    indexes = [(instance, _ArrivalIndex(log)) for instance, log in deliveries]
    found: list[Propagation] = []
    for update in updates:
        for instance, index in indexes:
            done = index.first_processed_after(update.started_at)
            ms = None if done is None else (done - update.started_at) * 1000
            found.append(Propagation(update.seq, update.name, update.instance, instance, ms))
    return tuple(found)


def summarize(
    found: Sequence[Propagation],
    *,
    instances: int,
    updates: int,
    reads: tuple[int, ...],
    storage_reads: tuple[int, ...],
) -> ClusterStats:
    """The :class:`ClusterStats` of these propagations and read counts."""
    times = [p.ms for p in found if p.ms is not None]
    return ClusterStats(
        instances=instances,
        updates=updates,
        reads=reads,
        storage_reads=storage_reads,
        propagations=len(times),
        missing_propagations=len(found) - len(times),
        propagation_p50_ms=percentile(times, 50) if times else None,
        propagation_p99_ms=percentile(times, 99) if times else None,
        propagation_max_ms=max(times) if times else None,
    )
