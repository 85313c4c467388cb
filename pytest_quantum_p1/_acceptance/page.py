"""The HTML page of the acceptance run: the checklist, each criterion's figures, three charts.

Self-contained (inline CSS and SVG, no scripts, no fonts to fetch) so it opens
offline and can be attached to a CI run. The header is coloured by the
verdict and links to every criterion not passing; those come first in the
checklist, and every criterion row is an anchor (``#P1-2.cached-read``).
Figures are written as people read them, in their units (``20,000``,
``1.98 us``). The charts draw the series the P1-2 criteria record: read
latency per call (cached vs cold, against the budget), hit rate over time,
invalidation propagation per instance; a chart whose criterion stopped
before recording its data says so instead of vanishing.
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.p1_2 import MIN_HIT_RATE
from pytest_quantum_p1._acceptance.record import OUTCOMES, CriterionRecord, by_task, outcome_counts
from pytest_quantum_p1._acceptance.svg import bar_chart, format_number, line_chart
from pytest_quantum_p1._units import format_duration

__all__ = ["anchor_for", "format_figure", "render_html"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:980px;color:#1d232a;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}
.meta{color:#5b6570}table{border-collapse:collapse;width:100%}
td,th{padding:.35rem .5rem;border-bottom:1px solid #e3e7eb;text-align:left;vertical-align:top}
.passed{color:#1a7f37}.failed,.error{color:#cf222e}.skipped{color:#6e7781}
.badge{font-weight:600;font-family:ui-monospace,monospace}
pre{white-space:pre-wrap;background:#f6f8fa;padding:.5rem;margin:.3rem 0 0;font-size:12px}
code{font-family:ui-monospace,monospace;font-size:13px}
.charts{display:grid;grid-template-columns:1fr;gap:1.5rem}
figure{margin:0}figcaption{color:#5b6570;font-size:12.5px;margin-top:.2rem}
svg text{font:11px system-ui,sans-serif;fill:#3d4752}
.verdict{padding:.5rem .8rem;border-left:6px solid #6e7781;background:#f6f8fa;margin:.6rem 0 1rem}
.verdict.passed{border-color:#1a7f37;background:#dafbe1}
.verdict.failed{border-color:#cf222e;background:#ffebe9}
.verdict p{margin:.15rem 0}.tally{font-size:1.05rem;font-weight:600}
.tally .passed,.tally .failed,.tally .error,.tally .skipped{font-weight:600}
a{color:#0969da}a.failed,a.error{color:#cf222e}
tr.group th{background:#f6f8fa}tr.not-passing th{background:#ffebe9;color:#cf222e}
tr:target td{background:#fff8c5}
.figures{color:#3d4752;font-size:12.5px}.fig{white-space:nowrap;margin-right:.9em}
.fig .k{color:#6e7781}
table.run th{width:12rem;color:#5b6570;font-weight:600}
tr.has-message td{border-bottom:none}tr.message td{padding-top:0}
.not-measured p{border:1px dashed #cf222e;color:#cf222e;padding:1rem;margin:0}
"""


#: Percentile ticks of the latency chart, at their "nines": -log10(1 - q).
_NINES = (
    (0.0, "min"),
    (math.log10(2), "p50"),
    (1.0, "p90"),
    (2.0, "p99"),
    (3.0, "p99.9"),
    (4.0, "p99.99"),
)


def _percentile_curve(samples: Sequence[float]) -> list[tuple[float, float]]:
    """Latency (x) against its percentile, on a scale of nines (y): the tail gets the room.

    The call of rank ``i`` (0-based) of ``n`` sits at ``-log10(1 - i/n)``, so the
    median is at 0.3, the p99 at 2 and the slowest call at ``log10(n)``. Points
    are thinned to about 50 per nine, never dropping the slowest call.
    """
    ordered = sorted(s for s in samples if s > 0)
    n = len(ordered)
    if not n:
        return []
    ranks = sorted(
        {min(n - 1, math.ceil(n * (1 - 10 ** (-k / 50)))) for k in range(0, 400)} | {n - 1}
    )
    return [(ordered[i], -math.log10(1 - i / n)) for i in ranks]


#: Unit suffixes of figure names and what one unit is in nanoseconds.
_DURATION_SUFFIXES = (("_ns", 1.0), ("_ms", 1e6), ("_s", 1e9))


def anchor_for(criterion_id: str) -> str:
    """The fragment id of a criterion's row: its id, with anything but ``A-Za-z0-9_.-`` as ``-``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", criterion_id)


def format_figure(name: str, value: object) -> tuple[str, str]:
    """A figure as a person reads it: its name without the unit suffix, and its value in that unit.

    ``("p99_ns", 1030)`` is ``("p99", "1.03 us")`` (:func:`format_duration`),
    ``("reads", 20000)`` is ``("reads", "20,000")``, ``("hit_rate", 0.98)`` is
    ``("hit_rate", "98.0 %")``; a value that is not a number (not measured) is ``-``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return name, "-"
    if not math.isfinite(value):
        return name, format_number(value)
    if name.endswith("_per_s"):
        return name, f"{format_number(value)}/s"
    for suffix, scale in _DURATION_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix), format_duration(value * scale)
    if name.endswith("_min"):
        return name.removesuffix("_min"), f"{format_number(value)} min"
    if name.endswith("_bytes"):
        return name.removesuffix("_bytes"), f"{format_number(value)} bytes"
    if name.endswith("rate") and 0 <= value <= 1:
        return name, f"{value * 100:.1f} %"
    if name in ("speedup", "ratio"):
        return name, f"{format_number(value)}x"
    if name.endswith("_level") and float(value).is_integer():
        return name, logging.getLevelName(int(value))
    return name, format_number(value)


def _pairs(items: Mapping[str, object]) -> str:
    # Each name-value pair kept on one line; the raw key (as in the JSON) is the tooltip.
    out = []
    for key, value in items.items():
        label, text = format_figure(key, value)
        out.append(
            f'<span class="fig" title="{html.escape(key)}"><span class="k">{html.escape(label)}</span> '
            f"{html.escape(text)}</span>"
        )
    return " ".join(out)


def _link(record: CriterionRecord) -> str:
    return (
        f'<a class="{record.outcome}" href="#{anchor_for(record.id)}">{html.escape(record.id)}</a>'
    )


def _figure(svg: str, caption: str, chart_id: str) -> str:
    return f'<figure id="{chart_id}">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'


def _not_measured(record: CriterionRecord | None, caption: str, chart_id: str) -> str | None:
    """A chart's place when its criterion stopped (failed or erred) before recording its data."""
    if record is None or record.outcome not in ("failed", "error"):
        return None
    text = html.escape(_messages.ACCEPTANCE_CHART_NOT_MEASURED).format(
        id=_link(record), outcome=html.escape(record.outcome)
    )
    return (
        f'<figure id="{chart_id}" class="not-measured"><p>{text}</p>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _latency_chart(by_id: Mapping[str, CriterionRecord], meta: Mapping[str, Any]) -> str | None:
    warm = by_id.get("P1-2.cached-read")
    cold = by_id.get("P1-2.cold-vs-warm")
    caption = _messages.ACCEPTANCE_CHART_LATENCY_CAPTION
    series: dict[str, list[tuple[float, float]]] = {}
    if warm and warm.series.get("warm_ns"):
        series[_messages.ACCEPTANCE_CHART_LATENCY_CACHED] = _percentile_curve(
            warm.series["warm_ns"]
        )
    if cold and cold.series.get("cold_ns"):
        series[_messages.ACCEPTANCE_CHART_LATENCY_COLD] = _percentile_curve(cold.series["cold_ns"])
    if not series:
        return _not_measured(warm, caption, "chart-latency")
    # The budget the run used: the criterion's figure, else the run's setting.
    budget = (warm.figures.get("budget_ns") if warm else None) or meta.get("latency_budget_ns")
    p99 = warm.figures.get("p99_ns") if warm and warm.series.get("warm_ns") else None
    top = max(y for points in series.values() for _, y in points)
    return _figure(
        line_chart(
            series,
            x_label=_messages.ACCEPTANCE_CHART_LATENCY_X,
            y_label=_messages.ACCEPTANCE_CHART_LATENCY_Y,
            log_x=True,
            y_range=(0.0, max(2.0, math.ceil(top))),
            y_ticks=_NINES,
            vline=(
                (
                    float(budget),
                    _messages.ACCEPTANCE_CHART_LATENCY_BUDGET.format(
                        budget=format_duration(float(budget))
                    ),
                )
                if isinstance(budget, int | float) and budget > 0
                else None
            ),
            # The verdict's own point: the p99 must sit left of the budget line.
            markers=(
                [
                    (
                        float(p99),
                        2.0,
                        _messages.ACCEPTANCE_CHART_LATENCY_P99.format(
                            p99=format_duration(float(p99))
                        ),
                    )
                ]
                if isinstance(p99, int | float) and math.isfinite(p99) and p99 > 0
                else []
            ),
        ),
        caption,
        "chart-latency",
    )


def _hit_rate_chart(by_id: Mapping[str, CriterionRecord]) -> str | None:
    hit = by_id.get("P1-2.hit-rate")
    caption = _messages.ACCEPTANCE_CHART_HIT_RATE_CAPTION
    if not (hit and hit.series.get("hit_rate") and hit.series.get("t_s")):
        return _not_measured(hit, caption, "chart-hit-rate")
    t_s = hit.series["t_s"]
    lines = {
        _messages.ACCEPTANCE_CHART_HIT_RATE_CUMULATIVE: list(
            zip(t_s, hit.series["hit_rate"], strict=True)
        )
    }
    if hit.series.get("window_hit_rate"):
        lines[_messages.ACCEPTANCE_CHART_HIT_RATE_WINDOW] = list(
            zip(t_s, hit.series["window_hit_rate"], strict=True)
        )
    lowest = min(y for pts in lines.values() for _, y in pts)
    return _figure(
        line_chart(
            lines,
            x_label=(
                _messages.ACCEPTANCE_CHART_HIT_RATE_X_REAL
                if hit.figures.get("real_time")
                else _messages.ACCEPTANCE_CHART_HIT_RATE_X
            ),
            y_label=_messages.ACCEPTANCE_CHART_HIT_RATE_Y,
            # Zoomed to where the story is, but always showing the required rate.
            y_range=(max(0.0, min(0.85, lowest - 0.02)), 1.0),
            hline=(
                MIN_HIT_RATE,
                _messages.ACCEPTANCE_CHART_HIT_RATE_REQUIRED.format(rate=MIN_HIT_RATE),
            ),
        ),
        caption,
        "chart-hit-rate",
    )


def _propagation_chart(by_id: Mapping[str, CriterionRecord]) -> str | None:
    inv = by_id.get("P1-2.invalidation")
    caption = _messages.ACCEPTANCE_CHART_PROPAGATION_CAPTION
    if not (inv and inv.series.get("propagation_p99_ms")):
        return _not_measured(inv, caption, "chart-propagation")
    # A None (carried as NaN) is an instance that processed no invalidation.
    values = [
        float(v) if isinstance(v, int | float) else math.nan
        for v in inv.series["propagation_p99_ms"]
    ]
    return _figure(
        bar_chart(
            values,
            labels=[
                _messages.ACCEPTANCE_CHART_PROPAGATION_BAR.format(index=i)
                for i in range(len(values))
            ],
            short_labels=[str(i) for i in range(len(values))],
            x_label=_messages.ACCEPTANCE_CHART_PROPAGATION_X,
            y_label=_messages.ACCEPTANCE_CHART_PROPAGATION_Y,
            missing=_messages.ACCEPTANCE_CHART_PROPAGATION_MISSING,
        ),
        caption,
        "chart-propagation",
    )


def _charts(records: Sequence[CriterionRecord], meta: Mapping[str, Any]) -> list[str]:
    by_id = {r.id: r for r in records}
    drawn = (_latency_chart(by_id, meta), _hit_rate_chart(by_id), _propagation_chart(by_id))
    return [figure for figure in drawn if figure is not None]


def _verdict(records: Sequence[CriterionRecord]) -> str:
    """The header: the tally coloured by outcome, and a link to each criterion not passing."""
    not_passing = [r for r in records if r.outcome in ("failed", "error")]
    first = {o: next((r for r in not_passing if r.outcome == o), None) for o in OUTCOMES}
    parts = []
    for outcome in OUTCOMES:
        count = sum(r.outcome == outcome for r in records)
        if not count:
            continue
        text = html.escape(f"{count} {outcome}")
        target = first[outcome]
        parts.append(
            f'<a class="{outcome}" href="#{anchor_for(target.id)}">{text}</a>'
            if target is not None
            else f'<span class="{outcome}">{text}</span>'
        )
    tally = ", ".join(parts) or html.escape(outcome_counts(records))
    state = (
        "failed"
        if not_passing
        else "passed"
        if any(r.outcome == "passed" for r in records)
        else "skipped"
    )
    see = (
        f"<p>{_messages.ACCEPTANCE_PAGE_SEE} {', '.join(_link(r) for r in not_passing)}</p>"
        if not_passing
        else ""
    )
    return f'<div class="verdict {state}"><p class="tally">{tally}</p>{see}</div>'


def _row(r: CriterionRecord) -> str:
    # The message gets a row of its own, the table's full width: a verdict's
    # evidence reads as written, not squeezed into the title's column.
    message = (
        f'<tr class="message"><td></td><td colspan="2"><pre>{html.escape(r.message)}</pre></td></tr>'
        if r.message
        else ""
    )
    mark = _messages.ACCEPTANCE_MARKS.get(r.outcome, r.outcome)
    figures = (
        _pairs(r.figures)
        if r.figures
        else html.escape(_messages.ACCEPTANCE_PAGE_NOTHING_MEASURED)
        if r.outcome in ("failed", "error")
        else ""
    )
    has_message = ' class="has-message"' if message else ""
    return (
        f'<tr id="{anchor_for(r.id)}" data-outcome="{html.escape(r.outcome)}"'
        f"{has_message}>"
        f'<td class="badge {html.escape(r.outcome)}">{html.escape(mark)}</td>'
        f"<td><code>{html.escape(r.id)}</code><br>{html.escape(r.title)}</td>"
        f'<td>{html.escape(r.summary)}<br><span class="figures">{figures}</span></td></tr>'
        f"{message}"
    )


def _checklist(records: Sequence[CriterionRecord]) -> str:
    """The criteria, those failed or in error first, then the rest grouped by task."""
    not_passing = [r for r in records if r.outcome in ("failed", "error")]
    rows: list[str] = []
    if not_passing:
        rows.append(
            f'<tr class="group not-passing"><th colspan="3">'
            f"{html.escape(_messages.ACCEPTANCE_PAGE_NOT_PASSING)}</th></tr>"
        )
        rows.extend(_row(r) for r in not_passing)
    rest = [r for r in records if r.outcome not in ("failed", "error")]
    for task, group in by_task(rest).items():
        title = _messages.ACCEPTANCE_TASK_TITLES.get(task, task)
        rows.append(f'<tr class="group"><th colspan="3">{html.escape(title)}</th></tr>')
        rows.extend(_row(r) for r in group)
    return f'<table class="checklist">{"".join(rows)}</table>'


def _run_value(key: str, value: object) -> str:
    if isinstance(value, Mapping):
        return (
            _pairs({str(k): v for k, v in value.items()})
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values())
            else " ".join(
                f'<span class="fig"><span class="k">{html.escape(str(k))}</span> '
                f"{_run_value(str(k), v)}</span>"
                for k, v in value.items()
            )
        )
    if isinstance(value, list | tuple):
        return html.escape(", ".join(str(v) for v in value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return html.escape(format_figure(key, value)[1])
    return html.escape(str(value))


def _run(meta: Mapping[str, Any]) -> str:
    """The run's settings and versions as a table: one row per key, values in their units."""
    rows = []
    for key, value in meta.items():
        label = format_figure(key, value)[0] if isinstance(value, int | float) else key
        rows.append(
            f'<tr><th title="{html.escape(str(key))}">{html.escape(str(label))}</th>'
            f"<td>{_run_value(str(key), value)}</td></tr>"
        )
    return f'<table class="run">{"".join(rows)}</table>'


def render_html(records: Sequence[CriterionRecord], meta: Mapping[str, Any]) -> str:
    """A self-contained HTML page: verdict, checklist (failures first), charts and the run."""
    charts = _charts(records, meta)
    title = _messages.ACCEPTANCE_PAGE_TITLE
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1>"
        f"{_verdict(records)}"
        f"{_checklist(records)}"
        + (
            f'<h2 id="charts">{_messages.ACCEPTANCE_PAGE_CHARTS}</h2>'
            f'<div class="charts">{"".join(charts)}</div>'
            if charts
            else ""
        )
        + f'<h2 id="run">{_messages.ACCEPTANCE_PAGE_RUN}</h2>{_run(meta)}</body></html>\n'
    )
