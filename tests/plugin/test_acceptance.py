"""The acceptance run (``--p1``): its items, checklist and exit status, and that every criterion can fail.

Each criterion has a test that runs the whole acceptance run against the
reference target broken in exactly that way (``broken_targets.py``) and checks
that this criterion fails, with its message under its checklist line, while
every other criterion passes. ``P1-2.no-stale-reads`` (a Hypothesis search of
a few seconds) is deselected everywhere but in its own test.

The tests at the end pin defects these tests found (and that were fixed).
"""

from __future__ import annotations

import pytest

from pytest_quantum_p1 import _messages, _options
from tests.plugin import broken_targets as broken
from tests.plugin.broken_targets import NOT_SLOW, Checklist, read_report, run_p1
from tests.plugin.verdicts import (
    ALL_IDS,
    FAST_IDS,
    REPORT,
    SLOW_ID,
    Break,
    assert_breaks_exactly,
)

TASK_HEADINGS = [
    "P1-1 missing critical events",
    "P1-2 policy store cache and invalidation",
    "P1-3 federation v2 deprecation",
    "Deployment checklist",
]


# -- collection -----------------------------------------------------------------------


def test_in_an_empty_folder_it_collects_only_the_criteria(pytester: pytest.Pytester) -> None:
    result = run_p1(pytester, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"quantum-p1::{name}" for name in ALL_IDS], consecutive=True)
    result.stdout.fnmatch_lines([f"{len(ALL_IDS)} tests collected in *"])


def test_without_paths_the_users_test_files_are_not_collected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine(): pass")
    result = run_p1(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines([f"{len(ALL_IDS)} tests collected in *"])
    result.stdout.no_fnmatch_line("*test_mine*")


def test_given_paths_the_criteria_run_beside_the_users_tests(pytester: pytest.Pytester) -> None:
    test_file = pytester.makepyfile(
        test_mine="""
        def test_mine(p1_target):
            assert p1_target.name == "reference_impl"
        """
    )
    result = run_p1(pytester, str(test_file), *NOT_SLOW)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=len(FAST_IDS) + 1, deselected=1)
    result.stdout.fnmatch_lines(["quantum-p1 * [[] *%]", "test_mine.py .*"])
    assert list(Checklist.parse(result.outlines).lines) == FAST_IDS


#: The ids users select with -k and read in the JSON and the JUnit property names.
STABLE_IDS = [
    "P1-1.catalogue",
    "P1-1.hfos-mode",
    "P1-1.safety-level",
    "P1-1.shadow-test",
    "P1-1.node-status",
    "P1-1.logged",
    "P1-1.failing-subscriber",
    "P1-2.cached-read",
    "P1-2.cold-vs-warm",
    "P1-2.no-reparse",
    "P1-2.hit-rate",
    "P1-2.counters",
    "P1-2.ttl",
    "P1-2.invalidation",
    "P1-2.read-your-writes",
    "P1-2.write-then-invalidate",
    "P1-2.link-recovery",
    "P1-2.garbage-messages",
    "P1-2.no-stale-reads",
    "P1-3.files-removed",
    "P1-3.no-direct-imports",
    "P1-3.deprecation-warning",
    "P1-3.bridge-only-at-runtime",
    "P1-3.bridge-relays",
    "P1-3.docs",
    "deploy.health",
]


def test_criteria_have_stable_ids_selectable_with_k(pytester: pytest.Pytester) -> None:
    assert ALL_IDS == STABLE_IDS  # renaming one breaks users' -k and report readers
    p1_3 = [name for name in ALL_IDS if name.startswith("P1-3.")]
    result = run_p1(pytester, "--collect-only", "-q", "-k", "P1-3")
    result.stdout.fnmatch_lines([f"quantum-p1::{name}" for name in p1_3], consecutive=True)
    result.stdout.fnmatch_lines([f"{len(p1_3)}/{len(ALL_IDS)} tests collected *"])

    result = run_p1(pytester, "-k", "hfos-mode or docs")
    result.assert_outcomes(passed=2, deselected=len(ALL_IDS) - 2)
    assert list(Checklist.parse(result.outlines).lines) == ["P1-1.hfos-mode", "P1-3.docs"]


# -- the reference target ---------------------------------------------------------------


def test_the_reference_target_passes_with_a_checklist_grouped_by_task(
    pytester: pytest.Pytester,
) -> None:
    result = run_p1(pytester, *NOT_SLOW)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=len(FAST_IDS), deselected=1)
    checklist = Checklist.parse(result.outlines)
    assert list(checklist.tasks) == TASK_HEADINGS
    assert [name for names in checklist.tasks.values() for name in names] == FAST_IDS
    assert {line.mark for line in checklist.lines.values()} == {"PASS"}
    assert not any(line.message for line in checklist.lines.values())
    assert checklist.counts == f"{len(FAST_IDS)} passed"
    # One line per criterion, with its key figure.
    assert checklist.lines["P1-1.catalogue"].detail == "4/4 events in the catalogue"
    assert checklist.lines["P1-2.cached-read"].detail.startswith("cached read p50 ")
    assert checklist.lines["P1-2.hit-rate"].detail.startswith("hit rate ")
    assert checklist.lines["deploy.health"].detail == "health status 'ok'"


# -- every criterion can fail -------------------------------------------------------------


BREAKS = [
    Break(
        "P1-1.catalogue",
        broken.catalogue_without_an_event,
        ("1 required event(s) missing from the bus catalogue:", f"'{broken.HIDDEN_EVENT}'"),
        "Add them to the bus's event map",
        # Impossible to confine: an event the catalogue does not list cannot be
        # recorded, so its own check and the logging check cannot pass either.
        collateral=frozenset({"P1-1.shadow-test", "P1-1.logged"}),
    ),
    Break(
        "P1-1.hfos-mode",
        broken.mode_change_without_a_field,
        (
            "'ai.hfos.mode_changed' was published, but not as required:",
            "field 'timestamp' is missing",
        ),
        "Required fields: old_mode, new_mode, timestamp.",
        claim="published once, fields",
    ),
    Break(
        "P1-1.safety-level",
        broken.level_change_with_a_wrong_value,
        (
            "the real action behind 'safety.governor.level_changed' did not publish it as expected.",
            "new_level: expected 3, got 1",
        ),
        "Publish the values of the change that happened",
    ),
    Break(
        "P1-1.shadow-test",
        broken.shadow_test_with_a_naive_timestamp,
        ("timestamp '2025-12-03T09:30:00' has no UTC offset (naive datetime",),
        "use datetime.now(timezone.utc)",
    ),
    Break(
        "P1-1.node-status",
        broken.node_status_published_twice,
        ("one action published it 2 times (once expected)",),
        "Publish the event once per action",
    ),
    Break(
        "P1-1.logged",
        broken.bus_that_logs_nothing,
        (
            "some required events are not logged for monitoring:",
            "ai.hfos.mode_changed: published 1 time(s), logged 0 time(s) on logger 'reference_impl.events'",
        ),
        "Log one record per publish on 'reference_impl.events'",
    ),
    Break(
        "P1-2.cached-read",
        broken.store_with_a_stalling_hit_path,
        ("cached reads are too slow: p99 ", " ms is over the 1 ms budget", "- p99.9: "),
        "Keep the hit path free of I/O, locks and copies",
        # The stalls are real cost: 3 ms every 50 reads is ~60 us a read on average,
        # so the cache no longer pays off against in-process fakeredis either.
        collateral=frozenset({"P1-2.cold-vs-warm"}),
    ),
    Break(
        "P1-2.cold-vs-warm",
        broken.store_whose_hits_round_trip,
        ("the cache does not pay off: a cached read is only ", "(at least 10x expected)"),
        "Serve hits from memory without touching Redis",
    ),
    Break(
        "P1-2.hit-rate",
        broken.store_with_a_tiny_cache,
        ("is not above 90% after 1 simulated minutes", "Workload: 20 policies"),
        "Check that hits are served from memory",
        # One simulated minute instead of five: the misses this store makes are
        # what the test pays for, and one minute is plenty to see the rate.
        options=("--p1-workload=minutes=1",),
    ),
    Break(
        "P1-2.ttl",
        broken.store_with_a_longer_ttl,
        ("an entry outlived its TTL: 10 s after it was cached", "still served {'v': 1}"),
        "Store each entry's expiry from the injected clock",
        claim="entries expire after the 10 s TTL",
    ),
    Break(
        "P1-2.invalidation",
        broken.store_that_ignores_invalidations,
        ("not every instance converged", "did not converge: 3 of 4 instance(s)"),
        # It receives and processes every message: the evidence points at its handler.
        "Drop the named entry when its invalidation arrives",
    ),
    Break(
        SLOW_ID,
        broken.store_keeping_its_cache_across_a_lost_link,
        ("the property-based search found a stale read:", "cached across a link loss"),
        None,
    ),
    Break(
        "P1-3.files-removed",
        broken.legacy_file_left_behind,
        ("1 legacy v2 file(s) still exist:", "federation/v2_protocol.py"),
        "Delete them",
        claim="5 legacy v2 files absent",
    ),
    Break(
        "P1-3.no-direct-imports",
        broken.module_importing_v2_dynamically,
        (
            "1 direct v2 import outside the bridge:",
            "reports_pkg.nodes → reference_impl.federation.federated_engine_v2 "
            "(importlib.import_module)",
        ),
        "Fix: import v2 modules only from the bridge",
    ),
    Break(
        "P1-3.deprecation-warning",
        broken.engine_warning_at_itself,
        ("the DeprecationWarning of EngineWarningAtItself points at ",),
        "Pass stacklevel=2 to warnings.warn",
        claim="warns DeprecationWarning at the caller's line",
        # engine_class names a class the bridge never builds: bridge-only rightly sees nothing.
        collateral=frozenset({"P1-3.bridge-only-at-runtime"}),
    ),
    Break(
        "P1-3.deprecation-warning",
        broken.engine_without_a_warning,
        ("constructing EngineWithoutAWarning emitted no DeprecationWarning.",),
        "In __init__: warnings.warn(",
        # engine_class names a class the bridge never builds: bridge-only rightly sees nothing.
        collateral=frozenset({"P1-3.bridge-only-at-runtime"}),
    ),
    Break(
        "P1-3.bridge-only-at-runtime",
        broken.engine_built_outside_the_bridge,
        (
            # Watched over the whole run: every action that builds it counts.
            "FederatedEngineV2 was constructed outside the bridge ",
            "broken_targets.py:",
        ),
        "Fix: construct it only in the bridge",
        claim="all through the bridge",
    ),
    Break(
        "P1-3.bridge-relays",
        broken.bridge_that_relays_nothing,
        (
            "the bridge did not relay the v3 event exactly once to every v2 node (0 of 2 got it):",
            "probe-node-1: received 0 message(s)",
        ),
        "Subscribe the bridge to the v3 federation events",
    ),
    Break(
        "P1-3.bridge-relays",
        broken.bridge_that_reaches_one_node_of_two,
        (
            "the bridge did not relay the v3 event exactly once to every v2 node (1 of 2 got it):",
            "probe-node-2: received 0 message(s)",
        ),
        "Subscribe the bridge to the v3 federation events",
    ),
    Break(
        "P1-3.docs",
        broken.doc_without_the_notice,
        (
            "the architecture docs do not all carry the federation notice:",
            "FEDERATION_RUNBOOK.md: does not mention 'Current: Federation v3'",
        ),
        "Add the seed's notice",
        claim="4 docs carry the deprecation notice",
    ),
    Break(
        "deploy.health",
        broken.health_reporting_degraded,
        ("the health check reports 'degraded', not 'ok':", "'link_up': False"),
        "Fix what the report names as down",
    ),
]


def test_every_criterion_has_a_broken_target() -> None:
    from tests.plugin import test_bugs_p1_1, test_bugs_p1_2, test_bugs_p1_3

    everywhere = [*BREAKS, *test_bugs_p1_1.BREAKS, *test_bugs_p1_2.BREAKS, *test_bugs_p1_3.BREAKS]
    # A criterion that skips when the target declares nothing to check still fails
    # a target that declares it wrongly.
    assert {b.criterion for b in everywhere} == set(ALL_IDS)


@pytest.mark.parametrize("case", BREAKS, ids=lambda case: case.builder.__name__)
def test_a_target_broken_in_one_way_fails_exactly_that_criterion(
    pytester: pytest.Pytester, case: Break
) -> None:
    """The broken criterion fails with its message under its line; every other one passes."""
    assert_breaks_exactly(pytester, case)


# -- usage errors -------------------------------------------------------------------------


def test_a_target_that_cannot_be_imported_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run_p1(pytester, "--p1-target=no_such_backend.harness:TARGET")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: quantum-p1: cannot load the target 'no_such_backend.harness:TARGET' "
            "(from --p1-target): "
            + _messages.SPEC_NOT_IMPORTABLE.format(module="no_such_backend.harness", error="*"),
            "Name a module attribute holding a pytest_quantum_p1.P1Target *",
        ]
    )


def test_a_target_that_is_not_a_p1target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(not_a_target="TARGET = {'name': 'reference_impl'}")
    pytester.syspathinsert()
    result = run_p1(pytester, "--p1-target=not_a_target:TARGET")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: *not_a_target:TARGET is a dict, not a pytest_quantum_p1.P1Target*"]
    )


@pytest.mark.parametrize("workload", ["minutes=0", "bogus=1", "policies=many", "minutes"])
def test_a_bad_workload_is_a_usage_error(pytester: pytest.Pytester, workload: str) -> None:
    result = run_p1(pytester, f"--p1-workload={workload}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = _messages.USAGE_BAD_VALUE.format(
        source=_options.OPT_WORKLOAD, expected=_messages.EXPECT_WORKLOAD, value=workload
    )
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


# -- known defects --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["raise RuntimeError('boom')", "def TARGET():\n    raise RuntimeError('boom')"],
    ids=["module-raises", "factory-raises"],
)
def test_a_target_raising_while_loading_is_a_usage_error(
    pytester: pytest.Pytester, source: str
) -> None:
    pytester.makepyfile(raising_target=source)
    pytester.syspathinsert()
    result = run_p1(pytester, "--p1-target=raising_target:TARGET")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: quantum-p1: cannot load the target *boom*"])


def test_an_event_missing_from_the_catalogue_fails_its_other_checks_with_a_message(
    pytester: pytest.Pytester,
) -> None:
    result = run_p1(pytester, REPORT, "-k", "P1-1", target=broken.catalogue_without_an_event)
    report = read_report(pytester.path / "p1.json")
    by_id = {criterion["id"]: criterion for criterion in report["criteria"]}
    for name in ("P1-1.shadow-test", "P1-1.logged"):
        criterion = by_id[name]
        assert criterion["outcome"] == "failed"
        assert "not in the bus catalogue" in criterion["message"]
        assert "P1-1.catalogue" in criterion["message"]
    assert "[ERROR]" not in result.stdout.str()


@pytest.mark.parametrize(
    ("builder", "criterion", "headline"),
    [
        (
            broken.mode_change_without_a_field,
            "P1-1.hfos-mode",
            "'ai.hfos.mode_changed' was published, but not as required:",
        ),
        (
            broken.level_change_with_a_wrong_value,
            "P1-1.safety-level",
            "the real action behind 'safety.governor.level_changed' did not publish it as expected.",
        ),
    ],
    ids=["hidden-traceback-note", "chained-exception"],
)
def test_a_failure_message_is_the_criterions_own_text(
    pytester: pytest.Pytester, builder: broken.Builder, criterion: str, headline: str
) -> None:
    result = run_p1(pytester, REPORT, "-k", criterion, target=builder)
    (failed,) = read_report(pytester.path / "p1.json")["criteria"]
    assert failed["message"].startswith(headline)
    assert "traceback" not in failed["message"]
    assert "During handling of the above exception" not in failed["message"]
    # Nor in the FAILURES section: a verdict raised while handling the
    # assertion that found the fault must not print that assertion twice.
    assert "During handling of the above exception" not in result.stdout.str()
    assert failed["message"].endswith(_messages.ACCEPTANCE_READ_MORE)
