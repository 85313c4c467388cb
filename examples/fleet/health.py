"""Readiness: is this process able to serve (Redis reachable, bus up)?"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from pyee.asyncio import AsyncIOEventEmitter

__all__ = ["readiness"]


class _Pingable(Protocol):
    def ping(self) -> Awaitable[Any]: ...


async def readiness(bus: AsyncIOEventEmitter, redis: _Pingable) -> dict[str, Any]:
    """``{"status": "ok"}`` when Redis answers a ping; ``"degraded"`` with the error otherwise."""
    report: dict[str, Any] = {"bus_events": len(bus.event_names())}
    try:
        await redis.ping()
    except Exception as exc:  # any failure to reach Redis means not ready
        return {**report, "status": "degraded", "redis": f"{type(exc).__name__}: {exc}"}
    return {**report, "status": "ok", "redis": "ok"}
