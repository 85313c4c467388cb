"""The safety governor: the risk level every trading decision is checked against."""

from __future__ import annotations

import logging

from pyee.asyncio import AsyncIOEventEmitter

from fleet.events import utc_now

__all__ = ["Governor"]

_log = logging.getLogger(__name__)


class Governor:
    """Holds the safety level (1 lax .. 5 halt) and announces each change."""

    def __init__(self, bus: AsyncIOEventEmitter, level: int = 1) -> None:
        self._bus = bus
        self.level = level

    async def set_level(self, level: int, reason: str = "manual_override") -> None:
        """Move to ``level`` and publish ``safety.governor.level_changed``."""
        if not 1 <= level <= 5:
            raise ValueError(f"safety level must be 1..5, got {level}")
        old = self.level
        self.level = level
        self._bus.emit(
            "safety.governor.level_changed",
            {"old_level": old, "new_level": level, "reason": reason, "timestamp": utc_now()},
        )
        _log.info("safety level %s -> %s (%s)", old, level, reason)
