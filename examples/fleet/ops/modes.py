"""The HedgeFundOS operating mode, as a plain synchronous service.

Callers are request handlers and cron jobs that are not async; the bus
delivers to async subscribers on the running loop.
"""

from __future__ import annotations

import logging

from pyee.asyncio import AsyncIOEventEmitter

from fleet.events import utc_now

__all__ = ["ModeService"]

_log = logging.getLogger(__name__)


class ModeService:
    """Holds the current mode and announces each change on the bus."""

    def __init__(self, bus: AsyncIOEventEmitter, mode: str = "normal") -> None:
        self._bus = bus
        self.mode = mode

    def set_mode(self, mode: str) -> None:
        """Switch to ``mode`` and publish ``ai.hfos.mode_changed``."""
        old = self.mode
        self.mode = mode
        self._bus.emit(
            "ai.hfos.mode_changed", {"old_mode": old, "new_mode": mode, "timestamp": utc_now()}
        )
        _log.info("mode %s -> %s", old, mode)
