"""Running fixed steps on a machine, without searching: :func:`replay`."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_quantum_p1._stateful.machine import InvalidationMachine
from pytest_quantum_p1._stateful.steps import Operation

__all__ = ["replay"]


def replay(
    machine: type[InvalidationMachine],
    steps: Sequence[Operation],
    *,
    names: Sequence[str] = ("a", "b"),
) -> InvalidationMachine:
    """Run ``steps`` on a new ``machine`` after creating ``names``; return it (torn down).

    Raises what the machine raises
    (:class:`~pytest_quantum_p1._stateful.machine.InvalidationError` for a
    property violation). The returned machine's ``trace`` lists the steps it ran.
    """
    state = machine()
    try:
        state.create_policies(names=list(names), policy={})
        for step in steps:
            step.apply(state)
    finally:
        state.teardown()
    return state
