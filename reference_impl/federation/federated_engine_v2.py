"""DEPRECATED: the Federation v2 engine, kept only so the v2 bridge can reach v2 nodes.

New code uses :mod:`reference_impl.federation.federation_v3`. The only module
allowed to import this one is
:mod:`reference_impl.federation.federation_v2_event_bridge`, which relays v3
events to the v2 nodes still in the field (P1-3). Constructing the engine
warns with :class:`DeprecationWarning` at the caller's line, so any other use
shows up where it is written.

The engine keeps what the bridge needs: the registered v2 nodes with their
transports, each node's status (changes published as
``federation.node.status_changed``, P1-1), and a broadcast that delivers one
v2 message to every node without letting a failing node stop the others.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from reference_impl.core.event_bus import EventBus, check_payload, get_event_bus
from reference_impl.errors import FederationV2Error, InvalidNodeError, InvalidNodeStatusError

__all__ = [
    "DEPRECATION_MESSAGE",
    "NODE_STATUSES",
    "NODE_STATUS_CHANGED",
    "V2_PROTOCOL",
    "FederatedEngineV2",
    "FederationV2Error",
    "InvalidNodeError",
    "InvalidNodeStatusError",
    "V2Transport",
]

logger = logging.getLogger(__name__)

DEPRECATION_MESSAGE: Final = (
    "FederatedEngineV2 is deprecated and maintained only for bridge compatibility. "
    "Use FederationV3 (EventBus-based) for new code."
)
#: Valid node statuses; a node nobody has reported on is ``unknown``.
NODE_STATUSES: Final[tuple[str, ...]] = ("online", "degraded", "offline", "unknown")
#: The event published after every node status change.
NODE_STATUS_CHANGED: Final = "federation.node.status_changed"
#: The ``protocol`` field of every message sent to a v2 node.
V2_PROTOCOL: Final = "federation.v2"

#: Delivers one v2 message to one node; raising (or timing out) marks it offline.
V2Transport = Callable[[Mapping[str, Any]], Awaitable[None]]


def _check_node_id(node_id: object) -> str:
    if not isinstance(node_id, str) or not node_id.strip():
        raise InvalidNodeError(f"node id must be a non-empty str, got {node_id!r}")
    return node_id


def _now() -> str:
    return datetime.now(UTC).isoformat()


class FederatedEngineV2:
    """Deprecated v2 engine: node registry, node statuses and v2 broadcast."""

    def __init__(self, bus: EventBus | None = None, *, delivery_timeout: float = 5.0) -> None:
        # stacklevel=2 names the line that constructs the engine, not this one.
        warnings.warn(DEPRECATION_MESSAGE, DeprecationWarning, stacklevel=2)
        if (
            isinstance(delivery_timeout, bool)
            or not isinstance(delivery_timeout, (int, float))
            or not delivery_timeout > 0
        ):
            raise FederationV2Error(
                f"delivery_timeout must be a positive number, got {delivery_timeout!r}"
            )
        self._bus = get_event_bus() if bus is None else bus
        self._delivery_timeout = float(delivery_timeout)
        self._transports: dict[str, V2Transport] = {}
        #: Last known status of each node, by node id.
        self.node_statuses: dict[str, str] = {}

    @property
    def nodes(self) -> tuple[str, ...]:
        """Ids of the registered v2 nodes, in registration order."""
        return tuple(self._transports)

    def register_node(self, node_id: str, transport: V2Transport) -> None:
        """Add a v2 node reached through ``transport``; its status starts ``unknown``.

        Raises :class:`InvalidNodeError` for an empty id, a non-callable
        transport or an id that is already registered.
        """
        node_id = _check_node_id(node_id)
        if not callable(transport):
            raise InvalidNodeError(f"transport of node {node_id!r} is not callable")
        if node_id in self._transports:
            raise InvalidNodeError(f"node {node_id!r} is already registered")
        self._transports[node_id] = transport
        self.node_statuses.setdefault(node_id, "unknown")

    async def update_node_status(self, node_id: str, status: str) -> None:
        """Record ``status`` for ``node_id`` and publish ``federation.node.status_changed``.

        Raises :class:`InvalidNodeStatusError` (naming the valid statuses) or
        :class:`InvalidNodeError` before anything changes. An unchanged status
        publishes nothing.
        """
        node_id = _check_node_id(node_id)
        if not isinstance(status, str) or status not in NODE_STATUSES:
            raise InvalidNodeStatusError(
                f"invalid node status {status!r}; valid statuses: {', '.join(NODE_STATUSES)}"
            )
        old_status = self.node_statuses.get(node_id, "unknown")
        if status == old_status:
            return
        self.node_statuses[node_id] = status
        await self._bus.publish(
            NODE_STATUS_CHANGED,
            {
                "node_id": node_id,
                "old_status": old_status,
                "new_status": status,
                "timestamp": _now(),
            },
        )
        logger.info("v2 node %s status changed: %s → %s", node_id, old_status, status)

    async def broadcast_to_v2_nodes(self, event: str, payload: Mapping[str, Any]) -> int:
        """Send ``event`` with ``payload`` to every registered node; return how many got it.

        Nodes are reached concurrently. A node whose transport raises or takes
        longer than ``delivery_timeout`` is marked ``offline`` and the others
        still get the message. Each node gets its own copy of the message:
        ``{"protocol", "event", "payload", "timestamp"}``. Raises
        :class:`FederationV2Error` for an empty event name and
        :class:`~reference_impl.errors.InvalidPayloadError` for a payload the
        bus would reject, before anything is sent.
        """
        if not isinstance(event, str) or not event:
            raise FederationV2Error(f"event must be a non-empty str, got {event!r}")
        payload = check_payload(event, payload)
        timestamp = _now()
        nodes = list(self._transports.items())
        delivered = await asyncio.gather(
            *(
                self._deliver(node_id, transport, event, payload, timestamp)
                for node_id, transport in nodes
            )
        )
        count = sum(delivered)
        logger.info(
            "broadcast_to_v2_nodes: %s delivered to %d of %d v2 node(s)", event, count, len(nodes)
        )
        return count

    async def _deliver(
        self,
        node_id: str,
        transport: V2Transport,
        event: str,
        payload: Mapping[str, Any],
        timestamp: str,
    ) -> bool:
        message = {
            "protocol": V2_PROTOCOL,
            "event": event,
            "payload": copy.deepcopy(payload),
            "timestamp": timestamp,
        }
        try:
            async with asyncio.timeout(self._delivery_timeout):
                await transport(message)
        except Exception:
            logger.warning(
                "broadcast_to_v2_nodes: node %s failed to receive %s; marking it offline",
                node_id,
                event,
                exc_info=True,
            )
            await self.update_node_status(node_id, "offline")
            return False
        return True
