"""The federation v2 engine (deprecated): node registry, node status, broadcast to v2 nodes."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

from fleet.events import utc_now

__all__ = ["FedV2Engine", "Transport"]

_log = logging.getLogger(__name__)

#: Sends one message to one v2 node.
Transport = Callable[[Mapping[str, Any]], Awaitable[None]]


class FedV2Engine:
    """Talks to the remaining v2 nodes of ``cluster``. Use it only through the bridge."""

    def __init__(self, bus: AsyncIOEventEmitter, *, cluster: str) -> None:
        warnings.warn(
            "FedV2Engine is deprecated and kept only for fleet.federation.bridge; "
            "use fleet.federation.v3 for new code.",
            DeprecationWarning,
            stacklevel=2,
        )
        self._bus = bus
        self.cluster = cluster
        self.node_status: dict[str, str] = {}
        self._nodes: dict[str, Transport] = {}

    def register_node(self, node_id: str, transport: Transport) -> None:
        """Add a v2 node reached through ``transport``."""
        self._nodes[node_id] = transport

    async def update_node_status(self, node_id: str, status: str) -> None:
        """Record ``status`` for ``node_id`` and publish ``federation.node.status_changed``."""
        old = self.node_status.get(node_id, "unknown")
        self.node_status[node_id] = status
        self._bus.emit(
            "federation.node.status_changed",
            {"node_id": node_id, "old_status": old, "new_status": status, "timestamp": utc_now()},
        )

    async def broadcast(self, message: Mapping[str, Any]) -> dict[str, bool]:
        """Send ``message`` to every node at once; a node that fails does not stop the others."""
        node_ids = list(self._nodes)
        results = await asyncio.gather(
            *(self._nodes[node_id](message) for node_id in node_ids), return_exceptions=True
        )
        delivered: dict[str, bool] = {}
        for node_id, result in zip(node_ids, results, strict=True):
            delivered[node_id] = not isinstance(result, BaseException)
            if isinstance(result, BaseException):
                _log.warning("v2 node %s unreachable: %r", node_id, result)
        return delivered
