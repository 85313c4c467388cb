"""The target: the one object through which the harness reaches a backend.

A team points the harness at its backend by writing one short module that
builds a :class:`P1Target` and naming it with ``p1_target = module:attr``.
Everything the harness checks goes through this object; nothing else about the
backend is assumed. ``reference_impl/p1_target.py`` is the worked example.

This module imports nothing heavy (no redis, no hypothesis): it is loaded with
the plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_TARGET",
    "Bus",
    "Clock",
    "EventHandler",
    "P1Target",
    "PolicyStore",
    "RequiredEvent",
    "StoreFactory",
    "TargetError",
    "V2Rules",
    "load_target",
]

#: What ``p1_target`` names when the user names nothing.
DEFAULT_TARGET = "reference_impl.p1_target:TARGET"

#: A monotonic clock in seconds, injected into stores so TTLs can be driven.
Clock = Callable[[], float]

#: A bus subscriber: called with ``(event name, payload)``; may be async.
EventHandler = Callable[[str, Mapping[str, Any]], Awaitable[None] | None]


@runtime_checkable
class Bus(Protocol):
    """The event bus as the harness uses it."""

    @property
    def catalogue(self) -> Mapping[str, object]:
        """The known event names (values are the bus's own descriptions)."""

    def subscribe(self, name: str, handler: EventHandler) -> None:
        """Call ``handler(name, payload)`` on every publish of ``name``."""

    def unsubscribe(self, name: str, handler: EventHandler) -> None:
        """Undo :meth:`subscribe`."""

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        """Deliver ``payload`` to the subscribers of ``name``."""


@runtime_checkable
class PolicyStore(Protocol):
    """A policy store with a local cache invalidated through Redis pub/sub.

    The harness gives each store its own Redis client and expects it to
    subscribe with ``client.pubsub()`` to the target's ``invalidation_channel``,
    whose messages are policy names. It counts storage reads on that client
    (``GET`` and friends issued outside pipelines) itself.
    """

    async def initialize(self) -> None:
        """Connect and subscribe; invalidations sent after this returns must be seen."""

    async def get_policy(self, name: str) -> Mapping[str, Any]:
        """The policy, from cache when fresh."""

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        """Store the policy and invalidate it on every instance."""

    async def close(self) -> None:
        """Stop listening and release connections."""


#: ``(redis.asyncio client, clock) -> store``; the store is not yet initialised.
StoreFactory = Callable[["Redis", Clock], PolicyStore]


@dataclass(frozen=True)
class RequiredEvent:
    """An event P1-1 requires, and the real action that must publish it."""

    name: str
    #: Payload fields the event must carry.
    fields: tuple[str, ...]
    #: Performs the real action (a mode change, ...) on the given bus and
    #: returns the values the published event must carry, a subset of ``fields``.
    action: Callable[[Bus], Awaitable[Mapping[str, Any]]]
    #: The field holding an ISO-8601 UTC timestamp, or ``None``.
    timestamp_field: str | None = "timestamp"


@dataclass(frozen=True)
class V2Rules:
    """What P1-3 requires of the federation v2 removal."""

    #: Directories whose ``.py`` files are scanned for v2 imports.
    source_roots: tuple[Path, ...]
    #: Dotted names of the deprecated v2 modules still present.
    v2_modules: tuple[str, ...]
    #: Dotted names of the only modules allowed to import or construct v2.
    bridge_modules: tuple[str, ...]
    #: Paths that must no longer exist (also searched for by file name).
    removed_paths: tuple[Path, ...]
    #: Documents that must carry the deprecation notice.
    docs: tuple[Path, ...]
    #: Phrases every document in ``docs`` must contain (case-insensitive).
    doc_notice: tuple[str, ...]
    #: The v2 engine class watched at run time, as ``"module:Class"``.
    engine_class: str
    #: Publishes ``payload`` as a v3 federation event on the bus, with the bridge
    #: running and v2 nodes registered, and returns what each node received
    #: (node id -> payloads, in order); ``None`` if the target has no bridge.
    relay_probe: (
        Callable[[Bus, Mapping[str, Any]], Awaitable[Mapping[str, Sequence[Mapping[str, Any]]]]]
        | None
    ) = None


@dataclass(frozen=True)
class P1Target:
    """Everything the harness needs to know about one backend."""

    name: str
    #: Returns the bus the application publishes on (usually process-wide).
    bus: Callable[[], Bus]
    required_events: tuple[RequiredEvent, ...]
    #: Logger on which each monitored event is one record carrying
    #: ``record.event`` (the name) and ``record.payload``.
    monitor_logger: str
    store_factory: StoreFactory
    #: The TTL, in seconds of the injected clock, that the factory's stores use.
    policy_ttl: float
    v2: V2Rules
    invalidation_channel: str = "policy:invalidate"
    #: ``(bus, redis client) -> report``; healthy when ``report["status"] == "ok"``.
    health: Callable[[Bus, Redis], Awaitable[Mapping[str, Any]]] | None = None
    #: Free-form facts shown in the report header.
    extra: Mapping[str, str] = field(default_factory=dict)


class TargetError(Exception):
    """The configured target cannot be loaded or is not a :class:`P1Target`."""


def load_target(spec: str) -> P1Target:
    """Import ``module:attr`` and return the :class:`P1Target` it names.

    ``attr`` may also be a zero-argument callable returning the target.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"p1_target must look like 'package.module:attr', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import target module {module_name!r}: {exc}") from exc
    except Exception as exc:  # the module itself is broken: still the user's setting to fix
        raise TargetError(
            f"importing target module {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    try:
        obj: object = getattr(module, attr)
    except AttributeError:
        raise TargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, P1Target) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise TargetError(f"{spec}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, P1Target):
        raise TargetError(f"{spec} is a {type(obj).__name__}, not a pytest_quantum_p1.P1Target")
    return obj
