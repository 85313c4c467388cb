"""The HTML page of the acceptance run: the checklist, each criterion's figures, three charts.

Self-contained (inline CSS and SVG, no scripts, no fonts to fetch) so it opens
offline and can be attached to a CI run. The charts draw the series the P1-2
criteria record: read latency (cached vs cold), hit rate over time,
invalidation propagation per instance.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.p1_2 import MIN_HIT_RATE
from pytest_quantum_p1._acceptance.record import CriterionRecord, by_task, outcome_counts
from pytest_quantum_p1._acceptance.svg import bar_chart, format_number, line_chart
from pytest_quantum_p1._units import format_duration

__all__ = ["render_html"]

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


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _latency_chart(by_id: Mapping[str, CriterionRecord]) -> str | None:
    warm = by_id.get("P1-2.cached-read")
    cold = by_id.get("P1-2.cold-vs-warm")
    series: dict[str, list[tuple[float, float]]] = {}
    if warm and warm.series.get("warm_ns"):
        series[_messages.ACCEPTANCE_CHART_LATENCY_CACHED] = _percentile_curve(
            warm.series["warm_ns"]
        )
    if cold and cold.series.get("cold_ns"):
        series[_messages.ACCEPTANCE_CHART_LATENCY_COLD] = _percentile_curve(cold.series["cold_ns"])
    if not series:
        return None
    budget = warm.figures.get("budget_ns") if warm else None
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
        ),
        _messages.ACCEPTANCE_CHART_LATENCY_CAPTION,
    )


def _hit_rate_chart(by_id: Mapping[str, CriterionRecord]) -> str | None:
    hit = by_id.get("P1-2.hit-rate")
    if not (hit and hit.series.get("hit_rate") and hit.series.get("t_s")):
        return None
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
            x_label=_messages.ACCEPTANCE_CHART_HIT_RATE_X,
            y_label=_messages.ACCEPTANCE_CHART_HIT_RATE_Y,
            # Zoomed to where the story is, but always showing the required rate.
            y_range=(max(0.0, min(0.85, lowest - 0.02)), 1.0),
            hline=(
                MIN_HIT_RATE,
                _messages.ACCEPTANCE_CHART_HIT_RATE_REQUIRED.format(rate=MIN_HIT_RATE),
            ),
        ),
        _messages.ACCEPTANCE_CHART_HIT_RATE_CAPTION,
    )


def _propagation_chart(by_id: Mapping[str, CriterionRecord]) -> str | None:
    inv = by_id.get("P1-2.invalidation")
    if not (inv and inv.series.get("propagation_p99_ms")):
        return None
    values = inv.series["propagation_p99_ms"]
    return _figure(
        bar_chart(
            values,
            labels=[
                _messages.ACCEPTANCE_CHART_PROPAGATION_BAR.format(index=i)
                for i in range(len(values))
            ],
            y_label=_messages.ACCEPTANCE_CHART_PROPAGATION_Y,
        ),
        _messages.ACCEPTANCE_CHART_PROPAGATION_CAPTION,
    )


def _charts(records: Sequence[CriterionRecord]) -> list[str]:
    by_id = {r.id: r for r in records}
    drawn = (_latency_chart(by_id), _hit_rate_chart(by_id), _propagation_chart(by_id))
    return [figure for figure in drawn if figure is not None]


def render_html(records: Sequence[CriterionRecord], meta: Mapping[str, Any]) -> str:
    """A self-contained HTML page: checklist, figures and charts."""
    rows: list[str] = []
    for task, group in by_task(records).items():
        title = _messages.ACCEPTANCE_TASK_TITLES.get(task, task)
        rows.append(f'<tr><th colspan="3">{html.escape(title)}</th></tr>')
        for r in group:
            figures = ", ".join(f"{k}={format_number(v)}" for k, v in r.figures.items())
            message = f"<pre>{html.escape(r.message)}</pre>" if r.message else ""
            mark = _messages.ACCEPTANCE_MARKS.get(r.outcome, r.outcome)
            rows.append(
                f'<tr><td class="badge {r.outcome}">{mark}</td>'
                f"<td><code>{html.escape(r.id)}</code><br>{html.escape(r.title)}{message}</td>"
                f"<td>{html.escape(r.summary)}<br><small>{html.escape(figures)}</small></td></tr>"
            )
    meta_items = "".join(
        f"<li><b>{html.escape(str(k))}</b>: {html.escape(json.dumps(v) if not isinstance(v, str) else v)}</li>"
        for k, v in meta.items()
    )
    charts = _charts(records)
    title = _messages.ACCEPTANCE_PAGE_TITLE
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1>"
        f'<p class="meta">{html.escape(outcome_counts(records))}</p>'
        f"<table>{''.join(rows)}</table>"
        + (
            f'<h2 id="charts">{_messages.ACCEPTANCE_PAGE_CHARTS}</h2>'
            f'<div class="charts">{"".join(charts)}</div>'
            if charts
            else ""
        )
        + f'<h2>{_messages.ACCEPTANCE_PAGE_RUN}</h2><ul class="meta">{meta_items}</ul></body></html>\n'
    )
