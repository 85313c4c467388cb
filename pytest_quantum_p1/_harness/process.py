"""Process members: store instances in OS processes of their own, driven over a pipe.

In production several backend processes share one Redis. ``PolicyCluster.open(...,
processes=True)`` reproduces that: each instance is a child process started with
the ``spawn`` start method (safe with the portal's threads), hosting one store on
its own event loop, wrapped in the same
:class:`~pytest_quantum_p1._harness.observed.ObservedRedis` as in-process
instances (the child hosts a :class:`~pytest_quantum_p1._harness.member.LocalMember`).
The parent passes the child *names*, never objects: the store factory's import
string (see :mod:`pytest_quantum_p1._harness.factory`) and the Redis source's
address (:attr:`~pytest_quantum_p1._redis.source.RedisSource.address`). The child
imports the factory itself.

The parent side, :class:`ProcessMember`, is the cluster's
:class:`~pytest_quantum_p1._harness.member.Member` for such a child. Commands
(read, update, settle ...) go down a pipe and their
replies come back on it; the parent reads its end with
``loop.add_reader``, so nothing polls. Every reply also carries what the harness
measures in the child: the storage-read count, the number of ``pubsub()`` calls
and the invalidation deliveries processed since the last reply. Figures are
therefore current as of the last reply; :meth:`PolicyCluster.settle` waits on
every instance, so after it they are complete.

Clocks:

- *TTL clock.* The child's store gets a mirror of the cluster's clock: every
  command carries the parent clock's reading taken when it was sent, and the
  mirror holds the latest reading. Advancing the parent's
  :class:`~pytest_quantum_p1.VirtualClock` therefore drives TTLs in every child,
  with no extra round trip.
- *Timestamps.* Propagation compares an update's start, taken in one process,
  with the moment another process finished handling the invalidation. Each side
  converts its :func:`time.perf_counter` readings through
  :func:`time.monotonic` (``CLOCK_MONOTONIC``, one clock for the whole machine on
  Linux) into the parent's ``perf_counter`` domain, so cross-process figures
  are comparable with in-process ones. ``perf_counter`` alone is only
  guaranteed per process; ``time.time`` can jump.

Limits: the per-instance controls that hand out local objects (``observed()``,
``pubsub()``, ``store()``, held reads) need an in-process cluster. A child
imports the parent's ``__main__`` module when that is a script, so scripts
that open a process cluster need the ``if __name__ == "__main__":`` guard.

This module imports redis; the plugin imports it only when a fixture needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.factory import resolve_store_factory
from pytest_quantum_p1._harness.member import LocalMember
from pytest_quantum_p1._harness.portal import LOOP_GRACE
from pytest_quantum_p1._harness.pubsub import Delivery
from pytest_quantum_p1._harness.wire_member import WireMember
from pytest_quantum_p1._redis.source import RedisSource, initialized
from pytest_quantum_p1._target import DEFAULT_CHANNEL, Clock, FromURL
from pytest_quantum_p1._wire.upstream import upstream_of

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess

    from pytest_quantum_p1._harness.pubsub import ControlledPubSub, DeliveryKind

__all__ = [
    "SPAWN_TIMEOUT",
    "MemberProcessError",
    "ProcessMember",
    "RemoteError",
    "child_main",
    "spawn_context",
]

#: Seconds a child may take to start and import the factory, on top of the
#: cluster's own ``timeout`` (interpreter start-up on a loaded CI machine).
SPAWN_TIMEOUT: Final = 60.0

#: Seconds ``close()`` waits for a child to exit before terminating it.
_EXIT_TIMEOUT: Final = 5.0

#: Longest child traceback attached to an error, in characters.
_TRACEBACK_LIMIT: Final = 4000


class MemberProcessError(RuntimeError):
    """A store instance's process failed to start, died, or stopped answering."""


class RemoteError(Exception):
    """An error raised in a child process that cannot be rebuilt in the parent.

    ``type_name`` is the original's qualified type name; the message is its text.
    Errors that survive pickling are re-raised as themselves instead.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name

    def __reduce__(self) -> tuple[Any, ...]:
        type_name, _, message = str(self).partition(": ")
        return (type(self), (type_name, message), self.__dict__)


# -- time across processes -------------------------------------------------------------


def _perf_to_monotonic() -> float:
    """``monotonic() - perf_counter()`` in this process (zero on Linux, where both are one clock)."""
    return time.monotonic() - time.perf_counter()


@dataclass(frozen=True)
class _ChildConfig:
    index: int
    label: str
    spec: str
    #: Where the Redis is: the source's address.
    address: str
    clock_start: float
    #: The invalidation channel (what a wire member's subscriptions must cover).
    channel: str = DEFAULT_CHANNEL
    #: The address is a Redis Cluster's (its clients are cluster clients).
    cluster: bool = False


#: A delivery on the wire: channel, text, kind, received, handed out, processed
#: (times on ``time.monotonic``).
_WireDelivery = tuple[str, str, str, float, float, float | None]

#: What every reply carries: storage reads, pubsub() calls, new deliveries.
_Snapshot = tuple[int, int, list[_WireDelivery]]


class _MirrorClock:
    """The parent's clock as of the last command: what a child's store is given."""

    def __init__(self, now: float) -> None:
        self._now = now

    def __call__(self) -> float:
        return self._now

    def set(self, now: float) -> None:
        # Commands can overtake each other on the loop; never step back.
        self._now = max(self._now, now)


# -- the child -------------------------------------------------------------------------


def child_main(conn: multiprocessing.connection.Connection, config: _ChildConfig) -> None:
    """Entry point of an instance's process: serve commands until told to close.

    Exits when the parent closes its end of the pipe (the parent died), so
    children never outlive the test run.
    """
    # The parent handles Ctrl-C and closes the cluster; a child dying first
    # would only turn a clean shutdown into "process exited" errors.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_Child(conn, config).serve())
    finally:
        conn.close()


class _Child:
    def __init__(self, conn: multiprocessing.connection.Connection, config: _ChildConfig) -> None:
        self.conn = conn
        self.config = config
        self.clock = _MirrorClock(config.clock_start)
        self.offset = _perf_to_monotonic()
        self.member: LocalMember | WireMember | None = None
        self.closed = False
        self.cursors: dict[int, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()

    def send(self, message: object) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the parent left
            self.conn.send(message)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            factory = resolve_store_factory(self.config.spec)
            source = (
                RedisSource.cluster(self.config.address)
                if self.config.cluster
                else RedisSource.external(self.config.address)
            )
            if isinstance(factory, FromURL):
                # A real server's address: nothing to start, nothing to stop.
                with upstream_of(source) as upstream:
                    self.member = WireMember(
                        self.config.index,
                        factory,
                        upstream,
                        self.clock,
                        channel=self.config.channel,
                    )
            else:
                self.member = LocalMember(
                    self.config.index,
                    factory,
                    await initialized(source.client()),
                    self.clock,
                    control=await initialized(source.client()),
                    owns_control=True,
                )
        except BaseException as exc:
            self.send(("fatal", _format(exc)))
            return
        self.member.label = self.config.label
        self.send(("ready", os.getpid()))
        loop.add_reader(self.conn.fileno(), self._on_readable)
        try:
            await self.done.wait()
        finally:
            loop.remove_reader(self.conn.fileno())
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if not self.closed:
                self.closed = True
                with contextlib.suppress(Exception):  # the parent is gone: nobody to tell
                    await self.member.close()

    def _on_readable(self) -> None:
        try:
            while self.conn.poll():
                request = self.conn.recv()
                task = asyncio.get_running_loop().create_task(self._handle(*request))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (EOFError, OSError):
            self.done.set()

    async def _handle(self, request_id: int, op: str, args: tuple[Any, ...], now: float) -> None:
        assert self.member is not None
        self.clock.set(now)
        try:
            value = await self._run(op, args)
        except TimeoutError as exc:
            self.send((request_id, "timeout", (str(exc), self._detail(op, args)), self._snapshot()))
        except Exception as exc:
            self.send((request_id, "error", self._portable(exc), self._snapshot()))
        else:
            self.send((request_id, "ok", value, self._snapshot()))
        if op == "close":
            self.done.set()

    async def _run(self, op: str, args: tuple[Any, ...]) -> Any:
        member = self.member
        assert member is not None
        mono = self.offset
        if op == "get":
            return dict(await member.get_policy(*args))
        if op == "update":
            started, finished = await member.update_policy(*args)
            return (started + mono, finished + mono)
        if op == "start":
            return await member.start()
        if op == "wait_subscribed":
            return await member.wait_subscribed(*args)
        if op == "settle":
            return await member.settle(*args)
        if op == "wait_resubscribed":
            return await member.wait_resubscribed(*args) + mono
        if op == "wait_subscription_lost":
            return await member.wait_subscription_lost(*args) + mono
        if op == "close":
            self.closed = True
            return await member.close()
        raise ValueError(f"unknown command {op!r}")

    def _detail(self, op: str, args: tuple[Any, ...]) -> str:
        assert self.member is not None
        if op == "settle":
            return self.member.whereabouts()
        return self.member.subscription_state()

    def _wire(self, delivery: Delivery) -> _WireDelivery:
        mono = self.offset
        processed = None if delivery.processed_at is None else delivery.processed_at + mono
        return (
            delivery.channel,
            delivery.text,
            delivery.kind,
            delivery.received_at + mono,
            delivery.handed_out_at + mono,
            processed,
        )

    def _snapshot(self) -> _Snapshot:
        member = self.member
        assert member is not None
        fresh: list[_WireDelivery] = []
        if isinstance(member, WireMember):
            # Forwarded pushes, in order: each sent once.
            cursor = self.cursors.get(0, 0)
            forwarded = member.deliveries()
            fresh = [self._wire(delivery) for delivery in forwarded[cursor:]]
            self.cursors[0] = len(forwarded)
            return (member.storage_reads(), member.subscriptions(), fresh)
        pubsubs: tuple[ControlledPubSub, ...] = member.observed.pubsubs
        for key, pubsub in enumerate(pubsubs):
            cursor = self.cursors.get(key, 0)
            # Stores finish messages in order, so processed ones are a prefix:
            # each is sent once, when it is done.
            for delivery in pubsub.log_since(cursor):
                if delivery.processed_at is None:
                    break
                fresh.append(self._wire(delivery))
                cursor += 1
            self.cursors[key] = cursor
        return (member.storage_reads(), member.subscriptions(), fresh)

    def _portable(self, exc: Exception) -> Exception:
        exc.add_note(
            _messages.PROCESS_RAISED.format(
                label=self.config.label, pid=os.getpid(), traceback=_format(exc)
            )
        )
        try:
            copy = pickle.loads(pickle.dumps(exc))
        except Exception:
            copy = None
        if type(copy) is type(exc) and str(copy) == str(exc):
            return exc
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        remote = RemoteError(name, str(exc))
        for note in getattr(exc, "__notes__", ()):
            remote.add_note(note)
        return remote


def _from_wire(label: str, wire: _WireDelivery, offset: float) -> Delivery:
    channel, text, kind, received, handed_out, processed = wire
    return Delivery(
        label=label,
        channel=channel,
        data=text,
        kind=cast("DeliveryKind", kind),
        received_at=received - offset,
        handed_out_at=handed_out - offset,
        processed_at=None if processed is None else processed - offset,
    )


def _format(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= _TRACEBACK_LIMIT else "...\n" + text[-_TRACEBACK_LIMIT:]


# -- the parent's side -----------------------------------------------------------------


class ProcessMember:
    """One store instance in a child process, as the cluster drives it (runs on its loop).

    :meth:`launch` starts the process; :meth:`start` waits until it imported
    the factory and initialised the store. Every other method is a command to
    the child. Figures (:meth:`storage_reads`, :meth:`deliveries` ...) are those
    of the latest reply.
    """

    def __init__(
        self,
        index: int,
        *,
        spec: str,
        address: str,
        clock: Clock,
        context: SpawnContext,
        channel: str = DEFAULT_CHANNEL,
        cluster: bool = False,
    ) -> None:
        self.index = index
        self.label = f"instance {index}"
        self._clock = clock
        self._offset = _perf_to_monotonic()
        parent_end, child_end = context.Pipe(duplex=True)
        self._conn = parent_end
        self._child_end: multiprocessing.connection.Connection | None = child_end
        config = _ChildConfig(index, self.label, spec, address, float(clock()), channel, cluster)
        self._process: SpawnProcess = context.Process(
            target=child_main,
            args=(child_end, config),
            name=f"p1-{self.label.replace(' ', '-')}",
            daemon=True,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[int] | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._next_id = 0
        self._pid = 0
        self._storage_reads = 0
        self._subscriptions = 0
        self._deliveries: list[Delivery] = []
        self._details: dict[str, str] = {}
        self._failure: MemberProcessError | None = None
        self._closing = False

    @property
    def pid(self) -> int:
        """The child's process id (``0`` before :meth:`launch`)."""
        return self._pid

    def launch(self) -> None:
        """Start the child process (on the cluster's loop; returns at once)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._ready = loop.create_future()
        self._process.start()
        self._pid = self._process.pid or 0
        # Only the child holds its end now, so the parent sees EOF when it dies.
        if self._child_end is not None:
            self._child_end.close()
            self._child_end = None
        self.label = f"instance {self.index} (pid {self._pid})"
        loop.add_reader(self._conn.fileno(), self._on_readable)

    async def spawned(self) -> None:
        """Wait until the child runs and has built its store (not yet initialised)."""
        assert self._ready is not None, "launch() first"
        try:
            async with asyncio.timeout(SPAWN_TIMEOUT):
                await asyncio.shield(self._ready)
        except TimeoutError:
            raise MemberProcessError(
                _messages.PROCESS_DID_NOT_START.format(label=self.label, timeout=SPAWN_TIMEOUT)
            ) from None

    async def start(self) -> None:
        """``initialize()`` the child's store."""
        await self._request("start", ())

    # -- replies ---------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            while self._conn.poll():
                self._dispatch(self._conn.recv())
        except (EOFError, OSError):
            self._lost()

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        head = message[0]
        if head == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(int(message[1]))
            return
        if head == "fatal":
            error = MemberProcessError(
                _messages.PROCESS_FAILED_TO_START.format(label=self.label, detail=message[1])
            )
            self._failure = error
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(error)
            return
        request_id, outcome, value, snapshot = message
        self._absorb(snapshot)
        op, future = self._pending.pop(request_id, (None, None))
        if future is None or future.done():
            return  # its caller gave up (cancelled, timed out)
        if outcome == "ok":
            future.set_result(value)
        elif outcome == "timeout":
            text, detail = value
            self._details[op or ""] = detail
            future.set_exception(TimeoutError(text))
        else:
            future.set_exception(value)

    def _absorb(self, snapshot: _Snapshot) -> None:
        self._storage_reads, self._subscriptions, fresh = snapshot
        offset = self._offset
        self._deliveries.extend(_from_wire(self.label, wire, offset) for wire in fresh)

    def _lost(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):  # already removed or closed
                self._loop.remove_reader(self._conn.fileno())
        self._conn.close()
        if self._closing and not self._pending:
            return
        self._process.join(0.5)  # the pipe closes a moment before the process is reaped
        pending = ", ".join(sorted({op for op, _ in self._pending.values()}))
        error = MemberProcessError(
            _messages.PROCESS_EXITED.format(
                label=self.label,
                code=self._process.exitcode,
                doing=_messages.PROCESS_EXITED_DOING.format(ops=pending) if pending else "",
            )
        )
        self._failure = self._failure or error
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    # -- commands ----------------------------------------------------------------------

    async def _request(
        self, op: str, args: tuple[Any, ...], *, deadline: float | None = None
    ) -> Any:
        if self._failure is not None:
            raise MemberProcessError(str(self._failure))
        if self._conn.closed:
            raise MemberProcessError(_messages.PROCESS_CLOSED.format(label=self.label))
        assert self._loop is not None
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending[request_id] = (op, future)
        try:
            self._conn.send((request_id, op, args, float(self._clock())))
        except OSError:
            self._lost()
        try:
            async with asyncio.timeout(deadline):
                return await future
        except TimeoutError:
            if future.done():
                raise  # the child's own timeout, with its message
            self._details[op] = _messages.PROCESS_STUCK.format(op=op)
            raise TimeoutError(
                _messages.PROCESS_SILENT.format(label=self.label, op=op, timeout=deadline or 0)
            ) from None
        finally:
            self._pending.pop(request_id, None)

    async def get_policy(self, name: str) -> Mapping[str, Any]:
        """``get_policy`` in the child; the result is a plain dict copy."""
        result: Mapping[str, Any] = await self._request("get", (name,))
        return result

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> tuple[float, float]:
        """``update_policy`` in the child; returns its start and end in this process's time."""
        started, finished = await self._request("update", (name, dict(policy)))
        return (started - self._offset, finished - self._offset)

    async def wait_subscribed(self, channel: str, timeout: float) -> None:
        """Wait until Redis confirmed the child's subscription to ``channel``."""
        await self._request("wait_subscribed", (channel, timeout), deadline=timeout + LOOP_GRACE)

    async def settle(self, timeout: float) -> None:
        """Wait until the child's store processed every invalidation sent before this call."""
        await self._request("settle", (timeout,), deadline=timeout + LOOP_GRACE)

    async def wait_resubscribed(self, after: int, channel: str, timeout: float) -> float:
        """See :meth:`PolicyCluster.wait_resubscribed`; returns the moment, in this process's time."""
        moment: float = await self._request(
            "wait_resubscribed", (after, channel, timeout), deadline=timeout + LOOP_GRACE
        )
        return moment - self._offset

    async def wait_subscription_lost(self, channel: str, timeout: float) -> float:
        """See :meth:`PolicyCluster.wait_subscription_lost`."""
        moment: float = await self._request(
            "wait_subscription_lost", (channel, timeout), deadline=timeout + LOOP_GRACE
        )
        return moment - self._offset

    def whereabouts(self) -> str:
        """Why the last settle failed, as the child saw it."""
        if self._failure is not None:
            return str(self._failure)
        return self._details.get("settle", _messages.PROCESS_NO_ANSWER)

    def subscription_state(self) -> str:
        """The child's subscription, as it reported on the last failed wait."""
        if self._failure is not None:
            return str(self._failure)
        return self._details.get("wait_subscribed", _messages.PROCESS_NO_ANSWER)

    def deliveries(self) -> tuple[Delivery, ...]:
        """Deliveries the child reported processed so far."""
        return tuple(self._deliveries)

    def storage_reads(self) -> int:
        """Storage reads counted in the child, as of the last reply."""
        return self._storage_reads

    def subscriptions(self) -> int:
        """``pubsub()`` calls of the child's store, as of the last reply."""
        return self._subscriptions

    async def close(self) -> None:
        """Close the store in the child, then end the process (terminating it if it hangs)."""
        self._closing = True
        try:
            if self._failure is None and not self._conn.closed and self._process.is_alive():
                await self._request("close", (), deadline=_EXIT_TIMEOUT + LOOP_GRACE)
        finally:
            await asyncio.to_thread(self._reap)
            if not self._conn.closed:
                if self._loop is not None:
                    with contextlib.suppress(Exception):
                        self._loop.remove_reader(self._conn.fileno())
                self._conn.close()

    def _reap(self) -> None:
        if not self._pid:  # never launched
            return
        self._process.join(_EXIT_TIMEOUT)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(_EXIT_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._process.close()


def spawn_context() -> SpawnContext:
    """The ``spawn`` start method: a fresh interpreter, safe with the parent's threads."""
    return multiprocessing.get_context("spawn")
