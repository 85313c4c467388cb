"""The cluster: N policy-store instances on one Redis, driven and measured by the harness.

:class:`PolicyCluster` builds ``instances`` stores from the target's
:data:`~pytest_quantum_p1.StoreFactory`, each with its own Redis client wrapped
in an :class:`~pytest_quantum_p1._harness.observed.ObservedRedis`, all on one
:class:`~pytest_quantum_p1._harness.portal.Portal` loop, or (``processes=True``)
each in its own OS process against a real server, as production runs them (see
:mod:`pytest_quantum_p1._harness.process`). Its Redis is one
:class:`~pytest_quantum_p1._redis.source.RedisSource`. It updates and reads
through any instance, waits for the cluster to settle without sleeping, asserts
convergence with a readable verdict, and reports storage reads and invalidation
propagation times that it measured itself.

What is assumed of a store, and nothing more (the
:class:`~pytest_quantum_p1.PolicyStore` protocol):

- it subscribes to the invalidation channel with ``client.pubsub()`` on the
  client the factory receives (a store that resubscribes calls it again), and
  reads with ``get_message()``/``listen()``;
- it handles one invalidation message fully before asking for the next, so
  "came back for the next message" means "done with the previous one";
- its storage reads go through that client, outside pipelines, to be counted.

Convention: every operation that waits comes as ``x()`` for sync code and
``await x_async()`` for coroutines on any loop (pytest-asyncio, anyio);
figures (``stats()``, ``storage_reads`` ...) are plain non-blocking calls.

Words: to *settle* is to wait until every instance processed every
invalidation sent so far (proved by a barrier on each instance's own pubsub
connection: nothing is published on the store's channel); a *subscription* is
one ``pubsub()`` an instance's store made.

This module imports redis; the plugin imports it only when a fixture needs it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import difflib
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.factory import factory_spec, resolve_store_factory
from pytest_quantum_p1._harness.figures import (
    ClusterStats,
    Propagation,
    UpdateRecord,
    propagations,
    summarize,
)
from pytest_quantum_p1._harness.member import LocalMember, Member
from pytest_quantum_p1._harness.observed import ObservedRedis
from pytest_quantum_p1._harness.portal import LOOP_GRACE, Portal, run_soon
from pytest_quantum_p1._harness.process import (
    SPAWN_TIMEOUT,
    MemberProcessError,
    ProcessMember,
    spawn_context,
)
from pytest_quantum_p1._harness.pubsub import ControlledPubSub
from pytest_quantum_p1._harness.wire_member import WireControls, WireMember
from pytest_quantum_p1._redis.clients import close_client
from pytest_quantum_p1._redis.source import RedisSource, initialized
from pytest_quantum_p1._target import DEFAULT_CHANNEL, Clock, FromURL, PolicyStore, StoreFactory
from pytest_quantum_p1._wire.upstream import upstream_of

__all__ = [
    "ClusterTimeout",
    "PolicyCluster",
    "PolicyClusterFactory",
]

#: What makes an instance late rather than the harness broken: it did not get
#: there in time, or its process died (its whereabouts say which).
_LATE = (TimeoutError, MemberProcessError)


class ClusterTimeout(TimeoutError):
    """Some instances did not do in time what the cluster waited for.

    ``instances`` are their indexes; the message says, per instance, where the
    awaited message was (never received, held, taken but not finished ...).
    """

    def __init__(self, message: str, *, instances: Sequence[int]) -> None:
        super().__init__(message)
        self.instances = tuple(instances)


class PolicyClusterFactory(Protocol):
    """The ``policy_cluster`` fixture: ``policy_cluster(instances=None, *, timeout=10.0, processes=False)``."""

    def __call__(
        self, instances: int | None = None, *, timeout: float = 10.0, processes: bool = False
    ) -> PolicyCluster: ...


def _as_source(redis: RedisSource | str) -> RedisSource:
    if isinstance(redis, str):
        return RedisSource.external(redis)
    if not isinstance(redis, RedisSource):
        raise TypeError(_messages.CLUSTER_NOT_A_REDIS_SOURCE.format(got=redis))
    return redis


#: Pause between the reads that judge a wire instance by what it serves.
_SERVE_POLL_S = 0.002


async def _launch(
    factory: StoreFactory | FromURL | str,
    source: RedisSource,
    instances: int,
    clock: Clock,
    members: list[Member],
    channel: str,
) -> None:
    """Start ``instances`` child processes, adding each to ``members`` (whose owner closes them)."""
    # Both checked here, in the parent, so a mistake costs no process start-up
    # and its error carries the caller's traceback.
    spec = factory_spec(factory)
    if source.is_fake:
        raise TypeError(_messages.NOT_A_SERVER)
    address = source.address
    context = spawn_context()
    launched = [
        ProcessMember(
            index,
            spec=spec,
            address=address,
            clock=clock,
            context=context,
            channel=channel,
            cluster=source.is_cluster,
        )
        for index in range(instances)
    ]
    members.extend(launched)
    for member in launched:
        member.launch()
    await asyncio.gather(*(member.spawned() for member in launched))


async def _start(member: Member, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await member.start()
    except TimeoutError:
        raise ClusterTimeout(
            _messages.INITIALIZE_TIMED_OUT.format(label=member.label, timeout=timeout),
            instances=[member.index],
        ) from None


async def _wait_all_subscribed(members: Sequence[Member], channel: str, timeout: float) -> None:
    # Waiting for Redis's confirmation keeps the harness from blaming a store
    # for an invalidation published before its SUBSCRIBE reached the server.
    results = await asyncio.gather(
        *(m.wait_subscribed(channel, timeout) for m in members),
        return_exceptions=True,
    )
    late = [m for m, r in zip(members, results, strict=True) if r is not None]
    for result in results:
        if result is not None and not isinstance(result, _LATE):
            raise result
    if late:
        lines = [
            _messages.NOT_SUBSCRIBED.format(
                count=len(late), total=len(members), channel=channel, timeout=timeout
            )
        ]
        lines += [f"  - {member.label}: {member.subscription_state()}" for member in late]
        lines.append(_messages.NOT_SUBSCRIBED_BARRIER_TUNE)
        raise ClusterTimeout("\n".join(lines), instances=[m.index for m in late])


class PolicyCluster:
    """``instances`` stores from one factory, sharing one Redis, on one portal loop.

    Build it with :meth:`open` (sync) or :meth:`open_async`, which also wait
    until Redis confirmed every instance's subscription to ``channel``. Then:

    - :meth:`update` / :meth:`read` / :meth:`read_all` through any instance;
    - :meth:`settle`: returns once every instance processed every invalidation
      sent so far, without sleeping (see its docstring);
    - :meth:`assert_converged`: settle, read everywhere, fail with each
      instance's value;
    - :meth:`stats`, :meth:`propagation`, :attr:`storage_reads`: figures the
      harness measured itself;
    - :meth:`observed` / :meth:`pubsub`: the per-instance controls (hold, drop,
      disconnect, held reads ...).

    With ``processes=True`` every instance is an OS process of its own (see
    :mod:`pytest_quantum_p1._harness.process`): the same operations, settling, verdicts
    and figures work across them; :attr:`pids` names the processes, and the
    controls that hand out local objects (:meth:`observed`, :meth:`pubsub`,
    :meth:`store`) raise :class:`TypeError`. Fault tests in either mode use
    :attr:`subscriptions`, :meth:`wait_subscription_lost` and
    :meth:`wait_resubscribed`.

    Assumes of the store only that it subscribes with ``client.pubsub()`` on
    the client its factory receives (again after a lost connection), and that
    it handles one invalidation message fully before asking for the next: that
    is how the harness knows a message was processed. Close the cluster (a
    context manager, sync and async) to close the stores, the clients, the
    processes and, if the cluster made it, the portal.
    """

    def __init__(
        self,
        *,
        portal: Portal,
        owns_portal: bool,
        members: Sequence[Member],
        control: Any,
        channel: str,
        clock: Clock,
        processes: bool = False,
        namespace: str = "",
        by_serving: bool = False,
        resources: contextlib.ExitStack | None = None,
    ) -> None:
        # Private: use open() / open_async(), which start the stores.
        self.portal = portal
        self.channel = channel
        self.clock = clock
        #: Whether each instance runs in a process of its own.
        self.processes = processes
        self._owns_portal = owns_portal
        self._members = list(members)
        self._control: Any = control
        #: The Redis source's namespace: the policy names the harness's own checks use.
        self.namespace = namespace
        #: Verdicts read each instance again until it serves the value, or the
        #: settle time is up: the stores are observed on the wire (URL form),
        #: where a forwarded push says nothing of when the store handled it.
        self.by_serving = by_serving
        self._resources = resources if resources is not None else contextlib.ExitStack()
        self._updates: list[UpdateRecord] = []
        self._reads = [0] * len(self._members)
        self._closed = False

    # -- construction ---------------------------------------------------------

    @classmethod
    def open(
        cls,
        factory: StoreFactory | FromURL | str,
        redis: RedisSource | str,
        *,
        instances: int = 4,
        clock: Clock,
        channel: str = DEFAULT_CHANNEL,
        portal: Portal | None = None,
        timeout: float = 10.0,
        processes: bool = False,
    ) -> PolicyCluster:
        """Build and initialise the cluster (sync callers).

        ``factory`` is a store factory of either form (``(redis, clock) ->
        store``, or ``from_url((url, clock) -> store)``: each instance then
        gets a wire proxy of its own, see :mod:`~pytest_quantum_p1._harness.wire_member`)
        or its import string ``module:attr`` (naming a factory, a
        :class:`~pytest_quantum_p1.P1Target` or a callable returning one). ``redis`` is the
        :class:`~pytest_quantum_p1._redis.source.RedisSource` every client is
        made from (:meth:`~pytest_quantum_p1._redis.source.RedisSource.client`,
        on the portal's loop: one per instance and one for the harness's
        control client); a ``redis://`` URL string stands for
        ``RedisSource.external(url)``. ``portal`` defaults to a new one, closed
        with the cluster. ``timeout`` bounds initialisation and the wait for
        subscriptions.

        ``processes=True`` runs each instance in a child process of its own
        (``spawn`` start method). The children are given names, not objects:
        ``factory`` must be importable (an import string, or a module-level
        function), and the Redis is the source's
        :attr:`~pytest_quantum_p1._redis.source.RedisSource.address` (a real
        server; fakeredis lives in one process). Process start-up gets
        :data:`~pytest_quantum_p1._harness.process.SPAWN_TIMEOUT` on top of
        ``timeout``.
        """
        owned = portal is None
        portal = Portal(name="p1-cluster") if portal is None else portal
        allowance = timeout + LOOP_GRACE + (SPAWN_TIMEOUT if processes else 0.0)
        try:
            return portal.call(
                cls._open,
                factory,
                redis,
                instances,
                clock,
                channel,
                portal,
                owned,
                timeout,
                processes,
                timeout=allowance,
            )
        except BaseException:
            if owned:
                portal.close()
            raise

    @classmethod
    async def open_async(
        cls,
        factory: StoreFactory | FromURL | str,
        redis: RedisSource | str,
        *,
        instances: int = 4,
        clock: Clock,
        channel: str = DEFAULT_CHANNEL,
        portal: Portal | None = None,
        timeout: float = 10.0,
        processes: bool = False,
    ) -> PolicyCluster:
        """:meth:`open` for coroutines (on any loop)."""
        owned = portal is None
        portal = Portal(name="p1-cluster") if portal is None else portal
        try:
            return await portal.acall(
                cls._open,
                factory,
                redis,
                instances,
                clock,
                channel,
                portal,
                owned,
                timeout,
                processes,
            )
        except BaseException:
            if owned:
                await asyncio.to_thread(portal.close)
            raise

    @classmethod
    async def _open(
        cls,
        factory: StoreFactory | FromURL | str,
        redis: RedisSource | str,
        instances: int,
        clock: Clock,
        channel: str,
        portal: Portal,
        owned: bool,
        timeout: float,
        processes: bool,
    ) -> PolicyCluster:
        if instances < 1:
            raise ValueError(_messages.CLUSTER_NEEDS_AN_INSTANCE.format(instances=instances))
        source = _as_source(redis)
        control = await initialized(source.client())
        members: list[Member] = []
        resources = contextlib.ExitStack()
        resolved = resolve_store_factory(factory) if isinstance(factory, str) else factory
        by_serving = isinstance(resolved, FromURL)
        try:
            if processes:
                await _launch(factory, source, instances, clock, members, channel)
                # Processes initialise side by side.
                await asyncio.gather(*(_start(member, timeout) for member in members))
            else:
                if isinstance(resolved, FromURL):
                    # fakeredis served over TCP for as long as the cluster lives.
                    upstream = resources.enter_context(upstream_of(source))
                    for index in range(instances):
                        members.append(
                            WireMember(index, resolved, upstream, clock, channel=channel)
                        )
                else:
                    for index in range(instances):
                        client = await initialized(source.client())
                        local = LocalMember(index, resolved, client, clock, control=control)
                        members.append(local)
                for member in members:  # in order: they share this process's loop
                    await _start(member, timeout)
            cluster = cls(
                portal=portal,
                owns_portal=owned,
                members=members,
                control=control,
                channel=channel,
                clock=clock,
                processes=processes,
                namespace=source.namespace,
                by_serving=by_serving,
                resources=resources,
            )
            await _wait_all_subscribed(members, channel, timeout)
        except BaseException:
            for member in members:
                with contextlib.suppress(Exception):  # the original error is the one to report
                    await member.close()
            await close_client(control)
            resources.close()
            raise
        return cluster

    # -- context management ---------------------------------------------------

    def __enter__(self) -> PolicyCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> PolicyCluster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close_async()

    def close(self, timeout: float = 10.0) -> None:
        """Close every store, every client and (if the cluster made it) the portal."""
        if self._closed:
            return
        self._closed = True
        try:
            self.portal.call(self._close, timeout, timeout=timeout + LOOP_GRACE)
        finally:
            if self._owns_portal:
                self.portal.close()

    async def close_async(self, timeout: float = 10.0) -> None:
        """:meth:`close` for coroutines."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.portal.acall(self._close, timeout)
        finally:
            if self._owns_portal:
                await asyncio.to_thread(self.portal.close)

    async def _close(self, timeout: float) -> None:
        errors: list[Exception] = []
        for member in self._members:
            try:
                async with asyncio.timeout(timeout):
                    await member.close()
            except Exception as exc:  # close the others first, then report
                exc.add_note(f"while closing {member.label}")
                errors.append(exc)
        await close_client(self._control)
        # Off the loop: stopping fakeredis's TCP server joins its thread.
        await asyncio.to_thread(self._resources.close)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("closing the policy cluster", errors)

    # -- instances --------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many instances."""
        return len(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def _member(self, instance: int) -> Member:
        if not 0 <= instance < len(self._members):
            raise IndexError(
                _messages.CLUSTER_NO_SUCH_INSTANCE.format(
                    instance=instance, last=len(self._members) - 1
                )
            )
        return self._members[instance]

    def _local(self, instance: int) -> LocalMember | WireMember:
        member = self._member(instance)
        if not isinstance(member, (LocalMember, WireMember)):
            raise TypeError(_messages.CLUSTER_INSTANCE_NOT_LOCAL.format(label=member.label))
        return member

    def observed(self, instance: int) -> ObservedRedis:
        """The counted, gated client of one instance (client form; the URL form: :meth:`wire`)."""
        member = self._local(instance)
        if isinstance(member, WireMember):
            raise TypeError(_messages.CLUSTER_INSTANCE_ON_THE_WIRE.format(label=member.label))
        return member.observed

    def pubsub(self, instance: int) -> ControlledPubSub:
        """The instance's current subscription, for hold/deliver/drop/disconnect.

        Client form only; for a store of the URL form, ``wire(i).controls``
        acts on the pushes of every subscription connection of the instance.
        """
        member = self._local(instance)
        if isinstance(member, WireMember):
            raise TypeError(_messages.CLUSTER_INSTANCE_ON_THE_WIRE.format(label=member.label))
        current = member.observed.current_pubsub
        if current is None:
            raise LookupError(_messages.CLUSTER_NEVER_CALLED_PUBSUB.format(instance=instance))
        return current

    def controls(self, instance: int) -> ControlledPubSub | WireControls:
        """The fault controls of one instance, whichever form its store has.

        The client form's current subscription (:meth:`pubsub`), or the URL
        form's :class:`~pytest_quantum_p1._harness.wire_member.WireControls`:
        ``hold``/``deliver``/``drop``/``release``/``inject``/``disconnect``/
        ``wait_pending``/``pending`` under the same names.
        """
        member = self._local(instance)
        return member.controls if isinstance(member, WireMember) else self.pubsub(instance)

    def observer(self, instance: int) -> ObservedRedis | WireControls:
        """What counts one instance's storage reads and gates its publishes, whichever form."""
        member = self._local(instance)
        return member.controls if isinstance(member, WireMember) else member.observed

    def wire(self, instance: int) -> WireMember:
        """The wire member of one instance of a store of the URL form (its proxy: ``.proxy``)."""
        member = self._local(instance)
        if not isinstance(member, WireMember):
            raise TypeError(_messages.CLUSTER_INSTANCE_NOT_WIRE.format(label=member.label))
        return member

    def store(self, instance: int) -> PolicyStore:
        """The store object itself (its coroutines must run on :attr:`portal`)."""
        return self._local(instance).store

    @property
    def pids(self) -> tuple[int, ...]:
        """The process id of each instance (all this process's without ``processes=True``)."""
        return tuple(m.pid for m in self._members)

    # -- faults -------------------------------------------------------------------

    @property
    def subscriptions(self) -> tuple[int, ...]:
        """How many times each instance's store called ``client.pubsub()``.

        Read it before a fault and pass it to :meth:`wait_resubscribed`. For
        processes: as of each instance's last reply (a read, a settle ...).
        """
        return tuple(m.subscriptions() for m in self._members)

    def wait_subscription_lost(self, instance: int, timeout: float = 5.0) -> float:
        """Block until the instance has no live subscription to the channel; return when.

        "Live": the latest pubsub the store made has Redis's confirmation and
        has not lost its connection. Returns the :func:`time.perf_counter`
        moment the loss was seen (event-driven, not polled).
        """
        return self.portal.call(
            self._wait_lost, instance, timeout, timeout=timeout + 2 * LOOP_GRACE
        )

    async def wait_subscription_lost_async(self, instance: int, timeout: float = 5.0) -> float:
        """:meth:`wait_subscription_lost` for coroutines."""
        return await self.portal.acall(self._wait_lost, instance, timeout)

    async def _wait_lost(self, instance: int, timeout: float) -> float:
        return await self._member(instance).wait_subscription_lost(self.channel, timeout)

    def wait_resubscribed(self, instance: int, after: int, timeout: float = 5.0) -> float:
        """Block until the instance's store made a new subscription that Redis confirmed.

        ``after`` is the instance's :attr:`subscriptions` count before the
        fault: the wait ends once the store called ``pubsub()`` more often and
        its latest subscription is live. Returns that :func:`time.perf_counter`
        moment (the call's own, if it had already happened), to measure
        recovery from. A store relying on redis-py's own
        reconnection (a client with retries) keeps its pubsub and is not seen
        here. Raises :class:`TimeoutError` saying what the store did instead.
        """
        return self.portal.call(
            self._wait_resubscribed, instance, after, timeout, timeout=timeout + 2 * LOOP_GRACE
        )

    async def wait_resubscribed_async(
        self, instance: int, after: int, timeout: float = 5.0
    ) -> float:
        """:meth:`wait_resubscribed` for coroutines."""
        return await self.portal.acall(self._wait_resubscribed, instance, after, timeout)

    async def _wait_resubscribed(self, instance: int, after: int, timeout: float) -> float:
        return await self._member(instance).wait_resubscribed(after, self.channel, timeout)

    # -- operations -------------------------------------------------------------

    def update(self, instance: int, name: str, policy: Mapping[str, Any]) -> None:
        """``update_policy(name, policy)`` on one instance; the start time is recorded."""
        self.portal.call(self._update, instance, name, policy)

    async def update_async(self, instance: int, name: str, policy: Mapping[str, Any]) -> None:
        """:meth:`update` for coroutines."""
        await self.portal.acall(self._update, instance, name, policy)

    async def _update(self, instance: int, name: str, policy: Mapping[str, Any]) -> None:
        member = self._member(instance)
        # Timed where the store runs: for a process, the pipe's round trip is
        # the harness's cost, not the store's.
        started, finished = await member.update_policy(name, policy)
        self._updates.append(UpdateRecord(len(self._updates), instance, name, started, finished))

    def read(self, instance: int, name: str) -> Mapping[str, Any]:
        """``get_policy(name)`` on one instance."""
        return self.portal.call(self._read, instance, name)

    async def read_async(self, instance: int, name: str) -> Mapping[str, Any]:
        """:meth:`read` for coroutines."""
        return await self.portal.acall(self._read, instance, name)

    def spawn_read(self, instance: int, name: str) -> concurrent.futures.Future[Mapping[str, Any]]:
        """Start :meth:`read` without waiting (to interleave it with held reads)."""
        return self.portal.spawn(self._read, instance, name)

    async def _read(self, instance: int, name: str) -> Mapping[str, Any]:
        member = self._member(instance)
        self._reads[instance] += 1
        return await member.get_policy(name)

    def read_all(self, name: str) -> list[Mapping[str, Any]]:
        """``get_policy(name)`` on every instance, in instance order."""
        return self.portal.call(self._read_all, name)

    async def read_all_async(self, name: str) -> list[Mapping[str, Any]]:
        """:meth:`read_all` for coroutines."""
        return await self.portal.acall(self._read_all, name)

    async def _read_all(self, name: str) -> list[Mapping[str, Any]]:
        if self.processes:  # independent processes: ask them all at once
            return list(await asyncio.gather(*(self._read(m.index, name) for m in self._members)))
        return [await self._read(m.index, name) for m in self._members]

    async def _read_outcomes(
        self, name: str, value: Mapping[str, Any] | None = None, serve_for: float = 0.0
    ) -> list[Mapping[str, Any] | Exception]:
        """Each instance's read of ``name``; judged by serving, read again until it is ``value``."""
        by_serving = self.by_serving and value is not None
        deadline = time.perf_counter() + serve_for

        async def outcome(member: Member) -> Mapping[str, Any] | Exception:
            while True:
                try:
                    got: Mapping[str, Any] | Exception = await self._read(member.index, name)
                except Exception as exc:  # part of the verdict, not a harness error
                    got = exc
                # A raising read is retried too: a store may be reconnecting.
                served = not isinstance(got, Exception) and dict(got) == dict(value or {})
                if not by_serving or served or time.perf_counter() >= deadline:
                    return got
                await asyncio.sleep(_SERVE_POLL_S)

        if self.processes:
            return list(await asyncio.gather(*(outcome(m) for m in self._members)))
        return [await outcome(member) for member in self._members]

    # -- settling ---------------------------------------------------------------

    def settle(self, timeout: float = 5.0) -> float:
        """Return once every instance processed every invalidation sent so far.

        Nothing sleeps, and nothing is published on the store's channel: each
        instance's own pubsub connection is also subscribed to a harness-only
        channel, a token published there comes back after every message
        published earlier (Redis delivers in order per connection), and the
        call returns once the store has processed every message it received
        before the token. A store that replaced its subscription is settled on
        the new one. Returns the seconds it took; raises
        :class:`ClusterTimeout` naming the instances that did not get there and
        where their messages are (held, taken but unfinished, never taken,
        subscription lost ...).
        """
        return self.portal.call(self._settle, timeout, timeout=timeout + 2 * LOOP_GRACE)

    async def settle_async(self, timeout: float = 5.0) -> float:
        """:meth:`settle` for coroutines."""
        return await self.portal.acall(self._settle, timeout)

    async def _settle(self, timeout: float) -> float:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(m.settle(timeout) for m in self._members), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, _LATE):
                raise result
        late = [m for m, r in zip(self._members, results, strict=True) if isinstance(r, _LATE)]
        if late:
            lines = [
                _messages.NOT_SETTLED_BARRIER.format(
                    timeout=timeout,
                    count=len(late),
                    total=len(self._members),
                    channel=self.channel,
                )
            ]
            lines += [f"  - {m.label}: {m.whereabouts()}" for m in late]
            lines.append(_messages.NOT_SETTLED_BARRIER_TUNE)
            raise ClusterTimeout("\n".join(lines), instances=[m.index for m in late])
        return time.perf_counter() - started

    # -- verdicts -----------------------------------------------------------------

    def assert_converged(
        self, name: str, value: Mapping[str, Any], *, timeout: float = 5.0
    ) -> None:
        """Settle, read ``name`` on every instance, and fail unless all read ``value``.

        The failure lists each differing instance with what it read (or
        raised), closest to ``value`` first.
        """
        __tracebackhide__ = True
        started = time.perf_counter()
        self.settle(timeout)
        remaining = max(timeout - (time.perf_counter() - started), 0.0)
        outcomes = self.portal.call(
            self._read_outcomes, name, value, remaining, timeout=remaining + 2 * LOOP_GRACE
        )
        self._verdict(name, value, outcomes, remaining)

    async def assert_converged_async(
        self, name: str, value: Mapping[str, Any], *, timeout: float = 5.0
    ) -> None:
        """:meth:`assert_converged` for coroutines."""
        __tracebackhide__ = True
        started = time.perf_counter()
        await self.settle_async(timeout)
        remaining = max(timeout - (time.perf_counter() - started), 0.0)
        outcomes = await self.portal.acall(self._read_outcomes, name, value, remaining)
        self._verdict(name, value, outcomes, remaining)

    def _verdict(
        self,
        name: str,
        value: Mapping[str, Any],
        outcomes: Sequence[Mapping[str, Any] | Exception],
        serve_for: float = 0.0,
    ) -> None:
        __tracebackhide__ = True
        expected = dict(value)
        good = [
            i
            for i, got in enumerate(outcomes)
            if not isinstance(got, Exception) and dict(got) == expected
        ]
        bad = [(i, got) for i, got in enumerate(outcomes) if i not in good]
        if not bad:
            return

        def closeness(item: tuple[int, Mapping[str, Any] | Exception]) -> tuple[int, float]:
            _, got = item
            if isinstance(got, Exception):
                return (1, 0.0)
            ratio = difflib.SequenceMatcher(None, repr(expected), repr(dict(got))).ratio()
            return (0, -ratio)

        bad.sort(key=closeness)
        last = next((u for u in reversed(self._updates) if u.name == name), None)
        origin = _messages.NOT_CONVERGED_ORIGIN.format(instance=last.instance) if last else ""
        lines = [
            _messages.NOT_CONVERGED.format(name=name, count=len(bad), total=len(outcomes)),
            _messages.NOT_CONVERGED_EXPECTED.format(origin=origin, expected=expected),
            _messages.NOT_CONVERGED_HEADING,
        ]
        for index, got in bad:
            shown = (
                _messages.NOT_CONVERGED_RAISED.format(type=type(got).__name__, error=got)
                if isinstance(got, Exception)
                else repr(got)
            )
            lines.append(f"  - instance {index}: {shown}")
        agreeing = ", ".join(str(i) for i in good) if good else "none"
        lines.append(_messages.NOT_CONVERGED_AGREEING.format(instances=agreeing))
        lines.append(
            _messages.NOT_CONVERGED_TUNE_WIRE.format(serve=serve_for)
            if self.by_serving
            else _messages.NOT_CONVERGED_TUNE
        )
        raise AssertionError("\n".join(lines))

    # -- figures ------------------------------------------------------------------

    @property
    def updates(self) -> tuple[UpdateRecord, ...]:
        """Every update made through the cluster, in order."""
        return tuple(self._updates)

    @property
    def storage_reads(self) -> tuple[int, ...]:
        """Storage reads counted on each instance's client."""
        return tuple(m.storage_reads() for m in self._members)

    @property
    def total_storage_reads(self) -> int:
        """Storage reads over all instances."""
        return sum(self.storage_reads)

    @property
    def reads(self) -> tuple[int, ...]:
        """``get_policy`` calls made through the cluster, per instance."""
        return tuple(self._reads)

    def propagation(self) -> tuple[Propagation, ...]:
        """For each update and instance, the update-to-processed time (see :class:`Propagation`).

        Matched by position, never by content: the first message the instance
        received after the update started, whatever it says (the store's own
        format), so call :meth:`settle` first for complete figures, and make
        updates one at a time with a settle between: in a burst of overlapping
        updates, each is matched to the first message received after its own
        start, which may be an earlier update's.
        """
        return run_soon(self.portal.loop, self._propagation)

    def _propagation(self) -> tuple[Propagation, ...]:
        return propagations(self._updates, [(m.index, m.deliveries()) for m in self._members])

    def propagation_ms(self) -> list[float]:
        """Every observed propagation time, in milliseconds (missing ones left out)."""
        return [p.ms for p in self.propagation() if p.ms is not None]

    def stats(self) -> ClusterStats:
        """The figures so far (call :meth:`settle` first for complete propagation)."""
        return summarize(
            self.propagation(),
            instances=len(self._members),
            updates=len(self._updates),
            reads=self.reads,
            storage_reads=self.storage_reads,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<PolicyCluster {len(self._members)} instances on {self.channel!r} {state}, "
            f"{len(self._updates)} updates>"
        )
