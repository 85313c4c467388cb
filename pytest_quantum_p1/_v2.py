"""P1-3 checks: nothing but the bridge reaches federation v2, statically or at run time.

Two halves, usable without pytest:

- :func:`scan_v2_usage` parses every ``.py`` file under the target's source
  roots and finds every way a module reaches a v2 module: ``import`` and
  ``from`` statements (relative ones resolved against the file's own package),
  ``importlib.import_module("…")`` (with ``package=``) and ``__import__("…")``
  (with ``fromlist`` and ``level``). Only the bridge modules and the v2 modules
  themselves may do so. Dynamic imports whose module name is not a literal are
  listed as *unresolved* instead of being guessed at. :func:`check_removed` and
  :func:`check_docs` cover the other two static promises.
- :class:`V2Guard` watches, while it is active, every construction of the v2
  engine class and records who constructed it.

This module imports only the standard library: the plugin loads it lazily and
it must stay cheap.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import io
import os
import re
import sys
import threading
import tokenize
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, FunctionType, TracebackType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pytest_quantum_p1._target import V2Rules

__all__ = [
    "DOC_MISSING",
    "DOC_PHRASE_MISSING",
    "DOC_UNREADABLE",
    "HOW_DUNDER_IMPORT",
    "HOW_FROM",
    "HOW_IMPORT",
    "HOW_IMPORT_MODULE",
    "READ_MORE",
    "RUNTIME_FIX",
    "RUNTIME_HEADLINE",
    "SCAN_CLEAN",
    "SCAN_ERRORS_HEADLINE",
    "SCAN_FIX",
    "SCAN_HEADLINE",
    "SCAN_UNRESOLVED_HEADLINE",
    "TYPE_CHECKING_ONLY",
    "V2Construction",
    "V2FileError",
    "V2Guard",
    "V2ScanResult",
    "V2Unresolved",
    "V2Violation",
    "check_docs",
    "check_removed",
    "format_runtime_violations",
    "format_violations",
    "scan_v2_usage",
]

# -- message pieces (tests match these) ----------------------------------------

#: The ``how`` of a violation: which mechanism reached the v2 module.
HOW_IMPORT: Final = "import"
HOW_FROM: Final = "from"
HOW_IMPORT_MODULE: Final = "importlib.import_module"
HOW_DUNDER_IMPORT: Final = "__import__"

#: Appended where a violation sits under ``if TYPE_CHECKING:`` (never runs).
TYPE_CHECKING_ONLY: Final = "TYPE_CHECKING only"

#: First line of the scan message; ``{s}`` is the plural ending.
SCAN_HEADLINE: Final = "{count} direct v2 import{s} outside the bridge"
SCAN_ERRORS_HEADLINE: Final = "{count} file{s} could not be read or parsed, so were not checked"
SCAN_UNRESOLVED_HEADLINE: Final = (
    "{count} dynamic import{s} could not be resolved (not counted as violations)"
)
SCAN_CLEAN: Final = "no direct v2 imports outside the bridge ({files} files scanned)"
SCAN_FIX: Final = (
    "Fix: import v2 modules only from the bridge: {bridges}; "
    "everywhere else, route the call through the bridge."
)

RUNTIME_HEADLINE: Final = "{engine} was constructed outside the bridge {count} time(s)"
RUNTIME_FIX: Final = (
    "Fix: construct it only in the bridge: {bridges}; everywhere else, go through the bridge."
)

#: Where the user reads about P1-3 (a README anchor).
READ_MORE: Final = "See README.md, section 'P1-3: federation v2' (README.md#p1-3-federation-v2)."

DOC_MISSING: Final = "{doc}: document not found"
DOC_UNREADABLE: Final = "{doc}: cannot be read ({error})"
DOC_PHRASE_MISSING: Final = "{doc}: does not mention {phrase!r}"

_NO_BRIDGE: Final = "(no bridge modules configured)"

# -- results -------------------------------------------------------------------


@dataclass(frozen=True)
class V2Violation:
    """One place where a module outside the bridge reaches a v2 module."""

    path: Path
    line: int
    #: Dotted name of the module doing the import.
    importer: str
    #: The v2 module reached (one of the configured v2 modules).
    module: str
    #: One of :data:`HOW_IMPORT`, :data:`HOW_FROM`, :data:`HOW_IMPORT_MODULE`,
    #: :data:`HOW_DUNDER_IMPORT`.
    how: str
    #: The source line, stripped.
    text: str
    #: The import sits under ``if TYPE_CHECKING:`` and so never runs.
    type_checking: bool = False

    def __str__(self) -> str:
        tail = f" ({TYPE_CHECKING_ONLY})" if self.type_checking else ""
        return (
            f"{self.path}:{self.line}: {self.importer} imports v2 module {self.module} "
            f"via {self.how}: {self.text}{tail}"
        )


@dataclass(frozen=True)
class V2Unresolved:
    """A dynamic import the scan cannot resolve statically (not a violation)."""

    path: Path
    line: int
    importer: str
    how: str
    text: str
    #: Why it could not be resolved, e.g. ``"module name is not a literal"``.
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer}: {self.reason} ({self.how}): {self.text}"


@dataclass(frozen=True)
class V2FileError:
    """A file (or source root) the scan could not read or parse."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class V2ScanResult:
    """What :func:`scan_v2_usage` found."""

    #: ``.py`` files found under the roots, including those that did not parse.
    files_scanned: int
    violations: tuple[V2Violation, ...]
    unresolved: tuple[V2Unresolved, ...]
    errors: tuple[V2FileError, ...]

    @property
    def ok(self) -> bool:
        """No violations and every file was checked.

        Unresolved dynamic imports do not count: they are reported for review.
        """
        return not self.violations and not self.errors


# -- walking source trees ------------------------------------------------------

_SKIP_DIRS: Final = frozenset({"__pycache__", "site-packages", "node_modules"})
# A directory holding one of these is a virtualenv or conda env, whatever its name.
_ENV_MARKER_FILES: Final = frozenset({"pyvenv.cfg"})
_ENV_MARKER_DIRS: Final = frozenset({"conda-meta"})


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``os.walk`` in sorted order, pruning caches, hidden dirs and environments."""
    for dirpath, dirnames, filenames in os.walk(root):
        current = Path(dirpath)
        if current != root and (
            _ENV_MARKER_FILES.intersection(filenames) or _ENV_MARKER_DIRS.intersection(dirnames)
        ):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        filenames.sort()
        yield current, dirnames, filenames


def _python_files(root: Path) -> Iterator[tuple[Path, str]]:
    """``(path, dotted module name)`` of every ``.py`` file under a package root."""
    if root.is_file():
        if root.suffix == ".py":
            yield root, root.stem
        return
    # The root is a package directory, so names start with its own name (even
    # when the root is given as ".").
    top = (Path(os.path.abspath(root)).name,)
    for current, _dirs, filenames in _walk(root):
        package = top + current.relative_to(root).parts
        for name in filenames:
            if not name.endswith(".py") or name.startswith("."):
                continue
            parts = package if name == "__init__.py" else (*package, name[:-3])
            yield current / name, ".".join(parts)


# -- the scan ------------------------------------------------------------------


class _ModuleSet:
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


_DUNDER_IMPORT_OWNERS: Final = frozenset({"importlib", "builtins"})
_NEWLINE: Final = re.compile(r"\r\n|\r|\n")
# Nodes that hold statements; everything else is an expression a shallow scan skips.
_BLOCK: Final = (ast.stmt, ast.excepthandler, ast.match_case)
# Without these bytes a file has no dynamic import a scan could resolve. Non-ASCII
# files always get the deep scan: identifiers are NFKC-normalised, so a name
# spelt with full-width letters can still be ``import_module``.
_DYNAMIC_MARKERS: Final = (b"import_module", b"__import__")


@dataclass
class _Hit:
    line: int
    col: int
    how: str
    module: str | None
    type_checking: bool
    reason: str = ""


class _FileScanner:
    """Finds the v2 imports of one parsed file."""

    def __init__(self, module: str, is_package: bool, v2: _ModuleSet) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.v2 = v2
        self.hits: list[_Hit] = []
        # Names bound to importlib.import_module / __import__ under another name
        # (``from importlib import import_module as load``).
        self._import_module_names: set[str] = {"import_module"}
        self._dunder_import_names: set[str] = {"__import__"}
        self._calls: list[tuple[ast.Call, bool]] = []

    def scan(self, tree: ast.Module, deep: bool = True) -> list[_Hit]:
        """The hits of ``tree``, in source order.

        ``deep=False`` visits statements only (no dynamic-import calls), which
        is what a file that never mentions ``import_module`` or ``__import__``
        needs, at a fraction of the cost.
        """
        # Iterative, because deeply nested expressions overflow a recursive visitor.
        stack: list[tuple[ast.AST, bool]] = [(tree, False)]
        while stack:
            node, tc = stack.pop()
            if isinstance(node, ast.Import):
                self._import(node, tc)
                continue
            if isinstance(node, ast.ImportFrom):
                self._import_from(node, tc)
                continue
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
                stack.extend(
                    (child, tc) for child in ast.iter_child_nodes(node) if isinstance(child, _BLOCK)
                )
        # Calls are resolved last: an alias may be bound after (or below) its use.
        for call, tc in self._calls:
            self._call(call, tc)
        self.hits.sort(key=lambda h: (h.line, h.col))
        return self.hits

    # -- statements

    def _hit(self, node: ast.AST, how: str, module: str | None, tc: bool, reason: str = "") -> None:
        line = getattr(node, "lineno", 0)
        col = getattr(node, "col_offset", 0)
        self.hits.append(_Hit(line, col, how, module, tc, reason))

    def _import(self, node: ast.Import, tc: bool) -> None:
        for alias in node.names:
            owner = self.v2.owner(alias.name)
            if owner is not None:
                self._hit(node, HOW_IMPORT, owner, tc)

    def _import_from(self, node: ast.ImportFrom, tc: bool) -> None:
        if node.module in _DUNDER_IMPORT_OWNERS and not node.level:
            self._bind_aliases(node)
        base = self._resolve(node.module or "", node.level)
        if base is None:
            self._hit(node, HOW_FROM, None, tc, "relative import beyond the top-level package")
            return
        owner = self.v2.owner(base) if base else None
        if owner is not None:
            self._hit(node, HOW_FROM, owner, tc)
            return
        for alias in node.names:
            if alias.name == "*":
                if self.v2.is_parent_of_member(base):
                    self._hit(
                        node, HOW_FROM, None, tc, "star import from a package holding v2 modules"
                    )
                continue
            owner = self.v2.owner(f"{base}.{alias.name}" if base else alias.name)
            if owner is not None:
                self._hit(node, HOW_FROM, owner, tc)

    def _bind_aliases(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name
            if alias.name == "import_module" and node.module == "importlib":
                self._import_module_names.add(bound)
            elif alias.name == "__import__":
                self._dunder_import_names.add(bound)

    def _resolve(self, name: str, level: int) -> str | None:
        """Absolute name of ``name`` imported with ``level`` leading dots, or None."""
        if not level:
            return name
        parts = self.package.split(".") if self.package else []
        if level - 1 >= len(parts):
            return None
        parts = parts[: len(parts) - (level - 1)]
        if name:
            parts.append(name)
        return ".".join(parts)

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
            self._hit(node, HOW_IMPORT_MODULE, None, tc, "module name is not a literal")
            return
        if name.startswith("."):
            package_node = _argument(node, 1, "package")
            if package_node is None or _is_none(package_node):
                self._hit(node, HOW_IMPORT_MODULE, None, tc, "relative name without a package")
                return
            package = self._literal(package_node)
            if package is None:
                self._hit(node, HOW_IMPORT_MODULE, None, tc, "package is not a literal")
                return
            name = _resolve_name(name, package)
            if name is None:
                self._hit(node, HOW_IMPORT_MODULE, None, tc, "relative name beyond the package")
                return
        owner = self.v2.owner(name)
        if owner is not None:
            self._hit(node, HOW_IMPORT_MODULE, owner, tc)

    def _dunder_import(self, node: ast.Call, tc: bool) -> None:
        name_node = _argument(node, 0, "name")
        if name_node is None:
            return
        name = self._literal(name_node)
        if name is None:
            self._hit(node, HOW_DUNDER_IMPORT, None, tc, "module name is not a literal")
            return
        level_node = _argument(node, 4, "level")
        level = 0
        if level_node is not None:
            if not (isinstance(level_node, ast.Constant) and isinstance(level_node.value, int)):
                self._hit(node, HOW_DUNDER_IMPORT, None, tc, "level is not a literal")
                return
            level = level_node.value
        base = self._resolve(name, level)
        if base is None:
            self._hit(
                node, HOW_DUNDER_IMPORT, None, tc, "relative import beyond the top-level package"
            )
            return
        owner = self.v2.owner(base) if base else None
        if owner is not None:
            self._hit(node, HOW_DUNDER_IMPORT, owner, tc)
            return
        fromlist_node = _argument(node, 3, "fromlist")
        if fromlist_node is None or _is_none(fromlist_node):
            return
        items = self._literal_list(fromlist_node)
        if items is None:
            if self.v2.is_parent_of_member(base):
                self._hit(node, HOW_DUNDER_IMPORT, None, tc, "fromlist is not a literal")
            return
        for item in items:
            owner = self.v2.owner(f"{base}.{item}" if base else item)
            if owner is not None:
                self._hit(node, HOW_DUNDER_IMPORT, owner, tc)
                return

    def _literal_list(self, node: ast.AST) -> list[str] | None:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return None
        items = [self._literal(element) for element in node.elts]
        return None if any(i is None for i in items) else [i for i in items if i is not None]


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


def _resolve_name(name: str, package: str) -> str | None:
    """``importlib.util.resolve_name`` without importing it, None when out of range."""
    level = len(name) - len(name.lstrip("."))
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    rest = name[level:]
    return f"{base}.{rest}" if rest else base


def _source_lines(data: bytes) -> list[str]:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"
    # Split as the tokenizer counts lines: ``str.splitlines`` also splits on \f etc.
    return _NEWLINE.split(data.decode(encoding, errors="replace"))


def _within(name: str, modules: Sequence[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def scan_v2_usage(
    source_roots: Sequence[Path],
    v2_modules: Sequence[str],
    bridge_modules: Sequence[str],
) -> V2ScanResult:
    """Find every place outside the bridge that reaches a v2 module.

    Each root is a package directory (its name is the top-level package, so
    ``/x/reference_impl`` gives modules ``reference_impl.…``) or a single
    ``.py`` file. Caches, hidden directories and virtual environments are
    skipped. The bridge modules and the v2 modules (with their submodules) may
    import v2; everyone else may not, including under ``if TYPE_CHECKING:``
    (flagged as such), inside functions and in ``try`` blocks.

    Never raises for a bad file: unreadable or unparsable files, and missing
    roots, are listed in :attr:`V2ScanResult.errors`.
    """
    v2 = _ModuleSet(v2_modules)
    allowed = frozenset(bridge_modules)
    violations: list[V2Violation] = []
    unresolved: list[V2Unresolved] = []
    errors: list[V2FileError] = []
    seen: set[str] = set()
    files = 0
    with warnings.catch_warnings():
        # Parsing warns about e.g. invalid escapes; under ``-W error`` that would
        # turn a file that runs fine into a scan error.
        warnings.simplefilter("ignore")
        for root in map(Path, source_roots):
            if not root.exists():
                errors.append(V2FileError(root, "source root does not exist"))
                continue
            for path, module in _python_files(root):
                key = os.path.realpath(path)
                if key in seen:  # overlapping roots
                    continue
                seen.add(key)
                files += 1
                # Allowed importers are still parsed: one that does not parse is an error.
                is_allowed = module in allowed or _within(module, v2_modules)
                outcome = _scan_file(path, module, v2, check=not is_allowed)
                if isinstance(outcome, V2FileError):
                    errors.append(outcome)
                    continue
                for hit, text in outcome:
                    if hit.module is None:
                        unresolved.append(
                            V2Unresolved(path, hit.line, module, hit.how, text, hit.reason)
                        )
                    else:
                        violations.append(
                            V2Violation(
                                path, hit.line, module, hit.module, hit.how, text, hit.type_checking
                            )
                        )
    return V2ScanResult(files, tuple(violations), tuple(unresolved), tuple(errors))


def _scan_file(
    path: Path, module: str, v2: _ModuleSet, check: bool
) -> V2FileError | list[tuple[_Hit, str]]:
    """The hits in one file with their source lines, or why it could not be scanned."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return V2FileError(path, f"cannot read: {exc.strerror or exc}")
    try:
        tree = ast.parse(data, filename=str(path))
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return V2FileError(path, f"does not parse: {where}{exc.msg}")
    except (ValueError, RecursionError, MemoryError) as exc:
        return V2FileError(path, f"does not parse: {exc}")
    if not check:
        return []
    deep = not data.isascii() or any(marker in data for marker in _DYNAMIC_MARKERS)
    hits = _FileScanner(module, path.name == "__init__.py", v2).scan(tree, deep)
    if not hits:
        return []
    lines = _source_lines(data)
    return [
        (hit, lines[hit.line - 1].strip() if 0 < hit.line <= len(lines) else "") for hit in hits
    ]


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _bridges(bridge_modules: Sequence[str]) -> str:
    return ", ".join(bridge_modules) or _NO_BRIDGE


def format_violations(result: V2ScanResult, rules: V2Rules) -> str:
    """The message a user reads when the static v2 check fails.

    In order: what happened, the violations (then unreadable files and
    unresolved dynamic imports) as bullets, how to fix it, where to read more.
    """
    if result.ok and not result.unresolved:
        return SCAN_CLEAN.format(files=result.files_scanned)
    lines: list[str] = []
    if not result.violations and not result.errors:
        lines.append(SCAN_CLEAN.format(files=result.files_scanned))
    if result.violations:
        count = len(result.violations)
        lines.append(SCAN_HEADLINE.format(count=count, s=_plural(count)) + ":")
        for v in result.violations:
            how = f"{v.how}, {TYPE_CHECKING_ONLY}" if v.type_checking else v.how
            lines.append(f"- {v.path}:{v.line}  {v.importer} → {v.module} ({how})")
    if result.errors:
        count = len(result.errors)
        lines.append(SCAN_ERRORS_HEADLINE.format(count=count, s=_plural(count)) + ":")
        lines.extend(f"- {e.path}: {e.message}" for e in result.errors)
    if result.unresolved:
        count = len(result.unresolved)
        lines.append(SCAN_UNRESOLVED_HEADLINE.format(count=count, s=_plural(count)) + ":")
        lines.extend(
            f"- {u.path}:{u.line}  {u.importer}: {u.reason} ({u.how})" for u in result.unresolved
        )
    lines.append(SCAN_FIX.format(bridges=_bridges(rules.bridge_modules)))
    lines.append(READ_MORE)
    return "\n".join(lines)


# -- removed files and docs ----------------------------------------------------

_GLOB_CHARS: Final = re.compile(r"[*?\[]")


def check_removed(removed_paths: Sequence[Path], source_roots: Sequence[Path]) -> list[Path]:
    """The removed paths that still exist, sorted and without duplicates.

    For each path: the path itself, plus any file or directory anywhere under
    the roots with the same name (a file that moved is not a file removed).
    A name may be a glob (``test_v2_*.py``), matched the same way.
    """
    found: dict[str, Path] = {}

    def add(path: Path) -> None:
        found.setdefault(os.path.abspath(path), Path(os.path.abspath(path)))

    patterns: list[str] = []
    for removed in removed_paths:
        removed = Path(removed)
        if _GLOB_CHARS.search(removed.name):
            for match in removed.parent.glob(removed.name):
                add(match)
        elif os.path.lexists(removed):
            add(removed)
        patterns.append(removed.name)
    if not patterns:
        return []
    exact = {p for p in patterns if not _GLOB_CHARS.search(p)}
    globs = [p for p in patterns if _GLOB_CHARS.search(p)]
    for root in source_roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for current, dirnames, filenames in _walk(root):
            for name in (*dirnames, *filenames):
                if name in exact or any(fnmatch.fnmatchcase(name, g) for g in globs):
                    add(current / name)
    return sorted(found.values())


_EMPHASIS: Final = re.compile(r"[*_`]+")
_SPACE: Final = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _SPACE.sub(" ", _EMPHASIS.sub("", text)).strip().casefold()


def check_docs(docs: Sequence[Path], phrases: Sequence[str]) -> list[str]:
    """One problem string per missing document or missing phrase; empty when all is well.

    Matching ignores case, markdown emphasis (``*``, ``_``, backticks) and how
    whitespace is laid out, so ``**Current:** Federation v3`` matches the phrase
    ``current: federation v3``.
    """
    problems: list[str] = []
    wanted = [(phrase, _normalise(phrase)) for phrase in phrases]
    for doc in docs:
        doc = Path(doc)
        if not doc.exists():
            problems.append(DOC_MISSING.format(doc=doc))
            continue
        try:
            text = _normalise(doc.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            problems.append(DOC_UNREADABLE.format(doc=doc, error=exc.strerror or exc))
            continue
        problems.extend(
            DOC_PHRASE_MISSING.format(doc=doc, phrase=phrase)
            for phrase, needle in wanted
            if needle not in text
        )
    return problems


# -- the run-time guard --------------------------------------------------------


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
        return f"{self.filename}:{self.lineno} in {self.caller_module}"


# Frames of these modules are machinery, never the caller that matters: this
# module (nested wrappers) and the import system (engines built at import time).
_MACHINERY: Final = (__name__, "importlib._bootstrap", "importlib._bootstrap_external")
_UNKNOWN: Final = "<unknown>"


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
        guards = patch.guards
        if guards:
            # Called from C (type.__call__), so frame 1 is the line constructing.
            frame = sys._getframe(1)
            try:
                for guard in guards:
                    guard._record(klass, frame)
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
        self.guards: tuple[V2Guard, ...] = ()
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
            # in place with no guards, it only passes calls through.
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


def _attach(cls: type, guard: V2Guard) -> None:
    with _PATCHES_LOCK:
        patch = _PATCHES.get(cls)
        if patch is None:
            patch = _Patch(cls)
            patch.install()
            _PATCHES[cls] = patch
        patch.guards = (*patch.guards, guard)


def _detach(cls: type, guard: V2Guard) -> None:
    with _PATCHES_LOCK:
        patch = _PATCHES.get(cls)
        if patch is None:
            return
        patch.guards = tuple(g for g in patch.guards if g is not guard)
        # An inert wrapper stays registered, so the next guard reuses it
        # instead of wrapping it again.
        if not patch.guards and patch.uninstall():
            del _PATCHES[cls]


def _resolve_class(spec: str) -> type:
    module_name, sep, qualname = spec.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"the v2 engine class must look like 'package.module:Class', got {spec!r}")
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no class {qualname!r}") from None
    if not isinstance(obj, type):
        raise TypeError(f"{spec} is a {type(obj).__name__}, not a class")
    return obj


class V2Guard:
    """Records every construction of the v2 engine class, and who made it, while active.

    Use as a context manager or with :meth:`start` / :meth:`stop`::

        with V2Guard("pkg.federated_engine_v2:FederatedEngineV2", ["pkg.bridge"]) as guard:
            run_the_app()
        assert not guard.violations, guard.format_violations()

    The class's ``__new__`` is wrapped (``__init__`` is left alone so that a
    ``DeprecationWarning`` it raises with ``stacklevel=2`` still names the
    caller's line). Patching the class object itself catches every reference
    to it, including ``from m import Cls`` done before the guard started, and
    every subclass that does not bypass ``__new__``. The caller is the first
    frame outside the v2 modules, so a factory inside a v2 module is
    attributed to whoever called the factory.

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

        ``bridge_modules`` may construct it; frames in ``v2_modules`` (and the
        engine's own module) are skipped when looking for the caller.
        """
        self._spec = engine_class
        self.bridge_modules: tuple[str, ...] = tuple(bridge_modules)
        self.v2_modules: tuple[str, ...] = tuple(v2_modules)
        self._skip: tuple[str, ...] = (*self.v2_modules, *_MACHINERY)
        self._cls: type | None = None
        self._depth = 0
        self._state_lock = threading.Lock()
        self._records_lock = threading.Lock()
        self._records: list[V2Construction] = []

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
                cls = spec if isinstance(spec, type) else _resolve_class(spec)
                self._skip = (cls.__module__, *self.v2_modules, *_MACHINERY)
                _attach(cls, self)
                self._cls = cls
            self._depth += 1

    def stop(self) -> None:
        """Undo one :meth:`start`; the last one restores the class. Extra calls do nothing."""
        with self._state_lock:
            if self._depth == 0:
                return
            self._depth -= 1
            if self._depth == 0 and self._cls is not None:
                _detach(self._cls, self)

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
        skip = self._skip
        while frame is not None and (
            _within(frame.f_globals.get("__name__", ""), skip) or _is_own_new(frame, cls)
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
                caller in self.bridge_modules,
                klass.__qualname__,
            )
        with self._records_lock:
            self._records.append(record)


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
    engines = list(dict.fromkeys(c.engine for c in bad if c.engine)) or ["the v2 engine"]
    lines = [RUNTIME_HEADLINE.format(engine=" or ".join(engines), count=len(bad)) + ":"]
    lines.extend(f"- {c.filename}:{c.lineno} in {c.caller_module}" for c in bad)
    lines.append(RUNTIME_FIX.format(bridges=_bridges(bridge_modules)))
    lines.append(READ_MORE)
    return "\n".join(lines)
