"""The v2 bridge: relays v3 round results to the remaining v2 nodes.

The only module allowed to use ``fleet.legacy.fedv2``.
"""

from __future__ import annotations

from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

from fleet.legacy.fedv2 import FedV2Engine

__all__ = ["V2Bridge"]


class V2Bridge:
    """Owns the v2 engine; while started, forwards ``federation.round.completed`` to v2 nodes."""

    def __init__(self, bus: AsyncIOEventEmitter, cluster: str = "fleet-v2") -> None:
        self._bus = bus
        self.engine = FedV2Engine(bus, cluster=cluster)

    async def _relay(self, payload: dict[str, Any]) -> None:
        await self.engine.broadcast({"type": "round", "payload": payload})

    def start(self) -> None:
        """Begin relaying."""
        self._bus.on("federation.round.completed", self._relay)

    def stop(self) -> None:
        """Stop relaying."""
        self._bus.remove_listener("federation.round.completed", self._relay)
