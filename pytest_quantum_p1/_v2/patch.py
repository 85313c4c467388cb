"""One recording ``__new__`` per watched class, shared by every guard, and the class given back.

:func:`attach` installs on a class a ``__new__`` that calls each attached
recorder with the constructing frame, then does exactly what the class did
before; :func:`detach` removes a recorder, and the last one gives the class
back what it had. ``__init__`` is never touched, so a ``DeprecationWarning``
it raises with ``stacklevel=2`` still names the caller's line. Standard
library only.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import FrameType, FunctionType
from typing import Any, Final

__all__ = ["Recorder", "attach", "detach"]

#: Called with the class being constructed (a subclass, possibly) and the
#: frame of the code constructing it, before the construction runs.
Recorder = Callable[[type, FrameType], None]


class _NewWrapper:
    """The ``__new__`` installed on a watched class: records, then does what was there."""

    __slots__ = ("__wrapped__", "patch")

    def __init__(self, patch: _Patch, wrapped: Any) -> None:
        self.patch = patch
        if wrapped is not None:
            # Lets inspect.signature(cls) keep showing the real parameters.
            self.__wrapped__ = wrapped

    def __call__(self, klass: type[Any], /, *args: Any, **kwargs: Any) -> Any:
        patch = self.patch
        recorders = patch.recorders
        if recorders:
            # Called from C (type.__call__), so frame 1 is the line constructing.
            frame = sys._getframe(1)
            try:
                for record in recorders:
                    record(klass, frame)
            finally:
                del frame
        return patch.call_original(klass, args, kwargs)


def _own_new(cls: type) -> object:
    """The ``__new__`` that ``cls`` defined itself, seen through any installed wrapper."""
    attribute = cls.__dict__.get("__new__", _MISSING)
    if isinstance(attribute, staticmethod) and isinstance(attribute.__func__, _NewWrapper):
        return attribute.__func__.patch.saved
    return attribute


class _Patch:
    """The one ``__new__`` wrapper installed on a class, shared by the guards watching it.

    One wrapper per class, however many guards, so that guards can stop in any
    order and the class gets back exactly what the first guard found.
    """

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.saved: Any = cls.__dict__.get("__new__", _MISSING)
        self.recorders: tuple[Recorder, ...] = ()
        # CPython cannot give a class back its object.__new__ once __new__ was
        # set on it: deleting the attribute leaves the type slot behind, and
        # every later construction with arguments fails (bpo-25731, gh-105888).
        # Such a class keeps the wrapper, inert, for good.
        self.restorable = self.saved is not _MISSING or self.following(cls) is not object.__new__
        if self.saved is not _MISSING:
            wrapped = getattr(self.saved, "__func__", self.saved)
        else:
            init = cls.__dict__.get("__init__")
            wrapped = init if isinstance(init, FunctionType) else None
        self.installed = staticmethod(_NewWrapper(self, wrapped))

    def call_original(self, klass: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.saved is not _MISSING:
            return self.saved.__get__(None, klass)(klass, *args, **kwargs)
        following = self.following(klass)
        if following is not object.__new__:
            return following(klass, *args, **kwargs)
        if args or kwargs:
            # object.__new__ rejects arguments whenever __new__ is overridden, as
            # it now is; reproduce the checks it made before the patch instead.
            mro = klass.__mro__
            if any(_own_new(base) is not _MISSING for base in mro[: mro.index(self.cls)]):
                raise TypeError(
                    "object.__new__() takes exactly one argument (the type to instantiate)"
                )
            if klass.__init__ is object.__init__:
                raise TypeError(f"{klass.__name__}() takes no arguments")
        return object.__new__(klass)

    def following(self, klass: type) -> Any:
        """What ``super(cls, klass).__new__`` finds: the next own ``__new__`` in the MRO."""
        mro = klass.__mro__
        for base in mro[mro.index(self.cls) + 1 :]:
            if "__new__" in base.__dict__:
                return base.__new__
        return object.__new__

    def install(self) -> None:
        # setattr, not the class dict: it also refreshes the type's tp_new slot.
        type.__setattr__(self.cls, "__new__", self.installed)

    def uninstall(self) -> bool:
        """Give the class back what it had; False when the inert wrapper must stay."""
        if self.cls.__dict__.get("__new__") is not self.installed:
            # Someone patched over us and will restore our wrapper later; left
            # in place with no recorders, it only passes calls through.
            return True
        if not self.restorable:
            return False
        if self.saved is _MISSING:
            type.__delattr__(self.cls, "__new__")
        else:
            type.__setattr__(self.cls, "__new__", self.saved)
        return True


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()
_PATCHES: dict[type, _Patch] = {}
_PATCHES_LOCK = threading.Lock()


def attach(cls: type, recorder: Recorder) -> None:
    """Call ``recorder`` on every construction of ``cls`` (and its subclasses) from now on."""
    with _PATCHES_LOCK:
        patch = _PATCHES.get(cls)
        if patch is None:
            patch = _Patch(cls)
            patch.install()
            _PATCHES[cls] = patch
        patch.recorders = (*patch.recorders, recorder)


def detach(cls: type, recorder: Recorder) -> None:
    """Undo :func:`attach` (``recorder`` must be the same object); the last one restores ``cls``.

    One exception, forced by CPython (gh-105888): a class whose ``__new__`` was
    ``object.__new__`` keeps an inert wrapper that records nothing and behaves
    exactly as ``object.__new__`` did; the next :func:`attach` reuses it.
    """
    with _PATCHES_LOCK:
        patch = _PATCHES.get(cls)
        if patch is None:
            return
        patch.recorders = tuple(r for r in patch.recorders if r is not recorder)
        # An inert wrapper stays registered, so the next guard reuses it
        # instead of wrapping it again.
        if not patch.recorders and patch.uninstall():
            del _PATCHES[cls]
