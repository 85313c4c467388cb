"""The file-level P1-3 checks: the legacy v2 files are gone, the docs carry the notice.

:func:`check_removed` looks for removed paths where they lived (never by name
elsewhere: a name is no evidence), :func:`homeless` names those whose directory
is gone (nothing was looked at); :func:`check_docs` looks for the deprecation
notice's phrases.
Imports only the standard library and the harness's texts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pytest_quantum_p1 import _messages

__all__ = ["check_docs", "check_removed", "homeless"]

_GLOB_CHARS: Final = re.compile(r"[*?\[]")


def check_removed(removed_paths: Sequence[Path]) -> list[Path]:
    """The removed paths that still exist where they lived, sorted and without duplicates.

    Each path is looked for at its own place only; a name may be a glob
    (``test_v2_*.py``), matched in the path's own directory. A file of the same
    name elsewhere is not evidence of anything: it may be an unrelated live
    module, or the legacy file archived, which the seed allows ("Delete or
    archive").
    """
    found: dict[str, Path] = {}
    for removed in removed_paths:
        removed = Path(removed)
        if _GLOB_CHARS.search(removed.name):
            matches = list(removed.parent.glob(removed.name))
        else:
            matches = [removed] if os.path.lexists(removed) else []
        for match in matches:
            found.setdefault(os.path.abspath(match), Path(os.path.abspath(match)))
    return sorted(found.values())


def homeless(removed_paths: Sequence[Path]) -> list[Path]:
    """The removed paths whose own directory does not exist.

    Such a path is absent trivially: a mistyped path (or a root relative to
    another working directory) would pass without anything being looked at.
    """
    return [Path(p) for p in removed_paths if not Path(p).parent.is_dir()]


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
