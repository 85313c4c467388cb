"""EventBus v2: catalogue, payload checks, subscriber isolation, monitoring records."""

from __future__ import annotations

import asyncio
import logging
import math
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from reference_impl.core.event_bus import CATALOGUE, EventBus, get_event_bus
from reference_impl.errors import (
    InvalidPayloadError,
    InvalidSubscriberError,
    P1Error,
    UnknownEventError,
)

P1_EVENTS = (
    "ai.hfos.mode_changed",
    "safety.governor.level_changed",
    "model.shadow_test.completed",
    "federation.node.status_changed",
)
MONITOR = "reference_impl.events"
BUS_LOGGER = "reference_impl.core.event_bus"


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


class Recorder:
    """A subscriber that records its calls in a shared log, under a label."""

    def __init__(self, log: list[str], label: str) -> None:
        self.log = log
        self.label = label

    def __call__(self, name: str, payload: Mapping[str, Any]) -> None:
        self.log.append(f"{self.label}:{name}")


def monitor_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == MONITOR]


# --- Catalogue and names -----------------------------------------------------------


def test_the_p1_events_are_catalogued_and_monitored() -> None:
    for name in P1_EVENTS:
        assert CATALOGUE[name].monitored, name
    assert not CATALOGUE["federation.round.completed"].monitored
    assert EventBus().catalogue.keys() == CATALOGUE.keys()


def _publish(bus: EventBus, name: str) -> None:
    asyncio.run(bus.publish(name, {}))


def _subscribe(bus: EventBus, name: str) -> None:
    bus.subscribe(name, Recorder([], "x"))


def _unsubscribe(bus: EventBus, name: str) -> None:
    bus.unsubscribe(name, Recorder([], "x"))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (_publish, "ai.hfos.mode_change"),
        (_subscribe, "safety.governor.level_change"),
        (_unsubscribe, "model.shadow_test.complete"),
        (EventBus.subscribers, "federation.node.status_change"),
    ],
)
def test_an_unknown_name_suggests_the_closest_known_one(
    bus: EventBus, call: Callable[[EventBus, str], object], name: str
) -> None:
    with pytest.raises(UnknownEventError) as info:
        call(bus, name)
    error = info.value
    assert isinstance(error, P1Error)
    assert isinstance(error, KeyError)
    assert error.name == name
    assert error.suggestions[0] == name + "d"
    assert str(error).startswith(f"unknown event {name!r}; did you mean {name + 'd'!r}")


def test_an_unknown_name_with_no_near_match_has_no_suggestion(bus: EventBus) -> None:
    with pytest.raises(UnknownEventError) as info:
        bus.subscribe("zzz", Recorder([], "x"))
    assert info.value.suggestions == []
    assert str(info.value) == "unknown event 'zzz'"


def test_an_unhashable_name_is_an_unknown_event(bus: EventBus) -> None:
    with pytest.raises(UnknownEventError, match=r"unknown event \"\['model.promoted'\]\""):
        asyncio.run(bus.publish(["model.promoted"], {}))  # type: ignore[arg-type]


def test_an_unknown_publish_reaches_no_subscriber(bus: EventBus) -> None:
    log: list[str] = []
    for name in CATALOGUE:
        bus.subscribe(name, Recorder(log, "all"))
    with pytest.raises(UnknownEventError):
        asyncio.run(bus.publish("model.promote", {}))
    assert log == []


# --- Payloads ----------------------------------------------------------------------


class Opaque:
    pass


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (None, "must be a mapping, got NoneType"),
        (["a", 1], "must be a mapping, got list"),
        ("text", "must be a mapping, got str"),
        ({1: "x"}, r"^payload of 'model\.promoted' has the key 1, which is not a str$"),
        ({"tags": {"a", "b"}}, r"^payload of 'model\.promoted'\.tags is a set, which is not JSON"),
        ({"blob": b"\x00"}, r"'model\.promoted'\.blob is a bytes"),
        ({"obj": Opaque()}, r"'model\.promoted'\.obj is a Opaque"),
        ({"a": {"b": {3: 1}}}, r"'model\.promoted'\.a\.b has the key 3, which is not a str"),
        ({"a": [1, {"b": frozenset()}]}, r"'model\.promoted'\.a\[1\]\.b is a frozenset"),
        ({"score": math.nan}, r"'model\.promoted'\.score is nan, which JSON cannot represent"),
        ({"a": [0.5, -math.inf]}, r"'model\.promoted'\.a\[1\] is -inf, which JSON cannot"),
    ],
)
def test_a_malformed_payload_is_rejected_before_any_subscriber_runs(
    bus: EventBus, caplog: pytest.LogCaptureFixture, payload: Any, match: str
) -> None:
    caplog.set_level(logging.INFO, logger=MONITOR)
    log: list[str] = []
    bus.subscribe("model.promoted", Recorder(log, "h"))
    bus.subscribe("ai.hfos.mode_changed", Recorder(log, "h"))
    with pytest.raises(InvalidPayloadError, match=match):
        asyncio.run(bus.publish("model.promoted", payload))
    with pytest.raises(InvalidPayloadError):
        asyncio.run(bus.publish("ai.hfos.mode_changed", payload))
    assert log == []
    assert monitor_records(caplog) == []


def test_a_cyclic_payload_is_rejected_not_recursed_forever(bus: EventBus) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidPayloadError, match="nested deeper than 64"):
        asyncio.run(bus.publish("model.promoted", {"loop": loop}))


def test_json_shaped_payloads_are_delivered(bus: EventBus) -> None:
    received: list[Mapping[str, Any]] = []
    bus.subscribe("model.promoted", lambda n, p: received.append(p))
    nested = {"s": "x", "i": 1, "f": 0.5, "b": True, "n": None, "l": [1, ("t", {"k": []})]}

    async def scenario() -> None:
        await bus.publish("model.promoted", nested)
        await bus.publish("model.promoted", MappingProxyType({"read": "only"}))

    asyncio.run(scenario())
    assert received == [nested, {"read": "only"}]
    assert type(received[1]) is dict


# --- Subscribers -------------------------------------------------------------------


def test_subscribers_run_in_order_sync_and_async(bus: EventBus) -> None:
    log: list[str] = []

    async def async_handler(name: str, payload: Mapping[str, Any]) -> None:
        log.append(f"async:{name}")

    bus.subscribe("model.promoted", Recorder(log, "first"))
    bus.subscribe("model.promoted", async_handler)
    bus.subscribe("model.promoted", Recorder(log, "last"))
    asyncio.run(bus.publish("model.promoted", {}))
    assert log == ["first:model.promoted", "async:model.promoted", "last:model.promoted"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_failing_subscriber_is_logged_and_skipped(
    bus: EventBus, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    log: list[str] = []

    def sync_boom(name: str, payload: Mapping[str, Any]) -> None:
        raise RuntimeError("sync boom")

    async def async_boom(name: str, payload: Mapping[str, Any]) -> None:
        raise RuntimeError("async boom")

    bus.subscribe("model.rollback", Recorder(log, "before"))
    bus.subscribe("model.rollback", sync_boom if kind == "sync" else async_boom)
    bus.subscribe("model.rollback", Recorder(log, "after"))

    asyncio.run(bus.publish("model.rollback", {"model_id": "m"}))

    assert log == ["before:model.rollback", "after:model.rollback"]
    [record] = [r for r in caplog.records if r.name == "reference_impl.core.event_bus"]
    assert record.levelno == logging.ERROR
    assert "failed handling event model.rollback" in record.getMessage()
    assert f"{kind}_boom" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == f"{kind} boom"


def test_a_failing_subscriber_does_not_stop_later_publishes(bus: EventBus) -> None:
    log: list[str] = []

    def boom(name: str, payload: Mapping[str, Any]) -> None:
        raise ValueError("nope")

    bus.subscribe("model.rollback", boom)
    bus.subscribe("model.rollback", Recorder(log, "ok"))

    async def scenario() -> None:
        await bus.publish("model.rollback", {})
        await bus.publish("model.rollback", {})

    asyncio.run(scenario())
    assert log == ["ok:model.rollback"] * 2


def test_subscribing_during_a_publish_takes_effect_from_the_next_one(bus: EventBus) -> None:
    log: list[str] = []
    late = Recorder(log, "late")

    def subscribe_late(name: str, payload: Mapping[str, Any]) -> None:
        log.append("early")
        bus.subscribe(name, late)

    bus.subscribe("model.promoted", subscribe_late)

    async def scenario() -> None:
        await bus.publish("model.promoted", {})
        bus.unsubscribe("model.promoted", subscribe_late)
        await bus.publish("model.promoted", {})

    asyncio.run(scenario())
    assert log == ["early", "late:model.promoted"]


def test_unsubscribing_during_a_publish_takes_effect_from_the_next_one(bus: EventBus) -> None:
    log: list[str] = []
    second = Recorder(log, "second")

    def drop_second(name: str, payload: Mapping[str, Any]) -> None:
        bus.unsubscribe(name, second)

    bus.subscribe("model.promoted", drop_second)
    bus.subscribe("model.promoted", second)

    async def scenario() -> None:
        await bus.publish("model.promoted", {})
        await bus.publish("model.promoted", {})

    asyncio.run(scenario())
    assert log == ["second:model.promoted"]


def test_unsubscribe_of_a_stranger_is_a_no_op(bus: EventBus) -> None:
    bus.subscribe("model.promoted", Recorder([], "a"))
    bus.unsubscribe("model.promoted", Recorder([], "b"))
    assert bus.subscribers("model.promoted") == 1


# --- Monitoring records ------------------------------------------------------------


@pytest.mark.parametrize("name", P1_EVENTS)
def test_a_monitored_event_is_exactly_one_structured_record(
    bus: EventBus, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.INFO, logger=MONITOR)
    bus.subscribe(name, Recorder([], "a"))
    bus.subscribe(name, Recorder([], "b"))
    asyncio.run(bus.publish(name, {"k": "v"}))
    [record] = monitor_records(caplog)
    assert record.levelno == logging.INFO
    assert record.event == name  # type: ignore[attr-defined]
    assert record.payload == {"k": "v"}  # type: ignore[attr-defined]
    assert name in record.getMessage()


@pytest.mark.parametrize("name", sorted(set(CATALOGUE) - set(P1_EVENTS)))
def test_an_unmonitored_event_produces_no_record(
    bus: EventBus, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.DEBUG, logger=MONITOR)
    asyncio.run(bus.publish(name, {"k": "v"}))
    assert monitor_records(caplog) == []


# --- connected_to and the process bus ----------------------------------------------


def test_connected_to_subscribes_only_inside_the_block(bus: EventBus) -> None:
    log: list[str] = []
    handler = Recorder(log, "h")

    async def scenario() -> None:
        with bus.connected_to(handler, ["model.promoted"]):
            assert bus.subscribers("model.promoted") == 1
            assert bus.subscribers("model.rollback") == 0
            await bus.publish("model.promoted", {})
            await bus.publish("model.rollback", {})
        await bus.publish("model.promoted", {})

    asyncio.run(scenario())
    assert log == ["h:model.promoted"]
    assert bus.subscribers("model.promoted") == 0


def test_connected_to_defaults_to_every_event(bus: EventBus) -> None:
    with bus.connected_to(Recorder([], "h")):
        assert all(bus.subscribers(name) == 1 for name in CATALOGUE)
    assert all(bus.subscribers(name) == 0 for name in CATALOGUE)


def test_connected_to_unsubscribes_when_the_block_raises(bus: EventBus) -> None:
    with pytest.raises(RuntimeError), bus.connected_to(Recorder([], "h"), ["model.promoted"]):
        raise RuntimeError("inside")
    assert bus.subscribers("model.promoted") == 0


def test_connected_to_with_an_unknown_name_leaves_nothing_subscribed(bus: EventBus) -> None:
    with (
        pytest.raises(UnknownEventError),
        bus.connected_to(Recorder([], "h"), ["model.promoted", "model.promote"]),
    ):
        pass
    assert bus.subscribers("model.promoted") == 0


def test_an_object_with_an_async_call_is_awaited(bus: EventBus) -> None:
    calls: list[str] = []

    class AsyncHandler:
        async def __call__(self, name: str, payload: Mapping[str, Any]) -> None:
            calls.append(name)

    bus.subscribe("model.promoted", AsyncHandler())
    with warnings.catch_warnings():
        # The bug shows as "coroutine was never awaited"; the assertion is the test.
        warnings.simplefilter("ignore", RuntimeWarning)
        asyncio.run(bus.publish("model.promoted", {}))
    assert calls == ["model.promoted"]


def test_get_event_bus_is_one_process_wide_bus() -> None:
    bus = get_event_bus()
    assert isinstance(bus, EventBus)
    assert get_event_bus() is bus


# --- Hostile subscribers (issue 14) ------------------------------------------------


@pytest.mark.parametrize("handler", [42, "handler", None])
def test_a_subscriber_that_is_not_callable_is_refused_at_subscribe(
    bus: EventBus, handler: Any
) -> None:
    with pytest.raises(InvalidSubscriberError) as info:
        bus.subscribe("model.promoted", handler)
    assert isinstance(info.value, P1Error)
    assert isinstance(info.value, TypeError)
    assert str(info.value) == (
        f"a subscriber of 'model.promoted' must be callable, got {type(handler).__name__}"
    )
    assert bus.subscribers("model.promoted") == 0


def test_a_subscriber_that_never_returns_is_cancelled_at_its_deadline_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus(subscriber_timeout=0.05)
    log: list[str] = []
    cancelled: list[bool] = []

    async def forever(name: str, payload: Mapping[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    bus.subscribe("model.promoted", forever)
    bus.subscribe("model.promoted", Recorder(log, "after"))

    async def scenario() -> None:
        # The guard only catches a hang: the bus must end the wait by itself.
        await asyncio.wait_for(bus.publish("model.promoted", {}), timeout=30)
        await asyncio.sleep(0)  # the cancelled subscriber's turn to clean up

    asyncio.run(scenario())
    assert log == ["after:model.promoted"]
    assert cancelled == [True]
    [record] = [r for r in caplog.records if r.name == BUS_LOGGER]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("subscriber <function ")
    assert record.getMessage().endswith(
        "failed handling event model.promoted: it did not finish within 0.05s"
        " (subscriber_timeout) and was cancelled"
    )
    assert "forever" in record.getMessage()


def test_slow_async_subscribers_run_concurrently() -> None:
    # Each waits until all have started: run one after another, the first would wait forever.
    bus = EventBus(subscriber_timeout=30)
    started: list[int] = []
    finished: list[int] = []
    everyone_in = asyncio.Event()

    def subscriber(k: int) -> Callable[[str, Mapping[str, Any]], Any]:
        async def slow(name: str, payload: Mapping[str, Any]) -> None:
            started.append(k)
            if len(started) == 3:
                everyone_in.set()
            await everyone_in.wait()
            finished.append(k)

        return slow

    for k in range(3):
        bus.subscribe("model.promoted", subscriber(k))
    # The guard only catches the hang of subscribers run one after another.
    asyncio.run(asyncio.wait_for(bus.publish("model.promoted", {}), timeout=30))
    assert started == [0, 1, 2]  # started in subscription order
    assert sorted(finished) == [0, 1, 2]  # and publish returned once all had finished


def test_async_subscribers_that_never_suspend_run_inline_in_order(bus: EventBus) -> None:
    log: list[str] = []

    async def quick(name: str, payload: Mapping[str, Any]) -> None:
        log.append("quick")

    bus.subscribe("model.promoted", quick)
    bus.subscribe("model.promoted", Recorder(log, "sync"))

    async def scenario() -> None:
        tasks = len(asyncio.all_tasks())
        await bus.publish("model.promoted", {})
        assert len(asyncio.all_tasks()) == tasks

    asyncio.run(scenario())
    assert log == ["quick", "sync:model.promoted"]


@pytest.mark.parametrize("where", ["sync", "first-step", "after-suspending"])
def test_a_subscriber_raising_cancelled_error_is_a_failure_of_its_own(
    bus: EventBus, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    log: list[str] = []

    def sync_cancel(name: str, payload: Mapping[str, Any]) -> None:
        raise asyncio.CancelledError

    async def async_cancel(name: str, payload: Mapping[str, Any]) -> None:
        if where == "after-suspending":
            await asyncio.sleep(0)
        raise asyncio.CancelledError

    bus.subscribe("model.rollback", sync_cancel if where == "sync" else async_cancel)
    bus.subscribe("model.rollback", Recorder(log, "after"))
    asyncio.run(bus.publish("model.rollback", {}))
    assert log == ["after:model.rollback"]
    [record] = [r for r in caplog.records if r.name == BUS_LOGGER]
    assert "failed handling event model.rollback" in record.getMessage()


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_stop_request_from_a_subscriber_propagates_after_the_others_got_the_event(
    bus: EventBus, stop: type[BaseException]
) -> None:
    log: list[str] = []
    cancelled: list[bool] = []

    def stopper(name: str, payload: Mapping[str, Any]) -> None:
        raise stop

    async def suspended(name: str, payload: Mapping[str, Any]) -> None:
        log.append("async")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    bus.subscribe("model.rollback", suspended)
    bus.subscribe("model.rollback", stopper)
    bus.subscribe("model.rollback", Recorder(log, "after"))

    async def scenario() -> None:
        # Awaited in this task: asyncio lets these two out of the loop when a task raises them.
        with pytest.raises(stop):
            await bus.publish("model.rollback", {})
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert log == ["async", "after:model.rollback"]
    assert cancelled == [True]


def test_a_cancelled_publish_cancels_its_running_subscribers(bus: EventBus) -> None:
    cancelled: list[bool] = []
    entered = asyncio.Event()

    async def waiting(name: str, payload: Mapping[str, Any]) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    bus.subscribe("model.promoted", waiting)

    async def scenario() -> None:
        publish = asyncio.create_task(bus.publish("model.promoted", {}))
        await entered.wait()
        publish.cancel()
        with pytest.raises(asyncio.CancelledError):
            await publish
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert cancelled == [True]


@pytest.mark.parametrize(
    "payload",
    [{"x": 10**5000}, {"x": [1, -(10**700)]}, {"x": {"y": 10**640}}],
    ids=["flat", "in-a-list", "nested"],
)
def test_an_int_too_long_for_text_is_an_invalid_payload(bus: EventBus, payload: Any) -> None:
    log: list[str] = []
    bus.subscribe("model.promoted", Recorder(log, "h"))
    with pytest.raises(InvalidPayloadError, match=r"is an int of \d+ digits; plain JSON"):
        asyncio.run(bus.publish("model.promoted", payload))
    assert log == []


def test_an_int_of_640_digits_is_delivered(bus: EventBus) -> None:
    received: list[Mapping[str, Any]] = []
    bus.subscribe("model.promoted", lambda n, p: received.append(p))
    asyncio.run(bus.publish("model.promoted", {"x": 10**640 - 1, "y": -(10**640) + 1}))
    assert len(received) == 1


def test_a_subscriber_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="subscriber_timeout must be > 0 seconds, got 0"):
        EventBus(subscriber_timeout=0)
