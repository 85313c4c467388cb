"""The harness's architecture, checked: no import cycles, no privacy crossed, texts in one place.

These are the properties the layout was regrouped for; a test keeps them
from eroding. Each check reads the source with :mod:`ast` (nothing is
imported), so a failure names the file and line to fix.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_quantum_p1

PACKAGE = Path(pytest_quantum_p1.__file__).parent
#: Private names of other libraries that are their documented API.
FOREIGN_API = frozenset({"_getframe", "_current_frames", "_replace", "_asdict", "_fields", "_exit"})


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _trees() -> Iterator[tuple[str, Path, ast.Module]]:
    for name, path in MODULES.items():
        yield name, path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(name: str, path: Path, tree: ast.Module) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its body (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_package_has_no_import_cycle() -> None:
    graph = {name: _imports(name, path, tree) for name, path, tree in _trees()}
    # The public face imports lazily by name; no module may import it back.
    face = "pytest_quantum_p1"
    importers_of_face = sorted(n for n, deps in graph.items() if face in deps)
    assert importers_of_face == [], "modules importing the public face instead of its sources"
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _names_defined(tree: ast.Module) -> set[str]:
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.alias):
            defined.add(node.asname or node.name)
    return defined


def _private_crossings(tree: ast.Module, path: Path) -> list[str]:
    defined = _names_defined(tree)
    return [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and node.attr not in defined
        and node.attr not in FOREIGN_API
    ]


def test_no_module_reads_a_private_attribute_it_does_not_define() -> None:
    # A private name is used only in the module that defines it: across modules,
    # the harness talks through named (public) methods and properties.
    crossings = [line for _, path, tree in _trees() for line in _private_crossings(tree, path)]
    assert crossings == []


def test_the_privacy_check_finds_a_crossing(tmp_path: Path) -> None:
    source = "class Sub(Base):\n    def f(self, other):\n        return self._a + other._b\n"
    tree = ast.parse(source)
    found = _private_crossings(tree, PACKAGE / "example.py")
    assert [line.rsplit(": ", 1)[1] for line in found] == ["._a", "._b"]


def _text_constants(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Module-level UPPER_CASE string constants that read as prose (they hold a space)."""
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        value = node.value
        if value is None or not names or not names[0].lstrip("_").isupper():
            continue
        if names[0].endswith("_CSS"):  # a stylesheet, not prose
            continue
        text = ast.literal_eval(value) if _is_literal_str(value) else None
        if isinstance(text, str) and " " in text.strip():
            yield names[0], node.lineno


def _is_literal_str(node: ast.expr) -> bool:
    try:
        return isinstance(ast.literal_eval(node), str)
    except ValueError:
        return False


@pytest.mark.parametrize("name", [n for n in MODULES if not n.endswith("._messages")])
def test_user_facing_texts_live_in_the_messages_module(name: str) -> None:
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert [const for const, _ in _text_constants(tree)] == []
