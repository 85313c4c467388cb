"""The Hypothesis state machine that searches a policy store for stale reads.

Example tests show that one update reaches every instance; they cannot show
that no interleaving of reads, updates, lost or late invalidations, dropped
links, expiring entries and slow fetches ever serves a stale value. The
:class:`InvalidationMachine` searches for such an interleaving. Each example
builds ``instances`` stores from a :data:`~pytest_quantum_p1.StoreFactory` on
one Redis (fakeredis by default), on one event loop the machine owns, with one
:class:`~pytest_quantum_p1._clock.VirtualClock`, and then runs rules:

- ``read`` / ``update`` on any instance, ``read_all`` (every policy on every
  instance, delivering nothing first); ``update(read_back=True)`` reads on the
  writer at once, its own invalidation still held;
- ``split_update``: an update held between its commands (its storage write
  and its publish, in whichever order the store sends them) while everything
  it published is delivered and another instance reads, then a closing read;
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

and checks, on every read (against :class:`~pytest_quantum_p1._stateful.model.Model`):

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
   read counted by the harness (unless the instance wrote that policy itself
   since: a write-through store may serve its own write);
5. **read-your-writes** — once an instance's ``update_policy`` returned, it
   never serves an older value of that policy (no pending invalidation
   excuses it: it wrote the value itself).

An invalidation delivered while its update is still running (``split_update``)
may precede the storage write, so it does not count as delivered: a store that
publishes before it stores, and publishes nothing after, is stale once the
update returns; one that publishes again afterwards is excused by that one.
A store whose ``update_policy`` waits until it hears its own invalidation is
handed what it holds. A step that leaves a store busy (a listener that never
comes back to its subscription) fails as ``unsettled``, and a store call that
does not return as ``hung``; a store the machine cannot build, start or drive
raises :class:`CouldNotRun` with the cause: no verdict.

Every value written is ``{"v": n, ...}`` with a global counter ``n``, so
"older" is well defined. Nothing sleeps: after each step the machine waits,
driven by events, until every invalidation published has reached every
instance's queue and every store is idle again, so the state after a step
depends only on the steps, and failures shrink and replay (from Hypothesis's
database or a seed). The waits are real seconds and public: ``settle_timeout``
after a step, ``reconnect_timeout`` after a link step (a store that backs off
before resubscribing needs it longer), ``step_timeout`` for the setup or a step.

Use it by subclassing (``store_factory = ...``, then ``TestX = MyMachine.TestCase``)
or with :func:`machine_for`; the acceptance run calls
:func:`~pytest_quantum_p1._stateful.search.check_no_stale_reads`.

What is assumed of a store is what :class:`~pytest_quantum_p1.PolicyCluster`
assumes: it subscribes with ``client.pubsub()`` on the client it is given (and
again after a lost link), consumes it from a listener that waits in
``get_message``/``listen``/``run``, handles one message fully before asking for
the next, and reads storage through that client outside pipelines.

**On the wire.** A store of the URL form (``store_factory =
from_url((url, clock) -> store)``) builds its own client, with any library,
RESP2 or RESP3, decoded or not; each instance is then given the URL of a
:class:`~pytest_quantum_p1._wire.proxy.WireProxy` of its own
(:class:`~pytest_quantum_p1._stateful.instruments.WireInstrument`), and every
rule maps to it: pushes (pub/sub messages, tracking invalidations) held from
the start and delivered, dropped or duplicated; ``disconnect`` closes the
store's subscribing connections and holds its next ``SUBSCRIBE`` until
``reconnect``; ``slow_fetch`` holds one storage read's reply; ``split_update``
holds one command of the update before Redis sees it; storage reads are
counted on the wire. The channel ``__redis__:invalidate`` means tracking
invalidations, however they arrive. What the wire proves: what each instance
was sent, and when (a barrier ``PING`` per subscribing connection shows every
push Redis wrote before it reached the proxy; nothing is published), and what
each instance serves. What it cannot: whether a store handled a push, or
noticed a lost link, or is idle. So the machine judges by serving: a read that
would be stale (or cached across a link loss) is read again, with a short
backoff, until it serves what the model allows or ``settle_timeout`` passed;
only then is it a failure, saying so. A store that never handles its
invalidations still fails (``settle_timeout`` later per failing read); a
correct one that handles them late does not. A stuck listener shows as stale
reads, not as ``unsettled``; a store that drops its subscription and does not
subscribe again within the wait is ``unsettled``. A client that reconnects and
resubscribes by itself (redis-py's retries) hides a lost link from its store:
the store is then found serving what it cached while it could not hear (true:
it could not). TTL checks need the store to take the clock, as on the client
path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    precondition,
    rule,
)

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._clock import RealClock, VirtualClock
from pytest_quantum_p1._harness import BarrierBroken
from pytest_quantum_p1._harness.member import publish_barrier
from pytest_quantum_p1._redis.namespace import is_retired
from pytest_quantum_p1._redis.source import RedisSource
from pytest_quantum_p1._stateful.instruments import (
    CommandHold,
    FetchHold,
    MachineRedis,
    WireInstrument,
)
from pytest_quantum_p1._stateful.model import (
    ErrorKind,
    Held,
    Instance,
    Model,
    ReadStart,
    Verdict,
    Violation,
    Write,
)
from pytest_quantum_p1._stateful.steps import RULES, Operation
from pytest_quantum_p1._stateful.strategies import (
    DEFAULT_TTL,
    clock_seconds,
    garbage,
    in_flight_seconds,
    name_sets,
    policy_samples,
)
from pytest_quantum_p1._target import DEFAULT_CHANNEL, FromURL, P1Target, StoreFactory
from pytest_quantum_p1._wire.proxy import WireProxy
from pytest_quantum_p1._wire.upstream import Upstream, upstream_of

if TYPE_CHECKING:
    from hypothesis.stateful import MultipleResults
    from hypothesis.strategies import SearchStrategy
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_RECONNECT_TIMEOUT",
    "DEFAULT_SETTLE_TIMEOUT",
    "DEFAULT_STEP_TIMEOUT",
    "CouldNotRun",
    "InvalidationError",
    "InvalidationMachine",
    "MachineStats",
    "SharedClients",
    "machine_for",
    "machine_settings",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Real seconds a store may take to be idle again after a step (``settle_timeout``).
DEFAULT_SETTLE_TIMEOUT = 5.0
#: Real seconds a store may take to come back to its subscription after its link
#: was cut or let through again (``reconnect_timeout``): a reconnect backoff.
DEFAULT_RECONNECT_TIMEOUT = 5.0
#: Real seconds a whole step, or the stores' setup, may take (``step_timeout``).
DEFAULT_STEP_TIMEOUT = 30.0
#: How often the teardown cancels again a task that a cancellation did not stop.
_RECANCEL_EVERY = 0.05
#: On the wire: what a read may break only because the store has not yet handled
#: a push it was sent (or noticed a lost link); read again until ``settle_timeout``.
_SERVED_LATE: frozenset[ErrorKind] = frozenset({"stale", "link-loss"})
#: The first and the longest pause between two such reads (real seconds).
_SERVE_FIRST_PAUSE = 0.001
_SERVE_MAX_PAUSE = 0.05
#: Loop turns the wire path lets pass after a step: the store, its proxy and the
#: machine share one loop, so a forwarded push is usually handled within them.
_WIRE_TURNS = 10


def _true_if(check: Callable[[], bool]) -> bool | None:
    """``True`` once ``check()`` is, else ``None``: a condition for ``Signal.wait_until``."""
    return True if check() else None


async def _turns(count: int = _WIRE_TURNS) -> None:
    """Let the loop run ``count`` times round: a push written to a socket is read and handled."""
    for _ in range(count):
        await asyncio.sleep(0)


class InvalidationError(AssertionError):
    """A store broke a property the machine checks; ``kind`` says which.

    ``stale``, ``monotonic``, ``ttl``, ``link-loss``, ``impossible`` (a value
    nobody wrote), ``read-your-writes`` (the writer served an older value after
    its own update returned), ``unsettled`` (the store did not come back to its
    subscription: a stuck listener) or ``hung`` (a store call did not return
    within ``step_timeout``). The message ends with the steps of the example,
    which after shrinking is the minimal failing sequence.
    """

    def __init__(self, message: str, *, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind = kind


class CouldNotRun(Exception):
    """No verdict: the stores could not be built, started or driven, and why.

    The store factory or ``initialize()`` raised or did not return, the stores
    did not settle after ``initialize()``, or a store call raised instead of
    returning a value. Not an :class:`AssertionError`: a property-based test
    reports it as an error of the test, not as a broken property.
    """


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


class SharedClients:
    """One event loop and one client per role, reused from one example to the next.

    Making a client and its first connection costs more than most steps (1-2
    ms on fakeredis), and an example needs one per instance plus the
    machine's own: a search of hundreds of examples (``check_no_stale_reads``)
    gives its machine class one of these, and closes it at the end. The
    stores are still new in every example, and so are their subscriptions.
    On a fakeredis server of its own (no ``make_client``, no ``redis_url``)
    each example starts from an empty Redis, and the subscriptions of the last
    one are removed from the server: fakeredis keeps a closed asyncio
    connection subscribed, and would deliver every later message to it too.
    For stores of the URL form it also keeps the Redis their proxies forward
    to (:meth:`upstream`: on fakeredis a TCP server, started once).
    """

    def __init__(
        self, make_client: Callable[[], Redis] | None = None, redis_url: str | None = None
    ) -> None:
        self.loop = asyncio.new_event_loop()
        #: Whether the server is ours alone, to empty between examples.
        self.owned = make_client is None and redis_url is None
        self._source: RedisSource | None = None
        if make_client is None:
            source = RedisSource.fake() if redis_url is None else RedisSource.external(redis_url)
            self._source = source
            make_client = source.client
        self._make = make_client
        self._clients: dict[object, Redis] = {}
        self._stack = contextlib.ExitStack()
        self._upstream: Upstream | None = None

    def upstream(self) -> Upstream:
        """The TCP Redis the wire proxies forward to: the clients' own Redis."""
        if self._upstream is None:
            source = self._source or source_of_client(self.client("control"))
            self._upstream = self._stack.enter_context(upstream_of(source))
        return self._upstream

    def client(self, key: object) -> Redis:
        """The client for ``key`` (made on first use, on :attr:`loop`)."""
        if key not in self._clients:
            self._clients[key] = self._make()
        return self._clients[key]

    async def begin(self, control: Any) -> None:
        """Before an example: an empty Redis, when the server is ours."""
        if self.owned:
            await control.flushall()

    async def end(self, control: Any) -> None:
        """After an example: drop its subscriptions from a server of ours."""
        if self.owned:
            await control.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

    def close(self) -> None:
        """Close the clients and the loop."""
        loop = self.loop
        try:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    loop.run_until_complete(client.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._clients.clear()
            loop.close()
            self._stack.close()


def source_of_client(client: Any) -> RedisSource:
    """The Redis a ``redis.asyncio`` (or fakeredis) client talks to, as a source never flushed.

    A store of the URL form is given a proxy's address, so the machine needs an
    address where the client path needs only a client: this reads it from the
    client's connection settings (a fakeredis client: its in-process server).
    """
    settings = client.connection_pool.connection_kwargs
    server = settings.get("server")
    if server is not None:
        return RedisSource("fake", _fake_server=server)
    if settings.get("path"):
        raise CouldNotRun(_messages.MACHINE_WIRE_NO_TCP.format(path=settings["path"]))
    user, password = settings.get("username"), settings.get("password")
    auth = ""
    if password:
        auth = f"{urllib.parse.quote(user or '', safe='')}:{urllib.parse.quote(password, safe='')}@"
    host, port, db = (
        settings.get("host", "127.0.0.1"),
        settings.get("port", 6379),
        settings.get("db", 0),
    )
    return RedisSource.external(f"redis://{auth}{host}:{port}/{db}")


# -- strategies that ask the running machine ---------------------------------------------


# Each strategy below is built once per distinct value and reused: building
# one on every draw (and Hypothesis validating it) cost more than the step.


@functools.cache
def _below(count: int) -> SearchStrategy[int]:
    return st.integers(0, count - 1)


@functools.cache
def _one_of(indices: tuple[int, ...]) -> SearchStrategy[int]:
    return st.sampled_from(indices)


@functools.cache
def _clock_for(ttl: float) -> SearchStrategy[float]:
    return clock_seconds(ttl)


@functools.cache
def _in_flight_for(ttl: float) -> SearchStrategy[float]:
    return in_flight_seconds(ttl)


def _instances() -> SearchStrategy[int]:
    return st.runner().flatmap(lambda m: _below(m.instance_count))


def _where(select: str) -> SearchStrategy[int]:
    # Drawn among the instances where the rule can act, so no step is a no-op.
    return st.runner().flatmap(lambda m: _one_of(tuple(m._instances_where(select))))


def _clock_steps() -> SearchStrategy[float]:
    return st.runner().flatmap(lambda m: _clock_for(m.ttl_s))


def _in_flight() -> SearchStrategy[float]:
    return st.runner().flatmap(lambda m: _in_flight_for(m.ttl_s))


# Named functions, not lambdas: Hypothesis describes each precondition on every
# check, and describing a lambda means finding its source.
def _any_pending(machine: InvalidationMachine) -> bool:
    return bool(machine._instances_where("pending"))


def _any_connected(machine: InvalidationMachine) -> bool:
    return bool(machine._instances_where("connected"))


def _any_disconnected(machine: InvalidationMachine) -> bool:
    return bool(machine._instances_where("disconnected"))


def _disabled(rule_method: Callable[..., None]) -> Callable[..., None]:
    """The rule as a plain method: callable (by ``replay``), but not a rule.

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

    - ``store_factory`` (required): ``(redis client, clock) -> store``, or
      ``from_url((url, clock) -> store)`` for a store that builds its own client
      (the wire path, see the module docstring); ``ttl`` (the stores' TTL in clock seconds),
      ``instances`` (>= 1, default 3), ``channel`` (the invalidation channel);
    - ``make_client``: a zero-argument callable returning a new
      ``redis.asyncio`` client, called on the machine's loop; or ``redis_url``;
      default: a fresh fakeredis server per example (on the wire, served over TCP;
      with ``make_client``, the proxies forward to the address its client uses);
    - ``disabled_rules``: rule names (``RULES``) to leave out, to focus a search;
    - ``name_prefix``: put before every policy name the stores are
      given, e.g. a namespace on a Redis shared with other data; the steps show
      the names without it;
    - ``settle_timeout``: real seconds a store may take to become idle again after one step;
    - ``reconnect_timeout``: real seconds a store may take to come back to its
      subscription after ``disconnect`` / ``reconnect`` (raise it for a store that
      backs off before resubscribing);
    - ``step_timeout``: real seconds the stores' setup, or one step, may take.

    ``stats`` (:class:`MachineStats`) accumulates figures over every example of the class.
    """

    # Not ClassVars: so that type checkers accept ``staticmethod(f)`` here (a
    # ClassVar callable is typed as a method) and reject a bare function,
    # which would be bound to the machine.
    store_factory: StoreFactory | FromURL | None = None
    ttl: ClassVar[float] = DEFAULT_TTL
    instances: ClassVar[int] = 3
    channel: ClassVar[str] = DEFAULT_CHANNEL
    make_client: Callable[[], Redis] | None = None
    redis_url: ClassVar[str | None] = None
    disabled_rules: ClassVar[frozenset[str]] = frozenset()
    name_prefix: ClassVar[str] = ""
    #: The stores keep time themselves (``P1Target.real_time``): the machine's
    #: clock is the real one, and moving it forward waits for real.
    real_time: ClassVar[bool] = False
    settle_timeout: ClassVar[float] = DEFAULT_SETTLE_TIMEOUT
    reconnect_timeout: ClassVar[float] = DEFAULT_RECONNECT_TIMEOUT
    step_timeout: ClassVar[float] = DEFAULT_STEP_TIMEOUT
    #: Set by a search (:class:`SharedClients`): examples reuse one loop and its clients.
    shared: ClassVar[SharedClients | None] = None
    stats: ClassVar[MachineStats] = MachineStats()

    names = Bundle("names")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.stats = MachineStats()
        cls.TestCase.settings = machine_settings()
        unknown = set(cls.disabled_rules) - set(RULES)
        if unknown:
            raise ValueError(
                _messages.MACHINE_UNKNOWN_DISABLED_RULES.format(
                    machine=cls.__name__, unknown=sorted(unknown), rules=", ".join(RULES)
                )
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
            raise TypeError(_messages.MACHINE_NO_STORE_FACTORY.format(machine=cls.__name__))
        if cls.instances < 1:
            raise ValueError(
                _messages.MACHINE_AT_LEAST_ONE.format(
                    name=f"{cls.__name__}.instances", value=cls.instances
                )
            )
        if not (cls.ttl >= 0 and math.isfinite(cls.ttl)):
            raise ValueError(_messages.MACHINE_BAD_TTL.format(machine=cls.__name__, ttl=cls.ttl))
        self.ttl_s = float(cls.ttl)
        self.instance_count = cls.instances
        self.trace: list[str] = []
        self.clock = RealClock() if cls.real_time else VirtualClock()
        self._stats = cls.stats
        self._stats.examples += 1
        self._names = cls.name_prefix
        self._model = Model(self.ttl_s)
        self._insts: list[Instance] = []
        self._control: Any = None
        self._closed = False
        #: The wire path: a store of the URL form, each instance behind a proxy.
        self._wire = isinstance(factory, FromURL)
        #: What the wire path opened for this example alone (a fake TCP server).
        self._exit = contextlib.ExitStack()
        #: The store calls under way, in words: what a step that overran was waiting for.
        self._calling: list[str] = []
        #: The calls a step's deadline cut short (they leave :attr:`_calling` as it fires).
        self._cut_short: list[str] = []
        shared = cls.shared
        self._loop = asyncio.new_event_loop() if shared is None else shared.loop
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
        if is_retired(self._names):
            # The run that owns these names is over (Ctrl-C, an abandoned
            # check) and is removing their keys: write nothing more.
            coro.close()
            raise CouldNotRun(_messages.MACHINE_NAMESPACE_RETIRED.format(prefix=self._names))
        return self._loop.run_until_complete(self._bounded(coro))

    async def _bounded(self, coro: Coroutine[Any, Any, T]) -> T:
        timeout = type(self).step_timeout
        scope = asyncio.timeout(timeout)
        self._cut_short.clear()
        try:
            async with scope:
                return await coro
        except TimeoutError:
            if not scope.expired():
                raise  # not this deadline: someone else's timeout
            calls = ", ".join(self._cut_short or self._calling) or _messages.MACHINE_NO_CALL
            if not self.trace:
                raise CouldNotRun(
                    _messages.MACHINE_SETUP_TIMED_OUT.format(calls=calls, timeout=timeout)
                ) from None
            self._note_failure()
            raise InvalidationError(
                _messages.MACHINE_CALL_HUNG.format(
                    calls=calls, timeout=timeout, step=self.trace[-1]
                )
                + self._trailer(),
                kind="hung",
            ) from None

    async def _store_call(self, what: str, call: Awaitable[T]) -> T:
        """Await a call into the store; what it raises becomes :class:`CouldNotRun`."""
        self._calling.append(what)
        try:
            return await call
        except asyncio.CancelledError:
            self._cut_short.append(what)
            raise
        except (InvalidationError, CouldNotRun):
            raise
        except Exception as exc:
            where = self.trace[-1] if self.trace else _messages.MACHINE_AT_SETUP
            raise CouldNotRun(
                _messages.MACHINE_STORE_RAISED.format(
                    call=what, type=type(exc).__name__, error=exc, step=where
                )
                + (self._trailer() if self.trace else "")
            ) from exc
        finally:
            self._calling.remove(what)

    def _make_client(self) -> Callable[[object], Redis]:
        """How this example's clients are made: ``make_client``, else from a :class:`RedisSource`.

        Called with a key (``"control"`` or the instance's index): :attr:`shared`
        hands out the same client for the same key in every example.
        """
        cls = type(self)
        if cls.shared is not None:
            return cls.shared.client
        make = cls.make_client
        if make is None:
            # A fake source is a fresh server: each example starts from an empty Redis.
            url = cls.redis_url
            make = (RedisSource.fake() if url is None else RedisSource.external(url)).client
        return lambda _key: make()

    def _wire_redis(self) -> Upstream:
        """The wire path's Redis: where proxies forward to; sets the machine's own client."""
        cls = type(self)
        if cls.shared is not None:
            self._control = cls.shared.client("control")
            return cls.shared.upstream()
        if cls.make_client is not None:
            self._control = cls.make_client()
            source = source_of_client(self._control)
        else:
            # A fake source is a fresh server: each example starts from an empty Redis.
            url = cls.redis_url
            source = RedisSource.fake() if url is None else RedisSource.external(url)
            self._control = source.client()
        return self._exit.enter_context(upstream_of(source))

    async def _open_wire(self, factory: FromURL) -> None:
        upstream = self._wire_redis()
        shared = type(self).shared
        if shared is not None:
            await shared.begin(self._control)
        for index in range(self.instance_count):
            proxy = WireProxy(
                upstream.address, label=f"instance {index}", db=upstream.db, loop=self._loop
            )
            await proxy.start_async()
            wire = WireInstrument(proxy, channel=type(self).channel)
            try:
                store = factory(upstream.store_url(proxy.address), self.clock)
            except Exception as exc:
                await wire.aclose()  # not yet an instance: teardown would miss it
                raise CouldNotRun(
                    _messages.MACHINE_FACTORY_RAISED.format(
                        instance=index, type=type(exc).__name__, error=exc
                    )
                ) from exc
            self._insts.append(Instance(index, wire, store))

    async def _open(self, factory: StoreFactory | FromURL) -> None:
        if isinstance(factory, FromURL):
            await self._open_wire(factory)
        else:
            await self._open_client(factory)
        for inst in self._insts:
            await self._store_call(
                _messages.MACHINE_CALL.format(instance=inst.index, call="initialize()"),
                inst.store.initialize(),
            )
        # On the wire nothing tells when a store is listening but the wire itself:
        # wait for each one's subscription (a store that never subscribes is
        # then found serving stale values, as on the client path).
        for inst in self._insts:
            if isinstance(inst.observed, WireInstrument):
                await inst.observed.wait_listening(type(self).settle_timeout)
        try:
            await self._quiesce("initialize()")
        except InvalidationError as exc:
            raise CouldNotRun(_messages.MACHINE_SETUP_UNSETTLED.format(detail=exc)) from None

    async def _open_client(self, factory: StoreFactory) -> None:
        make_client = self._make_client()
        self._control = make_client("control")
        shared = type(self).shared
        if shared is not None:
            await shared.begin(self._control)
        for index in range(self.instance_count):
            observed = MachineRedis(make_client(index), label=f"instance {index}")
            try:
                # The proxy forwards the client interface the store uses.
                store = factory(cast("Redis", observed), self.clock)
            except Exception as exc:
                await observed.aclose()  # not yet an instance: teardown would miss it
                raise CouldNotRun(
                    _messages.MACHINE_FACTORY_RAISED.format(
                        instance=index, type=type(exc).__name__, error=exc
                    )
                ) from exc
            self._insts.append(Instance(index, observed, store))

    def teardown(self) -> None:
        """Close the stores, the clients and the loop (never raises: a failure may be in flight)."""
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        shared = type(self).shared is not None
        try:
            loop.run_until_complete(self._shutdown())
            if not shared:  # a shared loop goes on: its async generators too
                loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:
            logger.exception("closing %s failed", type(self).__name__)
        finally:
            for task in self._tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: no "never retrieved" noise at GC
            self._tasks.clear()
            if not shared:
                loop.close()
            self._exit.close()

    async def _shutdown(self) -> None:
        for inst in self._insts:
            inst.observed.allow_link()  # a held resubscription may proceed and end
            try:
                async with asyncio.timeout(type(self).settle_timeout):
                    await inst.store.close()
            except Exception as exc:  # a broken store's close; the verdict is elsewhere
                logger.warning("instance %d: store.close() failed: %r", inst.index, exc)
        me = asyncio.current_task()
        shared = type(self).shared
        for inst in self._insts:
            with contextlib.suppress(Exception):
                await _until_done(inst.observed.close_pubsubs())
            # A proxy is the example's own, even when the clients are shared.
            if shared is None or isinstance(inst.observed, WireInstrument):
                with contextlib.suppress(Exception):
                    await inst.observed.aclose()
        if self._control is not None:
            with contextlib.suppress(Exception):
                if shared is None:
                    await self._control.aclose()
                else:
                    await shared.end(self._control)
        leftovers = [t for t in asyncio.all_tasks() if t is not me]
        for task in leftovers:
            task.cancel()
        await _until_done(asyncio.gather(*leftovers, return_exceptions=True))

    # -- quiescence -----------------------------------------------------------------

    async def _quiesce(
        self, step: str, write: Write | None = None, *, timeout: float | None = None
    ) -> None:
        """Return once every published message is queued and every store is idle.

        After a write, a barrier on each instance's own pubsub connection (a
        token on a harness-only channel, never the store's: see
        :meth:`~pytest_quantum_p1._harness.ControlledPubSub.barrier_async`) proves
        that everything the write published has reached the instance, where it
        is held. ``timeout`` bounds each wait (default ``settle_timeout``).
        """
        hint = "" if timeout is None else _messages.MACHINE_RECONNECT_HINT
        timeout = type(self).settle_timeout if timeout is None else timeout
        if self._wire:
            await self._quiesce_wire(step, write, timeout)
            return
        if write is not None:
            # Side by side: a held message stays held, so no wait undoes another,
            # and the outcome (everything held) does not depend on their order.
            await asyncio.gather(*(self._barrier(inst, step, timeout) for inst in self._insts))
        await self._wait_all_idle(step, timeout, hint)
        self._absorb(write)
        self._collect_deaths()

    async def _quiesce_wire(self, step: str, write: Write | None, timeout: float) -> None:
        """The wire path's :meth:`_quiesce`: pushes at the proxies, then a few turns of the loop.

        After a write, a barrier on each proxy (a ``PING`` of its own on each
        subscribing connection, answered after every push Redis wrote there
        before it) proves that what the write published is held, and tagged.
        Whether a store is idle is not visible on the wire: the loop is let run
        a few turns (the store, its proxy and the machine share it), and reads
        are judged by serving (:meth:`_judge_served`).
        """
        if write is not None:
            await asyncio.gather(*(self._wire_barrier(inst, step, timeout) for inst in self._insts))
        await _turns()
        # What the wire does show: a store that dropped its subscription (after
        # a garbage message, say) and has not resubscribed yet. Waited for, so
        # the next step finds the same state in every run.
        for inst in self._insts:
            wire = inst.observed
            assert isinstance(wire, WireInstrument)
            if wire.settled():
                continue
            try:
                await wire.signal.wait_until(functools.partial(_true_if, wire.settled), timeout)
            except TimeoutError:
                self._note_failure()
                raise InvalidationError(
                    _messages.MACHINE_NOT_IDLE.format(
                        instance=inst.index,
                        timeout=timeout,
                        step=step,
                        whereabouts=wire.whereabouts(),
                    )
                    + self._trailer(),
                    kind="unsettled",
                ) from None
        self._absorb(write)

    def _barrier_not_back(self, inst: Instance, step: str, timeout: float) -> InvalidationError:
        self._note_failure()
        return InvalidationError(
            _messages.MACHINE_NOT_IDLE.format(
                instance=inst.index,
                timeout=timeout,
                step=step,
                whereabouts=_messages.MACHINE_WHERE_NEVER_REACHED,
            )
            + self._trailer(),
            kind="unsettled",
        )

    async def _wire_barrier(self, inst: Instance, step: str, timeout: float) -> None:
        wire = inst.observed
        assert isinstance(wire, WireInstrument)
        try:
            await wire.proxy.barrier_async(timeout)
        except TimeoutError:
            raise self._barrier_not_back(inst, step, timeout) from None

    async def _publish_barrier(self, channel: str, token: str) -> list[str] | None:
        return await publish_barrier(self._control, channel, token)

    async def _barrier(self, inst: Instance, step: str, timeout: float) -> None:
        # Redis delivers in order per connection: once the token is back,
        # everything published before it is held.
        assert isinstance(inst.observed, MachineRedis)
        ps = inst.observed.machine_pubsub
        if ps is None or not ps.live or not ps.listens_to(type(self).channel):
            return
        try:
            await ps.barrier_async(self._publish_barrier, timeout)
        except BarrierBroken:
            return  # the link went: what it held is lost with it, as a cut link loses it
        except TimeoutError:
            raise self._barrier_not_back(inst, step, timeout) from None

    async def _wait_all_idle(self, step: str, timeout: float, hint: str = "") -> None:
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
            if inst.observed.idle() or not isinstance(inst.observed, MachineRedis):
                continue
            ps = inst.observed.machine_pubsub
            where = ps.whereabouts() if ps is not None else _messages.MACHINE_WHERE_NO_SUBSCRIPTION
            lines.append(
                _messages.MACHINE_NOT_IDLE.format(
                    instance=inst.index, timeout=timeout, step=step, whereabouts=where
                )
                + hint
            )
        self._note_failure()
        raise InvalidationError("\n".join(lines) + self._trailer(), kind="unsettled")

    def _absorb(self, write: Write | None) -> None:
        """Mirror newly held messages, tagging them with the write that sent them."""
        for inst in self._insts:
            if isinstance(inst.observed, WireInstrument):
                self._absorb_wire(inst, inst.observed, write)
                continue
            ps = inst.observed.machine_pubsub
            if ps is not inst.pubsub:
                inst.lose_queue()  # the store replaced its subscription on its own
                inst.pubsub = ps
            if ps is None:
                continue
            real = ps.held_count
            if real < len(inst.queue):
                raise RuntimeError(
                    _messages.MACHINE_MIRROR_BUG.format(
                        instance=inst.index, held=real, expected=len(inst.queue)
                    )
                )
            for _ in range(real - len(inst.queue)):
                inst.queue.append(Held(write))
                if write is not None:
                    write.fate(inst.index).pending += 1

    @staticmethod
    def _absorb_wire(inst: Instance, wire: WireInstrument, write: Write | None) -> None:
        # Keyed by the proxy's own records: a push held for a connection that
        # closed (the machine cut it, or the store did) is gone from the proxy.
        held = wire.held
        still = {id(delivery) for delivery in held}
        kept = [h for h in inst.queue if id(h.token) in still]
        if len(kept) < len(inst.queue):
            gone = [h for h in inst.queue if id(h.token) not in still]
            inst.queue = gone
            inst.lose_queue()
            inst.queue = kept
        mirrored = {id(h.token) for h in kept}
        for delivery in held:
            if id(delivery) not in mirrored:
                inst.queue.append(Held(write, delivery))
                if write is not None:
                    write.fate(inst.index).pending += 1

    def _collect_deaths(self) -> None:
        for inst in self._insts:
            if not isinstance(inst.observed, MachineRedis):
                continue  # a URL-form store's tasks are not told apart from the others
            for ps in inst.observed.machine_pubsubs:
                consumer = ps.consumer
                if consumer is None or not consumer.done() or id(consumer) in inst.reported:
                    continue
                inst.reported.add(id(consumer))
                if consumer.cancelled():
                    continue
                exc = consumer.exception()
                what = (
                    _messages.MACHINE_LISTENER_DIED.format(type=type(exc).__name__, error=exc)
                    if exc is not None
                    else _messages.MACHINE_LISTENER_RETURNED
                )
                inst.deaths.append(
                    _messages.MACHINE_LISTENER_ENDED.format(
                        task=consumer.get_name(), what=what, step=len(self.trace)
                    )
                )

    # -- driving messages --------------------------------------------------------------

    def _instances_where(self, select: str) -> list[int]:
        if select == "pending":
            return [inst.index for inst in self._insts if inst.queue]
        if select == "connected":
            return [
                inst.index
                for inst in self._insts
                if inst.observed.link_allowed.is_set() and self._linked(inst)
            ]
        if select == "disconnected":
            return [i.index for i in self._insts if not i.observed.link_allowed.is_set()]
        raise ValueError(select)

    @staticmethod
    def _linked(inst: Instance) -> bool:
        """Whether the instance has a live invalidation link to cut."""
        if isinstance(inst.observed, WireInstrument):
            # Whether it listens at this moment is timing (a resubscription on its
            # way): not a choice the search may depend on.
            return True
        ps = inst.observed.machine_pubsub
        return ps is not None and ps.live

    def _head_wire(
        self, inst: Instance, wire: WireInstrument, action: Literal["deliver", "drop", "duplicate"]
    ) -> bool:
        held = wire.held
        if not inst.queue or not held:
            return False
        head = inst.queue[0]
        if head.token is not held[0]:
            raise RuntimeError(
                _messages.MACHINE_MIRROR_BUG.format(
                    instance=inst.index, held=len(held), expected=len(inst.queue)
                )
            )
        fate = head.fate(inst.index)
        if action == "drop":
            inst.queue.pop(0)
            fate.pending -= 1
            wire.proxy.drop(1)
            fate.dropped += 1
            return True
        if action == "duplicate":
            (sent,) = wire.proxy.duplicate(1)
        else:
            inst.queue.pop(0)
            fate.pending -= 1
            (sent,) = wire.proxy.deliver(1)
        if not sent.forwarded:  # its connection closed meanwhile: the store never got it
            if action == "deliver":
                fate.lost += 1
        elif head.write is not None and not head.write.committed:
            fate.early += 1
        else:
            fate.delivered += 1
            fate.delivered_at.append(len(self.trace))
        return True

    def _head(self, inst: Instance, action: Literal["deliver", "drop", "duplicate"]) -> bool:
        if isinstance(inst.observed, WireInstrument):
            return self._head_wire(inst, inst.observed, action)
        ps = inst.pubsub
        if ps is None or not inst.queue or not ps.live:
            return False
        head = inst.queue[0]
        fate = head.fate(inst.index)
        if action != "drop":
            if action == "duplicate":
                ps.duplicate(1)
            else:
                inst.queue.pop(0)
                fate.pending -= 1
                ps.deliver(1)
            if head.write is not None and not head.write.committed:
                fate.early += 1
            else:
                fate.delivered += 1
                fate.delivered_at.append(len(self.trace))
            return True
        inst.queue.pop(0)
        fate.pending -= 1
        ps.drop(1)
        fate.dropped += 1
        return True

    def _deliver_everything(self) -> None:
        for inst in self._insts:
            while self._head(inst, "deliver"):
                pass

    async def _read_everything(self) -> None:
        for name in self._model.names:
            for inst in self._insts:
                await self._read(inst, name)

    # -- reads and their verdicts ----------------------------------------------------------

    async def _read(self, inst: Instance, name: str) -> None:
        start = self._model.start_read(inst, name)
        value = await self._get(inst, name)
        if self._wire:
            await self._judge_served(inst, name, start, value)
        else:
            self._judge(inst, start, value)

    async def _judge_served(
        self, inst: Instance, name: str, start: ReadStart, value: Mapping[str, Any]
    ) -> None:
        """The wire path's verdict on a read: by what the instance serves, until a deadline.

        On the wire, a push forwarded to a store is not known to be handled
        (nor a lost link to be noticed): a read that would be stale, or cached
        across a link loss, is read again with a short backoff until it serves
        what the model allows or ``settle_timeout`` passed; only then is it a
        failure. A broken store fails all the same, ``settle_timeout`` later.
        """
        __tracebackhide__ = True
        deadline = time.monotonic() + type(self).settle_timeout
        pause = _SERVE_FIRST_PAUSE
        while True:
            verdict = self._model.judge(inst, start, value, self.clock())
            late = verdict.violation is not None and verdict.violation.kind in _SERVED_LATE
            if not late or time.monotonic() >= deadline:
                self._apply(inst, verdict)
                return
            await asyncio.sleep(pause)  # a real wait: the store's own tasks must run
            pause = min(pause * 2, _SERVE_MAX_PAUSE)
            start = self._model.start_read(inst, name)
            value = await self._get(inst, name)

    def _get(self, inst: Instance, name: str) -> Awaitable[Mapping[str, Any]]:
        what = _messages.MACHINE_CALL.format(instance=inst.index, call=f"get_policy({name!r})")
        return self._store_call(what, inst.store.get_policy(self._names + name))

    def _judge(self, inst: Instance, start: ReadStart, value: Mapping[str, Any]) -> None:
        __tracebackhide__ = True
        self._apply(inst, self._model.judge(inst, start, value, self.clock()))

    def _apply(self, inst: Instance, verdict: Verdict) -> None:
        __tracebackhide__ = True
        self._stats.reads += 1
        if verdict.violation is not None:
            self._fail(verdict.violation)
        if verdict.stale_age is not None:
            self._stats.stale_reads += 1
            self._stats.max_stale_age_s = max(self._stats.max_stale_age_s, verdict.stale_age)

    def _fail(self, violation: Violation) -> None:
        __tracebackhide__ = True
        lines = self._model.explain(violation)
        if self._wire and violation.kind in _SERVED_LATE:
            lines.append(_messages.MACHINE_WIRE_SERVED.format(seconds=type(self).settle_timeout))
        self._collect_deaths()
        lines.extend(
            _messages.MACHINE_OTHER_DEATH.format(instance=i.index, death=death)
            for i in self._insts
            if i is not violation.instance
            for death in i.deaths
        )
        self._note_failure()
        raise InvalidationError("\n".join(lines) + self._trailer(), kind=violation.kind)

    def _note_failure(self) -> None:
        self._stats.failures += 1
        if self._stats.first_failure_at is None:
            self._stats.first_failure_at = self._stats.examples

    def _trailer(self) -> str:
        return _messages.MACHINE_STEPS.format(
            machine=type(self).__name__,
            instances=self.instance_count,
            ttl=self.ttl_s,
            steps="\n".join(f"    {line}" for line in self.trace),
        )

    # -- steps ----------------------------------------------------------------------------

    def _enter(self, rule_name: str, **args: Any) -> str:
        line = str(Operation(rule_name, args))
        self.trace.append(line)
        self._stats.steps += 1
        return line

    def _inst(self, instance: int) -> Instance:
        if not 0 <= instance < self.instance_count:
            raise IndexError(
                _messages.MACHINE_NO_SUCH_INSTANCE.format(
                    instance=instance, last=self.instance_count - 1
                )
            )
        return self._insts[instance]

    async def _update(self, writer: int, name: str, policy: Mapping[str, Any], step: str) -> Write:
        write, body = self._begin(writer, name, policy)
        await self._finish_update(write, self._start_update(write, body), step)
        await self._commit(write, step)
        return write

    def _start_update(self, write: Write, body: Mapping[str, Any]) -> asyncio.Future[None]:
        store = self._inst(write.writer).store
        call = self._store_call(
            self._update_call(write), store.update_policy(self._names + write.name, body)
        )
        return asyncio.ensure_future(call)

    async def _finish_update(
        self,
        write: Write,
        update: asyncio.Future[None],
        step: str,
        *,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Await an update; if it waits to hear its own invalidation, let it hear it.

        With ``until``, return as soon as ``until()`` is true instead (the
        update may still be running then).

        A store may return from ``update_policy`` only once its own
        invalidation came back and dropped its copy. Here every message waits
        until a rule decides its fate, so such an update would never return:
        when the writer holds a message and the update is still waiting after
        a round trip through Redis, everything the writer holds is delivered
        to it (its own invalidation included).
        """
        inst = self._inst(write.writer)
        signal = inst.observed.signal
        update.add_done_callback(lambda _: signal.notify())

        def stop() -> bool:
            return update.done() or (until is not None and until())

        def holds_more() -> bool | None:
            if stop():
                return True
            if isinstance(inst.observed, WireInstrument):
                held = len(inst.observed.held)
            else:
                ps = inst.observed.machine_pubsub
                held = ps.held_count if ps is not None and ps.live else 0
            return True if held > len(inst.queue) else None

        await signal.wait_until(holds_more, None)
        if not stop():
            await self._quiesce(step, write)  # a round trip: what it sent is held, tagged
            if not stop():
                while self._head(inst, "deliver"):
                    pass
        if until is None:
            await update
        else:
            await signal.wait_until(lambda: True if stop() else None, None)

    def _begin(
        self, writer: int, name: str, policy: Mapping[str, Any]
    ) -> tuple[Write, dict[str, Any]]:
        version, body = self._model.next_body(policy)
        write = self._model.begin(
            version, name, at=self.clock(), step=len(self.trace), writer=writer
        )
        return write, body

    @staticmethod
    def _update_call(write: Write) -> str:
        return _messages.MACHINE_CALL.format(
            instance=write.writer, call=f"update_policy({write.name!r}, v{write.version})"
        )

    async def _commit(self, write: Write, step: str) -> None:
        """The update returned: tag what it published, and make it the value to read."""
        await self._quiesce(step, write)
        self._model.commit(write)
        # It wrote the value itself: serving it is no value cached across a
        # link loss (what it cached before is still checked, by name, after
        # the next link event).
        self._inst(write.writer).must_fetch.pop(write.name, None)

    def _must_refetch(self, inst: Instance, event: str) -> None:
        # What it cached may have missed invalidations: each name's next read must fetch.
        inst.must_fetch = dict.fromkeys(self._model.names, event)

    @initialize(target=names, names=name_sets())
    def create_policies(self, names: list[str], policy: Mapping[str, Any] | None = None) -> Any:
        """Write a first version of each name and deliver everything: a clean start."""
        step = self._enter("create_policies", names=names)

        async def run() -> None:
            # One wait for all of them: everything they publish is delivered at
            # once, so no message needs to be told apart from the others.
            writes = []
            for name in names:
                write, body = self._begin(0, name, policy or {})
                await self._finish_update(write, self._start_update(write, body), step)
                writes.append(write)
            await self._quiesce(step, writes[-1])
            for write in writes:
                self._model.commit(write)
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

    @rule(instance=_instances(), name=names, policy=policy_samples(), read_back=st.booleans())
    def update(
        self, instance: int, name: str, policy: Mapping[str, Any], read_back: bool = False
    ) -> None:
        """``update_policy(name, policy + {"v": n})`` on one instance.

        With ``read_back``, the writer then reads ``name`` at once, its own
        invalidation still held: it must serve what it wrote (read-your-writes).
        """
        step = self._enter(
            "update", instance=instance, name=name, policy=policy, read_back=read_back
        )

        async def run() -> None:
            await self._update(instance, name, policy, step)
            if read_back:
                await self._read(self._inst(instance), name)
                await self._quiesce(step)

        self._run(run())

    @rule(writer=_instances(), reader=_instances(), name=names, after=st.sampled_from((1, 2)))
    def split_update(self, writer: int, reader: int, name: str, after: int = 1) -> None:
        """An update held between its commands, while another instance reads.

        ``update_policy`` on ``writer`` sends ``after`` command(s); the next is
        held (between the storage write and the publish, in whichever order the
        store sends them). Meanwhile everything it published is delivered and
        ``reader`` reads ``name``; then the update completes and ``reader``
        reads again. A store that publishes before it stores lets the reader
        refill the old value after the invalidation: that closing read is then
        stale. An update sent as one command (a transaction, a script) is never
        held. The reader does not read while the writer is held when they are
        the same instance: a store may serialise its own calls.
        """
        step = self._enter("split_update", writer=writer, reader=reader, name=name, after=after)
        self._run(self._split_update(step, writer, reader, name, after))

    async def _split_update(
        self, step: str, writer: int, reader: int, name: str, after: int
    ) -> None:
        source, target = self._inst(writer), self._inst(reader)
        write, body = self._begin(writer, name, {})
        gate = CommandHold(after, on_capture=source.observed.signal.notify)
        source.observed.command_gate = gate
        update = self._start_update(write, body)
        try:
            await self._finish_update(write, update, step, until=gate.captured.is_set)
            if gate.captured.is_set():
                await self._quiesce(step, write)  # what it sent so far is queued, tagged
                self._deliver_everything()
                await self._quiesce(step)
                if target is not source:
                    await self._read(target, name)
                    await self._quiesce(step)
        finally:
            gate.released.set()
            source.observed.command_gate = None
        await self._finish_update(write, update, step)
        await self._commit(write, step)
        await self._read(target, name)
        await self._quiesce(step)

    def _message_step(
        self, rule_name: Literal["deliver", "drop", "duplicate"], instance: int
    ) -> None:
        step = self._enter(rule_name, instance=instance)

        async def run() -> None:
            self._head(self._inst(instance), rule_name)
            await self._quiesce(step)

        self._run(run())

    @precondition(_any_pending)
    @rule(instance=_where("pending"))
    def deliver(self, instance: int) -> None:
        """Hand the instance its oldest pending invalidation."""
        self._message_step("deliver", instance)

    @precondition(_any_pending)
    @rule(instance=_where("pending"))
    def drop(self, instance: int) -> None:
        """Lose the instance's oldest pending invalidation."""
        self._message_step("drop", instance)

    @precondition(_any_pending)
    @rule(instance=_where("pending"))
    def duplicate(self, instance: int) -> None:
        """Hand the instance a copy of its oldest pending invalidation (the original stays)."""
        self._message_step("duplicate", instance)

    @precondition(_any_pending)
    @rule()
    def deliver_all(self) -> None:
        """Hand every instance everything pending."""
        step = self._enter("deliver_all")

        async def run() -> None:
            self._deliver_everything()
            await self._quiesce(step)

        self._run(run())

    @precondition(_any_connected)
    @rule(instance=_where("connected"))
    def disconnect(self, instance: int) -> None:
        """Cut the instance's pub/sub link; its resubscription waits for ``reconnect``."""
        step = self._enter("disconnect", instance=instance)

        async def run() -> None:
            inst = self._inst(instance)
            if isinstance(inst.observed, WireInstrument):
                # What was held on the cut connections is gone with them (mirrored
                # now, so no later step delivers the wrong push). The store's
                # noticing is not awaited: its next reads must fetch, and are
                # judged by serving.
                inst.observed.cut_link()
                self._absorb(None)
                self._must_refetch(inst, _messages.MACHINE_LINK_CUT_AT.format(step=len(self.trace)))
                await self._quiesce(step, timeout=type(self).reconnect_timeout)
                return
            ps = inst.observed.machine_pubsub
            inst.observed.cut_link()
            if ps is not None and ps.live:
                ps.disconnect()
                if ps is inst.pubsub:
                    inst.lose_queue()
            self._must_refetch(inst, _messages.MACHINE_LINK_CUT_AT.format(step=len(self.trace)))
            await self._quiesce(step, timeout=type(self).reconnect_timeout)

        self._run(run())

    @precondition(_any_disconnected)
    @rule(instance=_where("disconnected"))
    def reconnect(self, instance: int) -> None:
        """Let the instance resubscribe, and wait until Redis confirmed it."""
        step = self._enter("reconnect", instance=instance)

        async def run() -> None:
            inst = self._inst(instance)
            if inst.observed.link_allowed.is_set():
                return
            inst.observed.allow_link()
            if isinstance(inst.observed, WireInstrument):
                await self._wire_relinked(inst, inst.observed, step)
            await self._quiesce(step, timeout=type(self).reconnect_timeout)
            self._must_refetch(inst, _messages.MACHINE_LINK_BACK_AT.format(step=len(self.trace)))

        self._run(run())

    async def _wire_relinked(self, inst: Instance, wire: WireInstrument, step: str) -> None:
        """Wait until the store listens again (``reconnect_timeout``): on the wire, what it shows."""
        timeout = type(self).reconnect_timeout
        if await wire.wait_listening(timeout):
            return
        self._note_failure()
        raise InvalidationError(
            _messages.MACHINE_NOT_IDLE.format(
                instance=inst.index, timeout=timeout, step=step, whereabouts=wire.whereabouts()
            )
            + _messages.MACHINE_RECONNECT_HINT
            + self._trailer(),
            kind="unsettled",
        )

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
        gate = FetchHold()
        inst.observed.fetch_gate = gate
        start = self._model.start_read(inst, name)
        read = asyncio.ensure_future(self._get(inst, name))
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
            if self._wire:
                await self._judge_served(inst, name, start, await read)
            else:
                self._judge(inst, start, await read)
        elif in_flight:
            if isinstance(self.clock, RealClock):
                await asyncio.sleep(in_flight)  # on the stores' loop: never block it
            else:
                self.clock.advance(in_flight)
            self._model.max_in_flight = max(self._model.max_in_flight, in_flight)
        try:
            write = await self._update(writer, name, {}, step)
            ours = [msg for msg in inst.queue if msg.write is write]
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
            observed = self._inst(instance).observed
            if isinstance(observed, WireInstrument):
                if observed.listening():
                    observed.proxy.inject(data, channel=observed.target)
            else:
                ps = observed.machine_pubsub
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


async def _until_done(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, cancelling again every task a cancellation did not stop.

    On Python 3.11, redis-py's pubsub ``get_message`` can lose a cancellation
    that races its result (``asyncio.wait_for``): the task stays "cancelling"
    for ever, and whatever waits for it (closing a pubsub, the teardown) hangs.
    """
    future = asyncio.ensure_future(awaitable)
    while True:
        done, _ = await asyncio.wait({future}, timeout=_RECANCEL_EVERY)
        if done:
            return future.result()
        for task in asyncio.all_tasks():
            if task.cancelling() and not task.done():
                task.cancel()


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
    target: P1Target | StoreFactory | FromURL,
    *,
    ttl: float | None = None,
    instances: int = 3,
    make_client: Callable[[], Redis] | None = None,
    redis_url: str | None = None,
    channel: str | None = None,
    disabled_rules: Sequence[str] = (),
    name: str | None = None,
    name_prefix: str = "",
    settle_timeout: float | None = None,
    reconnect_timeout: float | None = None,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
    real_time: bool | None = None,
) -> type[InvalidationMachine]:
    """An :class:`InvalidationMachine` subclass for a target or a store factory.

    ``real_time``: the stores keep time themselves, so the machine's clock is
    the real one (default: the target's ``real_time``, else ``False``).

    From a :class:`~pytest_quantum_p1.P1Target`, ``ttl`` and ``channel``
    default to its ``policy_ttl`` and ``invalidation_channel``; from a bare
    factory, to ``DEFAULT_TTL`` and :data:`~pytest_quantum_p1._target.DEFAULT_CHANNEL`.
    The timeouts are the machine's waits, in real seconds (see
    :class:`InvalidationMachine`): a store with a 10 s reconnect backoff is
    checked with ``reconnect_timeout=15``; from a target, ``settle_timeout`` and
    ``reconnect_timeout`` default to its :attr:`~pytest_quantum_p1.P1Target.timing`,
    otherwise to the machine's defaults. ``name_prefix`` goes before every
    policy name the stores are given (a namespace). Run it with ``TestX =
    machine_for(...).TestCase`` or :func:`~hypothesis.stateful.run_state_machine_as_test`.
    """
    timing = target.timing if isinstance(target, P1Target) else None
    if settle_timeout is None:
        settle_timeout = DEFAULT_SETTLE_TIMEOUT if timing is None else timing.settle_timeout
    if reconnect_timeout is None:
        reconnect_timeout = (
            DEFAULT_RECONNECT_TIMEOUT if timing is None else timing.reconnect_timeout
        )
    for label, value in (
        ("settle_timeout", settle_timeout),
        ("reconnect_timeout", reconnect_timeout),
        ("step_timeout", step_timeout),
    ):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(_messages.MACHINE_BAD_TIMEOUT.format(name=label, value=value))
    if real_time is None:
        real_time = target.real_time if isinstance(target, P1Target) else False
    if isinstance(target, P1Target):
        factory: StoreFactory | FromURL = target.store_factory
        ttl = target.policy_ttl if ttl is None else ttl
        channel = target.invalidation_channel if channel is None else channel
        label = name or f"InvalidationMachine[{target.name}]"
    else:
        factory = target
        named = target.make if isinstance(target, FromURL) else target
        label = name or f"InvalidationMachine[{getattr(named, '__name__', 'store')}]"
    namespace: dict[str, Any] = {
        "store_factory": staticmethod(factory),
        "ttl": DEFAULT_TTL if ttl is None else float(ttl),
        "instances": instances,
        "channel": channel or DEFAULT_CHANNEL,
        "make_client": None if make_client is None else staticmethod(make_client),
        "redis_url": redis_url,
        "disabled_rules": frozenset(disabled_rules),
        "name_prefix": name_prefix,
        "settle_timeout": float(settle_timeout),
        "reconnect_timeout": float(reconnect_timeout),
        "step_timeout": float(step_timeout),
        "real_time": real_time,
        "__module__": __name__,
    }
    return cast("type[InvalidationMachine]", type(label, (InvalidationMachine,), namespace))
