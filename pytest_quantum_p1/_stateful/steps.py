"""A step of the machine as data: the rule names, :class:`Operation`, and lists of them.

:data:`RULES` names every rule of
:class:`~pytest_quantum_p1._stateful.machine.InvalidationMachine`; an
:class:`Operation` is one step (a rule and its arguments), printed as Hypothesis
prints it; :func:`operations` draws lists of them for
:func:`~pytest_quantum_p1._stateful.replay.replay`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from hypothesis import strategies as st

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._stateful.strategies import (
    DEFAULT_TTL,
    clock_seconds,
    garbage,
    in_flight_seconds,
    policy_samples,
)

if TYPE_CHECKING:
    from hypothesis.stateful import RuleBasedStateMachine
    from hypothesis.strategies import SearchStrategy

__all__ = ["RULES", "Operation", "operations"]

#: Every rule of the machine, for ``disabled_rules``.
RULES: Final = (
    "read",
    "read_all",
    "update",
    "split_update",
    "deliver",
    "drop",
    "duplicate",
    "deliver_all",
    "disconnect",
    "reconnect",
    "advance_clock",
    "slow_fetch",
    "inject_garbage",
    "converge",
)


@dataclass(frozen=True)
class Operation:
    """One step of the machine: a rule name and its arguments.

    ``str(op)`` is the step as Hypothesis prints it (``state.read(instance=1,
    name='a')``); :func:`~pytest_quantum_p1._stateful.replay.replay` runs a list
    of them without searching.
    """

    rule: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, machine: RuleBasedStateMachine) -> None:
        """Run this step on ``machine`` (an ``InvalidationMachine``)."""
        if self.rule not in RULES:
            raise ValueError(
                _messages.MACHINE_UNKNOWN_RULE.format(rule=self.rule, rules=", ".join(RULES))
            )
        getattr(machine, self.rule)(**self.args)

    def __str__(self) -> str:
        # Keyword order as in Hypothesis's own printout, so the two read alike.
        args = ", ".join(f"{key}={value!r}" for key, value in sorted(self.args.items()))
        return f"state.{self.rule}({args})"


def operations(
    *,
    instances: int = 3,
    names: Sequence[str] = ("a", "b"),
    ttl: float = DEFAULT_TTL,
    min_size: int = 0,
    max_size: int = 20,
) -> SearchStrategy[list[Operation]]:
    """Lists of :class:`Operation` over ``instances`` and ``names``, for ``replay``.

    Useful to pin a sequence as an example test, or to drive a store without
    the state machine. Steps that find nothing to do (``deliver`` with nothing
    pending, ``reconnect`` of a connected instance) are no-ops when replayed.
    """
    if instances < 1:
        raise ValueError(_messages.MACHINE_AT_LEAST_ONE.format(name="instances", value=instances))
    if not names:
        raise ValueError(_messages.MACHINE_NO_NAMES)
    inst = st.integers(0, instances - 1)
    name = st.sampled_from(tuple(names))
    seconds = clock_seconds(ttl)

    def op(rule_name: str, **args: SearchStrategy[Any]) -> SearchStrategy[Operation]:
        return st.fixed_dictionaries(args).map(lambda drawn: Operation(rule_name, drawn))

    one = st.one_of(
        op("read", instance=inst, name=name),
        op("read_all"),
        op("update", instance=inst, name=name, policy=policy_samples(), read_back=st.booleans()),
        op("split_update", writer=inst, reader=inst, name=name, after=st.sampled_from((1, 2))),
        op("deliver", instance=inst),
        op("drop", instance=inst),
        op("duplicate", instance=inst),
        op("deliver_all"),
        op("disconnect", instance=inst),
        op("reconnect", instance=inst),
        op("advance_clock", seconds=seconds),
        op(
            "slow_fetch",
            instance=inst,
            writer=inst,
            name=name,
            in_flight=in_flight_seconds(ttl),
            lose=st.booleans(),
            read_during=st.booleans(),
        ),
        op("inject_garbage", instance=inst, data=garbage()),
        op("converge"),
    )
    return st.lists(one, min_size=min_size, max_size=max_size)
