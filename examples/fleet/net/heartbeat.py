"""Liveness heartbeats of this process, for the load balancer.

Not related to the removed federation v2 heartbeat: this is live code.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Heartbeat"]


class Heartbeat:
    """Tells whether this process has beaten within ``interval`` seconds times ``misses``."""

    def __init__(
        self, interval: float = 5.0, misses: int = 3, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._misses = misses
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        """Record a beat now."""
        self._last = self._clock()

    def alive(self) -> bool:
        """Whether the last beat is recent enough."""
        return self._clock() - self._last <= self._interval * self._misses
