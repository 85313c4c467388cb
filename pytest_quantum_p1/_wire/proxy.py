"""The wire proxy: one store instance's Redis connections, seen and steered between it and Redis.

A store that builds its own client from a URL cannot be handed an observed
client, so the harness observes it on the wire instead: it gives the store
:attr:`WireProxy.url`, and the proxy forwards each connection the store opens to
the real Redis (fakeredis's TCP server or a private ``redis-server``), parsing
both directions (:mod:`.resp`). Any client library, RESP2 or RESP3, decoded or
not, is seen the same way. What it offers mirrors the client path
(:class:`~pytest_quantum_p1._harness.observed.ObservedRedis` and
:class:`~pytest_quantum_p1._harness.pubsub.ControlledPubSub`):

- storage reads counted when sent, by the client path's own classification
  (:data:`~pytest_quantum_p1._harness.observed.READ_COMMANDS`; inside
  ``MULTI``/``EXEC`` not counted, as on the client path), and their replies held
  (:meth:`WireProxy.hold_reads`, :class:`~.records.HeldReply`, :attr:`WireProxy.fetch_gate`);
  ``PUBLISH``/``SPUBLISH`` seen (:attr:`WireProxy.publishes`) and their
  acknowledgements gated (:attr:`WireProxy.publish_gate`,
  :meth:`WireProxy.hold_publishes`); any command held before Redis sees it
  (:meth:`WireProxy.hold_commands`, :class:`~.records.HeldCommand`);
- pushes, the instance's pub/sub messages and tracking invalidations (RESP3
  ``>`` pushes, RESP2 ``message`` arrays in subscribe mode, a RESP2 ``REDIRECT``
  connection's messages on ``__redis__:invalidate``), each a
  :class:`~.records.WireDelivery`: hold, release, deliver, drop, duplicate, inject;
- subscriptions as Redis confirmed them, per connection (:class:`~.records.ConnectionState`);
- :meth:`WireProxy.disconnect`: a lost link, optionally refusing new connections
  for a while; :meth:`WireProxy.barrier`: proof that every push Redis wrote on a
  connection before now has reached the proxy, without publishing anything.

Unlike the client path, the wire cannot tell a plain pipeline from separate
commands: reads in a non-transactional pipeline are counted. A publish inside
``MULTI``/``EXEC`` or a script is not seen, as on the client path. What a client
did with a push it was sent cannot be seen on the wire: a delivery ends at
:attr:`~.records.WireDelivery.forwarded_at`. Replies are matched to commands in order, so
``CLIENT REPLY OFF|SKIP`` and ``MONITOR`` are not understood (their bytes still
pass unchanged).

Threading is that of the pubsub module: the proxy belongs to one event loop (the
harness's portal loop); controller methods are safe from any thread, waits come
as ``wait_x()`` and ``await wait_x_async()``, and nothing sleeps to wait.

This module imports redis (through the client path's classification).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.observed import READ_COMMANDS
from pytest_quantum_p1._harness.portal import (
    LOOP_GRACE,
    Signal,
    await_on,
    block_on,
    owning_loop,
    run_soon,
)
from pytest_quantum_p1._harness.pubsub import as_text
from pytest_quantum_p1._wire.records import (
    INVALIDATE_CHANNEL,
    CommandMatch,
    ConnectionState,
    DeliveryHow,
    FetchGate,
    HeldCommand,
    HeldReply,
    Publish,
    PublishGate,
    PushKind,
    Tracking,
    TrackingState,
    WireDelivery,
    WireFault,
)
from pytest_quantum_p1._wire.resp import (
    Frame,
    Limits,
    RespError,
    RespParser,
    command,
    command_args,
    command_name,
    make,
    to_python,
)

__all__ = ["WireProxy"]

_SUBSCRIBE_KINDS: Final = frozenset({"subscribe", "psubscribe", "ssubscribe"})
_UNSUBSCRIBE_KINDS: Final = frozenset({"unsubscribe", "punsubscribe", "sunsubscribe"})
_CONFIRM_KINDS: Final = _SUBSCRIBE_KINDS | _UNSUBSCRIBE_KINDS
_DATA_KINDS: Final = frozenset({"message", "pmessage", "smessage"})
_DATA_KIND: Final[dict[str, PushKind]] = {k: k for k in ("message", "pmessage", "smessage")}
_BARRIER: Final = b"p1-wire-barrier"


# -- one connection's inner state ---------------------------------------------


@dataclass(eq=False)
class _Sent:
    """A command sent upstream whose reply has not come back yet."""

    name: str
    args: tuple[bytes, ...]
    role: str
    sent_at: float
    #: Subscription confirmations still expected (``None``: as many as there are subscriptions).
    confirmations: int | None = None
    answered: asyncio.Future[None] | None = None


@dataclass(eq=False)
class _Slot:
    """A reply in the order the client must get it; written once ready."""

    frame: Frame
    ready: bool = True


class _Link:
    """One client connection and its upstream twin."""

    def __init__(self, ident: int, client: asyncio.Transport, limits: Limits) -> None:
        self.id = ident
        self.client = client
        self.upstream: asyncio.Transport | None = None
        #: Client bytes (whole frames) that arrived before the upstream connection.
        self.early: list[bytes] = []
        #: Set when Redis cannot be reached: every command is answered with it.
        self.unreachable: Frame | None = None
        #: Frames behind a held command (the held one first), not yet sent on.
        self.waiting: deque[Frame] = deque()
        self.client_parser = RespParser("client", limits)
        self.server_parser = RespParser("server", limits)
        self.protocol = 2
        self.sent: deque[_Sent] = deque()
        self.out: deque[_Slot] = deque()
        self.channels: set[str] = set()
        self.patterns: set[str] = set()
        self.shard_channels: set[str] = set()
        self.subscription_count = 0
        self.tracking: TrackingState | None = None
        self.in_multi = False
        self.commands = 0
        self.opened_at = time.perf_counter()
        self.closed_at: float | None = None

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def state(self) -> ConnectionState:
        return ConnectionState(
            self.id,
            self.protocol,
            self.opened_at,
            self.closed_at,
            frozenset(self.channels),
            frozenset(self.patterns),
            frozenset(self.shard_channels),
            self.tracking,
            self.commands,
        )

    def subscriptions_of(self, kind: str) -> set[str]:
        if kind in ("psubscribe", "punsubscribe"):
            return self.patterns
        if kind in ("ssubscribe", "sunsubscribe"):
            return self.shard_channels
        return self.channels


def _tracking_state(args: tuple[bytes, ...]) -> TrackingState | None:
    # args: TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN] [OPTOUT] [NOLOOP]
    words = [a.upper() for a in args]
    if len(words) < 2 or words[1] != b"ON":
        return None
    redirect: int | None = None
    prefixes: list[bytes] = []
    options: set[str] = set()
    index = 2
    while index < len(words):
        word = words[index]
        if word in (b"REDIRECT", b"PREFIX") and index + 1 < len(args):
            if word == b"REDIRECT":
                redirect = int(args[index + 1])
            else:
                prefixes.append(args[index + 1])
            index += 2
            continue
        options.add(word.decode("ascii", "replace"))
        index += 1
    bcast = "BCAST" in options
    options.discard("BCAST")
    return TrackingState(bcast, redirect, tuple(prefixes), frozenset(options))


class _ClientSide(asyncio.Protocol):
    """A client's connection to the proxy."""

    def __init__(self, proxy: WireProxy) -> None:
        self.proxy = proxy
        self.link: _Link | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.link = self.proxy._accepted(transport)

    def data_received(self, data: bytes) -> None:
        if self.link is not None:
            self.proxy._client_data(self.link, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy._lost(self.link)

    # A client that does not read makes Redis wait, not the proxy's memory grow.
    def pause_writing(self) -> None:
        if self.link is not None and self.link.upstream is not None:
            self.link.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.link is not None and self.link.upstream is not None:
            self.link.upstream.resume_reading()


class _ServerSide(asyncio.Protocol):
    """The proxy's connection to Redis on behalf of one client connection."""

    def __init__(self, proxy: WireProxy, link: _Link) -> None:
        self.proxy = proxy
        self.link = link

    def data_received(self, data: bytes) -> None:
        self.proxy._server_data(self.link, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy._lost(self.link)

    def pause_writing(self) -> None:
        self.link.client.pause_reading()

    def resume_writing(self) -> None:
        self.link.client.resume_reading()


# -- the proxy -------------------------------------------------------------------


class WireProxy:
    """A RESP-aware TCP proxy for one store instance, between it and Redis.

    Give the store :attr:`url`; every connection it opens there is forwarded to
    ``upstream`` (``(host, port)``) byte for byte, and observed. Start it with
    :meth:`start` (or ``await start_async()``), end it with :meth:`close`.
    ``read_commands`` defaults to the client path's
    :data:`~pytest_quantum_p1._harness.observed.READ_COMMANDS`.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        label: str,
        db: int = 0,
        loop: asyncio.AbstractEventLoop | None = None,
        read_commands: Iterable[str] = READ_COMMANDS,
        limits: Limits | None = None,
    ) -> None:
        self.upstream = upstream
        self.label = label
        self.db = db
        self.loop = owning_loop(loop, "WireProxy")
        self.read_commands = frozenset(c.upper() for c in read_commands)
        self.limits = limits if limits is not None else Limits()
        #: Awaited after each acknowledged publish; see :data:`~.records.PublishGate`.
        self.publish_gate: PublishGate | None = None
        #: Awaited after each storage read's reply; see :data:`~.records.FetchGate`.
        self.fetch_gate: FetchGate | None = None
        self._signal = Signal()
        self._server: asyncio.Server | None = None
        self._port = 0
        self._closed = False
        self._ids = itertools.count(1)
        self._links: dict[int, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusing = False
        self._refusal: asyncio.TimerHandle | None = None
        self._refused = 0
        self._reads = 0
        self._by_command: Counter[str] = Counter()
        self._holding_reads = False
        self._holding_publishes = False
        self._held_replies: list[HeldReply] = []
        self._command_match: CommandMatch | None = None
        self._held_commands: list[HeldCommand] = []
        self._slots: dict[int, tuple[_Link, _Slot]] = {}
        self._publishes: list[Publish] = []
        self._faults: list[WireFault] = []
        self._holding = False
        self._received: list[WireDelivery] = []
        self._held: deque[WireDelivery] = deque()
        self._log: list[WireDelivery] = []
        self._dropped: list[WireDelivery] = []

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> str:
        """Listen on a free loopback port; return :attr:`url` (from a thread other than the loop's)."""
        return block_on(self.loop, self._start)

    async def start_async(self) -> str:
        """:meth:`start` from a coroutine on any loop."""
        return await await_on(self.loop, self._start)

    async def _start(self) -> str:
        if self._closed:
            raise RuntimeError(_messages.WIRE_CLOSED.format(label=self.label))
        if self._server is None:
            self._server = await self.loop.create_server(lambda: _ClientSide(self), "127.0.0.1", 0)
            self._port = self._server.sockets[0].getsockname()[1]
        return self.url

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/DB``: what the store is given instead of Redis's address."""
        if self._server is None:
            raise RuntimeError(_messages.WIRE_NOT_STARTED.format(label=self.label))
        return f"redis://127.0.0.1:{self._port}/{self.db}"

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)`` the proxy listens on."""
        if self._server is None:
            raise RuntimeError(_messages.WIRE_NOT_STARTED.format(label=self.label))
        return ("127.0.0.1", self._port)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Stop listening, cut every connection and wait for every task of the proxy to end."""
        block_on(self.loop, self._close)

    async def close_async(self) -> None:
        """:meth:`close` from a coroutine on any loop."""
        await await_on(self.loop, self._close)

    async def _close(self) -> None:
        self._closed = True
        if self._refusal is not None:
            self._refusal.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self._links.values()):
            self._cut(link)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        self._signal.notify()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        async def run() -> None:
            await coro

        task = self.loop.create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connections -----------------------------------------------------------

    # Protocols, not streams: each chunk is handled in the selector's callback,
    # without a task wake-up per hop (a third of a proxied round trip's cost).

    def _accepted(self, transport: asyncio.Transport) -> _Link | None:
        if self._closed or self._refusing:
            self._refused += 1
            transport.abort()
            self._signal.notify()
            return None
        link = _Link(next(self._ids), transport, self.limits)
        self._links[link.id] = link
        self._spawn(self._connect_upstream(link), f"{self.label} wire#{link.id} connect")
        self._signal.notify()
        return link

    async def _connect_upstream(self, link: _Link) -> None:
        host, port = self.upstream
        try:
            transport, _ = await self.loop.create_connection(
                lambda: _ServerSide(self, link), host, port
            )
        except OSError as exc:
            error = _messages.WIRE_UPSTREAM_UNREACHABLE.format(
                label=self.label, host=host, port=port, connection=link.id, error=exc
            )
            # Every command gets the error until the client leaves: it reads
            # why, rather than a reset (its set-up commands may ignore errors).
            link.unreachable = make("-", error.encode())
            for _ in link.early:
                self._write(link, link.unreachable.raw)
            link.early.clear()
            return
        if not link.open:  # cut while connecting
            transport.abort()
            return
        link.upstream = transport
        if link.early:
            transport.write(b"".join(link.early))
            link.early.clear()

    def _client_data(self, link: _Link, data: bytes) -> None:
        if not link.open:
            return
        try:
            frames = link.client_parser.feed(data)
        except RespError as exc:
            self._fault(link, "client", exc)
            reply = _messages.WIRE_PROTOCOL_ERROR_REPLY.format(reason=exc.reason)
            self._write(link, make("-", reply.encode()).raw)
            self._cut(link, abort=False)
            return
        if not frames:
            return
        if link.unreachable is not None:
            for frame in frames:
                if command_args(frame):
                    self._write(link, link.unreachable.raw)
            return
        if link.waiting:  # behind a held command
            link.waiting.extend(frames)
            return
        self._send_on(link, frames)

    def _send_on(self, link: _Link, frames: list[Frame], *, first_released: bool = False) -> None:
        sent: list[bytes] = []
        for index, frame in enumerate(frames):
            if self._command_match is not None and not (first_released and index == 0):
                args = command_args(frame)
                if args and self._command_match(command_name(frame), args[1:]):
                    self._hold_command(link, frame, args)
                    link.waiting.extend(frames[index:])
                    break
            self._from_client(link, frame)
            sent.append(frame.raw)
        if not sent:
            return
        raw = b"".join(sent)
        if link.upstream is None:
            link.early.append(raw)
        else:
            link.upstream.write(raw)

    def _hold_command(self, link: _Link, frame: Frame, args: tuple[bytes, ...]) -> None:
        held = HeldCommand(
            self.label,
            link.id,
            command_name(frame),
            args[1:],
            frame,
            time.perf_counter(),
            self.loop,
            self._command_released,
        )
        self._held_commands.append(held)
        link.client.pause_reading()  # what the client sends next waits in the kernel
        self._signal.notify()

    def _command_released(self, held: HeldCommand) -> None:
        if held in self._held_commands:
            self._held_commands.remove(held)
        link = self._links.get(held.connection)
        if link is not None and link.open and link.waiting:
            frames = list(link.waiting)
            link.waiting.clear()
            self._send_on(link, frames, first_released=True)
            if not link.waiting:
                link.client.resume_reading()
        self._signal.notify()

    def _server_data(self, link: _Link, data: bytes) -> None:
        if not link.open:
            return
        try:
            frames = link.server_parser.feed(data)
        except RespError as exc:
            self._fault(link, "server", exc)
            self._cut(link, abort=False)
            return
        now = time.perf_counter()
        for frame in frames:
            if link.open:
                self._from_server(link, frame, now)

    def _write(self, link: _Link, data: bytes) -> None:
        if link.open:
            link.client.write(data)

    def _cut(self, link: _Link, *, abort: bool = True) -> None:
        """End both sides of ``link``; its held pushes are lost, its held replies discarded."""
        if not link.open:
            return
        link.closed_at = time.perf_counter()
        for transport in (link.client, link.upstream):
            if transport is None:
                continue
            if abort:
                transport.abort()
            else:
                transport.close()
        lost = [d for d in self._held if d.connection == link.id]
        for delivery in lost:
            self._held.remove(delivery)
        self._dropped.extend(lost)
        for held in [h for h in self._held_replies if h.connection == link.id]:
            self._held_replies.remove(held)
            self._slots.pop(id(held), None)
        for command_held in [h for h in self._held_commands if h.connection == link.id]:
            self._held_commands.remove(command_held)
        link.waiting.clear()
        for sent in link.sent:
            if sent.answered is not None and not sent.answered.done():
                sent.answered.set_exception(ConnectionError(link.id))
                sent.answered.exception()  # retrieved: a barrier's waiter may be gone
        link.sent.clear()
        link.out.clear()
        self._signal.notify()

    def _lost(self, link: _Link | None) -> None:
        if link is not None:
            self._cut(link, abort=False)

    def _fault(self, link: _Link, side: Literal["client", "server"], error: RespError) -> None:
        self._faults.append(WireFault(self.label, link.id, side, error, time.perf_counter()))
        self._signal.notify()

    # -- client to server -------------------------------------------------------------

    def _from_client(self, link: _Link, frame: Frame) -> None:
        args = command_args(frame)
        if not args:
            return  # an empty inline command: Redis does not answer it
        name = command_name(frame)
        link.commands += 1
        sent = _Sent(name, args[1:], "other", time.perf_counter())
        if link.in_multi and name not in ("EXEC", "DISCARD", "MULTI"):
            sent.role = "queued"
        elif name in self.read_commands:
            sent.role = "read"
            self._reads += 1
            self._by_command[name] += 1
            self._signal.notify()
        elif name in ("PUBLISH", "SPUBLISH") and len(args) >= 3:
            sent.role = "publish"
        elif name.lower() in _CONFIRM_KINDS:
            sent.role = "subscribe"
            sent.confirmations = len(args) - 1 or None
        elif name == "MULTI":
            link.in_multi = True
        elif name in ("EXEC", "DISCARD"):
            link.in_multi = False
        elif name in ("HELLO", "RESET") or (
            name == "CLIENT" and len(args) > 1 and args[1].upper() == b"TRACKING"
        ):
            sent.role = name.lower()
        link.sent.append(sent)

    # -- server to client -----------------------------------------------------------------

    def _from_server(self, link: _Link, frame: Frame, now: float) -> None:
        if frame.kind in (">", "*"):
            kind = frame.first_text()
            if frame.kind == ">" or self._is_array_push(link, kind):
                if kind in _CONFIRM_KINDS:
                    self._confirmed(link, frame, kind)
                    link.out.append(_Slot(frame))
                    self._flush(link)
                elif kind in _DATA_KINDS or kind == "invalidate":
                    self._pushed(link, frame, kind, now)
                else:  # another push (e.g. a server notice): passes as it came
                    self._write(link, frame.raw)
                return
        sent = link.sent.popleft() if link.sent else None
        self._reply(link, sent, frame, now)

    def _is_array_push(self, link: _Link, kind: str) -> bool:
        # RESP2 sends pushes as arrays; so does fakeredis's TCP server in RESP3.
        if kind in _DATA_KINDS:
            return link.subscription_count > 0
        if kind in _CONFIRM_KINDS:
            head = link.sent[0] if link.sent else None
            return link.subscription_count > 0 or (head is not None and head.role == "subscribe")
        return False

    def _confirmed(self, link: _Link, frame: Frame, kind: str) -> None:
        items = frame.items
        name = items[1].value if len(items) > 1 else None
        count = items[2].value if len(items) > 2 else None
        target = link.subscriptions_of(kind)
        head = link.sent[0] if link.sent else None
        if head is not None and head.role == "subscribe" and head.name.lower() == kind:
            if head.confirmations is None:  # unsubscribe from all: one confirmation each
                head.confirmations = max(1, len(target))
            head.confirmations -= 1
            if head.confirmations <= 0:
                link.sent.popleft()
        if isinstance(name, bytes):
            if kind in _SUBSCRIBE_KINDS:
                target.add(as_text(name))
            else:
                target.discard(as_text(name))
        if isinstance(count, int):
            link.subscription_count = count
        self._signal.notify()

    def _reply(self, link: _Link, sent: _Sent | None, frame: Frame, now: float) -> None:
        slot = _Slot(frame)
        role = sent.role if sent is not None else "other"
        if sent is not None and role == "barrier":
            if sent.answered is not None and not sent.answered.done():
                sent.answered.set_result(None)
            return  # the harness's own command: the client never sees it
        if sent is not None and role == "read" and not frame.is_error:
            if self._holding_reads:
                self._hold_reply(link, sent, slot, now)
            elif self.fetch_gate is not None:
                slot.ready = False
                gate = self.fetch_gate(sent.name, sent.args, frame)
                self._spawn(self._after_gate(link, slot, gate), f"{self.label} fetch gate")
        elif sent is not None and role == "publish":
            self._published(link, sent, slot, now)
        elif not frame.is_error and sent is not None:
            self._state_reply(link, sent)
        link.out.append(slot)
        self._flush(link)

    def _state_reply(self, link: _Link, sent: _Sent) -> None:
        if sent.role == "hello" and sent.args:
            with contextlib.suppress(ValueError):
                link.protocol = int(sent.args[0])
        elif sent.role == "client":
            link.tracking = _tracking_state(sent.args)
        elif sent.role == "reset":
            link.protocol = 2
            link.tracking = None
            link.in_multi = False
            link.subscription_count = 0
            for target in (link.channels, link.patterns, link.shard_channels):
                target.clear()
        else:
            return
        self._signal.notify()

    def _hold_reply(self, link: _Link, sent: _Sent, slot: _Slot, now: float) -> None:
        slot.ready = False
        held = HeldReply(
            self.label, link.id, sent.name, sent.args, slot.frame, now, self.loop, self._unheld
        )
        self._slots[id(held)] = (link, slot)
        self._held_replies.append(held)
        self._signal.notify()

    def _unheld(self, held: HeldReply) -> None:
        if held in self._held_replies:
            self._held_replies.remove(held)
        link, slot = self._slots.pop(id(held), (None, None))
        if link is not None and slot is not None:
            slot.ready = True
            self._flush(link)
        self._signal.notify()

    def _published(self, link: _Link, sent: _Sent, slot: _Slot, now: float) -> None:
        receivers = slot.frame.value if isinstance(slot.frame.value, int) else None
        channel, message = (*sent.args, b"", b"")[:2]
        self._publishes.append(
            Publish(link.id, sent.name, channel, message, sent.sent_at, now, receivers)
        )
        self._signal.notify()
        if slot.frame.is_error:
            return
        if self._holding_publishes:
            self._hold_reply(link, sent, slot, now)
        elif self.publish_gate is not None:
            slot.ready = False
            gate = self.publish_gate(channel, message, receivers)
            self._spawn(self._after_gate(link, slot, gate), f"{self.label} publish gate")

    async def _after_gate(self, link: _Link, slot: _Slot, gate: Awaitable[None]) -> None:
        try:
            await gate
        finally:
            slot.ready = True
            if link.open:
                self._flush(link)

    def _flush(self, link: _Link) -> None:
        if not link.open:
            return
        out = link.out
        while out and out[0].ready:
            link.client.write(out.popleft().frame.raw)

    # -- pushes --------------------------------------------------------------------

    def _pushed(self, link: _Link, frame: Frame, kind: str, now: float) -> None:
        items = frame.items
        pattern: str | None = None
        push_kind: PushKind
        if kind == "invalidate":
            push_kind, channel = "invalidate", INVALIDATE_CHANNEL
            data = to_python(items[1]) if len(items) > 1 else None
        else:
            offset = 1 if kind == "pmessage" else 0
            if offset:
                pattern = as_text(items[1].value) if len(items) > 1 else None
            channel = as_text(items[1 + offset].value) if len(items) > 1 + offset else ""
            raw = items[2 + offset] if len(items) > 2 + offset else None
            data = to_python(raw) if raw is not None else None
            push_kind = "invalidate" if channel == INVALIDATE_CHANNEL else _DATA_KIND[kind]
        delivery = WireDelivery(self.label, link.id, push_kind, channel, data, pattern, frame, now)
        self._received.append(delivery)
        if self._holding:
            self._held.append(delivery)
        else:
            self._forward(delivery, "passed")
        self._signal.notify()

    def _forward(self, delivery: WireDelivery, how: DeliveryHow) -> None:
        link = self._links.get(delivery.connection)
        if link is None or not link.open:
            self._dropped.append(delivery)
            return
        link.client.write(delivery.frame.raw)
        delivery.forwarded_at = time.perf_counter()
        delivery.how = how
        self._log.append(delivery)

    # -- the controller's side: reads and publishes (any thread) ---------------------------

    @property
    def signal(self) -> Signal:
        """Fires on every change of the proxy's state; wait on it on :attr:`loop`."""
        return self._signal

    @property
    def storage_reads(self) -> int:
        """Storage reads the clients sent so far."""
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

    @property
    def publishes(self) -> tuple[Publish, ...]:
        """Every acknowledged ``PUBLISH``/``SPUBLISH``, in order."""
        return run_soon(self.loop, lambda: tuple(self._publishes))

    def hold_reads(self) -> None:
        """Hold the reply of every later storage read until released."""
        run_soon(self.loop, setattr, self, "_holding_reads", True)

    def hold_publishes(self) -> None:
        """Hold the acknowledgement of every later publish until released."""
        run_soon(self.loop, setattr, self, "_holding_publishes", True)

    def release_reads(self) -> None:
        """Stop holding reads and release every held read reply."""
        run_soon(self.loop, self._release_replies, "read")

    def release_publishes(self) -> None:
        """Stop holding publishes and release every held acknowledgement."""
        run_soon(self.loop, self._release_replies, "publish")

    def _release_replies(self, what: str) -> None:
        if what == "read":
            self._holding_reads = False
        else:
            self._holding_publishes = False
        for held in self._pending_replies(what):
            held.release()

    @property
    def holding_reads(self) -> bool:
        """Whether :meth:`hold_reads` is in force."""
        return self._holding_reads

    @property
    def holding_publishes(self) -> bool:
        """Whether :meth:`hold_publishes` is in force."""
        return self._holding_publishes

    def hold_commands(self, match: CommandMatch) -> None:
        """Hold every later client command ``match(command, args)`` accepts, before Redis sees it.

        What the client sends after a held command on the same connection waits
        behind it (a connection's commands keep their order); other
        connections go on. See :attr:`pending_commands`.
        """
        run_soon(self.loop, setattr, self, "_command_match", match)

    def release_commands(self) -> None:
        """Stop holding commands and send on every held one."""
        run_soon(self.loop, self._release_commands)

    def _release_commands(self) -> None:
        self._command_match = None
        for held in list(self._held_commands):
            held.release()

    @property
    def pending_commands(self) -> tuple[HeldCommand, ...]:
        """Held client commands, oldest first."""
        return run_soon(self.loop, lambda: tuple(self._held_commands))

    def wait_pending_commands(
        self, count: int = 1, timeout: float = 5.0
    ) -> tuple[HeldCommand, ...]:
        """Block until at least ``count`` client commands are held; return them."""
        return block_on(
            self.loop, self._wait_commands, count, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_pending_commands_async(
        self, count: int = 1, timeout: float = 5.0
    ) -> tuple[HeldCommand, ...]:
        """Wait until at least ``count`` client commands are held; return them."""
        return await await_on(self.loop, self._wait_commands, count, timeout)

    async def _wait_commands(self, count: int, timeout: float) -> tuple[HeldCommand, ...]:
        def check() -> tuple[HeldCommand, ...] | None:
            held = tuple(self._held_commands)
            return held if len(held) >= count else None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WIRE_WAIT_REPLIES_TIMED_OUT.format(
                    label=self.label,
                    pending=len(self._held_commands),
                    what="command",
                    timeout=timeout,
                    count=count,
                )
            ) from None

    @property
    def pending_reads(self) -> tuple[HeldReply, ...]:
        """Held storage-read replies, oldest first."""
        return run_soon(self.loop, self._pending_replies, "read")

    @property
    def pending_publishes(self) -> tuple[HeldReply, ...]:
        """Held publish acknowledgements, oldest first."""
        return run_soon(self.loop, self._pending_replies, "publish")

    def _pending_replies(self, what: str) -> tuple[HeldReply, ...]:
        publish = what == "publish"
        return tuple(
            h for h in self._held_replies if (h.command in ("PUBLISH", "SPUBLISH")) == publish
        )

    def wait_pending_reads(self, count: int = 1, timeout: float = 5.0) -> tuple[HeldReply, ...]:
        """Block until at least ``count`` read replies are held; return them."""
        return block_on(
            self.loop, self._wait_replies, "read", count, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_pending_reads_async(
        self, count: int = 1, timeout: float = 5.0
    ) -> tuple[HeldReply, ...]:
        """Wait until at least ``count`` read replies are held; return them."""
        return await await_on(self.loop, self._wait_replies, "read", count, timeout)

    def wait_pending_publishes(self, count: int = 1, timeout: float = 5.0) -> tuple[HeldReply, ...]:
        """Block until at least ``count`` publish acknowledgements are held; return them."""
        return block_on(
            self.loop, self._wait_replies, "publish", count, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_pending_publishes_async(
        self, count: int = 1, timeout: float = 5.0
    ) -> tuple[HeldReply, ...]:
        """Wait until at least ``count`` publish acknowledgements are held; return them."""
        return await await_on(self.loop, self._wait_replies, "publish", count, timeout)

    async def _wait_replies(self, what: str, count: int, timeout: float) -> tuple[HeldReply, ...]:
        def check() -> tuple[HeldReply, ...] | None:
            held = self._pending_replies(what)
            return held if len(held) >= count else None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WIRE_WAIT_REPLIES_TIMED_OUT.format(
                    label=self.label,
                    pending=len(self._pending_replies(what)),
                    what=what,
                    timeout=timeout,
                    count=count,
                )
            ) from None

    # -- the controller's side: pushes (any thread) -----------------------------------------

    @property
    def holding(self) -> bool:
        """Whether pushes are held (see :meth:`hold`)."""
        return self._holding

    @property
    def received(self) -> tuple[WireDelivery, ...]:
        """Every push Redis sent this instance's connections, in arrival order."""
        return run_soon(self.loop, lambda: tuple(self._received))

    @property
    def deliveries(self) -> tuple[WireDelivery, ...]:
        """Every push written to a client (passed, released, duplicated, injected), in order."""
        return run_soon(self.loop, lambda: tuple(self._log))

    @property
    def pending(self) -> tuple[WireDelivery, ...]:
        """Held pushes, oldest first."""
        return run_soon(self.loop, lambda: tuple(self._held))

    @property
    def dropped(self) -> tuple[WireDelivery, ...]:
        """Pushes removed by :meth:`drop` or lost with their connection."""
        return run_soon(self.loop, lambda: tuple(self._dropped))

    def hold(self) -> None:
        """Hold every later push until :meth:`deliver`/:meth:`drop`/:meth:`release`."""
        run_soon(self.loop, setattr, self, "_holding", True)

    def release(self) -> int:
        """Back to pass-through, forwarding everything held; returns how many."""
        return run_soon(self.loop, self._release)

    def _release(self) -> int:
        self._holding = False
        count = len(self._held)
        while self._held:
            self._forward(self._held.popleft(), "released")
        self._signal.notify()
        return count

    def deliver(self, n: int = 1) -> tuple[WireDelivery, ...]:
        """Forward the ``n`` oldest held pushes; returns them."""
        return run_soon(self.loop, self._deliver, n, False)

    def duplicate(self, n: int = 1) -> tuple[WireDelivery, ...]:
        """Forward copies of the ``n`` oldest held pushes, keeping them held; returns the copies."""
        return run_soon(self.loop, self._deliver, n, True)

    def _deliver(self, n: int, copy: bool) -> tuple[WireDelivery, ...]:
        taken = self._take(n, "duplicate" if copy else "deliver")
        done = []
        for delivery in taken:
            if copy:
                twin = WireDelivery(
                    self.label,
                    delivery.connection,
                    delivery.kind,
                    delivery.channel,
                    delivery.data,
                    delivery.pattern,
                    delivery.frame,
                    delivery.received_at,
                )
                self._forward(twin, "duplicate")
                done.append(twin)
            else:
                self._forward(delivery, "released")
                done.append(delivery)
        if copy:
            self._held.extendleft(reversed(taken))
        self._signal.notify()
        return tuple(done)

    def drop(self, n: int = 1) -> tuple[WireDelivery, ...]:
        """Discard the ``n`` oldest held pushes: the client never sees them."""
        return run_soon(self.loop, self._drop, n)

    def _drop(self, n: int) -> tuple[WireDelivery, ...]:
        taken = self._take(n, "drop")
        self._dropped.extend(taken)
        self._signal.notify()
        return tuple(taken)

    def _take(self, n: int, verb: str) -> list[WireDelivery]:
        if n < 0:
            raise ValueError(_messages.WIRE_TAKE_NEGATIVE.format(verb=verb, n=n))
        if n > len(self._held):
            raise ValueError(
                _messages.WIRE_TAKE_TOO_MANY.format(
                    label=self.label, verb=verb, n=n, held=len(self._held)
                )
            )
        return [self._held.popleft() for _ in range(n)]

    def inject(
        self,
        data: bytes | str | list[bytes] | Frame,
        *,
        channel: str | Tracking | None = None,
        connection: int | None = None,
    ) -> WireDelivery:
        """Write a push Redis never sent to a subscription connection; bypasses :meth:`hold`.

        ``data`` is message data, a list of keys for an invalidation
        (``channel=TRACKING``), or a ready :class:`~.resp.Frame` written as is.
        The connection is ``connection``, else the newest open one listening to
        ``channel`` (or getting invalidations), else the newest subscription one.
        The message is encoded for that connection's protocol.
        """
        return run_soon(self.loop, self._inject, data, channel, connection)

    def _inject(
        self,
        data: bytes | str | list[bytes] | Frame,
        channel: str | Tracking | None,
        connection: int | None,
    ) -> WireDelivery:
        link = self._injection_target(channel, connection)
        now = time.perf_counter()
        if isinstance(data, Frame):
            frame = data
            kind = frame.first_text()
            push_kind: PushKind = "invalidate" if kind == "invalidate" else "message"
            name = INVALIDATE_CHANNEL if push_kind == "invalidate" else ""
            value: object = to_python(frame)
        else:
            payload = data.encode() if isinstance(data, str) else data
            frame, push_kind, name = self._injected_frame(link, payload, channel)
            value = payload
        delivery = WireDelivery(self.label, link.id, push_kind, name, value, None, frame, now)
        self._forward(delivery, "injected")
        self._signal.notify()
        return delivery

    def _injected_frame(
        self, link: _Link, payload: bytes | list[bytes], channel: str | Tracking | None
    ) -> tuple[Frame, PushKind, str]:
        kind = ">" if link.protocol == 3 else "*"
        if isinstance(payload, list):
            keys = make("*", tuple(make("$", key) for key in payload))
        else:
            keys = make("$", payload)
        tracking = isinstance(channel, Tracking)
        if tracking and link.protocol == 3 and INVALIDATE_CHANNEL not in link.channels:
            return make(">", (make("$", b"invalidate"), keys)), "invalidate", INVALIDATE_CHANNEL
        if tracking:
            name = INVALIDATE_CHANNEL
        elif isinstance(channel, str):
            name = channel
        else:
            name = min(link.channels, default="")
        frame = make(kind, (make("$", b"message"), make("$", name.encode()), keys))
        return frame, "invalidate" if name == INVALIDATE_CHANNEL else "message", name

    def _injection_target(self, channel: str | Tracking | None, connection: int | None) -> _Link:
        candidates = [link for link in self._links.values() if link.open]
        if connection is not None:
            candidates = [link for link in candidates if link.id == connection]
        elif channel is not None:
            candidates = [link for link in candidates if self._covers(link.state(), channel)]
        else:
            candidates = [link for link in candidates if link.state().subscribed]
        if not candidates:
            what = "" if channel is None else self._describe(channel)
            raise LookupError(_messages.WIRE_NO_CONNECTION.format(label=self.label, what=what))
        return candidates[-1]

    # -- the controller's side: connections (any thread) -------------------------------

    @property
    def connections(self) -> tuple[ConnectionState, ...]:
        """Every connection accepted so far (closed ones included), oldest first."""
        return run_soon(self.loop, lambda: tuple(link.state() for link in self._links.values()))

    @property
    def open_connections(self) -> int:
        """Connections that still hold."""
        return sum(1 for link in list(self._links.values()) if link.open)

    @property
    def refused(self) -> int:
        """Connections refused while :meth:`disconnect` refused new ones."""
        return self._refused

    @property
    def faults(self) -> tuple[WireFault, ...]:
        """Peers that sent bytes that are not RESP, oldest first."""
        return run_soon(self.loop, lambda: tuple(self._faults))

    def disconnect(
        self, *, subscriptions_only: bool = False, refuse_for: float | None = None
    ) -> int:
        """Cut this instance's connections (or only its subscription ones); returns how many.

        The client's next or pending read fails with a connection error; held
        pushes of those connections are lost (see :attr:`dropped`). With
        ``refuse_for``, new connections are refused for that many seconds (a
        link that stays down); :meth:`accept` ends that early.
        """
        return run_soon(self.loop, self._disconnect, subscriptions_only, refuse_for)

    def _disconnect(self, subscriptions_only: bool, refuse_for: float | None) -> int:
        cut = 0
        for link in list(self._links.values()):
            if link.open and (not subscriptions_only or link.state().subscribed):
                self._cut(link)
                cut += 1
        if refuse_for is not None:
            self._refusing = True
            if self._refusal is not None:
                self._refusal.cancel()
            self._refusal = self.loop.call_later(refuse_for, self._accept)
        return cut

    def accept(self) -> None:
        """Accept new connections again (ends a ``refuse_for`` early)."""
        run_soon(self.loop, self._accept)

    def _accept(self) -> None:
        self._refusing = False
        if self._refusal is not None:
            self._refusal.cancel()
            self._refusal = None
        self._signal.notify()

    @property
    def refusing(self) -> bool:
        """Whether new connections are refused."""
        return self._refusing

    def _covers(self, state: ConnectionState, target: str | Tracking) -> bool:
        if isinstance(target, Tracking):
            return state.gets_invalidations
        return state.listens_to(target)

    def _describe(self, target: str | Tracking) -> str:
        if isinstance(target, Tracking):
            return _messages.WIRE_TRACKING
        return _messages.WIRE_SUBSCRIBED_TO.format(channel=target)

    def _subscribed(self, target: str | Tracking) -> ConnectionState | None:
        for link in reversed(list(self._links.values())):
            state = link.state()
            if link.open and self._covers(state, target):
                return state
        return None

    def wait_subscribed(self, target: str | Tracking, timeout: float = 5.0) -> ConnectionState:
        """Block until an open connection is confirmed on ``target`` (a channel, or :data:`~.records.TRACKING`)."""
        return block_on(
            self.loop, self._wait_subscribed, target, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_subscribed_async(
        self, target: str | Tracking, timeout: float = 5.0
    ) -> ConnectionState:
        """Wait until an open connection is confirmed on ``target``; return its state."""
        return await await_on(self.loop, self._wait_subscribed, target, timeout)

    async def _wait_subscribed(self, target: str | Tracking, timeout: float) -> ConnectionState:
        try:
            return await self._signal.wait_until(lambda: self._subscribed(target), timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WIRE_WAIT_SUBSCRIBED_TIMED_OUT.format(
                    label=self.label,
                    what=self._describe(target),
                    timeout=timeout,
                    state=[link.state() for link in self._links.values()],
                )
            ) from None

    def wait_connections(self, count: int, timeout: float = 5.0) -> int:
        """Block until at least ``count`` connections are open; return how many are."""
        return block_on(
            self.loop, self._wait_connections, count, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_connections_async(self, count: int, timeout: float = 5.0) -> int:
        """Wait until at least ``count`` connections are open; return how many are."""
        return await await_on(self.loop, self._wait_connections, count, timeout)

    async def _wait_connections(self, count: int, timeout: float) -> int:
        def check() -> int | None:
            return self.open_connections if self.open_connections >= count else None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WIRE_WAIT_CONNECTIONS_TIMED_OUT.format(
                    label=self.label, open=self.open_connections, timeout=timeout, count=count
                )
            ) from None

    # -- waits on pushes ---------------------------------------------------------------

    def wait_pending(self, count: int = 1, timeout: float = 5.0) -> tuple[WireDelivery, ...]:
        """Block until at least ``count`` pushes are held; return them."""
        return block_on(self.loop, self._wait_pending, count, timeout, timeout=timeout + LOOP_GRACE)

    async def wait_pending_async(
        self, count: int = 1, timeout: float = 5.0
    ) -> tuple[WireDelivery, ...]:
        """Wait until at least ``count`` pushes are held; return them."""
        return await await_on(self.loop, self._wait_pending, count, timeout)

    async def _wait_pending(self, count: int, timeout: float) -> tuple[WireDelivery, ...]:
        def check() -> tuple[WireDelivery, ...] | None:
            return tuple(self._held) if len(self._held) >= count else None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            hint = "" if self._holding else _messages.WIRE_WAIT_PENDING_NOT_HOLDING
            raise TimeoutError(
                _messages.WIRE_WAIT_PENDING_TIMED_OUT.format(
                    label=self.label, held=len(self._held), timeout=timeout, count=count, hint=hint
                )
            ) from None

    def wait_delivered(
        self, match: str | bytes | Callable[[WireDelivery], bool], timeout: float = 5.0
    ) -> WireDelivery:
        """Block until a push matching ``match`` (its data, or a predicate) was forwarded."""
        return block_on(
            self.loop, self._wait_delivered, match, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_delivered_async(
        self, match: str | bytes | Callable[[WireDelivery], bool], timeout: float = 5.0
    ) -> WireDelivery:
        """Wait until a push matching ``match`` was forwarded; return it."""
        return await await_on(self.loop, self._wait_delivered, match, timeout)

    async def _wait_delivered(
        self, match: str | bytes | Callable[[WireDelivery], bool], timeout: float
    ) -> WireDelivery:
        if callable(match):
            predicate = match
        else:
            text = as_text(match)

            def predicate(delivery: WireDelivery) -> bool:
                return delivery.text == text

        def check() -> WireDelivery | None:
            return next((d for d in self._log if predicate(d)), None)

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WIRE_WAIT_DELIVERED_TIMED_OUT.format(
                    label=self.label, match=match, timeout=timeout, count=len(self._log)
                )
            ) from None

    # -- the barrier -------------------------------------------------------------------

    def barrier(self, timeout: float = 5.0) -> int:
        """Block until every push Redis wrote on a subscription connection before now reached the proxy.

        Sends a ``PING`` of the harness's own on each open subscription
        connection and waits for each answer, which Redis writes after every
        earlier push on that connection; the answers are not forwarded.
        Nothing is published. Returns how many connections answered.
        """
        return block_on(self.loop, self._barrier, timeout, timeout=timeout + LOOP_GRACE)

    async def barrier_async(self, timeout: float = 5.0) -> int:
        """:meth:`barrier` from a coroutine on any loop."""
        return await await_on(self.loop, self._barrier, timeout)

    async def _barrier(self, timeout: float) -> int:
        answers: list[tuple[int, asyncio.Future[None]]] = []
        for link in list(self._links.values()):
            if not link.open or not link.state().subscribed or link.upstream is None:
                continue
            if link.in_multi:
                raise RuntimeError(
                    _messages.WIRE_BARRIER_IN_TRANSACTION.format(
                        label=self.label, connection=link.id
                    )
                )
            answered: asyncio.Future[None] = self.loop.create_future()
            link.sent.append(
                _Sent("PING", (_BARRIER,), "barrier", time.perf_counter(), answered=answered)
            )
            link.upstream.write(command("PING", _BARRIER).raw)
            answers.append((link.id, answered))
        for connection, answered in answers:
            try:
                async with asyncio.timeout(timeout):
                    await answered
            except TimeoutError:
                raise TimeoutError(
                    _messages.WIRE_BARRIER_TIMED_OUT.format(
                        label=self.label, connection=connection, timeout=timeout
                    )
                ) from None
            except ConnectionError:
                continue  # cut meanwhile: nothing more can arrive on it
        return len(answers)

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not listening"
        return (
            f"<WireProxy {self.label} {where} -> {self.upstream[0]}:{self.upstream[1]} "
            f"open={self.open_connections} storage_reads={self._reads}>"
        )
