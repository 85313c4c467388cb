"""Where a construction's ``warnings.warn`` calls sit, so a misplaced warning gets the right advice.

:func:`construct_traced` constructs a class and records, for every
``warnings.warn`` call made meanwhile on this thread, the frames from the one
calling ``warn`` out to the line constructing the class (and a few above).
A warning's ``stacklevel`` names one of those frames: :meth:`WarnCall.level_of`
says which, and :attr:`WarnCall.needed` which one names the constructing line.
So the advice can say "stacklevel=1 names a line inside the engine; pass 3"
instead of guessing "pass stacklevel=2". Given the adapter's factory (an engine
that needs arguments), the constructing line is the one in the factory that
calls the class: found by watching for the call of the class's own
``__new__``, ``__init__`` or metaclass ``__call__``. Standard library only.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

__all__ = ["ConstructionNotSeen", "Traced", "WarnCall", "construct_traced"]

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


class ConstructionNotSeen(LookupError):
    """The factory returned without calling the class (a cached instance, another class)."""


#: The methods whose call means "the class is being called": the first frame of one
#: of them, on the class or an instance of it, has the constructing line as its caller.
_CONSTRUCTING: Final = frozenset({"__new__", "__init__", "__call__"})


def _constructs(frame: FrameType, cls: type[Any]) -> bool:
    code = frame.f_code
    if code.co_name not in _CONSTRUCTING or not code.co_argcount:
        return False
    first = frame.f_locals.get(code.co_varnames[0])
    if code.co_name == "__init__":
        return isinstance(first, cls)
    # __new__ gets the class; a metaclass's __call__ gets it too.
    return isinstance(first, type) and issubclass(first, cls)


def construct_traced(cls: type[Any], factory: Callable[[], object] | None = None) -> Traced:
    """Construct ``cls`` once, recording where each ``warnings.warn`` call sits.

    ``factory`` (the adapter's ``V2Rules.engine_factory``) builds it when
    given, else ``cls()``; the constructing line is then the factory's line
    that called ``cls`` (:class:`ConstructionNotSeen` when none did). What the
    factory raises propagates. Only this thread is traced (a profile function,
    restored afterwards). Warnings themselves are left to the caller's
    filters and recorders.
    """
    here = sys._getframe()
    calls: list[WarnCall] = []
    # The frame of the constructing line (this one, or the factory's), and that
    # line, read when the class is called: the factory's frame moves on after.
    site: list[FrameType] = [] if factory is not None else [here]
    seen_at: list[tuple[str, int]] = []

    def record(caller: FrameType | None) -> None:
        if not site:
            return
        target = site[0]
        frames: list[tuple[str, int]] = []
        needed = 0
        above = 0
        while caller is not None and above <= _ABOVE:
            frames.append((caller.f_code.co_filename, caller.f_lineno))
            if caller is target:
                needed = len(frames)
            elif needed:
                above += 1
            caller = caller.f_back
        if needed:  # a warn call of this construction, not of a profiled bystander
            calls.append(WarnCall(tuple(frames), needed))

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and arg is _WARN:
            record(frame)
        elif event == "call":
            if _WARN_CODE is not None and frame.f_code is _WARN_CODE:
                record(frame.f_back)
            elif not site and frame.f_back is not None and _constructs(frame, cls):
                site.append(frame.f_back)
                seen_at.append((frame.f_back.f_code.co_filename, frame.f_back.f_lineno))

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        line = sys._getframe().f_lineno + 1
        cls() if factory is None else factory()  # the constructing line: right after the above
        where = (here.f_code.co_filename, line) if factory is None else next(iter(seen_at), None)
    finally:
        sys.setprofile(previous)
    if where is None:
        raise ConstructionNotSeen(cls.__qualname__)
    return Traced(where, tuple(calls))
