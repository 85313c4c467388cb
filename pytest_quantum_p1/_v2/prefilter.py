"""Which files need parsing at all: a text-level test that never drops a file with a finding.

Parsing is what the scan costs (``ast.parse`` runs at 100-400 files/s), and
almost no file of a real tree touches v2. A file can only hold a finding
(a v2 import, or an import the scan cannot resolve) if its text has one of:

- the last component of a v2 module as a whole word, after an ``import`` or
  ``from`` with only what an import statement holds between them (names,
  dots, commas, parentheses, whitespace, continuations, comments): every
  import statement that reaches ``a.b.c`` from outside it spells ``c``;
- ``import_module`` or ``__import__`` not followed by a call whose only
  argument is a plain string naming a module outside v2 (an alias, ``as``,
  or any other argument keeps the file);
- ``import *`` not written as a plain ``from x import *`` whose module is
  not the parent of a v2 module;
- a relative import with more leading dots than the module has packages
  (it climbs beyond the top-level package).

Everything else is dropped without parsing. Non-ASCII files are tested both
as written and NFKC-normalised, as the parser normalises identifiers.
"""

from __future__ import annotations

import io
import re
import tokenize
import unicodedata
from collections.abc import Sequence
from typing import Final

from pytest_quantum_p1._v2.modules import ModuleSet, absolute

__all__ = ["Prefilter"]

_KEYWORDS: Final = ("import", "from")
# What may stand between ``import``/``from`` and a name the statement imports.
_NOT_IN_STATEMENT: Final = re.compile(r"[^\w\s.,()\\]")
_DYNAMIC: Final = ("import_module", "__import__")
# After a dynamic-import name: blanks, continuations and comments, possessively.
_GAP: Final = re.compile(r"(?:[\s\\]++|#[^\n]*+)*+")
# A call whose only argument is one plain string literal of a dotted name.
_SIMPLE_CALL: Final = re.compile(r"\(\s*(['\"])([\w.]*)\1\s*\)")
# ``import_module("x", ...)``: a plain name, then more arguments.
_KEYWORDS_CALL: Final = re.compile(r"\(\s*(['\"])([\w.]*)\1\s*,")
_NAME_KEYWORD: Final = re.compile(r"\bname\s*=(?!=)")
_QUOTES: Final = frozenset("'\"")
_OPEN: Final = frozenset("([{")
_CLOSE: Final = frozenset(")]}")
_AS: Final = re.compile(r"as\b")
_STAR: Final = re.compile(r"import[\s\\]*\*")
_STAR_STATEMENT: Final = re.compile(
    r"(?<![\w.])from(?=[ \t.])[ \t]*((?:\.[ \t]*)*)([\w.]*)[ \t]+import[ \t]*\*"
)
_RELATIVE: Final = re.compile(r"from((?:[\s\\]*\.)+)")


class Prefilter:
    """Decides, from a file's bytes, whether the scan must parse it (see the module doc)."""

    def __init__(self, v2_modules: Sequence[str]) -> None:
        self._v2 = ModuleSet(v2_modules)
        names = {m.rpartition(".")[2] for m in v2_modules}
        self._needles = tuple(sorted(names | {unicodedata.normalize("NFKC", n) for n in names}))

    def needs_parse(self, data: bytes, module: str, is_package: bool) -> bool:
        """Whether ``data``, the source of ``module``, may hold a finding."""
        package = module if is_package else module.rpartition(".")[0]
        if data.isascii():
            return self._may_hold(data.decode("ascii"), package)
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            text = data.decode(encoding)
        except (SyntaxError, LookupError, UnicodeDecodeError):
            return True  # the parser will say why
        return self._may_hold(text, package) or self._may_hold(
            unicodedata.normalize("NFKC", text), package
        )

    def _may_hold(self, text: str, package: str) -> bool:
        return (
            any(needle in text and _imports_word(text, needle) for needle in self._needles)
            or any(name in text and self._dynamic(text, name) for name in _DYNAMIC)
            or ("*" in text and self._star(text, package))
            or ("from" in text and _beyond(text, package))
        )

    def _dynamic(self, text: str, name: str) -> bool:
        """Some use of ``name`` may be a dynamic import the scan reports."""
        start = text.find(name)
        while start != -1:
            gap = _GAP.match(text, start + len(name))
            after = gap.end() if gap else start + len(name)
            if text.startswith("(", after):
                call = _SIMPLE_CALL.match(text, after)
                if call is None:
                    call = _KEYWORDS_CALL.match(text, after) if name == "import_module" else None
                    # Further arguments are harmless unless one is ``name=``: then the
                    # scan reads that one.
                    if call is None or _names_keyword(text, call.end()):
                        return True
                target = call.group(2)
                if target.startswith(".") or self._v2.owner(target) is not None:
                    return True
            elif _AS.match(text, after):
                return True
            start = text.find(name, start + len(name))
        return False

    def _star(self, text: str, package: str) -> bool:
        """Some ``import *`` may reach into a v2 package or be unresolvable."""
        for star in _STAR.finditer(text):
            # A plain star import sits on one line: look for its ``from`` there only.
            line_start = text.rfind("\n", 0, star.start()) + 1
            found = _STAR_STATEMENT.search(text, line_start, star.end())
            if found is None or found.end() != star.end():
                return True
            level = found.group(1).count(".")
            base = absolute(found.group(2), level, package)
            if base is None or self._v2.is_parent_of_member(base):
                return True
        return False


def _names_keyword(text: str, start: int) -> bool:
    """The call whose arguments go on at ``start`` may pass ``name=`` (or cannot be followed).

    Brackets are counted to the call's closing parenthesis, skipping strings
    and comments; an f-string (whose braces may hold quotes) stops the count.
    """
    depth = 0
    index = start
    size = len(text)
    while index < size:
        char = text[index]
        if char in _QUOTES:
            if text[index - 1] in "fF" or text[index - 2 : index].lower() in ("rf", "fr"):
                return True
            quote = text[index : index + 3] if text.startswith(char * 3, index) else char
            index += len(quote)
            while index < size and not text.startswith(quote, index):
                index += 2 if text[index] == "\\" else 1
            index += len(quote)
            continue
        if char == "#":
            newline = text.find("\n", index)
            index = size if newline == -1 else newline
            continue
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            if not depth:
                return _NAME_KEYWORD.search(text, start, index) is not None
            depth -= 1
        index += 1
    return True


def _imports_word(text: str, needle: str) -> bool:
    """``needle`` occurs as a whole word that an import statement may be naming."""
    start = text.find(needle)
    while start != -1:
        end = start + len(needle)
        whole = not (start and _is_word(text[start - 1])) and not (
            end < len(text) and _is_word(text[end])
        )
        if whole and _after_keyword(text, start):
            return True
        start = text.find(needle, end)
    return False


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _after_keyword(text: str, position: int) -> bool:
    """Only import-statement text lies between the nearest ``import``/``from`` and ``position``.

    The nearest keyword spelling may sit inside a name or a comment of the
    statement: then the text after it is still part of the statement. Each
    line is cut at its first ``#`` (a ``#`` in a string only cuts more), and
    lines are checked from ``position`` backwards, so most words far from any
    import statement are dismissed on their own line.
    """
    keyword = max(text.rfind(k, 0, position) for k in _KEYWORDS)
    if keyword == -1:
        return False
    end = position
    while True:
        line_start = text.rfind("\n", 0, end) + 1
        if line_start <= keyword:
            line = text[line_start:end]
            offset = keyword - line_start
            comment = line.find("#")
            if comment != -1 and comment <= offset:
                return True  # the keyword is in a comment: what follows it is unknown
            part = line[offset:] if comment == -1 else line[offset:comment]
            return not _NOT_IN_STATEMENT.search(part)
        if _NOT_IN_STATEMENT.search(text[line_start:end].split("#", 1)[0]):
            return False
        end = line_start - 1


def _beyond(text: str, package: str) -> bool:
    """Some relative import has more leading dots than ``package`` has parts."""
    depth = len(package.split(".")) if package else 0
    return any(match.group(1).count(".") > depth for match in _RELATIVE.finditer(text))
