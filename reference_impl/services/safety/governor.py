"""The safety governor's level, with ``safety.governor.level_changed`` on every change (P1-1).

Levels are integers in ``[min_level, max_level]``; higher is stricter, and the
governor starts at ``min_level`` (normal operation) unless told otherwise.
Every real change is published with the reason for it, so a transition is
never visible only to whoever made it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final, TypeGuard

from reference_impl.core.event_bus import EventBus, get_event_bus
from reference_impl.errors import InvalidReasonError, InvalidSafetyLevelError

__all__ = [
    "DEFAULT_REASON",
    "LEVEL_CHANGED",
    "InvalidReasonError",
    "SafetyGovernor",
]

logger = logging.getLogger(__name__)

#: The event published after every level change.
LEVEL_CHANGED: Final = "safety.governor.level_changed"
#: The reason recorded when the caller gives none (the seed's only reason).
DEFAULT_REASON: Final = "manual_override"


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass, but True is no safety level.
    return isinstance(value, int) and not isinstance(value, bool)


class SafetyGovernor:
    """Holds the safety level and announces its changes."""

    def __init__(
        self,
        bus: EventBus | None = None,
        *,
        level: int | None = None,
        min_level: int = 0,
        max_level: int = 5,
    ) -> None:
        if not (_is_int(min_level) and _is_int(max_level)) or min_level > max_level:
            raise InvalidSafetyLevelError(
                f"invalid safety level range [{min_level!r}, {max_level!r}]; "
                "need two ints with min_level <= max_level"
            )
        self._bus = get_event_bus() if bus is None else bus
        self._min = int(min_level)
        self._max = int(max_level)
        self._level = self._check_level(self._min if level is None else level)

    @property
    def current_level(self) -> int:
        """The level in force now."""
        return self._level

    @property
    def level_range(self) -> tuple[int, int]:
        """The lowest and highest valid level, inclusive."""
        return self._min, self._max

    def _check_level(self, level: object) -> int:
        if _is_int(level) and self._min <= level <= self._max:
            # int() turns an IntEnum member into the plain int the payload carries.
            return int(level)
        raise InvalidSafetyLevelError(
            f"invalid safety level {level!r}; must be an int from {self._min} to {self._max}"
        )

    async def set_safety_level(self, level: int, reason: str = DEFAULT_REASON) -> None:
        """Switch to ``level`` and publish ``safety.governor.level_changed``.

        Raises :class:`~reference_impl.errors.InvalidSafetyLevelError` (naming
        the range) or :class:`InvalidReasonError` before anything changes.
        Setting the current level again is a no-op that publishes nothing.
        """
        new_level = self._check_level(level)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidReasonError(f"reason must be a non-empty str, got {reason!r}")
        old_level = self._level
        if new_level == old_level:
            return
        # The state changes before the publish so subscribers that read
        # current_level see the level the event announces.
        self._level = new_level
        await self._bus.publish(
            LEVEL_CHANGED,
            {
                "old_level": old_level,
                "new_level": new_level,
                "reason": reason,
                "timestamp": datetime.now(UTC).isoformat(),
            },
        )
        logger.info("Safety level changed: %s → %s (%s)", old_level, new_level, reason)
