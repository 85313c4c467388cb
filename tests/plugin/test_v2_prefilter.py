"""The v2 scan's pre-filter never drops a file that has a finding, and the fast scan finds the same.

The pre-filter (``_v2/prefilter.py``) decides from a file's text whether it
needs parsing; a wrong "no" would hide a v2 import. Hypothesis writes import
statements of many shapes (every static form, relative levels, star imports,
``__import__`` and ``importlib.import_module`` with literals split and joined
in every way the scan resolves, aliases, comments, strings, continuation
lines, ``if TYPE_CHECKING:`` and function bodies), and every file that the
full AST walk finds a hit in must be one the pre-filter keeps.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_quantum_p1._v2 import (
    HOW_FROM,
    HOW_IMPORT,
    HOW_IMPORT_MODULE,
    V2FileError,
    scan_v2_usage,
)
from pytest_quantum_p1._v2.imports import find_v2_imports
from pytest_quantum_p1._v2.modules import ModuleSet
from pytest_quantum_p1._v2.prefilter import Prefilter
from pytest_quantum_p1._v2.scan import _source_lines

V2 = ("app.federation.engine_v2", "app.legacy")
PREFILTER = Prefilter(V2)
V2_SET = ModuleSet(V2)
# Names a statement may write: v2 modules, their parents and children, near misses.
DOTTED = (
    "app",
    "app.federation",
    "app.federation.engine_v2",
    "app.federation.engine_v2.core",
    "app.federation.engine_v2_extra",
    "app.legacy",
    "app.legacy.wire",
    "app.services",
    "federation",
    "federation.engine_v2",
    "engine_v2",
    "legacy",
    "os.path",
)
NAMES = ("engine_v2", "legacy", "wire", "bridge", "Engine", "path", "core")
# The module the generated file is: (dotted name, is a package's __init__).
IMPORTERS = (
    ("app.services.mod", False),
    ("app.services", True),
    ("app.federation.neighbour", False),
    ("app", True),
    ("tool", False),
)

_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _quoted(text: str) -> str:
    return repr(text)


@st.composite
def name_expressions(draw: st.DrawFn) -> str:
    """An expression for a module name, in the shapes the scan resolves and some it cannot."""
    name = draw(st.sampled_from((*DOTTED, ".engine_v2", "..federation.engine_v2", ".legacy")))
    cut = draw(st.integers(0, len(name)))
    head, tail = name[:cut], name[cut:]
    shape = draw(
        st.sampled_from(("literal", "plus", "implicit", "lines", "fstring", "variable", "dunder"))
    )
    if shape == "literal":
        return _quoted(name)
    if shape == "plus":
        return f"{_quoted(head)} + {_quoted(tail)}"
    if shape == "implicit":
        return f"{_quoted(head)} {_quoted(tail)}"
    if shape == "lines":
        return f"(\n    {_quoted(head)}\n    {_quoted(tail)}\n)"
    if shape == "fstring":
        return f'f"{head}{{{_quoted(tail)}}}"'
    if shape == "dunder":
        return draw(st.sampled_from(("__name__", "__package__"))) + f" + {_quoted(tail)}"
    return draw(st.sampled_from(("name", "names[0]", "prefix + suffix")))


@st.composite
def statements(draw: st.DrawFn) -> str:
    """One import-ish statement (or a decoy that only looks like one)."""
    dotted = draw(st.sampled_from(DOTTED))
    name = draw(st.sampled_from(NAMES))
    dots = "." * draw(st.integers(0, 4))
    alias = draw(st.sampled_from(("", " as x", " as engine_v2")))
    shape = draw(st.sampled_from(range(18)))
    if shape == 0:
        return f"import {dotted}{alias}"
    if shape == 1:
        return f"import os, {dotted}{alias}"
    if shape == 2:
        return (
            f"from {dots}{dotted if dots == '' else dotted.rpartition('.')[2]} import {name}{alias}"
        )
    if shape == 3:
        base = dots + ("" if dots and draw(st.booleans()) else dotted)
        return f"from {base} import {name}{alias}"
    if shape == 4:
        base = dots + ("" if dots and draw(st.booleans()) else dotted)
        return f"from {base} import (  # see: the {name}!\n    Engine,\n    {name}{alias},  # x\n)"
    if shape == 5:
        # The parents of v2 modules, written absolute or relative, and a near miss.
        base = draw(st.sampled_from(("app", "app.federation", "app.services", "..", ".", "...")))
        return f"from {base} import *"
    if shape == 6:
        return f"from {dotted} \\\n    import {name}"
    if shape == 7:
        return f"import importlib\nimportlib.import_module({draw(name_expressions())})"
    if shape == 8:
        package = draw(st.sampled_from(('"app.federation"', "__package__", "pkg", "None")))
        return f"import importlib\nimportlib.import_module({draw(name_expressions())}, {package})"
    if shape == 9:
        extra = draw(
            st.sampled_from(
                (
                    'min_module_version="1.0"',
                    "import_kwargs={'fromlist': ['x)']}",
                    "catch=(OSError,), name=name",
                    f"name={_quoted(dotted)}",
                    "f'{x}'",
                )
            )
        )
        first = draw(st.one_of(st.sampled_from(("'os'", "'numpy'")), name_expressions()))
        return f"from x import import_module\nimport_module({first}, {extra})"
    if shape == 10:
        fromlist = draw(st.sampled_from(("", ", fromlist=['engine_v2']", ", fromlist=names")))
        return f"__import__({draw(name_expressions())}{fromlist})"
    if shape == 11:
        level = draw(st.integers(0, 3))
        return f"__import__({draw(name_expressions())}, globals(), None, ['{name}'], {level})"
    if shape == 12:
        return (
            "from importlib import import_module as load\n"
            f"def f():\n    return load({draw(name_expressions())})"
        )
    if shape == 13:
        return f"from builtins import __import__ as imp\nimp({draw(name_expressions())})"
    if shape == 14:
        return f"builtins.__import__({draw(name_expressions())})"
    if shape == 15:
        return f"# import {dotted}\nTEXT = 'from {dotted} import {name}'"
    if shape == 16:
        return f"{name} = 1\nx = {name}.attr  # {dotted}"
    return f"x = (importlib.import_module\n     ({draw(name_expressions())}))"


@st.composite
def sources(draw: st.DrawFn, size: int = 4) -> str:
    """A module of a few statements, some wrapped as real code wraps imports."""
    parts = []
    for statement in draw(st.lists(statements(), min_size=1, max_size=size)):
        wrap = draw(st.sampled_from(("", "if", "def", "try", "class")))
        body = textwrap.indent(statement, "    ")
        if wrap == "if":
            parts.append(f"if TYPE_CHECKING:\n{body}\nelse:\n    pass")
        elif wrap == "def":
            parts.append(f"def f():\n{body}")
        elif wrap == "try":
            parts.append(f"try:\n{body}\nexcept ImportError:\n    pass")
        elif wrap == "class":
            parts.append(f"class C:\n{body}")
        else:
            parts.append(statement)
    return "\n".join(parts) + "\n"


def _hits(source: str, module: str, is_package: bool) -> list[tuple[int, str | None, str]]:
    tree = ast.parse(source)
    return [(h.line, h.module, h.reason) for h in find_v2_imports(tree, module, is_package, V2_SET)]


@_SETTINGS
@given(st.one_of(sources(size=1), sources()), st.sampled_from(IMPORTERS))
def test_the_prefilter_keeps_every_file_with_a_finding(
    source: str, importer: tuple[str, bool]
) -> None:
    # Files of one statement too: in a longer file another statement may hide a miss.
    module, is_package = importer
    try:
        hits = _hits(source, module, is_package)
    except SyntaxError:
        return  # a shape that does not parse here (e.g. a level beyond a top-level module)
    if hits:
        assert PREFILTER.needs_parse(source.encode(), module, is_package), (source, hits)


@_SETTINGS
@given(sources(), st.sampled_from(IMPORTERS))
def test_the_narrowed_deep_walk_finds_what_the_full_walk_finds(
    source: str, importer: tuple[str, bool]
) -> None:
    module, is_package = importer
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    full = find_v2_imports(tree, module, is_package, V2_SET)
    lines = _source_lines(source.encode())
    narrowed = find_v2_imports(ast.parse(source), module, is_package, V2_SET, True, lines)
    assert narrowed == full


@pytest.mark.parametrize(
    "source",
    [
        "import app.federation.engine_v2\n",
        "from app.federation import (\n    bridge,  # the: bridge!\n    engine_v2,\n)\n",
        "from app.federation \\\n    import engine_v2\n",
        "from ..federation import engine_v2\n",
        "from ..legacy.wire import x\n",
        "from app import *\n",
        "from app.federation import *\n",
        "from .... import x\n",
        "import importlib\nimportlib.import_module(NAME)\n",
        "import importlib\nimportlib.import_module('app.federation.' + 'engine_v2')\n",
        "import importlib\nimportlib.import_module('app.federation.engine' '_v2')\n",
        "import_module('os', name='app.legacy')\n",
        "import_module('os', extra=f'{x}', name='app.legacy')\n",
        "import_module('os', extra=')', name='app.legacy')\n",
        "import_module('.engine_v2', 'app.federation')\n",
        "from importlib import import_module as load\nload('app.legacy')\n",
        "__import__('app.federation', fromlist=['engine_v2'])\n",
        "import app.federation.\uff45ngine_v2\n",  # full-width e: the parser normalises it
    ],
)
def test_shapes_that_reach_v2_are_kept(source: str) -> None:
    module, is_package = "app.services.mod", False
    assert _hits(source, module, is_package), source  # the shape is a finding
    assert PREFILTER.needs_parse(source.encode(), module, is_package)


@pytest.mark.parametrize(
    "source",
    [
        "import os\nfrom app.federation import bridge\n",
        "ENGINE = 'app.federation.engine_v2'\n",
        "legacy = load_legacy()  # the legacy store\nprint(legacy)\n",
        "engine_v2 = None\nprint(engine_v2)\n",
        "from app.services import *\n",
        "from . import helpers\n",
        "import importlib\nimportlib.import_module('os.path')\n",
        "import_module('numpy', import_kwargs={'fromlist': ['x)']}, min_module_version='1.0')\n",
        "__import__('os')\n",
    ],
)
def test_files_that_cannot_reach_v2_are_not_parsed(source: str) -> None:
    module, is_package = "app.services.mod", False
    assert not _hits(source, module, is_package)
    assert not PREFILTER.needs_parse(source.encode(), module, is_package)


def _write(base: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


TREE = {
    "app/__init__.py": "",
    "app/federation/__init__.py": "",
    "app/federation/engine_v2.py": "import app.legacy\n",
    "app/federation/bridge.py": "from . import engine_v2\n",
    "app/legacy/__init__.py": "",
    "app/services/__init__.py": "from .. import *\n",
    "app/services/a.py": "import os\nif TYPE_CHECKING:\n    from app.federation import engine_v2\n",
    "app/services/b.py": "import importlib\nimportlib.import_module(name)\nimport app.legacy.x\n",
    "app/services/c.py": "def broken(:\n",
    "app/services/d.py": "def broken(:\n    import app.legacy\n",
    "app/services/e.py": "VALUE = 1\n",
}


@pytest.mark.parametrize("parse_all", [True, False])
def test_the_fast_scan_finds_the_same_violations_and_unresolved_imports(
    tmp_path: Path, parse_all: bool
) -> None:
    _write(tmp_path, TREE)
    result = scan_v2_usage([tmp_path / "app"], V2, ["app.federation.bridge"], parse_all=parse_all)
    assert result.files_scanned == len(TREE)
    assert [(v.importer, v.line, v.module, v.how, v.type_checking) for v in result.violations] == [
        ("app.services.a", 3, "app.federation.engine_v2", HOW_FROM, True),
        ("app.services.b", 3, "app.legacy", HOW_IMPORT, False),
    ]
    assert [(u.importer, u.line, u.how) for u in result.unresolved] == [
        ("app.services", 1, HOW_FROM),
        ("app.services.b", 2, HOW_IMPORT_MODULE),
    ]


def test_without_parse_all_only_files_that_may_reach_v2_must_parse(tmp_path: Path) -> None:
    _write(tmp_path, TREE)
    full = scan_v2_usage([tmp_path / "app"], V2, ["app.federation.bridge"])
    fast = scan_v2_usage([tmp_path / "app"], V2, ["app.federation.bridge"], parse_all=False)
    broken_c = V2FileError(tmp_path / "app/services/c.py", "does not parse: line 1: invalid syntax")
    broken_d = V2FileError(tmp_path / "app/services/d.py", "does not parse: line 1: invalid syntax")
    assert full.errors == (broken_c, broken_d)
    # c.py cannot spell a v2 import, parsed or not; d.py might, so it still must parse.
    assert fast.errors == (broken_d,)
    assert not fast.ok


def test_a_file_only_the_compiler_rejects_is_not_an_error(tmp_path: Path) -> None:
    # ``return`` outside a function parses (the scan's question) but does not compile.
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/v2.py": "", "pkg/odd.py": "return 1\n"})
    result = scan_v2_usage([tmp_path / "pkg"], ["pkg.v2"], [])
    assert result.errors == ()
    assert result.ok
