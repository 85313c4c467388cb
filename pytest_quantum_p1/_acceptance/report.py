"""The reports of the acceptance run: the terminal checklist, the JSON report, both files written.

Plain functions over :class:`CriterionRecord` values, so they can be used and
tested without pytest. The HTML page written beside the JSON is
:func:`~pytest_quantum_p1._acceptance.page.render_html`'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.page import render_html
from pytest_quantum_p1._acceptance.record import CriterionRecord, by_task, outcome_counts

__all__ = ["html_path_for", "report_dict", "terminal_lines", "write_reports"]


def terminal_lines(records: Sequence[CriterionRecord]) -> list[str]:
    """The checklist: grouped by task, one line per criterion, failures explained."""
    width = max((len(r.id) for r in records), default=0)
    lines: list[str] = []
    for task, group in by_task(records).items():
        lines.append(_messages.ACCEPTANCE_TASK_TITLES.get(task, task))
        for r in group:
            detail = r.summary or r.title
            mark = _messages.ACCEPTANCE_MARKS.get(r.outcome, r.outcome.upper())
            lines.append(f"  [{mark:<5}] {r.id:<{width}}  {detail}")
            if r.outcome in ("failed", "error") and r.message:
                lines.extend(f"          {line}" for line in r.message.splitlines())
    lines.append(outcome_counts(records))
    return lines


def report_dict(records: Sequence[CriterionRecord], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON report as a dict: ``criteria`` and ``meta``."""
    criteria = []
    for record in records:
        data = record.as_json()
        # JSON has no inf or NaN: a figure without a finite value is null. Only
        # here: as_json also carries records between processes, figures intact.
        data["figures"] = {k: v if math.isfinite(v) else None for k, v in data["figures"].items()}
        criteria.append(data)
    return {"criteria": criteria, "meta": dict(meta)}


def html_path_for(json_path: Path) -> Path:
    """The HTML page written next to the JSON report (never the JSON report itself)."""
    if json_path.suffix.lower() in (".html", ".htm"):
        return json_path.with_name(json_path.stem + ".report.html")
    return json_path.with_suffix(".html")


def write_reports(
    path: Path, records: Sequence[CriterionRecord], meta: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write the JSON report to ``path`` and the HTML page beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(report_dict(records, meta), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    page = html_path_for(path)
    page.write_text(render_html(records, meta), encoding="utf-8")
    return path, page
