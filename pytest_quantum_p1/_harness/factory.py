"""Store factories by name: the import string a child process is given instead of an object.

A process-backed cluster passes its children *names*, never objects: the store
factory's import string ``package.module:attr``, naming a
:class:`~pytest_quantum_p1.P1Target`, a zero-argument callable returning one, or
a ``(redis, clock) -> store`` factory. Names are resolved by the harness's one
``module:attr`` resolver, :func:`pytest_quantum_p1._target.resolve`.

Standard library and the target protocol only: no redis.
"""

from __future__ import annotations

from typing import cast

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._target import (
    FromURL,
    P1Target,
    StoreFactory,
    TargetError,
    accepts,
    resolve,
)

__all__ = ["factory_spec", "resolve_store_factory", "target_of"]


def resolve_store_factory(spec: str) -> StoreFactory | FromURL:
    """The store factory named by ``spec`` (``package.module:attr``).

    ``attr`` may name a :class:`~pytest_quantum_p1.P1Target` (its
    ``store_factory`` is used), a zero-argument callable returning one, a
    ``from_url(...)`` factory, or a ``(redis, clock) -> store`` factory itself. Dotted attributes
    (``module:Class.method``) are followed. Raises
    :class:`~pytest_quantum_p1.TargetError` when ``spec`` names nothing.
    """
    return _resolve(spec)[0]


def target_of(spec: str) -> P1Target | None:
    """The :class:`~pytest_quantum_p1.P1Target` ``spec`` names, or ``None`` for a bare factory."""
    return _resolve(spec)[1]


def _resolve(spec: str) -> tuple[StoreFactory | FromURL, P1Target | None]:
    try:
        obj = resolve(spec)
    except TargetError as exc:
        raise TargetError(
            _messages.STORE_FACTORY_SPEC_INVALID.format(spec=spec, error=exc)
        ) from exc
    if isinstance(obj, P1Target):
        return obj.store_factory, obj
    if isinstance(obj, FromURL):
        return obj, None
    if callable(obj) and accepts(obj, 2):
        return cast("StoreFactory", obj), None
    if callable(obj) and accepts(obj, 0):
        target = obj()
        if isinstance(target, P1Target):
            return target.store_factory, target
        raise TypeError(
            _messages.STORE_FACTORY_NOT_A_TARGET.format(spec=spec, type=type(target).__name__)
        )
    raise TypeError(_messages.STORE_FACTORY_WRONG_KIND.format(spec=spec, type=type(obj).__name__))


def factory_spec(factory: StoreFactory | FromURL | str) -> str:
    """The import string of ``factory``, checked to import back to the same object.

    A ``from_url(...)`` factory must be named by its target or by a module-level
    name of its own: an import string is what a child process is given.
    """
    if isinstance(factory, str):
        resolve_store_factory(factory)  # fail here, with the parent's traceback
        return factory
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise TypeError(
            _messages.FACTORY_NOT_IMPORTABLE.format(
                factory=factory, reason=_messages.FACTORY_HAS_NO_IMPORT_NAME
            )
        )
    spec = f"{module}:{qualname}"
    try:
        found = resolve(spec)
    except TargetError as exc:
        raise TypeError(
            _messages.FACTORY_NOT_IMPORTABLE.format(factory=factory, reason=exc)
        ) from None
    if found is not factory:
        reason = _messages.FACTORY_NAME_NAMES_ANOTHER.format(spec=spec)
        raise TypeError(_messages.FACTORY_NOT_IMPORTABLE.format(factory=factory, reason=reason))
    return spec
