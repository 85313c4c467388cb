"""The target: the one object through which the harness reaches a backend.

A team points the harness at its backend by writing one short module that
builds a :class:`P1Target` and naming it with ``p1_target = module:attr``.
Everything the harness checks goes through this object; nothing else about the
backend is assumed. ``reference_impl/p1_target.py`` is the worked example.

This module imports nothing heavy (no redis, no hypothesis, not the target):
the option definitions import it for :data:`TARGET_NAMES`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pytest

from pytest_quantum_p1 import _messages

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_CHANNEL",
    "REFERENCE_TARGET",
    "TARGET_KEY",
    "TARGET_NAMES",
    "Bus",
    "Clock",
    "EventHandler",
    "P1Target",
    "PolicyStore",
    "RequiredEvent",
    "StoreFactory",
    "TargetError",
    "V2Rules",
    "load_configured_target",
    "load_target",
    "resolve",
]

#: The bundled example backend's target. There is no default target: checking
#: this when a team forgot to name its backend would be green about code nobody
#: asked about. It is reached by its short name, ``--p1-target=reference``.
REFERENCE_TARGET = "reference_impl.p1_target:TARGET"

#: Short names ``p1_target`` accepts instead of ``package.module:attr``.
TARGET_NAMES = {"reference": REFERENCE_TARGET}

#: The pub/sub channel a store's invalidations travel on, unless the target says otherwise.
DEFAULT_CHANNEL = "policy:invalidate"

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
    #: Reads, from the running system, the current values of the payload fields
    #: the event announces (``{"new_mode": manager.current_mode}``). The harness
    #: calls it from a subscriber while the event is delivered, to prove the state
    #: changed before it was announced; it may return ``None`` when it cannot
    #: tell. ``None`` (the default): not checked, and the report says so.
    announced_state: Callable[[], Mapping[str, Any] | None] | None = None


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
    #: A probe taking a third argument gets a failing v2 node: an async
    #: transport that raises ``ConnectionError`` on every call. The probe
    #: registers it first, before the healthy nodes, and leaves it out of what
    #: it returns; every healthy node must still get the event.
    relay_probe: Callable[..., Awaitable[Mapping[str, Sequence[Mapping[str, Any]]]]] | None = None
    #: Seconds ``P1-3.bridge-only-at-runtime`` keeps watching after the target
    #: calls it drives return, for threads and tasks the target left running.
    runtime_grace: float = 1.0


@dataclass(frozen=True)
class P1Target:
    """Everything the harness needs to know about one backend."""

    name: str
    #: Returns the bus the application publishes on (usually process-wide).
    bus: Callable[[], Bus]
    required_events: tuple[RequiredEvent, ...]
    #: Logger on which each monitored event is one record carrying
    #: ``record.event`` (the name) and ``record.payload`` (or as
    #: ``monitor_record`` reads it), at ``monitor_level`` or above.
    monitor_logger: str
    store_factory: StoreFactory
    #: The TTL, in seconds of the injected clock, that the factory's stores use.
    policy_ttl: float
    v2: V2Rules
    invalidation_channel: str = DEFAULT_CHANNEL
    #: Reads a store's own counters as ``store -> (hits, misses)``, so the harness
    #: can check them against what it counted itself (``P1-2.counters``); the store
    #: is one the factory made, under whatever names it keeps them. ``None``: the
    #: store keeps no counters, and the report says so.
    cache_counters: Callable[[Any], tuple[int, int]] | None = None
    #: ``(bus, redis client) -> report``; healthy when ``report["status"] == "ok"``.
    health: Callable[[Bus, Redis], Awaitable[Mapping[str, Any]]] | None = None
    #: Free-form facts shown in the report header.
    extra: Mapping[str, str] = field(default_factory=dict)
    #: The lowest level production monitoring keeps on ``monitor_logger``:
    #: records below it are never seen there, so they do not count as logged.
    monitor_level: int = logging.INFO
    #: Reads one record of ``monitor_logger`` as ``(event name, payload)``, or
    #: ``None`` for a record that is no event (a monitor writing JSON lines parses
    #: ``record.getMessage()``). ``None``: ``record.event`` and ``record.payload``.
    monitor_record: Callable[[logging.LogRecord], tuple[str, Mapping[str, Any]] | None] | None = (
        None
    )


class TargetError(Exception):
    """The configured target cannot be loaded or is not a :class:`P1Target`."""


def resolve(spec: str) -> object:
    """The object ``spec`` names: ``package.module:attr``, where ``attr`` may be dotted.

    The one ``module:attr`` resolver of the harness (targets, store factories,
    the v2 engine class). Raises :class:`TargetError` saying what is wrong:
    the shape, a module that cannot be imported or raises, a missing attribute.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(_messages.SPEC_INVALID.format(spec=spec))
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(
            _messages.SPEC_NOT_IMPORTABLE.format(module=module_name, error=exc)
        ) from exc
    except Exception as exc:  # the module itself is broken: still the user's setting to fix
        raise TargetError(
            _messages.SPEC_MODULE_RAISED.format(
                module=module_name, type=type(exc).__name__, error=exc
            )
        ) from exc
    except KeyboardInterrupt:
        raise  # the user's Ctrl-C
    except BaseException as exc:  # sys.exit() at import: a broken setting, not a crash of pytest
        raise TargetError(
            _messages.SPEC_MODULE_EXITED.format(
                module=module_name, type=type(exc).__name__, error=exc
            )
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(
                _messages.SPEC_NO_ATTRIBUTE.format(module=module_name, attr=attr)
            ) from None
    return obj


def accepts(fn: Callable[..., object], count: int) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments."""
    try:
        inspect.signature(fn).bind(*([None] * count))
    except TypeError:
        return False
    except ValueError:  # no signature (some builtins): assume the documented form
        return count == 2
    return True


def load_target(spec: str) -> P1Target:
    """Import ``module:attr`` and return the :class:`P1Target` it names.

    ``attr`` may also be a zero-argument callable returning the target.
    """
    obj = resolve(spec)
    if not isinstance(obj, P1Target) and callable(obj):
        try:
            obj = obj()
        except KeyboardInterrupt:
            raise  # the user's Ctrl-C
        except BaseException as exc:  # sys.exit() included: the setting is what to fix
            raise TargetError(f"{spec}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, P1Target):
        raise TargetError(f"{spec} is a {type(obj).__name__}, not a pytest_quantum_p1.P1Target")
    return obj


#: The loaded target, cached once the first fixture needs it.
TARGET_KEY = pytest.StashKey[P1Target]()


def load_configured_target(config: pytest.Config, spec: str, source: str) -> P1Target:
    """The target ``spec`` (set by ``source``), imported on first use and cached in ``config.stash``.

    Raises :class:`TargetError` with the message users read, naming the setting to fix.
    """
    cached = config.stash.get(TARGET_KEY, None)
    if cached is not None:
        return cached
    try:
        target = load_target(spec)
    except TargetError as exc:
        raise TargetError(
            _messages.TARGET_LOAD_FAILED.format(spec=spec, source=source, error=exc)
        ) from exc
    config.stash[TARGET_KEY] = target
    return target
