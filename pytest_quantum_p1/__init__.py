"""pytest-quantum-p1: prove in CI that a backend keeps its P1 maintenance promises.

Load with ``pytest -p quantum_p1``. Importing this package stays cheap: every
public name is imported from its module on first access (PEP 562), so loading
the plugin pulls in neither redis, fakeredis, hypothesis, asyncio nor even the
target protocol before a test needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_quantum_p1._clock import RealClock, VirtualClock
    from pytest_quantum_p1._events import ANY, EventRecorder, RecordedEvent, UnknownEventName
    from pytest_quantum_p1._harness.cluster import (
        ClusterTimeout,
        PolicyCluster,
        PolicyClusterFactory,
    )
    from pytest_quantum_p1._harness.figures import ClusterStats
    from pytest_quantum_p1._harness.process import MemberProcessError
    from pytest_quantum_p1._latency import (
        LatencyRecorder,
        LatencyStats,
        measure_latency,
        measure_latency_async,
    )
    from pytest_quantum_p1._options import P1Settings
    from pytest_quantum_p1._redis.source import RedisFactory
    from pytest_quantum_p1._redis.url import RedisURL
    from pytest_quantum_p1._stateful.machine import (
        InvalidationError,
        InvalidationMachine,
        MachineStats,
        machine_for,
        machine_settings,
    )
    from pytest_quantum_p1._stateful.replay import replay
    from pytest_quantum_p1._stateful.search import NoStaleReadsResult, check_no_stale_reads
    from pytest_quantum_p1._stateful.steps import Operation, operations
    from pytest_quantum_p1._stateful.strategies import policies, policy_names
    from pytest_quantum_p1._target import (
        REFERENCE_TARGET,
        Bus,
        Clock,
        Emitter,
        EmitterBus,
        EventHandler,
        FromURL,
        MonitorReader,
        P1Target,
        PolicyStore,
        RequiredEvent,
        StoreFactory,
        TargetError,
        Timing,
        UrlStoreFactory,
        V2Rules,
        from_url,
        json_record,
        load_target,
    )
    from pytest_quantum_p1._units import parse_duration
    from pytest_quantum_p1._v2.guard import V2Construction, V2Guard
    from pytest_quantum_p1._v2.scan import V2ScanResult, V2Violation

__all__ = [
    "ANY",
    "REFERENCE_TARGET",
    "Bus",
    "Clock",
    "ClusterStats",
    "ClusterTimeout",
    "Emitter",
    "EmitterBus",
    "EventHandler",
    "EventRecorder",
    "FromURL",
    "InvalidationError",
    "InvalidationMachine",
    "LatencyRecorder",
    "LatencyStats",
    "MachineStats",
    "MemberProcessError",
    "MonitorReader",
    "NoStaleReadsResult",
    "Operation",
    "P1Settings",
    "P1Target",
    "PolicyCluster",
    "PolicyClusterFactory",
    "PolicyStore",
    "RealClock",
    "RecordedEvent",
    "RedisFactory",
    "RedisURL",
    "RequiredEvent",
    "StoreFactory",
    "TargetError",
    "Timing",
    "UnknownEventName",
    "UrlStoreFactory",
    "V2Construction",
    "V2Guard",
    "V2Rules",
    "V2ScanResult",
    "V2Violation",
    "VirtualClock",
    "check_no_stale_reads",
    "from_url",
    "json_record",
    "load_target",
    "machine_for",
    "machine_settings",
    "measure_latency",
    "measure_latency_async",
    "operations",
    "parse_duration",
    "policies",
    "policy_names",
    "replay",
]

# Public name -> the private module that defines it, imported on first access.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "Bus",
            "Clock",
            "Emitter",
            "EmitterBus",
            "EventHandler",
            "FromURL",
            "MonitorReader",
            "P1Target",
            "PolicyStore",
            "REFERENCE_TARGET",
            "RequiredEvent",
            "StoreFactory",
            "TargetError",
            "Timing",
            "UrlStoreFactory",
            "V2Rules",
            "from_url",
            "json_record",
            "load_target",
        ),
        "_target",
    ),
    "ANY": "_events",
    "EventRecorder": "_events",
    "RecordedEvent": "_events",
    "UnknownEventName": "_events",
    "LatencyRecorder": "_latency",
    "LatencyStats": "_latency",
    "measure_latency": "_latency",
    "measure_latency_async": "_latency",
    "P1Settings": "_options",
    "parse_duration": "_units",
    "VirtualClock": "_clock",
    "RealClock": "_clock",
    "PolicyCluster": "_harness.cluster",
    "ClusterStats": "_harness.figures",
    "ClusterTimeout": "_harness.cluster",
    "MemberProcessError": "_harness.process",
    "InvalidationMachine": "_stateful.machine",
    "InvalidationError": "_stateful.machine",
    "MachineStats": "_stateful.machine",
    "NoStaleReadsResult": "_stateful.search",
    "Operation": "_stateful.steps",
    "check_no_stale_reads": "_stateful.search",
    "machine_for": "_stateful.machine",
    "machine_settings": "_stateful.machine",
    "replay": "_stateful.replay",
    "policy_names": "_stateful.strategies",
    "policies": "_stateful.strategies",
    "operations": "_stateful.steps",
    "V2Construction": "_v2.guard",
    "V2Guard": "_v2.guard",
    "V2ScanResult": "_v2.scan",
    "V2Violation": "_v2.scan",
    "PolicyClusterFactory": "_harness.cluster",
    "RedisFactory": "_redis.source",
    "RedisURL": "_redis.url",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
