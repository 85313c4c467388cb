"""Targets for P1-3 and deploy.health: broken in one way each, or correct in another shape.

Every builder is ``root -> P1Target``: the reference target with one part
swapped (see ``broken_targets.py``). The broken ones plant a bug a team could
write (an engine built by a background thread, a bridge that stops at the
first failing v2 node, a health check that says ok with Redis down ...) or a
rule that makes a check look at nothing; the ``correct_*`` ones are designs
the checks must not reject (a warning through a helper, a bridge isolating
node errors in tasks, a health check saying "down").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typing_extensions

from pytest_quantum_p1 import Bus, P1Target
from reference_impl.core.event_bus import get_event_bus
from reference_impl.federation.federated_engine_v2 import FederatedEngineV2
from reference_impl.federation.federation_v2_event_bridge import FederationV2EventBridge
from reference_impl.health import health
from reference_impl.p1_target import TARGET
from tests.plugin.broken_targets import _with_action, _with_v2

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "EngineNeedingItsBus",
    "EngineNeedingItsBusWarningAtItself",
    "bridge_stopping_at_a_failing_node",
    "correct_bridge_isolating_node_errors_in_tasks",
    "correct_bridge_with_an_engine_built_at_import",
    "correct_engine_built_by_a_factory",
    "correct_engine_deprecated_by_decorator",
    "correct_engine_warning_through_a_helper",
    "correct_health_raising_when_redis_is_down",
    "correct_health_reporting_down",
    "correct_live_module_sharing_a_removed_name",
    "correct_reference_probe_with_a_failing_node",
    "correct_v2_package_with_an_ignore_list",
    "docs_not_named",
    "engine_built_after_an_action_returned",
    "engine_built_by_a_background_thread",
    "engine_built_by_a_factory_warning_at_itself",
    "engine_class_the_bridge_never_builds",
    "engine_factory_returning_a_cached_engine",
    "engine_factory_that_raises",
    "engine_needing_its_bus_without_a_factory",
    "engine_reached_through_the_bridges_reexport",
    "engine_warning_through_a_helper_at_itself",
    "engine_warning_too_high",
    "health_ok_despite_a_failed_ping",
    "health_ok_without_touching_redis",
    "probe_ignoring_the_failing_node",
    "removed_paths_not_named",
    "removed_paths_where_nothing_lives",
    "source_roots_without_python",
    "v2_module_misspelt",
    "v2_package_imported_past_its_ignore_list",
]

NODE_STATUS: Final = "federation.node.status_changed"
ROUND_COMPLETED: Final = "federation.round.completed"
HERE: Final = __name__


def _quietly_build_engine(bus: Bus) -> None:
    """Build the v2 engine outside the bridge, as a stray thread would (its warning may raise)."""
    # Under -W error the warning raises, after the construction was recorded.
    with contextlib.suppress(DeprecationWarning):
        FederatedEngineV2(bus)  # type: ignore[arg-type]  # the reference bus


# --- P1-3.bridge-only-at-runtime -----------------------------------------------------


class UnusedEngineV2:
    """A deprecated engine that warns correctly, but that no bridge ever builds."""

    def __init__(self) -> None:
        warnings.warn("UnusedEngineV2 is deprecated", DeprecationWarning, stacklevel=2)


def engine_class_the_bridge_never_builds(root: Path) -> P1Target:
    """bridge-only-at-runtime: ``engine_class`` names a class the bridge does not build."""
    return _with_v2(engine_class=f"{HERE}:{UnusedEngineV2.__name__}")


def _node_status_action(side_effect: Callable[[Bus], None]) -> Callable[[Bus], Any]:
    reference = next(e for e in TARGET.required_events if e.name == NODE_STATUS).action

    async def action(bus: Bus) -> Mapping[str, Any]:
        side_effect(bus)
        return await reference(bus)

    return action


def _thread_building_engines(bus: Bus) -> None:
    def work() -> None:
        for _ in range(20):  # every 50 ms for a second
            _quietly_build_engine(bus)
            time.sleep(0.05)

    threading.Thread(target=work, name="v2-poller", daemon=True).start()


def engine_built_by_a_background_thread(root: Path) -> P1Target:
    """bridge-only-at-runtime: the node status action starts a thread building engines."""
    return _with_action(NODE_STATUS, _node_status_action(_thread_building_engines))


def _engine_half_a_second_later(bus: Bus) -> None:
    timer = threading.Timer(0.5, _quietly_build_engine, args=(bus,))
    timer.daemon = True
    timer.start()


def engine_built_after_an_action_returned(root: Path) -> P1Target:
    """bridge-only-at-runtime: an engine is built 0.5 s after the node status action returns."""
    return _with_action(NODE_STATUS, _node_status_action(_engine_half_a_second_later))


async def _node_status_through_the_reexport(bus: Bus) -> Mapping[str, Any]:
    # The bridge module imports the engine class, so it can be imported from there.
    from reference_impl.federation import federation_v2_event_bridge as bridge

    engine = bridge.FederatedEngineV2(bus)  # type: ignore[attr-defined,arg-type]  # a re-export
    node = f"v2-node-{uuid.uuid4().hex[:8]}"
    await engine.update_node_status(node, "online")
    return {"node_id": node, "old_status": "unknown", "new_status": "online"}


def engine_reached_through_the_bridges_reexport(root: Path) -> P1Target:
    """bridge-only-at-runtime: the action builds ``bridge_module.FederatedEngineV2`` itself."""
    return _with_action(NODE_STATUS, _node_status_through_the_reexport)


# The bridge of the process, with its engine, built when this module is imported:
# before any watch starts, as a backend's module-level singleton would be.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    _SINGLETON_BRIDGE: Final = FederationV2EventBridge()


async def _node_status_on_the_singleton(bus: Bus) -> Mapping[str, Any]:
    node = f"v2-node-{uuid.uuid4().hex[:8]}"  # fresh: the singleton outlives one run
    await _SINGLETON_BRIDGE.engine.update_node_status(node, "online")
    return {"node_id": node, "old_status": "unknown", "new_status": "online"}


async def _relay_on_the_singleton(
    bus: Bus, payload: Mapping[str, Any]
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    tag = uuid.uuid4().hex[:8]
    received: dict[str, list[Mapping[str, Any]]] = {f"probe-{tag}-1": [], f"probe-{tag}-2": []}
    for node_id, inbox in received.items():

        async def node(message: Mapping[str, Any], inbox: list[Mapping[str, Any]] = inbox) -> None:
            inbox.append(message["payload"])

        _SINGLETON_BRIDGE.engine.register_node(node_id, node)
    _SINGLETON_BRIDGE.start()
    try:
        await bus.publish(ROUND_COMPLETED, payload)
    finally:
        _SINGLETON_BRIDGE.stop()
    return received


def correct_bridge_with_an_engine_built_at_import(root: Path) -> P1Target:
    """Correct: one bridge (and engine) built at import; nothing constructs during the run."""
    target = _with_action(NODE_STATUS, _node_status_on_the_singleton)
    return dataclasses.replace(
        target, v2=dataclasses.replace(target.v2, relay_probe=_relay_on_the_singleton)
    )


# --- P1-3.deprecation-warning ---------------------------------------------------------
#
# Each engine below is a FederatedEngineV2 that warns its own way first (the
# reference's own warning is silenced), built by this module acting as the
# bridge, so every other P1-3 check still sees a working v2 engine.


class _QuietReferenceEngine(FederatedEngineV2):
    def _reference_init(self, bus: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            super().__init__(bus)


def _deprecated(name: str, stacklevel: int) -> None:
    warnings.warn(f"{name} is deprecated", DeprecationWarning, stacklevel=stacklevel)


class EngineWarningThroughAHelperAtItself(_QuietReferenceEngine):
    """Warns through a helper with ``stacklevel=2``: that names this ``__init__``, not the caller."""

    def __init__(self, bus: Any = None) -> None:
        _deprecated(type(self).__name__, stacklevel=2)
        self._reference_init(bus)


class EngineWarningTooHigh(_QuietReferenceEngine):
    """Warns with ``stacklevel=3``: one frame above the line that constructs it."""

    def __init__(self, bus: Any = None) -> None:
        warnings.warn("EngineWarningTooHigh is deprecated", DeprecationWarning, stacklevel=3)
        self._reference_init(bus)


class CorrectEngineWarningThroughAHelper(_QuietReferenceEngine):
    """Warns through a helper with ``stacklevel=3``: right, counted differently."""

    def __init__(self, bus: Any = None) -> None:
        _deprecated(type(self).__name__, stacklevel=3)
        self._reference_init(bus)


@typing_extensions.deprecated("CorrectEngineDeprecatedByDecorator is deprecated")
class CorrectEngineDeprecatedByDecorator(_QuietReferenceEngine):
    """Warns from the ``__new__`` that ``typing_extensions.deprecated`` installs."""

    def __init__(self, bus: Any = None) -> None:
        self._reference_init(bus)


def _with_engine(engine: type[FederatedEngineV2]) -> P1Target:
    """The target with ``engine`` as its v2 engine, built by this module as the bridge."""

    def build(bus: Bus) -> FederationV2EventBridge:
        with warnings.catch_warnings():  # the warning is the deprecation check's business
            warnings.simplefilter("ignore", DeprecationWarning)
            made = engine(bus)  # type: ignore[arg-type]  # the bridge's construction
        return FederationV2EventBridge(bus, engine=made)  # type: ignore[arg-type]

    async def relay(
        bus: Bus, payload: Mapping[str, Any]
    ) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        received: dict[str, list[Mapping[str, Any]]] = {"probe-node-1": [], "probe-node-2": []}
        bridge = build(bus)
        for node_id, inbox in received.items():

            async def node(
                message: Mapping[str, Any], inbox: list[Mapping[str, Any]] = inbox
            ) -> None:
                inbox.append(message["payload"])

            bridge.engine.register_node(node_id, node)
        bridge.start()
        try:
            await bus.publish(ROUND_COMPLETED, payload)
        finally:
            bridge.stop()
        return received

    return _with_v2(
        engine_class=f"{HERE}:{engine.__name__}",
        bridge_modules=(*TARGET.v2.bridge_modules, HERE),
        relay_probe=relay,
    )


# --- the engine needs arguments: V2Rules.engine_factory -------------------------------


class EngineNeedingItsBus(_QuietReferenceEngine):
    """A v2 engine whose constructor requires the bus, warning correctly (``stacklevel=2``)."""

    def __init__(self, bus: Any) -> None:
        warnings.warn("EngineNeedingItsBus is deprecated", DeprecationWarning, stacklevel=2)
        self._reference_init(bus)


class EngineNeedingItsBusWarningAtItself(_QuietReferenceEngine):
    """Requires the bus and warns with ``stacklevel=1``: it names its own line."""

    def __init__(self, bus: Any) -> None:
        warnings.warn("deprecated", DeprecationWarning, stacklevel=1)
        self._reference_init(bus)


def _with_factory(
    engine: type[FederatedEngineV2], factory: Callable[[], object] | None
) -> P1Target:
    target = _with_engine(engine)
    return dataclasses.replace(target, v2=dataclasses.replace(target.v2, engine_factory=factory))


def _build_engine_needing_its_bus() -> object:
    bus = get_event_bus()
    engine = EngineNeedingItsBus(bus)  # the factory's constructing line
    engine.node_statuses.clear()  # a factory may do more after constructing
    return engine


def engine_needing_its_bus_without_a_factory(root: Path) -> P1Target:
    """Error of deprecation-warning: the engine cannot be built with no arguments."""
    return _with_factory(EngineNeedingItsBus, None)


def _factory_missing_its_config() -> object:
    raise RuntimeError("FEDV2_CONFIG is not set")


def engine_factory_that_raises(root: Path) -> P1Target:
    """Error of deprecation-warning: the adapter's engine factory raises."""
    return _with_factory(EngineNeedingItsBus, _factory_missing_its_config)


_CACHED_ENGINE: list[object] = []


def _factory_returning_a_cached_engine() -> object:
    if not _CACHED_ENGINE:
        _CACHED_ENGINE.append(_build_engine_needing_its_bus())
    return _CACHED_ENGINE[0]


def engine_factory_returning_a_cached_engine(root: Path) -> P1Target:
    """Error of deprecation-warning: the factory hands back an engine built before."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _factory_returning_a_cached_engine()  # built now, before the criterion asks
    return _with_factory(EngineNeedingItsBus, _factory_returning_a_cached_engine)


def engine_built_by_a_factory_warning_at_itself(root: Path) -> P1Target:
    """deprecation-warning: built through the factory, the warning names the engine's line."""
    return _with_factory(
        EngineNeedingItsBusWarningAtItself,
        lambda: EngineNeedingItsBusWarningAtItself(get_event_bus()),
    )


def correct_engine_built_by_a_factory(root: Path) -> P1Target:
    """Correct: the engine needs its bus; the adapter's factory builds it; warns at that line."""
    return _with_factory(EngineNeedingItsBus, _build_engine_needing_its_bus)


# --- v2 as a package: legacy/fedv2, re-exported engine, ignore_imports ---------------

_FEDV2_FILES: Final = {
    "legacy/__init__.py": "",
    "legacy/fedv2/__init__.py": (
        '"""Federation v2, deprecated: kept for the bridge."""\n'
        "from legacy.fedv2.engine import FedEngineV2\n"
        "from . import wire\n"
    ),
    "legacy/fedv2/engine.py": "class FedEngineV2:\n    def __init__(self, config): ...\n",
    "legacy/fedv2/wire.py": "from .engine import FedEngineV2\n",
    "legacy/bridges/__init__.py": "",
    "legacy/bridges/v2_relay.py": "from legacy.fedv2 import FedEngineV2\n",
    "legacy/admin/__init__.py": "",
    "legacy/admin/tools/__init__.py": "",
    "legacy/admin/tools/inspect_v2.py": "import legacy.fedv2.wire\n",
    "legacy/live/__init__.py": "",
    "legacy/live/status.py": "from legacy.fedv2 import FedEngineV2\n",
}


def _fedv2_tree(root: Path, ignore_imports: tuple[str, ...]) -> P1Target:
    for name, text in _FEDV2_FILES.items():
        path = root / "fedv2_tree" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return _with_v2(
        source_roots=(root / "fedv2_tree" / "legacy",),
        v2_modules=("legacy.fedv2",),
        bridge_modules=(*TARGET.v2.bridge_modules, "legacy.bridges"),
        ignore_imports=ignore_imports,
    )


def v2_package_imported_past_its_ignore_list(root: Path) -> P1Target:
    """no-direct-imports: the admin tool is ignored, but a live module imports v2 too."""
    return _fedv2_tree(root, ("legacy.admin.** -> legacy.fedv2.wire",))


def correct_v2_package_with_an_ignore_list(root: Path) -> P1Target:
    """Correct: v2 is a package re-exporting its engine, the bridge a package, two imports ignored."""
    return _fedv2_tree(
        root, ("legacy.admin.** -> legacy.fedv2.*", "legacy.live.status -> legacy.fedv2")
    )


def engine_warning_through_a_helper_at_itself(root: Path) -> P1Target:
    """deprecation-warning: ``stacklevel=2`` from a helper names the engine's ``__init__``."""
    return _with_engine(EngineWarningThroughAHelperAtItself)


def engine_warning_too_high(root: Path) -> P1Target:
    """deprecation-warning: ``stacklevel=3`` from ``__init__`` names the constructor's caller."""
    return _with_engine(EngineWarningTooHigh)


def correct_engine_warning_through_a_helper(root: Path) -> P1Target:
    """Correct: a helper warns with ``stacklevel=3``, which names the constructing line."""
    return _with_engine(CorrectEngineWarningThroughAHelper)


def correct_engine_deprecated_by_decorator(root: Path) -> P1Target:
    """Correct: ``@typing_extensions.deprecated`` on the class warns from ``__new__``."""
    return _with_engine(CorrectEngineDeprecatedByDecorator)


# --- P1-3.files-removed, no-direct-imports, docs: a rule that looks at nothing ----------


def removed_paths_not_named(root: Path) -> P1Target:
    """files-removed: ``removed_paths`` is empty, so nothing is looked for."""
    return _with_v2(removed_paths=())


def removed_paths_where_nothing_lives(root: Path) -> P1Target:
    """files-removed: every removed path is in a directory that does not exist (a typo)."""
    typo = root / "federaton"
    return _with_v2(removed_paths=tuple(typo / p.name for p in TARGET.v2.removed_paths))


def correct_live_module_sharing_a_removed_name(root: Path) -> P1Target:
    """Correct: a live, unrelated module is named like a removed v2 file, elsewhere."""
    package = root / "wire_pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "v2_protocol.py").write_text(
        '"""The v2 of our HTTP wire format (not federation)."""\n'
    )
    return _with_v2(source_roots=(*TARGET.v2.source_roots, package))


def source_roots_without_python(root: Path) -> P1Target:
    """no-direct-imports: the only source root holds no Python file."""
    empty = root / "empty_pkg"
    empty.mkdir(exist_ok=True)
    return _with_v2(source_roots=(empty,))


def v2_module_misspelt(root: Path) -> P1Target:
    """no-direct-imports: the one v2 module is misspelt, so no import can match it."""
    return _with_v2(v2_modules=("reference_impl.federation.federated_engine_2",))


def docs_not_named(root: Path) -> P1Target:
    """docs: ``docs`` is empty, so no notice is checked."""
    return _with_v2(docs=())


# --- P1-3.bridge-relays: a failing v2 node --------------------------------------------

Transport = Callable[[Mapping[str, Any]], Any]


async def _relay_with(
    bus: Bus,
    payload: Mapping[str, Any],
    failing: Transport,
    relay_to: Callable[[list[Transport], Mapping[str, Any]], Any],
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    """A v3 -> v2 bridge of this module, relaying through ``relay_to``, the failing node first."""
    received: dict[str, list[Mapping[str, Any]]] = {"probe-node-1": [], "probe-node-2": []}
    transports: list[Transport] = [failing]
    for inbox in received.values():

        async def node(message: Mapping[str, Any], inbox: list[Mapping[str, Any]] = inbox) -> None:
            inbox.append(message["payload"])

        transports.append(node)

    async def on_round(name: str, event: Mapping[str, Any]) -> None:
        await relay_to(transports, {"event": name, "payload": dict(event)})

    bus.subscribe(ROUND_COMPLETED, on_round)
    try:
        await bus.publish(ROUND_COMPLETED, payload)
    finally:
        bus.unsubscribe(ROUND_COMPLETED, on_round)
    return received


async def _one_after_another(transports: list[Transport], message: Mapping[str, Any]) -> None:
    for transport in transports:
        await transport(message)  # the first failing node ends the relay


async def _relay_stopping_at_a_failing_node(
    bus: Bus, payload: Mapping[str, Any], failing: Transport
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    return await _relay_with(bus, payload, failing, _one_after_another)


def bridge_stopping_at_a_failing_node(root: Path) -> P1Target:
    """bridge-relays: the bridge delivers node after node, and the first one raising ends it."""
    return _with_v2(relay_probe=_relay_stopping_at_a_failing_node)


async def _each_in_its_task(transports: list[Transport], message: Mapping[str, Any]) -> None:
    tasks = [asyncio.create_task(transport(message)) for transport in transports]
    await asyncio.wait(tasks)
    for task in tasks:
        task.exception()  # retrieved: a failed node is logged, never raised


async def _relay_isolating_in_tasks(
    bus: Bus, payload: Mapping[str, Any], failing: Transport
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    return await _relay_with(bus, payload, failing, _each_in_its_task)


def correct_bridge_isolating_node_errors_in_tasks(root: Path) -> P1Target:
    """Correct: one task per v2 node, errors retrieved and dropped."""
    return _with_v2(relay_probe=_relay_isolating_in_tasks)


def correct_reference_probe_with_a_failing_node(root: Path) -> P1Target:
    """Correct: the reference bridge, probed with the failing node registered first.

    The reference adapter's own probe registers it (``reference_impl/p1_target.py``).
    """
    assert TARGET.v2.relay_probe is not None
    return _with_v2(relay_probe=TARGET.v2.relay_probe)


async def _stand_in(*args: Any, **kwargs: Any) -> None:
    """A healthy node registered where the failing one should have been."""


async def _relay_without_the_failing_node(
    bus: Bus, payload: Mapping[str, Any], failing: Transport
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    return await TARGET.v2.relay_probe(bus, payload, _stand_in)  # type: ignore[misc]  # set on TARGET


def probe_ignoring_the_failing_node(root: Path) -> P1Target:
    """bridge-relays errors: the probe takes the failing node but never registers it."""
    return _with_v2(relay_probe=_relay_without_the_failing_node)


# --- deploy.health: Redis down --------------------------------------------------------


async def _health_ok_without_redis(bus: Bus, redis: Redis) -> Mapping[str, Any]:
    return {"status": "ok", "checked_at": datetime.now(UTC).isoformat()}


def health_ok_without_touching_redis(root: Path) -> P1Target:
    """deploy.health: the health check never looks at Redis and always says ok."""
    return dataclasses.replace(TARGET, health=_health_ok_without_redis)


async def _health_ignoring_the_ping(bus: Bus, redis: Redis) -> Mapping[str, Any]:
    report = await health(bus, redis)  # type: ignore[arg-type]  # the reference bus
    # The bug: the status is taken from the bus alone.
    return {**report, "status": "ok" if report["bus"]["events"] else "degraded"}


def health_ok_despite_a_failed_ping(root: Path) -> P1Target:
    """deploy.health: Redis is pinged, the failure reported, and the status still ok."""
    return dataclasses.replace(TARGET, health=_health_ignoring_the_ping)


async def _health_saying_down(bus: Bus, redis: Redis) -> Mapping[str, Any]:
    try:
        await asyncio.wait_for(redis.ping(), timeout=0.5)
    except Exception as exc:
        return {"status": "down", "redis": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok"}


def correct_health_reporting_down(root: Path) -> P1Target:
    """Correct: the health check says "down" (not "degraded") when Redis does not answer."""
    return dataclasses.replace(TARGET, health=_health_saying_down)


async def _health_raising(bus: Bus, redis: Redis) -> Mapping[str, Any]:
    await redis.ping()  # a ConnectionError propagates: the endpoint answers 500
    return {"status": "ok"}


def correct_health_raising_when_redis_is_down(root: Path) -> P1Target:
    """Correct: the health check lets Redis's connection error through (an HTTP 500)."""
    return dataclasses.replace(TARGET, health=_health_raising)
