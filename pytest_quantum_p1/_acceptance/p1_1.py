"""P1-1, missing critical events: the catalogue, each required event, monitoring, failing subscribers.

Every required event is checked by performing the target's real action
(:attr:`RequiredEvent.action`) on the target's bus and recording what it
publishes. Every action runs under a zone that is not UTC (and not a whole
number of hours from it), so a timestamp taken in local time shows on a UTC
machine too; a bus that delivers in tasks of its own gets them run before the
action's event loop closes. A criterion that observed nothing fails, saying
what it expected to see.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.drive import quiet_v2_warnings, run
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.verdict import bullets, fail
from pytest_quantum_p1._target import TargetError

if TYPE_CHECKING:
    from pytest_quantum_p1._events import EventRecorder, RecordedEvent
    from pytest_quantum_p1._target import Bus, P1Target, RequiredEvent

__all__ = [
    "SEED_EVENTS",
    "criterion_catalogue",
    "criterion_failing_subscriber",
    "criterion_logged",
    "event_criterion",
]

T = TypeVar("T")

#: The four events the seed requires, named when a target declares none.
SEED_EVENTS: Final = (
    "ai.hfos.mode_changed",
    "safety.governor.level_changed",
    "model.shadow_test.completed",
    "federation.node.status_changed",
)

#: The zone the actions run in: UTC+05:45 (Nepal, no daylight saving), as a POSIX
#: TZ string so no zone database is needed. A quarter-hour offset tells local
#: time from UTC where a whole-hour zone could hide behind a coarse clock.
_ZONE: Final = "<+0545>-05:45"
#: How far a UTC timestamp may be from the harness's clock around the action:
#: generous for slow machines, far below the zone's 5 h 45 min.
_CLOCK_SLACK: Final = timedelta(seconds=60)
#: How long a bus's own delivery tasks get to finish once the action returned.
_DRAIN_S: Final = 0.25


def _no_required_events(record: CriterionRecord) -> NoReturn:
    __tracebackhide__ = True
    record.summary = _messages.P1_1_NO_REQUIRED_EVENTS_SUMMARY
    fail(
        _messages.P1_1_NO_REQUIRED_EVENTS.format(names=", ".join(SEED_EVENTS)),
        _messages.P1_1_NO_REQUIRED_EVENTS_FIX,
        _messages.ACCEPTANCE_READ_MORE,
    )


def criterion_catalogue(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Every required event is in the bus catalogue."""
    required = [event.name for event in p1_target.required_events]
    if not required:
        _no_required_events(_p1_criterion)
    from pytest_quantum_p1._target import EmitterBus

    bus = p1_target.bus()
    catalogue = list(bus.catalogue)
    missing = [name for name in required if name not in catalogue]
    _p1_criterion.figures = {"required": len(required), "missing": len(missing)}
    _p1_criterion.summary = _messages.P1_1_CATALOGUE_SUMMARY.format(
        present=len(required) - len(missing), required=len(required)
    )
    if isinstance(bus, EmitterBus):
        # The emitter keeps no catalogue: what was checked is the adapter's list.
        _p1_criterion.summary += _messages.P1_1_CATALOGUE_FROM_ADAPTER
    if missing:
        fail(
            _messages.P1_1_CATALOGUE_MISSING.format(count=len(missing)),
            *bullets([_with_closest(name, catalogue) for name in missing]),
            _messages.P1_1_CATALOGUE_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )


def _with_closest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
    if not close:
        return repr(name)
    return _messages.P1_1_CATALOGUE_CLOSEST.format(name=name, closest=", ".join(close))


# --- performing an action ------------------------------------------------------------


@dataclass
class _Performed:
    """What performing one action gave: its expected values and the harness's UTC clock."""

    expected: Mapping[str, Any]
    started: datetime
    ended: datetime
    #: The UTC offset the action ran under, in minutes (``None``: could not switch zones).
    zone_min: int | None


@contextmanager
def _away_from_utc() -> Iterator[int | None]:
    """Run the block in :data:`_ZONE`; yield its offset in minutes, ``None`` where impossible."""
    tzset: Callable[[], None] | None = getattr(time, "tzset", None)
    if tzset is None:  # Windows: the process zone cannot be switched
        yield None
        return
    saved = os.environ.get("TZ")
    os.environ["TZ"] = _ZONE
    tzset()
    try:
        offset = datetime.now().astimezone().utcoffset() or timedelta(0)
        yield int(offset.total_seconds() // 60)
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        tzset()


async def _settled(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, then give the tasks it started :data:`_DRAIN_S` to finish."""
    before = asyncio.all_tasks()
    try:
        return await awaitable
    finally:
        # A bus may deliver each event in a task of its own: without this, the
        # loop closing after the action would cancel deliveries not yet run.
        spawned = asyncio.all_tasks() - before
        if spawned:
            await asyncio.wait(spawned, timeout=_DRAIN_S)


def _perform(bus: Bus, event: RequiredEvent) -> _Performed:
    """Perform ``event``'s action on ``bus`` under :data:`_ZONE`, its deliveries settled."""
    with _away_from_utc() as zone_min, quiet_v2_warnings():
        started = datetime.now(UTC)
        expected = run(_settled(event.action(bus)))
        ended = datetime.now(UTC)
    return _Performed(expected=expected, started=started, ended=ended, zone_min=zone_min)


def _recorded(bus: Bus, event: RequiredEvent) -> tuple[EventRecorder, _Performed]:
    """Perform ``event``'s action on ``bus``, recording every event published meanwhile."""
    from pytest_quantum_p1._events import EventRecorder

    recorder = EventRecorder(bus)
    with recorder:
        performed = _perform(bus, event)
    return recorder, performed


# --- each required event ---------------------------------------------------------------


def _zone_label(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _timestamp_problem(value: object, performed: _Performed) -> str | None:
    """Why ``value`` is not the ISO-8601 UTC time the action ran at, or ``None``."""
    if not isinstance(value, str):
        return _messages.P1_1_EVENT_TIMESTAMP_NOT_A_STRING.format(type=type(value).__name__)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _messages.P1_1_EVENT_TIMESTAMP_NOT_ISO.format(value=value)
    offset = parsed.utcoffset()
    if offset is None:
        return _messages.P1_1_EVENT_TIMESTAMP_NAIVE.format(value=value)
    zone = performed.zone_min
    if offset != timedelta(0):
        if zone is not None and offset == timedelta(minutes=zone):
            return _messages.P1_1_EVENT_TIMESTAMP_LOCAL.format(value=value, zone=_zone_label(zone))
        return _messages.P1_1_EVENT_TIMESTAMP_NOT_UTC.format(value=value)
    earliest, latest = performed.started - _CLOCK_SLACK, performed.ended + _CLOCK_SLACK
    if not earliest <= parsed <= latest:
        off = parsed - performed.started if parsed > latest else performed.started - parsed
        return _messages.P1_1_EVENT_TIMESTAMP_OFF_CLOCK.format(
            value=value,
            off=str(off).split(".")[0],
            now=performed.started.isoformat(timespec="seconds"),
            zone=_zone_label(zone or 0),
        )
    return None


@dataclass
class _StateReadings:
    """What ``RequiredEvent.announced_state`` read at each delivery of one event."""

    read: Callable[[], Mapping[str, Any] | None]
    readings: list[Mapping[str, Any] | None] = field(default_factory=list)
    error: Exception | None = None

    def __call__(self, name: str, payload: Mapping[str, Any]) -> None:
        # A subscriber like any other, so it reads the state exactly when
        # subscribers receive the event; the bus would swallow what it raises.
        try:
            self.readings.append(self.read())
        except Exception as exc:
            self.error = self.error or exc
            self.readings.append(None)


@contextmanager
def _reading_state(bus: Bus, event: RequiredEvent) -> Iterator[_StateReadings | None]:
    """Read the announced state at every delivery of ``event`` in the block, if the target can."""
    if event.announced_state is None:
        yield None
        return
    reader = _StateReadings(event.announced_state)
    bus.subscribe(event.name, reader)
    try:
        yield reader
    finally:
        bus.unsubscribe(event.name, reader)


def _state_problems(
    event: RequiredEvent,
    reader: _StateReadings | None,
    published: Sequence[RecordedEvent],
    match: RecordedEvent,
) -> tuple[list[str], str | None]:
    """State problems of ``match``, and why the state was not checked (``None``: it was)."""
    if reader is None:
        return [], _messages.P1_1_EVENT_STATE_NO_HOOK
    if reader.error is not None:
        raise TargetError(
            _messages.P1_1_EVENT_STATE_HOOK_RAISED.format(
                name=event.name, type=type(reader.error).__name__, error=reader.error
            )
        )
    position = next(i for i, e in enumerate(published) if e.index == match.index)
    reading = reader.readings[position] if position < len(reader.readings) else None
    announced = {k: v for k, v in (reading or {}).items() if k in match.payload}
    if not announced:
        return [], _messages.P1_1_EVENT_STATE_UNREAD
    return [
        _messages.P1_1_EVENT_STATE_BEHIND.format(
            field=key, announced=match.payload[key], current=current
        )
        for key, current in announced.items()
        if match.payload[key] != current
    ], None


def event_criterion(event: RequiredEvent) -> Callable[..., None]:
    """The criterion of one required event: its real action publishes it once, as required."""

    def criterion_event(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
        __tracebackhide__ = True
        bus = p1_target.bus()
        if event.name not in bus.catalogue:
            _p1_criterion.summary = _messages.P1_1_EVENT_NOT_IN_CATALOGUE_SUMMARY
            fail(
                _messages.P1_1_EVENT_NOT_IN_CATALOGUE.format(name=event.name),
                _messages.ACCEPTANCE_READ_MORE,
            )
        with _reading_state(bus, event) as reader:
            recorder, performed = _recorded(bus, event)
        expected = performed.expected
        published = recorder.find(event.name)
        _p1_criterion.figures = {"published": len(published)}
        if performed.zone_min is not None:
            _p1_criterion.figures["zone_offset_min"] = performed.zone_min
        if not expected:
            _p1_criterion.summary = _messages.P1_1_EVENT_NOTHING_EXPECTED_SUMMARY
            fail(
                _messages.P1_1_EVENT_NOTHING_EXPECTED.format(name=event.name),
                _messages.P1_1_EVENT_NOTHING_EXPECTED_FIX,
                _messages.ACCEPTANCE_READ_MORE,
            )
        try:
            match = recorder.assert_published(event.name, **dict(expected))
        except AssertionError as exc:
            _p1_criterion.summary = _messages.P1_1_EVENT_NOT_AS_EXPECTED_SUMMARY.format(
                count=len(published)
            )
            fail(
                _messages.P1_1_EVENT_NOT_AS_EXPECTED.format(name=event.name),
                str(exc),
                _messages.P1_1_EVENT_NOT_AS_EXPECTED_FIX,
                _messages.ACCEPTANCE_READ_MORE,
            )
        required = (*event.fields, *([event.timestamp_field] if event.timestamp_field else []))
        problems = [
            _messages.P1_1_EVENT_FIELD_MISSING.format(field=name)
            for name in dict.fromkeys(required)
            if name not in match.payload
        ]
        if len(published) > 1:
            problems.append(_messages.P1_1_EVENT_REPEATED.format(count=len(published)))
        if event.timestamp_field is not None and event.timestamp_field in match.payload:
            why = _timestamp_problem(match.payload[event.timestamp_field], performed)
            if why:
                problems.append(why)
        state_problems, unchecked = _state_problems(event, reader, published, match)
        problems.extend(state_problems)
        _p1_criterion.figures["state_checked"] = int(unchecked is None)
        fields = ", ".join(event.fields)
        summary = (
            _messages.P1_1_EVENT_SUMMARY_UTC
            if event.timestamp_field
            else _messages.P1_1_EVENT_SUMMARY
        ).format(fields=fields)
        if unchecked is not None:
            summary += _messages.P1_1_EVENT_STATE_UNCHECKED.format(why=unchecked)
        if performed.zone_min is None and event.timestamp_field:
            summary += _messages.P1_1_EVENT_ZONE_UNCHECKED
        _p1_criterion.summary = summary
        if problems:
            _p1_criterion.summary = _messages.P1_1_EVENT_PROBLEMS_SUMMARY.format(
                count=len(published), problems=len(problems)
            )
            fail(
                _messages.P1_1_EVENT_NOT_AS_REQUIRED.format(name=event.name),
                *bullets(problems),
                _messages.P1_1_EVENT_PAYLOAD.format(payload=dict(match.payload)),
                _messages.P1_1_EVENT_REQUIRED_FIELDS.format(fields=fields),
                _messages.P1_1_EVENT_STATE_FIX if state_problems else "",
                _messages.P1_1_EVENT_FIX,
                _messages.ACCEPTANCE_READ_MORE,
            )

    criterion_event.__doc__ = f"The real action publishes {event.name!r} with its payload."
    return criterion_event


# --- monitoring ------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _capture_logger(name: str) -> Iterator[_Records]:
    """Every record logger ``name`` emits in the block, whatever its level or state was."""
    logger = logging.getLogger(name)
    handler = _Records()
    saved = (logger.level, logger.disabled)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.disabled = saved[1]


@dataclass(frozen=True)
class _MonitorRecord:
    level: int
    payload: object


def _reader_name(read: object) -> str:
    """A monitor reader as a user finds it: ``json_record(...)``, or its name and place."""
    code = getattr(read, "__code__", None)
    if code is None:
        return repr(read)
    name = getattr(read, "__qualname__", "?")
    return f"{name} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"


def _record_text(record: logging.LogRecord, limit: int = 80) -> str:
    try:
        text = record.getMessage()
    except Exception:  # the record's own arguments do not format: show the template
        text = str(record.msg)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _monitor_records(
    p1_target: P1Target, records: Sequence[logging.LogRecord], name: str
) -> list[_MonitorRecord]:
    """The records of ``records`` that monitor event ``name``, read as the target says."""
    read = p1_target.monitor_record
    found = []
    for record in records:
        if read is None:
            event, payload = getattr(record, "event", None), getattr(record, "payload", None)
        else:
            try:
                parsed = read(record)
            except Exception as exc:
                raise TargetError(
                    _messages.P1_1_MONITOR_READER_RAISED.format(
                        reader=_reader_name(read),
                        type=type(exc).__name__,
                        logger=p1_target.monitor_logger,
                        message=_record_text(record),
                        error=exc,
                    )
                ) from exc
            event, payload = parsed if parsed is not None else (None, None)
        if event == name:
            found.append(_MonitorRecord(record.levelno, payload))
    return found


def _unread(p1_target: P1Target, records: Sequence[logging.LogRecord]) -> list[logging.LogRecord]:
    """The records the target's ``monitor_record`` read as no event (none without a reader)."""
    read = p1_target.monitor_record
    if read is None:
        return []
    unread = []
    for record in records:
        with suppress(Exception):  # a raising reader is _monitor_records' error to report
            if read(record) is None:
                unread.append(record)
    return unread


def criterion_logged(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Each required event is logged, where production monitoring sees it, once per publish."""
    if not p1_target.required_events:
        _no_required_events(_p1_criterion)
    problems: list[str] = []
    logged = 0
    logger = p1_target.monitor_logger
    production = logging.getLevelName(p1_target.monitor_level)
    too_low = False
    for event in p1_target.required_events:
        bus = p1_target.bus()
        if event.name not in bus.catalogue:
            problems.append(_messages.P1_1_LOGGED_NOT_IN_CATALOGUE.format(name=event.name))
            continue
        with _capture_logger(logger) as handler:
            recorder, _ = _recorded(bus, event)
        published = recorder.find(event.name)
        records = _monitor_records(p1_target, handler.records, event.name)
        below = [r for r in records if r.level < p1_target.monitor_level]
        if not published:
            problems.append(_messages.P1_1_LOGGED_NOTHING_PUBLISHED.format(name=event.name))
        elif below:
            too_low = True
            problems.append(
                _messages.P1_1_LOGGED_BELOW_LEVEL.format(
                    name=event.name,
                    level=logging.getLevelName(below[0].level),
                    logger=logger,
                    production=production,
                )
            )
        elif len(records) != len(published):
            problems.append(
                _messages.P1_1_LOGGED_COUNT_DIFFERS.format(
                    name=event.name, published=len(published), logged=len(records), logger=logger
                )
            )
            unread = _unread(p1_target, handler.records)
            if unread:  # the record may be there, in a shape the reader does not take
                problems.append(
                    _messages.P1_1_LOGGED_UNREAD.format(
                        count=len(unread),
                        logger=logger,
                        reader=_reader_name(p1_target.monitor_record),
                        example=_record_text(unread[-1]),
                    )
                )
        elif any(r.payload != e.payload for r, e in zip(records, published, strict=True)):
            problems.append(_messages.P1_1_LOGGED_PAYLOAD_DIFFERS.format(name=event.name))
        else:
            logged += 1
    _p1_criterion.figures = {
        "events_logged": logged,
        "monitor_level": p1_target.monitor_level,
    }
    _p1_criterion.summary = _messages.P1_1_LOGGED_SUMMARY_LEVEL.format(
        logged=logged, required=len(p1_target.required_events), level=production
    )
    if problems:
        fail(
            _messages.P1_1_LOGGED_MISSING,
            *bullets(problems),
            _messages.P1_1_LOGGED_LEVEL_FIX.format(production=production) if too_low else "",
            _messages.P1_1_LOGGED_FIX.format(logger=logger),
            _messages.ACCEPTANCE_READ_MORE,
        )


# --- a failing subscriber --------------------------------------------------------------


class _DeliberateFailure(Exception):
    """What the harness's failing subscriber raises."""


@dataclass
class _Run:
    """One run of an action with the harness's subscribers on its event."""

    #: Calls of the failing subscriber, and of the recording one.
    raised: int = 0
    received: int = 0
    #: Monitoring records of the event.
    monitored: int = 0
    #: What the action raised (a subscriber's exception the bus let escape, or its own).
    error: Exception | None = None
    #: What ``subscribe`` raised: the bus refuses the name, nothing ran.
    refused: Exception | None = None

    def failing(self, name: str, payload: Mapping[str, Any]) -> None:
        self.raised += 1
        raise _DeliberateFailure(_messages.P1_1_FAILING_SUBSCRIBER_RAISED)

    def recording(self, name: str, payload: Mapping[str, Any]) -> None:
        self.received += 1


def _run_with_subscribers(p1_target: P1Target, event: RequiredEvent, place: str | None) -> _Run:
    """Run ``event``'s action with a recording subscriber and, ``place`` first or last, a failing one."""
    bus = p1_target.bus()
    outcome = _Run()
    order = {
        None: (outcome.recording,),
        "first": (outcome.failing, outcome.recording),
        "last": (outcome.recording, outcome.failing),
    }[place]
    subscribed = []
    try:
        for handler in order:
            try:
                bus.subscribe(event.name, handler)
            except Exception as exc:
                outcome.refused = exc
                return outcome
            subscribed.append(handler)
        with _capture_logger(p1_target.monitor_logger) as captured:
            try:
                _perform(bus, event)
            except Exception as exc:
                outcome.error = exc
    finally:
        for handler in subscribed:
            bus.unsubscribe(event.name, handler)
    outcome.monitored = len(_monitor_records(p1_target, captured.records, event.name))
    return outcome


def _escaped(error: Exception) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(_DeliberateFailure) is not None
    return isinstance(error, _DeliberateFailure)


def _failing_subscriber_problems(p1_target: P1Target, event: RequiredEvent) -> list[str]:
    """What a raising subscriber, subscribed first and then last, costs ``event``."""
    # Without a failing subscriber first: what this event gets anyway. An event
    # never logged is P1-1.logged's finding, not a failing subscriber's.
    baseline = _run_with_subscribers(p1_target, event, None)
    if baseline.refused is not None:
        return [
            _messages.P1_1_FAILING_SUBSCRIBER_CANNOT_SUBSCRIBE.format(
                name=event.name, type=type(baseline.refused).__name__, error=baseline.refused
            )
        ]
    problems = []
    for place in ("first", "last"):
        run = _run_with_subscribers(p1_target, event, place)
        say = {"name": event.name, "place": place}
        if run.error is not None:
            if _escaped(run.error):
                problems.append(_messages.P1_1_FAILING_SUBSCRIBER_ESCAPED.format(**say))
            else:
                problems.append(
                    _messages.P1_1_FAILING_SUBSCRIBER_ACTION_RAISED.format(
                        **say, type=type(run.error).__name__, error=run.error
                    )
                )
        if not run.raised and not run.received:
            problems.append(_messages.P1_1_FAILING_SUBSCRIBER_NOTHING.format(**say))
            continue
        if not run.raised:
            problems.append(_messages.P1_1_FAILING_SUBSCRIBER_NOT_CALLED.format(**say))
        if not run.received:
            problems.append(_messages.P1_1_FAILING_SUBSCRIBER_MISSED.format(**say))
        if run.monitored < baseline.monitored:
            problems.append(
                _messages.P1_1_FAILING_SUBSCRIBER_NOT_LOGGED.format(
                    **say, logger=p1_target.monitor_logger
                )
            )
    return problems


def criterion_failing_subscriber(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """A raising subscriber keeps no event from the other subscribers or monitoring."""
    if not p1_target.required_events:
        _no_required_events(_p1_criterion)
    problems: list[str] = []
    passed = 0
    for event in p1_target.required_events:
        found = _failing_subscriber_problems(p1_target, event)
        problems.extend(found)
        passed += not found
    required = len(p1_target.required_events)
    _p1_criterion.figures = {"events": passed, "runs": 3 * required}
    _p1_criterion.summary = _messages.P1_1_FAILING_SUBSCRIBER_SUMMARY.format(
        events=passed, required=required
    )
    if problems:
        _p1_criterion.summary = _messages.P1_1_FAILING_SUBSCRIBER_PROBLEMS_SUMMARY.format(
            problems=len(problems)
        )
        fail(
            _messages.P1_1_FAILING_SUBSCRIBER_HEADLINE,
            *bullets(problems),
            _messages.P1_1_FAILING_SUBSCRIBER_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
