"""``p1_events`` / ``EventRecorder`` and the ``publishes`` marker: every check passes and fails."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_quantum_p1 import ANY, EventRecorder, RecordedEvent, UnknownEventName, _messages
from reference_impl.core.event_bus import EventBus, EventSpec

NAMES = ("order.placed", "order.cancelled", "order.shipped", "mode.changed")

# A target over a fresh bus of its own, for the pytester runs: nothing but the
# bus is used by these tests.
TINY_TARGET = f"""
import asyncio
import threading

from pytest_quantum_p1 import P1Target, V2Rules
from reference_impl.core.event_bus import EventBus, EventSpec

BUS = EventBus({{name: EventSpec(name, name) for name in {NAMES!r}}})


def publish(name, **payload):
    asyncio.run(BUS.publish(name, payload))


def publish_from_thread(name, **payload):
    thread = threading.Thread(target=publish, args=(name,), kwargs=payload)
    thread.start()
    return thread


def _no_store(redis, clock):
    raise NotImplementedError("the tiny target has no policy store")


TARGET = P1Target(
    name="tiny",
    bus=lambda: BUS,
    required_events=(),
    monitor_logger="tiny.events",
    store_factory=_no_store,
    policy_ttl=10.0,
    v2=V2Rules((), (), (), (), (), (), "tiny:Nothing"),
)
"""


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose runs use the tiny target."""
    pytester.makepyfile(tiny_target=TINY_TARGET)
    pytester.syspathinsert()
    pytester.makeini("[pytest]\np1_target = tiny_target:TARGET\n")
    return pytester


def _e(text: str) -> str:
    """A message line as pytest prints it under ``E``, as an fnmatch pattern."""
    return "E   *" + text.replace("[", "[[]")


def _tail(*lines: str) -> list[str]:
    return [_e(line) for line in lines]


# -- unit level: the recorder on a bus of its own ------------------------------------


@pytest.fixture
def bus() -> EventBus:
    return EventBus({name: EventSpec(name, name) for name in NAMES})


@pytest.fixture
def events(bus: EventBus) -> Iterator[EventRecorder]:
    with EventRecorder(bus) as recorder:
        yield recorder


def publish(bus: EventBus, name: str, /, **payload: Any) -> None:
    asyncio.run(bus.publish(name, payload))


def test_records_name_payload_index_and_time(bus: EventBus, events: EventRecorder) -> None:
    publish(bus, "order.placed", id=1)
    publish(bus, "order.shipped", id=1, carrier="ups")
    first, second = events.events
    assert (first.name, dict(first.payload), first.index) == ("order.placed", {"id": 1}, 0)
    assert (second.name, second.index) == ("order.shipped", 1)
    assert 0 <= first.time <= second.time
    assert events.names == ["order.placed", "order.shipped"]
    assert len(events) == 2


def test_payload_is_a_copy_taken_at_publish_time(bus: EventBus, events: EventRecorder) -> None:
    payload: dict[str, Any] = {"id": 1}
    asyncio.run(bus.publish("order.placed", payload))
    payload["id"] = 2
    events.assert_published("order.placed", id=1)


def test_clear_forgets_and_restarts_indices(bus: EventBus, events: EventRecorder) -> None:
    publish(bus, "order.placed", id=1)
    events.clear()
    assert events.events == []
    publish(bus, "order.cancelled", id=1)
    assert events.assert_published("order.cancelled").index == 0


def test_stop_unsubscribes_and_keeps_what_was_recorded(bus: EventBus) -> None:
    recorder = EventRecorder(bus)
    with recorder:
        assert all(bus.subscribers(name) == 1 for name in NAMES)
        publish(bus, "order.placed", id=1)
    assert all(bus.subscribers(name) == 0 for name in NAMES)
    publish(bus, "order.placed", id=2)
    assert [dict(e.payload) for e in recorder.events] == [{"id": 1}]


def test_assert_published_subset_match_and_any(bus: EventBus, events: EventRecorder) -> None:
    publish(bus, "mode.changed", old_mode="normal", new_mode="defensive", timestamp="t")
    event = events.assert_published("mode.changed", new_mode="defensive", timestamp=ANY)
    assert isinstance(event, RecordedEvent)
    assert event.payload["old_mode"] == "normal"
    events.assert_published("mode.changed")


def test_a_payload_field_may_be_called_name(bus: EventBus, events: EventRecorder) -> None:
    publish(bus, "order.placed", name="widget")
    events.assert_published("order.placed", name="widget")
    events.assert_not_published("order.placed", name="gadget")


def test_assert_published_failure_lists_the_closest_match_first_with_its_differences(
    bus: EventBus, events: EventRecorder
) -> None:
    publish(bus, "order.placed", id=1)
    publish(bus, "mode.changed", old_mode="normal", new_mode="normal")
    publish(bus, "order.shipped", id=1)
    with pytest.raises(AssertionError) as info:
        events.assert_published("mode.changed", new_mode="defensive", reason=ANY)
    assert str(info.value).splitlines() == [
        _messages.NOT_PUBLISHED.format(
            what="'mode.changed' with fields {'new_mode': 'defensive', 'reason': <ANY>}"
        ),
        _messages.PUBLISHED_HEADING.format(count=3),
        "  - #1 mode.changed {'old_mode': 'normal', 'new_mode': 'normal'}",
        "      new_mode: expected 'defensive', got 'normal'",
        "      reason: missing from the payload",
        # Then the other names, most similar first.
        "  - #0 order.placed {'id': 1}",
        "  - #2 order.shipped {'id': 1}",
        _messages.NOT_PUBLISHED_TUNE,
        _messages.EVENTS_READ_MORE,
    ]


def test_assert_published_failure_when_nothing_was_published(events: EventRecorder) -> None:
    with pytest.raises(AssertionError) as info:
        events.assert_published("order.placed")
    assert str(info.value).splitlines()[:2] == [
        _messages.NOT_PUBLISHED.format(what="'order.placed'"),
        _messages.PUBLISHED_NONE,
    ]


def test_a_long_recording_is_summarised(bus: EventBus, events: EventRecorder) -> None:
    for number in range(20):
        publish(bus, "order.placed", id=number)
    with pytest.raises(AssertionError, match=re.escape(_messages.PUBLISHED_MORE.format(count=5))):
        events.assert_published("order.placed", id=99)


def test_assert_not_published(bus: EventBus, events: EventRecorder) -> None:
    publish(bus, "order.placed", id=1)
    events.assert_not_published("order.cancelled")
    events.assert_not_published("order.placed", id=2)
    with pytest.raises(AssertionError) as info:
        events.assert_not_published("order.placed", id=ANY)
    assert str(info.value).splitlines() == [
        _messages.PUBLISHED_BUT_FORBIDDEN.format(what="'order.placed' with fields {'id': <ANY>}"),
        _messages.PUBLISHED_MATCHING.format(count=1),
        "  - #0 order.placed {'id': 1}",
        _messages.PUBLISHED_BUT_FORBIDDEN_TUNE,
        _messages.EVENTS_READ_MORE,
    ]


def _publish_sequence(bus: EventBus, *names: str) -> None:
    for name in names:
        publish(bus, name)


def test_assert_order_subsequence_and_exact(bus: EventBus, events: EventRecorder) -> None:
    _publish_sequence(bus, "order.placed", "mode.changed", "order.shipped")
    events.assert_order("order.placed", "order.shipped")
    events.assert_order("order.placed", "mode.changed", "order.shipped", exact=True)


@pytest.mark.parametrize(
    ("expected", "exact", "headline"),
    [
        (
            ("order.cancelled", "order.placed"),
            False,
            _messages.ORDER_NOT_SUBSEQUENCE_FIRST.format(
                order="'order.cancelled' -> 'order.placed'", missing="order.cancelled"
            ),
        ),
        (
            ("order.shipped", "order.placed"),
            False,
            _messages.ORDER_NOT_SUBSEQUENCE.format(
                order="'order.shipped' -> 'order.placed'",
                found="order.shipped",
                index=2,
                missing="order.placed",
            ),
        ),
        (
            ("order.placed", "order.shipped"),
            True,
            _messages.ORDER_EXACT_MISMATCH.format(
                order="'order.placed' -> 'order.shipped'",
                index=1,
                expected="order.shipped",
                actual="mode.changed",
            ),
        ),
        (
            ("order.placed", "mode.changed"),
            True,
            _messages.ORDER_EXACT_LENGTH.format(
                order="'order.placed' -> 'mode.changed'", expected=2, actual=3
            ),
        ),
    ],
    ids=["first-missing", "later-missing", "exact-mismatch", "exact-length"],
)
def test_assert_order_failures(
    bus: EventBus,
    events: EventRecorder,
    expected: tuple[str, ...],
    exact: bool,
    headline: str,
) -> None:
    _publish_sequence(bus, "order.placed", "mode.changed", "order.shipped")
    with pytest.raises(AssertionError) as info:
        events.assert_order(*expected, exact=exact)
    assert str(info.value).splitlines() == [
        headline,
        _messages.PUBLISHED_IN_ORDER.format(count=3),
        "  - #0 order.placed {}",
        "  - #1 mode.changed {}",
        "  - #2 order.shipped {}",
        _messages.ORDER_TUNE,
        _messages.EVENTS_READ_MORE,
    ]


def test_assert_order_needs_names(events: EventRecorder) -> None:
    with pytest.raises(ValueError, match="at least one event name"):
        events.assert_order()


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.assert_published("mode.chnged"),
        lambda r: r.assert_not_published("mode.chnged"),
        lambda r: r.assert_order("order.placed", "mode.chnged"),
        lambda r: r.wait_for("mode.chnged", timeout=0),
        lambda r: asyncio.run(r.wait_for_async("mode.chnged", timeout=0)),
        lambda r: r.find("mode.chnged"),
    ],
    ids=["assert_published", "assert_not_published", "assert_order", "wait_for", "async", "find"],
)
def test_unknown_names_fail_at_once_naming_the_closest(
    events: EventRecorder, call: Callable[[EventRecorder], object]
) -> None:
    with pytest.raises(UnknownEventName) as info:
        call(events)
    assert info.value.suggestions == ["mode.changed"]
    assert str(info.value).splitlines() == [
        _messages.UNKNOWN_EVENT.format(name="mode.chnged")
        + _messages.UNKNOWN_EVENT_SUGGEST.format(suggestions="'mode.changed'"),
        _messages.UNKNOWN_EVENT_CATALOGUE.format(count=4, names=", ".join(sorted(NAMES))).strip(),
    ]


def test_an_unknown_name_far_from_everything_lists_the_catalogue(events: EventRecorder) -> None:
    with pytest.raises(UnknownEventName) as info:
        events.assert_published("zzz")
    assert info.value.suggestions == []
    assert "did you mean" not in str(info.value)
    assert "The catalogue has 4 events: mode.changed, order.cancelled" in str(info.value)


def test_events_from_many_threads_are_all_recorded(bus: EventBus, events: EventRecorder) -> None:
    threads, per_thread = 8, 50

    def worker(number: int) -> None:
        async def burst() -> None:
            for item in range(per_thread):
                await bus.publish("order.placed", {"thread": number, "item": item})

        asyncio.run(burst())

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    recorded = events.events
    assert len(recorded) == threads * per_thread
    assert [event.index for event in recorded] == list(range(threads * per_thread))
    for number in range(threads):
        items = [e.payload["item"] for e in recorded if e.payload["thread"] == number]
        assert items == list(range(per_thread))


# -- waiting, sync and async (one test body, parametrized over a driver) ------------


def _wait_sync(recorder: EventRecorder, name: str, timeout: float, **fields: Any) -> RecordedEvent:
    return recorder.wait_for(name, timeout=timeout, **fields)


def _wait_async(recorder: EventRecorder, name: str, timeout: float, **fields: Any) -> RecordedEvent:
    return asyncio.run(recorder.wait_for_async(name, timeout=timeout, **fields))


WaitDriver = Callable[..., RecordedEvent]
drivers = pytest.mark.parametrize("wait", [_wait_sync, _wait_async], ids=["sync", "async"])


@drivers
def test_wait_for_an_event_published_on_another_thread(
    bus: EventBus, events: EventRecorder, wait: WaitDriver
) -> None:
    thread = threading.Thread(target=publish, args=(bus, "order.shipped"), kwargs={"id": 7})
    thread.start()
    try:
        event = wait(events, "order.shipped", 5.0, id=7)
    finally:
        thread.join()
    assert event.payload == {"id": 7}


@drivers
def test_wait_for_returns_an_event_recorded_before_the_call(
    bus: EventBus, events: EventRecorder, wait: WaitDriver
) -> None:
    publish(bus, "order.placed", id=1)
    assert wait(events, "order.placed", 0.0, id=1).index == 0


@drivers
def test_wait_for_times_out_with_what_was_published(
    bus: EventBus, events: EventRecorder, wait: WaitDriver
) -> None:
    publish(bus, "order.placed", id=1)
    with pytest.raises(AssertionError) as info:
        wait(events, "order.placed", 0.05, id=2)
    assert str(info.value).splitlines()[:4] == [
        _messages.NOT_PUBLISHED_IN_TIME.format(
            what="'order.placed' with fields {'id': 2}", timeout="0.05s"
        ),
        _messages.PUBLISHED_HEADING.format(count=1),
        "  - #0 order.placed {'id': 1}",
        "      id: expected 2, got 1",
    ]


def test_wait_for_async_sees_a_publisher_on_the_same_loop(
    bus: EventBus, events: EventRecorder
) -> None:
    async def scenario() -> RecordedEvent:
        waiting = asyncio.create_task(events.wait_for_async("order.cancelled", timeout=5.0))
        await asyncio.sleep(0)  # let the waiter register before the publish
        await bus.publish("order.cancelled", {"id": 3})
        return await waiting

    assert asyncio.run(scenario()).payload == {"id": 3}


def test_wait_for_async_ignores_non_matching_events(bus: EventBus, events: EventRecorder) -> None:
    async def scenario() -> RecordedEvent:
        waiting = asyncio.create_task(events.wait_for_async("order.placed", timeout=5.0, id=2))
        await asyncio.sleep(0)
        await bus.publish("order.placed", {"id": 1})
        await bus.publish("order.placed", {"id": 2})
        return await waiting

    assert asyncio.run(scenario()).index == 1


# -- through pytest: the fixture, its messages, Hypothesis, the marker --------------


def test_fixture_passing_and_failing_as_users_see_it(tiny: pytest.Pytester) -> None:
    tiny.makepyfile(
        """
        from pytest_quantum_p1 import ANY
        from tiny_target import publish

        def test_passes(p1_events):
            publish("mode.changed", old_mode="normal", new_mode="defensive")
            event = p1_events.assert_published("mode.changed", new_mode="defensive", old_mode=ANY)
            assert event.index == 0

        def test_fails(p1_events):
            publish("order.placed", id=1)
            publish("mode.changed", old_mode="normal", new_mode="normal")
            p1_events.assert_published("mode.changed", new_mode="defensive")

        def test_recording_is_per_test(p1_events):
            assert p1_events.events == []
        """
    )
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       p1_events.assert_published("mode.changed", new_mode="defensive")',
            *_tail(
                _messages.NOT_PUBLISHED.format(
                    what="'mode.changed' with fields {'new_mode': 'defensive'}"
                ),
                _messages.PUBLISHED_HEADING.format(count=2),
                "  - #1 mode.changed {'old_mode': 'normal', 'new_mode': 'normal'}",
                "      new_mode: expected 'defensive', got 'normal'",
                "  - #0 order.placed {'id': 1}",
                _messages.NOT_PUBLISHED_TUNE,
                _messages.EVENTS_READ_MORE,
            ),
        ]
    )
    # The helper's own frames are hidden: the user sees their line, not ours.
    assert "_events.py" not in result.stdout.str()


def test_fixture_records_events_published_from_another_thread(tiny: pytest.Pytester) -> None:
    tiny.makepyfile(
        """
        from tiny_target import publish_from_thread

        def test_thread(p1_events):
            thread = publish_from_thread("order.shipped", id=5)
            try:
                assert p1_events.wait_for("order.shipped", timeout=5, id=5).payload == {"id": 5}
            finally:
                thread.join()
        """
    )
    tiny.runpytest("-p", "quantum_p1").assert_outcomes(passed=1)


def test_capture_gives_each_hypothesis_example_its_own_recording(tiny: pytest.Pytester) -> None:
    tiny.makepyfile(
        """
        from hypothesis import HealthCheck, given, settings, strategies as st
        from tiny_target import publish

        @settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.integers())
        def test_examples(p1_events, number):
            with p1_events.capture() as events:
                publish("order.placed", id=number)
                assert [e.payload for e in events.events] == [{"id": number}]
                events.assert_published("order.placed", id=number)
            # The fixture's recorder is not reset between examples: it has them all.
            assert len(p1_events.events) >= 1

        @settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.integers())
        def test_broken(p1_events, number):
            with p1_events.capture() as events:
                publish("order.placed", id=number)
                events.assert_published("order.placed", id=number + 1)
        """
    )
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [_e(_messages.NOT_PUBLISHED.format(what="'order.placed' with fields {'id': 1}"))]
    )


def test_publishes_marker_passes_and_fails(tiny: pytest.Pytester) -> None:
    tiny.makepyfile(
        """
        import pytest
        from tiny_target import publish

        @pytest.mark.publishes("order.placed", id=1)
        @pytest.mark.publishes("order.shipped")
        def test_keeps_its_promise():
            publish("order.placed", id=1)
            publish("order.shipped", id=1)

        @pytest.mark.publishes("order.placed", id=1)
        @pytest.mark.publishes("order.cancelled", reason="fraud")
        def test_breaks_it():
            publish("order.placed", id=1)
            publish("order.cancelled", reason="customer")

        @pytest.mark.publishes("order.placed")
        def test_fails_on_its_own():
            assert 1 == 2, "the test's own failure"
        """
    )
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_breaks_it _*",
            _messages.MARKER_PUBLISHES_PREFIX
            + _messages.NOT_PUBLISHED.format(
                what="'order.cancelled' with fields {'reason': 'fraud'}"
            ),
            _messages.PUBLISHED_HEADING.format(count=2),
            "  - #1 order.cancelled {'reason': 'customer'}",
            "      reason: expected 'fraud', got 'customer'",
            "  - #0 order.placed {'id': 1}",
            _messages.NOT_PUBLISHED_TUNE,
            _messages.EVENTS_READ_MORE,
        ]
    )
    result.stdout.fnmatch_lines(["*AssertionError: the test's own failure*"])
    # Only the test that passed on its own gets the marker's verdict. Counted in
    # the FAILURES section: under CI=true pytest does not truncate the short
    # summary, which repeats each message.
    failures = result.stdout.str().split("short test summary info")[0]
    assert failures.count(_messages.MARKER_PUBLISHES_PREFIX) == 1


@pytest.mark.parametrize(
    ("marker", "shown"),
    [("publishes()", ""), ("publishes(42)", "42"), ("publishes('a', 'b')", "'a', 'b'")],
    ids=["no-name", "not-a-str", "two-names"],
)
def test_publishes_marker_misuse_is_a_clear_error(
    tiny: pytest.Pytester, marker: str, shown: str
) -> None:
    tiny.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_misused():
            pass
        """
    )
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            _messages.MARKER_PUBLISHES_MISUSE.format(
                nodeid="test_publishes_marker_misuse_is_a_clear_error.py::test_misused",
                args=shown,
            ).replace("[", "[[]")
        ]
    )


def test_publishes_marker_with_an_unknown_name_fails_before_the_test_runs(
    tiny: pytest.Pytester,
) -> None:
    tiny.makepyfile(
        """
        import pytest

        @pytest.mark.publishes("order.shiped")
        def test_typo():
            raise RuntimeError("must not run")
        """
    )
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            _messages.MARKER_PUBLISHES_PREFIX
            + _messages.UNKNOWN_EVENT.format(name="order.shiped")
            + _messages.UNKNOWN_EVENT_SUGGEST.format(suggestions="'order.shipped'")
        ]
    )
    assert "must not run" not in result.stdout.str()
