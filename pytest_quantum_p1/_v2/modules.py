"""Dotted module names: membership, relative imports made absolute, the bridges named.

The static scan and the run-time guard both ask whether a module is one of a
set or inside one, and both name the bridge modules in their fix line; this
module answers both once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from pytest_quantum_p1 import _messages

__all__ = ["IgnoredImports", "ModuleSet", "absolute", "bridge_list", "ignore_pattern", "within"]


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


_PART: Final = re.compile(r"\*\*?|[^\W\d]\w*")


def _module_pattern(expression: str, side: str, whole: str) -> str:
    parts = expression.split(".")
    if not expression or not all(_PART.fullmatch(part) for part in parts):
        raise ValueError(
            _messages.V2_IGNORE_IMPORT_SIDE.format(side=side, module=expression, expression=whole)
        )
    pieces = []
    for part in parts:
        if part == "**":
            pieces.append(r"[^.]+(?:\.[^.]+)*")
        elif part == "*":
            pieces.append(r"[^.]+")
        else:
            pieces.append(re.escape(part))
    return r"\.".join(pieces)


def ignore_pattern(expression: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The ``(importer, imported)`` patterns of one ``V2Rules.ignore_imports`` entry.

    import-linter's syntax: ``"a.b -> c.d"``; a part ``*`` matches one module
    name, ``**`` one or more; a part mixing a wildcard with letters (``foo*``)
    is invalid, as there. Raises :class:`ValueError` saying what is wrong.
    """
    importer, arrow, imported = (
        expression.partition("->") if isinstance(expression, str) else ("", "", "")
    )
    if not arrow:
        raise ValueError(_messages.V2_IGNORE_IMPORT_SHAPE.format(expression=expression))
    return (
        re.compile(_module_pattern(importer.strip(), "importer", expression)),
        re.compile(_module_pattern(imported.strip(), "imported", expression)),
    )


class IgnoredImports:
    """The ``ignore_imports`` entries, and which of them matched an import."""

    def __init__(self, expressions: Sequence[str]) -> None:
        self._patterns = [(e, *ignore_pattern(e)) for e in expressions]
        self._matched: set[str] = set()

    def ignores(self, importer: str, imported: str) -> bool:
        """Whether some entry allows ``importer`` importing ``imported`` (and note it)."""
        hit = False
        for expression, importer_re, imported_re in self._patterns:
            if importer_re.fullmatch(importer) and imported_re.fullmatch(imported):
                self._matched.add(expression)
                hit = True
        return hit

    @property
    def unmatched(self) -> tuple[str, ...]:
        """The entries that matched no import: stale, or misspelt."""
        return tuple(e for e, _, _ in self._patterns if e not in self._matched)
