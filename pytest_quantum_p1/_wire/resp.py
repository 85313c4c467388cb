"""RESP2 and RESP3 on the wire: an incremental parser that keeps every frame's exact bytes, and encoders.

:class:`RespParser` is fed bytes as they arrive and returns the complete
:class:`Frame` s they finish; each frame keeps the exact bytes it was parsed
from (:attr:`Frame.raw`), so a proxy forwards what it parsed byte for byte.
Every RESP3 type is understood (``+ - : $ * _ # , ( ! = % ~ >``, and ``|``
attributes, which are attached to the reply they precede), as are RESP2's null
bulk string and null array, and, on the client side, inline commands
(``PING\\r\\n``). Streamed RESP3 strings and aggregates (``$?``), which no Redis
server sends, are refused.

Hostile input is bounded by :class:`Limits` (bulk size, aggregate length,
nesting depth, line length) and refused with a :class:`RespError` naming
what was wrong, before any memory is reserved for it.

:func:`make` builds a frame with its canonical encoding (what the tests and the
proxy's injected frames use); :func:`command_name` and :func:`command_args`
read a client's command. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from pytest_quantum_p1 import _messages

__all__ = [
    "AGGREGATE_KINDS",
    "BLOB_KINDS",
    "KINDS",
    "LINE_KINDS",
    "MAP_KINDS",
    "Frame",
    "Limits",
    "RespError",
    "RespParser",
    "Side",
    "Value",
    "command",
    "command_args",
    "command_name",
    "make",
    "to_python",
]

#: Types whose payload is the rest of their line.
LINE_KINDS: Final = frozenset("+-:_#,(")
#: Types with a length-prefixed payload.
BLOB_KINDS: Final = frozenset("$!=")
#: Types holding ``n`` frames.
AGGREGATE_KINDS: Final = frozenset("*~>")
#: Types holding ``n`` key/value pairs (``2n`` frames).
MAP_KINDS: Final = frozenset("%|")
#: Every RESP type byte, and ``"inline"`` for a client's inline command.
KINDS: Final = LINE_KINDS | BLOB_KINDS | AGGREGATE_KINDS | MAP_KINDS | {"inline"}

Side = Literal["client", "server"]

#: What a frame holds: ``None`` (null), ``bool`` (``#``), ``int`` (``:`` and
#: ``(``), ``bytes`` (simple, error, double text, blob), or frames (aggregates;
#: maps flattened as key, value, key, value ...).
Value: TypeAlias = "bool | int | bytes | tuple[Frame, ...] | None"

_CRLF: Final = b"\r\n"


class RespError(ValueError):
    """Bytes that are not RESP (or exceed the :class:`Limits`): the connection cannot go on."""

    def __init__(self, reason: str, *, offset: int = 0) -> None:
        super().__init__(reason)
        #: What was wrong, in words.
        self.reason = reason
        #: Where in the connection's stream the broken frame started.
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a peer may send; beyond them the frame is refused (Redis's own defaults)."""

    #: Bytes in one bulk string (Redis's ``proto-max-bulk-len``).
    max_bulk: int = 512 * 1024 * 1024
    #: Frames in one aggregate (pairs count twice).
    max_elements: int = 1024 * 1024 * 1024
    #: Aggregates inside aggregates.
    max_depth: int = 64
    #: Bytes in one line (a simple string, a header, an inline command).
    max_line: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """One RESP value as it crossed the wire.

    ``kind`` is the type byte (``"$"``, ``">"`` ...) or ``"inline"``; ``value``
    is described by :data:`Value`; ``raw`` holds the exact bytes, the
    attributes that preceded it included; ``attributes`` is the ``|`` frame
    that preceded it, if any.
    """

    kind: str
    value: Value
    raw: bytes = field(repr=False)
    attributes: Frame | None = None

    @property
    def items(self) -> tuple[Frame, ...]:
        """The frames of an aggregate (empty for a null or a scalar)."""
        return self.value if isinstance(self.value, tuple) else ()

    @property
    def is_null(self) -> bool:
        """``_``, a RESP2 null bulk string or a RESP2 null array."""
        return self.value is None

    @property
    def is_error(self) -> bool:
        """``-`` or ``!``."""
        return self.kind in ("-", "!")

    def first_text(self) -> str:
        """The first element of an aggregate as lower-case text (a push's kind); ``""`` if none."""
        items = self.items
        if not items or not isinstance(items[0].value, bytes):
            return ""
        return items[0].value.decode("utf-8", "replace").lower()


def to_python(frame: Frame) -> object:
    """The frame as plain Python: bytes, ints, bools, ``None``, lists and dicts (for tests and logs)."""
    value = frame.value
    if frame.kind in MAP_KINDS and isinstance(value, tuple):
        pairs = zip(value[::2], value[1::2], strict=True)
        return {_hashable(to_python(k)): to_python(v) for k, v in pairs}
    if isinstance(value, tuple):
        return [to_python(item) for item in value]
    return value


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


# -- encoding ---------------------------------------------------------------


def make(kind: str, value: Value = None, *, attributes: Frame | None = None) -> Frame:
    """A frame of ``kind`` holding ``value``, with its canonical encoding as :attr:`Frame.raw`.

    ``"$"``/``"*"`` with ``None`` are RESP2's nulls; maps take flattened pairs.
    """
    body = _encode(kind, value)
    raw = body if attributes is None else attributes.raw + body
    return Frame(kind, value, raw, attributes)


def command(*args: bytes | str | int) -> Frame:
    """A client command: an array of bulk strings."""
    return make("*", tuple(make("$", _as_bytes(arg)) for arg in args))


def _as_bytes(arg: bytes | str | int) -> bytes:
    if isinstance(arg, bytes):
        return arg
    return str(arg).encode()


def _encode(kind: str, value: Value) -> bytes:
    if kind in AGGREGATE_KINDS or kind in MAP_KINDS:
        if value is None:
            return kind.encode() + b"-1\r\n"
        if not isinstance(value, tuple):
            raise TypeError(kind)
        count = len(value) // 2 if kind in MAP_KINDS else len(value)
        return b"%s%d\r\n%s" % (kind.encode(), count, b"".join(item.raw for item in value))
    if kind in BLOB_KINDS:
        if value is None:
            return kind.encode() + b"-1\r\n"
        if not isinstance(value, bytes):
            raise TypeError(kind)
        return b"%s%d\r\n%s\r\n" % (kind.encode(), len(value), value)
    if kind == "_":
        return b"_\r\n"
    if kind == "#":
        return b"#t\r\n" if value else b"#f\r\n"
    if kind in (":", "("):
        if not isinstance(value, int):
            raise TypeError(kind)
        return b"%s%d\r\n" % (kind.encode(), value)
    if kind in ("+", "-", ","):
        if not isinstance(value, bytes):
            raise TypeError(kind)
        return kind.encode() + value + _CRLF
    if kind == "inline":
        if not isinstance(value, tuple):
            raise TypeError(kind)
        return b" ".join(_bulk_bytes(item) for item in value) + _CRLF
    raise TypeError(kind)


def _bulk_bytes(item: Frame) -> bytes:
    if not isinstance(item.value, bytes):
        raise TypeError(item.kind)
    return item.value


# -- reading a client's command ----------------------------------------------


def command_args(frame: Frame) -> tuple[bytes, ...]:
    """The command and its arguments as bytes (a client's array of bulks, or an inline command)."""
    return tuple(item.value for item in frame.items if isinstance(item.value, bytes))


def command_name(frame: Frame) -> str:
    """The command's name in upper case (``"GET"``, ``"JSON.GET"``); ``""`` for an empty one."""
    items = frame.items
    if not items or not isinstance(items[0].value, bytes):
        return ""
    return items[0].value.decode("utf-8", "replace").upper()


# -- parsing ------------------------------------------------------------------


class _Incomplete(Exception):
    """The buffer ends inside a frame: wait for more bytes."""


_INCOMPLETE: Final = _Incomplete()


class RespParser:
    """Incremental RESP parser for one direction of one connection.

    ``side="client"`` reads what a client sends: arrays of bulk strings, or
    inline commands; ``side="server"`` reads replies and pushes, every type.
    :meth:`feed` returns the frames completed so far; after a
    :class:`RespError` the parser is broken (the connection must end).
    """

    def __init__(self, side: Side, limits: Limits | None = None) -> None:
        self.side: Side = side
        self.limits = limits if limits is not None else Limits()
        self._buffer = bytearray()
        #: Bytes consumed by complete frames so far (for error offsets).
        self._consumed = 0
        self._broken: RespError | None = None
        # Where the frame being parsed starts, and how many bytes from there it
        # needs at least: a long bulk string is not re-parsed on every chunk.
        self._frame_start = 0
        self._need = 0

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return every frame it completed, oldest first."""
        if self._broken is not None:
            raise self._broken
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._need:
                return []  # still inside a long bulk string: nothing to parse yet
            buffer = bytes(self._buffer)
        else:  # the usual case, whole frames per read: no copy
            buffer = bytes(data)
        self._need = 0
        frames: list[Frame] = []
        position = 0
        while position < len(buffer):
            self._frame_start = position
            try:
                if self.side == "client":
                    frame, end = self._client_frame(buffer, position)
                else:
                    frame, end = self._value(buffer, position, 0)
            except _Incomplete:
                self._check_pending_line(buffer, position)
                break
            except RespError as exc:
                self._broken = RespError(exc.reason, offset=self._consumed + position)
                raise self._broken from None
            frames.append(frame)
            position = end
        self._consumed += position
        self._buffer = bytearray(buffer[position:]) if position < len(buffer) else bytearray()
        return frames

    def _check_pending_line(self, buffer: bytes, position: int) -> None:
        # A peer that never ends its line must not make the buffer grow for ever.
        if buffer.find(b"\n", position) < 0 and len(buffer) - position > self.limits.max_line:
            self._broken = RespError(
                _messages.WIRE_RESP_TOO_LONG.format(
                    what="line", size=len(buffer) - position, limit=self.limits.max_line
                ),
                offset=self._consumed + position,
            )
            raise self._broken

    def _line(self, buffer: bytes, start: int) -> tuple[bytes, int]:
        end = buffer.find(_CRLF, start)
        if end < 0:
            raise _INCOMPLETE
        if end - start > self.limits.max_line:
            raise RespError(
                _messages.WIRE_RESP_TOO_LONG.format(
                    what="line", size=end - start, limit=self.limits.max_line
                )
            )
        return buffer[start:end], end + 2

    def _length(self, kind: str, text: bytes, limit: int, what: str) -> int:
        if text == b"?":
            raise RespError(_messages.WIRE_RESP_STREAMED.format(kind=kind))
        if not text or not (text.isdigit() or (text[:1] == b"-" and text[1:].isdigit())):
            raise RespError(_messages.WIRE_RESP_BAD_LENGTH.format(kind=kind, text=text))
        length = int(text)
        if length < -1:
            raise RespError(_messages.WIRE_RESP_BAD_LENGTH.format(kind=kind, text=text))
        if length > limit:
            raise RespError(
                _messages.WIRE_RESP_TOO_LONG.format(what=what, size=length, limit=limit)
            )
        return length

    def _client_frame(self, buffer: bytes, start: int) -> tuple[Frame, int]:
        if buffer[start] != ord("*"):
            return self._inline(buffer, start)
        line, position = self._line(buffer, start + 1)
        count = self._length("*", line, self.limits.max_elements, "array")
        items: list[Frame] = []
        for _ in range(max(count, 0)):
            if position >= len(buffer):
                raise _INCOMPLETE
            kind = chr(buffer[position])
            if kind != "$":
                raise RespError(_messages.WIRE_RESP_NOT_A_COMMAND.format(kind=kind))
            item, position = self._value(buffer, position, 1)
            if item.value is None:
                raise RespError(_messages.WIRE_RESP_NOT_A_COMMAND.format(kind="null"))
            items.append(item)
        value = tuple(items) if count >= 0 else None
        return Frame("*", value, buffer[start:position]), position

    def _inline(self, buffer: bytes, start: int) -> tuple[Frame, int]:
        # Redis accepts a bare "\n" as the end of an inline command.
        end = buffer.find(b"\n", start)
        if end < 0:
            raise _INCOMPLETE
        if end - start > self.limits.max_line:
            raise RespError(
                _messages.WIRE_RESP_TOO_LONG.format(
                    what="inline command", size=end - start, limit=self.limits.max_line
                )
            )
        words = buffer[start:end].rstrip(b"\r").split()
        items = tuple(make("$", word) for word in words)
        return Frame("inline", items, buffer[start : end + 1]), end + 1

    def _value(self, buffer: bytes, start: int, depth: int) -> tuple[Frame, int]:
        if start >= len(buffer):
            raise _INCOMPLETE
        kind = chr(buffer[start])
        if kind == "|":
            return self._with_attributes(buffer, start, depth)
        line, position = self._line(buffer, start + 1)
        value: Value
        if kind in LINE_KINDS:
            value = self._scalar(kind, line)
        elif kind in BLOB_KINDS:
            length = self._length(kind, line, self.limits.max_bulk, "bulk string")
            if length < 0:
                value = None
            else:
                end = position + length
                if len(buffer) < end + 2:
                    self._need = end + 2 - self._frame_start
                    raise _INCOMPLETE
                if buffer[end : end + 2] != _CRLF:
                    raise RespError(_messages.WIRE_RESP_NO_CRLF.format(size=length))
                value = buffer[position:end]
                position = end + 2
        elif kind in AGGREGATE_KINDS or kind in MAP_KINDS:
            value, position = self._aggregate(kind, line, buffer, position, depth)
        else:
            raise RespError(_messages.WIRE_RESP_BAD_TYPE.format(byte=buffer[start : start + 1]))
        return Frame(kind, value, buffer[start:position]), position

    def _aggregate(
        self, kind: str, line: bytes, buffer: bytes, position: int, depth: int
    ) -> tuple[tuple[Frame, ...] | None, int]:
        if depth >= self.limits.max_depth:
            raise RespError(_messages.WIRE_RESP_TOO_DEEP.format(limit=self.limits.max_depth))
        pairs = kind in MAP_KINDS
        limit = self.limits.max_elements // 2 if pairs else self.limits.max_elements
        count = self._length(kind, line, limit, "aggregate")
        if count < 0:
            return None, position
        items: list[Frame] = []
        for _ in range(count * 2 if pairs else count):
            item, position = self._value(buffer, position, depth + 1)
            items.append(item)
        return tuple(items), position

    def _with_attributes(self, buffer: bytes, start: int, depth: int) -> tuple[Frame, int]:
        line, position = self._line(buffer, start + 1)
        value, position = self._aggregate("|", line, buffer, position, depth)
        attributes = Frame("|", value, buffer[start:position])
        reply, end = self._value(buffer, position, depth)
        return Frame(reply.kind, reply.value, buffer[start:end], attributes), end

    def _scalar(self, kind: str, line: bytes) -> Value:
        if kind in "+-,":
            return line
        if kind == "_":
            if line:
                raise RespError(_messages.WIRE_RESP_BAD_LINE.format(kind=kind, text=line))
            return None
        if kind == "#":
            if line not in (b"t", b"f"):
                raise RespError(_messages.WIRE_RESP_BAD_LINE.format(kind=kind, text=line))
            return line == b"t"
        # ":" and "(": a signed integer
        digits = line[1:] if line[:1] in (b"-", b"+") else line
        if not digits.isdigit():
            raise RespError(_messages.WIRE_RESP_BAD_LINE.format(kind=kind, text=line))
        return int(line)
