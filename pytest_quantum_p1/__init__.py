"""pytest-quantum-p1: prove in CI that a backend keeps its P1 maintenance promises.

Load with ``pytest -p quantum_p1``. Importing this package stays cheap: the
public names that need redis or hypothesis are imported on first access.
"""

from __future__ import annotations

from pytest_quantum_p1._target import (
    DEFAULT_TARGET,
    Bus,
    Clock,
    EventHandler,
    P1Target,
    PolicyStore,
    RequiredEvent,
    StoreFactory,
    TargetError,
    V2Rules,
    load_target,
)

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
