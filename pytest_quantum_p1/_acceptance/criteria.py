"""The success criteria in checklist order (:func:`criteria_for`), and their pytest items.

Each row names a criterion id and its criterion function; the task is the id's
prefix and the title the one in ``_messages.ACCEPTANCE_CRITERION_TITLES``.
:func:`collect_criteria` turns the rows into :class:`CriterionItem` s under one
``quantum-p1`` collector, reported like any collected test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.deploy import criterion_health
from pytest_quantum_p1._acceptance.p1_1 import (
    criterion_catalogue,
    criterion_logged,
    event_criterion,
)
from pytest_quantum_p1._acceptance.p1_2 import (
    criterion_cached_read,
    criterion_cold_vs_warm,
    criterion_hit_rate,
    criterion_invalidation,
    criterion_no_stale_reads,
    criterion_ttl,
)
from pytest_quantum_p1._acceptance.p1_3 import (
    criterion_bridge_only_at_runtime,
    criterion_bridge_relays,
    criterion_deprecation_warning,
    criterion_docs,
    criterion_files_removed,
    criterion_no_direct_imports,
)
from pytest_quantum_p1._acceptance.record import CriterionRecord

if TYPE_CHECKING:
    from pytest_quantum_p1._target import P1Target

__all__ = ["EVENT_IDS", "Criterion", "CriterionItem", "collect_criteria", "criteria_for"]

# Ids the acceptance run gives the seed's four events; other targets' events
# get ``P1-1.event:<name>``.
EVENT_IDS: Mapping[str, str] = {
    "ai.hfos.mode_changed": "P1-1.hfos-mode",
    "safety.governor.level_changed": "P1-1.safety-level",
    "model.shadow_test.completed": "P1-1.shadow-test",
    "federation.node.status_changed": "P1-1.node-status",
}


@dataclass(frozen=True)
class Criterion:
    """One success criterion: its id, task, title and criterion function."""

    id: str
    task: str
    title: str
    check: Callable[..., None]


def _row(id: str, check: Callable[..., None], title: str | None = None) -> Criterion:
    return Criterion(
        id=id,
        task=id.partition(".")[0],
        title=_messages.ACCEPTANCE_CRITERION_TITLES[id] if title is None else title,
        check=check,
    )


def criteria_for(target: P1Target) -> list[Criterion]:
    """The success criteria, in checklist order, for ``target``."""
    events = [
        _row(
            EVENT_IDS.get(event.name, f"P1-1.event:{event.name}"),
            event_criterion(event),
            _messages.ACCEPTANCE_EVENT_TITLE.format(name=event.name),
        )
        for event in target.required_events
    ]
    return [
        _row("P1-1.catalogue", criterion_catalogue),
        *events,
        _row("P1-1.logged", criterion_logged),
        _row("P1-2.cached-read", criterion_cached_read),
        _row("P1-2.cold-vs-warm", criterion_cold_vs_warm),
        _row("P1-2.hit-rate", criterion_hit_rate),
        _row("P1-2.ttl", criterion_ttl),
        _row("P1-2.invalidation", criterion_invalidation),
        _row("P1-2.no-stale-reads", criterion_no_stale_reads),
        _row("P1-3.files-removed", criterion_files_removed),
        _row("P1-3.no-direct-imports", criterion_no_direct_imports),
        _row("P1-3.deprecation-warning", criterion_deprecation_warning),
        _row("P1-3.bridge-only-at-runtime", criterion_bridge_only_at_runtime),
        _row("P1-3.bridge-relays", criterion_bridge_relays),
        _row("P1-3.docs", criterion_docs),
        _row("deploy.health", criterion_health),
    ]


class CriterionItem(pytest.Function):
    """A test item running one criterion; carries its :class:`CriterionRecord`."""

    record: CriterionRecord

    def reportinfo(self) -> tuple[str, int | None, str]:
        # Criteria live in no test file; name them by id, not by module path.
        return ("quantum-p1", None, f"{self.name}: {self.record.title}")


class _Suite(pytest.Collector):
    def __init__(self, *, criteria: Sequence[Criterion], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._criteria = criteria

    def collect(self) -> list[pytest.Item]:
        items: list[pytest.Item] = []
        for criterion in self._criteria:
            item = CriterionItem.from_parent(self, name=criterion.id, callobj=criterion.check)
            item.record = CriterionRecord(
                id=criterion.id, task=criterion.task, title=criterion.title
            )
            items.append(item)
        return items


def collect_criteria(session: pytest.Session, target: P1Target) -> list[pytest.Item]:
    """Collect the acceptance items, reporting them like any collected test."""
    suite = _Suite.from_parent(
        session, name="quantum-p1", nodeid="quantum-p1", criteria=criteria_for(target)
    )
    report = suite.ihook.pytest_make_collect_report(collector=suite)
    suite.ihook.pytest_collectreport(report=report)
    return [node for node in report.result if isinstance(node, pytest.Item)]
