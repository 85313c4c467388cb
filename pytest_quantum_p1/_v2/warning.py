"""Where a construction's ``warnings.warn`` calls sit, so a misplaced warning gets the right advice.

:func:`construct_traced` constructs a class and records, for every
``warnings.warn`` call made meanwhile on this thread, the frames from the one
calling ``warn`` out to the line constructing the class (and a few above).
A warning's ``stacklevel`` names one of those frames: :meth:`WarnCall.level_of`
says which, and :attr:`WarnCall.needed` which one names the constructing line.
So the advice can say "stacklevel=1 names a line inside the engine; pass 3"
instead of guessing "pass stacklevel=2". Standard library only.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

__all__ = ["Traced", "WarnCall", "construct_traced"]

#: Frames kept above the constructing line: enough to tell "too high by n".
_ABOVE: Final = 8
#: ``warnings.warn``: the C function, or the Python one when ``_warnings`` is missing.
_WARN: Final = warnings.warn
_WARN_CODE: Final = getattr(_WARN, "__code__", None)


@dataclass(frozen=True)
class WarnCall:
    """One ``warnings.warn`` call made while the class was being constructed."""

    #: ``(filename, line)`` of the frame calling ``warn`` (``stacklevel=1``), then
    #: each frame further out (``stacklevel=2``, ...), past the constructing line.
    frames: tuple[tuple[str, int], ...]
    #: The ``stacklevel`` that names the constructing line.
    needed: int

    def level_of(self, filename: str, lineno: int) -> int | None:
        """The ``stacklevel`` whose frame is ``filename:lineno``, or ``None``."""
        for level, frame in enumerate(self.frames, 1):
            if frame == (filename, lineno):
                return level
        return None


@dataclass(frozen=True)
class Traced:
    """What :func:`construct_traced` saw."""

    #: ``(filename, line)`` of the line that constructed the class.
    site: tuple[str, int]
    #: The ``warnings.warn`` calls made during the construction, in order.
    calls: tuple[WarnCall, ...]


def construct_traced(cls: type[Any]) -> Traced:
    """Construct ``cls()`` once, recording where each ``warnings.warn`` call sits.

    Only this thread is traced (a profile function, restored afterwards).
    Warnings themselves are left to the caller's filters and recorders.
    """
    here = sys._getframe()
    calls: list[WarnCall] = []

    def record(caller: FrameType | None) -> None:
        frames: list[tuple[str, int]] = []
        needed = 0
        above = 0
        while caller is not None and above <= _ABOVE:
            frames.append((caller.f_code.co_filename, caller.f_lineno))
            if caller is here:
                needed = len(frames)
            elif needed:
                above += 1
            caller = caller.f_back
        if needed:  # a warn call of this construction, not of a profiled bystander
            calls.append(WarnCall(tuple(frames), needed))

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and arg is _WARN:
            record(frame)
        elif event == "call" and _WARN_CODE is not None and frame.f_code is _WARN_CODE:
            record(frame.f_back)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        line = sys._getframe().f_lineno + 1
        cls()  # the constructing line: keep it right after the one above
    finally:
        sys.setprofile(previous)
    return Traced((here.f_code.co_filename, line), tuple(calls))
