"""Dotted module names: membership, relative imports made absolute, the bridges named.

The static scan and the run-time guard both ask whether a module is one of a
set or inside one, and both name the bridge modules in their fix line; this
module answers both once.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_quantum_p1 import _messages

__all__ = ["ModuleSet", "absolute", "bridge_list", "within"]


def within(name: str, modules: Sequence[str]) -> bool:
    """``name`` is one of ``modules`` or a submodule of one."""
    return any(name == m or name.startswith(m + ".") for m in modules)


class ModuleSet:
    """Dotted names, matched exactly or as a parent package of the name asked about."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = frozenset(names)

    def owner(self, name: str) -> str | None:
        """The longest member that is ``name`` or a package containing it."""
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in self._names:
                return candidate
        return None

    def is_parent_of_member(self, name: str) -> bool:
        """Some member is a direct child of ``name`` (``name.x``)."""
        return any(m.rpartition(".")[0] == name for m in self._names)


def absolute(name: str, level: int, package: str) -> str | None:
    """The absolute name of ``name`` imported with ``level`` leading dots from ``package``.

    ``importlib.util.resolve_name`` without importing anything: ``level`` 0
    returns ``name`` as it is; None when the dots climb above the top-level package.
    """
    if not level:
        return name
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None
    parts = parts[: len(parts) - (level - 1)]
    if name:
        parts.append(name)
    return ".".join(parts)


def bridge_list(bridge_modules: Sequence[str]) -> str:
    """The bridge modules as a fix line names them."""
    return ", ".join(bridge_modules) or _messages.V2_NO_BRIDGE
