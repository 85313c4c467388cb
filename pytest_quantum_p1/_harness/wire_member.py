"""The wire member: a store that builds its own Redis client, observed between it and Redis.

A target whose ``store_factory`` is of the URL form (:class:`~pytest_quantum_p1.FromURL`)
gets, per instance, a :class:`~pytest_quantum_p1._wire.proxy.WireProxy` of its
own and the proxy's URL: the store connects with whatever client it likes, and
the harness sees its storage reads, publishes, subscriptions and pushes on the
wire. :class:`WireMember` is what :class:`~pytest_quantum_p1._harness.cluster.PolicyCluster`
drives, like :class:`~pytest_quantum_p1._harness.member.LocalMember` on the client
path; :class:`WireControls` offers the client path's fault controls under the
same names (hold, deliver, drop, inject, disconnect, held reads, the publish
gate), so a check is written once for both paths.

What the wire cannot see is what a client did with a push it was given. So to
*settle* here is: a barrier (every push Redis wrote on the instance's
subscription connections before now reached the proxy), nothing held, and
then the store's turn (:data:`WIRE_TURN_S`); verdicts are then judged by what
the instance serves (:meth:`PolicyCluster.assert_converged` reads a wire
instance again until it serves the value or the settle time is up), and
propagation is measured to the moment the proxy forwarded the push.

The invalidation channel ``__redis__:invalidate`` stands for Redis's
server-assisted client-side caching: a store that tracks keys (``CLIENT
TRACKING``, default or BCAST mode, RESP3 pushes or a RESP2 redirect connection)
is subscribed when Redis accepted its tracking.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.pubsub import Delivery, DeliveryKind
from pytest_quantum_p1._target import Clock, FromURL, PolicyStore
from pytest_quantum_p1._wire.proxy import WireProxy
from pytest_quantum_p1._wire.records import (
    INVALIDATE_CHANNEL,
    TRACKING,
    ConnectionState,
    FetchGate,
    PublishGate,
    Tracking,
    WireDelivery,
)
from pytest_quantum_p1._wire.upstream import Upstream

__all__ = ["WIRE_TURN_S", "WireControls", "WireMember", "as_delivery", "wire_target"]

#: After a push was forwarded, how long the store is given to act on it before
#: the harness looks: the wire shows the bytes leave, not the handler finish.
#: A store slower than this is not failed for it: verdicts retry reads (see
#: the module docstring); only figures taken right after a settle may see it.
WIRE_TURN_S: Final = 0.005

#: Pause between the reads that judge a wire instance by what it serves.
_SERVE_POLL_S: Final = 0.002


def wire_target(channel: str) -> str | Tracking:
    """What a subscription must cover for ``channel``: the channel, or tracking for ``__redis__:invalidate``."""
    return TRACKING if channel == INVALIDATE_CHANNEL else channel


def _covers(state: ConnectionState, target: str | Tracking) -> bool:
    if isinstance(target, Tracking):
        return state.gets_invalidations
    return state.listens_to(target)


def as_delivery(push: WireDelivery) -> Delivery:
    """A push as the client path's :class:`Delivery`: handed out and "processed" when forwarded."""
    kind: DeliveryKind = (
        "injected"
        if push.how == "injected"
        else "duplicate"
        if push.how == "duplicate"
        else "message"
    )
    return Delivery(
        label=push.label,
        channel=push.channel,
        data=push.data,
        kind=kind,
        received_at=push.received_at,
        handed_out_at=push.forwarded_at if push.forwarded_at is not None else push.received_at,
        processed_at=push.forwarded_at,
    )


class WireMember:
    """One store of the URL form behind a proxy of its own, on the current loop.

    The store is built in :meth:`start` (the proxy must listen before its URL
    exists), from ``factory(url, clock)``; ``upstream`` is the Redis the proxy
    forwards to.
    """

    #: Verdicts on this member read again until the value is served (see the module docstring).
    judged_by_serving: Final = True

    def __init__(
        self,
        index: int,
        factory: FromURL,
        upstream: Upstream,
        clock: Clock,
        *,
        channel: str,
    ) -> None:
        self.index = index
        self.label = f"instance {index}"
        self._factory = factory
        self._upstream = upstream
        self._clock = clock
        #: What the instance's subscriptions must cover: its channel, or tracking.
        self.target = wire_target(channel)
        self.proxy = WireProxy(upstream.address, label=self.label, db=upstream.db)
        self.controls = WireControls(self)
        self._store: PolicyStore | None = None

    @property
    def store(self) -> PolicyStore:
        """The store, once :meth:`start` built it."""
        if self._store is None:
            raise RuntimeError(_messages.WIRE_MEMBER_NOT_STARTED.format(label=self.label))
        return self._store

    @property
    def pid(self) -> int:
        return os.getpid()

    async def start(self) -> None:
        await self.proxy.start_async()
        self._store = self._factory(self._upstream.store_url(self.proxy.address), self._clock)
        await self._store.initialize()

    async def get_policy(self, name: str) -> Mapping[str, Any]:
        return await self.store.get_policy(name)

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> tuple[float, float]:
        started = time.perf_counter()
        await self.store.update_policy(name, policy)
        return (started, time.perf_counter())

    async def wait_subscribed(self, channel: str, timeout: float) -> None:
        await self.proxy.wait_subscribed_async(wire_target(channel), timeout)

    async def settle(self, timeout: float) -> None:
        """Every push Redis sent before this call forwarded, then the store's turn.

        Raises :class:`TimeoutError` with :meth:`whereabouts` when a push stays
        held or the barrier does not come back.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self.proxy.barrier_async(timeout)
            await self.proxy.signal.wait_until(
                lambda: True if not self.proxy.pending else None,
                max(deadline - loop.time(), 0.0),
            )
        except TimeoutError:
            raise TimeoutError(
                _messages.MEMBER_NOT_SETTLED.format(
                    label=self.label, timeout=timeout, where=self.whereabouts()
                )
            ) from None
        await asyncio.sleep(WIRE_TURN_S)

    async def serve(
        self, name: str, expected: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | Exception:
        """Read ``name`` until it equals ``expected`` or ``timeout`` passes; the last outcome."""
        deadline = time.perf_counter() + timeout
        while True:
            try:
                got: Mapping[str, Any] | Exception = await self.get_policy(name)
            except Exception as exc:  # part of the verdict
                got = exc
            if not isinstance(got, Exception) and dict(got) == dict(expected):
                return got
            if time.perf_counter() >= deadline:
                return got
            await asyncio.sleep(_SERVE_POLL_S)

    def _live(self) -> bool:
        return any(s.open and _covers(s, self.target) for s in self.proxy.connections)

    async def wait_resubscribed(self, after: int, channel: str, timeout: float) -> float:
        del channel  # the member's own target

        def check() -> float | None:
            if self.subscriptions() <= after or not self._live():
                return None
            return time.perf_counter()

        try:
            return await self.proxy.signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.NOT_RESUBSCRIBED.format(
                    label=self.label,
                    channel=self.target,
                    timeout=timeout,
                    count=self.subscriptions(),
                    after=after,
                    state=self.subscription_state(),
                )
            ) from None

    async def wait_subscription_lost(self, channel: str, timeout: float) -> float:
        del channel

        def check() -> float | None:
            return None if self._live() else time.perf_counter()

        try:
            return await self.proxy.signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.SUBSCRIPTION_KEPT.format(
                    label=self.label, channel=self.target, timeout=timeout
                )
            ) from None

    def whereabouts(self) -> str:
        """Where the pushes the last settle waited for are, as far as the wire shows."""
        held = len(self.proxy.pending)
        if held:
            return _messages.WIRE_WHERE_HELD.format(count=held)
        if not self._live():
            return _messages.WIRE_WHERE_NOT_SUBSCRIBED.format(target=self.target)
        return _messages.WIRE_WHERE_FORWARDED.format(count=len(self.proxy.deliveries))

    def subscription_state(self) -> str:
        """The instance's connections as Redis confirmed them, in words."""
        states = [s for s in self.proxy.connections if s.open]
        if not states:
            return _messages.WIRE_STATE_NO_CONNECTION
        listening = [s for s in states if _covers(s, self.target)]
        if listening:
            return _messages.WIRE_STATE_LISTENING.format(count=len(listening), target=self.target)
        return _messages.WIRE_STATE_NOT_LISTENING.format(count=len(states), target=self.target)

    def subscriptions(self) -> int:
        """Connections that were ever confirmed on the member's channel (or tracking)."""
        return sum(1 for s in self.proxy.connections if _covers(s, self.target))

    def deliveries(self) -> tuple[Delivery, ...]:
        return tuple(as_delivery(d) for d in self.proxy.deliveries)

    def storage_reads(self) -> int:
        return self.proxy.storage_reads

    async def close(self) -> None:
        try:
            if self._store is not None:
                await self._store.close()
        finally:
            await self.proxy.close_async()


class WireControls:
    """A wire member's fault controls under the client path's names.

    What :meth:`PolicyCluster.pubsub` and :meth:`PolicyCluster.observed` hand
    out for a wire instance: the pushes of every subscription connection of
    the instance, and its storage reads and publishes.
    """

    def __init__(self, member: WireMember) -> None:
        self._member = member
        self._proxy = member.proxy

    # -- pushes (ControlledPubSub's names) ------------------------------------------

    def hold(self) -> None:
        """Hold every push from now on, until :meth:`release`."""
        self._proxy.hold()

    def release(self) -> int:
        """Forward every held push and stop holding; returns how many."""
        return self._proxy.release()

    def deliver(self, n: int = 1) -> tuple[Delivery, ...]:
        """Forward the ``n`` oldest held pushes."""
        return tuple(as_delivery(d) for d in self._proxy.deliver(n))

    def duplicate(self, n: int = 1) -> tuple[Delivery, ...]:
        """Forward copies of the ``n`` oldest held pushes (they stay held)."""
        return tuple(as_delivery(d) for d in self._proxy.duplicate(n))

    def drop(self, n: int = 1) -> tuple[Delivery, ...]:
        """Discard the ``n`` oldest held pushes."""
        return tuple(as_delivery(d) for d in self._proxy.drop(n))

    @property
    def pending(self) -> tuple[Delivery, ...]:
        """The held pushes, oldest first."""
        return tuple(as_delivery(d) for d in self._proxy.pending)

    def wait_pending(self, count: int = 1, timeout: float = 5.0) -> tuple[Delivery, ...]:
        """Block until at least ``count`` pushes are held; return them."""
        return tuple(as_delivery(d) for d in self._proxy.wait_pending(count, timeout))

    def inject(self, data: bytes | str, *, timeout: float = 5.0) -> Delivery:
        """Write a message Redis never sent to the instance's subscription connection.

        Waits up to ``timeout`` for one: a client that could not read the
        previous message (a decoding client given bytes that are not UTF-8)
        drops its connection and subscribes again on a new one.
        """
        deadline = time.perf_counter() + timeout
        while True:
            self._proxy.wait_subscribed(
                self._member.target, max(deadline - time.perf_counter(), 0.0)
            )
            try:
                return as_delivery(self._proxy.inject(data, channel=self._member.target))
            except LookupError:
                # Closed between the two calls: the client is on its way to a new one.
                if time.perf_counter() >= deadline:
                    raise

    def disconnect(self) -> int:
        """Cut the instance's subscription connections (a lost link); returns how many."""
        return self._proxy.disconnect(subscriptions_only=True)

    @property
    def log(self) -> tuple[Delivery, ...]:
        """Every push forwarded or injected, in order ("processed" means forwarded)."""
        return self._member.deliveries()

    # -- reads and publishes (ObservedRedis's names) ----------------------------------

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        """Every push forwarded to the instance, in order."""
        return self._member.deliveries()

    @property
    def storage_reads(self) -> int:
        """Storage reads the instance sent."""
        return self._proxy.storage_reads

    @property
    def subscriptions(self) -> int:
        """Connections ever confirmed on the instance's channel."""
        return self._member.subscriptions()

    @property
    def publish_gate(self) -> PublishGate | None:
        """Awaited after each acknowledged publish, with ``(channel, message, receivers)``."""
        return self._proxy.publish_gate

    @publish_gate.setter
    def publish_gate(self, gate: PublishGate | None) -> None:
        self._proxy.publish_gate = gate

    @property
    def fetch_gate(self) -> FetchGate | None:
        """Awaited after each storage read's reply, before the client gets it."""
        return self._proxy.fetch_gate

    @fetch_gate.setter
    def fetch_gate(self, gate: FetchGate | None) -> None:
        self._proxy.fetch_gate = gate

    async def wait_processed_async(
        self, predicate: Callable[[Delivery], bool], timeout: float = 5.0
    ) -> Delivery:
        """Wait until a forwarded push matches ``predicate``, then the store's turn."""
        proxy = self._proxy

        def check() -> Delivery | None:
            for push in proxy.deliveries:
                delivery = as_delivery(push)
                if predicate(delivery):
                    return delivery
            return None

        found = await proxy.signal.wait_until(check, timeout)
        await asyncio.sleep(WIRE_TURN_S)
        return found

    def get_connection_kwargs(self) -> dict[str, Any]:
        """Nothing is known of the store's client: the wire carries bytes."""
        return {}
