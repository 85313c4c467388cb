"""The static P1-3 check: scan a target's source roots for v2 imports outside the bridge.

:func:`scan_v2_usage` reads every ``.py`` file under the roots, parses those
:mod:`.prefilter` says may hold a finding, asks :mod:`.imports` for the v2
imports of each, and returns what it found as a
:class:`V2ScanResult`; :func:`format_violations` words a result for the user.
Only the bridge modules and the v2 modules themselves may import v2. Dynamic
imports whose module name is not a literal are listed as *unresolved*
instead of being guessed at. Imports only the standard library and the
harness's texts: the plugin loads this lazily and it must stay cheap.
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._v2.imports import Hit, find_v2_imports, may_import_dynamically
from pytest_quantum_p1._v2.modules import IgnoredImports, ModuleSet, bridge_list, within
from pytest_quantum_p1._v2.prefilter import Prefilter
from pytest_quantum_p1._v2.sources import module_files

if TYPE_CHECKING:
    from pytest_quantum_p1._target import V2Rules

__all__ = [
    "V2FileError",
    "V2ScanResult",
    "V2Unresolved",
    "V2Violation",
    "format_violations",
    "scan_v2_usage",
]


@dataclass(frozen=True)
class V2Violation:
    """One place where a module outside the bridge reaches a v2 module."""

    path: Path
    line: int
    #: Dotted name of the module doing the import.
    importer: str
    #: The v2 module reached (one of the configured v2 modules).
    module: str
    #: One of the ``HOW_*`` constants of :mod:`.imports`.
    how: str
    #: The source line, stripped.
    text: str
    #: The import sits under ``if TYPE_CHECKING:`` and so never runs.
    type_checking: bool = False

    def __str__(self) -> str:
        tail = f" ({_messages.V2_TYPE_CHECKING_ONLY})" if self.type_checking else ""
        return (
            _messages.V2_VIOLATION.format(
                path=self.path,
                line=self.line,
                importer=self.importer,
                module=self.module,
                how=self.how,
                text=self.text,
            )
            + tail
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
        return _messages.V2_UNRESOLVED.format(
            path=self.path,
            line=self.line,
            importer=self.importer,
            reason=self.reason,
            how=self.how,
            text=self.text,
        )


@dataclass(frozen=True)
class V2FileError:
    """A file (or source root) the scan could not read or parse."""

    path: Path
    message: str

    def __str__(self) -> str:
        return _messages.V2_FILE_ERROR.format(path=self.path, message=self.message)


@dataclass(frozen=True)
class V2ScanResult:
    """What :func:`scan_v2_usage` found."""

    #: ``.py`` files found under the roots, including those that did not parse.
    files_scanned: int
    violations: tuple[V2Violation, ...]
    unresolved: tuple[V2Unresolved, ...]
    errors: tuple[V2FileError, ...]
    #: Imports of v2 that an ``ignore_imports`` entry allowed.
    ignored: int = 0
    #: The ``ignore_imports`` entries that matched no import.
    unmatched_ignores: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No violations and every file was checked.

        Unresolved dynamic imports do not count: they are reported for review.
        """
        return not self.violations and not self.errors


def scan_target_rules(rules: V2Rules) -> V2ScanResult:
    """The scan of a target's :class:`~pytest_quantum_p1.V2Rules`, as ``P1-3.no-direct-imports`` and ``v2_usage`` run it.

    Only files whose text could import v2 are parsed (``parse_all=False``): a
    file that cannot spell a v2 import imports no v2, parsed or not.
    """
    return scan_v2_usage(
        rules.source_roots,
        rules.v2_modules,
        rules.bridge_modules,
        rules.ignore_imports,
        parse_all=False,
    )


def scan_v2_usage(
    source_roots: Sequence[Path],
    v2_modules: Sequence[str],
    bridge_modules: Sequence[str],
    ignore_imports: Sequence[str] = (),
    *,
    parse_all: bool = True,
) -> V2ScanResult:
    """Find every place outside the bridge that reaches a v2 module.

    Each root is a package directory (its name is the top-level package, so
    ``/x/reference_impl`` gives modules ``reference_impl.…``) or a single
    ``.py`` file. Caches, hidden directories and virtual environments are
    skipped. The bridge modules and the v2 modules (each with its submodules:
    a package's ``__init__`` re-exporting its engine is the package's own
    business) may import v2; everyone else may not, including under ``if
    TYPE_CHECKING:`` (flagged as such), inside functions and in ``try``
    blocks, except imports an ``ignore_imports`` entry (import-linter's
    ``"importer -> imported"``, see :func:`.modules.ignore_pattern`) allows.

    Only files whose text may hold a finding are parsed into a tree
    (:class:`.prefilter.Prefilter`); the findings are the same as parsing
    every file. ``parse_all`` (the default) still has every other file
    compiled, so one that does not parse is listed in
    :attr:`V2ScanResult.errors`; ``parse_all=False`` leaves them unread
    beyond the text test, which is what makes a large tree fast: a file
    that cannot spell a v2 import imports no v2, whether it parses or not.

    Never raises for a bad file: unreadable or unparsable files, and missing
    roots, are listed in :attr:`V2ScanResult.errors`.
    """
    v2 = ModuleSet(v2_modules)
    prefilter = Prefilter(v2_modules)
    ignores = IgnoredImports(ignore_imports)
    ignored = 0
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
                errors.append(V2FileError(root, _messages.V2_SOURCE_ROOT_MISSING))
                continue
            for found in module_files(root):
                if found.key in seen:  # overlapping roots
                    continue
                seen.add(found.key)
                files += 1
                module = found.module
                # Allowed importers are not checked, but with ``parse_all`` one that does
                # not parse is an error.
                is_allowed = within(module, bridge_modules) or within(module, v2_modules)
                outcome = _scan_file(found.path, module, v2, prefilter, is_allowed, parse_all)
                if isinstance(outcome, V2FileError):
                    errors.append(outcome)
                    continue
                for hit, text in outcome:
                    if hit.module is not None and ignores.ignores(module, hit.imported):
                        ignored += 1
                    elif hit.module is None:
                        unresolved.append(
                            V2Unresolved(
                                Path(found.path), hit.line, module, hit.how, text, hit.reason
                            )
                        )
                    else:
                        violations.append(
                            V2Violation(
                                Path(found.path),
                                hit.line,
                                module,
                                hit.module,
                                hit.how,
                                text,
                                hit.type_checking,
                            )
                        )
    return V2ScanResult(
        files,
        tuple(violations),
        tuple(unresolved),
        tuple(errors),
        ignored,
        ignores.unmatched,
    )


def _scan_file(
    path: str, module: str, v2: ModuleSet, prefilter: Prefilter, is_allowed: bool, parse_all: bool
) -> V2FileError | list[tuple[Hit, str]]:
    """The hits in one file with their source lines, or why it could not be scanned."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        return V2FileError(
            Path(path), _messages.V2_FILE_UNREADABLE.format(error=exc.strerror or exc)
        )
    is_package = os.path.basename(path) == "__init__.py"
    if is_allowed or not prefilter.needs_parse(data, module, is_package):
        if parse_all and not _compiles(data, path):
            parsed = _parse(data, path)  # the parser has the last word, and words the error
            if isinstance(parsed, V2FileError):
                return parsed
        return []
    tree = _parse(data, path)
    if isinstance(tree, V2FileError):
        return tree
    deep = may_import_dynamically(data)
    # Non-ASCII names may be spelt otherwise than the tree has them: walk it all.
    lines = _source_lines(data) if deep and data.isascii() else None
    hits = find_v2_imports(tree, module, is_package, v2, deep, lines)
    if not hits:
        return []
    if lines is None:
        lines = _source_lines(data)
    return [
        (hit, lines[hit.line - 1].strip() if 0 < hit.line <= len(lines) else "") for hit in hits
    ]


def _compiles(data: bytes, path: str) -> bool:
    """``data`` compiles: then it parses (the cheaper check: no Python objects per node)."""
    try:
        compile(data, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False  # maybe only the compiler's objection: the parser decides
    return True


def _parse(data: bytes, path: str) -> ast.Module | V2FileError:
    try:
        return ast.parse(data, filename=path)
    except SyntaxError as exc:
        if exc.lineno:
            message = _messages.V2_FILE_UNPARSABLE_AT.format(line=exc.lineno, error=exc.msg)
        else:
            message = _messages.V2_FILE_UNPARSABLE.format(error=exc.msg)
        return V2FileError(Path(path), message)
    except (ValueError, RecursionError, MemoryError) as exc:
        return V2FileError(Path(path), _messages.V2_FILE_UNPARSABLE.format(error=exc))


_NEWLINE: Final = re.compile(r"\r\n|\r|\n")


def _source_lines(data: bytes) -> list[str]:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"
    # Split as the tokenizer counts lines: ``str.splitlines`` also splits on \f etc.
    return _NEWLINE.split(data.decode(encoding, errors="replace"))


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def format_violations(result: V2ScanResult, rules: V2Rules) -> str:
    """The message a user reads when the static v2 check fails.

    In order: what happened, the violations (then unreadable files and
    unresolved dynamic imports) as bullets, how to fix it, where to read more.
    """
    if result.ok and not result.unresolved:
        return _messages.V2_SCAN_CLEAN.format(files=result.files_scanned)
    lines: list[str] = []
    if not result.violations and not result.errors:
        lines.append(_messages.V2_SCAN_CLEAN.format(files=result.files_scanned))
    if result.violations:
        count = len(result.violations)
        lines.append(_messages.V2_SCAN_HEADLINE.format(count=count, s=_plural(count)) + ":")
        for v in result.violations:
            how = f"{v.how}, {_messages.V2_TYPE_CHECKING_ONLY}" if v.type_checking else v.how
            lines.append(
                _messages.V2_SCAN_VIOLATION_BULLET.format(
                    path=v.path, line=v.line, importer=v.importer, module=v.module, how=how
                )
            )
    if result.errors:
        count = len(result.errors)
        lines.append(_messages.V2_SCAN_ERRORS_HEADLINE.format(count=count, s=_plural(count)) + ":")
        lines.extend(
            _messages.V2_SCAN_ERROR_BULLET.format(path=e.path, message=e.message)
            for e in result.errors
        )
    if result.unresolved:
        count = len(result.unresolved)
        lines.append(
            _messages.V2_SCAN_UNRESOLVED_HEADLINE.format(count=count, s=_plural(count)) + ":"
        )
        lines.extend(
            _messages.V2_SCAN_UNRESOLVED_BULLET.format(
                path=u.path, line=u.line, importer=u.importer, reason=u.reason, how=u.how
            )
            for u in result.unresolved
        )
    lines.append(_messages.V2_SCAN_FIX.format(bridges=bridge_list(rules.bridge_modules)))
    # An __init__ importing a v2 module of its own package: a re-export, which
    # naming the package (not the module) as v2 allows.
    lines.extend(
        dict.fromkeys(
            _messages.V2_SCAN_REEXPORT_HINT.format(package=v.importer, module=v.module)
            for v in result.violations
            if v.path.name == "__init__.py" and v.module.startswith(v.importer + ".")
        )
    )
    lines.append(_messages.V2_READ_MORE)
    return "\n".join(lines)
