"""fleet as a pytest-quantum-p1 target: ``--p1-target=fleet_p1_target:TARGET``, ``examples/`` on the path.

Written from the README alone; nothing in ``fleet`` changes for it (verdicts:
``tests/examples/test_fleet_acceptance.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from fleet import events
from fleet.cache import policies
from fleet.federation.bridge import V2Bridge
from fleet.health import readiness
from fleet.legacy.fedv2 import FedV2Engine
from fleet.models.shadow import ShadowRunner
from fleet.ops.modes import ModeService
from fleet.safety.governor import Governor

from pytest_quantum_p1 import (
    Bus,
    EmitterBus,
    P1Target,
    RequiredEvent,
    V2Rules,
    from_url,
    json_record,
)

ROOT = Path(events.__file__).resolve().parent
_REMOVED = ("protocol", "consensus", "node_discovery", "heartbeat")

# fleet's bus is a pyee emitter: handlers get the payload only, and it has no catalogue.
_E = events.get_bus()
_BUS = EmitterBus(_E, catalogue=events.EVENTS)
# What the running action's service announces, read while subscribers get its event.
_state = ContextVar[Any]("fleet_state", default=lambda: None)


async def _change_mode(bus: Bus) -> Mapping[str, Any]:
    service = ModeService(_E, mode="normal")
    _state.set(lambda: {"new_mode": service.mode})
    service.set_mode("defensive")  # synchronous, as fleet's request handlers call it
    return {"old_mode": "normal", "new_mode": "defensive"}


async def _change_level(bus: Bus) -> Mapping[str, Any]:
    governor = Governor(_E, level=1)
    _state.set(lambda: {"new_level": governor.level})
    await governor.set_level(3)
    return {"old_level": 1, "new_level": 3, "reason": "manual_override"}


async def _shadow_test(bus: Bus) -> Mapping[str, Any]:
    await ShadowRunner(_E).complete("momentum-v7", [0.1, 0.2], [0.1, 0.2])
    return {"model_id": "momentum-v7", "verdict": "pass", "samples": 2}


async def _node_status(bus: Bus) -> Mapping[str, Any]:
    bridge = V2Bridge(_E)  # the bridge: the only sanctioned builder of the v2 engine
    _state.set(lambda: {"new_status": bridge.engine.node_status.get("n1")})
    await bridge.engine.update_node_status("n1", "up")
    return {"node_id": "n1", "old_status": "unknown", "new_status": "up"}


async def _deliver(inbox: list[Any], message: Mapping[str, Any]) -> None:
    inbox.append(message["payload"])


async def _relay_probe(bus: Bus, payload: Any, failing: Any) -> Mapping[str, list[Any]]:
    received: dict[str, list[Any]] = {"probe-1": [], "probe-2": []}
    bridge = V2Bridge(_E)
    bridge.engine.register_node("probe-down", failing)  # first: it must not stop the others
    for node_id, inbox in received.items():
        bridge.engine.register_node(node_id, functools.partial(_deliver, inbox))
    bridge.start()
    await bus.publish("federation.round.completed", payload)
    await _E.wait_for_complete()  # pyee runs the async relay as a task
    bridge.stop()
    return received


def _event(name: str, fields: str, action: Any) -> RequiredEvent:
    fields_ = (*fields.split(), "timestamp")
    return RequiredEvent(name, fields_, action, announced_state=lambda: _state.get()())


TARGET = P1Target(
    name="fleet",
    bus=lambda: _BUS,
    required_events=(
        _event("ai.hfos.mode_changed", "old_mode new_mode", _change_mode),
        _event("safety.governor.level_changed", "old_level new_level reason", _change_level),
        _event("model.shadow_test.completed", "model_id verdict metrics samples", _shadow_test),
        _event("federation.node.status_changed", "node_id old_status new_status", _node_status),
    ),
    monitor_logger="fleet.monitor",
    monitor_record=json_record(),  # fleet.monitor logs {"event": ..., "payload": ...} lines
    # PolicyCache builds its own client from the URL it is given: the URL form.
    store_factory=from_url(lambda url, clock: policies.PolicyCache(url, clock=clock)),
    policy_ttl=10.0,
    invalidation_channel=policies.CHANNEL,
    cache_counters=lambda cache: (cache.hits, cache.misses),
    v2=V2Rules(
        source_roots=(ROOT,),
        v2_modules=("fleet.legacy.fedv2",),  # the package: its __init__ re-exports the engine
        bridge_modules=("fleet.federation.bridge",),
        removed_paths=tuple(ROOT / f"legacy/fedv2/{name}.py" for name in _REMOVED),
        docs=(ROOT / "docs/ARCHITECTURE.md", ROOT / "docs/FEDERATION.md"),
        doc_notice=("Current: Federation v3", "Deprecated: Federation v2"),
        engine_class="fleet.legacy.fedv2.engine:FedV2Engine",
        engine_factory=lambda: FedV2Engine(_E, cluster="p1"),  # it needs its bus and cluster
        relay_probe=_relay_probe,
    ),
    health=lambda bus, client: readiness(_E, client),
)
