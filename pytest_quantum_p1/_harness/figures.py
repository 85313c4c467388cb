"""Figures: what a cluster measured itself (updates, propagation times, reads), and their summary.

Propagation is matched from the harness's own records: each update's start
(:class:`UpdateRecord`) against the deliveries each instance processed
(:class:`~pytest_quantum_p1._harness.pubsub.Delivery`). Percentiles are the
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
    #: the first invalidation for ``name`` it received after that start;
    #: ``None`` when it never did.
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


class _ProcessedIndex:
    """Per message text: the earliest processing time among messages received after t.

    Built once per :func:`propagations` call, so figures over long runs cost
    O((updates + messages) log messages), not their product.
    """

    def __init__(self, log: Sequence[Delivery]) -> None:
        grouped: dict[str, list[tuple[float, float]]] = {}
        for delivery in log:
            if delivery.processed_at is not None:
                grouped.setdefault(delivery.text, []).append(
                    (delivery.received_at, delivery.processed_at)
                )
        self._received: dict[str, list[float]] = {}
        self._earliest_from: dict[str, list[float]] = {}
        for text, pairs in grouped.items():
            pairs.sort()
            earliest = [pair[1] for pair in pairs]
            for i in range(len(earliest) - 2, -1, -1):
                earliest[i] = min(earliest[i], earliest[i + 1])
            self._received[text] = [pair[0] for pair in pairs]
            self._earliest_from[text] = earliest

    def first_processed_after(self, text: str, since: float) -> float | None:
        received = self._received.get(text)
        if received is None:
            return None
        i = bisect.bisect_left(received, since)
        return self._earliest_from[text][i] if i < len(received) else None


def propagations(
    updates: Sequence[UpdateRecord], deliveries: Sequence[tuple[int, Sequence[Delivery]]]
) -> tuple[Propagation, ...]:
    """For each update and instance (``(index, its processed deliveries)``), the propagation."""
    indexes = [(instance, _ProcessedIndex(log)) for instance, log in deliveries]
    found: list[Propagation] = []
    for update in updates:
        for instance, index in indexes:
            done = index.first_processed_after(update.name, update.started_at)
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
