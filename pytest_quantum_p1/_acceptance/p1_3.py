"""P1-3, federation v2 deprecation: files removed, no direct imports, the warning, the bridge, docs.

The static checks (files, imports, docs) and the run-time guard are the
harness's ``_v2`` tools, run on the target's :class:`V2Rules`; these criteria
record their figures and word the verdict.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.drive import probe_name, quiet_v2_warnings, run
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.verdict import bullets, fail

if TYPE_CHECKING:
    from pytest_quantum_p1._target import P1Target

__all__ = [
    "criterion_bridge_only_at_runtime",
    "criterion_bridge_relays",
    "criterion_deprecation_warning",
    "criterion_docs",
    "criterion_files_removed",
    "criterion_no_direct_imports",
]


def criterion_files_removed(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The legacy v2 files are gone."""
    from pytest_quantum_p1._v2 import check_removed

    rules = p1_target.v2
    count = len(rules.removed_paths)
    left = check_removed(rules.removed_paths, rules.source_roots)
    _p1_criterion.figures = {"removed": count, "still_present": len(left)}
    _p1_criterion.summary = _messages.P1_3_FILES_REMOVED_SUMMARY.format(count=count)
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


def criterion_no_direct_imports(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Nothing but the bridge imports v2."""
    from pytest_quantum_p1._v2 import format_violations, scan_v2_usage

    rules = p1_target.v2
    result = scan_v2_usage(rules.source_roots, rules.v2_modules, rules.bridge_modules)
    _p1_criterion.figures = {
        "files_scanned": result.files_scanned,
        "violations": len(result.violations),
    }
    _p1_criterion.summary = _messages.P1_3_NO_DIRECT_IMPORTS_SUMMARY.format(
        files=result.files_scanned, violations=len(result.violations)
    )
    if not result.ok:
        fail(format_violations(result, rules))


def _line_after() -> tuple[str, int]:
    """The file and line just after the caller's line (where the engine is built)."""
    frame = sys._getframe(1)
    return frame.f_code.co_filename, frame.f_lineno + 1


def criterion_deprecation_warning(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Constructing the v2 engine warns DeprecationWarning at the caller's line."""
    from pytest_quantum_p1._v2 import load_engine_class

    engine = load_engine_class(p1_target.v2.engine_class)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        here = _line_after()
        engine()
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    name = engine.__name__
    _p1_criterion.figures = {"warnings": len(deprecations)}
    _p1_criterion.summary = _messages.P1_3_DEPRECATION_SUMMARY.format(engine=name)
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
    if (first.filename, first.lineno) != here:
        _p1_criterion.summary = _messages.P1_3_WARNS_ELSEWHERE_SUMMARY.format(
            engine=name, file=Path(first.filename).name, line=first.lineno
        )
        fail(
            _messages.P1_3_WARNS_ELSEWHERE.format(
                engine=name,
                file=first.filename,
                line=first.lineno,
                caller_file=here[0],
                caller_line=here[1],
            ),
            _messages.P1_3_WARNS_ELSEWHERE_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )


def criterion_bridge_only_at_runtime(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """At run time, only the bridge constructs the v2 engine."""
    from pytest_quantum_p1._v2 import V2Guard

    rules = p1_target.v2
    bus = p1_target.bus()
    with V2Guard.from_rules(rules) as guard, quiet_v2_warnings():
        for event in p1_target.required_events:
            run(event.action(bus))
        if rules.relay_probe is not None:
            run(rules.relay_probe(bus, {"round_id": probe_name("guard")}))
    constructions = len(guard.constructions)
    _p1_criterion.figures = {
        "constructions": constructions,
        "outside_bridge": len(guard.violations),
    }
    _p1_criterion.summary = _messages.P1_3_BRIDGE_ONLY_SUMMARY.format(constructions=constructions)
    if guard.violations:
        _p1_criterion.summary = _messages.P1_3_OUTSIDE_BRIDGE_SUMMARY.format(
            constructions=constructions, outside=len(guard.violations)
        )
        fail(guard.format_violations())


def criterion_bridge_relays(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The bridge relays v3 federation events to v2 nodes."""
    probe = p1_target.v2.relay_probe
    if probe is None:
        pytest.skip(_messages.P1_3_NO_RELAY_PROBE)
    payload = {"round_id": probe_name("relay"), "metrics": {"loss": 0.25}}
    with quiet_v2_warnings():
        received = run(probe(p1_target.bus(), payload))
    problems = [
        _messages.P1_3_RELAY_RECEIVED.format(
            node=node, count=len(got), messages=[dict(m) for m in got]
        )
        for node, got in received.items()
        if [dict(m) for m in got] != [payload]
    ]
    reached = len(received) - len(problems)
    _p1_criterion.figures = {"nodes": len(received), "nodes_reached": reached}
    _p1_criterion.summary = _messages.P1_3_RELAY_SUMMARY.format(
        reached=reached, nodes=len(received)
    )
    if not received:
        problems.append(_messages.P1_3_RELAY_NO_NODE)
    if problems:
        fail(
            _messages.P1_3_RELAY_MISSED.format(reached=reached, nodes=len(received)),
            _messages.P1_3_RELAY_SENT.format(payload=payload),
            *bullets(problems),
            _messages.P1_3_RELAY_MISSED_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )


def criterion_docs(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The architecture docs name v3 as primary and v2 as deprecated."""
    from pytest_quantum_p1._v2 import check_docs

    rules = p1_target.v2
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
