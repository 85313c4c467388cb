"""The member: one store instance as the cluster drives it, and the local one.

:class:`Member` is what :class:`~pytest_quantum_p1._harness.cluster.PolicyCluster`
asks of an instance, wherever it runs. :class:`LocalMember` hosts a store on the
loop it is created on, talking to Redis through an
:class:`~pytest_quantum_p1._harness.observed.ObservedRedis`: the cluster uses it
for in-process instances, and a child process hosts one for a process-backed
instance (:mod:`pytest_quantum_p1._harness.process`).

Words: a *subscription* is one ``pubsub()`` the store made, with what it
subscribed to; it is *live* while Redis confirmed it covers the channel and its
connection holds. To *settle* an instance is to wait until its store processed
every invalidation sent before the wait began: a member that observes at the
client (this one) proves it with a barrier on the store's own pubsub connection
(:meth:`~pytest_quantum_p1._harness.pubsub.ControlledPubSub.settle_async`); one
that observes at the wire can only prove the messages were forwarded. Either
way nothing is published on the store's channel, and convergence is judged by
what the instances serve.

This module imports redis (through the observed client).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import redis.exceptions

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.observed import ObservedRedis
from pytest_quantum_p1._harness.pubsub import BarrierBroken, ControlledPubSub, Delivery
from pytest_quantum_p1._redis.clients import close_client
from pytest_quantum_p1._target import Clock, PolicyStore, StoreFactory

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["LocalMember", "Member", "publish_barrier"]


async def publish_barrier(control: Any, channel: str, token: str) -> list[str] | None:
    """Publish a settle barrier's ``token`` on ``channel`` through the harness's ``control`` client.

    On one Redis: once (returns ``None``). On a Redis Cluster: one copy from
    every master, since two links of the cluster bus keep no order between
    them, and each copy arrives behind what its master sent earlier; returns
    the copies' tokens, which :class:`ControlledPubSub`'s barrier waits for. A
    master that cannot be reached sends nothing more: it is left out, once the
    client asked the cluster for its masters again.
    """
    primaries = getattr(control, "get_primaries", None)
    if primaries is None:
        await _publish_once(control, channel, token, None)
        return None
    if not primaries():  # a cluster client that has not asked for its nodes yet
        await control.initialize()
    tokens: list[str] = []
    for attempt in range(2):
        tokens = []
        unreachable = False
        for number, node in enumerate(primaries()):
            copy = f"{token}.{attempt}.{number}"
            try:
                await _publish_once(control, channel, copy, node)
            except (redis.exceptions.ConnectionError, OSError):
                unreachable = True
                continue
            tokens.append(copy)
        if not unreachable:
            break
        await control.nodes_manager.initialize()
    if not tokens:  # no master answered: the barrier waits for what one node says
        await _publish_once(control, channel, token, None)
        return None
    return tokens


async def _publish_once(control: Any, channel: str, token: str, node: Any) -> None:
    options = {} if node is None else {"target_nodes": node}
    try:
        await control.execute_command("PUBLISH", channel, token, **options)
    except redis.exceptions.ConnectionError:
        # The harness's pooled connection may have died with a restarted
        # server, which redis-py finds out only by using it. Retried once:
        # a token published twice is harmless.
        await control.execute_command("PUBLISH", channel, token, **options)


class Member(Protocol):
    """One store instance as the cluster drives it.

    In-process (:class:`LocalMember`) or in a child process
    (:class:`~pytest_quantum_p1._harness.process.ProcessMember`, which hosts a
    ``LocalMember`` in the child). Methods run on the cluster's loop; times are
    :func:`time.perf_counter` seconds of this process.
    """

    index: int
    label: str

    @property
    def pid(self) -> int: ...
    async def start(self) -> None: ...
    async def get_policy(self, name: str) -> Mapping[str, Any]: ...
    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> tuple[float, float]: ...
    async def wait_subscribed(self, channel: str, timeout: float) -> None: ...
    async def settle(self, timeout: float) -> None: ...
    async def wait_resubscribed(self, after: int, channel: str, timeout: float) -> float: ...
    async def wait_subscription_lost(self, channel: str, timeout: float) -> float: ...
    def whereabouts(self) -> str: ...
    def subscription_state(self) -> str: ...
    def deliveries(self) -> tuple[Delivery, ...]: ...
    def storage_reads(self) -> int: ...
    def subscriptions(self) -> int: ...
    async def close(self) -> None: ...


class LocalMember:
    """A store on the current loop, talking to Redis through an ObservedRedis.

    ``control`` is the harness's own client (never the store's), through which
    settling publishes its barrier tokens; ``owns_control``: closed with the member.
    """

    def __init__(
        self,
        index: int,
        factory: StoreFactory,
        client: Redis,
        clock: Clock,
        *,
        control: Redis,
        owns_control: bool = False,
    ) -> None:
        self.index = index
        self.label = f"instance {index}"
        self._control = control
        self._owns_control = owns_control
        self.observed = ObservedRedis(client, label=self.label)
        # The store is handed the proxy where it expects a client: it only
        # uses the client's interface, which the proxy forwards.
        self.store: PolicyStore = factory(cast("Redis", self.observed), clock)

    @property
    def pid(self) -> int:
        return os.getpid()

    async def start(self) -> None:
        await self.store.initialize()

    async def get_policy(self, name: str) -> Mapping[str, Any]:
        return await self.store.get_policy(name)

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> tuple[float, float]:
        started = time.perf_counter()
        await self.store.update_policy(name, policy)
        return (started, time.perf_counter())

    async def wait_subscribed(self, channel: str, timeout: float) -> None:
        await self.observed.wait_subscribed_async(channel, timeout)

    async def _publish(self, channel: str, token: str) -> list[str] | None:
        return await publish_barrier(self._control, channel, token)

    def _settleable(self) -> ControlledPubSub | None:
        current = self.observed.current_pubsub
        if current is None or not current.started or current.closed or current.disconnected:
            return None
        return current

    async def settle(self, timeout: float) -> None:
        """Wait until the store processed every invalidation sent before this call.

        On its current subscription (a store that replaced its pubsub is
        settled on the new one: what the old one had not handed out is lost).
        Raises :class:`TimeoutError` with :meth:`whereabouts`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        signal = self.observed.signal
        try:
            while True:
                current = await signal.wait_until(
                    self._settleable, max(deadline - loop.time(), 0.0)
                )
                with contextlib.suppress(BarrierBroken):
                    await current.settle_async(self._publish, max(deadline - loop.time(), 0.0))
                    return
        except TimeoutError:
            raise TimeoutError(
                _messages.MEMBER_NOT_SETTLED.format(
                    label=self.label, timeout=timeout, where=self.whereabouts()
                )
            ) from None

    def _live(self, channel: str) -> bool:
        current = self.observed.current_pubsub
        return current is not None and not current.disconnected and current.listens_to(channel)

    async def wait_resubscribed(self, after: int, channel: str, timeout: float) -> float:
        observed = self.observed

        def check() -> float | None:
            if observed.subscriptions <= after or not self._live(channel):
                return None
            return time.perf_counter()

        try:
            # The signal fires on every pubsub() call, confirmation and lost
            # connection, so the moment returned is when the change was seen.
            return await observed.signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.NOT_RESUBSCRIBED.format(
                    label=self.label,
                    channel=channel,
                    timeout=timeout,
                    count=observed.subscriptions,
                    after=after,
                    state=self.subscription_state(),
                )
            ) from None

    async def wait_subscription_lost(self, channel: str, timeout: float) -> float:
        def check() -> float | None:
            return None if self._live(channel) else time.perf_counter()

        try:
            return await self.observed.signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.SUBSCRIPTION_KEPT.format(
                    label=self.label, channel=channel, timeout=timeout
                )
            ) from None

    def whereabouts(self) -> str:
        """Where the messages the last settle waited for are, in words: why it failed.

        Position-based: what arrived before the barrier and is not processed
        (held, waiting, taken and unfinished), never what the messages say.
        """
        current = self.observed.current_pubsub
        if current is None:
            return _messages.WHERE_NO_PUBSUB
        if current.closed:
            return _messages.WHERE_CLOSED.format(label=current.label)
        if current.disconnected:
            return _messages.WHERE_LOST.format(label=current.label)
        position = current.last_barrier
        if position is None:
            return _messages.WHERE_BARRIER_NOT_BACK.format(
                channels=sorted(current.confirmed_channels)
            )
        held, waiting, in_progress = current.backlog(position)
        if held:
            return _messages.WHERE_BACKLOG_HELD.format(count=held)
        if in_progress is not None:
            return _messages.WHERE_BACKLOG_NOT_FINISHED.format(data=in_progress.text[:40])
        if waiting:
            return _messages.WHERE_BACKLOG_NOT_TAKEN.format(count=waiting)
        return _messages.WHERE_BACKLOG_DONE

    def subscription_state(self) -> str:
        """The store's latest subscription, in words: why a wait for it failed."""
        current = self.observed.current_pubsub
        if current is None:
            return _messages.WHERE_NO_PUBSUB
        if current.closed:
            return _messages.SUBSCRIPTION_CLOSED.format(label=current.label)
        if current.disconnected:
            return _messages.SUBSCRIPTION_LOST.format(label=current.label)
        return _messages.SUBSCRIPTION_CHANNELS.format(
            channels=sorted(current.confirmed_channels) or "nothing"
        )

    def subscriptions(self) -> int:
        return self.observed.subscriptions

    def deliveries(self) -> tuple[Delivery, ...]:
        return self.observed.deliveries

    def storage_reads(self) -> int:
        return self.observed.storage_reads

    async def close(self) -> None:
        try:
            await self.store.close()
        finally:
            # Whatever the store left open: pumps would outlive the loop otherwise.
            await self.observed.close_pubsubs()
            await self.observed.aclose()
            if self._owns_control:
                await close_client(self._control)
