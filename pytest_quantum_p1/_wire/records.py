"""What the wire proxy records and hands out: deliveries, publishes, faults, held replies and commands.

The value types of :mod:`.proxy`, kept apart so that readers of the records
(the cluster, reports) need not read the proxy. Times are
:func:`time.perf_counter` seconds of the proxy's process.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.portal import run_soon
from pytest_quantum_p1._harness.pubsub import as_text
from pytest_quantum_p1._wire.resp import Frame, RespError

__all__ = [
    "INVALIDATE_CHANNEL",
    "TRACKING",
    "CommandMatch",
    "ConnectionState",
    "DeliveryHow",
    "FetchGate",
    "HeldCommand",
    "HeldReply",
    "Publish",
    "PublishGate",
    "PushKind",
    "Tracking",
    "TrackingState",
    "WireDelivery",
    "WireFault",
]

#: The channel a RESP2 ``CLIENT TRACKING ... REDIRECT`` connection gets invalidations on.
INVALIDATE_CHANNEL: Final = "__redis__:invalidate"

DeliveryHow = Literal["passed", "released", "duplicate", "injected"]
PushKind = Literal["message", "pmessage", "smessage", "invalidate"]

#: Awaited after Redis acknowledged a ``PUBLISH``/``SPUBLISH``, with ``(channel,
#: message, receivers)``; the client gets the acknowledgement when it returns.
PublishGate = Callable[[bytes, bytes, int | None], Awaitable[None]]

#: Awaited after Redis answered a storage read, with ``(command, args, reply)``;
#: the client gets the reply when it returns (the client path's ``fetch_gate``).
FetchGate = Callable[[str, tuple[bytes, ...], Frame], Awaitable[None]]

#: Which client commands :meth:`WireProxy.hold_commands` holds, by ``(command, args)``.
CommandMatch = Callable[[str, tuple[bytes, ...]], bool]


class Tracking:
    """The type of :data:`TRACKING`: "receives tracking invalidations", where a channel is expected."""

    def __repr__(self) -> str:
        return "TRACKING"


#: Pass to :meth:`WireProxy.wait_subscribed` to wait for a connection that gets
#: tracking invalidations (``CLIENT TRACKING on``, or subscribed to ``__redis__:invalidate``).
TRACKING: Final = Tracking()


@dataclass(frozen=True)
class TrackingState:
    """``CLIENT TRACKING on`` as Redis accepted it on one connection."""

    bcast: bool
    redirect: int | None
    prefixes: tuple[bytes, ...]
    #: ``OPTIN``, ``OPTOUT``, ``NOLOOP`` as given.
    options: frozenset[str]


@dataclass(frozen=True)
class ConnectionState:
    """One client connection through the proxy, at the moment it was asked for."""

    id: int
    #: 2 until a ``HELLO 3`` was accepted.
    protocol: int
    opened_at: float
    closed_at: float | None
    channels: frozenset[str]
    patterns: frozenset[str]
    shard_channels: frozenset[str]
    tracking: TrackingState | None
    commands: int

    @property
    def open(self) -> bool:
        """Whether the connection still holds."""
        return self.closed_at is None

    @property
    def subscribed(self) -> bool:
        """Whether it is a subscription connection: it subscribed to something or tracks keys."""
        return bool(self.channels or self.patterns or self.shard_channels or self.tracking)

    @property
    def gets_invalidations(self) -> bool:
        """Whether tracking invalidations reach it (tracking without redirect, or the redirect channel)."""
        own = self.tracking is not None and self.tracking.redirect is None
        return own or INVALIDATE_CHANNEL in self.channels

    def listens_to(self, channel: str) -> bool:
        """Whether a confirmed subscription (channel, shard channel or pattern) covers ``channel``."""
        if channel in self.channels or channel in self.shard_channels:
            return True
        return any(fnmatch.fnmatchcase(channel, p) for p in self.patterns)


@dataclass(eq=False)
class WireDelivery:
    """One push to a client: a pub/sub message or a tracking invalidation.

    Times are :func:`time.perf_counter` seconds: ``received_at`` when it reached
    the proxy (for ``injected``: when injected), ``forwarded_at`` when the proxy
    wrote it to the client (``None`` while held or once dropped). What the
    client did with it is not seen on the wire.
    """

    label: str
    connection: int
    kind: PushKind
    channel: str
    #: The message data (bytes), or for ``invalidate`` the keys (a list of bytes, ``None`` for all).
    data: object
    pattern: str | None
    frame: Frame = field(repr=False)
    received_at: float
    forwarded_at: float | None = None
    how: DeliveryHow = "passed"

    @property
    def text(self) -> str:
        """``data`` as text (a key list joined by spaces)."""
        if isinstance(self.data, list):
            return " ".join(as_text(item) for item in self.data)
        return "" if self.data is None else as_text(self.data)

    @property
    def forwarded(self) -> bool:
        """Whether it was written to the client."""
        return self.forwarded_at is not None


@dataclass(frozen=True)
class Publish:
    """A ``PUBLISH``/``SPUBLISH`` a client sent through the proxy, and Redis's acknowledgement."""

    connection: int
    command: str
    channel: bytes
    message: bytes
    sent_at: float
    acknowledged_at: float
    #: How many subscribers Redis reported (``None`` if it replied with an error).
    receivers: int | None


@dataclass(frozen=True)
class WireFault:
    """A peer sent bytes that are not RESP: its connection was closed, the others go on."""

    label: str
    connection: int
    side: Literal["client", "server"]
    error: RespError
    at: float

    @property
    def message(self) -> str:
        """The fault in words."""
        return _messages.WIRE_FAULT.format(
            label=self.label,
            connection=self.connection,
            side=self.side,
            reason=self.error.reason,
            offset=self.error.offset,
        )


@dataclass(eq=False)
class HeldReply:
    """A reply Redis sent (the command ran) that the client has not got yet: a held read or publish."""

    label: str
    connection: int
    command: str
    args: tuple[bytes, ...]
    #: What Redis replied; the client receives exactly these bytes on :meth:`release`.
    reply: Frame
    held_at: float
    loop: asyncio.AbstractEventLoop = field(repr=False)
    _on_release: Callable[[HeldReply], None] = field(repr=False)
    _released: bool = field(default=False, repr=False)

    @property
    def released(self) -> bool:
        """Whether :meth:`release` ran."""
        return self._released

    def release(self) -> None:
        """Let the client have the reply (safe from any thread)."""
        run_soon(self.loop, self._release)

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._on_release(self)


@dataclass(eq=False)
class HeldCommand:
    """A client command the proxy has not sent on to Redis yet; its connection waits behind it."""

    label: str
    connection: int
    command: str
    args: tuple[bytes, ...]
    frame: Frame = field(repr=False)
    held_at: float
    loop: asyncio.AbstractEventLoop = field(repr=False)
    _on_release: Callable[[HeldCommand], None] = field(repr=False)
    _released: bool = field(default=False, repr=False)

    @property
    def released(self) -> bool:
        """Whether :meth:`release` ran."""
        return self._released

    def release(self) -> None:
        """Send the command on, and what the client sent after it (safe from any thread)."""
        run_soon(self.loop, self._release)

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._on_release(self)
