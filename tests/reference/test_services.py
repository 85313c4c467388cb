"""The P1-1 publishers: HedgeFundOS mode, safety governor, shadow tester, and the target's actions."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_quantum_p1 import Bus, RequiredEvent
from reference_impl.core.event_bus import EventBus, get_event_bus
from reference_impl.errors import InvalidModeError, InvalidSafetyLevelError, P1Error
from reference_impl.p1_target import TARGET
from reference_impl.services.ai.hfos_manager import MODES, HedgeFundOSManager
from reference_impl.services.models.shadow_testing import (
    InvalidShadowTestError,
    ShadowTester,
    ShadowTestResult,
)
from reference_impl.services.safety.governor import InvalidReasonError, SafetyGovernor

Recorded = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def published(bus: EventBus) -> Recorded:
    """Every event published on ``bus`` during the test, in order."""
    events: Recorded = []
    for name in bus.catalogue:
        bus.subscribe(name, lambda n, p: events.append((n, dict(p))))
    return events


def assert_utc_timestamp(value: object, before: datetime, after: datetime) -> None:
    assert isinstance(value, str)
    stamp = datetime.fromisoformat(value)
    assert stamp.utcoffset() is not None, "timestamp is naive"
    assert stamp.utcoffset() == UTC.utcoffset(None)
    assert before <= stamp <= after


# --- HedgeFundOS -------------------------------------------------------------------


def test_hfos_starts_in_normal_mode(bus: EventBus) -> None:
    assert HedgeFundOSManager(bus).current_mode == "normal"


@pytest.mark.parametrize("mode", MODES)
def test_hfos_can_start_in_any_mode(bus: EventBus, mode: str) -> None:
    assert HedgeFundOSManager(bus, mode=mode).current_mode == mode


def test_hfos_rejects_an_unknown_starting_mode(bus: EventBus) -> None:
    with pytest.raises(InvalidModeError, match=r"'turbo'.*valid modes: normal, defensive"):
        HedgeFundOSManager(bus, mode="turbo")


def test_set_mode_publishes_the_transition(bus: EventBus, published: Recorded) -> None:
    manager = HedgeFundOSManager(bus)
    before = datetime.now(UTC)
    asyncio.run(manager.set_mode("defensive"))
    after = datetime.now(UTC)

    assert manager.current_mode == "defensive"
    [(name, payload)] = published
    assert name == "ai.hfos.mode_changed"
    assert payload.keys() == {"old_mode", "new_mode", "timestamp"}
    assert (payload["old_mode"], payload["new_mode"]) == ("normal", "defensive")
    assert_utc_timestamp(payload["timestamp"], before, after)


def test_set_mode_reports_each_transition_from_the_previous_mode(
    bus: EventBus, published: Recorded
) -> None:
    manager = HedgeFundOSManager(bus)

    async def scenario() -> None:
        for mode in ("defensive", "shutdown", "normal"):
            await manager.set_mode(mode)

    asyncio.run(scenario())
    assert [(p["old_mode"], p["new_mode"]) for _, p in published] == [
        ("normal", "defensive"),
        ("defensive", "shutdown"),
        ("shutdown", "normal"),
    ]


def test_set_mode_changes_state_before_publishing(bus: EventBus) -> None:
    manager = HedgeFundOSManager(bus)
    seen_by_subscriber: list[str] = []
    bus.subscribe(
        "ai.hfos.mode_changed", lambda n, p: seen_by_subscriber.append(manager.current_mode)
    )
    asyncio.run(manager.set_mode("aggressive"))
    assert seen_by_subscriber == ["aggressive"]


def test_set_mode_to_the_current_mode_publishes_nothing(bus: EventBus, published: Recorded) -> None:
    manager = HedgeFundOSManager(bus, mode="defensive")
    asyncio.run(manager.set_mode("defensive"))
    assert manager.current_mode == "defensive"
    assert published == []


@pytest.mark.parametrize("mode", ["turbo", "", "Normal", " normal", None, 1, ["normal"]])
def test_set_mode_rejects_an_invalid_mode_and_changes_nothing(
    bus: EventBus, published: Recorded, mode: Any
) -> None:
    manager = HedgeFundOSManager(bus)
    with pytest.raises(InvalidModeError) as info:
        asyncio.run(manager.set_mode(mode))
    assert "valid modes: normal, defensive, aggressive, shutdown" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert manager.current_mode == "normal"
    assert published == []


def test_set_mode_logs_after_publishing(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="reference_impl.services.ai.hfos_manager")
    logged_before_publish: list[bool] = []
    bus.subscribe(
        "ai.hfos.mode_changed",
        lambda n, p: logged_before_publish.append("mode changed" in caplog.text),
    )
    asyncio.run(HedgeFundOSManager(bus).set_mode("shutdown"))
    assert logged_before_publish == [False]
    assert "HedgeFundOS mode changed: normal → shutdown" in caplog.messages


def test_hfos_defaults_to_the_process_bus() -> None:
    events: list[str] = []

    def record(name: str, payload: Mapping[str, Any]) -> None:
        events.append(name)

    with get_event_bus().connected_to(record, ["ai.hfos.mode_changed"]):
        asyncio.run(HedgeFundOSManager().set_mode("defensive"))
    assert events == ["ai.hfos.mode_changed"]


# --- Safety governor ---------------------------------------------------------------


class Level(enum.IntEnum):
    ELEVATED = 2


def test_governor_starts_at_its_lowest_level(bus: EventBus) -> None:
    governor = SafetyGovernor(bus, min_level=1, max_level=3)
    assert governor.current_level == 1
    assert governor.level_range == (1, 3)


def test_set_safety_level_publishes_the_change(bus: EventBus, published: Recorded) -> None:
    governor = SafetyGovernor(bus, level=1)
    before = datetime.now(UTC)
    asyncio.run(governor.set_safety_level(4))
    after = datetime.now(UTC)

    assert governor.current_level == 4
    [(name, payload)] = published
    assert name == "safety.governor.level_changed"
    assert payload.keys() == {"old_level", "new_level", "reason", "timestamp"}
    assert (payload["old_level"], payload["new_level"]) == (1, 4)
    assert payload["reason"] == "manual_override"
    assert_utc_timestamp(payload["timestamp"], before, after)


def test_set_safety_level_publishes_the_given_reason(bus: EventBus, published: Recorded) -> None:
    asyncio.run(SafetyGovernor(bus).set_safety_level(5, reason="drawdown_limit"))
    assert published[0][1]["reason"] == "drawdown_limit"


def test_set_safety_level_accepts_the_range_bounds(bus: EventBus, published: Recorded) -> None:
    governor = SafetyGovernor(bus, level=2)

    async def scenario() -> None:
        await governor.set_safety_level(5)
        await governor.set_safety_level(0)

    asyncio.run(scenario())
    assert [(p["old_level"], p["new_level"]) for _, p in published] == [(2, 5), (5, 0)]


def test_set_safety_level_publishes_a_plain_int(bus: EventBus, published: Recorded) -> None:
    asyncio.run(SafetyGovernor(bus).set_safety_level(Level.ELEVATED))
    assert type(published[0][1]["new_level"]) is int


def test_set_safety_level_changes_state_before_publishing(bus: EventBus) -> None:
    governor = SafetyGovernor(bus)
    seen: list[int] = []
    bus.subscribe("safety.governor.level_changed", lambda n, p: seen.append(governor.current_level))
    asyncio.run(governor.set_safety_level(3))
    assert seen == [3]


def test_set_safety_level_to_the_current_level_publishes_nothing(
    bus: EventBus, published: Recorded
) -> None:
    asyncio.run(SafetyGovernor(bus, level=2).set_safety_level(2, reason="recheck"))
    assert published == []


@pytest.mark.parametrize("level", [-1, 6, True, False, 2.0, "2", None, [2]])
def test_set_safety_level_rejects_an_invalid_level_and_changes_nothing(
    bus: EventBus, published: Recorded, level: Any
) -> None:
    governor = SafetyGovernor(bus, level=1)
    with pytest.raises(InvalidSafetyLevelError, match=r"must be an int from 0 to 5"):
        asyncio.run(governor.set_safety_level(level))
    assert governor.current_level == 1
    assert published == []


@pytest.mark.parametrize("reason", ["", "   ", None, 3, {"why": "x"}])
def test_set_safety_level_rejects_an_invalid_reason_and_changes_nothing(
    bus: EventBus, published: Recorded, reason: Any
) -> None:
    governor = SafetyGovernor(bus, level=1)
    with pytest.raises(InvalidReasonError, match="reason must be a non-empty str") as info:
        asyncio.run(governor.set_safety_level(3, reason=reason))
    assert isinstance(info.value, P1Error)
    assert isinstance(info.value, ValueError)
    assert governor.current_level == 1
    assert published == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"level": 6}, "invalid safety level 6; must be an int from 0 to 5"),
        ({"level": True}, "invalid safety level True"),
        ({"min_level": 3, "max_level": 2}, r"range \[3, 2\]"),
        ({"min_level": False}, r"range \[False, 5\]"),
        ({"max_level": 5.0}, r"range \[0, 5.0\]"),
    ],
)
def test_governor_rejects_an_invalid_configuration(
    bus: EventBus, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidSafetyLevelError, match=match):
        SafetyGovernor(bus, **kwargs)


def test_set_safety_level_logs_the_change(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="reference_impl.services.safety.governor")
    asyncio.run(SafetyGovernor(bus).set_safety_level(2))
    assert "Safety level changed: 0 → 2 (manual_override)" in caplog.messages


# --- Shadow testing ----------------------------------------------------------------


def test_identical_predictions_pass(bus: EventBus, published: Recorded) -> None:
    before = datetime.now(UTC)
    result = asyncio.run(ShadowTester(bus).run("m1", [0.1, 0.5, -2.0], [0.1, 0.5, -2.0]))
    after = datetime.now(UTC)

    assert result.passed
    assert (result.verdict, result.samples, result.agreement_rate) == ("pass", 3, 1.0)
    assert (result.mean_abs_diff, result.max_abs_diff) == (0.0, 0.0)
    [(name, payload)] = published
    assert name == "model.shadow_test.completed"
    assert payload == {
        "model_id": "m1",
        "verdict": "pass",
        "metrics": result.metrics(),
        "samples": 3,
        "timestamp": result.timestamp,
    }
    assert payload["metrics"].keys() == {
        "agreement_rate",
        "mean_abs_diff",
        "max_abs_diff",
        "min_agreement",
        "tolerance",
    }
    assert_utc_timestamp(payload["timestamp"], before, after)


def test_disagreeing_predictions_fail_and_are_still_published(
    bus: EventBus, published: Recorded
) -> None:
    result = asyncio.run(ShadowTester(bus).run("m2", [1, 2, 3, 4], [1, 2, 3, 5]))

    assert result.verdict == "fail"
    assert not result.passed
    assert result.agreement_rate == 0.75
    assert result.mean_abs_diff == 0.25
    assert result.max_abs_diff == 1.0
    assert published[0][1]["verdict"] == "fail"
    assert published[0][1]["metrics"]["agreement_rate"] == 0.75


def test_min_agreement_is_inclusive(bus: EventBus) -> None:
    result = asyncio.run(ShadowTester(bus).run("m", [1, 2, 3, 4], [1, 2, 3, 5], min_agreement=0.75))
    assert result.verdict == "pass"


def test_a_difference_equal_to_the_tolerance_agrees(bus: EventBus) -> None:
    result = asyncio.run(ShadowTester(bus).run("m", [1.0, 2.0], [1.5, 2.75], tolerance=0.5))
    assert result.agreement_rate == 0.5


def test_predictions_may_be_any_iterable_of_numbers(bus: EventBus) -> None:
    result = asyncio.run(ShadowTester(bus).run("m", (x for x in (1, 2)), (1.0, 2.0)))
    assert result.samples == 2


@pytest.mark.parametrize(
    ("candidate", "production", "match"),
    [
        ([], [], "candidate predictions are empty"),
        ([1.0], [], "production predictions are empty"),
        ([1.0, 2.0], [1.0], "candidate has 2 predictions but production has 1"),
        ([1.0, "2"], [1.0, 2.0], r"candidate prediction \[1\] is a str, not a number"),
        ([1.0], [None], r"production prediction \[0\] is a NoneType"),
        ([True], [1.0], r"candidate prediction \[0\] is a bool"),
        ([math.nan], [1.0], r"candidate prediction \[0\] is nan"),
        ([1.0], [math.inf], r"production prediction \[0\] is inf"),
        ("12", [1.0, 2.0], "candidate predictions must be a sequence of numbers, got str"),
        (3, [3.0], "candidate predictions must be a sequence of numbers, got int"),
    ],
)
def test_bad_predictions_raise_and_publish_nothing(
    bus: EventBus, published: Recorded, candidate: Any, production: Any, match: str
) -> None:
    with pytest.raises(InvalidShadowTestError, match=match):
        asyncio.run(ShadowTester(bus).run("m", candidate, production))
    assert published == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_id": ""}, "model_id must be a non-empty str"),
        ({"model_id": None}, "model_id must be a non-empty str"),
        ({"min_agreement": 1.5}, "min_agreement must be a finite number from 0 to 1.0"),
        ({"min_agreement": -0.1}, "min_agreement must be"),
        ({"min_agreement": math.nan}, "min_agreement must be"),
        ({"min_agreement": True}, "min_agreement must be"),
        ({"tolerance": -1e-9}, "tolerance must be a finite number 0 or more"),
        ({"tolerance": math.inf}, "tolerance must be"),
        ({"tolerance": "0.1"}, "tolerance must be"),
    ],
)
def test_bad_parameters_raise_and_publish_nothing(
    bus: EventBus, published: Recorded, kwargs: dict[str, Any], match: str
) -> None:
    args: dict[str, Any] = {"model_id": "m", **kwargs}
    model_id = args.pop("model_id")
    with pytest.raises(InvalidShadowTestError, match=match):
        asyncio.run(ShadowTester(bus).run(model_id, [1.0], [1.0], **args))
    assert published == []


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(
    pairs=st.lists(st.tuples(finite, finite), min_size=1, max_size=50),
    min_agreement=st.floats(min_value=0.0, max_value=1.0),
)
def test_shadow_metrics_are_consistent(
    pairs: list[tuple[float, float]], min_agreement: float
) -> None:
    candidate = [c for c, _ in pairs]
    production = [p for _, p in pairs]
    result: ShadowTestResult = asyncio.run(
        ShadowTester(EventBus()).run("m", candidate, production, min_agreement=min_agreement)
    )
    assert result.samples == len(pairs)
    assert 0.0 <= result.agreement_rate <= 1.0
    assert result.verdict == ("pass" if result.agreement_rate >= min_agreement else "fail")
    assert 0.0 <= result.mean_abs_diff <= result.max_abs_diff
    identical = asyncio.run(ShadowTester(EventBus()).run("m", candidate, candidate))
    assert (identical.verdict, identical.agreement_rate) == ("pass", 1.0)


# --- The target's actions ----------------------------------------------------------


@pytest.mark.parametrize("event", TARGET.required_events, ids=lambda e: e.name)
def test_each_target_action_publishes_its_event_once_and_logs_it(
    event: RequiredEvent, bus: EventBus, published: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TARGET.monitor_logger)
    # Only the v2 node action goes through the deprecated engine, via the bridge.
    warns = (
        pytest.warns(DeprecationWarning, match="FederatedEngineV2 is deprecated")
        if event.name == "federation.node.status_changed"
        else contextlib.nullcontext()
    )

    async def act() -> Mapping[str, Any]:
        return await event.action(bus)

    with warns:
        expected = asyncio.run(act())

    assert event.name in bus.catalogue
    [(name, payload)] = published
    assert name == event.name
    assert set(event.fields) <= payload.keys()
    assert expected.items() <= payload.items()
    assert expected, "an action must state what its event carries"
    [record] = [r for r in caplog.records if r.name == TARGET.monitor_logger]
    assert (record.event, record.payload) == (event.name, payload)  # type: ignore[attr-defined]


async def _mode_action_on(bus: Bus) -> Mapping[str, Any]:
    return await TARGET.required_events[0].action(bus)


def test_target_actions_need_the_reference_bus() -> None:
    class OtherBus:
        catalogue: Mapping[str, object] = {}

    with pytest.raises(TypeError, match="needs a reference_impl EventBus, got OtherBus"):
        asyncio.run(_mode_action_on(OtherBus()))  # type: ignore[arg-type]
