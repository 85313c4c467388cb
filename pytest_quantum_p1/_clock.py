"""A virtual monotonic clock, so TTLs are driven by the test instead of by sleeping."""

from __future__ import annotations

import math
import threading

from pytest_quantum_p1 import _messages

__all__ = ["VirtualClock"]


class VirtualClock:
    """A monotonic clock in seconds that only moves when told to.

    Call it like :func:`time.monotonic`; inject it wherever a store takes a
    ``clock``. It starts at ``start`` (not zero, so code that treats ``0.0`` as
    "never" is not fooled) and moves forward with :meth:`advance`. Reads and
    advances are serialised by a lock: a store running on a portal thread and a
    test advancing time from the main thread see consistent values.
    """

    def __init__(self, start: float = 1000.0) -> None:
        if not math.isfinite(start):
            raise ValueError(_messages.CLOCK_BAD_START.format(start=start))
        self._lock = threading.Lock()
        self._now = float(start)

    def __call__(self) -> float:
        """The current virtual time, in seconds."""
        with self._lock:
            return self._now

    @property
    def now(self) -> float:
        """The current virtual time, in seconds (same as calling the clock)."""
        return self()

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time.

        Raises :class:`ValueError` for a negative or non-finite step: a monotonic
        clock never goes back, and stores may rely on that.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(_messages.CLOCK_BACKWARDS.format(seconds=seconds))
        with self._lock:
            self._now += seconds
            return self._now

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now!r})"
