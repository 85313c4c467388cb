"""Targets whose stores keep time themselves (``P1Target.real_time``): correct and broken.

Each store is the toy (``tests/stores.py``) reading :func:`time.monotonic`
itself: the clock the harness injects is taken and ignored, as a store written
without this harness in mind would. The targets declare ``real_time=True`` and
a short real TTL (:data:`REAL_TTL`), so the time-driven criteria wait for real.

Builders are ``root -> P1Target``, module-level, as ``write_target_module`` needs.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_quantum_p1 import Clock, P1Target, PolicyStore
from tests import stores
from tests.plugin.broken_targets import _with_store

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "REAL_TTL",
    "KeepsItsOwnTime",
    "clockless_toy_caching_forever",
    "clockless_toy_expiring_too_soon",
    "clockless_toy_with_a_long_ttl",
    "clockless_toy_with_counters",
]

#: The real seconds the stores keep an entry, and what their targets declare.
REAL_TTL = 0.2


class KeepsItsOwnTime(stores.CountsInADict):
    """The correct toy, counting hits and misses, on the machine's clock instead of the harness's."""

    #: The real seconds it keeps an entry (a broken variant keeps it less than it declares).
    real_ttl = REAL_TTL

    def __init__(self, redis: Any, clock: Clock) -> None:
        # The injected clock is ignored: this store cannot take one.
        super().__init__(redis, time.monotonic, ttl=self.real_ttl)


class CachesForeverOnItsOwnTime(KeepsItsOwnTime):
    """Never expires an entry: a lost invalidation is never healed."""

    honours_ttl = False


class ExpiresTooSoon(KeepsItsOwnTime):
    """Keeps entries a hundredth of the TTL it declares: few reads are hits."""

    real_ttl = REAL_TTL / 100


def _counters(store: Any) -> tuple[int, int]:
    return store.counters["cache_hit"], store.counters["cache_miss"]


def _real_time(store_class: type[KeepsItsOwnTime]) -> P1Target:
    def factory(redis: Redis, clock: Clock) -> PolicyStore:
        return store_class(redis, clock)

    return dataclasses.replace(
        _with_store(factory), policy_ttl=REAL_TTL, real_time=True, cache_counters=_counters
    )


def clockless_toy_with_counters(root: Path) -> P1Target:
    """Correct: keeps time itself, declared ``real_time`` with a 0.2 s TTL; counters declared."""
    return _real_time(KeepsItsOwnTime)


def clockless_toy_caching_forever(root: Path) -> P1Target:
    """Broken for ``P1-2.ttl``: keeps time itself, and its entries never expire."""
    return _real_time(CachesForeverOnItsOwnTime)


def clockless_toy_expiring_too_soon(root: Path) -> P1Target:
    """Broken for ``P1-2.hit-rate``: its entries last a hundredth of the declared TTL."""
    return _real_time(ExpiresTooSoon)


def clockless_toy_with_a_long_ttl(root: Path) -> P1Target:
    """A setting to fix: real time with its production TTL (10 s); raises ``TargetError``."""
    return dataclasses.replace(_real_time(KeepsItsOwnTime), policy_ttl=10.0)
