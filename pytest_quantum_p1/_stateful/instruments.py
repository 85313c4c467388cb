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

:class:`WireInstrument` is the same for a store of the URL form
(:class:`~pytest_quantum_p1.FromURL`), which builds its own client: one
:class:`~pytest_quantum_p1._wire.proxy.WireProxy` per instance, holding every
push from the start, holding a resubscription while the link is cut and one
command of an update for ``split_update``. What it cannot observe is idleness:
what a store did with a push is not on the wire (see the machine's docstring).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness import ControlledPubSub, Message, ObservedRedis
from pytest_quantum_p1._wire.records import INVALIDATE_CHANNEL, TRACKING, Tracking

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from pytest_quantum_p1._harness.portal import Signal
    from pytest_quantum_p1._wire.proxy import WireProxy
    from pytest_quantum_p1._wire.records import ConnectionState, FetchGate, WireDelivery

__all__ = ["CommandHold", "FetchHold", "MachinePubSub", "MachineRedis", "WireInstrument"]

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

    def take(self) -> bool:
        """Count one command; whether it is the one to hold (then :attr:`captured` is set)."""
        self.sent += 1
        if self.sent != self.after + 1 or self.released.is_set():
            return False
        self.captured.set()
        if self.on_capture is not None:
            self.on_capture()
        return True

    async def before(self, args: tuple[Any, ...]) -> None:
        """Count one command; hold it until :attr:`released` if it is the one to hold."""
        if self.take():
            await self.released.wait()


#: Commands that subscribe: held while the machine keeps an instance's link cut.
_SUBSCRIBE_COMMANDS = frozenset({"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"})
#: Commands a client sends to set up or keep up a connection, never as part of an
#: update: ``split_update`` does not count them (``CLIENT TRACKING`` included, so a
#: tracking connection's set-up is never held behind its reads).
_SETUP_COMMANDS = frozenset(
    {"HELLO", "AUTH", "SELECT", "CLIENT", "PING", "ECHO", "READONLY", "READWRITE", "RESET"}
)


class WireInstrument:
    """One instance of a URL-form store, seen and steered through its :class:`WireProxy`.

    The wire path's :class:`MachineRedis`: every push (pub/sub message or
    tracking invalidation) is held from before the store's first connection;
    while the link is cut (:meth:`cut_link`) the store's connections that
    subscribe or track are closed and a new ``SUBSCRIBE`` is held until
    :meth:`allow_link`; :attr:`command_gate` holds one command of an update
    before Redis sees it; :attr:`fetch_gate` holds one storage read's reply.
    ``channel`` is the store's invalidation channel; ``__redis__:invalidate``
    means "tracking invalidations", however they come (RESP3 push or RESP2
    redirect). A tracking connection that is also the store's data connection
    is cut but not kept down (holding its ``CLIENT TRACKING`` would hold its
    reads too).
    """

    def __init__(self, proxy: WireProxy, *, channel: str) -> None:
        self.proxy = proxy
        self.label = proxy.label
        #: What "listening" means for this store: its channel, or tracking invalidations.
        self.target: str | Tracking = TRACKING if channel == INVALIDATE_CHANNEL else channel
        #: Clear while the machine keeps this instance's link cut.
        self.link_allowed = asyncio.Event()
        self.link_allowed.set()
        self._gate: CommandHold | None = None
        #: Whether a subscription of the store was ever seen (a store that never
        #: subscribes is not waited for: it is found serving stale values).
        self.ever_listened = False
        proxy.hold()
        proxy.hold_commands(self._match)

    def _match(self, command: str, args: tuple[bytes, ...]) -> bool:
        if command in _SUBSCRIBE_COMMANDS:
            return not self.link_allowed.is_set()
        if command in _SETUP_COMMANDS:
            return False
        gate = self._gate
        return gate is not None and gate.take()

    # -- what the machine reads --------------------------------------------------

    @property
    def storage_reads(self) -> int:
        """Storage reads the store sent so far (counted on the wire)."""
        return self.proxy.storage_reads

    @property
    def signal(self) -> Signal:
        """Fires on every change the proxy sees."""
        return self.proxy.signal

    @property
    def held(self) -> tuple[WireDelivery, ...]:
        """Pushes held for this instance, oldest first."""
        return self.proxy.pending

    def _covers(self, state: ConnectionState) -> bool:
        if isinstance(self.target, Tracking):
            return state.gets_invalidations
        return state.listens_to(self.target)

    def listening(self) -> bool:
        """Whether an open connection of the store is confirmed on its channel (or tracking)."""
        now = any(state.open and self._covers(state) for state in self.proxy.connections)
        self.ever_listened = self.ever_listened or now
        return now

    def settled(self) -> bool:
        """Whether it listens, as far as the wire shows, if it should: its link is allowed."""
        return not (self.link_allowed.is_set() and self.ever_listened) or self.listening()

    async def wait_listening(self, timeout: float) -> bool:
        """Wait until :meth:`listening` (at most ``timeout`` seconds); whether it is."""
        try:
            await self.signal.wait_until(lambda: True if self.listening() else None, timeout)
        except TimeoutError:
            return False
        return True

    def whereabouts(self) -> str:
        """What the wire shows of this instance, in words (for a store that did not come back)."""
        return _messages.MACHINE_WIRE_WHERE.format(target=self.target, held=len(self.held))

    # -- what the machine steers ---------------------------------------------------

    @property
    def command_gate(self) -> CommandHold | None:
        """Holds one command of an update (``split_update``); ``None`` releases it."""
        return self._gate

    @command_gate.setter
    def command_gate(self, gate: CommandHold | None) -> None:
        self._gate = gate
        if gate is None:
            self._release(lambda command: command not in _SUBSCRIBE_COMMANDS)

    @property
    def fetch_gate(self) -> FetchGate | None:
        """Awaited after each storage read's reply (``slow_fetch``)."""
        return self.proxy.fetch_gate

    @fetch_gate.setter
    def fetch_gate(self, gate: FetchGate | None) -> None:
        self.proxy.fetch_gate = gate

    def _release(self, which: Callable[[str], bool]) -> None:
        for held in self.proxy.pending_commands:
            if which(held.command):
                held.release()

    def cut_link(self) -> int:
        """Close the store's subscribing connections and hold its next ``SUBSCRIBE``; how many."""
        self.link_allowed.clear()
        return self.proxy.disconnect(subscriptions_only=True)

    def allow_link(self) -> None:
        """Let held subscriptions through."""
        self.link_allowed.set()
        self._release(lambda command: command in _SUBSCRIBE_COMMANDS)
        self.signal.notify()

    def idle(self) -> bool:
        """Always true: idleness is not visible on the wire (reads are judged by serving)."""
        return True

    async def wait_idle(self, timeout: float) -> None:
        """Return at once: see :meth:`idle`."""

    async def close_pubsubs(self) -> None:
        """Nothing to close: the store's connections are its own."""

    async def aclose(self) -> None:
        """Close the proxy (every connection through it)."""
        await self.proxy.close_async()
