"""P1-3, federation v2 deprecation: files removed, no direct imports, the warning, the bridge, docs.

The static checks (files, imports, docs) and the run-time guard are the
harness's ``_v2`` tools, run on the target's :class:`V2Rules`; these criteria
record their figures and word the verdict. A criterion that looked at nothing
(no file named, no module scanned, no construction seen) fails saying what it
expected to see: its green would be about code nobody checked.

**The run-wide v2 watch.** ``P1-3.bridge-only-at-runtime`` must see every
construction of the v2 engine in the run, not those of a few milliseconds.
The acceptance hooks start one :class:`V2Watch` when the first criterion
starts (:func:`start_v2_watch`); it records from then on, in every thread. The
criterion is judged at its place in the checklist: it drives every target
action, the relay probe and the health check itself (so it stands alone under
``-k`` or xdist), keeps watching ``V2Rules.runtime_grace`` seconds more for
threads and timers the target left running, then judges everything seen since
the watch started and ends it (:func:`stop_v2_watch`). Judging there rather
than last keeps the checklist in the seed's order, and what the later criteria
call (relay probe, health check) has already run under the watch.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.drive import probe_name, quiet_v2_warnings, run
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.verdict import bullets, fail
from pytest_quantum_p1._target import accepts

if TYPE_CHECKING:
    from pytest_quantum_p1._redis.source import RedisFactory
    from pytest_quantum_p1._target import P1Target, V2Rules
    from pytest_quantum_p1._v2 import V2Guard

__all__ = [
    "V2_WATCH_KEY",
    "EngineConstructionError",
    "FailingNode",
    "RelayProbeError",
    "V2Watch",
    "criterion_bridge_only_at_runtime",
    "criterion_bridge_relays",
    "criterion_deprecation_warning",
    "criterion_docs",
    "criterion_files_removed",
    "criterion_no_direct_imports",
    "paused_v2_watch",
    "start_v2_watch",
    "stop_v2_watch",
]


def criterion_files_removed(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The legacy v2 files are gone from where they lived."""
    from pytest_quantum_p1._v2 import check_removed, homeless

    rules = p1_target.v2
    count = len(rules.removed_paths)
    _p1_criterion.summary = _messages.P1_3_FILES_UNCHECKED_SUMMARY
    if not count:
        fail(
            _messages.P1_3_NO_REMOVED_PATHS,
            _messages.P1_3_NO_REMOVED_PATHS_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    left = check_removed(rules.removed_paths)
    unhoused = homeless(rules.removed_paths)
    _p1_criterion.figures = {
        "removed": count,
        "still_present": len(left),
        "dirs_missing": len(unhoused),
    }
    if left:
        _p1_criterion.summary = _messages.P1_3_FILES_LEFT_SUMMARY.format(
            left=len(left), count=count
        )
        fail(
            _messages.P1_3_FILES_LEFT.format(left=len(left)),
            *bullets([str(p) for p in left]),
            _messages.P1_3_FILES_LEFT_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    # One directory gone is a legitimate cleanup (a whole tests folder
    # archived); all of them gone means no path was looked at where it lived.
    if len(unhoused) == count:
        fail(
            _messages.P1_3_REMOVED_HOMELESS,
            *bullets([str(p) for p in unhoused]),
            _messages.P1_3_REMOVED_HOMELESS_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    _p1_criterion.summary = _messages.P1_3_FILES_REMOVED_SUMMARY.format(count=count)


def criterion_no_direct_imports(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Nothing but the bridge imports v2."""
    from pytest_quantum_p1._v2 import format_violations, python_files, scan_target_rules, within

    rules = p1_target.v2
    _p1_criterion.summary = _messages.P1_3_IMPORTS_UNCHECKED_SUMMARY.format(files=0)
    if not rules.v2_modules:
        fail(
            _messages.P1_3_NO_V2_MODULES,
            _messages.P1_3_NO_V2_MODULES_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    result = scan_target_rules(rules)
    _p1_criterion.figures = {
        "files_scanned": result.files_scanned,
        "violations": len(result.violations),
    }
    if rules.ignore_imports:
        _p1_criterion.figures["ignored"] = result.ignored
    _p1_criterion.summary = _messages.P1_3_IMPORTS_UNCHECKED_SUMMARY.format(
        files=result.files_scanned
    )
    if not result.ok:
        _p1_criterion.summary = _messages.P1_3_NO_DIRECT_IMPORTS_SUMMARY.format(
            files=result.files_scanned, violations=len(result.violations)
        )
        fail(format_violations(result, rules))
    if not result.files_scanned:
        fail(
            _messages.P1_3_NOTHING_SCANNED,
            *bullets([str(root) for root in rules.source_roots]),
            _messages.P1_3_NOTHING_SCANNED_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    # A misspelt v2 module name matches no import at all: nothing was looked for.
    names = [name for root in rules.source_roots for _path, name in python_files(Path(root))]
    if not any(within(name, rules.v2_modules) for name in names):
        fail(
            _messages.P1_3_V2_MODULES_NOT_FOUND.format(files=len(names)),
            *bullets(list(rules.v2_modules)),
            _messages.P1_3_V2_MODULES_NOT_FOUND_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    _p1_criterion.summary = _messages.P1_3_NO_DIRECT_IMPORTS_SUMMARY.format(
        files=result.files_scanned, violations=0
    )
    if rules.ignore_imports:
        # What the adapter let through is part of the claim, and so are the
        # entries that matched nothing (stale, or misspelt: import-linter errs on them).
        _p1_criterion.summary += _messages.P1_3_IMPORTS_IGNORED.format(
            ignored=result.ignored, entries=len(rules.ignore_imports)
        )
        if result.unmatched_ignores:
            _p1_criterion.summary += _messages.P1_3_IMPORTS_IGNORES_UNMATCHED.format(
                unmatched=", ".join(result.unmatched_ignores)
            )


class EngineConstructionError(Exception):
    """The harness could not build the v2 engine to look at its warning: the adapter's to fix."""


def _factory_name(factory: object) -> str:
    """A factory as a user finds it: its name, and where it is defined."""
    name = getattr(factory, "__qualname__", None) or repr(factory)
    code = getattr(factory, "__code__", None)
    if code is None:
        return str(name)
    return f"{name} ({Path(code.co_filename).name}:{code.co_firstlineno})"


def _construct(engine: type, factory: Any) -> Any:
    """:func:`construct_traced`, its failures worded as the adapter's errors."""
    from pytest_quantum_p1._v2 import ConstructionNotSeen, construct_traced

    name = engine.__name__
    try:
        return construct_traced(engine, factory)
    except ConstructionNotSeen:
        raise EngineConstructionError(
            _messages.P1_3_ENGINE_FACTORY_DID_NOT_CONSTRUCT.format(
                factory=_factory_name(factory), engine=name
            )
        ) from None
    except Exception as exc:
        if factory is not None:
            message = _messages.P1_3_ENGINE_FACTORY_RAISED.format(
                factory=_factory_name(factory), type=type(exc).__name__, error=exc
            )
        else:
            message = _messages.P1_3_ENGINE_CONSTRUCTION_RAISED.format(
                engine=name, type=type(exc).__name__, error=exc
            )
        raise EngineConstructionError(message) from exc


def criterion_deprecation_warning(
    p1_target: P1Target, pytestconfig: pytest.Config, _p1_criterion: CriterionRecord
) -> None:
    """Constructing the v2 engine warns DeprecationWarning at the caller's line."""
    from pytest_quantum_p1._v2 import load_engine_class

    engine = load_engine_class(p1_target.v2.engine_class)
    # The run-wide watch wraps the engine's __new__: a warning raised there would
    # count its frames through the harness's wrapper. This construction is the
    # harness's own, so the watch looks away for it.
    with paused_v2_watch(pytestconfig), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = _construct(engine, p1_target.v2.engine_factory)
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    name = engine.__name__
    _p1_criterion.figures = {"warnings": len(deprecations)}
    _p1_criterion.summary = _messages.P1_3_DEPRECATION_SUMMARY.format(engine=name)
    if p1_target.v2.engine_factory is not None:
        _p1_criterion.summary += _messages.P1_3_DEPRECATION_THROUGH_FACTORY.format(
            file=Path(traced.site[0]).name, line=traced.site[1]
        )
    if not deprecations:
        _p1_criterion.summary = _messages.P1_3_NO_DEPRECATION_SUMMARY.format(engine=name)
        others = [f"{w.category.__name__}: {w.message}" for w in caught]
        fail(
            _messages.P1_3_NO_DEPRECATION.format(engine=name),
            *([_messages.P1_3_NO_DEPRECATION_SEEN, *bullets(others)] if others else []),
            _messages.P1_3_NO_DEPRECATION_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    first = deprecations[0]
    if (first.filename, first.lineno) != traced.site:
        _p1_criterion.summary = _messages.P1_3_WARNS_ELSEWHERE_SUMMARY.format(
            engine=name, file=Path(first.filename).name, line=first.lineno
        )
        fail(
            _messages.P1_3_WARNS_ELSEWHERE.format(
                engine=name,
                file=first.filename,
                line=first.lineno,
                caller_file=traced.site[0],
                caller_line=traced.site[1],
            ),
            *_stacklevel_advice(engine, first, traced.calls),
            _messages.ACCEPTANCE_READ_MORE,
        )


def _stacklevel_advice(
    engine: type, warning: warnings.WarningMessage, calls: Sequence[Any]
) -> list[str]:
    """What to change, as far as where the warning pointed supports it."""
    import sys

    name = engine.__name__
    # The warn call that made this warning: the one whose frames include where it points.
    for call in calls:
        used = call.level_of(warning.filename, warning.lineno)
        if used is None:
            continue
        if used < call.needed:
            return [
                _messages.P1_3_STACKLEVEL_LOW_FIX.format(
                    needed=call.needed, depth=call.needed - 1, engine=name, used=used
                )
            ]
        return [
            _messages.P1_3_STACKLEVEL_HIGH_FIX.format(
                needed=call.needed, used=used, extra=used - call.needed, engine=name
            )
        ]
    # Not a frame of the construction (warn_explicit, a computed location ...):
    # say where it points and how far the caller is, nothing more.
    module = sys.modules.get(engine.__module__)
    own_file = getattr(module, "__file__", None)
    advice = (
        _messages.P1_3_WARNS_IN_OWN_MODULE_FIX.format(engine=name, module=engine.__module__)
        if own_file is not None and Path(own_file).resolve() == Path(warning.filename).resolve()
        else _messages.P1_3_WARNS_OFF_PATH_FIX.format(engine=name)
    )
    needed = [_messages.P1_3_WARNS_NEEDED.format(needed=calls[0].needed)] if calls else []
    return [advice, *needed]


# -- the run-wide watch of v2 engine constructions ---------------------------------------


@dataclass
class V2Watch:
    """The run-wide guard of a ``--p1`` run, or why it could not start."""

    guard: V2Guard | None
    #: Why the guard could not start (the engine class does not load): the
    #: criterion reports it as its error.
    error: Exception | None
    #: ``time.monotonic()`` when it started.
    started: float
    #: Ended for good (the criterion judged, or the session finished).
    ended: bool = False


#: The watch of this run (one per process: an xdist worker has its own).
V2_WATCH_KEY = pytest.StashKey[V2Watch]()


def start_v2_watch(config: pytest.Config, target: P1Target) -> V2Watch:
    """Start watching constructions of ``target.v2.engine_class``, once per run."""
    from pytest_quantum_p1._v2 import V2Guard

    watch = config.stash.get(V2_WATCH_KEY, None)
    if watch is not None:
        return watch
    guard = V2Guard.from_rules(target.v2)
    try:
        guard.start()
    except Exception as exc:  # kept for the criterion: it is that check's error
        watch = V2Watch(None, exc, time.monotonic())
    else:
        watch = V2Watch(guard, None, time.monotonic())
    config.stash[V2_WATCH_KEY] = watch
    return watch


def stop_v2_watch(config: pytest.Config) -> None:
    """End the run's watch (the class is given back); later calls do nothing."""
    watch = config.stash.get(V2_WATCH_KEY, None)
    if watch is None or watch.ended:
        return
    watch.ended = True
    if watch.guard is not None:
        watch.guard.stop()


@contextmanager
def paused_v2_watch(config: pytest.Config) -> Iterator[None]:
    """Look away for a block (the harness's own construction of the engine)."""
    watch = config.stash.get(V2_WATCH_KEY, None)
    guard = None if watch is None or watch.ended else watch.guard
    if guard is None:
        yield
        return
    guard.stop()
    try:
        yield
    finally:
        if not watch.ended:  # type: ignore[union-attr]  # guard is not None: watch is set
            guard.start()


class FailingNode:
    """A v2 node that is down: an async transport raising ``ConnectionError``, counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        raise ConnectionError(_messages.P1_3_RELAY_FAILING_NODE_ERROR)


class RelayProbeError(Exception):
    """The relay probe did not let the check run (an adapter problem, not a verdict)."""


def _probe(rules: V2Rules, bus: Any, payload: Mapping[str, Any], node: FailingNode) -> Any:
    """The relay probe's awaitable, given the failing node when it takes one."""
    probe = rules.relay_probe
    assert probe is not None
    return probe(bus, payload, node) if accepts(probe, 3) else probe(bus, payload)


def criterion_bridge_only_at_runtime(
    p1_target: P1Target,
    p1_redis_factory: RedisFactory,
    pytestconfig: pytest.Config,
    _p1_criterion: CriterionRecord,
) -> None:
    """Over the whole run, only the bridge constructs the v2 engine."""
    from pytest_quantum_p1._v2 import bridge_list, engines_held_by

    rules = p1_target.v2
    # Started by the hooks with the first criterion; started here when this
    # check runs on its own (a criterion called outside the acceptance hooks).
    watch = start_v2_watch(pytestconfig, p1_target)
    if watch.error is not None:
        raise watch.error
    guard = watch.guard
    assert guard is not None
    engine = guard.engine
    driven = [_messages.P1_3_RUNTIME_DRIVEN_ACTIONS.format(count=len(p1_target.required_events))]
    bus = p1_target.bus()
    with quiet_v2_warnings():
        for event in p1_target.required_events:
            run(event.action(bus))
        # The probe and the health check are judged by their own criteria:
        # here they only have to run under the watch.
        if rules.relay_probe is not None:
            driven.append(_messages.P1_3_RUNTIME_DRIVEN_PROBE)
            payload = {"round_id": probe_name("guard")}
            with suppress(Exception):
                run(_probe(rules, bus, payload, FailingNode()))
        health = p1_target.health
        if health is not None:
            driven.append(_messages.P1_3_RUNTIME_DRIVEN_HEALTH)

            async def check_health() -> None:
                client = p1_redis_factory()
                try:
                    await health(bus, client)
                finally:
                    await client.aclose()

            with suppress(Exception):
                run(check_health())
        # Threads and timers the target left running still construct now.
        time.sleep(rules.runtime_grace)
    driven.append(_messages.P1_3_RUNTIME_DRIVEN_GRACE.format(grace=rules.runtime_grace))
    seconds = time.monotonic() - watch.started
    stop_v2_watch(pytestconfig)

    constructions = guard.constructions
    violations = guard.violations
    _p1_criterion.figures = {
        "constructions": len(constructions),
        "outside_bridge": len(violations),
        "watched_s": round(seconds, 3),
        "grace_s": rules.runtime_grace,
    }
    _p1_criterion.summary = _messages.P1_3_BRIDGE_ONLY_SUMMARY.format(
        constructions=len(constructions), seconds=seconds
    )
    if violations:
        _p1_criterion.summary = _messages.P1_3_OUTSIDE_BRIDGE_SUMMARY.format(
            constructions=len(constructions), outside=len(violations)
        )
        fail(guard.format_violations())
    if constructions or engine is None:
        return
    # Nothing constructed while watched: fine only if the bridge holds an engine
    # it built before anything could watch (at import).
    held = engines_held_by(engine, rules.bridge_modules)
    _p1_criterion.figures["held_by_bridge"] = held
    if held:
        _p1_criterion.summary = _messages.P1_3_BRIDGE_HELD_SUMMARY.format(
            seconds=seconds, held=held
        )
        return
    _p1_criterion.summary = _messages.P1_3_RUNTIME_NOTHING_SEEN_SUMMARY.format(
        engine=engine.__name__
    )
    fail(
        _messages.P1_3_RUNTIME_NOTHING_SEEN.format(
            engine=engine.__name__, seconds=seconds, driven=", ".join(driven)
        ),
        _messages.P1_3_RUNTIME_EXPECTED.format(
            bridges=bridge_list(rules.bridge_modules), spec=rules.engine_class
        ),
        _messages.P1_3_RUNTIME_NOTHING_SEEN_FIX,
        _messages.ACCEPTANCE_READ_MORE,
    )


def criterion_bridge_relays(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The bridge relays v3 federation events to every healthy v2 node, past a failing one."""
    probe = p1_target.v2.relay_probe
    if probe is None:
        pytest.skip(_messages.P1_3_NO_RELAY_PROBE)
    payload = {"round_id": probe_name("relay"), "metrics": {"loss": 0.25}}
    failing = FailingNode()
    with_failing = accepts(probe, 3)
    with quiet_v2_warnings():
        received = run(_probe(p1_target.v2, p1_target.bus(), payload, failing))
    problems = [
        _messages.P1_3_RELAY_RECEIVED.format(
            node=node, count=len(got), messages=[dict(m) for m in got]
        )
        for node, got in received.items()
        if [dict(m) for m in got] != [payload]
    ]
    reached = len(received) - len(problems)
    _p1_criterion.figures = {
        "nodes": len(received),
        "nodes_reached": reached,
        "failing_node_calls": failing.calls,
    }
    _p1_criterion.summary = (
        _messages.P1_3_RELAY_PAST_FAILING_SUMMARY
        if with_failing
        else _messages.P1_3_RELAY_NO_FAILING_SUMMARY
    ).format(reached=reached, nodes=len(received))
    if not received:
        problems.append(_messages.P1_3_RELAY_NO_NODE)
    if problems and failing.calls:
        fail(
            _messages.P1_3_RELAY_STOPPED.format(reached=reached, nodes=len(received)),
            _messages.P1_3_RELAY_SENT.format(payload=payload),
            *bullets(problems),
            _messages.P1_3_RELAY_FAILING_CALLED.format(calls=failing.calls),
            _messages.P1_3_RELAY_STOPPED_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    if problems:
        fail(
            _messages.P1_3_RELAY_MISSED.format(reached=reached, nodes=len(received)),
            _messages.P1_3_RELAY_SENT.format(payload=payload),
            *bullets(problems),
            _messages.P1_3_RELAY_MISSED_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    if with_failing and not failing.calls:
        raise RelayProbeError(_messages.P1_3_RELAY_FAILING_NEVER_CALLED)


def criterion_docs(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The architecture docs name v3 as primary and v2 as deprecated."""
    from pytest_quantum_p1._v2 import check_docs

    rules = p1_target.v2
    if not rules.docs or not rules.doc_notice:
        _p1_criterion.summary = _messages.P1_3_DOCS_UNCHECKED_SUMMARY
        fail(
            _messages.P1_3_NO_DOCS if not rules.docs else _messages.P1_3_NO_DOC_NOTICE,
            _messages.P1_3_NO_DOCS_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    problems = check_docs(rules.docs, rules.doc_notice)
    _p1_criterion.figures = {"docs": len(rules.docs), "problems": len(problems)}
    _p1_criterion.summary = _messages.P1_3_DOCS_SUMMARY.format(docs=len(rules.docs))
    if problems:
        _p1_criterion.summary = _messages.P1_3_DOCS_PROBLEMS_SUMMARY.format(
            problems=len(problems), docs=len(rules.docs)
        )
        fail(
            _messages.P1_3_DOCS_MISSING_NOTICE,
            *bullets(problems),
            _messages.P1_3_DOCS_MISSING_NOTICE_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
