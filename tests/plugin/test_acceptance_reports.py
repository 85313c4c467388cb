"""What an acceptance run leaves behind: JSON report, HTML page, JUnit properties, under xdist too.

The runs here use the reference target with one doc lacking the notice
(``broken_targets.doc_without_the_notice``), so every report holds a failure
with its message beside the passing criteria. ``P1-2.no-stale-reads`` is
deselected: these tests are about the reports, not that criterion.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance import OUTCOMES, criteria_for
from reference_impl.p1_target import TARGET
from tests.plugin import broken_targets as broken
from tests.plugin.broken_targets import NOT_SLOW, Checklist, outcomes, read_report, run_p1

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_IDS = [c.id for c in criteria_for(TARGET) if c.id != "P1-2.no-stale-reads"]
FAILING = "P1-3.docs"
#: Figure names are lower_snake_case and end in their unit where they have one.
FIGURE_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: The only URL allowed in the page: the SVG namespace, which nothing fetches.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
#: Where the messages send readers (pyproject.toml's [project.urls] Homepage).
HOMEPAGE = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["urls"]["Homepage"]


@pytest.fixture
def reported(pytester: pytest.Pytester) -> pytest.RunResult:
    """A run against the target with a doc lacking the notice, reporting to out/run/p1.json."""
    return run_p1(
        pytester,
        "--p1-report=out/run/p1.json",
        "--junitxml=junit.xml",
        *NOT_SLOW,
        target=broken.doc_without_the_notice,
    )


def _criteria_by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {criterion["id"]: criterion for criterion in report["criteria"]}


# -- JSON -------------------------------------------------------------------------------


def test_the_json_report_lists_every_criterion_in_checklist_order(
    pytester: pytest.Pytester, reported: pytest.RunResult
) -> None:
    report = read_report(pytester.path / "out" / "run" / "p1.json")
    assert set(report) == {"criteria", "meta"}
    assert outcomes(report) == {
        name: "failed" if name == FAILING else "passed" for name in FAST_IDS
    }
    for criterion in report["criteria"]:
        assert {"id", "task", "title", "outcome", "figures", "message"} <= set(criterion)
        assert criterion["outcome"] in OUTCOMES
        assert criterion["id"].startswith(criterion["task"] + ".")
        assert criterion["title"]
        for name, value in criterion["figures"].items():
            assert FIGURE_NAME.fullmatch(name), name
            assert isinstance(value, int | float), (name, value)
            assert not isinstance(value, bool), (name, value)
        assert bool(criterion["message"]) is (criterion["outcome"] != "passed")


def test_the_json_report_carries_the_key_figures_with_their_units(
    pytester: pytest.Pytester, reported: pytest.RunResult
) -> None:
    by_id = _criteria_by_id(read_report(pytester.path / "out" / "run" / "p1.json"))
    assert {"p50_ns", "p99_ns", "p999_ns"} <= set(by_id["P1-2.cached-read"]["figures"])
    assert {"speedup", "cold_p50_ns", "warm_p50_ns"} <= set(by_id["P1-2.cold-vs-warm"]["figures"])
    hit_rate = by_id["P1-2.hit-rate"]["figures"]
    assert 0.9 < hit_rate["hit_rate"] <= 1
    assert hit_rate["simulated_s"] == 300
    assert {"propagation_p50_ms", "propagation_p99_ms"} <= set(
        by_id["P1-2.invalidation"]["figures"]
    )
    assert by_id[FAILING]["figures"] == {"docs": 4, "problems": 2}
    assert "FEDERATION_RUNBOOK.md: does not mention" in by_id[FAILING]["message"]


def test_the_json_report_describes_the_run(
    pytester: pytest.Pytester, reported: pytest.RunResult
) -> None:
    meta = read_report(pytester.path / "out" / "run" / "p1.json")["meta"]
    assert meta["target"] == "broken_target:TARGET"
    assert meta["redis"] == "fake"
    assert meta["latency_budget_ns"] == 1_000_000
    assert meta["instances"] == 4
    assert {"python", "pytest", "pytest-quantum-p1", "redis", "fakeredis"} <= set(meta["versions"])
    assert 0 < meta["duration_s"] < 60
    reported.stdout.fnmatch_lines(
        [f"report: {pytester.path}/out/run/p1.json and {pytester.path}/out/run/p1.html"]
    )


def test_the_report_redacts_the_password_of_a_redis_url(pytester: pytest.Pytester) -> None:
    # The P1-3 criteria never connect, so an unreachable server is fine.
    url = "redis://ops:hunter2@redis.invalid:6390/3"
    result = run_p1(pytester, f"--p1-redis={url}", "--p1-report=p1.json", "-k", "P1-3")
    assert result.ret == pytest.ExitCode.OK
    assert read_report(pytester.path / "p1.json")["meta"]["redis"] == (
        "redis://ops:***@redis.invalid:6390/3"
    )
    for text in (
        (pytester.path / "p1.json").read_text(),
        (pytester.path / "p1.html").read_text(),
        result.stdout.str(),
    ):
        assert "hunter2" not in text


def test_skipped_and_erroring_criteria_are_reported_with_their_reason(
    pytester: pytest.Pytester,
) -> None:
    result = run_p1(
        pytester,
        "--p1-report=p1.json",
        "-k",
        "bridge-relays",
        target=broken.target_without_optional_checks,
    )
    assert result.ret == pytest.ExitCode.OK
    (relays,) = read_report(pytester.path / "p1.json")["criteria"]
    assert relays["outcome"] == "skipped"
    assert relays["message"] == "the target declares no relay_probe"
    assert Checklist.parse(result.outlines).lines["P1-3.bridge-relays"].mark == "SKIP"

    result = run_p1(
        pytester, "--p1-report=p1.json", "-k", "deploy", target=broken.health_that_raises
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (health,) = read_report(pytester.path / "p1.json")["criteria"]
    assert health["outcome"] == "error"
    cause = _messages.ACCEPTANCE_ERROR.format(type="RuntimeError", error="health endpoint crashed")
    where = _messages.ACCEPTANCE_ERROR_IN_TARGET.format(site="_health_that_raises (")
    first, second = health["message"].splitlines()
    assert first == cause
    assert second.startswith(where)
    assert "broken_targets.py:" in second
    line = Checklist.parse(result.outlines).lines["deploy.health"]
    assert line.mark == "ERROR"
    assert line.message[0] == cause
    assert line.message[1].strip().startswith(where.strip())


# -- HTML -------------------------------------------------------------------------------


def test_the_html_page_is_self_contained_with_three_charts(
    pytester: pytest.Pytester, reported: pytest.RunResult
) -> None:
    page = (pytester.path / "out" / "run" / "p1.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    for needle in ("<script", "<link", " src=", "@import", "url("):
        assert needle not in page, needle
    # Links only within the page (the header to each failure), each landing on an element.
    hrefs = re.findall(r' href="([^"]*)"', page)
    assert hrefs
    assert all(href.startswith("#") and f' id="{href[1:]}"' in page for href in hrefs)
    urls = re.findall(r"https?://[^\s\"'<>]*", page)
    assert [url for url in urls if url == SVG_NAMESPACE] == [SVG_NAMESPACE] * page.count("<svg")
    # The rest are the messages' pointers to the documentation: text to read, never a link.
    assert all(url.startswith(f"{HOMEPAGE}#") for url in urls if url != SVG_NAMESPACE)
    assert page.count("<svg") == page.count("<figure ") == 3
    assert "(no data)" not in page
    for name in FAST_IDS:
        assert f"<code>{name}</code>" in page
    assert 'class="badge failed">FAIL<' in page
    assert "FEDERATION_RUNBOOK.md: does not mention &#x27;Current: Federation v3&#x27;" in page


# -- JUnit XML --------------------------------------------------------------------------


def test_the_figures_are_junit_properties(
    pytester: pytest.Pytester, reported: pytest.RunResult
) -> None:
    report = read_report(pytester.path / "out" / "run" / "p1.json")
    expected = {
        criterion["id"]: {
            f"p1.{criterion['id']}.{name}": str(value)
            for name, value in criterion["figures"].items()
        }
        for criterion in report["criteria"]
    }
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    found = {
        case.attrib["name"]: {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
        for case in cases
    }
    assert found == expected


# -- pytest-xdist -------------------------------------------------------------------------


def _run_on_two_workers(pytester: pytest.Pytester) -> pytest.RunResult:
    if importlib.util.find_spec("xdist") is None:
        pytest.skip("pytest-xdist is not installed")
    # Workers start from the sys.path xdist froze when it was first imported,
    # possibly before this test existed: the ini names what they must import.
    pytester.makeini(f"[pytest]\npythonpath = . {REPO_ROOT}\n")
    return run_p1(
        pytester,
        "-p",
        "xdist",
        "-n",
        "2",
        # If autoloaded, pytest-benchmark warns that xdist disables it: not ours to judge.
        "-p",
        "no:benchmark",
        "--p1-report=p1.json",
        *NOT_SLOW,
        target=broken.doc_without_the_notice,
    )


def test_on_two_workers_the_checklist_and_report_are_whole_and_in_order(
    pytester: pytest.Pytester,
) -> None:
    result = _run_on_two_workers(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["created: 2/2 workers"])
    checklist = Checklist.parse(result.outlines)
    # In checklist order, although the workers finish in any order.
    assert list(checklist.lines) == FAST_IDS
    assert {name for name, line in checklist.lines.items() if line.mark != "PASS"} == {FAILING}
    assert "the architecture docs do not all carry the federation notice:" in (
        checklist.lines[FAILING].message
    )
    assert checklist.counts == f"{len(FAST_IDS) - 1} passed, 1 failed"
    report = read_report(pytester.path / "p1.json")
    assert list(outcomes(report).items()) == [
        (name, "failed" if name == FAILING else "passed") for name in FAST_IDS
    ]
    assert _criteria_by_id(report)["P1-2.cached-read"]["figures"]["p99_ns"] > 0


def test_a_usage_error_writes_no_report(pytester: pytest.Pytester) -> None:
    result = run_p1(pytester, "--p1-target=no_such_backend:TARGET", "--p1-report=p1.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not (pytester.path / "p1.json").exists()


# -- P1Target.extra (issue 14) -------------------------------------------------------------

FACT_PASSWORD = "Gr4fana-S3cr3t"


def target_with_facts(root: Path) -> Any:
    """The reference target declaring facts, one a URL with a password."""
    import dataclasses

    return dataclasses.replace(
        TARGET,
        extra={
            "deployed": "eu-west blue",
            "dashboard": f"https://ops:{FACT_PASSWORD}@grafana.example/d/p1",
        },
    )


def target_without_facts(root: Path) -> Any:
    """The reference target declaring no facts."""
    import dataclasses

    return dataclasses.replace(TARGET, extra={})


def test_the_targets_facts_are_in_the_header_and_both_reports_passwords_redacted(
    pytester: pytest.Pytester,
) -> None:
    result = run_p1(pytester, "--p1-report=p1.json", "-k", "P1-3.docs", target=target_with_facts)
    assert result.ret == pytest.ExitCode.OK
    shown = {"deployed": "eu-west blue", "dashboard": "https://ops:***@grafana.example/d/p1"}
    result.stdout.fnmatch_lines(
        [
            _messages.HEADER_EXTRA.format(
                facts="deployed=eu-west blue, dashboard=https://ops:***@grafana.example/d/p1"
            )
        ]
    )
    assert read_report(pytester.path / "p1.json")["meta"]["extra"] == shown
    page = (pytester.path / "p1.html").read_text()
    assert "eu-west blue" in page
    assert "https://ops:***@grafana.example/d/p1" in page
    for text in (page, (pytester.path / "p1.json").read_text(), result.stdout.str()):
        assert FACT_PASSWORD not in text


def test_a_target_without_facts_adds_no_header_line_and_an_empty_extra(
    pytester: pytest.Pytester,
) -> None:
    result = run_p1(pytester, "--p1-report=p1.json", "-k", "P1-3.docs", target=target_without_facts)
    assert result.ret == pytest.ExitCode.OK
    assert "target facts" not in result.stdout.str()
    assert read_report(pytester.path / "p1.json")["meta"]["extra"] == {}


# -- no redis-server (issue 14) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ci", "mark", "code"),
    [("", "SKIP", pytest.ExitCode.OK), ("true", "ERROR", pytest.ExitCode.TESTS_FAILED)],
    ids=["locally", "under-ci"],
)
def test_without_a_redis_server_the_criteria_skip_with_the_install_hint(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, mark: str, code: int
) -> None:
    monkeypatch.setenv("PATH", str(pytester.mkdir("empty-bin")))
    monkeypatch.setenv("CI", ci)
    result = run_p1(
        pytester, "--p1-redis=server", "--p1-report=p1.json", "-k", "cached-read or P1-3.docs"
    )
    assert result.ret == code
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([f"*[[]{mark}*P1-2.cached-read*", "*PASS*P1-3.docs*"])
    cached = _criteria_by_id(read_report(pytester.path / "p1.json"))["P1-2.cached-read"]
    assert _messages.REDIS_SERVER_INSTALL_HINT.splitlines()[0] in cached["message"]


# -- the user's working directory -------------------------------------------------------


def test_a_run_whose_search_fails_leaves_no_hypothesis_directory_in_the_working_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.plugin import broken_stateful
    from tests.plugin.broken_targets import write_target_module

    spec = write_target_module(pytester.path, broken_stateful.store_publishing_before_storing)
    # A process of its own: Hypothesis fixes its default directory, ./.hypothesis,
    # when it is imported; autoloaded plugins (Hypothesis's own) included.
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--p1", f"--p1-target={spec}", "-k", "no-stale-reads"
    )
    result.assert_outcomes(failed=1, deselected=25)
    assert not (pytester.path / ".hypothesis").exists()


def test_while_a_criterion_runs_hypothesis_keeps_its_files_elsewhere_and_gets_its_home_back(
    tmp_path: Path,
) -> None:
    from hypothesis import configuration

    from pytest_quantum_p1._acceptance.criteria import (
        HYPOTHESIS_CRITERIA,
        _hypothesis_storage_elsewhere,
    )

    configuration.set_hypothesis_home_dir(tmp_path / "users-own")
    try:
        with _hypothesis_storage_elsewhere(next(iter(HYPOTHESIS_CRITERIA))):
            inside = configuration.storage_directory("unicode_data", intent_to_write=False)
        after = configuration.storage_directory("unicode_data", intent_to_write=False)
    finally:
        configuration.set_hypothesis_home_dir(None)
    assert tmp_path not in inside.path.parents  # not the user's directory
    assert after.path == tmp_path / "users-own" / "unicode_data"
