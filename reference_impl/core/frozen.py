"""Read-only dicts and lists: what the policy store hands out from its cache.

A cached policy is shared by every caller, so a caller that changed it would
change every later read. :func:`freeze` builds, once, a copy whose dicts and
lists refuse every in-place change (``policy["x"] = 1``, ``del``, ``update``,
``append``, ``sort``, ``|=``, ``+=``, ...) with a :class:`TypeError`, so the
cache can return that same object on every hit at no cost.

The read-only types subclass ``dict`` and ``list`` rather than wrapping them
(``types.MappingProxyType``, tuples): they compare equal to plain dicts and
lists, ``json.dumps`` and ``pickle`` take them, ``isinstance(p, dict)`` holds,
and a mutable copy is one call away (``dict(p)`` for the top level,
:func:`thaw` for all of it). ``dict.__setitem__(p, ...)`` still gets through:
this guards against mistakes, not against code set on defeating it.
"""

from __future__ import annotations

from typing import Any, NoReturn, SupportsIndex

__all__ = ["FrozenDict", "FrozenList", "freeze", "thaw"]


def _refuse(container: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(
        f"this {type(container).__name__} is read-only (it is shared with the cache);"
        " change a copy: dict(policy), or reference_impl.core.frozen.thaw(policy)"
    )


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses in-place changes; equal to the plain dict it holds."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        _refuse(self)

    def __delitem__(self, key: str) -> NoReturn:
        _refuse(self)

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def clear(self) -> NoReturn:
        _refuse(self)

    def pop(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def popitem(self) -> NoReturn:
        _refuse(self)

    def setdefault(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        # dict's default reduction rebuilds by item assignment, which is refused.
        return FrozenDict, (dict(self),)


class FrozenList(list[Any]):
    """A ``list`` that refuses in-place changes; equal to the plain list it holds."""

    __slots__ = ()

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        _refuse(self)

    def __delitem__(self, index: SupportsIndex | slice) -> NoReturn:
        _refuse(self)

    def __iadd__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def __imul__(self, count: SupportsIndex) -> NoReturn:
        _refuse(self)

    def append(self, value: Any) -> NoReturn:
        _refuse(self)

    def extend(self, values: Any) -> NoReturn:
        _refuse(self)

    def insert(self, index: SupportsIndex, value: Any) -> NoReturn:
        _refuse(self)

    def pop(self, index: SupportsIndex = -1) -> NoReturn:
        _refuse(self)

    def remove(self, value: Any) -> NoReturn:
        _refuse(self)

    def clear(self) -> NoReturn:
        _refuse(self)

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def reverse(self) -> NoReturn:
        _refuse(self)

    def __reduce__(self) -> tuple[type[FrozenList], tuple[list[Any]]]:
        return FrozenList, (list(self),)


def freeze(value: Any) -> Any:
    """``value`` with every dict and list in it replaced by a read-only copy.

    Meant for decoded JSON (dicts, lists and scalars): other values are kept
    as they are, tuples included.
    """
    kind = type(value)
    if kind is dict or kind is FrozenDict:
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if kind is list or kind is FrozenList:
        return FrozenList([freeze(item) for item in value])
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of ``value``: dicts and lists of any kind become new ones."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    return value
