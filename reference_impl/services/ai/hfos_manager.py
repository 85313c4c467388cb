"""HedgeFundOS operating mode, with ``ai.hfos.mode_changed`` on every transition (P1-1).

The mode says how much risk the AI trading OS may take. Changing it is an
operator decision that other services react to, so every real transition is
published on the event bus; asking for the current mode again is not a
transition and publishes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

from reference_impl.core.event_bus import EventBus, get_event_bus
from reference_impl.errors import InvalidModeError

__all__ = ["DEFAULT_MODE", "MODES", "MODE_CHANGED", "HedgeFundOSManager"]

logger = logging.getLogger(__name__)

#: The modes HedgeFundOS can run in: ``aggressive`` widens the risk limits of
#: ``normal``, ``defensive`` narrows them, ``shutdown`` opens no new positions.
MODES: Final[tuple[str, ...]] = ("normal", "defensive", "aggressive", "shutdown")
DEFAULT_MODE: Final = "normal"
#: The event published after every mode transition.
MODE_CHANGED: Final = "ai.hfos.mode_changed"


def _check_mode(mode: object) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidModeError(
            f"invalid HedgeFundOS mode {mode!r}; valid modes: {', '.join(MODES)}"
        )
    return mode


class HedgeFundOSManager:
    """Holds the HedgeFundOS mode and announces its transitions."""

    def __init__(self, bus: EventBus | None = None, *, mode: str = DEFAULT_MODE) -> None:
        self._bus = get_event_bus() if bus is None else bus
        self._mode = _check_mode(mode)

    @property
    def current_mode(self) -> str:
        """The mode HedgeFundOS runs in now."""
        return self._mode

    async def set_mode(self, mode: str) -> None:
        """Switch to ``mode`` and publish ``ai.hfos.mode_changed``.

        Raises :class:`~reference_impl.errors.InvalidModeError` (naming the
        valid modes) before anything changes. Setting the current mode again is
        a no-op that publishes nothing.
        """
        new_mode = _check_mode(mode)
        old_mode = self._mode
        if new_mode == old_mode:
            return
        # The state changes before the publish so subscribers that read
        # current_mode see the mode the event announces.
        self._mode = new_mode
        await self._bus.publish(
            MODE_CHANGED,
            {
                "old_mode": old_mode,
                "new_mode": new_mode,
                "timestamp": datetime.now(UTC).isoformat(),
            },
        )
        logger.info("HedgeFundOS mode changed: %s → %s", old_mode, new_mode)
