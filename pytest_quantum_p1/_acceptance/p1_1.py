"""P1-1, missing critical events: the criteria on the bus catalogue, each required event, logging.

Every required event is checked by performing the target's real action
(:attr:`RequiredEvent.action`) on a fresh bus and recording what it publishes.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.drive import quiet_v2_warnings, run
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.verdict import bullets, fail

if TYPE_CHECKING:
    from pytest_quantum_p1._events import EventRecorder
    from pytest_quantum_p1._target import Bus, P1Target, RequiredEvent

__all__ = ["criterion_catalogue", "criterion_logged", "event_criterion"]


def criterion_catalogue(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Every required event is in the bus catalogue."""
    catalogue = list(p1_target.bus().catalogue)
    required = [event.name for event in p1_target.required_events]
    missing = [name for name in required if name not in catalogue]
    _p1_criterion.figures = {"required": len(required), "missing": len(missing)}
    _p1_criterion.summary = _messages.P1_1_CATALOGUE_SUMMARY.format(
        present=len(required) - len(missing), required=len(required)
    )
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


def _run_action(bus: Bus, event: RequiredEvent) -> tuple[EventRecorder, Mapping[str, Any]]:
    """Perform ``event``'s action on ``bus``: what was published, and what it should carry."""
    from pytest_quantum_p1._events import EventRecorder

    recorder = EventRecorder(bus)
    with recorder, quiet_v2_warnings():
        expected = run(event.action(bus))
    return recorder, expected


def _timestamp_problem(value: object) -> str | None:
    """Why ``value`` is not an ISO-8601 UTC timestamp, or ``None``."""
    if not isinstance(value, str):
        return _messages.P1_1_EVENT_TIMESTAMP_NOT_A_STRING.format(type=type(value).__name__)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _messages.P1_1_EVENT_TIMESTAMP_NOT_ISO.format(value=value)
    if parsed.utcoffset() is None:
        return _messages.P1_1_EVENT_TIMESTAMP_NAIVE.format(value=value)
    if parsed.utcoffset() != timedelta(0):
        return _messages.P1_1_EVENT_TIMESTAMP_NOT_UTC.format(value=value)
    return None


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
        recorder, expected = _run_action(bus, event)
        published = recorder.find(event.name)
        _p1_criterion.figures = {"published": len(published)}
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
        problems = [
            _messages.P1_1_EVENT_FIELD_MISSING.format(field=field)
            for field in event.fields
            if field not in match.payload
        ]
        if len(published) > 1:
            problems.append(_messages.P1_1_EVENT_REPEATED.format(count=len(published)))
        if event.timestamp_field is not None and event.timestamp_field in match.payload:
            why = _timestamp_problem(match.payload[event.timestamp_field])
            if why:
                problems.append(why)
        fields = ", ".join(event.fields)
        summary = (
            _messages.P1_1_EVENT_SUMMARY_UTC
            if event.timestamp_field
            else _messages.P1_1_EVENT_SUMMARY
        )
        _p1_criterion.summary = summary.format(fields=fields)
        if problems:
            _p1_criterion.summary = _messages.P1_1_EVENT_PROBLEMS_SUMMARY.format(
                count=len(published), problems=len(problems)
            )
            fail(
                _messages.P1_1_EVENT_NOT_AS_REQUIRED.format(name=event.name),
                *bullets(problems),
                _messages.P1_1_EVENT_PAYLOAD.format(payload=dict(match.payload)),
                _messages.P1_1_EVENT_REQUIRED_FIELDS.format(fields=fields),
                _messages.P1_1_EVENT_FIX,
                _messages.ACCEPTANCE_READ_MORE,
            )

    criterion_event.__doc__ = f"The real action publishes {event.name!r} with its payload."
    return criterion_event


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


def criterion_logged(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Each required event is logged as one structured record per publish."""
    problems: list[str] = []
    logged = 0
    logger = p1_target.monitor_logger
    for event in p1_target.required_events:
        bus = p1_target.bus()
        if event.name not in bus.catalogue:
            problems.append(_messages.P1_1_LOGGED_NOT_IN_CATALOGUE.format(name=event.name))
            continue
        with _capture_logger(logger) as handler:
            recorder, _ = _run_action(bus, event)
        published = recorder.find(event.name)
        records = [r for r in handler.records if getattr(r, "event", None) == event.name]
        if not published:
            problems.append(_messages.P1_1_LOGGED_NOTHING_PUBLISHED.format(name=event.name))
        elif len(records) != len(published):
            problems.append(
                _messages.P1_1_LOGGED_COUNT_DIFFERS.format(
                    name=event.name, published=len(published), logged=len(records), logger=logger
                )
            )
        elif any(
            getattr(r, "payload", None) != e.payload
            for r, e in zip(records, published, strict=True)
        ):
            problems.append(_messages.P1_1_LOGGED_PAYLOAD_DIFFERS.format(name=event.name))
        else:
            logged += 1
    _p1_criterion.figures = {"events_logged": logged}
    _p1_criterion.summary = _messages.P1_1_LOGGED_SUMMARY.format(
        logged=logged, required=len(p1_target.required_events)
    )
    if problems:
        fail(
            _messages.P1_1_LOGGED_MISSING,
            *bullets(problems),
            _messages.P1_1_LOGGED_FIX.format(logger=logger),
            _messages.ACCEPTANCE_READ_MORE,
        )
