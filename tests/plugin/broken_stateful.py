"""Targets for ``P1-2.no-stale-reads``: a store broken in one way, or one the search cannot drive.

Each builder returns the reference target with its store factory swapped (see
:mod:`tests.plugin.broken_targets`). The reference-based store publishes before
it stores; the others are the tests' toy store (:mod:`tests.stores`) with one
switch: a toy store passes the other P1-2 criteria only in part, so the tests
using them run ``P1-2.no-stale-reads`` alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_quantum_p1 import Clock, P1Target, PolicyStore
from reference_impl.p1_target import TARGET
from reference_impl.services.policy_store_v2 import PolicyStoreV2
from tests import stores
from tests.plugin.broken_targets import _with_store

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "store_factory_that_raises",
    "store_publishing_before_storing",
    "store_that_never_reads_its_subscription",
    "store_whose_initialize_hangs",
    "store_whose_initialize_raises",
    "store_whose_listener_stalls_on_garbage",
    "toy_store_writing_through",
]


class _StorePublishingBeforeStoring(PolicyStoreV2):
    """The reference store, but an update publishes the invalidation, then writes the value.

    Two commands with a gap between them: a reader that hears the invalidation
    in that gap refills the old value and keeps it.
    """

    def __init__(self, redis: Redis, *, clock: Clock) -> None:
        super().__init__(redis, clock=clock, ttl=TARGET.policy_ttl)
        self.client = redis

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        self.invalidate(name)
        await self.client.publish(TARGET.invalidation_channel, name)
        await self.client.set(f"policy:{name}", stores.encode(policy))


def store_publishing_before_storing(root: Path) -> P1Target:
    """P1-2.no-stale-reads: an update publishes its invalidation before it stores the value."""
    return _with_store(lambda redis, clock: _StorePublishingBeforeStoring(redis, clock=clock))


def _toy(cls: type[stores.ToyStore]) -> P1Target:
    def make(redis: Redis, clock: Clock) -> PolicyStore:
        return cls(redis, clock, ttl=TARGET.policy_ttl)

    return _with_store(make)


def store_factory_that_raises(root: Path) -> P1Target:
    """No verdict: the store factory raises."""
    return _toy(stores.RaisesInFactory)


def store_whose_initialize_raises(root: Path) -> P1Target:
    """No verdict: ``initialize()`` raises."""
    return _toy(stores.RaisesOnInitialize)


def store_whose_initialize_hangs(root: Path) -> P1Target:
    """No verdict: ``initialize()`` never returns."""
    return _toy(stores.HangsOnInitialize)


def store_that_never_reads_its_subscription(root: Path) -> P1Target:
    """No verdict: the stores never settle after ``initialize()`` (nothing reads the subscription)."""
    return _toy(stores.NeverReads)


def store_whose_listener_stalls_on_garbage(root: Path) -> P1Target:
    """P1-2.no-stale-reads: the listener stops for good on a message that is not UTF-8."""
    return _toy(stores.StallsOnGarbage)


def toy_store_writing_through(root: Path) -> P1Target:
    """Not broken: the toy store, caching its own writes while its link is up (write-through)."""
    return _toy(stores.WritesThroughWhileLinked)
