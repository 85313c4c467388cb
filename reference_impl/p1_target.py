"""The reference backend as a pytest-quantum-p1 target (``reference_impl.p1_target:TARGET``).

This is the module a team writes once to point the harness at its backend.
Each required event comes with the real action that publishes it; the v2 rules
list what P1-3 removed and what must stay.

This module reaches the deprecated v2 engine only through the bridge, as the
rest of the backend must: it imports the bridge, never the engine module, and
lets the engine's :class:`DeprecationWarning` through (the harness expects it
from the bridge's line).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pytest_quantum_p1 import Bus, Clock, P1Target, PolicyStore, RequiredEvent, V2Rules
from reference_impl.core.event_bus import EventBus, get_event_bus
from reference_impl.federation.federation_v2_event_bridge import FederationV2EventBridge
from reference_impl.health import health
from reference_impl.services.ai.hfos_manager import HedgeFundOSManager
from reference_impl.services.models.shadow_testing import ShadowTester
from reference_impl.services.safety.governor import SafetyGovernor

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["TARGET"]

_PACKAGE: Final = Path(__file__).resolve().parent
_FEDERATION: Final = _PACKAGE / "federation"
_DOCS: Final = _PACKAGE / "docs"


def _event_bus(bus: Bus) -> EventBus:
    # The reference services are typed against the reference bus; anything
    # else reaching them is a wiring mistake worth a clear message.
    if not isinstance(bus, EventBus):
        raise TypeError(
            f"the reference target needs a reference_impl EventBus, got {type(bus).__name__}"
        )
    return bus


# The service each action changes, for its announced_state hook. An action
# builds a fresh service; a context variable ties the hook to the action run
# that built it (subscribers run in that run's context, also in tasks the bus
# starts), so no run reads another's. A backend with process-wide services
# reads them directly instead: lambda: {"new_mode": get_hfos().current_mode}.
_manager: ContextVar[HedgeFundOSManager | None] = ContextVar("p1_manager", default=None)
_governor: ContextVar[SafetyGovernor | None] = ContextVar("p1_governor", default=None)
_bridge: ContextVar[FederationV2EventBridge | None] = ContextVar("p1_bridge", default=None)


async def _change_mode(bus: Bus) -> Mapping[str, Any]:
    manager = HedgeFundOSManager(_event_bus(bus), mode="normal")
    _manager.set(manager)
    await manager.set_mode("defensive")
    return {"old_mode": "normal", "new_mode": "defensive"}


def _mode_now() -> Mapping[str, Any] | None:
    manager = _manager.get()
    return None if manager is None else {"new_mode": manager.current_mode}


async def _change_safety_level(bus: Bus) -> Mapping[str, Any]:
    governor = SafetyGovernor(_event_bus(bus), level=1)
    _governor.set(governor)
    await governor.set_safety_level(3)
    return {"old_level": 1, "new_level": 3, "reason": "manual_override"}


def _level_now() -> Mapping[str, Any] | None:
    governor = _governor.get()
    return None if governor is None else {"new_level": governor.current_level}


async def _complete_shadow_test(bus: Bus) -> Mapping[str, Any]:
    tester = ShadowTester(_event_bus(bus))
    await tester.run("momentum-v7", [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4])
    return {"model_id": "momentum-v7", "verdict": "pass", "samples": 4}


async def _change_node_status(bus: Bus) -> Mapping[str, Any]:
    # Through the bridge, the only sanctioned constructor of the v2 engine.
    bridge = FederationV2EventBridge(_event_bus(bus))
    _bridge.set(bridge)
    await bridge.engine.update_node_status("v2-node-1", "online")
    return {"node_id": "v2-node-1", "old_status": "unknown", "new_status": "online"}


def _node_status_now() -> Mapping[str, Any] | None:
    bridge = _bridge.get()
    return None if bridge is None else {"new_status": bridge.engine.node_statuses.get("v2-node-1")}


async def _relay_probe(
    bus: Bus, payload: Mapping[str, Any], failing: Callable[..., Awaitable[None]]
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    received: dict[str, list[Mapping[str, Any]]] = {"probe-node-1": [], "probe-node-2": []}
    bridge = FederationV2EventBridge(_event_bus(bus))
    # Registered first: a node that is down must not keep the event from the others.
    bridge.engine.register_node("probe-node-down", failing)
    for node_id, inbox in received.items():

        async def node(message: Mapping[str, Any], inbox: list[Mapping[str, Any]] = inbox) -> None:
            inbox.append(message["payload"])

        bridge.engine.register_node(node_id, node)
    bridge.start()
    try:
        await bus.publish("federation.round.completed", payload)
    finally:
        bridge.stop()
    return received


def _store_factory(redis: Redis, clock: Clock) -> PolicyStore:
    # Imported on first use: loading the target must not need the store.
    from reference_impl.services.policy_store_v2 import PolicyStoreV2

    return PolicyStoreV2(redis, clock=clock)


def _cache_counters(store: Any) -> tuple[int, int]:
    # The store's own figures, which ops read to check the seed's hit rate;
    # the harness compares them with the reads it counted itself.
    stats = store.stats
    return stats.hits, stats.misses


async def _health(bus: Bus, redis: Redis) -> Mapping[str, Any]:
    return await health(_event_bus(bus), redis)


TARGET: Final = P1Target(
    name="reference_impl",
    bus=get_event_bus,
    required_events=(
        RequiredEvent(
            name="ai.hfos.mode_changed",
            fields=("old_mode", "new_mode", "timestamp"),
            action=_change_mode,
            announced_state=_mode_now,
        ),
        RequiredEvent(
            name="safety.governor.level_changed",
            fields=("old_level", "new_level", "reason", "timestamp"),
            action=_change_safety_level,
            announced_state=_level_now,
        ),
        RequiredEvent(
            name="model.shadow_test.completed",
            fields=("model_id", "verdict", "metrics", "samples", "timestamp"),
            action=_complete_shadow_test,
            # A completed shadow test is a result, not a state the tester keeps:
            # there is no announced state to read.
        ),
        RequiredEvent(
            name="federation.node.status_changed",
            fields=("node_id", "old_status", "new_status", "timestamp"),
            action=_change_node_status,
            announced_state=_node_status_now,
        ),
    ),
    monitor_logger="reference_impl.events",
    store_factory=_store_factory,
    policy_ttl=10.0,
    cache_counters=_cache_counters,
    v2=V2Rules(
        source_roots=(_PACKAGE,),
        v2_modules=("reference_impl.federation.federated_engine_v2",),
        bridge_modules=("reference_impl.federation.federation_v2_event_bridge",),
        removed_paths=tuple(
            _FEDERATION / f"{name}.py"
            for name in ("v2_protocol", "v2_consensus", "v2_node_discovery", "v2_heartbeat")
        ),
        docs=tuple(
            _DOCS / name
            for name in (
                "AI_TRADING_ARCHITECTURE.md",
                "ARCHITECTURE_V2_INTEGRATION_COMPLETE.md",
                "AI_OS_INTEGRATION_SUMMARY.md",
            )
        ),
        doc_notice=("Current: Federation v3", "Deprecated: Federation v2"),
        engine_class="reference_impl.federation.federated_engine_v2:FederatedEngineV2",
        relay_probe=_relay_probe,
    ),
    health=_health,
    extra={"federation": "v3 (v2 through federation_v2_event_bridge)"},
)
