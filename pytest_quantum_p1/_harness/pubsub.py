"""Pub/sub control: the subscription a store reads, seen and steered by the harness.

:class:`ControlledPubSub` is what :meth:`~pytest_quantum_p1._harness.observed.ObservedRedis.pubsub`
hands a store instead of the real ``redis.asyncio`` PubSub. Through it the
harness sees every invalidation message the store takes (a :class:`Delivery`
each, processed once the store comes back for the next), and can hold, deliver,
drop, duplicate or inject messages, and cut the connection. Nothing is asked of
the store beyond reading with ``get_message()``/``listen()``/``run()`` and
handling one message before asking for the next. The harness never publishes
on the store's channel: it settles with a barrier on a channel of its own on
the same connection (see :meth:`ControlledPubSub.barrier_async`), so any
message format works.

Threading: a pubsub belongs to the event loop it was created on (the store's).
The controller-side methods are safe to call from any thread: the non-blocking
ones (``hold()``, ``deliver()``, ``disconnect()``, properties ...) run on the
owning loop and return at once; the waiting ones come as ``wait_x()`` (blocks
the calling thread) and ``await wait_x_async()`` (from a coroutine on any loop).
Nothing sleeps: waits are woken by the events they wait for.

Subclasses (the stateful machine's instruments) extend it through the
documented hook :meth:`ControlledPubSub.before_subscribe` and the public
properties, never through private state.

This module imports redis; the plugin imports it only when a fixture needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import inspect
import itertools
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import redis.exceptions

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.portal import (
    LOOP_GRACE,
    Signal,
    await_on,
    block_on,
    owning_loop,
    run_soon,
)

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

__all__ = [
    "BarrierBroken",
    "ControlledPubSub",
    "Delivery",
    "DeliveryKind",
    "Message",
    "ProcessedScan",
    "Publish",
    "as_text",
]

#: How the harness publishes a barrier token: ``await publish(channel, token)``
#: through a client of its own (never the store's).
#: Publishes ``(channel, token)``; may return the tokens it published instead
#: (copies from several nodes), which the barrier then waits for, all of them.
Publish = Callable[[str, str], Awaitable[Any]]

#: This run's share of the harness-only barrier channels' names
#: (``p1:barrier:<run token>:<n>``, one per pubsub): no store listens there.
_BARRIER_RUN = secrets.token_hex(4)
_barrier_numbers = itertools.count(1)

#: A pub/sub message as ``redis.asyncio`` returns it: ``type``, ``pattern``,
#: ``channel``, ``data``.
Message = dict[str, Any]

DeliveryKind = Literal["message", "duplicate", "injected"]

#: Where the latest message with some data is (see :meth:`ControlledPubSub.status_of`).
MessageStatus = Literal["processed", "handed out", "waiting", "held", "unseen"]

_DATA_TYPES = frozenset({"message", "pmessage", "smessage"})
_SUBSCRIBE_TYPES = frozenset({"subscribe", "psubscribe", "ssubscribe"})
_UNSUBSCRIBE_TYPES = frozenset({"unsubscribe", "punsubscribe", "sunsubscribe"})


def as_text(value: object) -> str:
    """Message data, a channel or a command name as text (bytes decoded as UTF-8, replaced)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


@dataclass(eq=False)
class Delivery:
    """One data message handed to the store, and when the store was done with it.

    Times are :func:`time.perf_counter` seconds. ``processed_at`` is set when
    the store comes back for the next message (it handles one at a time), so the
    last message handed out stays unprocessed until then.
    """

    label: str
    channel: str
    data: Any
    kind: DeliveryKind
    #: When the harness read it from Redis (for ``injected``: when injected).
    received_at: float
    handed_out_at: float
    processed_at: float | None = None

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8 (invalid bytes replaced)."""
        return as_text(self.data)

    @property
    def processed(self) -> bool:
        """Whether the store came back for another message after this one."""
        return self.processed_at is not None


@dataclass(eq=False)
class _Entry:
    message: Message
    received_at: float
    kind: DeliveryKind = "message"
    #: Arrival order of data messages (received or injected) on this pubsub; a
    #: duplicate keeps its original's. ``-1`` for confirmations.
    seq: int = -1


class BarrierBroken(ConnectionError):
    """The subscription closed or lost its connection while a barrier waited on it.

    Whatever it had not handed out is lost with it: wait on the store's next
    subscription instead.
    """


class ProcessedScan:
    """Finds the first processed delivery matching ``match`` in a pubsub's log, re-checked on each change.

    Message data is looked up in the pubsub's index of first processed
    deliveries (:meth:`ControlledPubSub.first_processed`), so a wait (a settle
    makes one per instance) costs the same however long a cluster has been
    running. A predicate scans: processed deliveries form a prefix of each log,
    so the scan remembers where that prefix ends and rechecks only the rest.
    """

    def __init__(self, match: str | bytes | Callable[[Delivery], bool]) -> None:
        self._text = None if callable(match) else as_text(match)
        self._predicate = match if callable(match) else None
        self._checked: dict[int, int] = {}

    def first(self, pubsub: ControlledPubSub) -> Delivery | None:
        """The first processed delivery of ``pubsub`` that matches, or ``None`` (on its loop)."""
        if self._text is not None:
            return pubsub.first_processed(self._text)
        assert self._predicate is not None
        key = id(pubsub)
        start = self._checked.get(key, 0)
        in_prefix = True
        for index, delivery in enumerate(pubsub.log_since(start), start):
            if delivery.processed_at is None:
                in_prefix = False  # checked again next time, as are those after it
                continue
            if in_prefix:
                self._checked[key] = index + 1
            if self._predicate(delivery):
                return delivery
        return None


def _split_subscribe_args(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Callable[..., Any]]]:
    # Mirrors redis-py's parse_pubsub_subscriptions: a first list argument,
    # Subscription(name, handler) objects, and name=handler keywords.
    first_is_list = bool(args) and isinstance(args[0], list | tuple)
    flat: list[Any] = [*args[0], *args[1:]] if first_is_list else list(args)
    names: list[Any] = []
    handlers: dict[str, Callable[..., Any]] = {}
    for arg in flat:
        if isinstance(arg, str | bytes) or not hasattr(arg, "handler"):
            names.append(arg)
            continue
        names.append(arg.name)
        if arg.handler is not None:
            handlers[as_text(arg.name)] = arg.handler
    for name, handler in kwargs.items():
        names.append(name)
        if handler is not None:
            handlers[name] = handler
    return names, handlers


class ControlledPubSub:
    """A ``redis.asyncio`` PubSub whose traffic the harness sees and steers.

    To the store it behaves like the real one for what stores use:
    ``subscribe``/``psubscribe``/``ssubscribe`` (with handlers), ``unsubscribe``/
    ``punsubscribe``, ``get_message``, ``listen``, ``run``, ``aclose`` (and the
    deprecated ``close``/``reset``, which warn as redis-py does), ``subscribed``,
    ``async with``; anything else is forwarded. Behind it a pump task reads the
    real pubsub into an inbox as soon as the first subscription is sent.

    Modes: pass-through (default), where messages reach the store as they
    arrive, and :meth:`hold`, where data messages wait in :attr:`pending` until
    :meth:`deliver`, :meth:`drop`, :meth:`duplicate` or :meth:`release`.
    Subscription confirmations always pass. :meth:`inject` puts a synthetic
    message in front of the store; :meth:`disconnect` makes its next or pending
    read raise ``redis.exceptions.ConnectionError`` and closes the real pubsub.

    Every data message handed out is logged as a :class:`Delivery`; it counts as
    processed when the store comes back for the next message.

    :meth:`barrier_async` and :meth:`settle_async` tell how far the store got
    without a word on its channel: a token on a harness-only channel of the same
    connection comes back after everything published before it, and positions
    (arrival order), never contents, say what the store processed.

    For subclasses: :meth:`before_subscribe` is awaited before every
    subscription is sent, and :attr:`signal` is the signal to notify when their
    own state changes; everything else they need is public.
    """

    def __init__(
        self,
        pubsub: PubSub,
        *,
        label: str,
        ignore_subscribe_messages: bool = False,
        signal: Signal | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._real: Any = pubsub
        self.label = label
        self.loop = owning_loop(loop, "ControlledPubSub")
        self._ignore_subscribe_messages = ignore_subscribe_messages
        self._signal = signal if signal is not None else Signal()
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._ready: deque[_Entry] = deque()
        self._held: deque[_Entry] = deque()
        self._holding = False
        self._log: list[Delivery] = []
        self._dropped: list[Message] = []
        self._current: Delivery | None = None
        # The first processed delivery per text: only the newest delivery is
        # ever marked, so this is also the first in log order.
        self._first_processed: dict[str, Delivery] = {}
        self._confirmed: set[str] = set()
        self._confirmed_patterns: set[str] = set()
        self._received = 0
        self._pump: asyncio.Task[None] | None = None
        self._pump_error: BaseException | None = None
        self._disconnected = False
        self._closed = False
        self._real_closing: asyncio.Task[None] | None = None
        self._subscribed_at_cut = False
        #: The position the latest :meth:`settle_async` waited for (``None``
        #: while its barrier is out or never came back): for diagnostics.
        self.last_barrier: int | None = None
        # Data messages received or injected so far: the next one's ``seq``.
        self._arrivals = 0
        self._current_seq = -1
        # The harness-only channel of barrier(), subscribed on the real pubsub
        # the first time a barrier is asked for; nothing on it reaches the store.
        self._barrier_channel = f"p1:barrier:{_BARRIER_RUN}:{next(_barrier_numbers)}"
        self._barrier_confirmed = False
        self._barrier_subscribing: asyncio.Task[None] | None = None
        self._barrier_tokens = itertools.count(1)
        #: Per token that came back: how many data messages had arrived before it.
        self._barrier_seen: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        if name == "_real":
            raise AttributeError(name)
        return getattr(self._real, name)

    def __repr__(self) -> str:
        mode = "hold" if self._holding else "pass-through"
        return (
            f"<ControlledPubSub {self.label} {mode} handed_out={len(self._log)} "
            f"pending={len(self._held)}>"
        )

    async def __aenter__(self) -> ControlledPubSub:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def signal(self) -> Signal:
        """Fires on every change of this pubsub's state (shared with its ObservedRedis).

        Wait on it with ``await signal.wait_until(check, timeout)`` on :attr:`loop`;
        a subclass calls ``signal.notify()`` when state of its own changes.
        """
        return self._signal

    # -- the store's side ---------------------------------------------------

    @property
    def subscribed(self) -> bool:
        """As ``PubSub.subscribed``.

        After :meth:`disconnect` it keeps the value it had, as redis-py keeps its
        channels across a lost connection: a ``while pubsub.subscribed`` loop
        must learn of the loss from the ConnectionError, not by ending quietly.
        """
        if self._disconnected:
            return self._subscribed_at_cut
        return self._store_subscribed()

    @property
    def channels(self) -> dict[Any, Any]:
        """As ``PubSub.channels``: the store's own (the harness's barrier channel left out)."""
        barrier = self._barrier_channel
        return {k: v for k, v in self._real.channels.items() if as_text(k) != barrier}

    def _store_subscribed(self) -> bool:
        # The store's own subscriptions: the harness's barrier channel is not one.
        real = self._real
        channels = getattr(real, "channels", None)
        if channels is None:
            return bool(real.subscribed)
        barrier = self._barrier_channel
        own = any(as_text(c) != barrier for c in channels)
        return bool(own or real.patterns or getattr(real, "shard_channels", None))

    async def subscribe(self, *args: Any, **kwargs: Any) -> None:
        """Subscribe to channels, as ``PubSub.subscribe``."""
        await self._subscribe(self._real.subscribe, args, kwargs)

    async def psubscribe(self, *args: Any, **kwargs: Any) -> None:
        """Subscribe to patterns, as ``PubSub.psubscribe``."""
        await self._subscribe(self._real.psubscribe, args, kwargs)

    async def ssubscribe(self, *args: Any, **kwargs: Any) -> None:
        """Subscribe to shard channels, as ``PubSub.ssubscribe``."""
        await self._subscribe(self._real.ssubscribe, args, kwargs)

    async def before_subscribe(self) -> None:
        """Extension hook, awaited before every subscription (channel, pattern, shard) is sent.

        Does nothing here; a subclass may wait in it, e.g. to hold a store's
        resubscription until a test lets it through.
        """

    async def _subscribe(
        self, command: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: Any
    ) -> None:
        await self.before_subscribe()
        if self._closed:
            raise RuntimeError(_messages.PUBSUB_CLOSED.format(label=self.label))
        if self._disconnected:
            raise redis.exceptions.ConnectionError(
                _messages.PUBSUB_DISCONNECTED.format(label=self.label)
            )
        names, handlers = _split_subscribe_args(args, kwargs)
        # Handlers stay here, not in the real pubsub: the pump must see every
        # message so that hold() and the log cover handler-based stores too.
        await command(*names)
        self._handlers.update(handlers)
        if self._pump is None:
            self._pump = self.loop.create_task(self._run_pump(), name=f"{self.label} pump")

    async def unsubscribe(self, *args: Any) -> None:
        """As ``PubSub.unsubscribe``; a no-op once disconnected (the subscription is gone)."""
        if not (self._disconnected or self._closed):
            await self._real.unsubscribe(*args)

    async def punsubscribe(self, *args: Any) -> None:
        """As ``PubSub.punsubscribe``; a no-op once disconnected."""
        if not (self._disconnected or self._closed):
            await self._real.punsubscribe(*args)

    async def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: float | None = 0.0
    ) -> Message | None:
        """The next message, or ``None`` if none came within ``timeout`` (``None``: wait).

        As in redis-py, an ignored subscription confirmation or a message consumed
        by a handler returns ``None``.
        """
        self._mark_processed()  # coming back for more means the last one is done
        self._check_usable(backlog=bool(self._ready))
        if not self._ready:
            if timeout is not None and timeout <= 0:
                return None

            def check() -> bool | None:
                stop = self._disconnected or self._closed or self._pump_error is not None
                return True if self._ready or stop else None

            try:
                await self._signal.wait_until(check, timeout)
            except TimeoutError:
                return None
            self._check_usable(backlog=bool(self._ready))
        return await self._hand_out(self._ready.popleft(), ignore_subscribe_messages)

    async def listen(self) -> AsyncIterator[Message]:
        """Yield messages while subscribed, as ``PubSub.listen``; raises once disconnected."""
        while True:
            if self._disconnected:
                raise redis.exceptions.ConnectionError(
                    _messages.PUBSUB_DISCONNECTED.format(label=self.label)
                )
            if not self._store_subscribed() and not self._ready and not self._held:
                if self._pump_error is not None:
                    raise self._pump_error
                return
            message = await self.get_message(timeout=None)
            if message is not None:
                yield message

    async def run(
        self,
        *,
        exception_handler: Callable[[BaseException, Any], Any] | None = None,
        poll_timeout: float = 1.0,
        **_: Any,
    ) -> None:
        """Dispatch messages to the subscription handlers forever, as ``PubSub.run``."""
        while True:
            try:
                await self.get_message(ignore_subscribe_messages=True, timeout=poll_timeout)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                if exception_handler is None:
                    raise
                outcome = exception_handler(exc, self)
                if inspect.isawaitable(outcome):
                    await outcome
            # As redis-py: let other tasks run when messages arrive back to back.
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        """Close the pubsub and its pump, as ``PubSub.aclose``."""
        if self._closed:
            return
        self._closed = True
        await self._close_real()
        self._signal.notify()

    async def close(self) -> None:
        """Deprecated alias of :meth:`aclose`, warning as redis-py does."""
        await self._stop_pump()
        self._closed = True
        await self._real.close()
        self._signal.notify()

    async def reset(self) -> None:
        """Deprecated alias of :meth:`aclose`, warning as redis-py does."""
        await self._stop_pump()
        self._closed = True
        await self._real.reset()
        self._signal.notify()

    def _check_usable(self, *, backlog: bool) -> None:
        # backlog: messages read before a real connection failure are handed out
        # before the failure itself, as a socket's buffered replies would be.
        if self._closed:
            raise RuntimeError(_messages.PUBSUB_NOT_CONNECTED)
        if self._disconnected:
            raise redis.exceptions.ConnectionError(
                _messages.PUBSUB_DISCONNECTED.format(label=self.label)
            )
        if self._pump_error is not None and not backlog:
            raise self._pump_error
        if self._pump is None and not self._ready:
            raise RuntimeError(_messages.PUBSUB_NOT_CONNECTED)

    async def _hand_out(self, entry: _Entry, ignore_subscribe_messages: bool) -> Message | None:
        message = dict(entry.message)
        kind = message["type"]
        if kind not in _DATA_TYPES:
            confirmation = kind in _SUBSCRIBE_TYPES or kind in _UNSUBSCRIBE_TYPES
            if confirmation and (ignore_subscribe_messages or self._ignore_subscribe_messages):
                return None
            return message
        delivery = Delivery(
            label=self.label,
            channel=as_text(message["channel"]),
            data=message["data"],
            kind=entry.kind,
            received_at=entry.received_at,
            handed_out_at=time.perf_counter(),
        )
        self._log.append(delivery)
        self._current = delivery
        self._current_seq = entry.seq
        self._signal.notify()
        handler = self._handler_for(message)
        if handler is None:
            return message
        outcome = handler(message)
        if inspect.isawaitable(outcome):
            await outcome
        self._mark_processed()
        return None

    def _handler_for(self, message: Message) -> Callable[..., Any] | None:
        if message["type"] == "pmessage":
            return self._handlers.get(as_text(message["pattern"]))
        return self._handlers.get(as_text(message["channel"]))

    def _mark_processed(self) -> None:
        delivery = self._current
        if delivery is not None:
            delivery.processed_at = time.perf_counter()
            self._first_processed.setdefault(delivery.text, delivery)
            self._current = None
            self._signal.notify()

    # -- the pump -----------------------------------------------------------

    async def _run_pump(self) -> None:
        try:
            while True:
                message = await self._real.get_message(timeout=None)
                if message is not None:
                    self._accept(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the store on its next read
            self._pump_error = exc
            self._signal.notify()

    def _accept(self, message: Message) -> None:
        kind = message["type"]
        channel = as_text(message.get("channel"))
        if channel == self._barrier_channel:
            self._accept_barrier(kind, message)
            return
        if kind in ("subscribe", "ssubscribe"):
            self._confirmed.add(channel)
        elif kind == "psubscribe":
            self._confirmed_patterns.add(channel)
        elif kind in ("unsubscribe", "sunsubscribe"):
            self._confirmed.discard(channel)
        elif kind == "punsubscribe":
            self._confirmed_patterns.discard(channel)
        entry = _Entry(message, time.perf_counter())
        if kind in _DATA_TYPES:
            self._received += 1
            entry.seq = self._arrivals
            self._arrivals += 1
            (self._held if self._holding else self._ready).append(entry)
        else:
            self._ready.append(entry)
        self._signal.notify()

    def _accept_barrier(self, kind: str, message: Message) -> None:
        # The harness's own traffic: swallowed, never shown to the store.
        if kind == "subscribe":
            self._barrier_confirmed = True
        elif kind == "unsubscribe":  # the store unsubscribed from everything
            self._barrier_confirmed = False
        elif kind in _DATA_TYPES:  # a matching pattern may bring it twice
            self._barrier_seen.setdefault(as_text(message.get("data")), self._arrivals)
        self._signal.notify()

    async def _stop_pump(self) -> None:
        pump = self._pump
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _close_real(self) -> None:
        if self._real_closing is None:
            self._real_closing = self.loop.create_task(self._shut_real())
        await asyncio.shield(self._real_closing)

    async def _shut_real(self) -> None:
        await self._stop_pump()
        await self._real.aclose()

    def _listens_to(self, channel: str) -> bool:
        if self._disconnected or self._closed:
            return False
        if channel in self._confirmed:
            return True
        return any(fnmatch.fnmatchcase(channel, p) for p in self._confirmed_patterns)

    # -- the controller's side (any thread) ---------------------------------

    @property
    def holding(self) -> bool:
        """Whether data messages are held (see :meth:`hold`)."""
        return self._holding

    @property
    def disconnected(self) -> bool:
        """Whether :meth:`disconnect` ran or the real connection failed."""
        return self._disconnected or self._pump_error is not None

    @property
    def cut(self) -> bool:
        """Whether :meth:`disconnect` ran (a real connection failure does not count)."""
        return self._disconnected

    @property
    def closed(self) -> bool:
        """Whether the store (or the harness) closed this pubsub."""
        return self._closed

    @property
    def confirmed_channels(self) -> frozenset[str]:
        """Channels whose subscription Redis confirmed (and not yet unsubscribed)."""
        return run_soon(self.loop, lambda: frozenset(self._confirmed))

    @property
    def all_confirmed(self) -> bool:
        """Whether Redis confirmed every channel, shard channel and pattern asked for so far."""
        return run_soon(self.loop, self._all_confirmed)

    def _all_confirmed(self) -> bool:
        real = self._real
        channels = {as_text(c) for c in getattr(real, "channels", {})}
        channels.discard(self._barrier_channel)
        channels |= {as_text(c) for c in getattr(real, "shard_channels", {})}
        patterns = {as_text(p) for p in getattr(real, "patterns", {})}
        return channels <= self._confirmed and patterns <= self._confirmed_patterns

    def listens_to(self, channel: str) -> bool:
        """Whether a confirmed subscription (channel or pattern) covers ``channel``.

        False once disconnected or closed.
        """
        return run_soon(self.loop, self._listens_to, channel)

    @property
    def received(self) -> int:
        """Data messages read from Redis so far."""
        return self._received

    @property
    def pending(self) -> tuple[Message, ...]:
        """Held data messages, oldest first (copies)."""
        return run_soon(self.loop, lambda: tuple(dict(e.message) for e in self._held))

    @property
    def pending_texts(self) -> tuple[str, ...]:
        """The data of the held messages as text, oldest first."""
        return run_soon(
            self.loop, lambda: tuple(as_text(e.message.get("data")) for e in self._held)
        )

    @property
    def waiting(self) -> int:
        """Messages released to the store that it has not taken yet."""
        return len(self._ready)

    @property
    def in_progress(self) -> Delivery | None:
        """The delivery the store took last and has not finished, or ``None``."""
        return self._current

    @property
    def dropped(self) -> tuple[Message, ...]:
        """Messages removed by :meth:`drop` or lost to :meth:`disconnect`."""
        return run_soon(self.loop, lambda: tuple(self._dropped))

    @property
    def log(self) -> tuple[Delivery, ...]:
        """Every data message handed to the store, in order."""
        return run_soon(self.loop, lambda: tuple(self._log))

    def log_since(self, start: int) -> tuple[Delivery, ...]:
        """The deliveries from position ``start`` of :attr:`log` on (for readers keeping a cursor)."""
        return run_soon(self.loop, lambda: tuple(self._log[start:]))

    def first_processed(self, data: str | bytes) -> Delivery | None:
        """The first processed delivery with this data, or ``None`` (an index lookup)."""
        return run_soon(self.loop, self._first_processed.get, as_text(data))

    @property
    def handed_out(self) -> int:
        """How many data messages the store was given."""
        return len(self._log)

    @property
    def processed(self) -> int:
        """How many of them the store finished (came back for another message)."""
        return run_soon(self.loop, lambda: sum(1 for d in self._log if d.processed))

    def status_of(self, data: str | bytes) -> MessageStatus:
        """Where the latest message with this data is: for timeout diagnostics."""
        return run_soon(self.loop, self._status_of, as_text(data))

    def _status_of(self, text: str) -> MessageStatus:
        for delivery in reversed(self._log):
            if delivery.text == text:
                return "processed" if delivery.processed else "handed out"
        if any(as_text(e.message.get("data")) == text for e in self._ready):
            return "waiting"
        if any(as_text(e.message.get("data")) == text for e in self._held):
            return "held"
        return "unseen"

    def hold(self) -> None:
        """Hold data messages until :meth:`deliver`/:meth:`drop`/:meth:`release`.

        Messages that arrived but that the store has not taken yet are held too,
        so what the store sees after this call is decided by the controller.
        """
        run_soon(self.loop, self._hold)

    def _hold(self) -> None:
        self._holding = True
        keep: deque[_Entry] = deque()
        for entry in self._ready:
            (self._held if entry.message["type"] in _DATA_TYPES else keep).append(entry)
        self._ready = keep
        self._signal.notify()

    def release(self) -> int:
        """Back to pass-through, delivering everything held; returns how many."""
        return run_soon(self.loop, self._release)

    def _release(self) -> int:
        self._holding = False
        count = len(self._held)
        self._ready.extend(self._held)
        self._held.clear()
        self._signal.notify()
        return count

    def deliver(self, n: int = 1) -> tuple[Message, ...]:
        """Hand the ``n`` oldest held messages to the store; returns them."""
        return run_soon(self.loop, self._deliver, n, False)

    def duplicate(self, n: int = 1) -> tuple[Message, ...]:
        """Hand copies of the ``n`` oldest held messages to the store, keeping them held."""
        return run_soon(self.loop, self._deliver, n, True)

    def _deliver(self, n: int, copy: bool) -> tuple[Message, ...]:
        taken = self._take(n, "duplicate" if copy else "deliver")
        for entry in taken:
            self._ready.append(
                _Entry(dict(entry.message), entry.received_at, "duplicate", entry.seq)
                if copy
                else entry
            )
        if copy:
            self._held.extendleft(reversed(taken))
        self._signal.notify()
        return tuple(dict(e.message) for e in taken)

    def drop(self, n: int = 1) -> tuple[Message, ...]:
        """Discard the ``n`` oldest held messages; the store never sees them."""
        return run_soon(self.loop, self._drop, n)

    def _drop(self, n: int) -> tuple[Message, ...]:
        taken = self._take(n, "drop")
        self._dropped.extend(e.message for e in taken)
        self._signal.notify()
        return tuple(dict(e.message) for e in taken)

    def _take(self, n: int, verb: str) -> list[_Entry]:
        if n < 0:
            raise ValueError(_messages.PUBSUB_TAKE_NEGATIVE.format(verb=verb, n=n))
        if n > len(self._held):
            raise ValueError(
                _messages.PUBSUB_TAKE_TOO_MANY.format(
                    label=self.label, verb=verb, n=n, held=len(self._held)
                )
            )
        return [self._held.popleft() for _ in range(n)]

    def inject(self, data: bytes | str, *, channel: str | bytes | None = None) -> Message:
        """Hand the store a synthetic data message (after those already released).

        ``channel`` defaults to the first confirmed channel. Bypasses hold().
        """
        return run_soon(self.loop, self._inject, data, channel)

    def _inject(self, data: bytes | str, channel: str | bytes | None) -> Message:
        name: str | bytes = channel if channel is not None else min(self._confirmed, default="")
        if isinstance(data, bytes) and isinstance(name, str):
            name = name.encode()
        message: Message = {"type": "message", "pattern": None, "channel": name, "data": data}
        self._ready.append(_Entry(message, time.perf_counter(), "injected", self._arrivals))
        self._arrivals += 1
        self._signal.notify()
        return dict(message)

    def disconnect(self) -> None:
        """Cut the connection: the store's next or pending read raises ConnectionError.

        Messages not yet taken are lost (see :attr:`dropped`); the real pubsub is
        closed in the background (:meth:`disconnect_async` waits for it).
        """
        run_soon(self.loop, self._disconnect)

    async def disconnect_async(self) -> None:
        """:meth:`disconnect`, then wait until the real pubsub is closed."""
        await await_on(self.loop, self._disconnect_and_wait)

    async def _disconnect_and_wait(self) -> None:
        self._disconnect()
        if self._real_closing is not None:
            await asyncio.shield(self._real_closing)

    def _disconnect(self) -> None:
        if self._disconnected or self._closed:
            return
        self._subscribed_at_cut = bool(self._real.subscribed)
        self._disconnected = True
        self._dropped.extend(e.message for e in (*self._ready, *self._held))
        self._ready.clear()
        self._held.clear()
        self._real_closing = self.loop.create_task(self._shut_real(), name=f"{self.label} cut")
        self._signal.notify()

    def wait_pending(self, count: int = 1, timeout: float = 5.0) -> tuple[Message, ...]:
        """Block until at least ``count`` messages are held; return them."""
        return block_on(self.loop, self._wait_pending, count, timeout, timeout=timeout + LOOP_GRACE)

    async def wait_pending_async(self, count: int = 1, timeout: float = 5.0) -> tuple[Message, ...]:
        """Wait until at least ``count`` messages are held; return them."""
        return await await_on(self.loop, self._wait_pending, count, timeout)

    async def _wait_pending(self, count: int, timeout: float) -> tuple[Message, ...]:
        def check() -> tuple[Message, ...] | None:
            if len(self._held) < count:
                return None
            return tuple(dict(e.message) for e in self._held)

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            hint = "" if self._holding else _messages.WAIT_PENDING_NOT_HOLDING
            raise TimeoutError(
                _messages.WAIT_PENDING_TIMED_OUT.format(
                    label=self.label, held=len(self._held), timeout=timeout, count=count, hint=hint
                )
            ) from None

    def wait_handed_out(self, count: int = 1, timeout: float = 5.0) -> Delivery:
        """Block until the store has taken ``count`` data messages; return the last."""
        return block_on(
            self.loop, self._wait_handed_out, count, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_handed_out_async(self, count: int = 1, timeout: float = 5.0) -> Delivery:
        """Wait until the store has taken ``count`` data messages; return the last."""
        return await await_on(self.loop, self._wait_handed_out, count, timeout)

    async def _wait_handed_out(self, count: int, timeout: float) -> Delivery:
        def check() -> Delivery | None:
            return self._log[-1] if len(self._log) >= count else None

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WAIT_HANDED_OUT_TIMED_OUT.format(
                    label=self.label, taken=len(self._log), timeout=timeout, count=count
                )
            ) from None

    def wait_processed(
        self, match: str | bytes | Callable[[Delivery], bool], timeout: float = 5.0
    ) -> Delivery:
        """Block until the store processed a message matching ``match``; return it."""
        return block_on(
            self.loop, self._wait_processed, match, timeout, timeout=timeout + LOOP_GRACE
        )

    async def wait_processed_async(
        self, match: str | bytes | Callable[[Delivery], bool], timeout: float = 5.0
    ) -> Delivery:
        """Wait until the store processed a message matching ``match`` (data or predicate)."""
        return await await_on(self.loop, self._wait_processed, match, timeout)

    async def _wait_processed(
        self, match: str | bytes | Callable[[Delivery], bool], timeout: float
    ) -> Delivery:
        scan = ProcessedScan(match)

        def check() -> Delivery | None:
            return scan.first(self)

        try:
            return await self._signal.wait_until(check, timeout)
        except TimeoutError:
            raise TimeoutError(
                _messages.WAIT_PROCESSED_TIMED_OUT.format(
                    label=self.label, match=match, timeout=timeout
                )
            ) from None

    def wait_subscribed(self, channel: str, timeout: float = 5.0) -> None:
        """Block until Redis confirmed the subscription to ``channel`` (or a matching pattern)."""
        block_on(self.loop, self._wait_subscribed, channel, timeout, timeout=timeout + LOOP_GRACE)

    async def wait_subscribed_async(self, channel: str, timeout: float = 5.0) -> None:
        """Wait until Redis confirmed the subscription to ``channel`` (or a matching pattern)."""
        await await_on(self.loop, self._wait_subscribed, channel, timeout)

    async def _wait_subscribed(self, channel: str, timeout: float) -> None:
        try:
            await self._signal.wait_until(
                lambda: True if self._listens_to(channel) else None, timeout
            )
        except TimeoutError:
            raise TimeoutError(
                _messages.WAIT_SUBSCRIBED_TIMED_OUT.format(
                    label=self.label, channel=channel, timeout=timeout
                )
            ) from None

    # -- the barrier: how far the store got, without a word on its channel ----

    @property
    def started(self) -> bool:
        """Whether the store subscribed at least once (the pump reads the connection)."""
        return self._pump is not None

    @property
    def held_count(self) -> int:
        """How many data messages are held (see :meth:`hold`)."""
        return len(self._held)

    @property
    def barrier_channel(self) -> str:
        """The harness-only channel :meth:`barrier` publishes on (the store never sees it)."""
        return self._barrier_channel

    def _broken(self) -> bool:
        return self._disconnected or self._closed or self._pump_error is not None

    def barrier(self, publish: Publish, timeout: float = 5.0) -> int:
        """Block until everything published before this call reached this pubsub; see :meth:`barrier_async`."""
        return block_on(self.loop, self._barrier, publish, timeout, timeout=timeout + LOOP_GRACE)

    async def barrier_async(self, publish: Publish, timeout: float = 5.0) -> int:
        """Wait until every message published before this call reached this pubsub.

        The real pubsub connection is also subscribed (once, lazily) to a
        harness-only channel, :attr:`barrier_channel`, whose confirmation and
        messages the store never sees; a token is published there with
        ``publish`` (a client of the harness's own) and awaited. Redis delivers
        in order per connection, so every message published on the store's
        channel before the token has then been read from Redis: handed to the
        store, waiting for it, or held. Returns the *position* reached: how
        many data messages (received or injected) arrived before the token, for
        :meth:`processed_through`. Nothing is published on the store's channel.

        Raises :class:`BarrierBroken` if the subscription closes or loses its
        connection meanwhile (or already had), :class:`RuntimeError` before the
        store's first subscription, and :class:`TimeoutError` if the token does
        not come back within ``timeout``.
        """
        return await await_on(self.loop, self._barrier, publish, timeout)

    async def _barrier(self, publish: Publish, timeout: float) -> int:
        if self._pump is None:
            raise RuntimeError(_messages.PUBSUB_NOT_CONNECTED)
        async with asyncio.timeout(timeout):
            while not self._barrier_confirmed:
                if self._broken():
                    raise BarrierBroken(self.label)
                if self._barrier_subscribing is None or self._barrier_subscribing.done():
                    self._barrier_subscribing = self.loop.create_task(
                        self._real.subscribe(self._barrier_channel),
                        name=f"{self.label} barrier",
                    )
                # Subscribed before publishing: a token sent ahead of the
                # SUBSCRIBE would be lost. Each task is retrieved (no warnings).
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._barrier_subscribing)
                await self._signal.wait_until(
                    lambda: True if self._barrier_confirmed or self._broken() else None, None
                )
            token = f"{next(self._barrier_tokens)}"
            if self._broken():
                raise BarrierBroken(self.label)
            # On a Redis Cluster the token goes out once from every master, each
            # copy behind what that master sent earlier (one bus link is FIFO,
            # two are not): ``publish`` returns the copies' tokens.
            published = await publish(self._barrier_channel, token)
            tokens = (
                [str(t) for t in published] if isinstance(published, (list, tuple)) else [token]
            )
            await self._signal.wait_until(
                lambda: (
                    True if all(t in self._barrier_seen for t in tokens) or self._broken() else None
                ),
                None,
            )
        if not all(t in self._barrier_seen for t in tokens):
            raise BarrierBroken(self.label)
        return max(self._barrier_seen.pop(t) for t in tokens)

    def processed_through(self, position: int) -> bool:
        """Whether the store processed every data message that arrived before ``position``.

        Positions are arrival order (see :meth:`barrier_async`); a message
        dropped or lost to a cut connection no longer counts. Never content-based.
        """
        return run_soon(self.loop, self._processed_through, position)

    def _processed_through(self, position: int) -> bool:
        if self._current is not None and self._current_seq < position:
            return False
        queued = (*self._held, *self._ready)
        return not any(0 <= e.seq < position for e in queued)

    def backlog(self, position: int) -> tuple[int, int, Delivery | None]:
        """What arrived before ``position`` and is not processed: held, waiting, in progress.

        ``waiting``: released to the store, not taken; ``in progress``: the
        delivery it took last and has not finished (before ``position``).
        """
        return run_soon(self.loop, self._backlog, position)

    def _backlog(self, position: int) -> tuple[int, int, Delivery | None]:
        held = sum(1 for e in self._held if 0 <= e.seq < position)
        waiting = sum(1 for e in self._ready if 0 <= e.seq < position)
        current = self._current if self._current_seq < position else None
        return held, waiting, current

    async def settle_async(self, publish: Publish, timeout: float = 5.0) -> int:
        """:meth:`barrier_async`, then wait until the store processed everything before it.

        Returns the position. Raises :class:`BarrierBroken` (the subscription
        went away: its unhandled messages are lost with it) or
        :class:`TimeoutError` (see :meth:`backlog` for where the messages are).
        """
        return await await_on(self.loop, self._settle, publish, timeout)

    async def _settle(self, publish: Publish, timeout: float) -> int:
        deadline = self.loop.time() + timeout
        self.last_barrier = None
        position = await self._barrier(publish, timeout)
        self.last_barrier = position

        def check() -> bool | None:
            if self._processed_through(position):
                return True
            return True if self._broken() else None

        await self._signal.wait_until(check, max(deadline - self.loop.time(), 0.0))
        if not self._processed_through(position):
            raise BarrierBroken(self.label)
        return position
