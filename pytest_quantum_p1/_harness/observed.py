"""Observed reads: Redis as one store instance sees it, its storage reads counted and held.

The harness measures instead of trusting: it hands each store an
:class:`ObservedRedis` instead of the raw ``redis.asyncio`` client. The proxy
forwards everything, counts the storage reads the store issues and can hold a
read's result (:class:`PendingRead`); its :meth:`ObservedRedis.pubsub` returns a
:class:`~pytest_quantum_p1._harness.pubsub.ControlledPubSub`, through which the
harness sees and steers the invalidation messages the store receives.

Threading is that of the pubsub module: everything belongs to the store's loop,
controller-side methods are safe from any thread, waits come as ``wait_x()`` and
``await wait_x_async()``, and nothing sleeps.

Subclasses extend it through the documented hook :meth:`ObservedRedis.wrap_pubsub`
and the public :attr:`ObservedRedis.signal`, never through private state.

This module imports redis; the plugin imports it only when a fixture needs it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.portal import (
    LOOP_GRACE,
    Signal,
    await_on,
    block_on,
    owning_loop,
    run_soon,
)
from pytest_quantum_p1._harness.pubsub import ControlledPubSub, Delivery, ProcessedScan, as_text

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = [
    "READ_COMMANDS",
    "FetchGate",
    "ObservedRedis",
    "PendingRead",
    "PublishGate",
]

#: Commands counted as storage reads when issued directly on the client.
#: Reads inside a pipeline or transaction are not counted (see ObservedRedis).
READ_COMMANDS: frozenset[str] = frozenset(
    {
        "GET",
        "GETEX",
        "GETDEL",
        "GETRANGE",
        "MGET",
        "HGET",
        "HMGET",
        "HGETALL",
        "HVALS",
        "HKEYS",
        "HEXISTS",
        "EXISTS",
        "JSON.GET",
        "JSON.MGET",
    }
)

#: Awaited after every counted read returned, with ``(command, args, result)``;
#: the store gets the result only when the gate returns.
FetchGate = Callable[[str, tuple[Any, ...], Any], Awaitable[None]]

#: Awaited after every ``PUBLISH`` the store issued directly returned, with
#: ``(channel, message, receivers)``; the store gets the reply only when the gate
#: returns. What a store does after publishing (its storage write, if it wrote
#: after announcing) waits meanwhile.
PublishGate = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass(eq=False)
class PendingRead:
    """A storage read whose real command ran but whose result the store has not got yet."""

    label: str
    command: str
    args: tuple[Any, ...]
    #: What Redis returned; the store receives exactly this on :meth:`release`.
    result: Any
    held_at: float
    #: The loop of the store that issued the read.
    loop: asyncio.AbstractEventLoop = field(repr=False)
    #: Called on the loop once released: the owner stops listing it as pending.
    _on_release: Callable[[PendingRead], None] = field(repr=False)
    _gate: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def released(self) -> bool:
        """Whether :meth:`release` was called."""
        return self._gate.is_set()

    def release(self) -> None:
        """Let the store have the result (safe from any thread)."""
        run_soon(self.loop, self._release)

    def _release(self) -> None:
        self._gate.set()
        self._on_release(self)

    async def wait_released(self) -> None:
        """Return once :meth:`release` was called (what the held read awaits)."""
        await self._gate.wait()


class ObservedRedis:
    """A ``redis.asyncio`` client as one store instance sees it: counted and gated.

    Everything not defined here is forwarded to the wrapped client. Storage reads
    (:data:`READ_COMMANDS`) issued directly on the client (``get``, ``mget``,
    ``hget``, ``hgetall``, ``hmget``, ``exists``, ``execute_command`` and
    ``json().get``) are counted in :attr:`storage_reads` when issued; reads
    queued in a ``pipeline()`` or transaction are **not** counted, because the
    pipeline object talks to the connection itself (this is the documented
    contract of :class:`~pytest_quantum_p1.PolicyStore`).

    :meth:`hold_reads` makes every later read wait, after the real command
    returned, until the harness releases it (see :attr:`pending_reads`), so a
    test can interleave "miss, fetch, update and invalidation, fetch completes".
    :attr:`fetch_gate` is the general hook behind it. :attr:`publish_gate` is
    its twin for ``PUBLISH`` (``publish`` or ``execute_command("PUBLISH", ...)``
    issued directly; a publish inside a pipeline or a script is not seen):
    awaited once the server has sent the invalidation, before the store may go
    on, so a harness can act in the window between a publish and what follows it.

    :meth:`pubsub` returns a :class:`ControlledPubSub`; the latest one is
    :attr:`current_pubsub` and :attr:`subscriptions` counts them (a store that
    resubscribes after a lost connection calls ``pubsub()`` again). A
    subscription, throughout the harness, is one such pubsub with what it
    subscribed to.

    For subclasses: :meth:`wrap_pubsub` makes the pubsub :meth:`pubsub` hands
    out, and :attr:`signal` fires on every change of this client and its pubsubs.

    Limits: ``isinstance(proxy, redis.asyncio.Redis)`` is false; ``async with``
    and ``await`` on the proxy return the proxy, not the raw client.
    """

    def __init__(
        self,
        client: Redis,
        *,
        label: str,
        read_commands: Iterable[str] = READ_COMMANDS,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # Typed Any: redis-py's commands are typed as sync-or-async unions.
        self._client: Any = client
        self.label = label
        self.loop = owning_loop(loop, "ObservedRedis")
        self.read_commands = frozenset(command.upper() for command in read_commands)
        #: Awaited after each counted read with ``(command, args, result)``.
        self.fetch_gate: FetchGate | None = None
        #: Awaited after each ``PUBLISH`` with ``(channel, message, receivers)``.
        self.publish_gate: PublishGate | None = None
        self._signal = Signal()
        self._reads = 0
        self._by_command: Counter[str] = Counter()
        self._holding_reads = False
        self._pending_reads: list[PendingRead] = []
        self._pubsubs: list[ControlledPubSub] = []

    # -- forwarding ---------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name == "_client":  # not yet set: avoid recursing during __init__
            raise AttributeError(name)
        return getattr(self._client, name)

    # A store may branch on what it was given (``isinstance(client,
    # RedisCluster)``: the cluster's own pubsub per node, topology refresh):
    # it must see the client the harness wraps, not the wrapper. ``isinstance``
    # consults ``__class__``; ``type()`` still says ObservedRedis.
    @property  # type: ignore[misc]
    def __class__(self) -> type[Any]:
        return type(self._client)

    @property
    def signal(self) -> Signal:
        """Fires on every change of this client's or its pubsubs' state (reads, pubsub() calls ...).

        Wait on it with ``await signal.wait_until(check, timeout)`` on :attr:`loop`.
        """
        return self._signal

    @property
    def client(self) -> Redis:
        """The wrapped client (reads through it are not counted)."""
        client: Redis = self._client
        return client

    async def __aenter__(self) -> ObservedRedis:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __await__(self) -> Any:
        return self._initialized().__await__()

    async def _initialized(self) -> ObservedRedis:
        await self._client.initialize()
        return self

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the wrapped client (``Redis.aclose``; a ``RedisCluster``'s takes no argument)."""
        if close_connection_pool is None:
            await self._client.aclose()
        else:
            await self._client.aclose(close_connection_pool)

    def __repr__(self) -> str:
        return f"<ObservedRedis {self.label} storage_reads={self._reads} of {self._client!r}>"

    # -- counted reads ------------------------------------------------------

    @property
    def storage_reads(self) -> int:
        """Storage reads issued directly on this client so far."""
        return self._reads

    @property
    def reads_by_command(self) -> dict[str, int]:
        """Storage reads per command name (``{"GET": 3, ...}``)."""
        return run_soon(self.loop, lambda: dict(self._by_command))

    def reset_counts(self) -> None:
        """Zero the read counters (e.g. after warm-up)."""
        run_soon(self.loop, self._reset_counts)

    def _reset_counts(self) -> None:
        self._reads = 0
        self._by_command.clear()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Forwarded to the client; counted when ``args[0]`` is a read command."""
        command = as_text(args[0]).upper() if args else ""
        if command == "PUBLISH" and len(args) >= 3:
            return await self._published(
                args[1], args[2], self._client.execute_command(*args, **options)
            )
        if command not in self.read_commands:
            return await self._client.execute_command(*args, **options)
        return await self._read(command, args[1:], self._client.execute_command(*args, **options))

    async def publish(self, channel: Any, message: Any, **kwargs: Any) -> Any:
        """``PUBLISH``, forwarded; then :attr:`publish_gate`, if set, is awaited."""
        return await self._published(
            channel, message, self._client.publish(channel, message, **kwargs)
        )

    async def _published(self, channel: Any, message: Any, pending: Awaitable[Any]) -> Any:
        receivers = await pending
        if self.publish_gate is not None:
            await self.publish_gate(channel, message, receivers)
        return receivers

    async def get(self, name: Any) -> Any:
        """``GET``, counted."""
        return await self._read("GET", (name,), self._client.get(name))

    async def mget(self, keys: Any, *args: Any) -> Any:
        """``MGET``, counted once."""
        return await self._read("MGET", (keys, *args), self._client.mget(keys, *args))

    async def hget(self, name: Any, key: Any) -> Any:
        """``HGET``, counted."""
        return await self._read("HGET", (name, key), self._client.hget(name, key))

    async def hgetall(self, name: Any) -> Any:
        """``HGETALL``, counted."""
        return await self._read("HGETALL", (name,), self._client.hgetall(name))

    async def hmget(self, name: Any, keys: Any, *args: Any) -> Any:
        """``HMGET``, counted once."""
        return await self._read("HMGET", (name, keys, *args), self._client.hmget(name, keys, *args))

    async def exists(self, *names: Any) -> Any:
        """``EXISTS``, counted."""
        return await self._read("EXISTS", names, self._client.exists(*names))

    def json(self, **kwargs: Any) -> Any:
        """The RedisJSON commands, issued through this proxy so ``JSON.GET`` is counted."""
        from redis.commands.json import AsyncJSON

        return AsyncJSON(client=self, **kwargs)  # type: ignore[no-untyped-call]

    async def _read(self, command: str, args: tuple[Any, ...], pending: Awaitable[Any]) -> Any:
        # Counted when issued, so "a fetch started" is observable while it is held.
        self._reads += 1
        self._by_command[command] += 1
        self._signal.notify()
        result = await pending
        if self._holding_reads:
            held = PendingRead(
                self.label,
                command,
                args,
                result,
                time.perf_counter(),
                self.loop,
                self._discard_read,
            )
            self._pending_reads.append(held)
            self._signal.notify()
            try:
                await held.wait_released()
            finally:
                self._discard_read(held)
        if self.fetch_gate is not None:
            await self.fetch_gate(command, args, result)
        return result

    # -- holding reads ------------------------------------------------------

    def hold_reads(self) -> None:
        """Hold the result of every later read until released (safe from any thread)."""
        run_soon(self.loop, setattr, self, "_holding_reads", True)

    def release_reads(self) -> None:
        """Stop holding and release every pending read."""
        run_soon(self.loop, self._release_all_reads)

    @property
    def holding_reads(self) -> bool:
        """Whether :meth:`hold_reads` is in force."""
        return self._holding_reads

    @property
    def pending_reads(self) -> tuple[PendingRead, ...]:
        """Reads that ran and wait for :meth:`PendingRead.release`, oldest first."""
        return run_soon(self.loop, lambda: tuple(self._pending_reads))

    def wait_pending_reads(self, count: int = 1, timeout: float = 5.0) -> tuple[PendingRead, ...]:
        """Block until at least ``count`` reads are pending; return them."""
        return block_on(
            self.loop, self._wait_pending_reads, count, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_pending_reads_async(
        self, count: int = 1, timeout: float = 5.0
    ) -> tuple[PendingRead, ...]:
        """Wait until at least ``count`` reads are pending; return them."""
        return await await_on(self.loop, self._wait_pending_reads, count, timeout)

    async def _wait_pending_reads(self, count: int, timeout: float) -> tuple[PendingRead, ...]:
        def check() -> tuple[PendingRead, ...] | None:
            return tuple(self._pending_reads) if len(self._pending_reads) >= count else None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WAIT_PENDING_READS_TIMED_OUT.format(
                    label=self.label, pending=len(self._pending_reads), timeout=timeout, count=count
                )
            ) from None

    def _discard_read(self, held: PendingRead) -> None:
        if held in self._pending_reads:
            self._pending_reads.remove(held)
            self._signal.notify()

    def _release_all_reads(self) -> None:
        self._holding_reads = False
        for held in list(self._pending_reads):
            held.release()

    # -- pub/sub ------------------------------------------------------------

    def pubsub(self, **kwargs: Any) -> ControlledPubSub:
        """A :class:`ControlledPubSub` around ``client.pubsub(**kwargs)``."""
        ignore = bool(kwargs.pop("ignore_subscribe_messages", False))
        controlled = self.wrap_pubsub(
            self._client.pubsub(**kwargs),
            label=f"{self.label} pubsub#{len(self._pubsubs) + 1}",
            ignore_subscribe_messages=ignore,
            signal=self._signal,
            loop=self.loop,
        )
        self._pubsubs.append(controlled)
        self._signal.notify()
        return controlled

    def wrap_pubsub(self, pubsub: PubSub, **options: Any) -> ControlledPubSub:
        """Extension hook: the :class:`ControlledPubSub` that :meth:`pubsub` hands out.

        ``options`` are :class:`ControlledPubSub`'s keyword arguments; a subclass
        may return a subclass of it (the stateful machine's holds every message).
        """
        return ControlledPubSub(pubsub, **options)

    @property
    def subscriptions(self) -> int:
        """How many times the store called ``pubsub()``."""
        return len(self._pubsubs)

    @property
    def pubsubs(self) -> tuple[ControlledPubSub, ...]:
        """Every pubsub the store created, oldest first."""
        return tuple(self._pubsubs)

    @property
    def current_pubsub(self) -> ControlledPubSub | None:
        """The pubsub the store created last, or ``None``."""
        return self._pubsubs[-1] if self._pubsubs else None

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        """Every message handed to the store over all its pubsubs, in hand-out order."""
        return run_soon(self.loop, self._all_deliveries)

    def _all_deliveries(self) -> tuple[Delivery, ...]:
        merged = [d for ps in self._pubsubs for d in ps.log]
        return tuple(sorted(merged, key=lambda d: d.handed_out_at))

    def wait_subscriptions(self, count: int, timeout: float = 5.0) -> ControlledPubSub:
        """Block until the store created ``count`` pubsubs; return the latest."""
        return block_on(
            self.loop, self._wait_subscriptions, count, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_subscriptions_async(self, count: int, timeout: float = 5.0) -> ControlledPubSub:
        """Wait until the store created ``count`` pubsubs; return the latest."""
        return await await_on(self.loop, self._wait_subscriptions, count, timeout)

    async def _wait_subscriptions(self, count: int, timeout: float) -> ControlledPubSub:
        def check() -> ControlledPubSub | None:
            return self._pubsubs[-1] if len(self._pubsubs) >= count else None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WAIT_SUBSCRIPTIONS_TIMED_OUT.format(
                    label=self.label, made=len(self._pubsubs), timeout=timeout, count=count
                )
            ) from None

    def wait_subscribed(self, channel: str, timeout: float = 5.0) -> ControlledPubSub:
        """Block until Redis confirmed the current pubsub's subscription to ``channel``."""
        return block_on(
            self.loop, self._wait_subscribed, channel, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_subscribed_async(self, channel: str, timeout: float = 5.0) -> ControlledPubSub:
        """Wait until Redis confirmed the current pubsub's subscription to ``channel``.

        A pattern subscription matching ``channel`` counts. Returns that pubsub.
        """
        return await await_on(self.loop, self._wait_subscribed, channel, timeout)

    async def _wait_subscribed(self, channel: str, timeout: float) -> ControlledPubSub:
        def check() -> ControlledPubSub | None:
            current = self.current_pubsub
            return current if current is not None and current.listens_to(channel) else None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WAIT_SUBSCRIBED_TIMED_OUT.format(
                    label=self.label, channel=channel, timeout=timeout
                )
            ) from None

    def wait_processed(
        self, match: str | bytes | Callable[[Delivery], bool], timeout: float = 5.0
    ) -> Delivery:
        """Block until the store processed a message matching ``match`` on any of its pubsubs."""
        return block_on(
            self.loop, self._wait_processed, match, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_processed_async(
        self, match: str | bytes | Callable[[Delivery], bool], timeout: float = 5.0
    ) -> Delivery:
        """Wait until the store processed a message matching ``match``; return it.

        ``match`` is the message data (``str`` or ``bytes``) or a predicate.
        """
        return await await_on(self.loop, self._wait_processed, match, timeout)

    async def _wait_processed(
        self, match: str | bytes | Callable[[Delivery], bool], timeout: float
    ) -> Delivery:
        scan = ProcessedScan(match)

        def check() -> Delivery | None:
            for ps in self._pubsubs:
                found = scan.first(ps)
                if found is not None:
                    return found
            return None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WAIT_PROCESSED_TIMED_OUT.format(
                    label=self.label, match=match, timeout=timeout
                )
            ) from None

    async def close_pubsubs(self) -> None:
        """Close every pubsub the store left open (harness clean-up)."""
        for ps in self._pubsubs:
            await ps.aclose()
