"""The Hypothesis state machine that searches a policy store for stale reads.

- :mod:`.model`: writes, what became of each invalidation, what each instance read;
  :meth:`~.model.Model.judge`, the checks every read is judged by;
- :mod:`.instruments`: the Redis each instance gets (every message held, idleness
  observable, one fetch held);
- :mod:`.strategies`: what the machine draws (names, policies, garbage, clock steps);
- :mod:`.steps`: a step as data (``RULES``, :class:`~.steps.Operation`, ``operations()``);
- :mod:`.machine`: :class:`~.machine.InvalidationMachine`, its rules and the story of
  its checks, :class:`~.machine.InvalidationError`, :func:`~.machine.machine_for`,
  :func:`~.machine.machine_settings`;
- :mod:`.replay`: fixed steps run without searching;
- :mod:`.search`: a seeded search, and :func:`~.search.check_no_stale_reads`, the
  time-budgeted one the acceptance run uses.

Imports run one way: instruments <- model <- strategies <- steps <- machine <- replay,
search. Importing this package imports hypothesis and redis; the plugin
imports it only when needed. Re-exported below: what the rest of the harness (the
public face, the acceptance checks) and the tests use.
"""

from __future__ import annotations

from pytest_quantum_p1._stateful.machine import (
    InvalidationError,
    InvalidationMachine,
    MachineStats,
    machine_for,
    machine_settings,
)
from pytest_quantum_p1._stateful.model import VERSION_KEY
from pytest_quantum_p1._stateful.replay import replay
from pytest_quantum_p1._stateful.search import (
    NoStaleReadsResult,
    check_no_stale_reads,
    seeded_search,
)
from pytest_quantum_p1._stateful.steps import RULES, Operation, operations
from pytest_quantum_p1._stateful.strategies import DEFAULT_TTL, garbage, policies, policy_names

__all__ = [
    "DEFAULT_TTL",
    "RULES",
    "VERSION_KEY",
    "InvalidationError",
    "InvalidationMachine",
    "MachineStats",
    "NoStaleReadsResult",
    "Operation",
    "check_no_stale_reads",
    "garbage",
    "machine_for",
    "machine_settings",
    "operations",
    "policies",
    "policy_names",
    "replay",
    "seeded_search",
]
