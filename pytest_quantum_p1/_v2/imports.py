"""The v2 imports of one parsed module: an AST walk that finds every way it reaches a v2 module.

``import`` and ``from`` statements (relative ones resolved against the
module's own package), ``importlib.import_module("…")`` (with ``package=``)
and ``__import__("…")`` (with ``fromlist`` and ``level``). A dynamic import
whose module name is not a literal is a :class:`Hit` without a module, with
the reason, instead of a guess. Imports only the standard library and the
harness's texts.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Final

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._v2.modules import ModuleSet, absolute

__all__ = [
    "HOW_DUNDER_IMPORT",
    "HOW_FROM",
    "HOW_IMPORT",
    "HOW_IMPORT_MODULE",
    "Hit",
    "find_v2_imports",
    "may_import_dynamically",
]

#: The ``how`` of a finding: which mechanism reached the v2 module.
HOW_IMPORT: Final = "import"
HOW_FROM: Final = "from"
HOW_IMPORT_MODULE: Final = "importlib.import_module"
HOW_DUNDER_IMPORT: Final = "__import__"

_DUNDER_IMPORT_OWNERS: Final = frozenset({"importlib", "builtins"})
# Nodes that hold statements; everything else is an expression a shallow scan skips.
_BLOCK: Final = (ast.stmt, ast.excepthandler, ast.match_case)
# The fields of a node that hold its nested blocks.
_BLOCK_FIELDS: Final = ("body", "orelse", "finalbody", "handlers", "cases")
# Without these bytes a file has no dynamic import a scan could resolve. Non-ASCII
# files always get the deep scan: identifiers are NFKC-normalised, so a name
# spelt with full-width letters can still be ``import_module``.
_DYNAMIC_MARKERS: Final = (b"import_module", b"__import__")


@dataclass
class Hit:
    """One place that reaches v2 module ``module``, or might (``module`` None, with ``reason``)."""

    line: int
    col: int
    #: One of the ``HOW_*`` constants.
    how: str
    module: str | None
    #: The place sits under ``if TYPE_CHECKING:`` and so never runs.
    type_checking: bool
    reason: str = ""
    #: The module the statement names (``module`` or one inside it), as
    #: ``ignore_imports`` entries match it; ``""`` when ``module`` is None.
    imported: str = ""


def may_import_dynamically(source: bytes) -> bool:
    """Whether ``source`` may hold a dynamic import: then it needs the deep walk."""
    return not source.isascii() or any(marker in source for marker in _DYNAMIC_MARKERS)


def find_v2_imports(
    tree: ast.Module,
    module: str,
    is_package: bool,
    v2: ModuleSet,
    deep: bool = True,
    lines: Sequence[str] | None = None,
) -> list[Hit]:
    """The hits of ``tree``, the parsed source of ``module``, in source order.

    ``deep=False`` visits statements only (no dynamic-import calls), which is
    what a file that :func:`may_import_dynamically` says no to needs, at a
    fraction of the cost. ``lines``, the lines of an ASCII source as the
    parser numbers them, narrows the deep walk to the statements whose lines
    spell a dynamic-import function's name (a call names its function, and
    ASCII names are spelt as the tree has them), with the same hits.
    """
    return _FileScanner(module, is_package, v2).scan(tree, deep, lines)


class _FileScanner:
    """Finds the v2 imports of one parsed file (a fresh one per file: it keeps its hits)."""

    def __init__(self, module: str, is_package: bool, v2: ModuleSet) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.v2 = v2
        self.hits: list[Hit] = []
        # Names bound to importlib.import_module / __import__ under another name
        # (``from importlib import import_module as load``).
        self._import_module_names: set[str] = {"import_module"}
        self._dunder_import_names: set[str] = {"__import__"}
        self._calls: list[tuple[ast.Call, bool]] = []

    def scan(
        self, tree: ast.Module, deep: bool = True, lines: Sequence[str] | None = None
    ) -> list[Hit]:
        """The hits of ``tree``, in source order (``deep`` and ``lines`` as :func:`find_v2_imports`)."""
        if deep and lines is not None:
            blocks: list[tuple[ast.AST, bool]] = []
            self._walk([(tree, False)], deep=False, blocks=blocks)
            names = tuple(self._import_module_names | self._dunder_import_names)
            flags = [False] * len(lines)
            for name in names:
                for number in [i for i, line in enumerate(lines) if name in line]:
                    flags[number] = True
            spelt = list(accumulate(flags, initial=0))
            for block, tc in blocks:
                if _spans_marked(block, spelt):
                    self._walk(
                        [(c, tc) for c in ast.iter_child_nodes(block) if not isinstance(c, _BLOCK)],
                        deep=True,
                    )
        else:
            self._walk([(tree, False)], deep)
        # Calls are resolved last: an alias may be bound after (or below) its use.
        for call, tc in self._calls:
            self._call(call, tc)
        self.hits.sort(key=lambda h: (h.line, h.col))
        return self.hits

    def _walk(
        self,
        stack: list[tuple[ast.AST, bool]],
        deep: bool,
        blocks: list[tuple[ast.AST, bool]] | None = None,
    ) -> None:
        """Visit ``stack``'s nodes and theirs: statements only unless ``deep``.

        ``blocks`` collects the statements visited (with their context) that may
        hold a call in their own expressions.
        """
        # Iterative, because deeply nested expressions overflow a recursive visitor.
        while stack:
            node, tc = stack.pop()
            if isinstance(node, ast.Import):
                self._import(node, tc)
                continue
            if isinstance(node, ast.ImportFrom):
                self._import_from(node, tc)
                continue
            if blocks is not None and isinstance(node, _BLOCK):
                blocks.append((node, tc))
            if isinstance(node, ast.Call):
                self._calls.append((node, tc))
            if isinstance(node, ast.If) and not tc:
                guarded = _type_checking_test(node.test)
                if guarded is not None:
                    if deep:
                        stack.append((node.test, tc))
                    stack.extend((child, guarded) for child in node.body)
                    stack.extend((child, not guarded) for child in node.orelse)
                    continue
            if deep:
                stack.extend((child, tc) for child in ast.iter_child_nodes(node))
            else:
                # Statements hold statements only in these fields: no need to look at the rest.
                for field in _BLOCK_FIELDS:
                    children = getattr(node, field, None)
                    if children:
                        stack.extend((child, tc) for child in children)

    # -- statements

    def _hit(
        self,
        node: ast.AST,
        how: str,
        module: str | None,
        tc: bool,
        reason: str = "",
        imported: str = "",
    ) -> None:
        line = getattr(node, "lineno", 0)
        col = getattr(node, "col_offset", 0)
        self.hits.append(Hit(line, col, how, module, tc, reason, imported or (module or "")))

    def _import(self, node: ast.Import, tc: bool) -> None:
        for alias in node.names:
            owner = self.v2.owner(alias.name)
            if owner is not None:
                self._hit(node, HOW_IMPORT, owner, tc, imported=alias.name)

    def _import_from(self, node: ast.ImportFrom, tc: bool) -> None:
        if node.module in _DUNDER_IMPORT_OWNERS and not node.level:
            self._bind_aliases(node)
        base = self._resolve(node.module or "", node.level)
        if base is None:
            self._hit(node, HOW_FROM, None, tc, _messages.V2_UNRESOLVED_BEYOND)
            return
        owner = self.v2.owner(base) if base else None
        if owner is not None:
            self._hit(node, HOW_FROM, owner, tc, imported=base)
            return
        for alias in node.names:
            if alias.name == "*":
                if self.v2.is_parent_of_member(base):
                    self._hit(node, HOW_FROM, None, tc, _messages.V2_UNRESOLVED_STAR)
                continue
            name = f"{base}.{alias.name}" if base else alias.name
            owner = self.v2.owner(name)
            if owner is not None:
                self._hit(node, HOW_FROM, owner, tc, imported=name)

    def _bind_aliases(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name
            if alias.name == "import_module" and node.module == "importlib":
                self._import_module_names.add(bound)
            elif alias.name == "__import__":
                self._dunder_import_names.add(bound)

    def _resolve(self, name: str, level: int) -> str | None:
        """Absolute name of ``name`` imported here with ``level`` leading dots, or None."""
        return absolute(name, level, self.package)

    # -- dynamic imports

    def _call(self, node: ast.Call, tc: bool) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in self._import_module_names:
                self._import_module(node, tc)
            elif func.id in self._dunder_import_names:
                self._dunder_import(node, tc)
        elif isinstance(func, ast.Attribute):
            # Any ``x.import_module(...)``: the receiver may be an alias of importlib
            # bound in ways too many to track, and a literal v2 name is a finding anyway.
            if func.attr == "import_module":
                self._import_module(node, tc)
            elif func.attr == "__import__" and (
                isinstance(func.value, ast.Name)
                and (func.value.id in _DUNDER_IMPORT_OWNERS or func.value.id == "__builtins__")
            ):
                self._dunder_import(node, tc)

    def _literal(self, node: ast.AST | None) -> str | None:
        """The string value of ``node`` when it can be known without running the code."""
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, ast.Name):
            # The two names a module reliably knows about itself.
            if node.id == "__name__":
                return self.module
            if node.id == "__package__":
                return self.package
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self._literal(node.left), self._literal(node.right)
            return None if left is None or right is None else left + right
        if isinstance(node, ast.JoinedStr):
            pieces: list[str] = []
            for value in node.values:
                if isinstance(value, ast.FormattedValue):
                    if value.conversion != -1 or value.format_spec is not None:
                        return None
                    piece = self._literal(value.value)
                else:
                    piece = self._literal(value)
                if piece is None:
                    return None
                pieces.append(piece)
            return "".join(pieces)
        return None

    def _import_module(self, node: ast.Call, tc: bool) -> None:
        name_node = _argument(node, 0, "name")
        if name_node is None:
            return
        name = self._literal(name_node)
        if name is None:
            self._hit(node, HOW_IMPORT_MODULE, None, tc, _messages.V2_UNRESOLVED_NAME)
            return
        if name.startswith("."):
            package_node = _argument(node, 1, "package")
            if package_node is None or _is_none(package_node):
                self._hit(node, HOW_IMPORT_MODULE, None, tc, _messages.V2_UNRESOLVED_NO_PACKAGE)
                return
            package = self._literal(package_node)
            if package is None:
                self._hit(node, HOW_IMPORT_MODULE, None, tc, _messages.V2_UNRESOLVED_PACKAGE)
                return
            level = len(name) - len(name.lstrip("."))
            name = absolute(name[level:], level, package)
            if name is None:
                self._hit(node, HOW_IMPORT_MODULE, None, tc, _messages.V2_UNRESOLVED_NAME_BEYOND)
                return
        owner = self.v2.owner(name)
        if owner is not None:
            self._hit(node, HOW_IMPORT_MODULE, owner, tc, imported=name)

    def _dunder_import(self, node: ast.Call, tc: bool) -> None:
        name_node = _argument(node, 0, "name")
        if name_node is None:
            return
        name = self._literal(name_node)
        if name is None:
            self._hit(node, HOW_DUNDER_IMPORT, None, tc, _messages.V2_UNRESOLVED_NAME)
            return
        level_node = _argument(node, 4, "level")
        level = 0
        if level_node is not None:
            if not (isinstance(level_node, ast.Constant) and isinstance(level_node.value, int)):
                self._hit(node, HOW_DUNDER_IMPORT, None, tc, _messages.V2_UNRESOLVED_LEVEL)
                return
            level = level_node.value
        base = self._resolve(name, level)
        if base is None:
            self._hit(node, HOW_DUNDER_IMPORT, None, tc, _messages.V2_UNRESOLVED_BEYOND)
            return
        owner = self.v2.owner(base) if base else None
        if owner is not None:
            self._hit(node, HOW_DUNDER_IMPORT, owner, tc, imported=base)
            return
        fromlist_node = _argument(node, 3, "fromlist")
        if fromlist_node is None or _is_none(fromlist_node):
            return
        items = self._literal_list(fromlist_node)
        if items is None:
            if self.v2.is_parent_of_member(base):
                self._hit(node, HOW_DUNDER_IMPORT, None, tc, _messages.V2_UNRESOLVED_FROMLIST)
            return
        for item in items:
            name = f"{base}.{item}" if base else item
            owner = self.v2.owner(name)
            if owner is not None:
                self._hit(node, HOW_DUNDER_IMPORT, owner, tc, imported=name)
                return

    def _literal_list(self, node: ast.AST) -> list[str] | None:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return None
        items = [self._literal(element) for element in node.elts]
        return None if any(i is None for i in items) else [i for i in items if i is not None]


def _spans_marked(block: ast.AST, marked: list[int]) -> bool:
    """Some line of ``block`` is marked (``marked``: running count of marked lines)."""
    first: int | None = getattr(block, "lineno", None)
    last: int | None = getattr(block, "end_lineno", None)
    if first is None or last is None:
        return True  # a ``case`` has no position of its own
    return marked[min(last, len(marked) - 1)] > marked[max(first - 1, 0)]


def _type_checking_test(test: ast.expr) -> bool | None:
    """True for ``if TYPE_CHECKING``, False for ``if not TYPE_CHECKING``, else None.

    The value says whether the *body* is type-checking only.
    """
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _type_checking_test(test.operand)
        return None if inner is None else not inner
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return True
    if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
        return True
    return None


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if position < len(call.args) and not any(
        isinstance(a, ast.Starred) for a in call.args[: position + 1]
    ):
        return call.args[position]
    return None


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None
