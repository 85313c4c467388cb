"""P1-3 and deploy.health: each bug fails exactly its criterion; correct designs in other shapes pass.

The breaks run the whole acceptance run (``assert_breaks_exactly``); the
correct targets run the criterion they concern and must pass it.
"""

from __future__ import annotations

from fnmatch import fnmatch

import pytest

from pytest_quantum_p1 import _messages
from tests.plugin import broken_p1_3 as broken
from tests.plugin.broken_targets import Builder, Checklist, outcomes, read_report, run_p1
from tests.plugin.verdicts import Break, assert_breaks_exactly

BREAKS = [
    # -- no green about what was not checked ---------------------------------------------
    Break(
        "P1-3.bridge-only-at-runtime",
        broken.engine_class_the_bridge_never_builds,
        (
            "no construction of UnusedEngineV2 was seen while the harness watched the run for ",
            "4 target action(s), the relay probe, the health check, 1 s grace",
            "the check observed nothing.",
            "Expected: the bridge (reference_impl.federation.federation_v2_event_bridge) "
            "constructing tests.plugin.broken_p1_3:UnusedEngineV2",
        ),
        "Is engine_class the class the bridge builds?",
        claim="all through the bridge",
    ),
    Break(
        "P1-3.files-removed",
        broken.removed_paths_not_named,
        ("the target names no removed v2 files (V2Rules.removed_paths is empty)",),
        "List the files the seed deletes",
        claim="legacy v2 files absent",
    ),
    Break(
        "P1-3.files-removed",
        broken.removed_paths_where_nothing_lives,
        (
            "none of the directories the removed v2 files lived in exists",
            "federaton/v2_protocol.py",
        ),
        "Give removed_paths where the files lived",
        claim="legacy v2 files absent",
    ),
    Break(
        "P1-3.no-direct-imports",
        broken.source_roots_without_python,
        ("no Python file was found under the source roots", "empty_pkg"),
        "Set V2Rules.source_roots",
        claim="0 direct v2 imports",
    ),
    Break(
        "P1-3.no-direct-imports",
        broken.v2_module_misspelt,
        (
            "none of the v2 modules is among the ",
            "reference_impl.federation.federated_engine_2",
        ),
        "Check the dotted names in V2Rules.v2_modules",
        claim="0 direct v2 imports",
    ),
    Break(
        "P1-3.docs",
        broken.docs_not_named,
        ("the target names no architecture docs (V2Rules.docs is empty)",),
        "List the docs the seed updates",
        claim="docs carry the deprecation notice",
    ),
    # -- the run-time guard watches the whole run ----------------------------------------
    Break(
        "P1-3.bridge-only-at-runtime",
        broken.engine_built_by_a_background_thread,
        (
            "FederatedEngineV2 was constructed outside the bridge ",
            "broken_p1_3.py:",
            "in tests.plugin.broken_p1_3 (",
        ),
        "Fix: construct it only in the bridge",
        claim="all through the bridge",
    ),
    Break(
        "P1-3.bridge-only-at-runtime",
        broken.engine_built_after_an_action_returned,
        ("FederatedEngineV2 was constructed outside the bridge ", "in tests.plugin.broken_p1_3"),
        "Fix: construct it only in the bridge",
        claim="all through the bridge",
    ),
    Break(
        "P1-3.bridge-only-at-runtime",
        broken.engine_reached_through_the_bridges_reexport,
        ("FederatedEngineV2 was constructed outside the bridge ", "in tests.plugin.broken_p1_3"),
        "Fix: construct it only in the bridge",
        claim="all through the bridge",
    ),
    # -- advice only where the evidence supports it --------------------------------------
    Break(
        "P1-3.deprecation-warning",
        broken.engine_warning_through_a_helper_at_itself,
        ("the DeprecationWarning of EngineWarningThroughAHelperAtItself points at ",),
        "Pass stacklevel=3 to warnings.warn so users see their own line: it is called 2 "
        "frame(s) below the line constructing EngineWarningThroughAHelperAtItself; this "
        "warning used stacklevel=2",
        claim="warns DeprecationWarning at the caller's line",
    ),
    Break(
        "P1-3.deprecation-warning",
        broken.engine_warning_too_high,
        ("the DeprecationWarning of EngineWarningTooHigh points at ",),
        "Pass stacklevel=2 to warnings.warn: this warning used stacklevel=3, which names a "
        "line 1 frame(s) above the one constructing EngineWarningTooHigh.",
    ),
    # -- shapes the adapter absorbs: an engine needing arguments, v2 as a package --------
    Break(
        "P1-3.deprecation-warning",
        broken.engine_needing_its_bus_without_a_factory,
        (
            "EngineNeedingItsBus() raised TypeError: ",
            "missing 1 required positional argument: 'bus'",
            "if it needs some, give V2Rules.engine_factory (e.g. engine_factory=lambda: "
            "EngineNeedingItsBus(config))",
        ),
        None,
        outcome="error",
    ),
    Break(
        "P1-3.deprecation-warning",
        broken.engine_factory_that_raises,
        (
            "V2Rules.engine_factory _factory_missing_its_config (broken_p1_3.py:",
            "raised RuntimeError building the engine: FEDV2_CONFIG is not set",
        ),
        None,
        outcome="error",
    ),
    Break(
        "P1-3.deprecation-warning",
        broken.engine_factory_returning_a_cached_engine,
        (
            "V2Rules.engine_factory _factory_returning_a_cached_engine (broken_p1_3.py:",
            "returned without calling EngineNeedingItsBus: the harness saw no construction",
        ),
        None,
        outcome="error",
    ),
    Break(
        "P1-3.deprecation-warning",
        broken.engine_built_by_a_factory_warning_at_itself,
        (
            "the DeprecationWarning of EngineNeedingItsBusWarningAtItself points at ",
            "not at the line that constructed it (",
        ),
        "Pass stacklevel=2 to warnings.warn so users see their own line: it is called 1 "
        "frame(s) below the line constructing EngineNeedingItsBusWarningAtItself; this "
        "warning used stacklevel=1",
        claim="warns DeprecationWarning at the caller's line",
    ),
    Break(
        "P1-3.no-direct-imports",
        broken.v2_package_imported_past_its_ignore_list,
        (
            "1 direct v2 import outside the bridge:",
            "legacy.live.status → legacy.fedv2 (from)",
        ),
        "Fix: import v2 modules only from the bridge: "
        "reference_impl.federation.federation_v2_event_bridge, legacy.bridges",
        claim="0 direct v2 imports",
    ),
    # -- the bugs that passed --------------------------------------------------------------
    Break(
        "P1-3.bridge-relays",
        broken.bridge_stopping_at_a_failing_node,
        (
            "the bridge stopped relaying at a failing v2 node: with a node that raises "
            "registered first, 0 of 2 healthy node(s) got the v3 event:",
            "probe-node-1: received 0 message(s)",
            "the failing node was called 1 time(s)",
        ),
        "Deliver to each v2 node on its own",
    ),
    Break(
        "P1-3.bridge-relays",
        broken.probe_ignoring_the_failing_node,
        (_messages.P1_3_RELAY_FAILING_NEVER_CALLED,),
        None,
        outcome="error",
    ),
    Break(
        "deploy.health",
        broken.health_ok_without_touching_redis,
        (
            "the health check reports 'ok' while Redis is unreachable",
            "It never connected to the Redis client it was given",
        ),
        "Ping the Redis the backend depends on",
    ),
    Break(
        "deploy.health",
        broken.health_ok_despite_a_failed_ping,
        (
            "the health check reports 'ok' while Redis is unreachable",
            "redis: {'ok': False, 'error': ",
            "It connected ",
        ),
        "Ping the Redis the backend depends on",
    ),
]


@pytest.mark.parametrize("case", BREAKS, ids=lambda case: case.builder.__name__)
def test_a_p1_3_bug_fails_exactly_its_criterion(pytester: pytest.Pytester, case: Break) -> None:
    assert_breaks_exactly(pytester, case)


CORRECT: list[tuple[str, Builder, str]] = [
    (
        "P1-3.bridge-only-at-runtime",
        broken.correct_bridge_with_an_engine_built_at_import,
        "0 v2 engine constructions in * s watched; the bridge holds 1 built before the run *",
    ),
    (
        "P1-3.files-removed",
        broken.correct_live_module_sharing_a_removed_name,
        "4 legacy v2 files absent",
    ),
    (
        "P1-3.deprecation-warning",
        broken.correct_engine_warning_through_a_helper,
        "CorrectEngineWarningThroughAHelper() warns DeprecationWarning at the caller's line",
    ),
    (
        "P1-3.deprecation-warning",
        broken.correct_engine_deprecated_by_decorator,
        "CorrectEngineDeprecatedByDecorator() warns DeprecationWarning at the caller's line",
    ),
    (
        "P1-3.deprecation-warning",
        broken.correct_engine_built_by_a_factory,
        "EngineNeedingItsBus() warns DeprecationWarning at the caller's line "
        "(built by V2Rules.engine_factory, at broken_p1_3.py:*)",
    ),
    (
        "P1-3.no-direct-imports",
        broken.correct_v2_package_with_an_ignore_list,
        "11 files scanned, 0 direct v2 imports; 2 allowed by 2 ignore_imports entr(ies)",
    ),
    (
        "P1-3.bridge-relays",
        broken.correct_bridge_isolating_node_errors_in_tasks,
        "relayed to 2/2 v2 node(s), once each, past a failing node",
    ),
    (
        "P1-3.bridge-relays",
        broken.correct_reference_probe_with_a_failing_node,
        "relayed to 2/2 v2 node(s), once each, past a failing node",
    ),
    ("deploy.health", broken.correct_health_reporting_down, "health status 'ok'"),
    ("deploy.health", broken.correct_health_raising_when_redis_is_down, "health status 'ok'"),
]


@pytest.mark.parametrize(
    ("criterion", "builder", "summary"),
    CORRECT,
    ids=[builder.__name__ for _, builder, _ in CORRECT],
)
def test_a_correct_design_in_another_shape_passes(
    pytester: pytest.Pytester, criterion: str, builder: Builder, summary: str
) -> None:
    # The whole P1-3 task and the health check: the run-wide watch and the
    # engine swaps touch several criteria at once.
    result = run_p1(pytester, "--p1-report=p1.json", "-k", "P1-3 or deploy", target=builder)
    found = outcomes(read_report(pytester.path / "p1.json"))
    assert set(found.values()) == {"passed"}, result.stdout.str()
    line = Checklist.parse(result.outlines).lines[criterion]
    assert line.mark == "PASS"
    assert fnmatch(line.detail, summary), line.detail
