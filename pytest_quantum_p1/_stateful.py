"""A Hypothesis state machine that searches a policy store for stale reads.

Example tests show that one update reaches every instance; they cannot show
that no interleaving of reads, updates, lost or late invalidations, dropped
links, expiring entries and slow fetches ever serves a stale value. The
:class:`InvalidationMachine` searches for such an interleaving. Each example
builds ``instances`` stores from a :data:`~pytest_quantum_p1.StoreFactory` on
one Redis (fakeredis by default), on one event loop the machine owns, with one
:class:`~pytest_quantum_p1._clock.VirtualClock`, and then runs rules:

- ``read`` / ``update`` on any instance, ``read_all`` (every policy on every
  instance, delivering nothing first);
- ``deliver`` / ``drop`` / ``duplicate`` the oldest invalidation an instance
  has pending, or ``deliver_all``. Every invalidation is *held* on its way to
  each instance until one of these rules decides its fate, so "late" is simply
  a message no rule has delivered yet;
- ``disconnect`` an instance's pub/sub link, and ``reconnect`` it: the store's
  attempt to resubscribe is held until then;
- ``advance_clock`` past (parts of) the TTL;
- ``slow_fetch``: a miss whose storage read is held while an update happens and
  its invalidation is delivered (or lost), then completes, and a read follows;
- ``inject_garbage`` on an instance's channel;
- ``converge``: deliver everything, then read every policy everywhere.

and checks, on every read:

1. **no stale read** — a value older than the latest write is served only while
   every newer write's invalidation is still pending or was dropped on the way
   to that instance (never once one was delivered, never when the store did
   not publish one, never because a link loss swallowed it: a store must not
   serve what it cached while it could not hear invalidations);
2. **monotonic reads** — an instance never returns an older value than one it
   returned before the read started;
3. **staleness within the TTL** — even then, no more than ``ttl`` (plus the
   longest in-flight fetch) after the newer write, on the virtual clock; the
   largest write-to-stale-read age is measured (:class:`MachineStats`);
4. **nothing survives a link loss** — after ``disconnect`` and after
   ``reconnect``, the first read of each policy on that instance is a storage
   read counted by the harness.

Every value written is ``{"v": n, ...}`` with a global counter ``n``, so
"older" is well defined. Nothing sleeps: after each step the machine waits,
driven by events, until every invalidation published has reached every
instance's queue and every store is idle again, so the state after a step
depends only on the steps, and failures shrink and replay (from Hypothesis's
database or a seed).

Use it by subclassing (``store_factory = ...``, then ``TestX = MyMachine.TestCase``)
or with :func:`machine_for`; the acceptance run calls
:func:`check_no_stale_reads`.

What is assumed of a store is what :class:`~pytest_quantum_p1.PolicyCluster`
assumes: it subscribes with ``client.pubsub()`` on the client it is given (and
again after a lost link), consumes it from a listener that waits in
``get_message``/``listen``/``run``, handles one message fully before asking for
the next, and reads storage through that client outside pipelines.

This module imports hypothesis and redis; the plugin imports it only when needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import string
import time
import traceback
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeVar, cast

import fakeredis
import hypothesis
import redis.asyncio
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._harness import ControlledPubSub, Message, ObservedRedis
from pytest_quantum_p1._target import P1Target, PolicyStore, StoreFactory

if TYPE_CHECKING:
    from hypothesis.stateful import MultipleResults
    from hypothesis.strategies import SearchStrategy
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = [
    "CACHED_ACROSS_LINK_LOSS",
    "DEFAULT_CHANNEL",
    "DEFAULT_TTL",
    "IMPOSSIBLE_VALUE",
    "NOT_IDLE",
    "NOT_MONOTONIC",
    "PAST_TTL",
    "RULES",
    "STALE_READ",
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
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CHANNEL: Final = "policy:invalidate"
#: The seed's TTL (``self._cache_ttl = 10``).
DEFAULT_TTL: Final = 10.0
#: The key every written policy carries: a global write counter.
VERSION_KEY: Final = "v"

#: Every rule of :class:`InvalidationMachine`, for ``disabled_rules``.
RULES: Final = (
    "read",
    "read_all",
    "update",
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

# Message heads, as constants the tests match.
STALE_READ: Final = (
    "stale read: instance {instance} read {name!r} = v{version}, but v{newer} was written "
    "{age:g}s earlier (virtual clock) and nothing excuses the old value"
)
NOT_MONOTONIC: Final = (
    "non-monotonic read: instance {instance} read {name!r} = v{version} after it had "
    "already returned v{seen}"
)
PAST_TTL: Final = (
    "stale past the TTL: instance {instance} read {name!r} = v{version} {age:g}s after v{newer} "
    "was written; the TTL is {ttl:g}s"
)
CACHED_ACROSS_LINK_LOSS: Final = (
    "cached across a link loss: instance {instance} served {name!r} = v{version} without a "
    "storage read, although its invalidation link was {event} since it last read it"
)
IMPOSSIBLE_VALUE: Final = "instance {instance} read {name!r} = {value!r}, which no update wrote"
NOT_IDLE: Final = (
    "instance {instance} did not settle within {timeout:g}s after {step}: {whereabouts}"
)

_NAME_PATTERN: Final = r"[a-z][a-z0-9_-]{0,15}"
_KEY_ALPHABET: Final = string.ascii_lowercase + string.digits + "_"
#: Seconds (real time) a whole step may take; waits inside have their own deadlines.
_STEP_TIMEOUT: Final = 30.0
#: The acceptance run's first batch: measures the examples-per-second rate.
_CALIBRATION_EXAMPLES: Final = 5
#: Keep this share of the remaining budget free when sizing the next batch.
_BUDGET_SAFETY: Final = 0.8


# -- strategies ------------------------------------------------------------------------


def policy_names() -> SearchStrategy[str]:
    """Policy names valid for the reference rules: ``[a-z][a-z0-9_-]{0,15}``.

    They shrink towards ``"a"``. The machine draws 1-3 of them per example, so
    that operations collide on the same names.
    """
    return st.from_regex(_NAME_PATTERN, fullmatch=True)


def _json_values() -> SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**53), max_value=2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(_KEY_ALPHABET, max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )


def policies() -> SearchStrategy[dict[str, Any]]:
    """Small JSON objects (str keys, JSON values), without the machine's ``"v"`` key."""
    keys = st.text(_KEY_ALPHABET, min_size=1, max_size=8).filter(lambda k: k != VERSION_KEY)
    return st.dictionaries(keys, _json_values(), max_size=3)


def garbage() -> SearchStrategy[bytes]:
    """Payloads no invalidation should carry: invalid UTF-8 (half), an empty name, a bad name."""
    return st.sampled_from((b"\xff\xfe", b"\xc3\x28", b"", b"not a policy/name"))


@dataclass(frozen=True)
class Operation:
    """One step of :class:`InvalidationMachine`: a rule name and its arguments.

    ``str(op)`` is the step as Hypothesis prints it (``state.read(instance=1,
    name='a')``); :func:`replay` runs a list of them without searching.
    """

    rule: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, machine: InvalidationMachine) -> None:
        """Run this step on ``machine``."""
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; the rules are {', '.join(RULES)}")
        getattr(machine, self.rule)(**self.args)

    def __str__(self) -> str:
        # Keyword order as in Hypothesis's own printout, so the two read alike.
        args = ", ".join(f"{key}={value!r}" for key, value in sorted(self.args.items()))
        return f"state.{self.rule}({args})"


def _clock_seconds(ttl: float) -> SearchStrategy[float]:
    # One definition for the machine and operations(), so a pinned sequence
    # draws what the machine would.
    return st.integers(1, 6).map(lambda k: k * ttl / 4)


def _in_flight_seconds(ttl: float) -> SearchStrategy[float]:
    return st.sampled_from((0.0, ttl / 2))


def operations(
    *,
    instances: int = 3,
    names: Sequence[str] = ("a", "b"),
    ttl: float = DEFAULT_TTL,
    min_size: int = 0,
    max_size: int = 20,
) -> SearchStrategy[list[Operation]]:
    """Lists of :class:`Operation` over ``instances`` and ``names``, for :func:`replay`.

    Useful to pin a sequence as an example test, or to drive a store without
    the state machine. Steps that find nothing to do (``deliver`` with nothing
    pending, ``reconnect`` of a connected instance) are no-ops when replayed.
    """
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    if not names:
        raise ValueError("names must not be empty")
    inst = st.integers(0, instances - 1)
    name = st.sampled_from(tuple(names))
    seconds = _clock_seconds(ttl)

    def op(rule_name: str, **args: SearchStrategy[Any]) -> SearchStrategy[Operation]:
        return st.fixed_dictionaries(args).map(lambda drawn: Operation(rule_name, drawn))

    one = st.one_of(
        op("read", instance=inst, name=name),
        op("read_all"),
        op("update", instance=inst, name=name, policy=policies()),
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
            in_flight=_in_flight_seconds(ttl),
            lose=st.booleans(),
            read_during=st.booleans(),
        ),
        op("inject_garbage", instance=inst, data=garbage()),
        op("converge"),
    )
    return st.lists(one, min_size=min_size, max_size=max_size)


def replay(
    machine: type[InvalidationMachine],
    steps: Sequence[Operation],
    *,
    names: Sequence[str] = ("a", "b"),
) -> InvalidationMachine:
    """Run ``steps`` on a new ``machine`` after creating ``names``; return it (torn down).

    Raises what the machine raises (:class:`InvalidationError` for a property
    violation). The returned machine's :attr:`~InvalidationMachine.trace` lists
    the steps it ran.
    """
    state = machine()
    try:
        state.create_policies(names=list(names), policy={})
        for step in steps:
            step.apply(state)
    finally:
        state.teardown()
    return state


# -- errors and figures ----------------------------------------------------------------

ErrorKind = Literal["stale", "monotonic", "ttl", "link-loss", "impossible", "unsettled"]


class InvalidationError(AssertionError):
    """A store broke a property the machine checks; ``kind`` says which.

    ``stale``, ``monotonic``, ``ttl``, ``link-loss``, ``impossible`` (a value
    nobody wrote) or ``unsettled`` (the store did not come back to its
    subscription: a stuck listener). The message ends with the steps of the
    example, which after shrinking is the minimal failing sequence.
    """

    def __init__(self, message: str, *, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class MachineStats:
    """Figures over every example a machine class ran (shrinking included)."""

    examples: int = 0
    steps: int = 0
    reads: int = 0
    #: Reads that returned an older value, legitimately (pending/dropped invalidation).
    stale_reads: int = 0
    #: The largest write -> stale read age (virtual seconds) among those.
    max_stale_age_s: float = 0.0
    #: Examples run until (and including) the first failing one.
    first_failure_at: int | None = None
    failures: int = 0

    def reset(self) -> None:
        """Zero every figure."""
        for figure in fields(self):
            setattr(self, figure.name, figure.default)


# -- the controlled Redis each store instance gets ---------------------------------------


class _MachinePubSub(ControlledPubSub):
    """A ControlledPubSub that also knows whether its store is done reacting.

    The machine must not start the next step while a store is still handling
    something, or the outcome would depend on scheduling. So this records which
    task consumes the subscription and whether it is waiting in
    ``get_message`` with nothing left to take; and it holds a resubscription
    until the machine's ``reconnect`` step.
    """

    def __init__(self, pubsub: PubSub, *, owner: _MachineRedis, **kwargs: Any) -> None:
        super().__init__(pubsub, **kwargs)
        self._owner = owner
        self.consumer: asyncio.Task[Any] | None = None
        #: Whether the consumer task sits in get_message() right now.
        self.in_get_message = False
        self.gated = False

    async def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float | None = 0.0
    ) -> Message | None:
        task = asyncio.current_task()
        if task is not None and task is not self.consumer:
            self.consumer = task
            task.add_done_callback(self._consumer_done)
        self.in_get_message = True
        # Wakes the machine's wait for idle stores: the store may just have
        # come back with nothing to do.
        self.signal.notify()
        try:
            return await super().get_message(ignore_subscribe_messages, timeout)
        finally:
            self.in_get_message = False

    def _consumer_done(self, _task: asyncio.Task[Any]) -> None:
        self.signal.notify()

    async def before_subscribe(self) -> None:
        # Every kind of subscription (channel, pattern, shard) comes through here.
        allowed = self._owner.link_allowed
        if allowed.is_set():
            return
        self.gated = True
        self.signal.notify()
        try:
            await allowed.wait()
        finally:
            self.gated = False

    # -- the machine's side (on the loop) ------------------------------------

    @property
    def live(self) -> bool:
        return not (self.cut or self.closed)

    def listens(self, channel: str) -> bool:
        return self.listens_to(channel)

    def idle(self) -> bool:
        """Whether the store has nothing left to do with this subscription for now."""
        if self.gated:
            return True
        consumer = self.consumer
        if consumer is not None and consumer.done():
            return True
        if not self.live:
            # Its listener will hear of the loss, then resubscribe or end.
            return consumer is None
        if not self.all_confirmed:
            return False
        return (
            consumer is not None
            and self.in_get_message
            and not self.waiting
            and self.in_progress is None
        )

    def whereabouts(self) -> str:
        """Why :meth:`idle` is false, in words."""
        consumer = self.consumer
        if not self.live:
            return "its link was cut; its listener neither ended nor resubscribed"
        if not self.all_confirmed:
            return "Redis has not confirmed its subscription yet"
        if consumer is None:
            return (
                "nothing reads its subscription (no task called get_message(), listen() or run())"
            )
        current = self.in_progress
        if current is not None:
            return f"its listener is still handling the message {current.data!r}"
        if self.waiting:
            return f"{self.waiting} message(s) wait for its listener, which is busy elsewhere"
        return "its listener is busy elsewhere (not waiting in get_message())"

    def held_texts(self) -> list[str]:
        return list(self.pending_texts)

    def strip_markers(self, prefix: str) -> None:
        """Drop the harness's markers at the head of the held queue."""
        count = 0
        for text in self.pending_texts:
            if not text.startswith(prefix):
                break
            count += 1
        if count:
            self.drop(count)

    def real_held(self, prefix: str) -> int:
        return sum(1 for text in self.held_texts() if not text.startswith(prefix))


class _MachineRedis(ObservedRedis):
    """An ObservedRedis whose pubsubs hold every message from the start."""

    def __init__(self, client: Redis, *, label: str) -> None:
        super().__init__(client, label=label)
        self.link_allowed = asyncio.Event()
        self.link_allowed.set()

    def cut_link(self) -> None:
        """Hold any new subscription until :meth:`allow_link`."""
        self.link_allowed.clear()

    def allow_link(self) -> None:
        """Let held subscriptions proceed."""
        self.link_allowed.set()
        for ps in self.pubsubs:
            if isinstance(ps, _MachinePubSub):
                # Not "idle at the gate" any more, although the store's task
                # has not resumed yet: the machine must wait for it.
                ps.gated = False
        self.signal.notify()

    def wrap_pubsub(self, pubsub: PubSub, **options: Any) -> ControlledPubSub:
        controlled = _MachinePubSub(pubsub, owner=self, **options)
        # Before the first SUBSCRIBE, so no message can reach the store unheld.
        controlled.hold()
        return controlled

    @property
    def machine_pubsub(self) -> _MachinePubSub | None:
        current = self.current_pubsub
        return current if isinstance(current, _MachinePubSub) else None

    def idle(self) -> bool:
        current = self.machine_pubsub
        return current is None or current.idle()

    async def wait_idle(self, timeout: float) -> None:
        await self.signal.wait_until(lambda: True if self.idle() else None, timeout)


class _FetchHold:
    """A one-shot fetch gate: holds the first storage read's result until released."""

    def __init__(self) -> None:
        self.captured = asyncio.Event()
        self.released = asyncio.Event()
        self.armed = True

    async def __call__(self, command: str, args: tuple[Any, ...], result: Any) -> None:
        if not self.armed:
            return
        self.armed = False
        self.captured.set()
        await self.released.wait()


# -- the model ---------------------------------------------------------------------------


@dataclass
class _Fate:
    """What became of one write's invalidation(s) on the way to one instance."""

    pending: int = 0
    delivered: int = 0
    dropped: int = 0
    lost: int = 0
    delivered_at: list[int] = field(default_factory=list)

    def describe(self) -> str:
        if self.delivered:
            steps = ", ".join(str(s) for s in self.delivered_at)
            return f"delivered (step {steps})"
        parts = []
        if self.pending:
            parts.append(f"{self.pending} pending")
        if self.dropped:
            parts.append(f"{self.dropped} dropped")
        if self.lost:
            parts.append(f"{self.lost} lost when the link was cut (the store must flush)")
        return ", ".join(parts) or "none arrived (the store published nothing it received)"

    @property
    def excuses(self) -> bool:
        """Whether this invalidation's absence excuses an older cached value."""
        return not self.delivered and bool(self.pending or self.dropped)


@dataclass(eq=False)
class _Write:
    version: int
    name: str
    at: float
    step: int
    writer: int
    fates: dict[int, _Fate] = field(default_factory=dict)

    def fate(self, instance: int) -> _Fate:
        return self.fates.setdefault(instance, _Fate())


@dataclass(eq=False)
class _Msg:
    """A held invalidation, mirrored: which write it belongs to (if known)."""

    write: _Write | None


@dataclass(eq=False)
class _Instance:
    index: int
    observed: _MachineRedis
    store: PolicyStore
    pubsub: _MachinePubSub | None = None
    #: Mirror of the real (non-marker) messages held for ``pubsub``, oldest first.
    queue: list[_Msg] = field(default_factory=list)
    #: Highest version each name was returned as.
    seen: dict[str, int] = field(default_factory=dict)
    #: Names whose next read must go to storage, and why.
    must_fetch: dict[str, str] = field(default_factory=dict)
    deaths: list[str] = field(default_factory=list)
    reported: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _ReadStart:
    name: str
    floor: int
    seen: int
    storage_reads: int


# -- the machine --------------------------------------------------------------------------


def _instances() -> SearchStrategy[int]:
    return st.runner().flatmap(lambda m: st.integers(0, m.instance_count - 1))


def _where(select: str) -> SearchStrategy[int]:
    # Drawn among the instances where the rule can act, so no step is a no-op.
    return st.runner().flatmap(lambda m: st.sampled_from(m._instances_where(select)))


def _clock_steps() -> SearchStrategy[float]:
    return st.runner().flatmap(lambda m: _clock_seconds(m.ttl_s))


def _in_flight() -> SearchStrategy[float]:
    return st.runner().flatmap(lambda m: _in_flight_seconds(m.ttl_s))


def _disabled(rule_method: Callable[..., None]) -> Callable[..., None]:
    """The rule as a plain method: callable (by :func:`replay`), but not a rule.

    Removing a rule beats a precondition that is always false: Hypothesis would
    still pick it and reject it, and with several rules left out whole examples
    get abandoned.
    """

    def plain(self: InvalidationMachine, **args: Any) -> None:
        rule_method(self, **args)

    plain.__name__ = rule_method.__name__
    plain.__doc__ = rule_method.__doc__
    plain._p1_disabled = True  # type: ignore[attr-defined]
    return plain


class InvalidationMachine(RuleBasedStateMachine):
    """Searches ``store_factory``'s stores for stale reads; see the module docstring.

    Configure by subclassing::

        class MyStoreMachine(InvalidationMachine):
            store_factory = staticmethod(make_store)  # (redis client, clock) -> store
            ttl = 10.0

        TestMyStore = MyStoreMachine.TestCase
        TestMyStore.settings = machine_settings(max_examples=50)

    or with :func:`machine_for`. Keep :func:`machine_settings` as the base of
    any settings you give (plain ``settings(...)`` brings back a 200 ms deadline
    and slow shrinking). The machine drives its own event loop, so run it from
    synchronous code (not from inside a running loop). Class attributes:

    - ``store_factory`` (required), ``ttl`` (the stores' TTL in clock seconds),
      ``instances`` (>= 1, default 3), ``channel`` (the invalidation channel);
    - ``make_client``: a zero-argument callable returning a new
      ``redis.asyncio`` client, called on the machine's loop; or ``redis_url``;
      default: a fresh fakeredis server per example;
    - ``disabled_rules``: rule names (:data:`RULES`) to leave out, to focus a search;
    - ``settle_timeout``: real seconds a store may take to react to one step.

    ``stats`` (:class:`MachineStats`) accumulates figures over every example of the class.
    """

    # Not ClassVars: so that type checkers accept ``staticmethod(f)`` here (a
    # ClassVar callable is typed as a method) and reject a bare function,
    # which would be bound to the machine.
    store_factory: StoreFactory | None = None
    ttl: ClassVar[float] = DEFAULT_TTL
    instances: ClassVar[int] = 3
    channel: ClassVar[str] = DEFAULT_CHANNEL
    make_client: Callable[[], Redis] | None = None
    redis_url: ClassVar[str | None] = None
    disabled_rules: ClassVar[frozenset[str]] = frozenset()
    settle_timeout: ClassVar[float] = 5.0
    stats: ClassVar[MachineStats] = MachineStats()

    names = Bundle("names")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.stats = MachineStats()
        cls.TestCase.settings = machine_settings()
        unknown = set(cls.disabled_rules) - set(RULES)
        if unknown:
            raise ValueError(
                f"{cls.__name__}.disabled_rules names unknown rule(s) {sorted(unknown)}; "
                f"the rules are {', '.join(RULES)}"
            )
        for name in RULES:
            if name in cls.disabled_rules:
                setattr(cls, name, _disabled(getattr(InvalidationMachine, name)))
            elif getattr(getattr(cls, name), "_p1_disabled", False):
                setattr(cls, name, InvalidationMachine.__dict__[name])  # re-enabled below

    def __init__(self) -> None:
        super().__init__()
        cls = type(self)
        factory = cls.store_factory
        if factory is None:
            raise TypeError(
                f"{cls.__name__}.store_factory is not set: assign a "
                "(redis client, clock) -> store callable, or use machine_for(...)"
            )
        if cls.instances < 1:
            raise ValueError(f"{cls.__name__}.instances must be >= 1, got {cls.instances}")
        if not (cls.ttl >= 0 and math.isfinite(cls.ttl)):
            raise ValueError(f"{cls.__name__}.ttl must be a finite number >= 0, got {cls.ttl!r}")
        self.ttl_s = float(cls.ttl)
        self.instance_count = cls.instances
        self.trace: list[str] = []
        self.clock = VirtualClock()
        self._stats = cls.stats
        self._stats.examples += 1
        self._marker_prefix = f"p1-quiesce-{secrets.token_hex(3)}-"
        self._markers = 0
        self._version = 0
        self._writes: dict[str, list[_Write]] = {}
        self._bodies: dict[int, dict[str, Any]] = {}
        self._max_in_flight = 0.0
        self._insts: list[_Instance] = []
        self._control: Any = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop.set_task_factory(self._new_task)
        self._loop.set_exception_handler(self._loop_error)
        try:
            self._run(self._open(factory))
        except BaseException:
            self._close()
            raise

    # -- the loop -----------------------------------------------------------------

    def _new_task(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        # Every task is kept, so teardown can cancel the live ones and collect
        # the exceptions of dead ones (an unsupervised listener's, typically).
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        self._tasks.append(task)
        return task

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        logger.debug("event loop error in %s: %s", type(self).__name__, context.get("message"))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(self._bounded(coro))

    async def _bounded(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            async with asyncio.timeout(_STEP_TIMEOUT):
                return await coro
        except TimeoutError as exc:
            step = self.trace[-1] if self.trace else "setup"
            raise TimeoutError(f"{step} did not finish within {_STEP_TIMEOUT:g}s") from exc

    def _client_maker(self) -> Callable[[], Redis]:
        cls = type(self)
        if cls.make_client is not None:
            return cls.make_client
        if cls.redis_url is not None:
            url = cls.redis_url
            return lambda: redis.asyncio.Redis.from_url(url)
        server = fakeredis.FakeServer()
        return lambda: cast("Redis", fakeredis.FakeAsyncRedis(server=server))

    async def _open(self, factory: StoreFactory) -> None:
        make = self._client_maker()
        self._control = make()
        for index in range(self.instance_count):
            observed = _MachineRedis(make(), label=f"instance {index}")
            try:
                # The proxy forwards the client interface the store uses.
                store = factory(cast("Redis", observed), self.clock)
            except BaseException:
                await observed.aclose()  # not yet an instance: teardown would miss it
                raise
            self._insts.append(_Instance(index, observed, store))
        for inst in self._insts:
            await inst.store.initialize()
        await self._quiesce("initialize()")

    def teardown(self) -> None:
        """Close the stores, the clients and the loop (never raises: a failure may be in flight)."""
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        try:
            loop.run_until_complete(self._shutdown())
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:
            logger.exception("closing %s failed", type(self).__name__)
        finally:
            for task in self._tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: no "never retrieved" noise at GC
            self._tasks.clear()
            loop.close()

    async def _shutdown(self) -> None:
        for inst in self._insts:
            inst.observed.allow_link()  # a held resubscription may proceed and end
            try:
                async with asyncio.timeout(type(self).settle_timeout):
                    await inst.store.close()
            except Exception as exc:  # a broken store's close; the verdict is elsewhere
                logger.warning("instance %d: store.close() failed: %r", inst.index, exc)
        me = asyncio.current_task()
        for inst in self._insts:
            with contextlib.suppress(Exception):
                await inst.observed.close_pubsubs()
            with contextlib.suppress(Exception):
                await inst.observed.aclose()
        if self._control is not None:
            with contextlib.suppress(Exception):
                await self._control.aclose()
        leftovers = [t for t in asyncio.all_tasks() if t is not me]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    # -- quiescence -----------------------------------------------------------------

    async def _quiesce(self, step: str, write: _Write | None = None) -> None:
        """Return once every published message is queued and every store is idle."""
        timeout = type(self).settle_timeout
        if write is not None:
            self._markers += 1
            marker = f"{self._marker_prefix}{self._markers}"
            await self._control.publish(type(self).channel, marker)
            # One at a time: once held, a marker stays held, so no wait undoes another.
            for inst in self._insts:
                await self._wait_marker(inst, marker, step, timeout)
        await self._settle(step, timeout)
        self._absorb(write)
        self._collect_deaths()

    async def _wait_marker(self, inst: _Instance, marker: str, step: str, timeout: float) -> None:
        # Redis delivers in order to each subscriber: once the marker is held,
        # everything published before it is held too.
        ps = inst.observed.machine_pubsub
        if ps is None or not ps.live or not ps.listens(type(self).channel):
            return
        try:
            await inst.observed.signal.wait_until(
                lambda: True if marker in ps.held_texts() or not ps.live else None, timeout
            )
        except TimeoutError:
            self._note_failure()
            raise InvalidationError(
                NOT_IDLE.format(
                    instance=inst.index,
                    timeout=timeout,
                    step=step,
                    whereabouts="a message published on its channel never reached it",
                )
                + self._trailer(),
                kind="unsettled",
            ) from None

    async def _settle(self, step: str, timeout: float) -> None:
        # Usually every store is idle already: then nothing is awaited at all.
        deadline = time.monotonic() + timeout
        while late := [inst for inst in self._insts if not inst.observed.idle()]:
            try:
                for inst in late:
                    await inst.observed.wait_idle(max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                break
        else:
            return
        self._collect_deaths()
        lines = []
        for inst in self._insts:
            if inst.observed.idle():
                continue
            ps = inst.observed.machine_pubsub
            where = ps.whereabouts() if ps is not None else "no subscription"
            lines.append(
                NOT_IDLE.format(instance=inst.index, timeout=timeout, step=step, whereabouts=where)
            )
        self._note_failure()
        raise InvalidationError("\n".join(lines) + self._trailer(), kind="unsettled")

    def _absorb(self, write: _Write | None) -> None:
        """Mirror newly held messages, tagging them with the write that sent them."""
        for inst in self._insts:
            ps = inst.observed.machine_pubsub
            if ps is not inst.pubsub:
                self._lose_queue(inst)  # the store replaced its subscription on its own
                inst.pubsub = ps
            if ps is None:
                continue
            real = ps.real_held(self._marker_prefix)
            if real < len(inst.queue):
                raise RuntimeError(
                    f"harness bug: instance {inst.index} holds {real} message(s), "
                    f"the machine expected {len(inst.queue)}"
                )
            for _ in range(real - len(inst.queue)):
                inst.queue.append(_Msg(write))
                if write is not None:
                    write.fate(inst.index).pending += 1

    def _lose_queue(self, inst: _Instance) -> None:
        for msg in inst.queue:
            if msg.write is not None:
                fate = msg.write.fate(inst.index)
                fate.pending -= 1
                fate.lost += 1
        inst.queue.clear()

    def _collect_deaths(self) -> None:
        for inst in self._insts:
            for ps in inst.observed.pubsubs:
                consumer = ps.consumer if isinstance(ps, _MachinePubSub) else None
                if consumer is None or not consumer.done() or id(consumer) in inst.reported:
                    continue
                inst.reported.add(id(consumer))
                if consumer.cancelled():
                    continue
                exc = consumer.exception()
                what = f"died: {type(exc).__name__}: {exc}" if exc is not None else "returned"
                inst.deaths.append(
                    f"its listener task {consumer.get_name()!r} {what} (step {len(self.trace)})"
                )

    # -- driving messages --------------------------------------------------------------

    def _instances_where(self, select: str) -> list[int]:
        if select == "pending":
            return [inst.index for inst in self._insts if inst.queue]
        if select == "connected":
            return [
                inst.index
                for inst in self._insts
                if inst.observed.link_allowed.is_set()
                and (ps := inst.observed.machine_pubsub) is not None
                and ps.live
            ]
        if select == "disconnected":
            return [i.index for i in self._insts if not i.observed.link_allowed.is_set()]
        raise ValueError(select)

    def _head(self, inst: _Instance, action: Literal["deliver", "drop", "duplicate"]) -> bool:
        ps = inst.pubsub
        if ps is None or not inst.queue or not ps.live:
            return False
        ps.strip_markers(self._marker_prefix)
        msg = inst.queue[0]
        fate = msg.write.fate(inst.index) if msg.write is not None else _Fate()
        if action == "duplicate":
            ps.duplicate(1)
            fate.delivered += 1
            fate.delivered_at.append(len(self.trace))
            return True
        inst.queue.pop(0)
        fate.pending -= 1
        if action == "deliver":
            ps.deliver(1)
            fate.delivered += 1
            fate.delivered_at.append(len(self.trace))
        else:
            ps.drop(1)
            fate.dropped += 1
        return True

    def _deliver_everything(self) -> None:
        for inst in self._insts:
            while self._head(inst, "deliver"):
                pass

    async def _read_everything(self) -> None:
        for name in self._writes:
            for inst in self._insts:
                await self._read(inst, name)

    # -- reads and their verdicts ----------------------------------------------------------

    def _start_read(self, inst: _Instance, name: str) -> _ReadStart:
        history = self._writes[name]
        return _ReadStart(
            name=name,
            floor=history[-1].version,
            seen=inst.seen.get(name, 0),
            storage_reads=inst.observed.storage_reads,
        )

    async def _read(self, inst: _Instance, name: str) -> None:
        start = self._start_read(inst, name)
        value = await inst.store.get_policy(name)
        self._judge(inst, start, value)

    def _judge(self, inst: _Instance, start: _ReadStart, value: Mapping[str, Any]) -> None:
        __tracebackhide__ = True
        self._stats.reads += 1
        name = start.name
        history = self._writes[name]
        version = value.get(VERSION_KEY) if isinstance(value, Mapping) else None
        written = self._bodies.get(version) if isinstance(version, int) else None
        if written is None or not any(w.version == version for w in history):
            self._fail(
                IMPOSSIBLE_VALUE.format(instance=inst.index, name=name, value=value), "impossible"
            )
        assert isinstance(version, int)
        if dict(value) != written:
            self._fail(
                IMPOSSIBLE_VALUE.format(instance=inst.index, name=name, value=value)
                + f"\nv{version} was written as {written!r}",
                "impossible",
            )
        if version < start.seen:
            self._fail(
                NOT_MONOTONIC.format(
                    instance=inst.index, name=name, version=version, seen=start.seen
                ),
                "monotonic",
                inst,
                name,
                version,
            )
        fetched = inst.observed.storage_reads > start.storage_reads
        event = inst.must_fetch.get(name)
        if event is not None:
            if not fetched:
                self._fail(
                    CACHED_ACROSS_LINK_LOSS.format(
                        instance=inst.index, name=name, version=version, event=event
                    ),
                    "link-loss",
                    inst,
                    name,
                    version,
                )
            del inst.must_fetch[name]
        inst.seen[name] = max(inst.seen.get(name, 0), version)
        if version >= start.floor:
            return
        # Older than storage held when the read started: only a missing
        # invalidation can excuse it, and only within the TTL.
        newer = [w for w in history if w.version > version]
        age = self.clock() - newer[0].at
        if not all(w.fate(inst.index).excuses for w in newer):
            self._fail(
                STALE_READ.format(
                    instance=inst.index,
                    name=name,
                    version=version,
                    newer=newer[0].version,
                    age=age,
                ),
                "stale",
                inst,
                name,
                version,
                fetched=fetched,
            )
        allowed = self.ttl_s + self._max_in_flight
        if age > allowed:
            self._fail(
                PAST_TTL.format(
                    instance=inst.index,
                    name=name,
                    version=version,
                    newer=newer[0].version,
                    age=age,
                    ttl=self.ttl_s,
                )
                + (
                    f" (+{self._max_in_flight:g}s for the longest in-flight fetch)"
                    if self._max_in_flight
                    else ""
                ),
                "ttl",
                inst,
                name,
                version,
                fetched=fetched,
            )
        self._stats.stale_reads += 1
        self._stats.max_stale_age_s = max(self._stats.max_stale_age_s, age)

    def _fail(
        self,
        head: str,
        kind: ErrorKind,
        inst: _Instance | None = None,
        name: str | None = None,
        version: int | None = None,
        *,
        fetched: bool | None = None,
    ) -> None:
        __tracebackhide__ = True
        lines = [head]
        if inst is not None and name is not None and version is not None:
            if fetched is not None:
                lines.append(
                    "  the value came from "
                    + ("a storage read" if fetched else "its cache (no storage read)")
                )
            newer = [w for w in self._writes[name] if w.version > version]
            if newer:
                lines.append(f"  newer writes of {name!r}, and their invalidation on the way:")
                for w in newer:
                    lines.append(
                        f"    - v{w.version} by instance {w.writer} at step {w.step}, "
                        f"t={w.at:g}: {w.fate(inst.index).describe()}"
                    )
            lines.extend(f"  {death}" for death in inst.deaths)
        self._collect_deaths()
        others = [
            f"  instance {i.index}: {death}"
            for i in self._insts
            if i is not inst
            for death in i.deaths
        ]
        lines.extend(others)
        self._note_failure()
        raise InvalidationError("\n".join(lines) + self._trailer(), kind=kind)

    def _note_failure(self) -> None:
        self._stats.failures += 1
        if self._stats.first_failure_at is None:
            self._stats.first_failure_at = self._stats.examples

    def _trailer(self) -> str:
        steps = "\n".join(f"    {line}" for line in self.trace)
        return (
            f"\n  steps of this example ({type(self).__name__}, {self.instance_count} instances, "
            f"TTL {self.ttl_s:g}s):\n{steps}"
        )

    # -- steps ----------------------------------------------------------------------------

    def _enter(self, rule_name: str, **args: Any) -> str:
        line = str(Operation(rule_name, args))
        self.trace.append(line)
        self._stats.steps += 1
        return line

    def _inst(self, instance: int) -> _Instance:
        if not 0 <= instance < self.instance_count:
            raise IndexError(f"no instance {instance}: 0..{self.instance_count - 1}")
        return self._insts[instance]

    async def _update(self, writer: int, name: str, policy: Mapping[str, Any], step: str) -> _Write:
        self._version += 1
        version = self._version
        body = {**{k: v for k, v in policy.items() if k != VERSION_KEY}, VERSION_KEY: version}
        self._bodies[version] = body
        await self._inst(writer).store.update_policy(name, body)
        write = _Write(version, name, self.clock(), len(self.trace), writer)
        self._writes.setdefault(name, []).append(write)
        await self._quiesce(step, write)
        return write

    @initialize(target=names, names=st.lists(policy_names(), min_size=1, max_size=3, unique=True))
    def create_policies(self, names: list[str], policy: Mapping[str, Any] | None = None) -> Any:
        """Write a first version of each name and deliver everything: a clean start."""
        step = self._enter("create_policies", names=names)

        async def run() -> None:
            for name in names:
                await self._update(0, name, policy or {}, step)
            self._deliver_everything()
            await self._quiesce(step)

        self._run(run())
        result: MultipleResults[str] = multiple(*names)
        return result

    @rule(instance=_instances(), name=names)
    def read(self, instance: int, name: str) -> None:
        """``get_policy(name)`` on one instance, judged."""
        step = self._enter("read", instance=instance, name=name)

        async def run() -> None:
            await self._read(self._inst(instance), name)
            await self._quiesce(step)

        self._run(run())

    @rule()
    def read_all(self) -> None:
        """``get_policy`` of every policy on every instance, judged; nothing is delivered first."""
        step = self._enter("read_all")

        async def run() -> None:
            await self._read_everything()
            await self._quiesce(step)

        self._run(run())

    @rule(instance=_instances(), name=names, policy=policies())
    def update(self, instance: int, name: str, policy: Mapping[str, Any]) -> None:
        """``update_policy(name, policy + {"v": n})`` on one instance."""
        step = self._enter("update", instance=instance, name=name, policy=policy)
        self._run(self._update(instance, name, policy, step))

    def _message_step(self, rule_name: str, instance: int) -> None:
        step = self._enter(rule_name, instance=instance)

        async def run() -> None:
            self._head(self._inst(instance), cast("Any", rule_name))
            await self._quiesce(step)

        self._run(run())

    @precondition(lambda self: bool(self._instances_where("pending")))
    @rule(instance=_where("pending"))
    def deliver(self, instance: int) -> None:
        """Hand the instance its oldest pending invalidation."""
        self._message_step("deliver", instance)

    @precondition(lambda self: bool(self._instances_where("pending")))
    @rule(instance=_where("pending"))
    def drop(self, instance: int) -> None:
        """Lose the instance's oldest pending invalidation."""
        self._message_step("drop", instance)

    @precondition(lambda self: bool(self._instances_where("pending")))
    @rule(instance=_where("pending"))
    def duplicate(self, instance: int) -> None:
        """Hand the instance a copy of its oldest pending invalidation (the original stays)."""
        self._message_step("duplicate", instance)

    @precondition(lambda self: bool(self._instances_where("pending")))
    @rule()
    def deliver_all(self) -> None:
        """Hand every instance everything pending."""
        step = self._enter("deliver_all")

        async def run() -> None:
            self._deliver_everything()
            await self._quiesce(step)

        self._run(run())

    @precondition(lambda self: bool(self._instances_where("connected")))
    @rule(instance=_where("connected"))
    def disconnect(self, instance: int) -> None:
        """Cut the instance's pub/sub link; its resubscription waits for ``reconnect``."""
        step = self._enter("disconnect", instance=instance)

        async def run() -> None:
            inst = self._inst(instance)
            ps = inst.observed.machine_pubsub
            inst.observed.cut_link()
            if ps is not None and ps.live:
                ps.disconnect()
                if ps is inst.pubsub:
                    self._lose_queue(inst)
            inst.must_fetch = dict.fromkeys(self._writes, f"cut at step {len(self.trace)}")
            await self._quiesce(step)

        self._run(run())

    @precondition(lambda self: bool(self._instances_where("disconnected")))
    @rule(instance=_where("disconnected"))
    def reconnect(self, instance: int) -> None:
        """Let the instance resubscribe, and wait until Redis confirmed it."""
        step = self._enter("reconnect", instance=instance)

        async def run() -> None:
            inst = self._inst(instance)
            if inst.observed.link_allowed.is_set():
                return
            inst.observed.allow_link()
            await self._quiesce(step)
            inst.must_fetch = dict.fromkeys(
                self._writes, f"re-established at step {len(self.trace)}"
            )

        self._run(run())

    @rule(seconds=_clock_steps())
    def advance_clock(self, seconds: float) -> None:
        """Move the virtual clock forward."""
        self._enter("advance_clock", seconds=seconds)
        self.clock.advance(seconds)

    @rule(
        instance=_instances(),
        writer=_instances(),
        name=names,
        in_flight=_in_flight(),
        lose=st.booleans(),
        read_during=st.booleans(),
    )
    def slow_fetch(
        self,
        instance: int,
        writer: int,
        name: str,
        in_flight: float = 0.0,
        lose: bool = False,
        read_during: bool = False,
    ) -> None:
        """Miss -> storage read starts -> update and invalidation -> the read completes.

        The read on ``instance`` is held once its storage read returned; then
        ``writer`` updates ``name`` (``in_flight`` seconds later), the
        invalidation is delivered to ``instance`` (or dropped, if ``lose``),
        optionally another read runs there (``read_during``), and the held read
        completes. It may return the old value (it started first), but the read
        that follows on the same instance may not, once the invalidation was
        delivered. (If ``name`` was cached there, the first read is a hit and
        nothing races.)
        """
        step = self._enter(
            "slow_fetch",
            instance=instance,
            writer=writer,
            name=name,
            in_flight=in_flight,
            lose=lose,
            read_during=read_during,
        )
        self._run(self._slow_fetch(step, instance, writer, name, in_flight, lose, read_during))

    async def _slow_fetch(
        self,
        step: str,
        instance: int,
        writer: int,
        name: str,
        in_flight: float,
        lose: bool,
        read_during: bool,
    ) -> None:
        inst = self._inst(instance)
        gate = _FetchHold()
        inst.observed.fetch_gate = gate
        start = self._start_read(inst, name)
        read = asyncio.ensure_future(inst.store.get_policy(name))
        captured = asyncio.ensure_future(gate.captured.wait())
        try:
            await asyncio.wait({read, captured}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            inst.observed.fetch_gate = None
            captured.cancel()
        held = gate.captured.is_set()
        if not held:
            # A hit (or a store that fetched without the client): it returned
            # before the update below, so it is judged as of now.
            self._judge(inst, start, await read)
        elif in_flight:
            self.clock.advance(in_flight)
            self._max_in_flight = max(self._max_in_flight, in_flight)
        try:
            write = await self._update(writer, name, {}, step)
            ours = [m for m in inst.queue if m.write is write]
            for _ in range(len(inst.queue) - len(ours)):
                self._head(inst, "deliver")
            for _ in ours:
                self._head(inst, "drop" if lose else "deliver")
            await self._quiesce(step)
            if read_during:
                await self._read(inst, name)
        finally:
            gate.released.set()
        value = await read
        await self._quiesce(step)
        if held:
            self._judge(inst, start, value)
        # The old value was fine for the read that raced; what it left in the
        # cache is judged by the next read.
        await self._read(inst, name)
        await self._quiesce(step)

    @rule(instance=_instances(), data=garbage())
    def inject_garbage(self, instance: int, data: bytes) -> None:
        """Put a payload no update sends on the instance's channel (past any hold)."""
        step = self._enter("inject_garbage", instance=instance, data=data)

        async def run() -> None:
            ps = self._inst(instance).observed.machine_pubsub
            if ps is not None and ps.live:
                ps.inject(data, channel=type(self).channel)
            await self._quiesce(step)

        self._run(run())

    @rule()
    def converge(self) -> None:
        """Deliver everything pending, then read every policy on every instance."""
        step = self._enter("converge")

        async def run() -> None:
            self._deliver_everything()
            await self._quiesce(step)
            await self._read_everything()
            await self._quiesce(step)

        self._run(run())


# -- configuration helpers ------------------------------------------------------------


def machine_settings(**changes: Any) -> hypothesis.settings:
    """The settings every machine's ``TestCase`` starts with, updated with ``changes``.

    No deadline and no health checks (one example builds several stores), 30
    steps per example, every phase but ``explain`` (its line tracing makes
    shrinking a stateful failure ten times slower and adds little here), and
    ``report_multiple_bugs=False``: otherwise Hypothesis keeps generating for up
    to ten seconds after the first failure, looking for others, before it
    shrinks. Other values (``max_examples``, ``database`` ...) come from the
    active profile. Use it as a decorator too: ``@machine_settings(max_examples=50)``.
    """
    base: dict[str, Any] = {
        "deadline": None,
        "suppress_health_check": list(HealthCheck),
        "stateful_step_count": 30,
        "phases": tuple(phase for phase in Phase if phase is not Phase.explain),
        "report_multiple_bugs": False,
    }
    return hypothesis.settings(**{**base, **changes})


def machine_for(
    target: P1Target | StoreFactory,
    *,
    ttl: float | None = None,
    instances: int = 3,
    make_client: Callable[[], Redis] | None = None,
    redis_url: str | None = None,
    channel: str | None = None,
    disabled_rules: Sequence[str] = (),
    name: str | None = None,
) -> type[InvalidationMachine]:
    """An :class:`InvalidationMachine` subclass for a target or a store factory.

    From a :class:`~pytest_quantum_p1.P1Target`, ``ttl`` and ``channel``
    default to its ``policy_ttl`` and ``invalidation_channel``; from a bare
    factory, to :data:`DEFAULT_TTL` and :data:`DEFAULT_CHANNEL`. Run it with
    ``TestX = machine_for(...).TestCase`` or :func:`run_state_machine_as_test`.
    """
    if isinstance(target, P1Target):
        factory: StoreFactory = target.store_factory
        ttl = target.policy_ttl if ttl is None else ttl
        channel = target.invalidation_channel if channel is None else channel
        label = name or f"InvalidationMachine[{target.name}]"
    else:
        factory = target
        label = name or f"InvalidationMachine[{getattr(target, '__name__', 'store')}]"
    namespace: dict[str, Any] = {
        "store_factory": staticmethod(factory),
        "ttl": DEFAULT_TTL if ttl is None else float(ttl),
        "instances": instances,
        "channel": channel or DEFAULT_CHANNEL,
        "make_client": None if make_client is None else staticmethod(make_client),
        "redis_url": redis_url,
        "disabled_rules": frozenset(disabled_rules),
        "__module__": __name__,
    }
    return cast("type[InvalidationMachine]", type(label, (InvalidationMachine,), namespace))


@dataclass(frozen=True)
class NoStaleReadsResult:
    """What :func:`check_no_stale_reads` found."""

    #: Examples run (with shrinking, when something failed).
    examples: int
    #: Hypothesis's report of the failure, with the shrunk steps; ``None`` when none.
    failures: str | None
    #: Largest write -> stale read age seen (virtual seconds), over allowed stale reads.
    max_stale_age_s: float
    elapsed_s: float
    #: Examples run until the first failure, or ``None``.
    found_after: int | None = None
    steps: int = 0

    @property
    def examples_per_second(self) -> float:
        """Examples per second of real time."""
        return self.examples / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()


def check_no_stale_reads(
    store_factory: StoreFactory,
    ttl: float,
    make_client: Callable[[], Redis] | None = None,
    *,
    time_budget_s: float = 3.0,
    max_examples: int = 1000,
    instances: int = 3,
    channel: str = DEFAULT_CHANNEL,
    step_count: int = 30,
    seed: int = 0,
    disabled_rules: Sequence[str] = (),
    shrink: bool = True,
) -> NoStaleReadsResult:
    """Run the machine against ``store_factory`` for about ``time_budget_s`` seconds.

    The criterion ``P1-2.no-stale-reads``. Examples run in seeded batches (seed
    ``seed``, ``seed + 1``...; no example database), so a run is repeatable;
    after a small first batch measures the rate, the next batch is sized to end
    within the budget. Stops at the first failure, which Hypothesis shrinks
    unless ``shrink`` is false: shrinking replays hundreds of examples, so a
    failing run typically takes 2-15 s more than the budget (without it, the
    failure lists every step of the failing example). ``make_client`` makes the
    stores' clients (default: fakeredis); ``instances``, ``channel`` and
    ``disabled_rules`` configure the machine as in :func:`machine_for`;
    ``step_count`` is the steps per example. ``examples`` in the result counts
    machines run (a few are abandoned early by Hypothesis, and shrinking runs
    count too).
    """
    if time_budget_s <= 0:
        raise ValueError(f"time_budget_s must be > 0, got {time_budget_s!r}")
    if max_examples < 1:
        raise ValueError(f"max_examples must be >= 1, got {max_examples}")
    machine = machine_for(
        store_factory,
        ttl=ttl,
        instances=instances,
        make_client=make_client,
        channel=channel,
        disabled_rules=disabled_rules,
        name="NoStaleReads",
    )
    stats = machine.stats
    started = time.perf_counter()
    failures: str | None = None
    batch = 0
    while stats.examples < max_examples:
        elapsed = time.perf_counter() - started
        if batch == 0:
            size = min(_CALIBRATION_EXAMPLES, max_examples)
        else:
            rate = stats.examples / elapsed if elapsed > 0 else float(max_examples)
            size = min(
                max_examples - stats.examples,
                math.floor((time_budget_s - elapsed) * rate * _BUDGET_SAFETY),
            )
            if size < 1:
                break
        failures = _run_batch(machine, size, seed + batch, step_count, shrink=shrink)
        batch += 1
        if failures is not None:
            break
    return NoStaleReadsResult(
        examples=stats.examples,
        failures=failures,
        max_stale_age_s=stats.max_stale_age_s,
        elapsed_s=time.perf_counter() - started,
        found_after=stats.first_failure_at,
        steps=stats.steps,
    )


def _search(
    machine: type[InvalidationMachine], *, examples: int, steps: int, seed: int, shrink: bool
) -> None:
    """Run ``machine`` for up to ``examples`` examples from ``seed``: repeatable, no database.

    Raises what the first failing example raised, shrunk when ``shrink``.
    """

    # A function of its own: hypothesis.seed marks what it decorates, and the
    # machine class must stay unmarked for the next search.
    def make() -> InvalidationMachine:
        return machine()

    config = machine_settings(
        max_examples=examples,
        stateful_step_count=steps,
        database=None,
        derandomize=False,  # whatever the profile says: the seed decides
        print_blob=False,
        phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
    )
    run_state_machine_as_test(hypothesis.seed(seed)(make), settings=config)  # type: ignore[no-untyped-call]  # hypothesis leaves it unannotated


def _run_batch(
    machine: type[InvalidationMachine], size: int, seed: int, step_count: int, *, shrink: bool
) -> str | None:
    try:
        _search(machine, examples=size, steps=step_count, seed=seed, shrink=shrink)
    except Exception as exc:
        return _describe(exc)
    return None
