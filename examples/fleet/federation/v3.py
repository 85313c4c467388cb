"""Federation v3 (primary): rounds coordinated over the event bus."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

from fleet.events import utc_now

__all__ = ["FederationV3"]


class FederationV3:
    """Runs federation rounds and announces each completed one."""

    def __init__(self, bus: AsyncIOEventEmitter) -> None:
        self._bus = bus
        self.rounds = 0

    def complete_round(self, weights: Mapping[str, Any]) -> None:
        """Publish ``federation.round.completed`` for the round just aggregated."""
        self.rounds += 1
        self._bus.emit(
            "federation.round.completed",
            {"round": self.rounds, "weights": dict(weights), "timestamp": utc_now()},
        )
