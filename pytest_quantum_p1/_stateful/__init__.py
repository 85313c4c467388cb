"""The Hypothesis state machine that searches a policy store for stale reads.

- :mod:`.model`: writes, what became of each invalidation, what each instance read;
  :meth:`~.model.Model.judge`, the checks every read is judged by;
- :mod:`.instruments`: the Redis each instance gets (every message held, idleness
  observable, one fetch held, one command held), or for a store of the URL form its
  wire proxy (:class:`~.instruments.WireInstrument`);
- :mod:`.strategies`: what the machine draws (names, policies, garbage, clock steps);
- :mod:`.steps`: a step as data (``RULES``, :class:`~.steps.Operation`, ``operations()``);
- :mod:`.machine`: :class:`~.machine.InvalidationMachine`, its rules and the story of
  its checks, its waits, :class:`~.machine.InvalidationError` (a verdict),
  :class:`~.machine.CouldNotRun` (no verdict, and why), :func:`~.machine.machine_for`,
  :func:`~.machine.machine_settings`;
- :mod:`.replay`: fixed steps run without searching;
- :mod:`.search`: a seeded search, the same in any process, and
  :func:`~.search.check_no_stale_reads`, the one of at least ``scenarios``
  scenarios the acceptance run uses.

Imports run one way: instruments <- model <- strategies <- steps <- machine <- replay,
search. Importing this package imports hypothesis and redis; the plugin
imports it only when needed. Re-exported below: what the rest of the harness (the
public face, the acceptance checks) and the tests use.
"""

from __future__ import annotations

from pytest_quantum_p1._stateful.machine import (
    DEFAULT_RECONNECT_TIMEOUT,
    DEFAULT_SETTLE_TIMEOUT,
    DEFAULT_STEP_TIMEOUT,
    CouldNotRun,
    InvalidationError,
    InvalidationMachine,
    MachineStats,
    machine_for,
    machine_settings,
)
from pytest_quantum_p1._stateful.model import VERSION_KEY
from pytest_quantum_p1._stateful.replay import replay
from pytest_quantum_p1._stateful.search import (
    DEFAULT_SCENARIOS,
    DEFAULT_STEPS,
    NoStaleReadsResult,
    check_no_stale_reads,
    import_independent,
    seeded_search,
)
from pytest_quantum_p1._stateful.steps import RULES, Operation, operations
from pytest_quantum_p1._stateful.strategies import DEFAULT_TTL, garbage, policies, policy_names

__all__ = [
    "DEFAULT_RECONNECT_TIMEOUT",
    "DEFAULT_SCENARIOS",
    "DEFAULT_SETTLE_TIMEOUT",
    "DEFAULT_STEPS",
    "DEFAULT_STEP_TIMEOUT",
    "DEFAULT_TTL",
    "RULES",
    "VERSION_KEY",
    "CouldNotRun",
    "InvalidationError",
    "InvalidationMachine",
    "MachineStats",
    "NoStaleReadsResult",
    "Operation",
    "check_no_stale_reads",
    "garbage",
    "import_independent",
    "machine_for",
    "machine_settings",
    "operations",
    "policies",
    "policy_names",
    "replay",
    "seeded_search",
]
