"""The hooks of a ``--p1`` run (:class:`AcceptanceHooks`), registered by the plugin.

They collect the criteria before the user's tests, give each criterion its
record (the ``_p1_criterion`` fixture), carry the record on its test report so
it survives pytest-xdist, and render the checklist and reports at the end.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.criteria import CriterionItem, collect_criteria
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.report import terminal_lines, write_reports

if TYPE_CHECKING:
    from pytest_quantum_p1._options import P1Settings, Workload

__all__ = ["AcceptanceHooks"]


def _outcome(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    if report.passed:
        return "passed"
    if report.skipped:
        return "skipped"
    # A criterion's verdict is pytest.fail() while it runs; anything else, and
    # anything at all while its fixtures are set up or torn down, is the
    # harness or the target breaking: the check could not run.
    # (A pytest.fail() raised by the target's own code is no verdict either.)
    if (
        call.when == "call"
        and call.excinfo is not None
        and call.excinfo.errisinstance(pytest.fail.Exception)
    ):
        from pytest_quantum_p1._acceptance.drive import raised_by_target

        return "error" if raised_by_target(call.excinfo.value) else "failed"
    return "error"


def _error_message(exc: BaseException, when: str) -> str:
    """An error in words: the exception, and the frame it came from (the backend's, if any)."""
    from pytest_quantum_p1._acceptance.drive import raised_at

    heading = {
        "setup": _messages.ACCEPTANCE_ERROR_AT_SETUP,
        "teardown": _messages.ACCEPTANCE_ERROR_AT_TEARDOWN,
    }.get(when, _messages.ACCEPTANCE_ERROR)
    try:
        text = str(exc)
    except Exception:  # a hostile __str__ must not take the report down with it
        text = object.__repr__(exc)
    lines = [heading.format(type=type(exc).__name__, error=text)]
    where = raised_at(exc)
    if where is not None:
        site, in_target = where
        line = (
            _messages.ACCEPTANCE_ERROR_IN_TARGET
            if in_target
            else _messages.ACCEPTANCE_ERROR_IN_HARNESS
        )
        lines.append(line.format(site=site))
    return "\n".join(lines)


def _message(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    if report.passed:
        return ""
    if _outcome(report, call) == "failed" and call.excinfo is not None:
        # The criterion's own words: the longrepr would add pytest's note on
        # hidden traceback entries and any exception the verdict was raised in.
        return str(call.excinfo.value)
    if call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        # The harness or the target broke: the exception and where it was
        # raised, not a traceback (that is in the ERRORS/FAILURES section).
        return _error_message(call.excinfo.value, call.when)
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    return report.longreprtext.strip()


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for dist in (
        "pytest-quantum-p1",
        "pytest",
        "redis",
        "fakeredis",
        "hypothesis",
        "pytest-benchmark",
    ):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


#: Per-call latency samples a criterion carries (its ``series``) that become
#: pytest-benchmark entries: criterion id -> (series, label of the entry or "").
BENCHMARKED_SERIES: dict[str, tuple[str, str]] = {
    "P1-2.cached-read": ("warm_ns", ""),
    "P1-2.cold-vs-warm": ("cold_ns", "cold"),
}


def _add_benchmark_entries(config: pytest.Config, nodeid: str, record: dict[str, Any]) -> None:
    """With pytest-benchmark active, a criterion's per-call samples as one of its benchmarks.

    ``P1-2.cached-read`` (and ``P1-2.cold-vs-warm[cold]``) then sit in
    ``--benchmark-json`` and the saved runs beside the user's benchmarks, so
    ``pytest-benchmark compare`` and ``--benchmark-compare-fail`` see a
    regression of the cached read. Only a check that finished (passed or
    failed) states figures; an error's are no claim.
    """
    wanted = BENCHMARKED_SERIES.get(record["id"])
    if wanted is None or record.get("outcome") not in ("passed", "failed"):
        return
    series, label = wanted
    samples = record.get("series", {}).get(series)
    if not samples:
        return
    from pytest_quantum_p1._latency import LatencyStats, benchmark_entries, benchmark_name

    entries = benchmark_entries(config)
    if entries is None:
        return
    timer_ns = record.get("figures", {}).get("timer_ns", 0.0)
    entries.add(
        name=benchmark_name(record["id"], label) if label else record["id"],
        fullname=benchmark_name(nodeid, label) if label else nodeid,
        group=_messages.BENCHMARK_GROUP_ACCEPTANCE,
        stats=LatencyStats.from_samples(
            samples, timer_ns=timer_ns if isinstance(timer_ns, float | int) else 0.0
        ),
        extra_info={"criterion": record["id"], "outcome": record["outcome"]},
    )


class AcceptanceHooks:
    """The hooks (and criterion-only fixtures) of a ``--p1`` run; registered by the plugin."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.time()
        #: Records by criterion id, as carried on the reports (so xdist works too).
        self.records: dict[str, dict[str, Any]] = {}
        #: Criterion ids in checklist order (runs may finish out of order under xdist).
        self.order: list[str] = []
        #: The JSON and HTML paths, once written.
        self.written: tuple[Path, Path] | None = None

    @pytest.fixture
    def _p1_criterion(self, request: pytest.FixtureRequest) -> CriterionRecord:
        # The record an acceptance criterion fills with its figures.
        record: CriterionRecord = request.node.record
        return record

    @pytest.fixture
    def _p1_workload(self, p1_settings: P1Settings) -> Workload:
        return p1_settings.workload

    def pytest_ignore_collect(self) -> bool | None:
        # ``pytest --p1`` without paths runs only the criteria; given paths,
        # the user's tests run beside them.
        if self.config.args_source is not pytest.Config.ArgsSource.ARGS:
            return True
        return None

    @pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so criteria can be selected
    def pytest_collection_modifyitems(
        self, session: pytest.Session, items: list[pytest.Item]
    ) -> None:
        from pytest_quantum_p1._options import SETTINGS_KEY
        from pytest_quantum_p1._target import TargetError, load_configured_target

        settings = self.config.stash[SETTINGS_KEY]
        if settings.target is None:  # refused in pytest_configure; kept for the type checker
            raise pytest.UsageError(_messages.NO_TARGET)
        try:
            target = load_configured_target(self.config, settings.target, settings.target_source)
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None
        criteria = collect_criteria(session, target)
        self.order = [item.name for item in criteria]
        items[0:0] = criteria

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not isinstance(item, CriterionItem):
            return report
        record = item.record
        if (
            call.when == "call"
            or (call.when == "setup" and not report.passed)
            # A teardown that breaks after a passing check: the run must not say PASS.
            or (call.when == "teardown" and report.failed and record.outcome == "passed")
        ):
            record.outcome = _outcome(report, call)
            record.message = _message(report, call)
            if record.outcome == "error":
                # The check did not finish: a figure it stated on the way is no claim.
                record.summary = ""
            for name, value in record.figures.items() if call.when != "teardown" else ():
                prop = (f"p1.{record.id}.{name}", value)
                # The call report for xdist and hooks; the item for the teardown
                # report, which is the one junitxml writes properties from.
                report.user_properties.append(prop)
                item.user_properties.append(prop)
            if call.when != "teardown":
                record.duration_s = call.duration
            report.p1_record = {  # type: ignore[attr-defined]
                **record.as_json(),
                "series": record.series,
                # The controller of an xdist run never collects: carry the position.
                "position": self.order.index(record.id),
            }
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # P1-3's run-wide v2 watch starts with the first criterion and is
        # judged by P1-3.bridge-only-at-runtime (see _acceptance.p1_3).
        if isinstance(item, CriterionItem):
            from pytest_quantum_p1._acceptance.p1_3 import start_v2_watch
            from pytest_quantum_p1._target import TARGET_KEY

            target = self.config.stash.get(TARGET_KEY, None)
            if target is not None:
                start_v2_watch(self.config, target)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from pytest_quantum_p1._acceptance.p1_3 import stop_v2_watch

        stop_v2_watch(config)  # when its criterion was deselected, or never judged

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "p1_record", None)
        if isinstance(record, dict):
            self.records[record["id"]] = record
            if report.when == "call":
                _add_benchmark_entries(self.config, report.nodeid, record)

    def _ordered(self) -> list[CriterionRecord]:
        ordered = sorted(self.records.values(), key=lambda data: data["position"])
        return [CriterionRecord.from_carried(data) for data in ordered]

    def _meta(self) -> dict[str, Any]:
        from pytest_quantum_p1._options import SETTINGS_KEY, extra_for_report, redis_for_report
        from pytest_quantum_p1._target import TARGET_KEY

        settings = self.config.stash[SETTINGS_KEY]
        target = self.config.stash.get(TARGET_KEY, None)
        return {
            "target": settings.target,
            # P1Target.extra: the team's own facts about the target, passwords redacted.
            "extra": extra_for_report(target.extra if target is not None else {}, settings),
            "redis": redis_for_report(settings),
            "latency_budget_ns": settings.latency_budget_ns,
            "instances": settings.instances,
            "versions": _versions(),
            "started_at": datetime.fromtimestamp(self.started).astimezone().isoformat(),
            "duration_s": round(time.time() - self.started, 3),
        }

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from pytest_quantum_p1._options import SETTINGS_KEY

        if exitstatus == pytest.ExitCode.USAGE_ERROR:
            return  # nothing was checked: an empty report would read as a clean run
        settings = self.config.stash[SETTINGS_KEY]
        if settings.report is not None and not hasattr(self.config, "workerinput"):
            self.written = write_reports(settings.report, self._ordered(), self._meta())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        terminalreporter.write_sep("=", _messages.ACCEPTANCE_SECTION)
        for line in terminal_lines(self._ordered()):
            terminalreporter.write_line(line)
        if self.written:
            json_path, html_path = self.written
            terminalreporter.write_line(
                _messages.ACCEPTANCE_REPORTS_WRITTEN.format(json=json_path, html=html_path)
            )
