"""The backend's health report (the seed's ``curl /health`` after maintenance).

One coroutine gathers what an operator checks after the P1 window: the event
bus, Redis, the policy cache's invalidation link and the v2 node statuses. It
never raises because something is down: being down is what it reports.

The store and engine are taken structurally (see :class:`CacheView` and
:class:`NodeStatusView`) so this module imports neither the policy store nor,
above all, the deprecated v2 engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_PING_TIMEOUT",
    "BusView",
    "CacheStatsView",
    "CacheView",
    "NodeStatusView",
    "health",
]

#: Seconds to wait for Redis to answer PING before calling it down.
DEFAULT_PING_TIMEOUT: Final = 0.5


class BusView(Protocol):
    """What the report reads from the event bus."""

    @property
    def catalogue(self) -> Mapping[str, object]:
        """The known event names."""

    def subscribers(self, name: str) -> int:
        """How many handlers listen to ``name``."""


class CacheStatsView(Protocol):
    """The policy store's cache counters."""

    @property
    def hits(self) -> int:
        """Reads served from the cache."""

    @property
    def misses(self) -> int:
        """Reads that went to storage."""

    @property
    def invalidations(self) -> int:
        """Cache entries dropped on invalidation."""

    @property
    def rejected_messages(self) -> int:
        """Invalidation messages that were not valid policy names."""

    @property
    def reconnects(self) -> int:
        """Times the invalidation link was re-established."""

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``."""


class CacheView(Protocol):
    """What the report reads from a policy store."""

    @property
    def stats(self) -> CacheStatsView:
        """The cache counters."""

    @property
    def link_up(self) -> bool:
        """Whether invalidation messages can currently arrive."""


class NodeStatusView(Protocol):
    """What the report reads from the federation engine."""

    @property
    def node_statuses(self) -> Mapping[str, str]:
        """Last known status of each node."""


async def _ping(redis: Redis, limit: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit):
            await redis.ping()
    except TimeoutError:
        return {"ok": False, "error": f"no answer to PING within {limit:g}s"}
    except (RedisError, OSError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


async def health(
    bus: BusView,
    redis: Redis,
    *,
    store: CacheView | None = None,
    engine: NodeStatusView | None = None,
    ping_timeout: float = DEFAULT_PING_TIMEOUT,
) -> dict[str, Any]:
    """Report on the backend; ``status`` is ``"ok"`` or ``"degraded"``.

    ``status`` is ``"ok"`` only when Redis answers PING within ``ping_timeout``
    seconds and, when a ``store`` is given, its invalidation link is up: a
    store without its link may serve stale policies. v2 node statuses are
    reported but do not degrade the backend, since v2 is legacy.
    """
    names = list(bus.catalogue)
    report: dict[str, Any] = {
        "status": "ok",
        "bus": {
            "events": len(names),
            "subscribers": sum(bus.subscribers(name) for name in names),
        },
        "redis": await _ping(redis, ping_timeout),
    }
    healthy = bool(report["redis"]["ok"])
    if store is not None:
        stats = store.stats
        report["cache"] = {
            "hits": stats.hits,
            "misses": stats.misses,
            "invalidations": stats.invalidations,
            "rejected_messages": stats.rejected_messages,
            "reconnects": stats.reconnects,
            "hit_rate": stats.hit_rate,
            "link_up": store.link_up,
        }
        healthy = healthy and store.link_up
    if engine is not None:
        report["federation"] = {"node_statuses": dict(engine.node_statuses)}
    report["status"] = "ok" if healthy else "degraded"
    return report
