"""Charts as inline SVG: a line chart and a bar chart, with round ticks; no scripts, no fonts.

Knows nothing of criteria: :mod:`~pytest_quantum_p1._acceptance.page` picks
what to draw.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence

from pytest_quantum_p1 import _messages

__all__ = ["bar_chart", "format_number", "line_chart", "text_width"]

_COLOURS = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a")


def format_number(value: float) -> str:
    """A figure or tick value as people write it: ``20,000``, ``1,030``, ``0.9804``, ``2.5``.

    Never scientific notation: whole thousands get separators, other values at
    most four significant digits. Not a number is ``-`` (a figure not measured),
    infinity ``∞``.
    """
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{round(value):,}"
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    text = f"{value:.{digits}f}"
    if abs(float(text)) >= 1000:  # 999.96 rounds up into the thousands
        return f"{round(value):,}"
    return text.rstrip("0").rstrip(".") if "." in text else text


#: Width of one character of the charts' 11-unit font, in user units, with room to
#: spare (system-ui digits are about 6.1): what label layout is planned with.
_CHAR_W = 6.8


def text_width(text: str) -> float:
    """The width ``text`` takes in a chart, in the SVG's user units (an upper estimate)."""
    return len(text) * _CHAR_W


def _three_digits(value: float) -> str:
    """A value over a bar: three significant digits are enough to compare bars by eye."""
    if not math.isfinite(value) or value == 0:
        return format_number(value)
    return format_number(round(value, 2 - math.floor(math.log10(abs(value)))))


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


def _decade_label(ns: float) -> str:
    # A tick of a log axis of nanoseconds: a power of ten in its largest whole unit.
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:g} {unit}"
    return f"{ns:g} ns"


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    y_range: tuple[float, float] | None = None,
    hline: tuple[float, str] | None = None,
    vline: tuple[float, str] | None = None,
    y_ticks: Sequence[tuple[float, str]] | None = None,
    markers: Sequence[tuple[float, float, str]] = (),
) -> str:
    """A line chart of several (x, y) series; ``log_x`` takes x as nanoseconds.

    ``hline`` / ``vline`` draw a labelled dashed threshold (``vline`` at an x
    value, always inside the plotted range); ``y_ticks`` replaces the numeric
    y ticks with labelled ones; ``markers`` are labelled points (x, y, label)
    drawn over the series.
    """
    w, h, left, right, top, bottom = 900, 300, 64, 16, 34, 44
    points = [p for s in series.values() for p in s]
    if not points:
        return f"<p>{_messages.ACCEPTANCE_CHART_NO_DATA}</p>"

    def tx(x: float) -> float:
        return math.log10(x) if log_x else x

    xs = [tx(x) for x, _ in points if not log_x or x > 0]
    if vline and (not log_x or vline[0] > 0):
        xs.append(tx(vline[0]))
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
    ticks = (
        [(ty, label) for ty, label in y_ticks if y0 <= ty <= y1]
        if y_ticks is not None
        else [(ty, format_number(ty)) for ty in _ticks(y0, y1)]
    )
    for ty, label in ticks:
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{py(ty):.1f}" y2="{py(ty):.1f}" stroke="#eaeef2"/>'
            f'<text x="{left - 6}" y="{py(ty) + 4:.1f}" text-anchor="end">{html.escape(label)}</text>'
        )
    for tick in _decades(x0, x1) if log_x else _ticks(x0, x1):
        label = _decade_label(10**tick) if log_x else format_number(tick)
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
    if vline and (not log_x or vline[0] > 0):
        xv = px(vline[0])
        out.append(
            f'<line x1="{xv:.1f}" x2="{xv:.1f}" y1="{top}" y2="{h - bottom}" '
            f'stroke="#cf222e" stroke-dasharray="5 4"/>'
            f'<text x="{xv - 4:.1f}" y="{top + 12}" text-anchor="end" '
            f'style="fill:#cf222e">{html.escape(vline[1])}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts if not log_x or x > 0)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out.append(
            f'<rect x="{left + i * 190}" y="4" width="12" height="12" fill="{colour}"/>'
            f'<text class="legend" x="{left + 17 + i * 190}" y="14">{html.escape(name)}</text>'
        )
    for mx, my, label in markers:
        if log_x and mx <= 0:
            continue
        xm, ym = px(mx), py(my)
        # Beside the point, on the side with room, above the curve it marks.
        leftwards = xm + 8 + text_width(label) > w - right
        out.append(
            f'<circle cx="{xm:.1f}" cy="{ym:.1f}" r="4" fill="#fff" stroke="#1d232a" '
            f'stroke-width="1.5"/><text class="marker" x="{xm + (-8 if leftwards else 8):.1f}" '
            f'y="{ym - 8:.1f}" text-anchor="{"end" if leftwards else "start"}" '
            # A white halo keeps the label legible where it crosses the curve.
            f'style="paint-order:stroke;stroke:#fff;stroke-width:3px">'
            f"{html.escape(label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    values: Sequence[float],
    *,
    labels: Sequence[str],
    y_label: str,
    x_label: str = "",
    short_labels: Sequence[str] | None = None,
    missing: str = "",
    value_format: Callable[[float], str] | None = None,
) -> str:
    """A bar chart, one labelled bar per value; a NaN value is a bar that measured nothing.

    Labels never overlap, however many bars: ``labels`` when they fit their
    slot, else ``short_labels`` (with ``x_label`` naming what they count),
    else every n-th short label. Each bar's value (``value_format``, by
    default three significant digits) is written above it while those fit;
    every bar keeps its full label and value as its tooltip. A NaN
    is drawn as a red ``missing`` mark on the axis instead of a bar.
    """
    if not values:
        return f"<p>{_messages.ACCEPTANCE_CHART_NO_DATA}</p>"
    w, h, left, right, bottom, top = 900, 260, 64, 16, 44, 18
    measured = [v for v in values if not math.isnan(v)]
    top_value = max(measured, default=0.0) or 1.0
    slot = (w - left - right) / len(values)
    fits = slot * 0.9  # room a label has, with a gap to its neighbour
    shown, short = list(labels), False
    if short_labels is not None and max(map(text_width, shown)) > fits:
        shown, short = list(short_labels), True
    # Every n-th label when even the short ones are too wide for one slot.
    every = max(1, math.ceil(max(map(text_width, shown)) / fits))
    fmt = value_format or _three_digits
    value_texts = [fmt(v) if not math.isnan(v) else missing for v in values]
    values_fit = max(map(text_width, value_texts)) <= fits
    out = [
        f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in _ticks(0, top_value):
        y = top + (1 - tick / top_value) * (h - top - bottom)
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{format_number(tick)}</text>"
        )
    base = h - bottom
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        centre = left + (i + 0.5) * slot
        tip = f"<title>{html.escape(label)}: {html.escape(value_texts[i])}</title>"
        if math.isnan(value):
            out.append(
                f'<g class="bar missing"><line x1="{centre - slot * 0.25:.1f}" '
                f'x2="{centre + slot * 0.25:.1f}" y1="{base:.1f}" y2="{base:.1f}" '
                f'stroke="#cf222e" stroke-width="3"/>{tip}</g>'
            )
        else:
            bar_h = value / top_value * (h - top - bottom)
            out.append(
                f'<rect class="bar" x="{centre - slot * 0.3:.1f}" y="{base - bar_h:.1f}" '
                f'width="{slot * 0.6:.1f}" height="{bar_h:.1f}" fill="{_COLOURS[0]}">{tip}</rect>'
            )
        if values_fit:
            above = base - (0 if math.isnan(value) else value / top_value * (h - top - bottom))
            colour = ' style="fill:#cf222e"' if math.isnan(value) else ""
            out.append(
                f'<text class="value" x="{centre:.1f}" y="{above - 4:.1f}" '
                f'text-anchor="middle"{colour}>{html.escape(value_texts[i])}</text>'
            )
        if i % every == 0:
            out.append(
                f'<text class="label" x="{centre:.1f}" y="{base + 18}" text-anchor="middle">'
                f"{html.escape(shown[i])}</text>"
            )
    if short and x_label:
        out.append(
            f'<text class="axis" x="{(left + w - right) / 2}" y="{h - 6}" text-anchor="middle">'
            f"{html.escape(x_label)}</text>"
        )
    out.append(
        f'<text class="axis" transform="translate(14 {(top + h - bottom) / 2}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(y_label)}</text></svg>'
    )
    return "".join(out)
