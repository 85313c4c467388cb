"""The run-time P1-3 check: who constructs the v2 engine class while a :class:`V2Guard` is active.

The guard attaches a recorder to the class through :mod:`.patch` (its
``__new__``, never its ``__init__``), attributes each construction to the
first frame outside the engine's own module, and words the violations for the
user (:func:`format_runtime_violations`). :func:`engines_held_by` finds engines
built before any guard could see them (at import) that a bridge holds. :func:`load_engine_class` turns
``P1Target.v2.engine_class`` into the class, through the harness's one
``module:attr`` resolver. Imports the standard library and the harness's
texts; the resolver (which imports pytest) only when a spec needs it.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Final

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._v2.modules import bridge_list, within
from pytest_quantum_p1._v2.patch import Recorder, attach, detach

if TYPE_CHECKING:
    from pytest_quantum_p1._target import V2Rules

__all__ = [
    "V2Construction",
    "V2Guard",
    "engines_held_by",
    "format_runtime_violations",
    "load_engine_class",
]


@dataclass(frozen=True)
class V2Construction:
    """One construction of the watched v2 engine, and who did it."""

    #: ``__name__`` of the module whose code constructed the engine.
    caller_module: str
    filename: str
    lineno: int
    #: The caller is one of the bridge modules.
    allowed: bool
    #: ``__qualname__`` of the class constructed (a subclass, possibly).
    engine: str = ""

    def __str__(self) -> str:
        return _messages.V2_CONSTRUCTION.format(
            filename=self.filename, lineno=self.lineno, caller=self.caller_module
        )


# Frames of these modules are machinery, never the caller that matters: this
# package (the patch's nested wrappers) and the import system (engines built
# at import time).
_MACHINERY: Final = (
    __name__.rpartition(".")[0],
    "importlib._bootstrap",
    "importlib._bootstrap_external",
)
_UNKNOWN: Final = "<unknown>"


def load_engine_class(spec: str) -> type:
    """The class ``spec`` (``"module:Class"``, as in ``P1Target.v2.engine_class``) names.

    Raises :class:`~pytest_quantum_p1._target.TargetError` when it names
    nothing, :class:`TypeError` when it names something else than a class.
    """
    # Imported here: _target imports pytest, which a guard given the class
    # itself, or a scan, never needs.
    from pytest_quantum_p1._target import resolve

    obj = resolve(spec)
    if not isinstance(obj, type):
        raise TypeError(_messages.V2_ENGINE_NOT_A_CLASS.format(spec=spec, kind=type(obj).__name__))
    return obj


class V2Guard:
    """Records every construction of the v2 engine class, and who made it, while active.

    Use as a context manager or with :meth:`start` / :meth:`stop`::

        with V2Guard("pkg.federated_engine_v2:FederatedEngineV2", ["pkg.bridge"]) as guard:
            run_the_app()
        assert not guard.violations, guard.format_violations()

    The class's ``__new__`` is wrapped (see :mod:`.patch`; ``__init__`` is
    left alone so that a ``DeprecationWarning`` it raises with ``stacklevel=2``
    still names the caller's line). Patching the class object itself catches
    every reference to it, including ``from m import Cls`` done before the
    guard started, and every subclass that does not bypass ``__new__``. The
    caller is the first frame outside the engine's own module, so a factory in
    the engine's module is attributed to whoever called the factory, and code
    that reaches the class through a re-export (``from bridge import Engine``)
    is the caller, not the module it imported the name from. When a v2 module
    named is a package holding the engine (``legacy.fedv2`` for
    ``legacy.fedv2.engine``), that whole package is the engine's own: a helper
    of the package called by the bridge is the bridge constructing. Any other
    module, another v2 module included, that constructs the engine is the
    caller itself: only the bridge modules (packages: with their submodules) may.

    Guards are re-entrant (``start`` twice needs ``stop`` twice) and may nest or
    overlap on the same class; when the last one stops the class is as the
    first one found it. One exception, forced by CPython (gh-105888): a class
    whose ``__new__`` is ``object.__new__`` cannot get that back once it was
    patched, so it keeps an inert wrapper that records nothing and behaves
    exactly as ``object.__new__`` did, arguments checks included; the next
    guard reuses it. Records accumulate across restarts until :meth:`clear`.
    """

    def __init__(
        self,
        engine_class: str | type,
        bridge_modules: Sequence[str],
        v2_modules: Sequence[str] = (),
    ) -> None:
        """Watch ``engine_class`` (``"module:Class"`` or the class itself).

        ``bridge_modules`` may construct it. Of ``v2_modules``, only a package
        holding the engine's module skips frames (its code is the engine's own);
        any other v2 module constructing the engine is not the bridge doing it.
        """
        self._spec = engine_class
        self.bridge_modules: tuple[str, ...] = tuple(bridge_modules)
        self.v2_modules: tuple[str, ...] = tuple(v2_modules)
        #: The engine's own module (and a v2 package holding it), once started:
        #: their frames are never the caller.
        self._own: tuple[str, ...] = ()
        self._cls: type | None = None
        self._depth = 0
        self._state_lock = threading.Lock()
        self._records_lock = threading.Lock()
        self._records: list[V2Construction] = []
        # The one recorder object of this guard: detach finds it by identity.
        self._recorder: Recorder = self._record

    @classmethod
    def from_rules(cls, rules: V2Rules) -> V2Guard:
        """A guard for the target's ``engine_class``, bridges and v2 modules."""
        return cls(rules.engine_class, rules.bridge_modules, rules.v2_modules)

    @property
    def engine(self) -> type | None:
        """The watched class, once :meth:`start` has imported it."""
        return self._cls

    @property
    def active(self) -> bool:
        """Whether constructions are being recorded."""
        return self._depth > 0

    def start(self) -> None:
        """Import the engine class (if needed) and start recording its constructions."""
        with self._state_lock:
            if self._depth == 0:
                spec = self._spec
                cls = spec if isinstance(spec, type) else load_engine_class(spec)
                # An engine defined in a bridge module: its frames are the bridge's.
                home = cls.__module__
                self._own = (
                    ()
                    if within(home, self.bridge_modules)
                    else (home, *(m for m in self.v2_modules if home.startswith(m + ".")))
                )
                attach(cls, self._recorder)
                self._cls = cls
            self._depth += 1

    def stop(self) -> None:
        """Undo one :meth:`start`; the last one restores the class. Extra calls do nothing."""
        with self._state_lock:
            if self._depth == 0:
                return
            self._depth -= 1
            if self._depth == 0 and self._cls is not None:
                detach(self._cls, self._recorder)

    def __enter__(self) -> V2Guard:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def constructions(self) -> tuple[V2Construction, ...]:
        """Every construction recorded, in order."""
        with self._records_lock:
            return tuple(self._records)

    @property
    def violations(self) -> tuple[V2Construction, ...]:
        """The constructions made outside the bridge."""
        return tuple(c for c in self.constructions if not c.allowed)

    def clear(self) -> None:
        """Forget the constructions recorded so far."""
        with self._records_lock:
            self._records.clear()

    def format_violations(self) -> str:
        """:func:`format_runtime_violations` for this guard's violations and bridges."""
        return format_runtime_violations(self.violations, self.bridge_modules)

    def _record(self, klass: type, frame: FrameType | None) -> None:
        cls = self._cls
        if cls is None:  # stopped while this construction was under way
            return
        own = self._own
        # The engine's module by its exact name, not as a package (the bridge
        # may sit inside the engine's package, or the engine in the bridge's),
        # unless a v2 package holding it was named.
        while frame is not None and (
            (name := frame.f_globals.get("__name__", "")) in own[:1]
            or (within(name, own[1:]) and not within(name, self.bridge_modules))
            or within(name, _MACHINERY)
            or _is_own_new(frame, cls)
        ):
            frame = frame.f_back
        if frame is None:
            record = V2Construction(_UNKNOWN, _UNKNOWN, 0, False, klass.__qualname__)
        else:
            caller = str(frame.f_globals.get("__name__", _UNKNOWN))
            record = V2Construction(
                caller,
                frame.f_code.co_filename,
                frame.f_lineno,
                within(caller, self.bridge_modules),
                klass.__qualname__,
            )
        with self._records_lock:
            self._records.append(record)


def engines_held_by(cls: type, modules: Sequence[str]) -> int:
    """How many live instances of ``cls`` the ``modules`` hold.

    Held means referenced from the globals of a module of ``modules`` (a package:
    or of its submodules) or from an object of a class defined in one of them
    (an attribute of the bridge object). This is how an
    engine the bridge built at import, before any guard could watch, is seen.
    """
    module_dicts = {
        id(vars(m))
        for name, m in list(sys.modules.items())
        if m is not None and within(name, modules)
    }

    def owned(ref: object) -> bool:
        return id(ref) in module_dicts or within(type(ref).__module__, modules)

    held = 0
    for obj in gc.get_objects():
        if not issubclass(type(obj), cls):  # type(), not isinstance: no __class__ lookup
            continue
        for ref in gc.get_referrers(obj):
            # An instance's attributes live in its __dict__ when one was made,
            # and in the instance itself otherwise.
            if owned(ref) or (
                isinstance(ref, dict) and any(owned(r) for r in gc.get_referrers(ref))
            ):
                held += 1
                break
    return held


def _is_own_new(frame: FrameType, cls: type) -> bool:
    """``frame`` runs a subclass's ``__new__`` that chains to the watched one."""
    code = frame.f_code
    if code.co_name != "__new__" or not code.co_argcount:
        return False
    first = frame.f_locals.get(code.co_varnames[0])
    return isinstance(first, type) and issubclass(first, cls)


def format_runtime_violations(
    constructions: Sequence[V2Construction], bridge_modules: Sequence[str] = ()
) -> str:
    """The message a user reads when the v2 engine was constructed outside the bridge.

    Allowed constructions in ``constructions`` are ignored. In order: what
    happened, one bullet per construction, how to fix it, where to read more.
    """
    bad = [c for c in constructions if not c.allowed]
    engines = list(dict.fromkeys(c.engine for c in bad if c.engine)) or [
        _messages.V2_RUNTIME_ENGINE_UNKNOWN
    ]
    lines = [
        _messages.V2_RUNTIME_HEADLINE.format(engine=" or ".join(engines), count=len(bad)) + ":"
    ]
    # One bullet per line of code: a background thread constructing every 50 ms
    # is one finding, not hundreds.
    for site, count in Counter(str(c) for c in bad).items():
        shown = (
            site
            if count == 1
            else _messages.V2_CONSTRUCTION_TIMES.format(construction=site, count=count)
        )
        lines.append(f"- {shown}")
    lines.append(_messages.V2_RUNTIME_FIX.format(bridges=bridge_list(bridge_modules)))
    lines.append(_messages.V2_READ_MORE)
    return "\n".join(lines)
