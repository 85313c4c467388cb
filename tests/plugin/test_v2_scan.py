"""The static P1-3 checks: v2 import scan, removed files, documentation notice."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_quantum_p1._messages import (
    V2_DOC_MISSING,
    V2_DOC_PHRASE_MISSING,
    V2_READ_MORE,
    V2_SCAN_CLEAN,
    V2_SCAN_ERRORS_HEADLINE,
    V2_SCAN_FIX,
    V2_SCAN_HEADLINE,
    V2_SCAN_REEXPORT_HINT,
    V2_SCAN_UNRESOLVED_HEADLINE,
    V2_TYPE_CHECKING_ONLY,
)
from pytest_quantum_p1._target import V2Rules
from pytest_quantum_p1._v2 import (
    HOW_DUNDER_IMPORT,
    HOW_FROM,
    HOW_IMPORT,
    HOW_IMPORT_MODULE,
    V2FileError,
    V2ScanResult,
    V2Unresolved,
    V2Violation,
    check_docs,
    check_removed,
    format_violations,
    scan_v2_usage,
)

ENGINE = "app.federation.engine_v2"
LEGACY = "app.federation.legacy_v2"
V2_MODULES = (ENGINE, LEGACY)
BRIDGE = "app.federation.bridge"
BRIDGES = (BRIDGE,)

# Offending lines end in ``# <tag>`` so expectations can name lines by tag.
SOURCES: dict[str, str] = {
    "app/__init__.py": "",
    "app/federation/__init__.py": """\
        '''A package __init__: relative imports resolve against the package itself.'''
        from .engine_v2 import Engine  # init-relative
        """,
    "app/federation/engine_v2.py": """\
        # The v2 modules may import each other.
        import app.federation.legacy_v2.sub
        from . import legacy_v2

        class Engine:
            pass
        """,
    "app/federation/legacy_v2/__init__.py": "",
    "app/federation/legacy_v2/sub.py": """\
        # A submodule of a v2 package is part of v2.
        from .. import engine_v2
        """,
    "app/federation/bridge.py": """\
        import importlib
        import app.federation.engine_v2
        from .engine_v2 import Engine
        from . import legacy_v2

        def load(name):
            return importlib.import_module(name)
        """,
    "app/federation/neighbour.py": """\
        from .engine_v2 import Engine  # from-dot-module
        from . import engine_v2  # from-dot-name
        from . import bridge, legacy_v2  # from-dot-second-name
        """,
    "app/services/__init__.py": "",
    "app/services/offenders.py": """\
        '''Every static form.'''
        from __future__ import annotations

        import typing
        from typing import TYPE_CHECKING

        import app.federation.engine_v2  # import-plain
        import app.federation.engine_v2 as eng  # import-as
        import os, app.federation.legacy_v2.sub  # import-submodule
        from app.federation import engine_v2  # from-name
        from app.federation.engine_v2 import Engine  # from-module
        from ..federation import engine_v2 as e2  # from-relative-name
        from ..federation.engine_v2 import Engine as E  # from-relative-module
        from app.federation import (  # from-multiline
            bridge,
            engine_v2 as again,
        )
        from app.federation.legacy_v2.sub import thing  # from-v2-submodule

        if TYPE_CHECKING:
            from app.federation.engine_v2 import Engine as T  # type-checking
        else:
            import app.federation.legacy_v2 as runtime  # type-checking-else

        if typing.TYPE_CHECKING:
            import app.federation.engine_v2 as T2  # type-checking-attribute

        if not TYPE_CHECKING:
            import app.federation.engine_v2 as NT  # not-type-checking
        else:
            import app.federation.engine_v2 as NT2  # not-type-checking-else

        try:
            import app.federation.engine_v2 as maybe  # in-try
        except ImportError:
            maybe = None


        def later():
            from app.federation import engine_v2  # in-function

            return engine_v2


        class Lazy:
            def method(self):
                import app.federation.legacy_v2  # in-method
        """,
    "app/services/dynamic.py": """\
        import builtins
        import importlib
        import importlib as il
        from importlib import import_module
        from importlib import import_module as load

        importlib.import_module("app.federation.engine_v2")  # im-plain
        il.import_module("app.federation.engine_v2")  # im-module-alias
        import_module("app.federation.engine_v2")  # im-from
        load("app.federation.legacy_v2")  # im-asname
        importlib.import_module(".engine_v2", package="app.federation")  # im-package-kw
        importlib.import_module(".engine_v2", "app.federation")  # im-package-positional
        importlib.import_module("..federation.engine_v2", __package__)  # im-dunder-package
        importlib.import_module("app.federation." "engine_v2")  # im-implicit-concat
        importlib.import_module("app.federation." + "engine_v2")  # im-plus
        importlib.import_module("app.federation.legacy_v2.sub")  # im-submodule
        __import__("app.federation.engine_v2")  # dunder-plain
        __import__("app.federation", fromlist=["engine_v2"])  # dunder-fromlist
        __import__("app.federation", globals(), locals(), ("bridge", "legacy_v2"), 0)  # dunder-pos
        __import__("federation.engine_v2", globals(), None, [], 2)  # dunder-level
        builtins.__import__("app.federation.engine_v2")  # dunder-builtins
        from app.federation import *  # unresolved-star
        from ... import elsewhere  # unresolved-beyond


        def dynamic(name):
            importlib.import_module(name)  # unresolved-name
            importlib.import_module(".engine_v2", package=name)  # unresolved-package
            importlib.import_module(f"app.federation.{name}")  # unresolved-fstring
            __import__(name)  # unresolved-dunder-name
            __import__("app.federation", fromlist=name)  # unresolved-fromlist
            importlib.import_module(".engine_v2")  # unresolved-no-package


        # Near misses: none of these reaches a v2 module.
        importlib.import_module("app.federation")
        importlib.import_module("app.federation.engine_v2_extra")
        importlib.import_module(".bridge", package="app.federation")
        __import__("app.federation", fromlist=["bridge"])
        __import__("app.services", fromlist=names)
        """,
    "app/services/clean.py": """\
        '''Mentions engine_v2 and legacy_v2 in text only.'''
        import app.federation
        import app.federation.engine_v2_extra
        import app.federation.bridge
        from app import federation
        from .. import federation as fed
        from ..federation import bridge
        from app.federation.bridge import load

        TEXT = "import app.federation.engine_v2"
        # from app.federation import engine_v2
        """,
    "app/services/escapes.py": """\
        # An invalid escape warns while parsing; under -W error it must not become an error.
        PATTERN = "\\d+"
        """,
    "app/services/broken.py": """\
        import app.federation.engine_v2

        def broken(:
            pass
        """,
    # Never scanned: hidden, cache and virtualenv directories, and non-.py files.
    "app/.hidden/evil.py": "import app.federation.engine_v2\n",
    "app/__pycache__/evil.py": "import app.federation.engine_v2\n",
    "app/envdir/pyvenv.cfg": "home = /usr/bin\n",
    "app/envdir/lib/evil.py": "import app.federation.engine_v2\n",
    "app/services/notes.txt": "import app.federation.engine_v2\n",
}
PY_FILES = 13  # the .py files above that are scanned


def write_tree(base: Path, sources: dict[str, str]) -> None:
    for rel, text in sources.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def line_of(base: Path, rel: str, tag: str) -> int:
    """The 1-based line of ``rel`` ending in ``# tag``."""
    lines = (base / rel).read_text(encoding="utf-8").split("\n")
    matches = [n for n, line in enumerate(lines, 1) if line.endswith(f"# {tag}")]
    assert len(matches) == 1, (rel, tag, matches)
    return matches[0]


def text_of(base: Path, rel: str, tag: str) -> str:
    return (base / rel).read_text(encoding="utf-8").split("\n")[line_of(base, rel, tag) - 1].strip()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write_tree(tmp_path, SOURCES)
    return tmp_path


@pytest.fixture
def result(tree: Path) -> V2ScanResult:
    return scan_v2_usage([tree / "app"], V2_MODULES, BRIDGES)


def rules_for(roots: tuple[Path, ...], bridges: tuple[str, ...] = BRIDGES) -> V2Rules:
    return V2Rules(
        source_roots=roots,
        v2_modules=V2_MODULES,
        bridge_modules=bridges,
        removed_paths=(),
        docs=(),
        doc_notice=(),
        engine_class=f"{ENGINE}:Engine",
    )


INIT = "app/federation/__init__.py"
NEIGHBOUR = "app/federation/neighbour.py"
DYNAMIC = "app/services/dynamic.py"
OFFENDERS = "app/services/offenders.py"
IMPORT_MODULE = HOW_IMPORT_MODULE
DUNDER = HOW_DUNDER_IMPORT

# (file, tag, v2 module reached, how, TYPE_CHECKING only), in scan order.
EXPECTED_VIOLATIONS = [
    (INIT, "init-relative", ENGINE, HOW_FROM, False),
    (NEIGHBOUR, "from-dot-module", ENGINE, HOW_FROM, False),
    (NEIGHBOUR, "from-dot-name", ENGINE, HOW_FROM, False),
    (NEIGHBOUR, "from-dot-second-name", LEGACY, HOW_FROM, False),
    (DYNAMIC, "im-plain", ENGINE, IMPORT_MODULE, False),
    (DYNAMIC, "im-module-alias", ENGINE, IMPORT_MODULE, False),
    (DYNAMIC, "im-from", ENGINE, IMPORT_MODULE, False),
    (DYNAMIC, "im-asname", LEGACY, IMPORT_MODULE, False),
    (DYNAMIC, "im-package-kw", ENGINE, IMPORT_MODULE, False),
    (DYNAMIC, "im-package-positional", ENGINE, IMPORT_MODULE, False),
    (DYNAMIC, "im-dunder-package", ENGINE, IMPORT_MODULE, False),
    (DYNAMIC, "im-implicit-concat", ENGINE, IMPORT_MODULE, False),
    (DYNAMIC, "im-plus", ENGINE, IMPORT_MODULE, False),
    (DYNAMIC, "im-submodule", LEGACY, IMPORT_MODULE, False),
    (DYNAMIC, "dunder-plain", ENGINE, DUNDER, False),
    (DYNAMIC, "dunder-fromlist", ENGINE, DUNDER, False),
    (DYNAMIC, "dunder-pos", LEGACY, DUNDER, False),
    (DYNAMIC, "dunder-level", ENGINE, DUNDER, False),
    (DYNAMIC, "dunder-builtins", ENGINE, DUNDER, False),
    (OFFENDERS, "import-plain", ENGINE, HOW_IMPORT, False),
    (OFFENDERS, "import-as", ENGINE, HOW_IMPORT, False),
    (OFFENDERS, "import-submodule", LEGACY, HOW_IMPORT, False),
    (OFFENDERS, "from-name", ENGINE, HOW_FROM, False),
    (OFFENDERS, "from-module", ENGINE, HOW_FROM, False),
    (OFFENDERS, "from-relative-name", ENGINE, HOW_FROM, False),
    (OFFENDERS, "from-relative-module", ENGINE, HOW_FROM, False),
    (OFFENDERS, "from-multiline", ENGINE, HOW_FROM, False),
    (OFFENDERS, "from-v2-submodule", LEGACY, HOW_FROM, False),
    (OFFENDERS, "type-checking", ENGINE, HOW_FROM, True),
    (OFFENDERS, "type-checking-else", LEGACY, HOW_IMPORT, False),
    (OFFENDERS, "type-checking-attribute", ENGINE, HOW_IMPORT, True),
    (OFFENDERS, "not-type-checking", ENGINE, HOW_IMPORT, False),
    (OFFENDERS, "not-type-checking-else", ENGINE, HOW_IMPORT, True),
    (OFFENDERS, "in-try", ENGINE, HOW_IMPORT, False),
    (OFFENDERS, "in-function", ENGINE, HOW_FROM, False),
    (OFFENDERS, "in-method", LEGACY, HOW_IMPORT, False),
]

# (tag, how, reason) in app/services/dynamic.py, in scan order.
EXPECTED_UNRESOLVED = [
    ("unresolved-star", HOW_FROM, "star import from a package holding v2 modules"),
    ("unresolved-beyond", HOW_FROM, "relative import beyond the top-level package"),
    ("unresolved-name", IMPORT_MODULE, "module name is not a literal"),
    ("unresolved-package", IMPORT_MODULE, "package is not a literal"),
    ("unresolved-fstring", IMPORT_MODULE, "module name is not a literal"),
    ("unresolved-dunder-name", DUNDER, "module name is not a literal"),
    ("unresolved-fromlist", DUNDER, "fromlist is not a literal"),
    ("unresolved-no-package", IMPORT_MODULE, "relative name without a package"),
]


def module_of(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# -- the scan ------------------------------------------------------------------


def test_every_import_form_outside_the_bridge_is_a_violation(
    tree: Path, result: V2ScanResult
) -> None:
    expected = [
        V2Violation(
            path=tree / rel,
            line=line_of(tree, rel, tag),
            importer=module_of(rel),
            module=module,
            how=how,
            text=text_of(tree, rel, tag),
            type_checking=tc,
        )
        for rel, tag, module, how, tc in EXPECTED_VIOLATIONS
    ]
    assert list(result.violations) == expected


def test_non_literal_dynamic_imports_are_unresolved_not_violations(
    tree: Path, result: V2ScanResult
) -> None:
    expected = [
        V2Unresolved(
            path=tree / DYNAMIC,
            line=line_of(tree, DYNAMIC, tag),
            importer="app.services.dynamic",
            how=how,
            text=text_of(tree, DYNAMIC, tag),
            reason=reason,
        )
        for tag, how, reason in EXPECTED_UNRESOLVED
    ]
    assert list(result.unresolved) == expected


def test_unparsable_file_is_an_error_not_a_crash(tree: Path, result: V2ScanResult) -> None:
    assert result.errors == (
        V2FileError(tree / "app/services/broken.py", "does not parse: line 3: invalid syntax"),
    )
    assert not result.ok


def test_skipped_directories_and_non_python_files_are_not_counted(result: V2ScanResult) -> None:
    assert result.files_scanned == PY_FILES
    assert not any("evil" in str(v.path) for v in result.violations)


def test_bridge_and_v2_modules_may_import_v2(result: V2ScanResult) -> None:
    importers = {v.importer for v in result.violations} | {u.importer for u in result.unresolved}
    assert importers.isdisjoint(
        {BRIDGE, ENGINE, LEGACY, f"{LEGACY}.sub", "app.services.clean", "app.services.escapes"}
    )


def test_the_bridge_becomes_a_violation_when_it_is_not_configured(tree: Path) -> None:
    result = scan_v2_usage([tree / "app"], V2_MODULES, bridge_modules=())
    bridge_lines = [(v.line, v.module, v.how) for v in result.violations if v.importer == BRIDGE]
    assert bridge_lines == [(2, ENGINE, HOW_IMPORT), (3, ENGINE, HOW_FROM), (4, LEGACY, HOW_FROM)]


def test_a_clean_tree_is_ok(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            k: v
            for k, v in SOURCES.items()
            if k.startswith("app/federation/") or k == "app/__init__.py"
        }
        | {
            "app/federation/__init__.py": "",
            "app/federation/neighbour.py": "from . import bridge\n",
        },
    )
    result = scan_v2_usage([tmp_path / "app"], V2_MODULES, BRIDGES)
    assert result == V2ScanResult(files_scanned=7, violations=(), unresolved=(), errors=())
    assert result.ok
    assert format_violations(result, rules_for((tmp_path / "app",))) == V2_SCAN_CLEAN.format(
        files=7
    )


def test_unresolved_alone_keeps_the_result_ok(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pkg/__init__.py": "import importlib\nimportlib.import_module(NAME)\n"})
    result = scan_v2_usage([tmp_path / "pkg"], ["pkg.v2"], [])
    assert result.ok
    assert [(u.line, u.reason) for u in result.unresolved] == [(2, "module name is not a literal")]
    assert format_violations(result, rules_for((tmp_path / "pkg",))).split("\n")[:3] == [
        V2_SCAN_CLEAN.format(files=1),
        V2_SCAN_UNRESOLVED_HEADLINE.format(count=1, s="") + ":",
        f"- {tmp_path / 'pkg' / '__init__.py'}:2  pkg: module name is not a literal "
        "(importlib.import_module)",
    ]


def test_a_missing_root_is_an_error(tmp_path: Path) -> None:
    result = scan_v2_usage([tmp_path / "nowhere"], V2_MODULES, BRIDGES)
    assert result.errors == (V2FileError(tmp_path / "nowhere", "source root does not exist"),)
    assert result.files_scanned == 0
    assert not result.ok


def test_overlapping_roots_scan_each_file_once(tree: Path) -> None:
    result = scan_v2_usage([tree / "app", tree / "app" / "services"], V2_MODULES, BRIDGES)
    assert result.files_scanned == PY_FILES
    assert len(result.violations) == len(EXPECTED_VIOLATIONS)


def test_a_single_file_root_is_a_top_level_module(tmp_path: Path) -> None:
    write_tree(tmp_path, {"tool.py": "import pkg.v2\nfrom . import v2\n"})
    result = scan_v2_usage([tmp_path / "tool.py"], ["pkg.v2"], [])
    assert [(v.importer, v.line, v.how) for v in result.violations] == [("tool", 1, HOW_IMPORT)]
    assert [(u.line, u.reason) for u in result.unresolved] == [
        (2, "relative import beyond the top-level package")
    ]


def test_module_names_are_matched_by_whole_components(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/user.py": (
                "import pkg.v2x\nimport pkg.v\nfrom pkg import v2x\nimport pkg.v2.deep\n"
            ),
        },
    )
    result = scan_v2_usage([tmp_path / "pkg"], ["pkg.v2"], [])
    assert [(v.line, v.module) for v in result.violations] == [(4, "pkg.v2")]


def test_source_lines_are_counted_like_python_counts_them(tmp_path: Path) -> None:
    # A form feed or a Unicode line separator inside a line must not shift the numbers.
    source = "# -*- coding: utf-8 -*-\nX = '\u2028'  \x0c\nimport pkg.v2  # here\r\nimport pkg.v2\n"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_bytes(source.encode("utf-8"))
    result = scan_v2_usage([tmp_path / "pkg"], ["pkg.v2"], [])
    assert [(v.line, v.text) for v in result.violations] == [
        (3, "import pkg.v2  # here"),
        (4, "import pkg.v2"),
    ]


def test_deeply_nested_code_does_not_crash_the_scan(tmp_path: Path) -> None:
    # 900 nested additions parse, but would overflow a recursive AST visitor;
    # 3000 do not even parse, which is an error for that file only.
    tail = "\nimport importlib\nimportlib.import_module('p.v2')\n"
    write_tree(
        tmp_path,
        {
            "p/__init__.py": "x = " + "+".join(["1"] * 900) + tail,
            "p/deeper.py": "x = " + "+".join(["1"] * 3000) + tail,
        },
    )
    result = scan_v2_usage([tmp_path / "p"], ["p.v2"], [])
    assert [(v.importer, v.line, v.how) for v in result.violations] == [("p", 3, HOW_IMPORT_MODULE)]
    assert [(e.path.name, e.message.split(":")[0]) for e in result.errors] == [
        ("deeper.py", "does not parse")
    ]


# -- messages ------------------------------------------------------------------


def test_violation_str_names_place_importer_module_and_how(tree: Path) -> None:
    rel = "app/services/offenders.py"
    violation = V2Violation(
        tree / rel, 7, "app.services.offenders", ENGINE, HOW_IMPORT, "import x", False
    )
    assert str(violation) == (
        f"{tree / rel}:7: app.services.offenders imports v2 module {ENGINE} via import: import x"
    )
    tc = V2Violation(tree / rel, 7, "m", ENGINE, HOW_FROM, "from x import y", True)
    assert str(tc).endswith(f"via from: from x import y ({V2_TYPE_CHECKING_ONLY})")


def test_format_violations_follows_the_style_order(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/v2.py": "",
            "pkg/bridge.py": "from . import v2\n",
            "pkg/a.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg import v2\n",
            "pkg/b.py": (
                "import importlib\n\n"
                "importlib.import_module('.v2', 'pkg')\n"
                "importlib.import_module(x)\n"
            ),
            "pkg/c.py": "def (\n",
        },
    )
    result = scan_v2_usage([tmp_path / "pkg"], ["pkg.v2"], ["pkg.bridge"])
    rules = V2Rules(
        source_roots=(tmp_path / "pkg",),
        v2_modules=("pkg.v2",),
        bridge_modules=("pkg.bridge", "pkg.other_bridge"),
        removed_paths=(),
        docs=(),
        doc_notice=(),
        engine_class="pkg.v2:Engine",
    )
    a, b, c = (tmp_path / "pkg" / f"{n}.py" for n in "abc")
    assert format_violations(result, rules).split("\n") == [
        V2_SCAN_HEADLINE.format(count=2, s="s") + ":",
        f"- {a}:3  pkg.a → pkg.v2 (from, {V2_TYPE_CHECKING_ONLY})",
        f"- {b}:3  pkg.b → pkg.v2 (importlib.import_module)",
        V2_SCAN_ERRORS_HEADLINE.format(count=1, s="") + ":",
        f"- {c}: does not parse: line 1: invalid syntax",
        V2_SCAN_UNRESOLVED_HEADLINE.format(count=1, s="") + ":",
        f"- {b}:4  pkg.b: module name is not a literal (importlib.import_module)",
        V2_SCAN_FIX.format(bridges="pkg.bridge, pkg.other_bridge"),
        V2_READ_MORE,
    ]
    assert V2_SCAN_HEADLINE.format(count=2, s="s") == "2 direct v2 imports outside the bridge"
    assert "#p1-3-federation-v2" in V2_READ_MORE


def test_format_violations_singular_and_without_a_bridge(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pkg/__init__.py": "import pkg.v2\n"})
    result = scan_v2_usage([tmp_path / "pkg"], ["pkg.v2"], [])
    message = format_violations(result, rules_for((tmp_path / "pkg",), bridges=()))
    assert message.split("\n")[0] == "1 direct v2 import outside the bridge:"
    assert "(no bridge modules configured)" in message


# -- removed files -------------------------------------------------------------


@pytest.fixture
def federation(tmp_path: Path) -> Path:
    write_tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/federation/__init__.py": "",
            "app/federation/federated_engine_v2.py": "",
            "app/tests/test_v3.py": "",
        },
    )
    return tmp_path / "app" / "federation"


def test_check_removed_is_empty_when_everything_is_gone(federation: Path, tmp_path: Path) -> None:
    removed = [federation / "v2_protocol.py", federation / "v2_consensus.py"]
    assert check_removed(removed) == []


def test_check_removed_reports_a_path_that_still_exists(federation: Path, tmp_path: Path) -> None:
    (federation / "v2_protocol.py").write_text("")
    removed = [federation / "v2_protocol.py", federation / "v2_consensus.py"]
    assert check_removed(removed) == [federation / "v2_protocol.py"]


def test_check_removed_ignores_a_same_named_file_elsewhere(
    federation: Path, tmp_path: Path
) -> None:
    # A same-named module elsewhere may be live code or the archived file (the seed
    # allows "delete or archive"): only where the removed file lived is searched.
    elsewhere = tmp_path / "app" / "legacy" / "v2_heartbeat.py"
    elsewhere.parent.mkdir()
    elsewhere.write_text("")
    removed = [federation / "v2_heartbeat.py"]
    assert check_removed(removed) == []


def test_check_removed_reports_each_path_once_and_sorted(federation: Path, tmp_path: Path) -> None:
    (federation / "v2_protocol.py").write_text("")
    (federation / "v2_consensus.py").write_text("")
    removed = [federation / "v2_protocol.py", federation / "v2_consensus.py"]
    assert check_removed(removed) == [
        federation / "v2_consensus.py",
        federation / "v2_protocol.py",
    ]


def test_check_removed_matches_glob_names(federation: Path, tmp_path: Path) -> None:
    tests = tmp_path / "app" / "tests"
    (tests / "test_v2_consensus.py").write_text("")
    (tests / "test_v2_heartbeat.py").write_text("")
    elsewhere = tmp_path / "app" / "other" / "test_v2_protocol.py"
    elsewhere.parent.mkdir()
    elsewhere.write_text("")
    # The glob matches in its own directory only: "elsewhere" is not reported.
    assert check_removed([tests / "test_v2_*.py"]) == [
        tests / "test_v2_consensus.py",
        tests / "test_v2_heartbeat.py",
    ]


def test_check_removed_reports_a_directory(federation: Path, tmp_path: Path) -> None:
    (federation / "v2_legacy").mkdir()
    assert check_removed([federation / "v2_legacy"]) == [federation / "v2_legacy"]


# -- documentation -------------------------------------------------------------

NOTICE = ("Current: Federation v3", "Deprecated: Federation v2", "federation_v2_event_bridge.py")


def test_check_docs_matches_through_markdown_emphasis_case_and_wrapping(tmp_path: Path) -> None:
    doc = tmp_path / "ARCH.md"
    doc.write_text(
        "## Federation Architecture\n\n"
        "**Current:** Federation v3 (EventBus-based)\n"
        "__Deprecated:__   FEDERATION\n  v2 (retained for bridge compatibility only)\n"
        "See `backend/federation/federation_v2_event_bridge.py`.\n",
        encoding="utf-8",
    )
    assert check_docs([doc], NOTICE) == []


def test_check_docs_reports_each_missing_doc_and_phrase(tmp_path: Path) -> None:
    partial = tmp_path / "PARTIAL.md"
    partial.write_text("**Current:** Federation v3\n", encoding="utf-8")
    missing = tmp_path / "MISSING.md"
    assert check_docs([partial, missing], NOTICE) == [
        V2_DOC_PHRASE_MISSING.format(doc=partial, phrase="Deprecated: Federation v2"),
        V2_DOC_PHRASE_MISSING.format(doc=partial, phrase="federation_v2_event_bridge.py"),
        V2_DOC_MISSING.format(doc=missing),
    ]
    assert V2_DOC_MISSING.format(doc=missing) == f"{missing}: document not found"


def test_check_docs_does_not_match_across_words(tmp_path: Path) -> None:
    doc = tmp_path / "A.md"
    doc.write_text("Current federation: v3\n", encoding="utf-8")
    assert check_docs([doc], ["Current: Federation v3"]) == [
        V2_DOC_PHRASE_MISSING.format(doc=doc, phrase="Current: Federation v3")
    ]


def test_identifiers_are_normalised_like_python_does(tmp_path: Path) -> None:
    # A full-width letter in a name is the same name to Python (NFKC): no byte search may skip it.
    write_tree(
        tmp_path, {"p/__init__.py": "import importlib\nimportlib.\uff49mport_module('p.v2')\n"}
    )
    result = scan_v2_usage([tmp_path / "p"], ["p.v2"], [])
    assert [(v.line, v.how) for v in result.violations] == [(2, HOW_IMPORT_MODULE)]


def test_relative_roots_name_modules_like_absolute_ones(
    tree: Path, result: V2ScanResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree / "app")
    from_inside = scan_v2_usage([Path(".")], V2_MODULES, BRIDGES)
    monkeypatch.chdir(tree)
    from_parent = scan_v2_usage([Path("app")], V2_MODULES, BRIDGES)
    expected = [(v.importer, v.line, v.module) for v in result.violations]
    assert [(v.importer, v.line, v.module) for v in from_inside.violations] == expected
    assert [(v.importer, v.line, v.module) for v in from_parent.violations] == expected
    assert from_parent.violations[0].path == Path("app/federation/__init__.py")


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pkg/__init__.py": ""})
    (tmp_path / "pkg" / "gone.py").symlink_to(tmp_path / "nowhere.py")
    result = scan_v2_usage([tmp_path / "pkg"], ["pkg.v2"], [])
    assert result.files_scanned == 2
    assert result.errors == (
        V2FileError(tmp_path / "pkg" / "gone.py", "cannot read: No such file or directory"),
    )


# --- v2 rules by package: legacy/fedv2 re-exports its engine; ignore_imports -------------

FEDV2_SOURCES: dict[str, str] = {
    "legacy/__init__.py": "",
    "legacy/fedv2/__init__.py": """\
        '''Federation v2, deprecated: the package re-exports its engine.'''
        from legacy.fedv2.engine import FedEngineV2  # reexport
        from . import wire
        """,
    "legacy/fedv2/engine.py": """\
        class FedEngineV2:
            def __init__(self, config):
                self.config = config
        """,
    "legacy/fedv2/wire.py": "from .engine import FedEngineV2\n",
    "legacy/bridges/__init__.py": "",
    "legacy/bridges/v2_relay.py": "from legacy.fedv2 import FedEngineV2\n",
    "legacy/admin/__init__.py": "",
    "legacy/admin/export.py": "import legacy.fedv2  # admin-export\n",
    "legacy/admin/tools/__init__.py": "",
    "legacy/admin/tools/inspect_v2.py": "import legacy.fedv2.wire  # admin-tools\n",
    "legacy/live/__init__.py": "",
    "legacy/live/status.py": "from legacy.fedv2 import FedEngineV2  # live-status\n",
}
FEDV2 = ("legacy.fedv2",)
FEDV2_BRIDGES = ("legacy.bridges",)


@pytest.fixture
def fedv2(tmp_path: Path) -> Path:
    write_tree(tmp_path, FEDV2_SOURCES)
    return tmp_path / "legacy"


def _importers(result: V2ScanResult) -> list[str]:
    return [v.importer for v in result.violations]


def test_a_v2_package_covers_its_submodules_and_its_own_reexport(fedv2: Path) -> None:
    result = scan_v2_usage((fedv2,), FEDV2, FEDV2_BRIDGES)
    # Neither legacy.fedv2 (the re-export) nor legacy.fedv2.wire, nor the bridge package.
    assert _importers(result) == [
        "legacy.admin.export",
        "legacy.admin.tools.inspect_v2",
        "legacy.live.status",
    ]
    assert [v.module for v in result.violations] == ["legacy.fedv2"] * 3


def test_naming_only_the_engine_module_flags_the_reexport_and_says_to_name_the_package(
    fedv2: Path,
) -> None:
    rules = V2Rules(
        source_roots=(fedv2,),
        v2_modules=("legacy.fedv2.engine",),
        bridge_modules=FEDV2_BRIDGES,
        removed_paths=(),
        docs=(),
        doc_notice=(),
        engine_class="legacy.fedv2.engine:FedEngineV2",
    )
    result = scan_v2_usage(rules.source_roots, rules.v2_modules, rules.bridge_modules)
    # The re-export is flagged, and legacy.live.status, reaching the engine through
    # it, is not seen at all: the module form undercounts a v2 package.
    assert _importers(result) == ["legacy.fedv2", "legacy.fedv2.wire"]
    message = format_violations(result, rules)
    assert (
        message.count(
            V2_SCAN_REEXPORT_HINT.format(package="legacy.fedv2", module="legacy.fedv2.engine")
        )
        == 1
    )


def test_a_bridge_package_is_not_allowed_when_only_its_parent_name_differs(fedv2: Path) -> None:
    result = scan_v2_usage((fedv2,), FEDV2, ("legacy.bridge",))  # not legacy.bridges
    assert "legacy.bridges.v2_relay" in _importers(result)


@pytest.mark.parametrize(
    ("ignore", "left", "unmatched"),
    [
        # One name per '*': legacy.admin.export, not legacy.admin.tools.inspect_v2.
        (
            ("legacy.admin.* -> legacy.fedv2",),
            ["legacy.admin.tools.inspect_v2", "legacy.live.status"],
            (),
        ),
        # '**': one or more names.
        (
            ("legacy.admin.** -> legacy.fedv2",),
            ["legacy.admin.tools.inspect_v2", "legacy.live.status"],
            (),
        ),
        (
            ("legacy.admin.** -> legacy.fedv2", "legacy.admin.** -> legacy.fedv2.*"),
            ["legacy.live.status"],
            (),
        ),
        # The imported name is matched as written: legacy.fedv2 is not legacy.fedv2.wire.
        (
            ("legacy.admin.tools.inspect_v2 -> legacy.fedv2",),
            ["legacy.admin.export", "legacy.admin.tools.inspect_v2", "legacy.live.status"],
            ("legacy.admin.tools.inspect_v2 -> legacy.fedv2",),
        ),
        (
            ("legacy.admin.** -> legacy.**", "legacy.gone -> legacy.fedv2"),
            ["legacy.live.status"],
            ("legacy.gone -> legacy.fedv2",),
        ),
    ],
    ids=["star", "double-star", "two-entries", "exact-imported", "unmatched"],
)
def test_ignore_imports_allows_what_it_matches_as_import_linter_would(
    fedv2: Path, ignore: tuple[str, ...], left: list[str], unmatched: tuple[str, ...]
) -> None:
    result = scan_v2_usage((fedv2,), FEDV2, FEDV2_BRIDGES, ignore)
    assert _importers(result) == left
    assert result.ignored == 3 - len(left)
    assert result.unmatched_ignores == unmatched


def test_a_v2_package_absent_from_the_roots_matches_nothing(fedv2: Path) -> None:
    result = scan_v2_usage((fedv2,), ("legacy.fedv3",), FEDV2_BRIDGES)
    assert result.ok
    assert result.violations == ()
