"""Reports of the acceptance run: terminal checklist, JSON and a static HTML page.

Plain functions over :class:`CriterionRecord` values, so they can be used and
tested without pytest. The HTML page is self-contained (inline CSS and SVG, no
scripts, no fonts to fetch) so it opens offline and can be attached to a CI run.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "OUTCOMES",
    "TASK_TITLES",
    "CriterionRecord",
    "html_path_for",
    "render_html",
    "report_dict",
    "terminal_lines",
    "write_reports",
]

OUTCOMES = ("passed", "failed", "error", "skipped")

TASK_TITLES: Mapping[str, str] = {
    "P1-1": "P1-1 missing critical events",
    "P1-2": "P1-2 policy store cache and invalidation",
    "P1-3": "P1-3 federation v2 deprecation",
    "deploy": "Deployment checklist",
}

_MARKS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}


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
            "figures": self.figures,
            "summary": self.summary,
            "message": self.message,
            "duration_s": round(self.duration_s, 6),
        }


def _by_task(records: Iterable[CriterionRecord]) -> dict[str, list[CriterionRecord]]:
    groups: dict[str, list[CriterionRecord]] = {}
    for record in records:
        groups.setdefault(record.task, []).append(record)
    return groups


def _counts(records: Sequence[CriterionRecord]) -> str:
    counts = {o: sum(r.outcome == o for r in records) for o in OUTCOMES}
    return ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no criteria ran"


def terminal_lines(records: Sequence[CriterionRecord]) -> list[str]:
    """The checklist: grouped by task, one line per criterion, failures explained."""
    width = max((len(r.id) for r in records), default=0)
    lines: list[str] = []
    for task, group in _by_task(records).items():
        lines.append(TASK_TITLES.get(task, task))
        for r in group:
            detail = r.summary or r.title
            lines.append(
                f"  [{_MARKS.get(r.outcome, r.outcome.upper()):<5}] {r.id:<{width}}  {detail}"
            )
            if r.outcome in ("failed", "error") and r.message:
                lines.extend(f"          {line}" for line in r.message.splitlines())
    lines.append(_counts(records))
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


# --- HTML -------------------------------------------------------------------

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

_COLOURS = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a")


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.4g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 12) for i in range(count)]


def _decades(lo: float, hi: float) -> list[float]:
    """Powers of ten within [lo, hi] (log10 values), for a log axis."""
    return [float(d) for d in range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)] or [lo]


def _duration_label(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:g} {unit}"
    return f"{ns:g} ns"


def _svg_lines(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    y_range: tuple[float, float] | None = None,
    hline: tuple[float, str] | None = None,
) -> str:
    """A line chart of several (x, y) series, as inline SVG."""
    w, h, left, right, top, bottom = 900, 300, 64, 16, 34, 44
    points = [p for s in series.values() for p in s]
    if not points:
        return "<p>(no data)</p>"

    def tx(x: float) -> float:
        return math.log10(x) if log_x else x

    xs = [tx(x) for x, _ in points if not log_x or x > 0]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1
    y0, y1 = y_range or (min(y for _, y in points), max(y for _, y in points))
    if hline:
        y0, y1 = min(y0, hline[0]), max(y1, hline[0])
    if y1 == y0:
        y1 = y0 + 1

    def px(x: float) -> float:
        return left + (tx(x) - x0) / (x1 - x0) * (w - left - right)

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * (h - top - bottom)

    out = [
        f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for ty in _ticks(y0, y1):
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{py(ty):.1f}" y2="{py(ty):.1f}" stroke="#eaeef2"/>'
            f'<text x="{left - 6}" y="{py(ty) + 4:.1f}" text-anchor="end">{_fmt(ty)}</text>'
        )
    for tick in _decades(x0, x1) if log_x else _ticks(x0, x1):
        label = _duration_label(10**tick) if log_x else _fmt(tick)
        xpos = left + (tick - x0) / (x1 - x0) * (w - left - right)
        out.append(
            f'<text x="{xpos:.1f}" y="{h - bottom + 16}" text-anchor="middle">{label}</text>'
        )
    out.append(
        f'<text x="{(left + w - right) / 2}" y="{h - 6}" text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text transform="translate(14 {(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">'
        f"{html.escape(y_label)}</text>"
    )
    if hline:
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{py(hline[0]):.1f}" y2="{py(hline[0]):.1f}" '
            f'stroke="#cf222e" stroke-dasharray="5 4"/>'
            f'<text x="{w - right - 4}" y="{py(hline[0]) - 5:.1f}" text-anchor="end" '
            f'style="fill:#cf222e">{html.escape(hline[1])}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts if not log_x or x > 0)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out.append(
            f'<rect x="{left + i * 190}" y="4" width="12" height="12" fill="{colour}"/>'
            f'<text x="{left + 17 + i * 190}" y="14">{html.escape(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _svg_bars(values: Sequence[float], *, labels: Sequence[str], y_label: str) -> str:
    """A bar chart, as inline SVG."""
    if not values:
        return "<p>(no data)</p>"
    w, h, left, bottom, top = 900, 260, 64, 40, 16
    top_value = max(values) or 1.0
    slot = (w - left - 16) / len(values)
    out = [
        f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in _ticks(0, top_value):
        y = top + (1 - tick / top_value) * (h - top - bottom)
        out.append(
            f'<line x1="{left}" x2="{w - 16}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
        )
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        bar_h = value / top_value * (h - top - bottom)
        x = left + i * slot + slot * 0.2
        out.append(
            f'<rect x="{x:.1f}" y="{h - bottom - bar_h:.1f}" width="{slot * 0.6:.1f}" '
            f'height="{bar_h:.1f}" fill="{_COLOURS[0]}"/>'
            f'<text x="{x + slot * 0.3:.1f}" y="{h - bottom - bar_h - 4:.1f}" '
            f'text-anchor="middle">{_fmt(value)}</text>'
            f'<text x="{x + slot * 0.3:.1f}" y="{h - bottom + 16}" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    out.append(
        f'<text transform="translate(14 {(top + h - bottom) / 2}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(y_label)}</text></svg>'
    )
    return "".join(out)


def _cdf(samples: Sequence[float]) -> list[tuple[float, float]]:
    """Empirical CDF, thinned to at most ~200 points."""
    ordered = sorted(s for s in samples if s > 0)
    if not ordered:
        return []
    step = max(1, len(ordered) // 200)
    points = [(ordered[i], (i + 1) / len(ordered)) for i in range(0, len(ordered), step)]
    points.append((ordered[-1], 1.0))
    return points


def _charts(records: Sequence[CriterionRecord]) -> list[str]:
    by_id = {r.id: r for r in records}
    figures: list[str] = []
    warm = by_id.get("P1-2.cached-read")
    cold = by_id.get("P1-2.cold-vs-warm")
    series: dict[str, list[tuple[float, float]]] = {}
    if warm and warm.series.get("warm_ns"):
        series["cached read"] = _cdf(warm.series["warm_ns"])
    if cold and cold.series.get("cold_ns"):
        series["cold read (storage)"] = _cdf(cold.series["cold_ns"])
    if series:
        figures.append(
            _figure(
                _svg_lines(
                    series,
                    x_label="latency per call (log scale)",
                    y_label="fraction of calls",
                    log_x=True,
                    y_range=(0, 1),
                ),
                "Cached vs cold read latency: cumulative distribution. Further left is faster.",
            )
        )
    hit = by_id.get("P1-2.hit-rate")
    if hit and hit.series.get("hit_rate") and hit.series.get("t_s"):
        lines = {
            "cumulative hit rate": list(zip(hit.series["t_s"], hit.series["hit_rate"], strict=True))
        }
        if hit.series.get("window_hit_rate"):
            lines["hit rate per interval"] = list(
                zip(hit.series["t_s"], hit.series["window_hit_rate"], strict=True)
            )
        lowest = min(y for pts in lines.values() for _, y in pts)
        figures.append(
            _figure(
                _svg_lines(
                    lines,
                    x_label="simulated time (s)",
                    y_label="hit rate",
                    # Zoomed to where the story is, but always showing the 0.90 line.
                    y_range=(max(0.0, min(0.85, lowest - 0.02)), 1.0),
                    hline=(0.9, "0.90 required"),
                ),
                "Hit rate over the simulated minutes of operation, counted from storage reads the harness observed.",
            )
        )
    inv = by_id.get("P1-2.invalidation")
    if inv and inv.series.get("propagation_p99_ms"):
        values = inv.series["propagation_p99_ms"]
        figures.append(
            _figure(
                _svg_bars(
                    values,
                    labels=[f"instance {i}" for i in range(len(values))],
                    y_label="p99 propagation (ms)",
                ),
                "Invalidation propagation per instance (p99, update call to invalidation processed).",
            )
        )
    return figures


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def render_html(records: Sequence[CriterionRecord], meta: Mapping[str, Any]) -> str:
    """A self-contained HTML page: checklist, figures and charts."""
    rows: list[str] = []
    for task, group in _by_task(records).items():
        rows.append(f'<tr><th colspan="3">{html.escape(TASK_TITLES.get(task, task))}</th></tr>')
        for r in group:
            figures = ", ".join(f"{k}={_fmt(v)}" for k, v in r.figures.items())
            message = f"<pre>{html.escape(r.message)}</pre>" if r.message else ""
            rows.append(
                f'<tr><td class="badge {r.outcome}">{_MARKS.get(r.outcome, r.outcome)}</td>'
                f"<td><code>{html.escape(r.id)}</code><br>{html.escape(r.title)}{message}</td>"
                f"<td>{html.escape(r.summary)}<br><small>{html.escape(figures)}</small></td></tr>"
            )
    meta_items = "".join(
        f"<li><b>{html.escape(str(k))}</b>: {html.escape(json.dumps(v) if not isinstance(v, str) else v)}</li>"
        for k, v in meta.items()
    )
    charts = _charts(records)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>quantum-p1 acceptance report</title><style>{_CSS}</style></head><body>"
        "<h1>quantum-p1 acceptance report</h1>"
        f'<p class="meta">{html.escape(_counts(records))}</p>'
        f"<table>{''.join(rows)}</table>"
        + (
            f'<h2 id="charts">Charts</h2><div class="charts">{"".join(charts)}</div>'
            if charts
            else ""
        )
        + f'<h2>Run</h2><ul class="meta">{meta_items}</ul></body></html>\n'
    )
