"""The reports of the acceptance run, as plain functions: checklist, JSON dict, HTML page, files."""

from __future__ import annotations

import html
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.page import anchor_for, format_figure, render_html
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.report import (
    html_path_for,
    report_dict,
    terminal_lines,
    write_reports,
)
from pytest_quantum_p1._acceptance.svg import format_number, text_width

META: dict[str, Any] = {"target": "pkg.mod:TARGET", "redis": "fake", "duration_s": 1.5}
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def text_of(page: str) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def record(
    id: str,
    outcome: str = "passed",
    *,
    summary: str = "",
    message: str = "",
    figures: dict[str, float] | None = None,
    series: dict[str, list[float]] | None = None,
) -> CriterionRecord:
    """A record of task ``id``'s prefix, titled after ``id``."""
    return CriterionRecord(
        id=id,
        task=id.split(".")[0],
        title=f"title of {id}",
        outcome=outcome,
        summary=summary,
        message=message,
        figures=figures or {},
        series=series or {},
    )


#: Every outcome, across three tasks, with a multi-line failure and an error.
MIXED = [
    record("P1-1.catalogue", summary="4/4 events in the catalogue"),
    record("P1-2.ttl", "failed", summary="entries outlive the TTL", message="found this\nfix that"),
    record("P1-1.logged", "skipped", message="nothing to log"),
    record("P1-2.invalidation", "error", message="RuntimeError: boom"),
    record("deploy.health", summary="health status 'ok'", message="ignored when passed"),
]

#: The data behind the three charts, as the criteria record it.
CHARTED = [
    record("P1-2.cached-read", series={"warm_ns": [400.0, 450.0, 520.0, 2_000.0]}),
    record("P1-2.cold-vs-warm", series={"cold_ns": [60_000.0, 65_000.0, 90_000.0]}),
    record("P1-2.hit-rate", series={"t_s": [10.0, 20.0, 30.0], "hit_rate": [0.9, 0.95, 0.97]}),
    record("P1-2.invalidation", series={"propagation_p99_ms": [0.5, 0.7, 0.6, 0.9]}),
]


# -- terminal_lines -----------------------------------------------------------------------


def test_the_checklist_groups_criteria_under_their_task_in_first_seen_order() -> None:
    titles = _messages.ACCEPTANCE_TASK_TITLES
    lines = terminal_lines(MIXED)
    headings = [line for line in lines if not line.startswith(" ")][:-1]
    assert headings == [titles["P1-1"], titles["P1-2"], titles["deploy"]]
    p1_1 = lines.index(titles["P1-1"])
    assert lines[p1_1 + 1].split()[2] == "P1-1.catalogue"
    assert lines[p1_1 + 2].split()[2] == "P1-1.logged"


def test_a_task_without_a_title_is_headed_by_its_name() -> None:
    assert terminal_lines([record("custom.check")])[0] == "custom"


def test_each_criterion_is_one_aligned_line_with_its_mark_and_key_figure() -> None:
    lines = terminal_lines(MIXED)
    width = len("P1-2.invalidation")
    assert f"  [PASS ] {'P1-1.catalogue':<{width}}  4/4 events in the catalogue" in lines
    assert f"  [FAIL ] {'P1-2.ttl':<{width}}  entries outlive the TTL" in lines
    assert f"  [ERROR] {'P1-2.invalidation':<{width}}  title of P1-2.invalidation" in lines
    assert f"  [SKIP ] {'P1-1.logged':<{width}}  title of P1-1.logged" in lines


def test_failures_and_errors_carry_their_message_indented_under_their_line() -> None:
    lines = terminal_lines(MIXED)
    failed = next(i for i, line in enumerate(lines) if "P1-2.ttl" in line)
    assert lines[failed + 1 : failed + 3] == ["          found this", "          fix that"]
    errored = next(i for i, line in enumerate(lines) if "P1-2.invalidation" in line)
    assert lines[errored + 1] == "          RuntimeError: boom"
    assert not any("nothing to log" in line or "ignored when passed" in line for line in lines)


def test_the_checklist_ends_with_the_counts_per_outcome() -> None:
    assert terminal_lines(MIXED)[-1] == "2 passed, 1 failed, 1 error, 1 skipped"
    assert terminal_lines([record("P1-3.docs")])[-1] == "1 passed"
    assert terminal_lines([]) == ["no criteria ran"]


# -- report_dict ----------------------------------------------------------------------------


def test_the_report_dict_holds_the_criteria_without_chart_data_and_the_meta() -> None:
    timed = record(
        "P1-2.cached-read",
        "failed",
        summary="p99 2 ms",
        message="too slow",
        figures={"p99_ns": 2_000_000.0, "reads": 20_000},
        series={"warm_ns": [1.0, 2.0]},
    )
    timed.duration_s = 0.123_456_789
    report = report_dict([timed], META)
    assert report == {
        "criteria": [
            {
                "id": "P1-2.cached-read",
                "task": "P1-2",
                "title": "title of P1-2.cached-read",
                "outcome": "failed",
                "figures": {"p99_ns": 2_000_000.0, "reads": 20_000},
                "summary": "p99 2 ms",
                "message": "too slow",
                "duration_s": 0.123457,
            }
        ],
        "meta": META,
    }
    assert report["meta"] is not META
    json.dumps(report)


# -- render_html --------------------------------------------------------------------------


def test_the_page_is_self_contained() -> None:
    page = render_html([*MIXED, *CHARTED], META)
    assert page.startswith("<!doctype html>")
    assert "<style>" in page
    for needle in ("<script", "<link", " src=", "@import", "url("):
        assert needle not in page, needle
    # Links only within the page, each to an element that is there.
    hrefs = re.findall(r' href="([^"]*)"', page)
    assert hrefs
    assert all(href.startswith("#") and f' id="{href[1:]}"' in page for href in hrefs)
    assert re.findall(r"https?://[^\s\"'<>]*", page) == [SVG_NAMESPACE] * page.count("<svg")


def test_the_page_lists_every_criterion_with_its_outcome_message_and_the_meta() -> None:
    page = render_html(MIXED, META)
    for r in MIXED:
        assert f"<code>{r.id}</code>" in page
    assert '<td class="badge failed">FAIL</td>' in page
    assert '<td class="badge error">ERROR</td>' in page
    # The message in a row of its own under its criterion, the table's full width.
    assert (
        '<tr class="message"><td></td><td colspan="2"><pre>found this\nfix that</pre></td></tr>'
    ) in page
    assert '<tr><th title="target">target</th><td>pkg.mod:TARGET</td></tr>' in page
    assert '<tr><th title="duration_s">duration</th><td>1.5 s</td></tr>' in page
    assert "2 passed, 1 failed, 1 error, 1 skipped" in text_of(page)


def test_the_page_escapes_what_the_target_wrote() -> None:
    hostile = record("P1-3.docs", "failed", message="<script>alert(1)</script> & more")
    page = render_html([hostile], {"target": "<b>x</b>"})
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_the_page_draws_the_three_charts_when_the_data_is_there() -> None:
    page = render_html(CHARTED, META)
    assert ">Charts</h2>" in page
    assert page.count("<figure ") == page.count("<svg") == 3
    for chart in ("chart-latency", "chart-hit-rate", "chart-propagation"):
        assert f'<figure id="{chart}">' in page
    assert "Cached vs cold read latency" in page
    assert "cached read" in page
    assert "cold read (storage)" in page
    assert "Hit rate over the simulated minutes" in page
    assert "0.90 required" in page
    assert "Invalidation propagation per instance" in page
    assert [f"instance {i}" in page for i in range(4)] == [True] * 4
    assert "(no data)" not in page


def test_the_latency_chart_shows_the_tail_of_single_calls_and_the_budget() -> None:
    # 2 % of 5,000 reads stall 3 ms: the slowest calls must be drawn where they are,
    # beyond the budget line, not averaged into the bulk.
    samples = [1_000.0] * 4_900 + [3_000_000.0] * 100
    page = render_html(
        [
            record(
                "P1-2.cached-read",
                "failed",
                figures={"budget_ns": 1_000_000},
                series={"warm_ns": samples},
            )
        ],
        META,
    )
    chart = page[page.index("<svg") : page.index("</svg>")]
    assert _messages.ACCEPTANCE_CHART_LATENCY_BUDGET.format(budget="1 ms") in chart
    for label in ("p50", "p90", "p99", "p99.9"):
        assert f">{label}</text>" in chart
    # The curve's x coordinates: the stalled calls sit right of the budget line.
    budget_x = float(re.findall(r'<line x1="([0-9.]+)" x2="\1" y1=', chart)[0])
    curve = re.search(r'<polyline[^>]*points="([^"]+)"', chart)
    assert curve is not None
    xs = [float(point.split(",")[0]) for point in curve.group(1).split()]
    assert max(xs) > budget_x > min(xs)
    # At least the top 2 % (from the p98 up) is drawn with more than a couple of points.
    assert sum(x > budget_x for x in xs) >= 10


def test_the_page_draws_only_the_charts_it_has_data_for() -> None:
    page = render_html(CHARTED[2:3], META)
    assert page.count("<svg") == 1
    assert "Hit rate over the simulated minutes" in page
    assert "(no data)" not in page


def test_without_chart_data_the_page_has_no_charts_and_no_placeholders() -> None:
    page = render_html([record(r.id) for r in CHARTED], META)
    assert "<svg" not in page
    assert "Charts" not in page
    assert "(no data)" not in page


# -- write_reports ------------------------------------------------------------------------


def test_the_reports_are_written_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "out" / "nested" / "p1.json"
    written = write_reports(path, MIXED, META)
    assert written == (path, tmp_path / "out" / "nested" / "p1.html")
    assert json.loads(path.read_text(encoding="utf-8")) == report_dict(MIXED, META)
    assert written[1].read_text(encoding="utf-8") == render_html(MIXED, META)


@pytest.mark.parametrize(
    ("name", "page"),
    [
        ("p1.json", "p1.html"),
        ("report", "report.html"),
        ("acceptance.v1.json", "acceptance.v1.html"),
    ],
)
def test_the_page_is_named_after_the_json_report(name: str, page: str) -> None:
    assert html_path_for(Path("out") / name) == Path("out") / page


def test_a_report_path_ending_in_html_keeps_both_reports(tmp_path: Path) -> None:
    json_path, page = write_reports(tmp_path / "p1.html", MIXED, META)
    assert json_path != page
    assert json.loads(json_path.read_text(encoding="utf-8")) == report_dict(MIXED, META)


def test_the_json_report_is_strict_json_even_for_non_finite_figures(tmp_path: Path) -> None:
    odd = record("P1-2.cold-vs-warm", figures={"speedup": float("inf"), "x": float("nan")})
    path, _ = write_reports(tmp_path / "p1.json", [odd], META)

    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


def test_a_record_rebuilt_from_its_json_form_still_writes_both_reports(tmp_path: Path) -> None:
    # The acceptance hooks carry records on test reports as as_json() and
    # rebuild them before writing (so xdist works): a non-finite figure must
    # survive that trip and still become null only in the JSON report.
    odd = record("P1-2.cold-vs-warm", figures={"speedup": float("inf")})
    rebuilt = CriterionRecord(**odd.as_json())
    assert rebuilt.figures == {"speedup": float("inf")}
    path, page = write_reports(tmp_path / "p1.json", [rebuilt], META)
    assert json.loads(path.read_text(encoding="utf-8"))["criteria"][0]["figures"] == {
        "speedup": None
    }
    assert '<span class="k">speedup</span> ∞' in page.read_text(encoding="utf-8")


# -- the page as people read it (issue 16) ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (20_000, "20,000"),
        (2e4, "20,000"),
        (1_030.4, "1,030"),
        (999.96, "1,000"),
        (0.9804, "0.9804"),
        (12.345_6, "12.35"),
        (1.0, "1"),
        (0.000_000_1, "0.0000001"),
        (0, "0"),
        (-2_500, "-2,500"),
        (float("inf"), "∞"),
        (float("nan"), "-"),
    ],
)
def test_numbers_are_written_as_people_read_them_never_in_scientific_notation(
    value: float, text: str
) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("reads", 20_000, ("reads", "20,000")),
        ("p99_ns", 1_030.0, ("p99", "1.03 us")),
        ("budget_ns", 1_000_000, ("budget", "1 ms")),
        ("propagation_p99_ms", 2.84, ("propagation_p99", "2.84 ms")),
        ("ttl_s", 10, ("ttl", "10 s")),
        ("scenarios_per_s", 18.53, ("scenarios_per_s", "18.53/s")),
        ("zone_offset_min", 345, ("zone_offset", "345 min")),
        ("large_policy_bytes", 8_430, ("large_policy", "8,430 bytes")),
        ("hit_rate", 0.9804, ("hit_rate", "98.0 %")),
        ("speedup", 150.9, ("speedup", "150.9x")),
        ("monitor_level", 20, ("monitor_level", "INFO")),
        ("max_ns", float("inf"), ("max_ns", "∞")),
        ("p99_ns", float("nan"), ("p99_ns", "-")),
        ("state_checked", None, ("state_checked", "-")),
    ],
)
def test_each_figure_is_shown_in_its_unit(name: str, value: object, shown: tuple[str, str]) -> None:
    assert format_figure(name, value) == shown


def test_the_page_writes_figures_in_their_units_with_the_json_key_as_tooltip() -> None:
    timed = record(
        "P1-2.cached-read",
        figures={"p99_ns": 1_030.0, "reads": 20_000, "budget_ns": 1_000_000},
    )
    page = render_html([timed], {**META, "latency_budget_ns": 1_000_000})
    assert '<span class="fig" title="p99_ns"><span class="k">p99</span> 1.03 us</span>' in page
    assert '<span class="k">reads</span> 20,000' in page
    assert not re.search(r"\de[+-]\d", text_of(page))
    assert "latency_budget</th><td>1 ms</td>" in page


def test_the_header_is_coloured_by_the_verdict_and_links_to_every_failure() -> None:
    page = render_html(MIXED, META)
    header = page[page.index('<div class="verdict') : page.index("</div>")]
    assert header.startswith('<div class="verdict failed">')
    assert '<a class="failed" href="#P1-2.ttl">1 failed</a>' in header
    assert '<a class="error" href="#P1-2.invalidation">1 error</a>' in header
    assert '<span class="passed">2 passed</span>' in header
    assert (
        '<a class="failed" href="#P1-2.ttl">P1-2.ttl</a>, '
        '<a class="error" href="#P1-2.invalidation">P1-2.invalidation</a>'
    ) in header
    green = render_html([record("P1-3.docs"), record("P1-1.logged", "skipped")], META)
    assert (
        '<div class="verdict passed"><p class="tally"><span class="passed">1 passed</span>' in green
    )
    assert "href" not in green
    assert '<div class="verdict skipped">' in render_html([record("P1-3.docs", "skipped")], META)


def test_failures_are_listed_first_then_the_rest_by_task() -> None:
    page = render_html(MIXED, META)
    rows = re.findall(r'<tr id="([^"]+)" data-outcome="([^"]+)"[^>]*>', page)
    assert rows == [
        ("P1-2.ttl", "failed"),
        ("P1-2.invalidation", "error"),
        ("P1-1.catalogue", "passed"),
        ("P1-1.logged", "skipped"),
        ("deploy.health", "passed"),
    ]
    groups = re.findall(r'<tr class="group[^"]*"><th colspan="3">([^<]+)</th>', page)
    titles = _messages.ACCEPTANCE_TASK_TITLES
    assert groups == [
        _messages.ACCEPTANCE_PAGE_NOT_PASSING,
        titles["P1-1"],
        titles["deploy"],
    ]


def test_every_criterion_is_an_anchor_even_with_an_odd_id() -> None:
    odd = record('custom.a "b" <c>', "failed", message="x")
    page = render_html([*MIXED, odd], META)
    assert anchor_for('custom.a "b" <c>') == "custom.a--b---c-"
    assert '<tr id="custom.a--b---c-" data-outcome="failed" class="has-message">' in page
    assert 'href="#custom.a--b---c-">custom.a &quot;b&quot; &lt;c&gt;</a>' in page
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_the_run_section_is_a_table_of_readable_values_not_json() -> None:
    meta = {
        "target": "pkg.mod:TARGET",
        "extra": {"federation": "v3"},
        "latency_budget_ns": 1_000_000,
        "instances": 24,
        "versions": {"python": "3.11.7", "pytest": "9.0.3"},
        "duration_s": 16.728,
        "paths": ["a", "b"],
    }
    page = render_html(MIXED, meta)
    run = page[page.index('<h2 id="run">') :]
    assert "{" not in run
    assert "latency_budget</th><td>1 ms</td>" in run
    assert "instances</th><td>24</td>" in run
    assert "duration</th><td>16.7 s</td>" in run
    assert '<span class="k">python</span> 3.11.7</span>' in run
    assert '<span class="k">federation</span> v3</span>' in run
    assert "paths</th><td>a, b</td>" in run


def test_the_latency_chart_marks_the_measured_p99_and_takes_the_runs_budget() -> None:
    warm = record(
        "P1-2.cached-read",
        figures={"p99_ns": 1_980.0, "budget_ns": 1_000_000},
        series={"warm_ns": [1_500.0] * 99 + [1_980.0] * 2},
    )
    chart = render_html([warm], META)
    assert ">p99 1.98 us</text>" in chart
    assert ">budget 1 ms</text>" in chart
    # Without the cached-read criterion (deselected), the budget comes from the run's settings.
    cold_only = render_html(CHARTED[1:2], {**META, "latency_budget_ns": 250_000})
    assert ">budget 250 us</text>" in cold_only
    assert ">p99 " not in cold_only


def _label_boxes(chart: str, kind: str) -> list[tuple[float, float]]:
    # Horizontal extent of each bar label (or value), as the chart plans it.
    found = re.findall(rf'<text class="{kind}" x="([0-9.]+)"[^>]*>([^<]*)</text>', chart)
    return sorted((float(x) - text_width(t) / 2, float(x) + text_width(t) / 2) for x, t in found)


@pytest.mark.parametrize("instances", [1, 4, 24, 64, 200])
def test_the_propagation_labels_never_overlap_however_many_instances(instances: int) -> None:
    values = [0.5 + 33.123 * (i % 3) for i in range(instances)]
    page = render_html([record("P1-2.invalidation", series={"propagation_p99_ms": values})], META)
    chart = page[page.index('<figure id="chart-propagation">') :]
    labels = re.findall(r'<text class="label" x="([0-9.]+)"[^>]*>([^<]*)</text>', chart)
    assert labels
    for kind in ("label", "value"):
        boxes = _label_boxes(chart, kind)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(boxes)), kind
    # Every bar keeps its full label and value as a tooltip.
    assert chart.count("<title>instance ") == instances
    if instances <= 4:
        assert labels[-1][1] == f"instance {instances - 1}"
    else:
        shown = [int(t) for _, t in labels]
        step = shown[1] - shown[0]
        assert shown == list(range(0, instances, step))
        assert f">{_messages.ACCEPTANCE_CHART_PROPAGATION_X}</text>" in chart


def test_an_instance_that_processed_nothing_is_a_marked_bar_not_a_zero() -> None:
    values = [1.2, math.nan, 0.9, 1.1]
    page = render_html([record("P1-2.invalidation", series={"propagation_p99_ms": values})], META)
    chart = page[page.index('<figure id="chart-propagation">') :]
    assert chart.count('<g class="bar missing">') == 1
    assert "<title>instance 1: none</title>" in chart
    assert f'style="fill:#cf222e">{_messages.ACCEPTANCE_CHART_PROPAGATION_MISSING}</text>' in chart


def test_a_criterion_that_stopped_before_its_chart_data_says_so_in_the_charts_place() -> None:
    stopped = record("P1-2.invalidation", "failed", message="did not converge")
    page = render_html([*CHARTED[:3], stopped], META)
    assert page.count("<svg") == 2
    place = page[page.index('<figure id="chart-propagation"') :]
    assert place.startswith('<figure id="chart-propagation" class="not-measured"><p>Not drawn: ')
    assert '<a class="failed" href="#P1-2.invalidation">P1-2.invalidation</a> stopped (failed)' in (
        place
    )
    row = page[page.index('<tr id="P1-2.invalidation"') :]
    assert _messages.ACCEPTANCE_PAGE_NOTHING_MEASURED in row[: row.index("</tr>")]


def test_a_criterion_that_passed_or_was_skipped_without_data_leaves_no_placeholder() -> None:
    page = render_html(
        [record("P1-2.invalidation", "skipped"), record("P1-2.hit-rate", "passed")], META
    )
    assert 'class="not-measured"' not in page
    assert _messages.ACCEPTANCE_PAGE_NOTHING_MEASURED not in page
