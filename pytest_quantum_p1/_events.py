"""Recording the events a test publishes, and asserting on them.

:class:`EventRecorder` subscribes one synchronous handler to every name in a
bus's catalogue and keeps what it hears. It is thread-safe: the bus may publish
from another thread (a portal event loop) while the test waits or asserts.
Nothing here needs pytest; the plugin only wires it into fixtures and the
``publishes`` marker.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from unittest.mock import ANY

from pytest_quantum_p1 import _messages

if TYPE_CHECKING:
    import asyncio

    from pytest_quantum_p1._target import Bus

__all__ = [
    "ANY",
    "EventRecorder",
    "RecordedEvent",
    "UnknownEventName",
    "publishes_failures",
    "publishes_signature",
]

#: How many published events a failure message lists before summarising.
_MAX_BULLETS = 15
#: Longest payload rendering in a bullet, in characters.
_MAX_PAYLOAD = 240


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event heard by a recorder."""

    name: str
    #: A shallow copy of the payload, taken when the event was published.
    payload: Mapping[str, Any]
    #: Position in the recording, from 0.
    index: int
    #: Seconds since the recorder started (monotonic clock).
    time: float


class UnknownEventName(ValueError):
    """An event name that is not in the bus catalogue, so it can never be published."""

    def __init__(self, name: object, catalogue: Iterable[str]) -> None:
        known = sorted(catalogue)
        self.name = name
        # A high cutoff: names in one catalogue share prefixes, and a list of
        # every "order.*" name is noise rather than a suggestion.
        self.suggestions: list[str] = difflib.get_close_matches(str(name), known, n=3, cutoff=0.8)
        message = _messages.UNKNOWN_EVENT.format(name=name)
        if self.suggestions:
            message += _messages.UNKNOWN_EVENT_SUGGEST.format(
                suggestions=" or ".join(repr(s) for s in self.suggestions)
            )
        message += _messages.UNKNOWN_EVENT_CATALOGUE.format(
            count=len(known), names=", ".join(known)
        )
        super().__init__(message)


# Shown in tracebacks as the public name users import and catch.
UnknownEventName.__module__ = "pytest_quantum_p1"


def _missing(key: str) -> str:
    return f"{key}: missing from the payload"


def _differences(payload: Mapping[str, Any], fields: Mapping[str, Any]) -> list[str]:
    """``field: expected X, got Y`` for every named field the payload does not match."""
    lines = []
    for key, expected in fields.items():
        if key not in payload:
            lines.append(_missing(key))
            continue
        # ``expected`` on the left so that ANY (and other matchers) decide.
        if expected == payload[key]:
            continue
        lines.append(f"{key}: expected {expected!r}, got {payload[key]!r}")
    return lines


def _matches(event: RecordedEvent, name: str, fields: Mapping[str, Any]) -> bool:
    return event.name == name and not _differences(event.payload, fields)


def _describe(name: str, fields: Mapping[str, Any]) -> str:
    return f"{name!r} with fields {dict(fields)!r}" if fields else repr(name)


def _render_payload(payload: Mapping[str, Any]) -> str:
    text = repr(dict(payload))
    return text if len(text) <= _MAX_PAYLOAD else text[: _MAX_PAYLOAD - 3] + "..."


def _bullet(event: RecordedEvent) -> str:
    return f"  - #{event.index} {event.name} {_render_payload(event.payload)}"


def _bullets(events: Sequence[RecordedEvent], name: str, fields: Mapping[str, Any]) -> list[str]:
    """The recording as bullets, closest to ``name``/``fields`` first, with differing fields."""
    if not events:
        return [_messages.PUBLISHED_NONE]

    def closeness(event: RecordedEvent) -> tuple[int, float, int]:
        if event.name == name:
            return (0, len(_differences(event.payload, fields)), event.index)
        similarity = difflib.SequenceMatcher(None, event.name, name).ratio()
        return (1, -similarity, event.index)

    ranked = sorted(events, key=closeness)
    lines = [_messages.PUBLISHED_HEADING.format(count=len(events))]
    for event in ranked[:_MAX_BULLETS]:
        lines.append(_bullet(event))
        if event.name == name:
            lines.extend(f"      {diff}" for diff in _differences(event.payload, fields))
    if len(ranked) > _MAX_BULLETS:
        lines.append(_messages.PUBLISHED_MORE.format(count=len(ranked) - _MAX_BULLETS))
    return lines


def _message(*parts: str | Sequence[str]) -> str:
    lines: list[str] = []
    for part in parts:
        lines.extend([part] if isinstance(part, str) else part)
    return "\n".join(lines)


def _format_timeout(seconds: float) -> str:
    return f"{seconds:g}s"


@dataclass(slots=True)
class _AsyncWaiter:
    name: str
    fields: Mapping[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[RecordedEvent]


def _resolve(future: asyncio.Future[RecordedEvent], event: RecordedEvent) -> None:
    if not future.done():
        future.set_result(event)


class EventRecorder:
    """Records every event published on ``bus`` while it is started.

    Use it as the ``p1_events`` fixture, as a context manager
    (``with EventRecorder(bus) as events: ...``), or through :meth:`capture`
    inside a Hypothesis ``@given`` test, where function-scoped fixtures are
    not reset between examples.

    Assertions match payloads by subset: only the fields named are compared,
    and :data:`ANY` matches any value. Every event name is checked against the
    bus catalogue first, so a typo is an :class:`UnknownEventName` naming the
    closest known names rather than a wait for an event that cannot happen.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._catalogue: tuple[str, ...] = tuple(bus.catalogue)
        self._known = frozenset(self._catalogue)
        # One lock for the events, the async waiters and the started flag; the
        # condition lets ``wait_for`` sleep until a handler records something.
        self._cond = threading.Condition(threading.Lock())
        self._events: list[RecordedEvent] = []
        self._waiters: list[_AsyncWaiter] = []
        self._started = False
        self._t0 = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def bus(self) -> Bus:
        """The bus this recorder listens to."""
        return self._bus

    @property
    def catalogue(self) -> tuple[str, ...]:
        """The event names the recorder listens to (the bus catalogue)."""
        return self._catalogue

    @property
    def started(self) -> bool:
        """Whether the recorder is currently subscribed."""
        return self._started

    def start(self) -> None:
        """Subscribe to every catalogue name; a no-op when already started."""
        with self._cond:
            if self._started:
                return
            self._started = True
            self._t0 = time.monotonic()
        for name in self._catalogue:
            self._bus.subscribe(name, self._record)

    def stop(self) -> None:
        """Unsubscribe; recorded events are kept."""
        with self._cond:
            if not self._started:
                return
            self._started = False
        for name in self._catalogue:
            self._bus.unsubscribe(name, self._record)

    def __enter__(self) -> EventRecorder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextmanager
    def capture(self) -> Iterator[EventRecorder]:
        """A fresh recorder on the same bus for the ``with`` block.

        Inside Hypothesis ``@given`` tests each example gets its own recording
        this way; the fixture's recorder keeps recording too.
        """
        with EventRecorder(self._bus) as recorder:
            yield recorder

    def _record(self, name: str, payload: Mapping[str, Any]) -> None:
        with self._cond:
            if not self._started:
                return
            event = RecordedEvent(
                name=name,
                payload=dict(payload),
                index=len(self._events),
                time=time.monotonic() - self._t0,
            )
            self._events.append(event)
            self._cond.notify_all()
            woken = [w for w in self._waiters if _matches(event, w.name, w.fields)]
        for waiter in woken:
            # The waiter's loop may run on another thread: hand over, don't touch.
            # A closed loop (RuntimeError) has nobody waiting any more.
            with suppress(RuntimeError):
                waiter.loop.call_soon_threadsafe(_resolve, waiter.future, event)

    # -- reading -----------------------------------------------------------------

    @property
    def events(self) -> list[RecordedEvent]:
        """A snapshot of the recorded events, in publish order."""
        with self._cond:
            return list(self._events)

    @property
    def names(self) -> list[str]:
        """The names of the recorded events, in publish order."""
        with self._cond:
            return [event.name for event in self._events]

    def clear(self) -> None:
        """Forget what was recorded so far (indices restart at 0)."""
        with self._cond:
            self._events.clear()

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)

    def check_name(self, name: object) -> str:
        """Return ``name`` if it is in the catalogue, else raise :class:`UnknownEventName`."""
        __tracebackhide__ = True
        if not isinstance(name, str) or name not in self._known:
            raise UnknownEventName(name, self._catalogue)
        return name

    def find(self, name: str, /, **fields: Any) -> list[RecordedEvent]:
        """Every recorded event named ``name`` whose payload contains ``fields``."""
        self.check_name(name)
        return [event for event in self.events if _matches(event, name, fields)]

    # -- assertions --------------------------------------------------------------

    def missing_message(
        self, name: str, fields: Mapping[str, Any], headline: str | None = None
    ) -> str:
        """The failure text for "``name`` with ``fields`` was not published"."""
        what = _describe(name, fields)
        return _message(
            headline or _messages.NOT_PUBLISHED.format(what=what),
            _bullets(self.events, name, fields),
            _messages.NOT_PUBLISHED_TUNE,
            _messages.EVENTS_READ_MORE,
        )

    def assert_published(self, name: str, /, **fields: Any) -> RecordedEvent:
        """Fail unless an event ``name`` whose payload contains ``fields`` was published.

        Returns the first matching event. Values may be :data:`ANY`.
        """
        __tracebackhide__ = True
        self.check_name(name)
        for event in self.events:
            if _matches(event, name, fields):
                return event
        raise AssertionError(self.missing_message(name, fields))

    def assert_not_published(self, name: str, /, **fields: Any) -> None:
        """Fail if any event ``name`` whose payload contains ``fields`` was published."""
        __tracebackhide__ = True
        self.check_name(name)
        offending = [event for event in self.events if _matches(event, name, fields)]
        if offending:
            raise AssertionError(
                _message(
                    _messages.PUBLISHED_BUT_FORBIDDEN.format(what=_describe(name, fields)),
                    _messages.PUBLISHED_MATCHING.format(count=len(offending)),
                    [_bullet(event) for event in offending[:_MAX_BULLETS]],
                    _messages.PUBLISHED_BUT_FORBIDDEN_TUNE,
                    _messages.EVENTS_READ_MORE,
                )
            )

    def assert_order(self, *names: str, exact: bool = False) -> None:
        """Fail unless ``names`` were published in this order.

        By default ``names`` must be a subsequence of what was published (other
        events may come in between); with ``exact=True`` the recorded names
        must equal ``names`` exactly.
        """
        __tracebackhide__ = True
        if not names:
            raise ValueError(_messages.EVENTS_ORDER_NEEDS_A_NAME)
        for name in names:
            self.check_name(name)
        events = self.events
        order = " -> ".join(repr(name) for name in names)
        headline = self._order_failure(events, names, order, exact)
        if headline is not None:
            raise AssertionError(
                _message(
                    headline,
                    [_messages.PUBLISHED_IN_ORDER.format(count=len(events))]
                    if events
                    else [_messages.PUBLISHED_NONE],
                    [_bullet(event) for event in events[:_MAX_BULLETS]],
                    [_messages.PUBLISHED_MORE.format(count=len(events) - _MAX_BULLETS)]
                    if len(events) > _MAX_BULLETS
                    else [],
                    _messages.ORDER_TUNE,
                    _messages.EVENTS_READ_MORE,
                )
            )

    @staticmethod
    def _order_failure(
        events: Sequence[RecordedEvent], names: Sequence[str], order: str, exact: bool
    ) -> str | None:
        if exact:
            for position, (want, event) in enumerate(zip(names, events, strict=False)):
                if want != event.name:
                    return _messages.ORDER_EXACT_MISMATCH.format(
                        order=order, index=position, expected=want, actual=event.name
                    )
            if len(names) != len(events):
                return _messages.ORDER_EXACT_LENGTH.format(
                    order=order, expected=len(names), actual=len(events)
                )
            return None
        position = 0
        previous: RecordedEvent | None = None
        for want in names:
            while position < len(events) and events[position].name != want:
                position += 1
            if position == len(events):
                if previous is None:
                    return _messages.ORDER_NOT_SUBSEQUENCE_FIRST.format(order=order, missing=want)
                return _messages.ORDER_NOT_SUBSEQUENCE.format(
                    order=order, found=previous.name, index=previous.index, missing=want
                )
            previous = events[position]
            position += 1
        return None

    # -- waiting -----------------------------------------------------------------

    def wait_for(self, name: str, /, timeout: float = 1.0, **fields: Any) -> RecordedEvent:
        """Block until an event ``name`` containing ``fields`` is recorded; return it.

        Events recorded before the call count. For a publisher on another
        thread; in async code use :meth:`wait_for_async`, since blocking the
        event loop would stop the publisher too. (A payload field called
        ``timeout`` cannot be matched here: wait for the name, then
        :meth:`assert_published`.)
        """
        __tracebackhide__ = True
        self.check_name(name)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events:
                    if _matches(event, name, fields):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        raise AssertionError(self._timeout_message(name, fields, timeout))

    async def wait_for_async(
        self,
        name: str,
        /,
        timeout: float = 1.0,
        **fields: Any,
    ) -> RecordedEvent:
        """Await an event ``name`` containing ``fields``; the async form of :meth:`wait_for`.

        Works whether the publisher runs on this event loop or on another thread.
        """
        __tracebackhide__ = True
        import asyncio

        self.check_name(name)
        loop = asyncio.get_running_loop()
        waiter = _AsyncWaiter(name, dict(fields), loop, loop.create_future())
        with self._cond:
            for event in self._events:
                if _matches(event, name, fields):
                    return event
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter.future
        except TimeoutError:
            pass
        finally:
            with self._cond:
                self._waiters.remove(waiter)
        raise AssertionError(self._timeout_message(name, fields, timeout))

    def _timeout_message(self, name: str, fields: Mapping[str, Any], timeout: float) -> str:
        return self.missing_message(
            name,
            fields,
            _messages.NOT_PUBLISHED_IN_TIME.format(
                what=_describe(name, fields), timeout=_format_timeout(timeout)
            ),
        )

    def __repr__(self) -> str:
        state = "recording" if self._started else "stopped"
        return f"<EventRecorder {state}, {len(self)} events>"


# -- the ``publishes`` marker ----------------------------------------------------


def publishes_signature(name: str, /, **fields: Any) -> tuple[str, dict[str, Any]]:
    """The marker's signature: ``@pytest.mark.publishes(name, **fields)``.

    Calling it with a marker's args validates their shape (a ``TypeError``
    otherwise); the name must also be a ``str``.
    """
    if not isinstance(name, str):
        raise TypeError(_messages.EVENTS_NAME_NOT_A_STR.format(kind=type(name).__name__))
    return name, fields


def publishes_failures(
    recorder: EventRecorder, expectations: Sequence[tuple[str, Mapping[str, Any]]]
) -> str | None:
    """The verdict of the ``publishes`` markers: ``None`` if all were met, else the text."""
    failures = [
        _messages.MARKER_PUBLISHES_PREFIX + recorder.missing_message(name, fields)
        for name, fields in expectations
        if not recorder.find(name, **fields)
    ]
    return "\n\n".join(failures) if failures else None
