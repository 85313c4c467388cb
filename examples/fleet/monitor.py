"""Production monitoring: one JSON line per monitored event on the ``fleet.monitor`` logger.

The log shipper parses each line as ``{"event": name, "payload": {...}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

__all__ = ["LOGGER_NAME", "attach"]

LOGGER_NAME = "fleet.monitor"
_log = logging.getLogger(LOGGER_NAME)


def _line_for(event: str) -> Callable[[dict[str, Any]], None]:
    def log_line(payload: dict[str, Any]) -> None:
        # default=str: a payload value JSON cannot hold must not cost the line.
        _log.info(json.dumps({"event": event, "payload": payload}, default=str))

    return log_line


def attach(bus: AsyncIOEventEmitter, events: Iterable[str]) -> None:
    """Log every publish of ``events`` on ``bus``, before any later subscriber runs."""
    for event in events:
        bus.on(event, _line_for(event))
