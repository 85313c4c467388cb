"""The HTML report in a real headless browser: charts drawn, labels apart, failures first, links resolve.

Chromium lays the page out; a test-only script, injected into a *copy* of the
page (the page itself has no scripts), writes what it measured (element boxes
from ``getBoundingClientRect``, computed colours, the rows' order, whether each
link's target exists) into the DOM, and ``chromium --dump-dom`` prints it.
Without Chromium these tests skip locally and fail under ``CI=true``, the rule
real Redis follows (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_quantum_p1._acceptance.page import render_html
from pytest_quantum_p1._acceptance.record import CriterionRecord
from tests.plugin import broken_p1_2 as bp
from tests.plugin.broken_targets import run_p1

#: Names Chromium goes by: Debian's package, other distributions, Google's build.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = "1000,2000"
#: How long one browser run may take (a cold start on a loaded machine is a few seconds).
BROWSER_TIMEOUT_S = 120

META: dict[str, Any] = {
    "target": "pkg.mod:TARGET",
    "redis": "fake",
    "latency_budget_ns": 1_000_000,
    "versions": {"python": "3.11.7", "pytest": "9.0.3"},
    "duration_s": 16.7,
}

#: Test-only: measures the laid-out page and writes the result into it as JSON.
MEASURE = """<script>
(() => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
  const colour = (e) => getComputedStyle(e).color;
  const verdict = document.querySelector('.verdict');
  const out = {
    charts: [...document.querySelectorAll('figure')].map((f) => ({
      id: f.id,
      measured: !f.classList.contains('not-measured'),
      svg: f.querySelector('svg') ? box(f.querySelector('svg')) : null,
      texts: [...f.querySelectorAll('svg text')].map((t) => ({
        kind: t.getAttribute('class') || '', text: t.textContent, box: box(t)})),
    })),
    rows: [...document.querySelectorAll('tr[data-outcome]')].map((r) => [r.id, r.dataset.outcome]),
    links: [...document.querySelectorAll('a[href]')].map((a) => {
      const href = a.getAttribute('href');
      return [href, href.startsWith('#') && !!document.getElementById(href.slice(1))];
    }),
    verdict: verdict && {
      background: getComputedStyle(verdict).backgroundColor,
      border: getComputedStyle(verdict).borderLeftColor,
      tally: [...verdict.querySelectorAll('.tally > *')].map((e) => [e.textContent, colour(e)]),
    },
  };
  const pre = document.createElement('pre');
  pre.id = 'p1-measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""

RED = "rgb(207, 34, 46)"
GREEN = "rgb(26, 127, 55)"


def require_chromium(which: Callable[[str], str | None] = shutil.which) -> str:
    """The headless Chromium to use; the one rule for when there is none.

    A missing browser is an environment problem locally (the test skips) but a
    broken CI (under ``CI=true`` it fails), as for real Redis.
    """
    found = next((path for name in CHROMIUM_NAMES if (path := which(name))), None)
    if found is not None:
        return found
    problem = (
        f"no headless Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}); "
        "install Debian's chromium (apt-get install chromium), as .ci/run does"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs a headless Chromium: {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a headless Chromium (skips locally, fails under ``CI=true``, without one)."""
    return require_chromium()


@dataclass
class Box:
    """An element's box on the laid-out page, in CSS pixels."""

    left: float
    top: float
    right: float
    bottom: float

    def overlaps(self, other: Box) -> bool:
        """Whether the two boxes share more than a hairline (half a pixel) of area."""
        eps = 0.5
        return (
            self.left < other.right - eps
            and other.left < self.right - eps
            and self.top < other.bottom - eps
            and other.top < self.bottom - eps
        )


@dataclass
class Measured:
    """What the injected script measured on one page."""

    data: dict[str, Any]

    def chart(self, chart_id: str) -> dict[str, Any]:
        """The measured figure ``chart_id`` (``chart-latency``, ``chart-propagation``, ...)."""
        found = [c for c in self.data["charts"] if c["id"] == chart_id]
        assert found, f"no figure {chart_id!r}: {[c['id'] for c in self.data['charts']]}"
        chart: dict[str, Any] = found[0]
        return chart

    def overlapping_texts(self, chart_id: str) -> list[tuple[str, str]]:
        """Pairs of the chart's texts whose boxes intersect (nothing, when all can be read)."""
        texts = [(t["text"], Box(**t["box"])) for t in self.chart(chart_id)["texts"]]
        return [(a, b) for (a, ba), (b, bb) in itertools.combinations(texts, 2) if ba.overlaps(bb)]

    def texts(self, chart_id: str, kind: str) -> list[str]:
        """The chart's texts of one kind (``label``, ``value``, ...), in document order."""
        return [t["text"] for t in self.chart(chart_id)["texts"] if t["kind"] == kind]


def measure(chromium: str, page: Path, workdir: Path) -> Measured:
    """Lay out a copy of ``page`` in headless Chromium and return what the script measured."""
    copy = workdir / f"{page.stem}.measure.html"
    copy.write_text(
        page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8"
    )
    dom = _chromium(chromium, workdir, "--dump-dom", copy.as_uri())
    found = re.search(r'<pre id="p1-measured">(.*?)</pre>', dom, re.S)
    assert found, f"the measuring script left nothing in the DOM:\n{dom[-2000:]}"
    return Measured(json.loads(html.unescape(found.group(1))))


def screenshot(chromium: str, page: Path, workdir: Path) -> Path:
    """A PNG of ``page`` as Chromium renders it (the page as is, no script)."""
    png = workdir / f"{page.stem}.png"
    _chromium(chromium, workdir, f"--screenshot={png}", page.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return png


def _chromium(chromium: str, workdir: Path, *args: str) -> str:
    # A profile of its own (nothing written to $HOME); no sandbox: CI containers run as root.
    result = subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={workdir / 'chromium-profile'}",
            f"--window-size={WINDOW}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def record(
    id: str,
    outcome: str = "passed",
    *,
    figures: dict[str, float] | None = None,
    series: dict[str, list[float]] | None = None,
    message: str = "",
) -> CriterionRecord:
    """A record of task ``id``'s prefix, titled after ``id``."""
    return CriterionRecord(
        id=id,
        task=id.split(".")[0],
        title=f"title of {id}",
        outcome=outcome,
        summary=f"summary of {id}",
        message=message,
        figures=figures or {},
        series=series or {},
    )


def charted(instances: int) -> list[CriterionRecord]:
    """Every chart's data, shaped as a run records it, with ``instances`` propagation bars."""
    warm = [1_400.0 + (i % 97) * 3 for i in range(20_000)] + [40_000.0] * 20
    return [
        record(
            "P1-2.cached-read",
            figures={"p99_ns": 1_980.0, "budget_ns": 1_000_000, "reads": 20_000},
            series={"warm_ns": warm},
        ),
        record(
            "P1-2.cold-vs-warm", series={"cold_ns": [250_000.0 + i * 900 for i in range(1_000)]}
        ),
        record(
            "P1-2.hit-rate",
            series={
                "t_s": [10.0 * k for k in range(1, 31)],
                "hit_rate": [0.97 + 0.0003 * k for k in range(30)],
                "window_hit_rate": [0.96 + 0.0006 * k for k in range(30)],
            },
        ),
        record(
            "P1-2.invalidation",
            figures={"instances": instances, "propagation_p99_ms": 33.61},
            # Two-digit milliseconds: the widest value labels a real run writes.
            series={"propagation_p99_ms": [24.0 + 9.613 * (i % 3) for i in range(instances)]},
        ),
    ]


def write_page(tmp_path: Path, name: str, records: Sequence[CriterionRecord]) -> Path:
    """``render_html(records)`` written to ``tmp_path / name``."""
    path = tmp_path / name
    path.write_text(render_html(records, META), encoding="utf-8")
    return path


def assert_readable(measured: Measured, chart_ids: Sequence[str]) -> None:
    """Each chart drawn at a non-zero size, and none of its texts on top of another."""
    __tracebackhide__ = True
    for chart_id in chart_ids:
        svg = measured.chart(chart_id)["svg"]
        assert svg is not None, f"{chart_id} has no SVG"
        assert svg["right"] - svg["left"] > 100, (chart_id, svg)
        assert svg["bottom"] - svg["top"] > 50, (chart_id, svg)
        assert measured.overlapping_texts(chart_id) == [], chart_id


CHARTS = ("chart-latency", "chart-hit-rate", "chart-propagation")


@pytest.mark.browser
@pytest.mark.parametrize("instances", [4, 24])
def test_every_chart_is_drawn_and_no_two_labels_overlap(
    chromium: str, tmp_path: Path, instances: int
) -> None:
    page = write_page(tmp_path, f"p1-{instances}.html", charted(instances))
    measured = measure(chromium, page, tmp_path)
    assert [c["id"] for c in measured.data["charts"]] == list(CHARTS)
    assert_readable(measured, CHARTS)
    labels = measured.texts("chart-propagation", "label")
    assert labels == (
        [f"instance {i}" for i in range(4)] if instances == 4 else [str(i) for i in range(24)]
    )
    assert len(measured.texts("chart-propagation", "value")) == instances
    assert "budget 1 ms" in measured.texts("chart-latency", "")
    assert "p99 1.98 us" in measured.texts("chart-latency", "marker")
    assert measured.data["verdict"]["border"] == GREEN
    screenshot(chromium, page, tmp_path)


@pytest.mark.browser
def test_the_check_sees_labels_drawn_on_top_of_each_other(chromium: str, tmp_path: Path) -> None:
    # The chart as it was: 24 full labels centred under 24 narrow bars, an unreadable strip.
    slot = (900 - 64 - 16) / 24
    crowded = (
        '<svg viewBox="0 0 900 260" width="100%" xmlns="http://www.w3.org/2000/svg">'
        + "".join(
            f'<text x="{64 + (i + 0.5) * slot:.1f}" y="236" text-anchor="middle"'
            f' style="font:11px system-ui,sans-serif">instance {i}</text>'
            for i in range(24)
        )
        + "</svg>"
    )
    page = tmp_path / "crowded.html"
    page.write_text(
        f'<!doctype html><html><body style="width:950px"><figure id="chart-propagation">'
        f"{crowded}</figure></body></html>",
        encoding="utf-8",
    )
    overlapping = measure(chromium, page, tmp_path).overlapping_texts("chart-propagation")
    assert ("instance 0", "instance 1") in overlapping
    assert len(overlapping) >= 23


@pytest.mark.browser
def test_failures_come_first_the_header_is_red_and_every_link_lands(
    chromium: str, tmp_path: Path
) -> None:
    records = [
        record("P1-1.catalogue"),
        *charted(4)[:3],
        record("P1-2.invalidation", "failed", message="3 of 4 instances kept the old value"),
        record("P1-3.docs", "error", message="OSError: boom"),
        record("deploy.health", "skipped"),
    ]
    page = write_page(tmp_path, "failing.html", records)
    measured = measure(chromium, page, tmp_path)
    rows = measured.data["rows"]
    assert rows[:2] == [["P1-2.invalidation", "failed"], ["P1-3.docs", "error"]]
    assert {outcome for _, outcome in rows[2:]} == {"passed", "skipped"}
    verdict = measured.data["verdict"]
    assert verdict["border"] == RED
    assert verdict["tally"] == [
        ["4 passed", GREEN],
        ["1 failed", RED],
        ["1 error", RED],
        ["1 skipped", "rgb(110, 119, 129)"],
    ]
    links = measured.data["links"]
    assert {href for href, _ in links} == {"#P1-2.invalidation", "#P1-3.docs"}
    assert all(lands for _, lands in links), links
    # The propagation chart's place says why it is empty; the other charts are drawn.
    assert [c["measured"] for c in measured.data["charts"]] == [True, True, False]
    assert_readable(measured, CHARTS[:2])
    screenshot(chromium, page, tmp_path)


@pytest.mark.browser
def test_the_check_sees_a_link_that_lands_nowhere_and_failures_listed_last(
    chromium: str, tmp_path: Path
) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        '<!doctype html><html><body><div class="verdict"><p class="tally">'
        '<a href="#P1-2.ttl">1 failed</a></p></div><table>'
        '<tr id="P1-1.catalogue" data-outcome="passed"><td>ok</td></tr>'
        '<tr id="P1-2-ttl" data-outcome="failed"><td>x</td></tr></table></body></html>',
        encoding="utf-8",
    )
    measured = measure(chromium, page, tmp_path)
    assert measured.data["links"] == [["#P1-2.ttl", False]]
    assert measured.data["rows"][0] == ["P1-1.catalogue", "passed"]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("instances", [4, 24])
def test_a_real_acceptance_run_writes_a_page_that_reads_in_a_browser(
    pytester: pytest.Pytester, chromium: str, instances: int
) -> None:
    result = run_p1(
        pytester,
        "--p1-report=p1.json",
        f"--p1-instances={instances}",
        "-k",
        "cached-read or cold-vs-warm or hit-rate or P1-2.invalidation",
    )
    result.assert_outcomes(passed=4)
    measured = measure(chromium, pytester.path / "p1.html", pytester.path)
    assert_readable(measured, CHARTS)
    assert len(measured.texts("chart-propagation", "label")) == instances
    screenshot(chromium, pytester.path / "p1.html", pytester.path)


@pytest.mark.slow
@pytest.mark.browser
def test_a_real_failing_run_lists_its_failure_first_and_links_to_it(
    pytester: pytest.Pytester, chromium: str
) -> None:
    result = run_p1(
        pytester,
        "--p1-report=p1.json",
        "-k",
        "cached-read or P1-2.invalidation",
        target=bp.store_comparing_bytes_with_str_names,
    )
    result.assert_outcomes(passed=1, failed=1)
    measured = measure(chromium, pytester.path / "p1.html", pytester.path)
    assert measured.data["rows"][0] == ["P1-2.invalidation", "failed"]
    assert measured.data["verdict"]["border"] == RED
    assert ["#P1-2.invalidation", True] in measured.data["links"]
    assert_readable(measured, ["chart-latency"])
    screenshot(chromium, pytester.path / "p1.html", pytester.path)


def nowhere(name: str) -> str | None:
    """A PATH lookup on a machine without any browser."""
    return None


def test_without_chromium_the_browser_tests_skip_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no headless Chromium on PATH \(looked for"):
        require_chromium(nowhere)


def test_without_chromium_the_browser_tests_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"^CI needs a headless Chromium: no headless"):
        require_chromium(nowhere)


def test_any_of_chromiums_names_is_found() -> None:
    assert require_chromium({"google-chrome": "/opt/chrome"}.get) == "/opt/chrome"
    assert require_chromium({"chromium": "/usr/bin/chromium", "google-chrome": "/x"}.get) == (
        "/usr/bin/chromium"
    )


def test_boxes_overlap_by_area_not_by_a_shared_edge() -> None:
    a = Box(0, 0, 10, 10)
    assert a.overlaps(Box(5, 5, 15, 15))
    assert not a.overlaps(Box(10, 0, 20, 10))
    assert not a.overlaps(Box(0, 10.2, 10, 20))
