"""Shape differences the adapter absorbs, with no change to the backend (issue 13, items 4-5).

The target's timing (``P1Target.timing``), the JSON-lines monitor reader
(``json_record``), an ``on``/``emit`` emitter as the bus (``EmitterBus``), the
v2 engine built by the adapter's factory (``V2Rules.engine_factory``) and the
``ignore_imports`` entries are checked here one by one; the acceptance runs
against whole targets live in ``test_bugs_p1_1.py`` and ``test_bugs_p1_3.py``,
and below for ``P1-2.link-recovery``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantum_p1 import (
    Bus,
    Clock,
    EmitterBus,
    P1Target,
    TargetError,
    Timing,
    V2Rules,
    json_record,
    load_target,
)
from pytest_quantum_p1._messages import (
    SPEC_MODULE_RAISED,
    TARGET_BAD_TIMING,
    V2_IGNORE_IMPORT_SHAPE,
    V2_IGNORE_IMPORT_SIDE,
)
from pytest_quantum_p1._stateful import DEFAULT_RECONNECT_TIMEOUT, DEFAULT_SETTLE_TIMEOUT
from pytest_quantum_p1._v2 import ConstructionNotSeen, construct_traced
from reference_impl.p1_target import TARGET
from reference_impl.services.policy_store_v2 import PolicyStoreV2
from tests.plugin.broken_p1_1 import PyeeStyleEmitter
from tests.plugin.broken_targets import Checklist, read_report, run_p1
from tests.plugin.verdicts import Break, assert_breaks_exactly

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub


# --- P1Target.timing -------------------------------------------------------------------


def test_timing_defaults_are_the_machines() -> None:
    assert Timing() == Timing(DEFAULT_SETTLE_TIMEOUT, DEFAULT_RECONNECT_TIMEOUT)
    assert TARGET.timing == Timing()


@pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan, True, "5"])
@pytest.mark.parametrize("name", ["settle_timeout", "reconnect_timeout"])
def test_a_bad_timing_is_a_target_error_naming_the_field(name: str, value: object) -> None:
    with pytest.raises(TargetError) as raised:
        Timing(**{name: value})  # type: ignore[arg-type]
    assert str(raised.value) == TARGET_BAD_TIMING.format(name=name, value=value)


def test_the_machine_for_a_target_waits_as_its_timing_says_unless_told_otherwise() -> None:
    from pytest_quantum_p1._stateful import machine_for

    slow = dataclasses.replace(TARGET, timing=Timing(settle_timeout=7.0, reconnect_timeout=12.0))
    machine = machine_for(slow)
    assert (machine.settle_timeout, machine.reconnect_timeout) == (7.0, 12.0)
    told = machine_for(slow, reconnect_timeout=20.0)
    assert (told.settle_timeout, told.reconnect_timeout) == (7.0, 20.0)
    bare = machine_for(TARGET.store_factory)
    assert (bare.settle_timeout, bare.reconnect_timeout) == (
        DEFAULT_SETTLE_TIMEOUT,
        DEFAULT_RECONNECT_TIMEOUT,
    )


def test_a_target_module_with_a_bad_timing_fails_to_load_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_adapter.py").write_text(
        "import dataclasses\n"
        "from pytest_quantum_p1 import Timing\n"
        "from reference_impl.p1_target import TARGET as REFERENCE\n"
        "TARGET = dataclasses.replace(REFERENCE, timing=Timing(reconnect_timeout=-15))\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TargetError) as raised:
        load_target("slow_adapter:TARGET")
    assert str(raised.value) == SPEC_MODULE_RAISED.format(
        module="slow_adapter",
        type="TargetError",
        error=TARGET_BAD_TIMING.format(name="reconnect_timeout", value=-15),
    )


#: Real seconds the slow store below waits before subscribing again after a lost link.
RESUBSCRIBE_DELAY_S = 1.0


class _SlowToResubscribe(PolicyStoreV2):
    """The reference store with a reconnect backoff: it resubscribes 1 s after a lost link.

    Overrides the reference's private ``_subscribe`` (the one place a backoff sits).
    """

    _subscribed = False

    async def _subscribe(self) -> PubSub:
        if self._subscribed:
            await asyncio.sleep(RESUBSCRIBE_DELAY_S)
        self._subscribed = True
        return await super()._subscribe()


def _slow_store(redis: Redis, clock: Clock) -> PolicyStoreV2:
    return _SlowToResubscribe(redis, clock=clock)


def store_reconnecting_slower_than_the_target_says(root: Path) -> P1Target:
    """link-recovery: the store resubscribes after 1 s; the target declares 0.3 s."""
    return dataclasses.replace(
        TARGET, store_factory=_slow_store, timing=Timing(reconnect_timeout=0.3)
    )


def correct_store_with_a_reconnect_backoff_the_target_declares(root: Path) -> P1Target:
    """Correct: the store resubscribes after 1 s, and the target allows 3 s."""
    return dataclasses.replace(
        TARGET, store_factory=_slow_store, timing=Timing(reconnect_timeout=3.0)
    )


def test_link_recovery_waits_as_long_as_the_target_says_and_no_longer(
    pytester: pytest.Pytester,
) -> None:
    assert_breaks_exactly(
        pytester,
        Break(
            "P1-2.link-recovery",
            store_reconnecting_slower_than_the_target_says,
            (
                "after its invalidation link was cut, instance 1 did not subscribe again "
                "within 0.3 s",
            ),
            "On a lost link, flush the cache, subscribe again",
            claim="resubscribed",
        ),
    )


def test_a_store_with_a_reconnect_backoff_passes_within_the_targets_timing(
    pytester: pytest.Pytester,
) -> None:
    run_p1(
        pytester,
        "--p1-report=p1.json",
        "-k",
        "link-recovery",
        target=correct_store_with_a_reconnect_backoff_the_target_declares,
    )
    (criterion,) = read_report(pytester.path / "p1.json")["criteria"]
    assert criterion["outcome"] == "passed", criterion["message"]
    assert criterion["figures"]["reconnect_timeout_s"] == 3.0
    assert criterion["figures"]["resubscribed_ms"] >= RESUBSCRIBE_DELAY_S * 1000 * 0.9
    assert criterion["summary"].endswith("(waited up to 3 s: P1Target.timing.reconnect_timeout)")


def test_the_reference_says_how_long_link_recovery_waited(pytester: pytest.Pytester) -> None:
    result = run_p1(pytester, "-k", "link-recovery")
    line = Checklist.parse(result.outlines).lines["P1-2.link-recovery"]
    assert line.mark == "PASS"
    assert line.detail.endswith("(waited up to 5 s: P1Target.timing.reconnect_timeout)")


# --- json_record -----------------------------------------------------------------------


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("monitor", logging.INFO, __file__, 1, message, args or None, None)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"event": "a.b", "payload": {"x": 1}}', ("a.b", {"x": 1})),
        ('{"payload": {"x": 1}, "event": "a.b", "level": "info"}', ("a.b", {"x": 1})),
        ("publishing a.b", None),  # not JSON
        ("", None),
        ('["a.b", {"x": 1}]', None),  # JSON, not an object
        ('{"heartbeat": true}', None),  # no event
        ('{"event": 7, "payload": {}}', None),  # an event name that is no string
        ('{"event": "a.b"}', None),  # no payload
        ('{"event": "a.b", "payload": [1]}', None),  # a payload that is no object
    ],
    ids=[
        "event",
        "more-keys",
        "plain-text",
        "empty",
        "a-list",
        "no-event",
        "number-as-name",
        "no-payload",
        "list-payload",
    ],
)
def test_json_record_reads_events_and_nothing_else(
    message: str, expected: tuple[str, Mapping[str, Any]] | None
) -> None:
    assert json_record()(_record(message)) == expected


def test_json_record_takes_other_keys_and_the_whole_object_as_payload() -> None:
    line = json.dumps({"type": "mode", "data": {"new_mode": "defensive"}})
    assert json_record(event_key="type", payload_key="data")(_record(line)) == (
        "mode",
        {"new_mode": "defensive"},
    )
    flat = json.dumps({"event": "mode", "new_mode": "defensive", "old_mode": "normal"})
    assert json_record(payload_key=None)(_record(flat)) == (
        "mode",
        {"new_mode": "defensive", "old_mode": "normal"},
    )


def test_json_record_formats_the_message_with_its_arguments() -> None:
    assert json_record()(_record('{"event": "%s", "payload": {}}', "a.b")) == ("a.b", {})


def test_json_record_names_itself_in_messages() -> None:
    assert repr(json_record("e", "p")) == "json_record(event_key='e', payload_key='p')"


# --- EmitterBus ------------------------------------------------------------------------


def test_an_emitter_bus_is_a_bus_delivering_name_and_payload() -> None:
    emitter = PyeeStyleEmitter()
    bus = EmitterBus(emitter, catalogue=("a.b", "c.d"))
    assert isinstance(bus, Bus)
    assert list(bus.catalogue) == ["a.b", "c.d"]
    got: list[tuple[str, Mapping[str, Any]]] = []

    def handler(name: str, payload: Mapping[str, Any]) -> None:
        got.append((name, payload))

    bus.subscribe("a.b", handler)
    asyncio.run(bus.publish("a.b", {"x": 1}))
    emitter.emit("a.b", {"x": 2})  # the backend emitting directly is seen the same way
    bus.unsubscribe("a.b", handler)
    bus.unsubscribe("a.b", handler)  # twice: ignored
    emitter.emit("a.b", {"x": 3})
    assert got == [("a.b", {"x": 1}), ("a.b", {"x": 2})]
    assert emitter.listeners["a.b"] == []


def test_an_emitter_bus_takes_unhashable_handlers_and_bound_methods() -> None:
    # The harness's own announced-state subscriber is a dataclass instance:
    # unhashable. A bound method is a new object on every access.
    @dataclasses.dataclass
    class Readings:
        seen: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)

        def __call__(self, name: str, payload: Mapping[str, Any]) -> None:
            self.seen.append(payload)

        def on_event(self, name: str, payload: Mapping[str, Any]) -> None:
            self.seen.append({"method": payload})

    emitter = PyeeStyleEmitter()
    bus = EmitterBus(emitter, catalogue=("a.b",))
    first, second = Readings(), Readings()
    bus.subscribe("a.b", first)
    bus.subscribe("a.b", second)
    bus.subscribe("a.b", first.on_event)
    emitter.emit("a.b", {"x": 1})
    bus.unsubscribe("a.b", second)  # equal to `first`, but the very object goes
    bus.unsubscribe("a.b", first.on_event)
    emitter.emit("a.b", {"x": 2})
    assert first.seen == [{"x": 1}, {"method": {"x": 1}}, {"x": 2}]
    assert second.seen == [{"x": 1}]
    assert len(emitter.listeners["a.b"]) == 1


def test_an_emitter_bus_runs_an_async_subscriber_as_a_task() -> None:
    emitter = PyeeStyleEmitter()
    bus = EmitterBus(emitter, catalogue=("a.b",))
    got: list[Mapping[str, Any]] = []

    async def handler(name: str, payload: Mapping[str, Any]) -> None:
        await asyncio.sleep(0)
        got.append(payload)

    async def main() -> None:
        bus.subscribe("a.b", handler)
        await bus.publish("a.b", {"x": 1})
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert got == [{"x": 1}]


# --- V2Rules.engine_factory: where the constructing line is ------------------------------


class _Engine:
    def __init__(self, config: Mapping[str, Any]) -> None:
        warnings.warn("deprecated", DeprecationWarning, stacklevel=2)
        self.config = config


class _SubEngine(_Engine):
    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)


def _factory_doing_more() -> _Engine:
    engine = _Engine({"nodes": 2})  # constructs
    engine.config = {**engine.config, "started": True}
    return engine


def _traced(cls: type, factory: Any) -> tuple[Any, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = construct_traced(cls, factory)
    return traced, caught


def _line_of(function: Any, tag: str) -> int:
    import inspect

    lines, first = inspect.getsourcelines(function)
    (found,) = [first + n for n, text in enumerate(lines) if text.rstrip().endswith(f"# {tag}")]
    return found


def test_a_factory_lambda_is_the_constructing_line() -> None:
    factory = lambda: _Engine({})  # noqa: E731  # the adapter's usual form
    traced, (warning,) = _traced(_Engine, factory)
    assert traced.site == (__file__, factory.__code__.co_firstlineno)
    assert (warning.filename, warning.lineno) == traced.site
    ((call,),) = (traced.calls,)
    assert call.needed == 2


def test_the_factorys_constructing_line_not_its_last_one_is_the_site() -> None:
    traced, (warning,) = _traced(_Engine, _factory_doing_more)
    assert traced.site == (__file__, _line_of(_factory_doing_more, "constructs"))
    assert (warning.filename, warning.lineno) == traced.site


def test_a_subclass_built_by_a_factory_is_judged_at_the_factorys_line() -> None:
    factory = lambda: _SubEngine({})  # noqa: E731
    traced, (warning,) = _traced(_SubEngine, factory)
    assert traced.site == (__file__, factory.__code__.co_firstlineno)
    # stacklevel=2 from the base __init__ names the subclass's __init__: one frame short.
    assert (warning.filename, warning.lineno) != traced.site
    ((call,),) = (traced.calls,)
    assert call.needed == 3


def test_a_factory_that_constructs_nothing_is_told_apart() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        built = _Engine({})
    with pytest.raises(ConstructionNotSeen):
        construct_traced(_Engine, lambda: built)


def test_what_a_factory_raises_propagates() -> None:
    def factory() -> object:
        raise LookupError("no config")

    with pytest.raises(LookupError, match="no config"):
        construct_traced(_Engine, factory)


# --- V2Rules.ignore_imports: checked when the target is built ---------------------------


def _rules(*ignore_imports: str) -> V2Rules:
    return dataclasses.replace(TARGET.v2, ignore_imports=ignore_imports)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "app.admin legacy.fedv2",
            V2_IGNORE_IMPORT_SHAPE.format(expression="app.admin legacy.fedv2"),
        ),
        (
            "app.admin* -> legacy.fedv2",
            V2_IGNORE_IMPORT_SIDE.format(
                side="importer", module="app.admin*", expression="app.admin* -> legacy.fedv2"
            ),
        ),
        (
            "app.admin -> ",
            V2_IGNORE_IMPORT_SIDE.format(side="imported", module="", expression="app.admin -> "),
        ),
        (
            "app..admin -> legacy",
            V2_IGNORE_IMPORT_SIDE.format(
                side="importer", module="app..admin", expression="app..admin -> legacy"
            ),
        ),
        (
            "app.admin -> legacy.***",
            V2_IGNORE_IMPORT_SIDE.format(
                side="imported", module="legacy.***", expression="app.admin -> legacy.***"
            ),
        ),
    ],
    ids=["no-arrow", "mixed-wildcard", "empty-side", "empty-part", "triple-star"],
)
def test_a_malformed_ignore_imports_entry_is_a_target_error(expression: str, message: str) -> None:
    with pytest.raises(TargetError) as raised:
        _rules(expression)
    assert str(raised.value) == message


def test_well_formed_ignore_imports_entries_are_accepted() -> None:
    rules = _rules("app.admin -> legacy.fedv2", "app.*.tools -> legacy.**", "**.cli -> x")
    assert len(rules.ignore_imports) == 3
