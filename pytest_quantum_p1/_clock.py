"""The harness's clocks: a virtual one that moves when told, and a real one for stores that keep time.

:class:`VirtualClock` drives TTLs without sleeping, for stores that take an
injected clock. :class:`RealClock` is for a target that declares
``real_time=True`` (its store reads :func:`time.monotonic` itself): the same
interface, but ``advance`` waits for real.
"""

from __future__ import annotations

import math
import threading
import time

from pytest_quantum_p1 import _messages

__all__ = ["RealClock", "VirtualClock"]


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


class RealClock(VirtualClock):
    """:func:`time.monotonic`, with an :meth:`advance` that sleeps: for stores that keep time.

    A :class:`VirtualClock` (so wherever one is expected, this one fits) for a
    target declaring ``P1Target.real_time``: its store reads the machine's clock
    itself, so the harness cannot move that clock and waits instead. Reading
    and advancing take no lock: the machine's clock is consistent across
    threads already, and one thread sleeping must not block another's reads.
    """

    def __init__(self) -> None:
        super().__init__(start=time.monotonic())

    def __call__(self) -> float:
        """The machine's monotonic time, in seconds."""
        return time.monotonic()

    def advance(self, seconds: float) -> float:
        """Sleep ``seconds`` (real time only moves on its own) and return the time after.

        Raises :class:`ValueError` for a negative or non-finite step, like
        :meth:`VirtualClock.advance`. Not for use on an event loop's thread: it
        blocks that loop for the whole wait.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(_messages.CLOCK_BACKWARDS.format(seconds=seconds))
        # sleep() may wake early on some platforms: wait until the time has passed.
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            time.sleep(left)
        return time.monotonic()

    def __repr__(self) -> str:
        return f"RealClock(now={self.now!r})"
