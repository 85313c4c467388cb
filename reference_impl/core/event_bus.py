"""EventBus v2: an async, in-process publish/subscribe bus with a catalogue.

Only names in the catalogue can be published or subscribed to, so a typo is an
immediate :class:`~reference_impl.errors.UnknownEventError` naming the closest
known names instead of an event nobody ever hears. Payloads must be
JSON-serialisable mappings: they are checked at publish time, so a bad payload
fails in the publisher, where the bug is, not inside some subscriber.

Events marked ``monitored`` in the catalogue (the four P1-1 events among them)
are logged as one structured record each on the ``reference_impl.events``
logger, with ``record.event`` and ``record.payload`` set; unmonitored events
cost no logging work at all.

Handlers (subscribers) are called with ``(name, payload)``; they may be plain
functions, coroutine functions or any callable returning an awaitable, and
``subscribe`` refuses anything else (:class:`InvalidSubscriberError`). One
subscriber never stops another, nor the publish. Delivery works like this:

- Every subscriber starts in subscription order, inside ``publish``. A plain
  function runs to its end there. An async one runs up to its first real
  suspension there (the way Python 3.12's eager tasks start), so one that
  never suspends costs no task; one that does suspend goes on in a task of its
  own, concurrently with the others (as with Spring's multicaster given an
  executor, or pyee's ``AsyncIOEventEmitter``).
- ``publish`` returns once every subscriber has finished or used up its
  deadline, ``subscriber_timeout`` seconds (5 by default) from the start of
  the wait: one that has not finished by then is cancelled. So a publisher
  that awaited ``publish`` knows the subscribers have seen the event, and a
  subscriber that never returns cannot hang the publishing action. A plain
  function cannot be interrupted: a blocking one blocks the event loop, as in
  every in-process bus.
- A subscriber that raises, including ``asyncio.CancelledError`` of its own
  making, or that misses its deadline, is logged at ERROR on this module's
  logger with the event name and the subscriber (Spring's ``ErrorHandler``,
  pyee's ``error`` event); the others are not affected.
- ``KeyboardInterrupt`` and ``SystemExit`` from a subscriber running inside
  ``publish`` are not subscriber failures but requests to stop: the remaining
  subscribers still start (an event is not half-delivered), then the ones
  still running are cancelled and the first such exception propagates. Raised
  in a subscriber's own task, asyncio propagates them out of the event loop at
  once, whatever the bus does. blinker, by contrast, lets every exception
  escape ``send`` and skips the later receivers.
- A publisher cancelled while ``publish`` waits cancels the subscribers still
  running, then the cancellation propagates.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, Final

from reference_impl.core.plain_json import INT_BOUND, SCALARS, is_plain, json_problem
from reference_impl.errors import InvalidPayloadError, InvalidSubscriberError, UnknownEventError

__all__ = [
    "CATALOGUE",
    "DEFAULT_SUBSCRIBER_TIMEOUT",
    "EventBus",
    "EventSpec",
    "Handler",
    "get_event_bus",
]

Handler = Callable[[str, Mapping[str, Any]], Awaitable[None] | None]

logger = logging.getLogger(__name__)
#: Monitoring records go to their own logger so operators can route them apart.
monitor_logger = logging.getLogger("reference_impl.events")

#: Seconds an async subscriber may take over one event before it is cancelled.
DEFAULT_SUBSCRIBER_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One catalogue entry."""

    name: str
    description: str
    monitored: bool = False


def _catalogue(*specs: EventSpec) -> Mapping[str, EventSpec]:
    return {spec.name: spec for spec in specs}


#: The events this backend knows. The four ``monitored`` ones are P1-1's.
CATALOGUE: Mapping[str, EventSpec] = _catalogue(
    EventSpec("model.promoted", "A model was promoted to production."),
    EventSpec("model.rollback", "A production model was rolled back."),
    EventSpec("ai.hfos.mode_changed", "HedgeFundOS mode transition.", monitored=True),
    EventSpec("safety.governor.level_changed", "Safety level adjustment.", monitored=True),
    EventSpec("model.shadow_test.completed", "Shadow test results.", monitored=True),
    EventSpec("federation.node.status_changed", "Federation node health.", monitored=True),
    EventSpec("federation.round.started", "Federation v3: a training round started."),
    EventSpec("federation.round.completed", "Federation v3: a training round completed."),
)


def check_payload(name: str, payload: object) -> Mapping[str, Any]:
    """Return ``payload`` (a dict copy of a non-dict mapping) if it is plain JSON, else raise.

    :class:`InvalidPayloadError` names the culprit's path, e.g.
    ``payload of 'model.promoted'.tags is a set, which is not JSON-serialisable``.
    """
    if type(payload) is dict and is_plain(payload):
        return payload
    if type(payload) is not dict:
        if not isinstance(payload, Mapping):
            raise InvalidPayloadError(
                f"payload of {name!r} must be a mapping, got {type(payload).__name__}"
            )
        payload = dict(payload)
    problem = json_problem(payload, f"payload of {name!r}")
    if problem is not None:
        raise InvalidPayloadError(problem)
    return payload


class EventBus:
    """An async in-process event bus restricted to a catalogue of names.

    See the module's docstring for how subscribers are run; each async
    subscriber gets ``subscriber_timeout`` seconds per event.
    """

    def __init__(
        self,
        catalogue: Mapping[str, EventSpec] = CATALOGUE,
        *,
        subscriber_timeout: float = DEFAULT_SUBSCRIBER_TIMEOUT,
    ) -> None:
        if not subscriber_timeout > 0:  # also rejects NaN
            raise ValueError(f"subscriber_timeout must be > 0 seconds, got {subscriber_timeout!r}")
        self._catalogue = dict(catalogue)
        self._subscriber_timeout = float(subscriber_timeout)
        # name -> (spec, handlers). Handler tuples are replaced, never mutated,
        # so subscribing from inside a handler cannot disturb a publish.
        self._routes: dict[str, tuple[EventSpec, tuple[Handler, ...]]] = {
            name: (spec, ()) for name, spec in self._catalogue.items()
        }

    @property
    def catalogue(self) -> Mapping[str, EventSpec]:
        """The known events, by name."""
        return self._catalogue

    def _route(self, name: str) -> tuple[EventSpec, tuple[Handler, ...]]:
        try:
            return self._routes[name]
        except (KeyError, TypeError):
            raise UnknownEventError(str(name), self._catalogue) from None

    def subscribe(self, name: str, handler: Handler) -> None:
        """Call ``handler(name, payload)`` on every publish of ``name``.

        Raises :class:`UnknownEventError` for a name outside the catalogue and
        :class:`InvalidSubscriberError` for a ``handler`` that is not callable.
        """
        spec, handlers = self._route(name)
        if not callable(handler):
            raise InvalidSubscriberError(
                f"a subscriber of {name!r} must be callable, got {type(handler).__name__}"
            )
        self._routes[name] = (spec, (*handlers, handler))

    def unsubscribe(self, name: str, handler: Handler) -> None:
        """Stop calling ``handler`` for ``name``; a no-op if it was not subscribed."""
        spec, handlers = self._route(name)
        self._routes[name] = (spec, tuple(h for h in handlers if h != handler))

    def subscribers(self, name: str) -> int:
        """How many handlers listen to ``name``."""
        return len(self._route(name)[1])

    @contextmanager
    def connected_to(self, handler: Handler, names: Iterable[str] | None = None) -> Iterator[None]:
        """Subscribe ``handler`` to ``names`` (default: every event) for a ``with`` block."""
        chosen = list(self._catalogue if names is None else names)
        for name in chosen:  # all names checked first, so a typo subscribes nothing
            self._route(name)
        for name in chosen:
            self.subscribe(name, handler)
        try:
            yield
        finally:
            for name in chosen:
                self.unsubscribe(name, handler)

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        """Deliver ``payload`` to every subscriber of ``name`` (see the module's docstring).

        Raises :class:`UnknownEventError` or :class:`InvalidPayloadError`
        before any handler runs; never raises because of a handler, except to
        pass on ``KeyboardInterrupt`` or ``SystemExit``.
        """
        try:  # inlined self._route(): this is the hot path
            spec, handlers = self._routes[name]
        except (KeyError, TypeError):
            raise UnknownEventError(str(name), self._catalogue) from None
        # check_payload's flat-dict case, inlined: this runs on every publish.
        if type(payload) is dict:
            for key, value in payload.items():
                kind = type(value)
                if type(key) is not str or (
                    kind not in SCALARS and (kind is not int or not -INT_BOUND < value < INT_BOUND)
                ):
                    payload = check_payload(name, payload)
                    break
        else:
            payload = check_payload(name, payload)
        if spec.monitored:
            monitor_logger.info(
                "event %s %s", name, payload, extra={"event": name, "payload": payload}
            )
        running: dict[asyncio.Future[Any], Handler] | None = None
        stop: BaseException | None = None  # KeyboardInterrupt or SystemExit, passed on last
        for handler in handlers:
            try:
                result = handler(name, payload)
                if result is None:
                    continue
                if type(result) is CoroutineType:
                    try:
                        blocked_on = result.send(None)  # its first step, here and now
                    except StopIteration:
                        continue
                    future: asyncio.Future[Any] = asyncio.ensure_future(
                        _Resumed(result, blocked_on)
                    )
                elif inspect.isawaitable(result):
                    future = asyncio.ensure_future(result)
                else:
                    continue
            except (KeyboardInterrupt, SystemExit) as exc:
                stop = stop or exc
                continue
            except BaseException:  # CancelledError included: raised by the subscriber itself
                logger.exception("subscriber %r failed handling event %s", handler, name)
                continue
            if running is None:
                running = {}
            running[future] = handler
        if running is not None:
            await self._finish(name, running, stop is not None)
        if stop is not None:
            raise stop

    async def _finish(
        self, name: str, running: dict[asyncio.Future[Any], Handler], stopping: bool
    ) -> None:
        """Wait for the subscribers that suspended, up to the deadline; log each failure."""
        done: set[asyncio.Future[Any]] = set()
        try:
            if not stopping:
                done, _ = await asyncio.wait(running, timeout=self._subscriber_timeout)
        finally:  # also when the publisher itself is cancelled
            for future in running:
                if future not in done:
                    future.cancel()
        for future, handler in running.items():
            if future not in done:
                if not stopping:
                    logger.error(
                        "subscriber %r failed handling event %s: it did not finish within"
                        " %gs (subscriber_timeout) and was cancelled",
                        handler,
                        name,
                        self._subscriber_timeout,
                    )
            elif future.cancelled():
                logger.error(
                    "subscriber %r failed handling event %s: it cancelled itself", handler, name
                )
            elif (error := future.exception()) is not None:
                logger.error(
                    "subscriber %r failed handling event %s", handler, name, exc_info=error
                )


class _Resumed(Coroutine[Any, Any, Any]):
    """A coroutine already started by hand, for a task to run on from its first suspension.

    The task's first step hands it what the coroutine suspended on (a future
    keeps its "blocking" flag, so the task waits on it as if the coroutine had
    yielded it); everything after goes to the coroutine itself. A cancellation
    thrown in before that first step reaches the coroutine too, which a
    generator wrapper not yet started could not pass on.
    """

    __slots__ = ("_blocked_on", "_coroutine", "_handed_over")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], blocked_on: Any) -> None:
        self._coroutine = coroutine
        self._blocked_on = blocked_on
        self._handed_over = False

    def send(self, value: Any) -> Any:
        if not self._handed_over:
            self._handed_over = True
            return self._blocked_on
        return self._coroutine.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._handed_over = True
        if val is None and tb is None:
            return self._coroutine.throw(typ)
        return self._coroutine.throw(typ, val, tb)  # asyncio passes one argument only

    def close(self) -> None:
        self._coroutine.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return (yield from self._coroutine.__await__())  # only tasks run it, through send


_bus: EventBus | None = None


def get_event_bus() -> EventBus:
    """The process-wide bus, created on first use (the seed's ``get_event_bus``)."""
    global _bus
    if _bus is None:
        _bus = EventBus()
    return _bus
