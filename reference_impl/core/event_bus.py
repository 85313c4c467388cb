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

Handlers are called in subscription order with ``(name, payload)``; they may be
plain functions or coroutine functions. A handler that raises is logged with
the event name and skipped: it never stops the publish or the other handlers.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from reference_impl.core.plain_json import SCALARS, is_plain, json_problem
from reference_impl.errors import InvalidPayloadError, UnknownEventError

__all__ = [
    "CATALOGUE",
    "EventBus",
    "EventSpec",
    "Handler",
    "get_event_bus",
]

Handler = Callable[[str, Mapping[str, Any]], Awaitable[None] | None]

logger = logging.getLogger(__name__)
#: Monitoring records go to their own logger so operators can route them apart.
monitor_logger = logging.getLogger("reference_impl.events")


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
    """An async in-process event bus restricted to a catalogue of names."""

    def __init__(self, catalogue: Mapping[str, EventSpec] = CATALOGUE) -> None:
        self._catalogue = dict(catalogue)
        # name -> (spec, handlers). Handler tuples are replaced, never mutated,
        # so subscribing from inside a handler cannot disturb a publish.
        self._routes: dict[str, tuple[EventSpec, tuple[tuple[Handler, bool], ...]]] = {
            name: (spec, ()) for name, spec in self._catalogue.items()
        }

    @property
    def catalogue(self) -> Mapping[str, EventSpec]:
        """The known events, by name."""
        return self._catalogue

    def _route(self, name: str) -> tuple[EventSpec, tuple[tuple[Handler, bool], ...]]:
        try:
            return self._routes[name]
        except (KeyError, TypeError):
            raise UnknownEventError(str(name), self._catalogue) from None

    def subscribe(self, name: str, handler: Handler) -> None:
        """Call ``handler(name, payload)`` on every publish of ``name``."""
        spec, handlers = self._route(name)
        is_async = inspect.iscoroutinefunction(handler)
        self._routes[name] = (spec, (*handlers, (handler, is_async)))

    def unsubscribe(self, name: str, handler: Handler) -> None:
        """Stop calling ``handler`` for ``name``; a no-op if it was not subscribed."""
        spec, handlers = self._route(name)
        self._routes[name] = (spec, tuple(h for h in handlers if h[0] != handler))

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
        """Deliver ``payload`` to every subscriber of ``name``, in order.

        Raises :class:`UnknownEventError` or :class:`InvalidPayloadError`
        before any handler runs; never raises because of a handler.
        """
        try:  # inlined self._route(): this is the hot path
            spec, handlers = self._routes[name]
        except (KeyError, TypeError):
            raise UnknownEventError(str(name), self._catalogue) from None
        # check_payload's flat-dict case, inlined: this runs on every publish.
        if type(payload) is dict:
            for key, value in payload.items():
                if type(key) is not str or type(value) not in SCALARS:
                    payload = check_payload(name, payload)
                    break
        else:
            payload = check_payload(name, payload)
        if spec.monitored:
            monitor_logger.info(
                "event %s %s", name, payload, extra={"event": name, "payload": payload}
            )
        for handler, is_async in handlers:
            try:
                if is_async:
                    await handler(name, payload)  # type: ignore[misc]
                else:
                    result = handler(name, payload)
                    # Objects with an async __call__ are not coroutine functions.
                    if result is not None and inspect.isawaitable(result):
                        await result
            except Exception:
                logger.exception("subscriber %r failed handling event %s", handler, name)


_bus: EventBus | None = None


def get_event_bus() -> EventBus:
    """The process-wide bus, created on first use (the seed's ``get_event_bus``)."""
    global _bus
    if _bus is None:
        _bus = EventBus()
    return _bus
