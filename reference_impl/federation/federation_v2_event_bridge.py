"""The v2 bridge: relays Federation v3 events to the v2 nodes still in the field.

This is the only module in the backend that may import or construct the
deprecated :class:`~reference_impl.federation.federated_engine_v2.FederatedEngineV2`
(P1-3). Constructing the engine here emits its :class:`DeprecationWarning` on
purpose: the warning marks the one sanctioned use.

Log lines say ``federation_v2_event_bridge`` and ``broadcast_to_v2_nodes`` so
the seed's runbook greps find the relaying activity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from reference_impl.core.event_bus import EventBus, get_event_bus
from reference_impl.federation.federated_engine_v2 import FederatedEngineV2

__all__ = ["RELAYED_EVENTS", "FederationV2EventBridge"]

logger = logging.getLogger(__name__)

#: The v3 events v2 nodes still need to hear about.
RELAYED_EVENTS: Final[tuple[str, ...]] = (
    "federation.round.started",
    "federation.round.completed",
)


class FederationV2EventBridge:
    """Subscribes to the v3 federation events and broadcasts each to the v2 nodes."""

    def __init__(
        self, bus: EventBus | None = None, engine: FederatedEngineV2 | None = None
    ) -> None:
        self._bus = get_event_bus() if bus is None else bus
        self._engine = FederatedEngineV2(self._bus) if engine is None else engine
        self._running = False

    @property
    def engine(self) -> FederatedEngineV2:
        """The v2 engine the bridge broadcasts through (register v2 nodes on it)."""
        return self._engine

    @property
    def running(self) -> bool:
        """Whether the bridge is subscribed to the v3 events."""
        return self._running

    def start(self) -> None:
        """Start relaying; calling it again while running does nothing."""
        if self._running:
            return
        for name in RELAYED_EVENTS:
            self._bus.subscribe(name, self._relay)
        self._running = True
        logger.info("federation_v2_event_bridge: relaying %s", ", ".join(RELAYED_EVENTS))

    def stop(self) -> None:
        """Stop relaying; calling it when stopped does nothing."""
        if not self._running:
            return
        for name in RELAYED_EVENTS:
            self._bus.unsubscribe(name, self._relay)
        self._running = False
        logger.info("federation_v2_event_bridge: stopped")

    async def _relay(self, name: str, payload: Mapping[str, Any]) -> None:
        delivered = await self._engine.broadcast_to_v2_nodes(name, payload)
        logger.info(
            "federation_v2_event_bridge: relayed %s via broadcast_to_v2_nodes to %d v2 node(s)",
            name,
            delivered,
        )
