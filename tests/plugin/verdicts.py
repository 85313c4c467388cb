"""How a test proves a verdict: a target broken in one way fails exactly the criterion it breaks.

A :class:`Break` names a broken-target builder (``root -> P1Target``, in any
module under ``tests``), the criterion it must fail and the phrases its
message must carry; :func:`assert_breaks_exactly` runs the whole acceptance
run against it and checks the outcome of every criterion, the checklist line
and the JSON report. The lists of breaks live in the test modules
(``test_acceptance.py`` and the ``test_bugs_*.py`` modules), one per area.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pytest_quantum_p1._acceptance import criteria_for
from reference_impl.p1_target import TARGET
from tests.plugin.broken_targets import (
    NOT_SLOW,
    Builder,
    Checklist,
    outcomes,
    read_report,
    run_p1,
)

__all__ = ["ALL_IDS", "FAST_IDS", "REPORT", "SLOW_ID", "Break", "assert_breaks_exactly"]

#: Every criterion of the reference target, in checklist order.
ALL_IDS = [criterion.id for criterion in criteria_for(TARGET)]
SLOW_ID = "P1-2.no-stale-reads"
FAST_IDS = [name for name in ALL_IDS if name != SLOW_ID]
REPORT = "--p1-report=p1.json"


@dataclass(frozen=True)
class Break:
    """A target broken for ``criterion``, and what its failure message must say."""

    criterion: str
    builder: Builder
    #: What was found: phrases of the message, under the checklist line and in the JSON.
    found: tuple[str, ...]
    #: How to fix it: a phrase of the same message (``None``: the message gives no advice).
    fix: str | None
    #: Extra options that keep the run short (see the builder's docstring).
    options: tuple[str, ...] = ()
    #: What the line says when the criterion passes, which its failed line must not claim.
    claim: str | None = None
    #: Criteria that cannot pass either, when a break cannot be confined to one.
    collateral: frozenset[str] = field(default_factory=frozenset)
    #: ``"failed"`` (the backend broke a promise) or ``"error"`` (the check could not run).
    outcome: str = "failed"
    #: What the message says instead when the store is observed on the wire, where
    #: the evidence differs (``None``: the same phrases): the verdict must not.
    wire_found: tuple[str, ...] | None = None


def assert_breaks_exactly(pytester: pytest.Pytester, case: Break, *, wire: bool = False) -> None:
    """The broken criterion gets ``case.outcome`` with its message under its line; all else passes.

    Where a break cannot be confined to one criterion, the others are named in
    ``collateral`` and the set of criteria not passing is still asserted exactly.
    ``wire``: the same stores in the URL form, observed on the wire.
    """
    __tracebackhide__ = True
    deselect = () if case.criterion == SLOW_ID else NOT_SLOW
    result = run_p1(pytester, REPORT, *deselect, *case.options, target=case.builder, wire=wire)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = read_report(pytester.path / "p1.json")
    found = outcomes(report)
    assert list(found) == (ALL_IDS if case.criterion == SLOW_ID else FAST_IDS)
    assert found[case.criterion] == case.outcome
    assert {name for name, outcome in found.items() if outcome != "passed"} == {
        case.criterion,
        *case.collateral,
    }

    line = Checklist.parse(result.outlines).lines[case.criterion]
    assert line.mark == ("FAIL" if case.outcome == "failed" else "ERROR")
    if case.claim is not None:
        assert case.claim not in line.detail
    shown = "\n".join(line.message)
    (message,) = (c["message"] for c in report["criteria"] if c["id"] == case.criterion)
    found_phrases = case.wire_found if wire and case.wire_found is not None else case.found
    for phrase in (*found_phrases, *([case.fix] if case.fix else [])):
        assert phrase in shown
        assert phrase in message
