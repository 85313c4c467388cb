"""The Redis each store instance gets in the machine: every message held, idleness observable.

:class:`MachineRedis` is the harness's :class:`~pytest_quantum_p1._harness.ObservedRedis`
whose pubsubs (:class:`MachinePubSub`) hold every message from the start, hold a
resubscription while the machine keeps the link cut, and know whether their store
is *idle* (its listener waits in ``get_message`` with nothing left to take).
:class:`FetchHold` holds one storage read's result, for ``slow_fetch``;
:class:`CommandHold` holds a store's command before it is sent, for
``split_update`` (between the storage write and the publish of an update, in
whichever order the store sends them). They extend the harness through its
public hooks only (``wrap_pubsub``, ``before_subscribe``, ``signal``,
``fetch_gate``) and redis-py's public ``execute_command``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness import ControlledPubSub, Message, ObservedRedis

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["CommandHold", "FetchHold", "MachinePubSub", "MachineRedis"]

#: Where a client keeps its own ``execute_command`` once :class:`MachineRedis` wrapped it.
_UNHOOKED = "_p1_unhooked"


class MachinePubSub(ControlledPubSub):
    """A ControlledPubSub that also knows whether its store is done reacting.

    The machine must not start the next step while a store is still handling
    something, or the outcome would depend on scheduling. So this records which
    task consumes the subscription and whether it is waiting in
    ``get_message`` with nothing left to take; and it holds a resubscription
    until the machine's ``reconnect`` step.
    """

    def __init__(self, pubsub: PubSub, *, owner: MachineRedis, **kwargs: Any) -> None:
        super().__init__(pubsub, **kwargs)
        self._owner = owner
        self.consumer: asyncio.Task[Any] | None = None
        #: Whether the consumer task sits in get_message() right now.
        self.in_get_message = False
        #: Whether a subscription waits at the cut link.
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
        """Neither cut nor closed."""
        return not (self.cut or self.closed)

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
            return _messages.MACHINE_WHERE_CUT
        if not self.all_confirmed:
            return _messages.MACHINE_WHERE_UNCONFIRMED
        if consumer is None:
            return _messages.MACHINE_WHERE_NO_READER
        current = self.in_progress
        if current is not None:
            return _messages.MACHINE_WHERE_HANDLING.format(data=current.data)
        if self.waiting:
            return _messages.MACHINE_WHERE_WAITING.format(count=self.waiting)
        return _messages.MACHINE_WHERE_BUSY

    def held_texts(self) -> list[str]:
        """The held messages' data as text, oldest first."""
        return list(self.pending_texts)


class MachineRedis(ObservedRedis):
    """An ObservedRedis whose pubsubs hold every message from the start.

    It also routes every command the store sends through the client (not a
    pipeline's, not a pubsub's) through :attr:`command_gate`: redis-py's
    command methods (``set``, ``publish`` ...) all call the client's own
    ``execute_command``, so the gate is installed on the client it wraps,
    which the machine made for this instance alone.
    """

    def __init__(self, client: Redis, *, label: str) -> None:
        super().__init__(client, label=label)
        #: Clear while the machine keeps this instance's link cut.
        self.link_allowed = asyncio.Event()
        self.link_allowed.set()
        #: Awaited before each command is sent; ``None``: commands pass.
        self.command_gate: CommandHold | None = None
        # A client may serve one example after another (SharedClients): the
        # gate wraps its own method once, and this proxy's gate is the one asked.
        send = getattr(client, _UNHOOKED, None)
        if send is None:
            send = client.execute_command
            setattr(client, _UNHOOKED, send)

        async def execute_command(*args: Any, **options: Any) -> Any:
            gate = self.command_gate
            if gate is not None:
                await gate.before(args)
            return await send(*args, **options)

        client.execute_command = execute_command  # type: ignore[method-assign]

    def cut_link(self) -> None:
        """Hold any new subscription until :meth:`allow_link`."""
        self.link_allowed.clear()

    def allow_link(self) -> None:
        """Let held subscriptions proceed."""
        self.link_allowed.set()
        for ps in self.machine_pubsubs:
            # Not "idle at the gate" any more, although the store's task
            # has not resumed yet: the machine must wait for it.
            ps.gated = False
        self.signal.notify()

    def wrap_pubsub(self, pubsub: PubSub, **options: Any) -> ControlledPubSub:
        controlled = MachinePubSub(pubsub, owner=self, **options)
        # Before the first SUBSCRIBE, so no message can reach the store unheld.
        controlled.hold()
        return controlled

    @property
    def machine_pubsubs(self) -> tuple[MachinePubSub, ...]:
        """Every pubsub the store created, oldest first."""
        return tuple(ps for ps in self.pubsubs if isinstance(ps, MachinePubSub))

    @property
    def machine_pubsub(self) -> MachinePubSub | None:
        """The store's latest pubsub, or ``None``."""
        current = self.current_pubsub
        return current if isinstance(current, MachinePubSub) else None

    def idle(self) -> bool:
        """Whether the store has nothing left to do with its latest subscription."""
        current = self.machine_pubsub
        return current is None or current.idle()

    async def wait_idle(self, timeout: float) -> None:
        """Return once :meth:`idle`; :class:`TimeoutError` after ``timeout`` seconds."""
        await self.signal.wait_until(lambda: True if self.idle() else None, timeout)


class FetchHold:
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


class CommandHold:
    """Holds a store's command before it is sent: the ``(after + 1)``-th one while armed.

    ``after`` commands pass; the next waits until :attr:`released` is set, and
    :attr:`captured` says that one is waiting. With ``after=1`` an update that
    writes and publishes in two commands is held between them, whichever it
    sends first; an update sent as one command (a transaction, a script) is
    never held, as nothing can come between its parts.
    """

    def __init__(self, after: int, *, on_capture: Callable[[], None] | None = None) -> None:
        self.after = after
        self.on_capture = on_capture
        self.sent = 0
        self.captured = asyncio.Event()
        self.released = asyncio.Event()

    async def before(self, args: tuple[Any, ...]) -> None:
        """Count one command; hold it if it is the one to hold."""
        self.sent += 1
        if self.sent != self.after + 1 or self.released.is_set():
            return
        self.captured.set()
        if self.on_capture is not None:
            self.on_capture()
        await self.released.wait()
