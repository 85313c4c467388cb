"""The process-wide event bus: a pyee ``AsyncIOEventEmitter``.

Handlers are registered with ``bus.on(name, handler)`` and receive only the
payload (a dict); async handlers are scheduled on the running loop. A handler
that raises never reaches the publisher or the other handlers: pyee turns it
into an ``error`` event, which :func:`new_bus` logs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

from pyee.asyncio import AsyncIOEventEmitter

from fleet import monitor

__all__ = ["EVENTS", "MONITORED", "get_bus", "new_bus", "utc_now"]

#: Every event the backend publishes, with what it means.
EVENTS: Final[dict[str, str]] = {
    "model.promoted": "a model was promoted to production",
    "model.rollback": "a model promotion was rolled back",
    "federation.round.completed": "a v3 federation round finished",
    "ai.hfos.mode_changed": "HedgeFundOS mode transition",
    "safety.governor.level_changed": "safety level adjustment",
    "model.shadow_test.completed": "shadow test result",
    "federation.node.status_changed": "federation node health",
}

#: Events production monitoring logs, one JSON line each.
MONITORED: Final[tuple[str, ...]] = (
    "ai.hfos.mode_changed",
    "safety.governor.level_changed",
    "model.shadow_test.completed",
    "federation.node.status_changed",
)

_log = logging.getLogger("fleet.events")
_bus: AsyncIOEventEmitter | None = None


def utc_now() -> str:
    """The current time as ISO-8601 UTC, the timestamp every event carries."""
    return datetime.now(UTC).isoformat()


def _handler_failed(error: Exception) -> None:
    # A broken subscriber is a bug to see in the logs, never a failed publish.
    _log.error("event handler failed: %r", error, exc_info=error)


def new_bus() -> AsyncIOEventEmitter:
    """A bus with monitoring attached and failing handlers logged."""
    bus = AsyncIOEventEmitter()
    bus.on("error", _handler_failed)
    monitor.attach(bus, MONITORED)
    return bus


def get_bus() -> AsyncIOEventEmitter:
    """The process-wide bus, created on first use."""
    global _bus
    if _bus is None:
        _bus = new_bus()
    return _bus
