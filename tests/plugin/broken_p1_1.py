"""P1-1 targets for issue 12: the reference broken in one way each, and correct ones shaped otherwise.

The broken builders plant one bug each in the reference target: monitoring
records below the level production monitoring sees, a bus that lets a raising
subscriber cost others the event, an event announced before the state changed,
timestamps in local time. The correct builders change the *shape* of a part
without breaking a promise (monitoring at WARNING or as JSON lines, a bus that
delivers in tasks or concurrently, timestamps written with ``Z``, no state
hooks), so the tests prove the checks do not reject designs they should accept.

The buses subclass the reference :class:`EventBus` (the reference services
accept no other) and keep their own subscriber lists, so each can deliver and
log its own way (none calls the reference's ``publish``); catalogue and payload
rules stay the reference's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pytest_quantum_p1 import Bus, EmitterBus, P1Target, RequiredEvent, json_record
from reference_impl.core.event_bus import CATALOGUE, EventBus, EventSpec, Handler, check_payload
from reference_impl.errors import UnknownEventError
from reference_impl.p1_target import TARGET
from tests.plugin.broken_targets import _with_action

__all__ = [
    "EMITTER_LOGGER",
    "JSON_LOGGER",
    "PyeeStyleEmitter",
    "bus_delivering_concurrently",
    "bus_delivering_in_tasks",
    "bus_logging_after_its_subscribers",
    "bus_logging_events_at_debug",
    "bus_monitoring_at_warning",
    "bus_monitoring_in_json_lines",
    "bus_monitoring_in_json_lines_read_by_json_record",
    "bus_stopping_at_a_raising_subscriber",
    "correct_pyee_style_emitter_through_emitter_bus",
    "emitter_bus_missing_an_event_in_its_list",
    "json_monitor_logging_one_event_as_plain_text",
    "level_change_stamped_in_local_time_as_utc",
    "mode_announced_before_it_changes",
    "mode_change_expecting_nothing",
    "mode_change_publishing_nothing",
    "mode_change_with_an_undeclared_timestamp_missing",
    "mode_change_with_z_timestamps",
    "mode_state_hook_that_raises",
    "monitor_reader_that_raises",
    "node_status_stamped_with_the_local_offset",
    "target_expecting_warning_from_an_info_monitor",
    "target_without_required_events",
    "target_without_state_hooks",
]

#: The logger the JSON-lines monitor writes to.
JSON_LOGGER: Final = "jsonl.events"
_MONITOR: Final = logging.getLogger("reference_impl.events")
_log = logging.getLogger(__name__)


class _ListBus(EventBus):
    """The reference bus's catalogue and payload rules, with its own subscriber lists."""

    def __init__(self, catalogue: Mapping[str, EventSpec] = CATALOGUE) -> None:
        super().__init__(catalogue)
        self.handlers: dict[str, list[Handler]] = {name: [] for name in catalogue}

    def _known(self, name: str) -> list[Handler]:
        if name not in self.handlers:
            raise UnknownEventError(str(name), self.catalogue)
        return self.handlers[name]

    def subscribe(self, name: str, handler: Handler) -> None:
        self._known(name).append(handler)

    def unsubscribe(self, name: str, handler: Handler) -> None:
        handlers = self._known(name)
        if handler in handlers:
            handlers.remove(handler)

    def subscribers(self, name: str) -> int:
        return len(self._known(name))

    def checked(self, name: str, payload: Mapping[str, Any]) -> tuple[list[Handler], Any]:
        return list(self._known(name)), check_payload(name, payload)

    def monitored(self, name: str) -> bool:
        return self.catalogue[name].monitored

    def monitor(self, name: str, payload: Mapping[str, Any], level: int = logging.INFO) -> None:
        """Log a monitored event the reference's way (its ``publish`` is never called here)."""
        if self.monitored(name):
            _MONITOR.log(level, "event %s", name, extra={"event": name, "payload": payload})


async def _call(handler: Handler, name: str, payload: Mapping[str, Any]) -> None:
    result = handler(name, payload)
    if inspect.isawaitable(result):
        await result


# --- monitoring below the production level -------------------------------------------


class _MonitoringAtLevel(_ListBus):
    """Logs each monitored event at ``level``, then delivers it like the reference."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        handlers, payload = self.checked(name, payload)
        self.monitor(name, payload, self.level)
        for handler in handlers:
            try:
                await _call(handler, name, payload)
            except Exception:
                _log.exception("subscriber %r failed handling %s", handler, name)


def bus_logging_events_at_debug(root: Path) -> P1Target:
    """P1-1.logged: the monitoring records are emitted at DEBUG, below what production sees."""
    bus = _MonitoringAtLevel(logging.DEBUG)
    return dataclasses.replace(TARGET, bus=lambda: bus)


def target_expecting_warning_from_an_info_monitor(root: Path) -> P1Target:
    """P1-1.logged: production monitoring keeps WARNING and up; the reference logs at INFO."""
    return dataclasses.replace(TARGET, monitor_level=logging.WARNING)


def bus_monitoring_at_warning(root: Path) -> P1Target:
    """Correct: monitoring records at WARNING, above the production level INFO."""
    bus = _MonitoringAtLevel(logging.WARNING)
    return dataclasses.replace(TARGET, bus=lambda: bus)


class _JsonLinesMonitor(_ListBus):
    """Monitoring as one JSON line per event, no structured ``extra`` on the record."""

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        handlers, payload = self.checked(name, payload)
        if self.monitored(name):
            logging.getLogger(JSON_LOGGER).info(json.dumps({"event": name, "payload": payload}))
        for handler in handlers:
            try:
                await _call(handler, name, payload)
            except Exception:
                _log.exception("subscriber %r failed handling %s", handler, name)


def _read_json_line(record: logging.LogRecord) -> tuple[str, Mapping[str, Any]] | None:
    line = json.loads(record.getMessage())
    return (line["event"], line["payload"]) if "event" in line else None


def bus_monitoring_in_json_lines(root: Path) -> P1Target:
    """Correct: a monitor writing JSON lines, read through ``P1Target.monitor_record``."""
    bus = _JsonLinesMonitor()
    return dataclasses.replace(
        TARGET, bus=lambda: bus, monitor_logger=JSON_LOGGER, monitor_record=_read_json_line
    )


def _raise_reading(record: logging.LogRecord) -> tuple[str, Mapping[str, Any]] | None:
    raise KeyError("event")


def monitor_reader_that_raises(root: Path) -> P1Target:
    """Error of P1-1.logged (and P1-1.failing-subscriber): the adapter's record reader raises."""
    return dataclasses.replace(TARGET, monitor_record=_raise_reading)


class _JsonLinesWithChatter(_JsonLinesMonitor):
    """JSON lines for events, between plain-text lines and JSON lines that are no events."""

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        monitor = logging.getLogger(JSON_LOGGER)
        monitor.info("publishing %s", name)  # not JSON
        monitor.info(json.dumps(["a", "list"]))  # JSON, not an object
        monitor.info(json.dumps({"heartbeat": True}))  # an object, not an event
        await super().publish(name, payload)


def bus_monitoring_in_json_lines_read_by_json_record(root: Path) -> P1Target:
    """Correct: JSON-lines monitoring among other lines, read by the shipped ``json_record()``."""
    bus = _JsonLinesWithChatter()
    return dataclasses.replace(
        TARGET, bus=lambda: bus, monitor_logger=JSON_LOGGER, monitor_record=json_record()
    )


class _JsonLinesButOnePlain(_ListBus):
    """JSON lines for every event but the shadow test, logged as plain text."""

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        handlers, payload = self.checked(name, payload)
        if self.monitored(name):
            monitor = logging.getLogger(JSON_LOGGER)
            if name == "model.shadow_test.completed":
                monitor.info("%s %s", name, dict(payload))
            else:
                monitor.info(json.dumps({"event": name, "payload": payload}))
        for handler in handlers:
            try:
                await _call(handler, name, payload)
            except Exception:
                _log.exception("subscriber %r failed handling %s", handler, name)


def json_monitor_logging_one_event_as_plain_text(root: Path) -> P1Target:
    """P1-1.logged: the JSON-lines monitor writes the shadow test as plain text."""
    bus = _JsonLinesButOnePlain()
    return dataclasses.replace(
        TARGET, bus=lambda: bus, monitor_logger=JSON_LOGGER, monitor_record=json_record()
    )


# --- a pyee-style emitter and a synchronous service layer -----------------------------

#: The logger the emitter backend's monitoring writes JSON lines to.
EMITTER_LOGGER: Final = "emitter.monitoring"


class PyeeStyleEmitter:
    """``on``/``emit`` in pyee's manner: listeners get the payload only; no catalogue.

    Every emit is logged as one JSON line before the listeners run; a raising
    listener is logged and skipped.
    """

    def __init__(self) -> None:
        self.listeners: dict[str, list[Callable[..., Any]]] = {}

    def on(self, event: str, f: Callable[..., Any]) -> Callable[..., Any]:
        self.listeners.setdefault(event, []).append(f)
        return f

    def remove_listener(self, event: str, f: Callable[..., Any]) -> None:
        self.listeners[event].remove(f)

    def emit(self, event: str, *args: Any) -> bool:
        logging.getLogger(EMITTER_LOGGER).info(json.dumps({"event": event, "payload": args[0]}))
        for f in list(self.listeners.get(event, ())):
            try:
                f(*args)
            except Exception:
                _log.exception("listener %r failed handling %s", f, event)
        return bool(self.listeners.get(event))


_EMITTER: Final = PyeeStyleEmitter()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _SyncServices:
    """A synchronous service layer emitting on the process's emitter."""

    def __init__(self, emitter: PyeeStyleEmitter) -> None:
        self.emitter = emitter
        self.mode = "normal"

    def set_mode(self, mode: str) -> None:
        old, self.mode = self.mode, mode
        self.emitter.emit(
            "ai.hfos.mode_changed", {"old_mode": old, "new_mode": mode, "timestamp": _now()}
        )

    def set_level(self, old: int, new: int) -> None:
        payload = {"old_level": old, "new_level": new, "reason": "drill", "timestamp": _now()}
        self.emitter.emit("safety.governor.level_changed", payload)

    def complete_shadow_test(self, model_id: str) -> None:
        payload = {
            "model_id": model_id,
            "verdict": "pass",
            "metrics": {"sharpe": 1.2},
            "samples": 500,
            "timestamp": _now(),
        }
        self.emitter.emit("model.shadow_test.completed", payload)

    def set_node_status(self, node: str, status: str) -> None:
        payload = {"node_id": node, "old_status": "unknown", "new_status": status}
        self.emitter.emit("federation.node.status_changed", {**payload, "timestamp": _now()})


async def _sync_mode(bus: Bus) -> Mapping[str, Any]:
    _SyncServices(_EMITTER).set_mode("defensive")
    return {"old_mode": "normal", "new_mode": "defensive"}


async def _sync_level(bus: Bus) -> Mapping[str, Any]:
    _SyncServices(_EMITTER).set_level(1, 3)
    return {"old_level": 1, "new_level": 3}


async def _sync_shadow_test(bus: Bus) -> Mapping[str, Any]:
    _SyncServices(_EMITTER).complete_shadow_test("m-7")
    return {"model_id": "m-7", "verdict": "pass"}


async def _sync_node_status(bus: Bus) -> Mapping[str, Any]:
    _SyncServices(_EMITTER).set_node_status("v2-node-9", "online")
    return {"node_id": "v2-node-9", "new_status": "online"}


_SYNC_ACTIONS: Final = {
    "ai.hfos.mode_changed": _sync_mode,
    "safety.governor.level_changed": _sync_level,
    "model.shadow_test.completed": _sync_shadow_test,
    "federation.node.status_changed": _sync_node_status,
}


def correct_pyee_style_emitter_through_emitter_bus(root: Path) -> P1Target:
    """Correct: an ``on``/``emit`` emitter with no catalogue, sync services, JSON-line monitoring."""
    events = tuple(
        dataclasses.replace(event, action=_SYNC_ACTIONS[event.name], announced_state=None)
        for event in TARGET.required_events
    )
    return dataclasses.replace(
        TARGET,
        bus=lambda: EmitterBus(_EMITTER, catalogue=_SYNC_ACTIONS),
        required_events=events,
        monitor_logger=EMITTER_LOGGER,
        monitor_record=json_record(),
    )


def emitter_bus_missing_an_event_in_its_list(root: Path) -> P1Target:
    """P1-1.catalogue: the adapter's list for a catalogue-less emitter lacks the shadow test."""
    target = correct_pyee_style_emitter_through_emitter_bus(root)
    listed = [name for name in _SYNC_ACTIONS if name != "model.shadow_test.completed"]
    return dataclasses.replace(target, bus=lambda: EmitterBus(_EMITTER, catalogue=listed))


# --- a raising subscriber -------------------------------------------------------------


class _StoppingAtARaise(_ListBus):
    """Logs, then delivers in one try block: the first raising subscriber ends the delivery."""

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        handlers, payload = self.checked(name, payload)
        self.monitor(name, payload)
        try:
            for handler in handlers:
                await _call(handler, name, payload)
        except Exception:
            _log.exception("delivery of %s failed", name)


def bus_stopping_at_a_raising_subscriber(root: Path) -> P1Target:
    """P1-1.failing-subscriber: subscribers after a raising one never receive the event."""
    bus = _StoppingAtARaise()
    return dataclasses.replace(TARGET, bus=lambda: bus)


class _LoggingAfterDelivery(_ListBus):
    """Delivers without isolating subscribers, then logs: a raise skips the log and escapes."""

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        handlers, payload = self.checked(name, payload)
        for handler in handlers:
            await _call(handler, name, payload)
        self.monitor(name, payload)


def bus_logging_after_its_subscribers(root: Path) -> P1Target:
    """P1-1.failing-subscriber: a raising subscriber costs the monitoring record and the action."""
    bus = _LoggingAfterDelivery()
    return dataclasses.replace(TARGET, bus=lambda: bus)


class _DeliveringInTasks(_ListBus):
    """Logs, then delivers to each subscriber in a task of its own: a raise stays in its task."""

    def __init__(self) -> None:
        super().__init__()
        self.running: set[asyncio.Task[None]] = set()

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        handlers, payload = self.checked(name, payload)
        self.monitor(name, payload)
        for handler in handlers:
            task = asyncio.get_running_loop().create_task(self.deliver(handler, name, payload))
            self.running.add(task)  # a strong reference until it is done
            task.add_done_callback(self.running.discard)

    @staticmethod
    async def deliver(handler: Handler, name: str, payload: Mapping[str, Any]) -> None:
        try:
            await _call(handler, name, payload)
        except Exception:
            _log.exception("subscriber %r failed handling %s", handler, name)


def bus_delivering_in_tasks(root: Path) -> P1Target:
    """Correct: each delivery runs in its own task, after ``publish`` has returned."""
    bus = _DeliveringInTasks()
    return dataclasses.replace(TARGET, bus=lambda: bus)


class _DeliveringConcurrently(_ListBus):
    """Delivers to every subscriber at once with ``gather``, collecting exceptions."""

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        handlers, payload = self.checked(name, payload)
        results = await asyncio.gather(
            *(_call(handler, name, payload) for handler in handlers), return_exceptions=True
        )
        for handler, result in zip(handlers, results, strict=True):
            if isinstance(result, Exception):
                _log.error("subscriber %r failed handling %s: %s", handler, name, result)
        self.monitor(name, payload)  # after delivery: no subscriber can prevent it


def bus_delivering_concurrently(root: Path) -> P1Target:
    """Correct: subscribers run concurrently; monitoring logs after them, whatever they did."""
    bus = _DeliveringConcurrently()
    return dataclasses.replace(TARGET, bus=lambda: bus)


# --- an event announced before its state changed --------------------------------------


class _ManagerAnnouncingEarly:
    """The reference manager's ``set_mode`` with the two lines swapped: publish, then change."""

    def __init__(self, bus: Bus, mode: str) -> None:
        self.bus = bus
        self.current_mode = mode

    async def set_mode(self, mode: str) -> None:
        old_mode = self.current_mode
        await self.bus.publish(
            "ai.hfos.mode_changed",
            {"old_mode": old_mode, "new_mode": mode, "timestamp": datetime.now(UTC).isoformat()},
        )
        self.current_mode = mode


_early: ContextVar[_ManagerAnnouncingEarly | None] = ContextVar("early_manager", default=None)


async def _change_mode_announcing_early(bus: Bus) -> Mapping[str, Any]:
    manager = _ManagerAnnouncingEarly(bus, "normal")
    _early.set(manager)
    await manager.set_mode("defensive")
    return {"old_mode": "normal", "new_mode": "defensive"}


def _early_mode_now() -> Mapping[str, Any] | None:
    manager = _early.get()
    return None if manager is None else {"new_mode": manager.current_mode}


def _with_event(name: str, **changes: Any) -> P1Target:
    events = tuple(
        dataclasses.replace(event, **changes) if event.name == name else event
        for event in TARGET.required_events
    )
    return dataclasses.replace(TARGET, required_events=events)


def mode_announced_before_it_changes(root: Path) -> P1Target:
    """P1-1.hfos-mode: the mode change is published before ``current_mode`` changes."""
    return _with_event(
        "ai.hfos.mode_changed",
        action=_change_mode_announcing_early,
        announced_state=_early_mode_now,
    )


def _raising_state() -> Mapping[str, Any] | None:
    raise LookupError("no HedgeFundOS manager registered")


def mode_state_hook_that_raises(root: Path) -> P1Target:
    """Error of P1-1.hfos-mode: the adapter's ``announced_state`` raises."""
    return _with_event("ai.hfos.mode_changed", announced_state=_raising_state)


def target_without_state_hooks(root: Path) -> P1Target:
    """Correct, with nothing to read the state by: the report says the state was not checked."""
    events = tuple(
        dataclasses.replace(event, announced_state=None) for event in TARGET.required_events
    )
    return dataclasses.replace(TARGET, required_events=events)


# --- timestamps in local time ---------------------------------------------------------


async def _level_change_stamped_locally_as_utc(bus: Bus) -> Mapping[str, Any]:
    await bus.publish(
        "safety.governor.level_changed",
        {
            "old_level": 1,
            "new_level": 3,
            "reason": "manual_override",
            # Local wall time with a "Z" pasted on: right only where local time is UTC.
            "timestamp": datetime.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    )
    return {"old_level": 1, "new_level": 3, "reason": "manual_override"}


def level_change_stamped_in_local_time_as_utc(root: Path) -> P1Target:
    """P1-1.safety-level: the timestamp is local time labelled ``Z`` (looks fine on a UTC host)."""
    return _with_action("safety.governor.level_changed", _level_change_stamped_locally_as_utc)


async def _node_status_stamped_with_the_local_offset(bus: Bus) -> Mapping[str, Any]:
    await bus.publish(
        "federation.node.status_changed",
        {
            "node_id": "v2-node-1",
            "old_status": "unknown",
            "new_status": "online",
            "timestamp": datetime.now().astimezone().isoformat(),  # "+00:00" on a UTC host
        },
    )
    return {"node_id": "v2-node-1", "old_status": "unknown", "new_status": "online"}


def node_status_stamped_with_the_local_offset(root: Path) -> P1Target:
    """P1-1.node-status: the timestamp is aware, but in the machine's local zone."""
    return _with_action(
        "federation.node.status_changed", _node_status_stamped_with_the_local_offset
    )


async def _mode_change_stamped_with_z(bus: Bus) -> Mapping[str, Any]:
    await bus.publish(
        "ai.hfos.mode_changed",
        {
            "old_mode": "normal",
            "new_mode": "defensive",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    return {"old_mode": "normal", "new_mode": "defensive"}


def mode_change_with_z_timestamps(root: Path) -> P1Target:
    """Correct: UTC written with ``Z`` and whole seconds."""
    return _with_action("ai.hfos.mode_changed", _mode_change_stamped_with_z)


# --- checks that would observe nothing ------------------------------------------------


def target_without_required_events(root: Path) -> P1Target:
    """P1-1.catalogue, .logged and .failing-subscriber: no required event, nothing to observe."""
    return dataclasses.replace(TARGET, required_events=())


async def _mode_change_returning_nothing(bus: Bus) -> Mapping[str, Any]:
    await TARGET.required_events[0].action(bus)
    return {}


def mode_change_expecting_nothing(root: Path) -> P1Target:
    """P1-1.hfos-mode: the adapter's action returns no values, so nothing would be compared."""
    return _with_action("ai.hfos.mode_changed", _mode_change_returning_nothing)


async def _mode_change_without_publishing(bus: Bus) -> Mapping[str, Any]:
    return {"old_mode": "normal", "new_mode": "defensive"}


def mode_change_publishing_nothing(root: Path) -> P1Target:
    """P1-1.hfos-mode, .logged and .failing-subscriber: the mode change publishes nothing."""
    return _with_action("ai.hfos.mode_changed", _mode_change_without_publishing)


async def _mode_change_without_a_timestamp(bus: Bus) -> Mapping[str, Any]:
    await bus.publish("ai.hfos.mode_changed", {"old_mode": "normal", "new_mode": "defensive"})
    return {"old_mode": "normal", "new_mode": "defensive"}


def mode_change_with_an_undeclared_timestamp_missing(root: Path) -> P1Target:
    """P1-1.hfos-mode: no timestamp, where ``fields`` does not list it but ``timestamp_field`` does."""
    mode = TARGET.required_events[0]
    event = RequiredEvent(
        mode.name, ("old_mode", "new_mode"), _mode_change_without_a_timestamp, "timestamp"
    )
    return dataclasses.replace(TARGET, required_events=(event, *TARGET.required_events[1:]))
