"""P1-1 bugs that used to pass (issue 12 §5), and the vacuous passes (§2), each caught by a criterion.

Each :class:`Break` runs the whole acceptance run against the reference with
one bug planted (``broken_p1_1.py``) and asserts that exactly its criterion
fails, with the message a user reads. The tests after them run correct
backends of other shapes (monitoring at WARNING or as JSON lines, a bus that
delivers in tasks or concurrently, timestamps with ``Z``, no state hooks) and
prove that no P1-1 criterion rejects them.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.plugin import broken_p1_1 as bp
from tests.plugin.broken_targets import Builder, Checklist, read_report, run_p1
from tests.plugin.verdicts import REPORT, Break, assert_breaks_exactly

P1_1_IDS = [
    "P1-1.catalogue",
    "P1-1.hfos-mode",
    "P1-1.safety-level",
    "P1-1.shadow-test",
    "P1-1.node-status",
    "P1-1.logged",
    "P1-1.failing-subscriber",
]

BREAKS = [
    Break(
        "P1-1.logged",
        bp.bus_logging_events_at_debug,
        (
            "ai.hfos.mode_changed: logged at DEBUG on 'reference_impl.events', below INFO, "
            "the level production monitoring sees (P1Target.monitor_level)",
        ),
        "Log the monitoring records at INFO or above",
        claim="4/4 events logged",
    ),
    Break(
        "P1-1.logged",
        bp.target_expecting_warning_from_an_info_monitor,
        ("ai.hfos.mode_changed: logged at INFO on 'reference_impl.events', below WARNING",),
        "Log the monitoring records at WARNING or above",
    ),
    Break(
        "P1-1.failing-subscriber",
        bp.bus_stopping_at_a_raising_subscriber,
        (
            "a subscriber that raises keeps the event from others",
            "ai.hfos.mode_changed, failing subscriber subscribed first: "
            "the other subscriber did not receive it",
        ),
        "Call each subscriber in its own try/except",
        claim="past a raising subscriber",
    ),
    Break(
        "P1-1.failing-subscriber",
        bp.bus_logging_after_its_subscribers,
        (
            "ai.hfos.mode_changed, failing subscriber subscribed first: "
            "no monitoring record on 'reference_impl.events'",
            "ai.hfos.mode_changed, failing subscriber subscribed last: "
            "its exception escaped publish and the action raised it",
        ),
        "never let publish raise because of a subscriber",
    ),
    Break(
        "P1-1.hfos-mode",
        bp.mode_announced_before_it_changes,
        (
            "new_mode: the event announces 'defensive', but a subscriber receiving it read "
            "'normal' from the system (published before the state changed)",
        ),
        "Change the state first, then publish the event that announces it.",
        claim="published once",
    ),
    Break(
        "P1-1.safety-level",
        bp.level_change_stamped_in_local_time_as_utc,
        (
            "away from the harness's UTC clock",
            "the action ran in zone UTC+05:45, so this looks like local time labelled as UTC",
        ),
        "an aware UTC timestamp",
    ),
    Break(
        "P1-1.node-status",
        bp.node_status_stamped_with_the_local_offset,
        (
            "follows the local zone: the harness ran the action in zone UTC+05:45 "
            "and the timestamp carries that offset",
        ),
        "an aware UTC timestamp",
    ),
    Break(
        "P1-1.hfos-mode",
        bp.mode_change_expecting_nothing,
        (
            "the action behind 'ai.hfos.mode_changed' returned no values to compare, "
            "so its payload was not checked against the change it made.",
        ),
        "Return the values the event must carry from RequiredEvent.action",
    ),
    Break(
        "P1-1.hfos-mode",
        bp.mode_change_with_an_undeclared_timestamp_missing,
        ("field 'timestamp' is missing",),
        "Publish the event once per action",
    ),
    Break(
        "P1-1.hfos-mode",
        bp.mode_change_publishing_nothing,
        ("the real action behind 'ai.hfos.mode_changed' did not publish it as expected.",),
        "Publish the values of the change that happened",
        # An action that publishes nothing leaves every check of its event with
        # nothing to observe: each of them fails (asserted below) rather than pass.
        collateral=frozenset({"P1-1.logged", "P1-1.failing-subscriber"}),
    ),
    Break(
        "P1-1.hfos-mode",
        bp.mode_state_hook_that_raises,
        (
            "RequiredEvent.announced_state of 'ai.hfos.mode_changed' raised LookupError "
            "while the event was delivered",
        ),
        None,
        outcome="error",
    ),
    Break(
        "P1-1.logged",
        bp.monitor_reader_that_raises,
        (
            "P1Target.monitor_record _raise_reading (broken_p1_1.py:",
            "raised KeyError reading a record of 'reference_impl.events' (",
        ),
        None,
        outcome="error",
        # The failing-subscriber check reads monitoring records the same way.
        collateral=frozenset({"P1-1.failing-subscriber"}),
    ),
    # -- shapes the adapter absorbs: JSON-lines monitoring, an emitter without catalogue --
    Break(
        "P1-1.logged",
        bp.json_monitor_logging_one_event_as_plain_text,
        (
            "model.shadow_test.completed: published 1 time(s), logged 0 time(s) on logger "
            "'jsonl.events'",
            "1 record(s) on 'jsonl.events' were read as no event by P1Target.monitor_record "
            "json_record(event_key='event', payload_key='payload'), e.g. "
            "\"model.shadow_test.completed {'model_id': ",
        ),
        "Log one record per publish on 'jsonl.events' carrying the name and payload",
    ),
]


@pytest.mark.parametrize("case", BREAKS, ids=lambda case: case.builder.__name__)
def test_a_p1_1_bug_fails_exactly_its_criterion(pytester: pytest.Pytester, case: Break) -> None:
    assert_breaks_exactly(pytester, case)


def _p1_1_run(pytester: pytest.Pytester, builder: Builder) -> dict[str, dict[str, object]]:
    """Run the P1-1 criteria against ``builder``'s target: ``{id: criterion as in the JSON}``."""
    run_p1(pytester, REPORT, "-k", "P1-1", target=builder)
    report = read_report(pytester.path / "p1.json")
    return {criterion["id"]: criterion for criterion in report["criteria"]}


def test_an_action_publishing_nothing_fails_every_check_of_its_event(
    pytester: pytest.Pytester,
) -> None:
    by_id = _p1_1_run(pytester, bp.mode_change_publishing_nothing)
    assert "ai.hfos.mode_changed: the action published nothing to log" in str(
        by_id["P1-1.logged"]["message"]
    )
    for place in ("first", "last"):
        assert (
            f"ai.hfos.mode_changed, failing subscriber subscribed {place}: the action published "
            "nothing, so nothing was observed"
        ) in str(by_id["P1-1.failing-subscriber"]["message"])


def test_a_target_without_required_events_fails_instead_of_passing_empty(
    pytester: pytest.Pytester,
) -> None:
    by_id = _p1_1_run(pytester, bp.target_without_required_events)
    assert list(by_id) == ["P1-1.catalogue", "P1-1.logged", "P1-1.failing-subscriber"]
    for criterion in by_id.values():
        assert criterion["outcome"] == "failed"
        assert criterion["summary"] == "no required events declared"
        message = str(criterion["message"])
        assert message.startswith(
            "the target declares no required events, so nothing was checked; the seed requires "
            "ai.hfos.mode_changed, safety.governor.level_changed, "
            "model.shadow_test.completed, federation.node.status_changed."
        )
        assert "List them in P1Target.required_events" in message


# -- correct backends of other shapes pass -------------------------------------------------


@pytest.mark.parametrize(
    "builder",
    [
        bp.bus_monitoring_at_warning,
        bp.bus_monitoring_in_json_lines,
        bp.bus_monitoring_in_json_lines_read_by_json_record,
        bp.correct_pyee_style_emitter_through_emitter_bus,
        bp.bus_delivering_in_tasks,
        bp.bus_delivering_concurrently,
        bp.mode_change_with_z_timestamps,
        bp.target_without_state_hooks,
    ],
    ids=lambda builder: builder.__name__,
)
def test_a_correct_backend_of_another_shape_passes_p1_1(
    pytester: pytest.Pytester, builder: Builder
) -> None:
    by_id = _p1_1_run(pytester, builder)
    assert list(by_id) == P1_1_IDS
    assert {name: c["outcome"] for name, c in by_id.items()} == dict.fromkeys(P1_1_IDS, "passed")
    assert by_id["P1-1.failing-subscriber"]["figures"] == {"events": 4, "runs": 12}


def test_a_bus_delivering_after_publish_returns_still_has_its_state_checked(
    pytester: pytest.Pytester,
) -> None:
    by_id = _p1_1_run(pytester, bp.bus_delivering_in_tasks)
    for name in ("P1-1.hfos-mode", "P1-1.safety-level", "P1-1.node-status"):
        assert by_id[name]["figures"] == {
            "published": 1,
            "zone_offset_min": 345,
            "state_checked": 1,
        }


def test_without_a_state_hook_the_report_says_the_state_was_not_checked(
    pytester: pytest.Pytester,
) -> None:
    result = run_p1(pytester, REPORT, "-k", "P1-1", target=bp.target_without_state_hooks)
    by_id = {c["id"]: c for c in read_report(pytester.path / "p1.json")["criteria"]}
    line = Checklist.parse(result.outlines).lines["P1-1.hfos-mode"]
    assert line.detail.endswith("; state at delivery not checked: no RequiredEvent.announced_state")
    assert by_id["P1-1.hfos-mode"]["figures"]["state_checked"] == 0


def test_the_reference_has_its_state_checked_and_its_zone_restored(
    pytester: pytest.Pytester,
) -> None:
    zone = (os.environ.get("TZ"), time.timezone, time.tzname)
    result = run_p1(pytester, REPORT, "-k", "P1-1")
    assert result.ret == pytest.ExitCode.OK
    assert (os.environ.get("TZ"), time.timezone, time.tzname) == zone
    by_id = {c["id"]: c for c in read_report(pytester.path / "p1.json")["criteria"]}
    checked = {name: by_id[name]["figures"]["state_checked"] for name in P1_1_IDS[1:5]}
    # A completed shadow test announces a result, not a state the tester keeps.
    assert checked == {
        "P1-1.hfos-mode": 1,
        "P1-1.safety-level": 1,
        "P1-1.shadow-test": 0,
        "P1-1.node-status": 1,
    }
    assert by_id["P1-1.logged"]["summary"] == "4/4 events logged for monitoring at INFO or above"


def test_an_emitter_listing_too_few_events_fails_the_catalogue_saying_whose_list_it_was(
    pytester: pytest.Pytester,
) -> None:
    by_id = _p1_1_run(pytester, bp.emitter_bus_missing_an_event_in_its_list)
    catalogue = by_id["P1-1.catalogue"]
    assert catalogue["outcome"] == "failed"
    assert catalogue["summary"] == (
        "3/4 events in the catalogue (the adapter's list: the emitter keeps no catalogue)"
    )
    message = str(catalogue["message"])
    assert "1 required event(s) missing from the bus catalogue:" in message
    assert "'model.shadow_test.completed'" in message
    # An event the list leaves out cannot be recorded: its own check says so.
    assert by_id["P1-1.shadow-test"]["outcome"] == "failed"
    assert by_id["P1-1.hfos-mode"]["outcome"] == "passed"


def test_an_emitter_without_catalogue_says_the_list_checked_was_the_adapters(
    pytester: pytest.Pytester,
) -> None:
    by_id = _p1_1_run(pytester, bp.correct_pyee_style_emitter_through_emitter_bus)
    assert by_id["P1-1.catalogue"]["summary"] == (
        "4/4 events in the catalogue (the adapter's list: the emitter keeps no catalogue)"
    )
