"""The record of one criterion: its verdict and what it measured, as every report reads it.

A criterion fills its :class:`CriterionRecord` (figures, the key figure in
words, chart data); the hooks add the outcome and message, carry it on the test
report as its JSON form plus chart data (so it survives pytest-xdist) and
rebuild it with :meth:`CriterionRecord.from_carried` for the checklist and the
reports. :func:`by_task` and :func:`outcome_counts` are the grouping and the
tally the terminal checklist and the HTML page share.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_quantum_p1 import _messages

__all__ = ["OUTCOMES", "CriterionRecord", "by_task", "outcome_counts"]

#: Every outcome a criterion can have, in the order the tally names them.
OUTCOMES = ("passed", "failed", "error", "skipped")


@dataclass
class CriterionRecord:
    """The verdict of one success criterion, with what it measured."""

    id: str
    task: str
    title: str
    outcome: str = "skipped"
    #: Numbers only; units are in the names (``p99_ns``, ``hit_rate``, ...).
    figures: dict[str, float] = field(default_factory=dict)
    #: The key figure in words, for the checklist line.
    summary: str = ""
    #: Why it failed and how to fix it; empty when it passed.
    message: str = ""
    duration_s: float = 0.0
    #: Data behind the HTML charts (not written to the JSON).
    series: dict[str, list[float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "title": self.title,
            "outcome": self.outcome,
            # A figure that is not a number (a check's ``None`` for "not measured")
            # is carried as NaN, which the JSON report writes as null: never a
            # crash of the report at the end of the run.
            "figures": {k: v if _is_number(v) else math.nan for k, v in self.figures.items()},
            "summary": self.summary,
            "message": self.message,
            "duration_s": round(self.duration_s, 6),
        }

    @classmethod
    def from_carried(cls, data: Mapping[str, Any]) -> CriterionRecord:
        """The record back from what a report carried: its fields, other keys ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float)


def by_task(records: Iterable[CriterionRecord]) -> dict[str, list[CriterionRecord]]:
    """``records`` grouped by task, tasks in the order they first appear."""
    groups: dict[str, list[CriterionRecord]] = {}
    for record in records:
        groups.setdefault(record.task, []).append(record)
    return groups


def outcome_counts(records: Sequence[CriterionRecord]) -> str:
    """The tally line: ``"17 passed, 1 failed"``."""
    counts = {o: sum(r.outcome == o for r in records) for o in OUTCOMES}
    return ", ".join(f"{n} {o}" for o, n in counts.items() if n) or _messages.ACCEPTANCE_NONE_RAN
