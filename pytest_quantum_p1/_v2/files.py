"""The file-level P1-3 checks: the legacy v2 files are gone, the docs carry the notice.

:func:`check_removed` looks for removed paths (by path and by name under the
source roots); :func:`check_docs` looks for the deprecation notice's phrases.
Imports only the standard library and the harness's texts.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._v2.sources import walk

__all__ = ["check_docs", "check_removed"]

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
        for current, dirnames, filenames in walk(root):
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
            problems.append(_messages.V2_DOC_MISSING.format(doc=doc))
            continue
        try:
            text = _normalise(doc.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            problems.append(_messages.V2_DOC_UNREADABLE.format(doc=doc, error=exc.strerror or exc))
            continue
        problems.extend(
            _messages.V2_DOC_PHRASE_MISSING.format(doc=doc, phrase=phrase)
            for phrase, needle in wanted
            if needle not in text
        )
    return problems
