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
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pytest

from pytest_quantum_p1 import _messages

if TYPE_CHECKING:
    import asyncio

    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_CHANNEL",
    "MAX_REAL_TIME_TTL",
    "REFERENCE_TARGET",
    "TARGET_KEY",
    "TARGET_NAMES",
    "Bus",
    "Clock",
    "Emitter",
    "EmitterBus",
    "EventHandler",
    "FromURL",
    "MonitorReader",
    "P1Target",
    "PolicyStore",
    "RequiredEvent",
    "StoreFactory",
    "TargetError",
    "Timing",
    "UrlStoreFactory",
    "V2Rules",
    "from_url",
    "json_record",
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


class Emitter(Protocol):
    """An ``on``/``emit`` event emitter (pyee's ``EventEmitter`` and its kind).

    Its listeners get the payload only, and it keeps no catalogue of events.
    """

    def on(self, event: str, f: Callable[..., Any]) -> Any:
        """Call ``f(payload)`` on every ``emit(event, payload)``."""

    def remove_listener(self, event: str, f: Callable[..., Any]) -> Any:
        """Undo :meth:`on`."""

    def emit(self, event: str, *args: Any) -> Any:
        """Call the listeners of ``event`` with ``args``."""


class EmitterBus:
    """An ``on``/``emit`` emitter (pyee, or any of its kind) seen as the harness's :class:`Bus`.

    Such an emitter has no catalogue: the adapter lists the event names the
    application defines (``catalogue``: its own list of event names, or
    ``emitter.event_names()`` for the events something listens to), and
    ``P1-1.catalogue`` says that it checked the adapter's list. A subscriber
    gets ``(name, payload)`` as the :class:`Bus` promises; one that returns an
    awaitable has it run as a task on the running loop (an emitter like pyee's
    base ``EventEmitter`` would drop it). ``publish`` is ``emit(name, payload)``.
    """

    def __init__(self, emitter: Emitter, catalogue: Iterable[str]) -> None:
        """Wrap ``emitter``; ``catalogue`` names every event the application defines."""
        self.emitter = emitter
        self._catalogue: dict[str, object] = dict.fromkeys(catalogue, "")
        # A list, not a dict: handlers need not be hashable (a dataclass instance).
        self._listeners: list[tuple[str, EventHandler, Callable[..., None]]] = []
        # Tasks of async subscribers, kept alive until they finish.
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def catalogue(self) -> Mapping[str, object]:
        """The event names the adapter listed (the emitter has no catalogue)."""
        return self._catalogue

    def subscribe(self, name: str, handler: EventHandler) -> None:
        """Call ``handler(name, payload)`` on every ``emit(name, payload)``."""

        def listener(payload: Mapping[str, Any], *_: Any) -> None:
            result = handler(name, payload)
            if inspect.isawaitable(result):
                import asyncio  # not at the top: loading the plugin imports this module

                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        self._listeners.append((name, handler, listener))
        self.emitter.on(name, listener)

    def unsubscribe(self, name: str, handler: EventHandler) -> None:
        """Undo :meth:`subscribe`; a handler never subscribed is ignored."""
        # The same object first; else an equal one (a bound method is a new
        # object on every attribute access, but compares equal).
        for same in (lambda h: h is handler, lambda h: h == handler):
            for entry in self._listeners:
                if entry[0] == name and same(entry[1]):
                    self._listeners.remove(entry)
                    self.emitter.remove_listener(name, entry[2])
                    return

    async def publish(self, name: str, payload: Mapping[str, Any]) -> None:
        """``emit(name, payload)`` on the emitter."""
        self.emitter.emit(name, payload)


#: Reads one monitoring record as ``(event name, payload)``, or ``None`` for a
#: record that is no event (see :attr:`P1Target.monitor_record`).
MonitorReader = Callable[[logging.LogRecord], tuple[str, Mapping[str, Any]] | None]


class json_record:  # lower case: used like a function: monitor_record=json_record()
    """The :data:`MonitorReader` of a JSON-lines monitor: one JSON object per record message.

    ``json_record(event_key="event", payload_key="payload")`` reads
    ``record.getMessage()`` as a JSON object and returns ``(obj[event_key],
    obj[payload_key])``. A message that is not JSON, not an object, or has no
    string ``event_key`` is no event (``None``), not a crash: monitors log other
    lines too. ``payload_key=None`` takes the whole object but the event key as
    the payload (``{"event": "x", "old_mode": ...}``).
    """

    def __init__(self, event_key: str = "event", payload_key: str | None = "payload") -> None:
        """Read events at ``event_key``, payloads at ``payload_key`` (``None``: the rest)."""
        self.event_key = event_key
        self.payload_key = payload_key

    def __call__(self, record: logging.LogRecord) -> tuple[str, Mapping[str, Any]] | None:
        """``(event name, payload)`` of ``record``, or ``None`` when it is no event."""
        import json  # not at the top: loading the plugin imports this module

        try:
            obj = json.loads(record.getMessage())
        except ValueError:  # JSONDecodeError, and bad UTF-8 in bytes
            return None
        if not isinstance(obj, dict):
            return None
        name = obj.get(self.event_key)
        if not isinstance(name, str):
            return None
        if self.payload_key is None:
            return name, {k: v for k, v in obj.items() if k != self.event_key}
        payload = obj.get(self.payload_key)
        if not isinstance(payload, dict):
            return None
        return name, payload

    def __repr__(self) -> str:
        return f"json_record(event_key={self.event_key!r}, payload_key={self.payload_key!r})"


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

#: ``(redis URL, clock) -> store``: a store that builds its own Redis client.
UrlStoreFactory = Callable[[str, Clock], PolicyStore]


@dataclass(frozen=True)
class FromURL:
    """A store factory of the URL form: ``from_url(lambda url, clock: MyStore(url, clock))``.

    For a store that owns its Redis connection (``redis.asyncio.from_url(url,
    decode_responses=True)`` in its ``initialize()``, or any other client
    library): the harness gives each instance the URL of a proxy of its own
    between the store and Redis (:mod:`pytest_quantum_p1._wire`) and observes
    the store on the wire: storage reads, publishes, pushes, subscriptions.
    Nothing about the client is assumed: RESP2 or RESP3, decoded or not.
    """

    make: UrlStoreFactory

    def __call__(self, url: str, clock: Clock) -> PolicyStore:
        return self.make(url, clock)

    def __repr__(self) -> str:
        name = getattr(self.make, "__qualname__", repr(self.make))
        return f"from_url({name})"


def from_url(make: UrlStoreFactory) -> FromURL:
    """Mark ``make`` as a URL factory: ``(url, clock) -> store``; see :class:`FromURL`."""
    if isinstance(make, FromURL):
        return make
    if not callable(make):
        raise TargetError(_messages.FROM_URL_NOT_CALLABLE.format(got=type(make).__name__))
    return FromURL(make)


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
    #: Dotted names of the deprecated v2 modules or packages still present (a
    #: package covers its submodules, and imports inside it are its own business:
    #: name ``legacy.fedv2`` when its ``__init__`` re-exports the engine).
    v2_modules: tuple[str, ...]
    #: Dotted names of the only modules (or packages, with their submodules)
    #: allowed to import or construct v2.
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
    #: Builds the engine for ``P1-3.deprecation-warning`` when it cannot be built
    #: with no arguments (``lambda: FedEngineV2(config={})``). The warning must
    #: then name the factory's line: that is where the engine class is called.
    #: ``None``: the harness calls ``engine_class`` with no arguments.
    engine_factory: Callable[[], object] | None = None
    #: Imports allowed anyway, as import-linter's ``ignore_imports`` writes them:
    #: ``"importer -> imported"`` with dotted names, where a ``*`` part stands for
    #: one module name and ``**`` for one or more (``"app.**.admin -> legacy.fedv2"``).
    #: Matched against the module doing the import and the module it names.
    ignore_imports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Checked when the adapter is loaded, not when the scan runs: a typo here
        # is a setting to fix, not a verdict about the backend.
        from pytest_quantum_p1._v2.modules import ignore_pattern

        for expression in self.ignore_imports:
            try:
                ignore_pattern(expression)
            except ValueError as exc:
                raise TargetError(str(exc)) from None


@dataclass(frozen=True)
class Timing:
    """The real seconds the harness waits for a store, when the target's needs more.

    Used by ``P1-2.no-stale-reads`` (the state machine's waits) and by
    ``P1-2.link-recovery`` (how long an instance may take to subscribe again).
    The defaults are the machine's: a store with a 10 s reconnect backoff
    declares ``Timing(reconnect_timeout=15)``. Each must be finite and > 0.
    """

    #: A store idle again after a step (its own invalidations processed).
    settle_timeout: float = 5.0
    #: A store back at its subscription after its link was cut.
    reconnect_timeout: float = 5.0

    def __post_init__(self) -> None:
        for label in ("settle_timeout", "reconnect_timeout"):
            value = getattr(self, label)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise TargetError(_messages.TARGET_BAD_TIMING.format(name=label, value=value))


#: The longest ``policy_ttl`` a ``real_time`` target may declare, in real seconds.
MAX_REAL_TIME_TTL = 2.0


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
    #: Builds one store instance, not yet initialised: ``(redis client, clock) ->
    #: store`` (the store uses the client the harness gives it), or
    #: ``from_url((url, clock) -> store)`` (the store builds its own client).
    store_factory: StoreFactory | FromURL
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
    #: ``json_record()`` reads a monitor writing one JSON object per record.
    monitor_record: MonitorReader | None = None
    #: The store's waits: raise them for a store that reconnects slowly.
    timing: Timing = field(default_factory=Timing)
    #: The store keeps time itself (it reads ``time.monotonic()``, no clock
    #: parameter): the harness cannot move its clock. ``policy_ttl`` is then in
    #: real seconds and must be short (at most :data:`MAX_REAL_TIME_TTL`), since
    #: every TTL the checks wait out is waited for real; the factory still takes
    #: ``(redis or url, clock)`` and the store ignores the clock. The report then
    #: says each time-driven figure was measured in real time, and over how long.
    real_time: bool = False

    def __post_init__(self) -> None:
        # Checked when the adapter is loaded: a long real TTL would make the run
        # sleep for minutes before any verdict, so it is a setting to fix.
        if self.real_time:
            ttl = self.policy_ttl
            if (
                isinstance(ttl, bool)
                or not isinstance(ttl, (int, float))
                or not (0 < ttl <= MAX_REAL_TIME_TTL)
            ):
                raise TargetError(
                    _messages.TARGET_REAL_TIME_TTL.format(ttl=ttl, maximum=MAX_REAL_TIME_TTL)
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
