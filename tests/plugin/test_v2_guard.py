"""The run-time P1-3 guard: who constructs the v2 engine."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_quantum_p1._messages import (
    SPEC_INVALID,
    SPEC_NO_ATTRIBUTE,
    SPEC_NOT_IMPORTABLE,
    V2_ENGINE_NOT_A_CLASS,
    V2_READ_MORE,
    V2_RUNTIME_FIX,
    V2_RUNTIME_HEADLINE,
)
from pytest_quantum_p1._target import TargetError, V2Rules
from pytest_quantum_p1._v2 import (
    Traced,
    V2Construction,
    V2Guard,
    construct_traced,
    engines_held_by,
    format_runtime_violations,
)

ENGINE_SOURCE = """\
    import warnings


    class Engine:
        def __init__(self, *args, **kwargs):
            warnings.warn("Engine is deprecated", DeprecationWarning, stacklevel=2)
            self.args = args
            self.kwargs = kwargs


    def make_engine(*args, **kwargs):
        return Engine(*args, **kwargs)  # factory
    """

BRIDGE_SOURCE = """\
    from PKG.engine_v2 import Engine


    def build(*args, **kwargs):
        return Engine(*args, **kwargs)  # bridge-builds


    def load_legacy():
        import PKG.legacy_v2  # bridge-imports-legacy

        return PKG.legacy_v2.DEFAULT
    """

USER_SOURCE = """\
    from PKG.engine_v2 import Engine, make_engine


    def direct(*args, **kwargs):
        return Engine(*args, **kwargs)  # direct


    def via_factory():
        return make_engine()  # via-factory


    class Sub(Engine):
        pass


    class SubWithNew(Engine):
        def __new__(cls, *args, **kwargs):
            self = super().__new__(cls)
            self.made_by = "SubWithNew.__new__"
            return self


    def build_sub():
        return Sub(1)  # build-sub


    def build_sub_with_new():
        return SubWithNew(2, key="value")  # build-sub-with-new
    """

LEGACY_SOURCE = """\
    # Another v2 module, constructing the engine while it is being imported.
    from PKG.engine_v2 import Engine

    DEFAULT = Engine()
    """


@dataclass
class Pkg:
    """A throw-away package on sys.path with a v2 engine, a bridge and a user."""

    name: str
    root: Path

    @property
    def engine_spec(self) -> str:
        return f"{self.name}.engine_v2:Engine"

    @property
    def bridge(self) -> str:
        return f"{self.name}.bridge"

    @property
    def v2_modules(self) -> tuple[str, ...]:
        return (f"{self.name}.engine_v2", f"{self.name}.legacy_v2")

    def file(self, module: str) -> str:
        return str(self.root / f"{module}.py")

    def line(self, module: str, tag: str) -> int:
        lines = Path(self.file(module)).read_text(encoding="utf-8").split("\n")
        (found,) = [n for n, text in enumerate(lines, 1) if text.endswith(f"# {tag}")]
        return found

    def write(self, module: str, source: str) -> None:
        text = textwrap.dedent(source).replace("PKG", self.name)
        (self.root / f"{module}.py").write_text(text, encoding="utf-8")

    def module(self, module: str) -> ModuleType:
        return importlib.import_module(f"{self.name}.{module}")

    def guard(self, bridges: tuple[str, ...] | None = None) -> V2Guard:
        return V2Guard(
            self.engine_spec, (self.bridge,) if bridges is None else bridges, self.v2_modules
        )


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pkg]:
    # tmp_path names are unique per test, so module names never collide.
    name = "v2guard_" + re.sub(r"\W", "_", tmp_path.name)
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("", encoding="utf-8")
    made = Pkg(name, root)
    made.write("engine_v2", ENGINE_SOURCE)
    made.write("bridge", BRIDGE_SOURCE)
    made.write("user", USER_SOURCE)
    made.write("legacy_v2", LEGACY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield made
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


@contextmanager
def silenced() -> Iterator[None]:
    """Silence the engine's DeprecationWarning (an error in this suite)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def quietly(build: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``build``, silencing the engine's DeprecationWarning (an error in this suite)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return build(*args, **kwargs)


def test_construction_from_the_bridge_is_allowed(pkg: Pkg) -> None:
    with pkg.guard() as guard:
        quietly(pkg.module("bridge").build)
    assert guard.constructions == (
        V2Construction(
            pkg.bridge, pkg.file("bridge"), pkg.line("bridge", "bridge-builds"), True, "Engine"
        ),
    )
    assert guard.violations == ()


def test_construction_elsewhere_is_a_violation_at_the_exact_line(pkg: Pkg) -> None:
    user = pkg.module("user")
    with pkg.guard() as guard:
        quietly(user.direct)
    expected = V2Construction(
        f"{pkg.name}.user", pkg.file("user"), pkg.line("user", "direct"), False, "Engine"
    )
    assert guard.violations == (expected,)
    assert str(expected) == f"{pkg.file('user')}:{expected.lineno} in {pkg.name}.user"


def test_a_factory_inside_the_v2_module_is_attributed_to_its_caller(pkg: Pkg) -> None:
    user = pkg.module("user")
    with pkg.guard() as guard:
        quietly(user.via_factory)
    assert [(c.caller_module, c.filename, c.lineno) for c in guard.constructions] == [
        (f"{pkg.name}.user", pkg.file("user"), pkg.line("user", "via-factory"))
    ]


def test_a_reference_taken_before_the_guard_started_is_caught(pkg: Pkg) -> None:
    user = pkg.module("user")  # runs ``from engine_v2 import Engine`` now
    engine_class = user.Engine
    with pkg.guard() as guard, silenced():
        engine_class("here")
    line = sys._getframe().f_lineno - 1
    assert [(c.caller_module, c.filename, c.lineno) for c in guard.violations] == [
        (__name__, __file__, line)
    ]


def test_the_engine_module_need_not_be_imported_yet(pkg: Pkg) -> None:
    assert f"{pkg.name}.engine_v2" not in sys.modules
    guard = pkg.guard()
    guard.start()
    try:
        assert f"{pkg.name}.engine_v2" in sys.modules
        assert guard.engine is pkg.module("engine_v2").Engine
        quietly(pkg.module("user").direct)
    finally:
        guard.stop()
    assert [c.lineno for c in guard.violations] == [pkg.line("user", "direct")]


def test_stop_stops_recording_and_the_class_keeps_working(pkg: Pkg) -> None:
    engine = pkg.module("engine_v2").Engine
    before = dict(vars(engine))
    guard = pkg.guard()
    with guard, silenced():
        engine()
    with silenced():
        after_stop = engine(1, key="value")
        pkg.module("user").direct()
    assert (after_stop.args, after_stop.kwargs) == ((1,), {"key": "value"})
    assert len(guard.constructions) == 1
    assert not guard.active
    # The engine inherits object.__new__, which CPython cannot restore (gh-105888):
    # an inert __new__ stays, and everything else is as it was.
    after = dict(vars(engine))
    inert = after.pop("__new__")
    assert after == before
    with guard:
        assert vars(engine)["__new__"] is inert  # reused, never wrapped twice
    assert vars(engine)["__new__"] is inert


def test_stop_restores_a_class_dict_exactly_when_python_can(pkg: Pkg) -> None:
    pkg.write(
        "engine_v2",
        """\
        class Base:
            def __new__(cls, *args, **kwargs):
                return super().__new__(cls)


        class Engine(Base):
            def __init__(self, value):
                self.value = value


        class OwnNew:
            def __new__(cls, *args, **kwargs):
                return super().__new__(cls)

            def __init__(self, value):
                self.value = value
        """,
    )
    module = pkg.module("engine_v2")
    for name in ("Engine", "OwnNew"):
        cls = module.__dict__[name]
        before = dict(vars(cls))
        with V2Guard(cls, ()) as guard:
            assert vars(cls)["__new__"] is not before.get("__new__")
            cls(1)
        assert dict(vars(cls)) == before
        assert all(vars(cls)[key] is value for key, value in before.items())
        assert cls(2).value == 2
        assert len(guard.constructions) == 1


def test_the_deprecation_warning_still_points_at_the_caller(pkg: Pkg) -> None:
    user = pkg.module("user")
    with pkg.guard(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        user.direct()
        pkg.module("bridge").build()
    assert [(w.category, w.filename, w.lineno) for w in caught] == [
        (DeprecationWarning, pkg.file("user"), pkg.line("user", "direct")),
        (DeprecationWarning, pkg.file("bridge"), pkg.line("bridge", "bridge-builds")),
    ]


def test_constructor_arguments_pass_through(pkg: Pkg) -> None:
    with pkg.guard():
        engine = quietly(pkg.module("user").direct, 1, 2, key="value")
    assert (engine.args, engine.kwargs) == ((1, 2), {"key": "value"})


def test_subclasses_are_watched_and_named(pkg: Pkg) -> None:
    user = pkg.module("user")
    with pkg.guard() as guard:
        sub = quietly(user.build_sub)
        with_new = quietly(user.build_sub_with_new)
    # A subclass's own __new__ chaining to the engine's is not the caller.
    assert [(c.engine, c.caller_module, c.lineno) for c in guard.violations] == [
        ("Sub", f"{pkg.name}.user", pkg.line("user", "build-sub")),
        ("SubWithNew", f"{pkg.name}.user", pkg.line("user", "build-sub-with-new")),
    ]
    assert sub.args == (1,)
    assert (with_new.made_by, with_new.args, with_new.kwargs) == (
        "SubWithNew.__new__",
        (2,),
        {"key": "value"},
    )


def test_a_class_with_its_own_new_is_watched_and_restored(pkg: Pkg) -> None:
    pkg.write(
        "engine_v2",
        """\
        class Engine:
            def __new__(cls, *args, **kwargs):
                self = super().__new__(cls)
                self.new_args = (args, kwargs)
                return self

            def __init__(self, *args, **kwargs):
                self.args = args
        """,
    )
    engine = pkg.module("engine_v2").Engine
    original = vars(engine)["__new__"]
    with pkg.guard() as guard:
        made = engine(1, key="value")
    line = sys._getframe().f_lineno - 1
    assert (made.new_args, made.args) == (((1,), {"key": "value"}), (1,))
    assert [(c.caller_module, c.lineno) for c in guard.violations] == [(__name__, line)]
    assert vars(engine)["__new__"] is original


def test_another_v2_module_constructing_the_engine_is_the_caller(pkg: Pkg) -> None:
    # Only the engine's own module is skipped: a v2 module is not the bridge,
    # even when the bridge is what imported it.
    bridge = pkg.module("bridge")
    with pkg.guard() as guard:
        quietly(bridge.load_legacy)
    assert [(c.caller_module, c.filename, c.allowed) for c in guard.constructions] == [
        (f"{pkg.name}.legacy_v2", pkg.file("legacy_v2"), False)
    ]


def test_a_bridge_constructing_while_it_is_imported_is_allowed(pkg: Pkg) -> None:
    pkg.write(
        "eager_bridge", "from PKG.engine_v2 import Engine\n\nDEFAULT = Engine()  # at-import\n"
    )
    with pkg.guard(bridges=(f"{pkg.name}.eager_bridge",)) as guard, silenced():
        pkg.module("eager_bridge")
    assert [(c.caller_module, c.lineno, c.allowed) for c in guard.constructions] == [
        (f"{pkg.name}.eager_bridge", pkg.line("eager_bridge", "at-import"), True)
    ]


def test_the_signature_of_the_class_is_unchanged(pkg: Pkg) -> None:
    engine = pkg.module("engine_v2").Engine
    before = inspect.signature(engine)
    with pkg.guard():
        assert inspect.signature(engine) == before


def test_format_runtime_violations(pkg: Pkg) -> None:
    user = pkg.module("user")
    with pkg.guard() as guard:
        quietly(user.direct)
        quietly(pkg.module("bridge").build)
        quietly(user.via_factory)
    assert guard.format_violations().split("\n") == [
        V2_RUNTIME_HEADLINE.format(engine="Engine", count=2) + ":",
        f"- {pkg.file('user')}:{pkg.line('user', 'direct')} in {pkg.name}.user",
        f"- {pkg.file('user')}:{pkg.line('user', 'via-factory')} in {pkg.name}.user",
        V2_RUNTIME_FIX.format(bridges=pkg.bridge),
        V2_READ_MORE,
    ]
    assert format_runtime_violations(guard.constructions, [pkg.bridge]) == (
        guard.format_violations()
    )
    assert (
        V2_RUNTIME_HEADLINE.format(engine="FederatedEngineV2", count=3)
        == "FederatedEngineV2 was constructed outside the bridge 3 time(s)"
    )


def test_format_runtime_violations_names_every_engine_class() -> None:
    constructions = [
        V2Construction("a", "a.py", 1, False, "Engine"),
        V2Construction("b", "b.py", 2, False, "Sub"),
        V2Construction("bridge", "bridge.py", 3, True, "Engine"),
    ]
    assert format_runtime_violations(constructions).split("\n")[:3] == [
        "Engine or Sub was constructed outside the bridge 2 time(s):",
        "- a.py:1 in a",
        "- b.py:2 in b",
    ]
    assert "(no bridge modules configured)" in format_runtime_violations(constructions)


# -- lifecycle ------------------------------------------------------------------


def test_start_and_stop_are_re_entrant(pkg: Pkg) -> None:
    engine = pkg.module("engine_v2").Engine
    guard = pkg.guard()
    with guard:
        with guard:
            assert guard.active
        assert guard.active
        quietly(engine)
    assert not guard.active
    guard.stop()  # one stop too many is harmless
    quietly(engine)
    assert len(guard.constructions) == 1


def test_restarting_accumulates_until_cleared(pkg: Pkg) -> None:
    engine = pkg.module("engine_v2").Engine
    guard = pkg.guard()
    for _ in range(2):
        with guard:
            quietly(engine)
    assert len(guard.constructions) == 2
    guard.clear()
    assert not guard.constructions


def test_overlapping_guards_stop_in_any_order(pkg: Pkg) -> None:
    engine = pkg.module("engine_v2").Engine
    build = pkg.module("bridge").build
    before = dict(vars(engine))
    lenient, strict = pkg.guard(), pkg.guard(bridges=())
    lenient.start()
    strict.start()
    quietly(build)
    lenient.stop()  # first in, first out
    quietly(build)
    strict.stop()
    quietly(build)
    assert [c.allowed for c in lenient.constructions] == [True]
    assert [c.allowed for c in strict.constructions] == [False, False]
    after = dict(vars(engine))
    after.pop("__new__")  # inert, see test_stop_stops_recording_and_the_class_keeps_working
    assert after == before


def test_guards_on_a_base_and_a_subclass_each_record_once(pkg: Pkg) -> None:
    user = pkg.module("user")
    base_guard = pkg.guard()
    sub_guard = V2Guard(f"{pkg.name}.user:Sub", (), pkg.v2_modules)
    with base_guard, sub_guard, silenced():
        user.Sub(1)
        line = sys._getframe().f_lineno - 1
        user.direct()
    assert [c.engine for c in base_guard.constructions] == ["Sub", "Engine"]
    assert [(c.engine, c.caller_module, c.lineno) for c in sub_guard.constructions] == [
        ("Sub", __name__, line)
    ]
    # The subclass's wrapper resolves to the engine's, so it can go.
    assert "__new__" not in vars(user.Sub)


def test_concurrent_constructions_are_all_recorded() -> None:
    class Engine:
        pass

    threads, per_thread = 8, 200
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            Engine()

    with V2Guard(Engine, ()) as guard:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert len(guard.constructions) == threads * per_thread


def test_from_rules_uses_the_targets_engine_and_bridges(pkg: Pkg) -> None:
    rules = V2Rules(
        source_roots=(pkg.root,),
        v2_modules=pkg.v2_modules,
        bridge_modules=(pkg.bridge,),
        removed_paths=(),
        docs=(),
        doc_notice=(),
        engine_class=pkg.engine_spec,
    )
    with V2Guard.from_rules(rules) as guard:
        quietly(pkg.module("bridge").build)
        quietly(pkg.module("user").via_factory)
    assert [(c.caller_module, c.allowed) for c in guard.constructions] == [
        (pkg.bridge, True),
        (f"{pkg.name}.user", False),
    ]


@pytest.mark.parametrize(
    ("spec", "error", "message", "cause"),
    [
        ("no_colon", TargetError, SPEC_INVALID.format(spec="no_colon"), None),
        (":Engine", TargetError, SPEC_INVALID.format(spec=":Engine"), None),
        (
            "{pkg}.engine_v2:Missing",
            TargetError,
            SPEC_NO_ATTRIBUTE.format(module="{pkg}.engine_v2", attr="Missing"),
            None,
        ),
        (
            "{pkg}.engine_v2:make_engine",
            TypeError,
            V2_ENGINE_NOT_A_CLASS.format(spec="{pkg}.engine_v2:make_engine", kind="function"),
            None,
        ),
        (
            "{pkg}.nowhere:Engine",
            TargetError,
            SPEC_NOT_IMPORTABLE.format(
                module="{pkg}.nowhere", error="No module named '{pkg}.nowhere'"
            ),
            ModuleNotFoundError,
        ),
    ],
)
def test_a_bad_engine_class_is_a_clear_error(
    pkg: Pkg, spec: str, error: type[Exception], message: str, cause: type[Exception] | None
) -> None:
    guard = V2Guard(spec.format(pkg=pkg.name), ())
    with pytest.raises(error) as raised:
        guard.start()
    assert str(raised.value) == message.replace("{pkg}", pkg.name)
    if cause is not None:
        assert isinstance(raised.value.__cause__, cause)
    assert not guard.active


@pytest.mark.parametrize("spec", ["no_colon", ":Engine", "pkg.engine_v2:"])
def test_a_malformed_engine_class_is_rejected_naming_the_expected_shape(spec: str) -> None:
    with pytest.raises(TargetError, match=re.escape("must look like 'package.module:attr'")):
        V2Guard(spec, ()).start()


# -- the patch changes nothing but the recording -------------------------------


def _make_shape(shape: str) -> tuple[type, type]:
    """A fresh ``(watched class, class constructed)`` pair, never patched before."""

    class Init:
        def __init__(self, value: int = 0) -> None:
            self.value = value

    class Base:
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            made = super().__new__(cls)
            made.__dict__["seen"] = args
            return made

    class InheritsNew(Base):
        def __init__(self, *args: Any) -> None:
            self.args = args

    class OwnNew:
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            made = super().__new__(cls)
            made.__dict__["seen"] = (args, kwargs)
            return made

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.args = args

    class Sub(Init):
        pass

    class SubPassingArgs(Init):
        # Passing the arguments on to object.__new__ is a bug the guard must not hide.
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return super().__new__(cls, *args, **kwargs)

    class NoInit:
        pass

    class FromDict(dict[str, int]):
        pass

    class FromException(Exception):
        pass

    shapes: dict[str, tuple[type, type]] = {
        "no-init": (NoInit, NoInit),
        "init": (Init, Init),
        "inherited-new": (InheritsNew, InheritsNew),
        "own-new": (OwnNew, OwnNew),
        "dict": (FromDict, FromDict),
        "exception": (FromException, FromException),
        "subclass": (Init, Sub),
        "subclass-new-passing-args": (Init, SubPassingArgs),
    }
    return shapes[shape]


def _outcome(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    try:
        made = cls(*args, **kwargs)
    except TypeError as exc:
        return ("TypeError", str(exc))
    detail = repr(made) if isinstance(made, (dict, BaseException)) else None
    return (type(made).__name__, dict(vars(made)), detail)


@pytest.mark.parametrize(
    ("shape", "args", "kwargs"),
    [
        ("no-init", (), {}),
        ("no-init", (1,), {}),
        ("init", (3,), {}),
        ("init", (), {"value": 4}),
        ("init", (1, 2), {}),
        ("inherited-new", (5, 6), {}),
        ("own-new", (1,), {"key": 2}),
        ("dict", (), {"a": 1}),
        ("exception", ("boom",), {}),
        ("subclass", (7,), {}),
        ("subclass-new-passing-args", (8,), {}),
        ("subclass-new-passing-args", (), {}),
    ],
)
def test_construction_behaves_the_same_during_and_after_the_guard(
    shape: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    watched, built = _make_shape(shape)
    before = _outcome(built, args, kwargs)
    with V2Guard(watched, ()) as guard:
        during = _outcome(built, args, kwargs)
    after = _outcome(built, args, kwargs)
    assert (during, after) == (before, before)
    assert len(guard.constructions) == 1


# -- attribution: re-exports, engines in the bridge, engines held by the bridge -----------


def test_reaching_the_engine_through_the_bridges_reexport_is_not_the_bridge(pkg: Pkg) -> None:
    pkg.write(
        "reexport_user",
        """\
        from PKG.bridge import Engine  # the bridge module imports it, so it re-exports it


        def build():
            return Engine()  # via-reexport
        """,
    )
    with pkg.guard() as guard:
        quietly(pkg.module("reexport_user").build)
    assert [(c.caller_module, c.lineno, c.allowed) for c in guard.constructions] == [
        (f"{pkg.name}.reexport_user", pkg.line("reexport_user", "via-reexport"), False)
    ]


def test_an_engine_defined_in_a_bridge_module_is_built_by_the_bridge(pkg: Pkg) -> None:
    pkg.write(
        "bridge",
        """\
        class Engine:
            pass


        def build():
            return Engine()  # bridge-builds-its-own
        """,
    )
    with V2Guard(f"{pkg.bridge}:Engine", (pkg.bridge,)) as guard:
        pkg.module("bridge").build()
    assert [(c.caller_module, c.lineno, c.allowed) for c in guard.constructions] == [
        (pkg.bridge, pkg.line("bridge", "bridge-builds-its-own"), True)
    ]


def test_a_background_thread_constructing_is_attributed_to_its_own_code(pkg: Pkg) -> None:
    user = pkg.module("user")
    with pkg.guard() as guard, silenced():
        worker = threading.Thread(target=user.direct)
        worker.start()
        worker.join()
    assert [(c.caller_module, c.lineno) for c in guard.violations] == [
        (f"{pkg.name}.user", pkg.line("user", "direct"))
    ]


def test_format_runtime_violations_shows_one_line_of_code_once_with_a_count() -> None:
    constructions = [V2Construction("a", "a.py", 1, False, "Engine")] * 3 + [
        V2Construction("b", "b.py", 2, False, "Engine")
    ]
    assert format_runtime_violations(constructions).split("\n")[:3] == [
        "Engine was constructed outside the bridge 4 time(s):",
        "- a.py:1 in a (3 times)",
        "- b.py:2 in b",
    ]


def test_engines_held_by_the_bridge_are_counted(pkg: Pkg) -> None:
    engine = pkg.module("engine_v2").Engine
    pkg.write(
        "bridge",
        """\
        from PKG.engine_v2 import Engine


        class Bridge:
            def __init__(self):
                self.engine = Engine()


        BRIDGE = Bridge()
        SPARE = Engine()
        """,
    )
    with silenced():
        bridge = pkg.module("bridge")
        elsewhere = engine()
    assert engines_held_by(engine, [pkg.bridge]) == 2  # BRIDGE.engine and SPARE
    assert engines_held_by(engine, [f"{pkg.name}.user"]) == 0
    vars(bridge.BRIDGE)  # a materialised __dict__ holds it now
    assert engines_held_by(engine, [pkg.bridge]) == 2
    del elsewhere


# -- where a DeprecationWarning's stacklevel points -------------------------------------


class _Direct:
    def __init__(self) -> None:
        warnings.warn("direct", DeprecationWarning, stacklevel=2)


def _helper_warn(stacklevel: int) -> None:
    warnings.warn("helper", DeprecationWarning, stacklevel=stacklevel)


class _ThroughHelper:
    def __init__(self) -> None:
        _helper_warn(stacklevel=2)


class _Silent:
    pass


def _traced(cls: type) -> tuple[Traced, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = construct_traced(cls)
    return traced, caught


def test_construct_traced_finds_the_stacklevel_that_names_the_constructing_line() -> None:
    traced, caught = _traced(_Direct)
    ((call,), (warning,)) = traced.calls, caught
    assert (warning.filename, warning.lineno) == traced.site
    assert call.needed == 2
    assert call.level_of(warning.filename, warning.lineno) == 2


def test_construct_traced_counts_the_frames_of_a_helper() -> None:
    traced, caught = _traced(_ThroughHelper)
    ((call,), (warning,)) = traced.calls, caught
    assert (warning.filename, warning.lineno) != traced.site
    assert call.needed == 3  # helper -> __init__ -> the constructing line
    assert call.level_of(warning.filename, warning.lineno) == 2  # __init__'s line
    assert call.level_of("nowhere.py", 1) is None


def test_construct_traced_without_a_warning_records_no_call() -> None:
    traced, caught = _traced(_Silent)
    assert (traced.calls, caught) == ((), [])
    assert traced.site[0].endswith("warning.py")


# --- v2 as a package, bridges as a package ----------------------------------------------

FEDV2_TREE = {
    "__init__.py": "",
    "fedv2/__init__.py": """\
        from PKG.fedv2.engine import Engine


        def make_engine(config):
            return Engine(config)  # package-helper
        """,
    "fedv2/engine.py": """\
        import warnings


        class Engine:
            def __init__(self, config):
                warnings.warn("Engine is deprecated", DeprecationWarning, stacklevel=2)
                self.config = config
        """,
    "bridges/__init__.py": "",
    "bridges/relay.py": """\
        from PKG.fedv2 import Engine, make_engine


        def direct():
            return Engine({})  # bridge-direct


        def helper():
            return make_engine({})  # bridge-helper
        """,
    "user.py": """\
        from PKG.fedv2 import Engine, make_engine


        def direct():
            return Engine({})  # user-direct


        def helper():
            return make_engine({})  # user-helper
        """,
}


@dataclass
class FedV2:
    """A throw-away backend on sys.path whose v2 is a package re-exporting its engine."""

    name: str
    root: Path

    def where(self, rel: str, tag: str) -> tuple[str, int]:
        path = self.root / rel
        lines = path.read_text(encoding="utf-8").split("\n")
        (found,) = [n for n, text in enumerate(lines, 1) if text.endswith(f"# {tag}")]
        return str(path), found

    def guard(self, v2_modules: tuple[str, ...]) -> V2Guard:
        return V2Guard(f"{self.name}.fedv2.engine:Engine", (f"{self.name}.bridges",), v2_modules)

    def call(self, module: str, function: str) -> Any:
        return quietly(getattr(importlib.import_module(f"{self.name}.{module}"), function))


@pytest.fixture
def fedv2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FedV2]:
    name = "fedv2guard_" + re.sub(r"\W", "_", tmp_path.name)
    root = tmp_path / name
    for rel, text in FEDV2_TREE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("PKG", name), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield FedV2(name, root)
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_a_construction_through_the_v2_packages_helper_is_its_callers(fedv2: FedV2) -> None:
    with fedv2.guard((f"{fedv2.name}.fedv2",)) as guard:
        for module in ("bridges.relay", "user"):
            for function in ("direct", "helper"):
                fedv2.call(module, function)
    seen = [(c.caller_module, (c.filename, c.lineno), c.allowed) for c in guard.constructions]
    relay, user = f"{fedv2.name}.bridges.relay", f"{fedv2.name}.user"
    assert seen == [
        (relay, fedv2.where("bridges/relay.py", "bridge-direct"), True),
        (relay, fedv2.where("bridges/relay.py", "bridge-helper"), True),
        (user, fedv2.where("user.py", "user-direct"), False),
        (user, fedv2.where("user.py", "user-helper"), False),
    ]


def test_with_only_the_engine_module_named_the_packages_helper_is_the_caller(
    fedv2: FedV2,
) -> None:
    with fedv2.guard((f"{fedv2.name}.fedv2.engine",)) as guard:
        fedv2.call("bridges.relay", "direct")
        fedv2.call("bridges.relay", "helper")
    direct, helper = guard.constructions
    assert direct.allowed
    assert (helper.caller_module, helper.allowed) == (f"{fedv2.name}.fedv2", False)
    assert (helper.filename, helper.lineno) == fedv2.where("fedv2/__init__.py", "package-helper")


def test_an_engine_held_by_a_module_of_a_bridge_package_is_counted(fedv2: FedV2) -> None:
    relay = importlib.import_module(f"{fedv2.name}.bridges.relay")
    engine_class = importlib.import_module(f"{fedv2.name}.fedv2.engine").Engine
    vars(relay)["HELD"] = quietly(relay.direct)  # a module-level singleton of the bridge
    assert engines_held_by(engine_class, (f"{fedv2.name}.bridges",)) == 1
    assert engines_held_by(engine_class, (f"{fedv2.name}.bridge",)) == 0
