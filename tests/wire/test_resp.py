"""The RESP codec: frames survive any split of the byte stream, exactly; broken input is refused by name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._wire.resp import (
    Frame,
    Limits,
    RespError,
    RespParser,
    Side,
    command,
    command_args,
    command_name,
    make,
    to_python,
)

_LINE = st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b)
_BLOB = st.binary(max_size=24)


def _scalars() -> st.SearchStrategy[Frame]:
    return st.one_of(
        _LINE.map(lambda b: make("+", b)),
        _LINE.map(lambda b: make("-", b)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: make(":", i)),
        st.integers(-(10**40), 10**40).map(lambda i: make("(", i)),
        _BLOB.map(lambda b: make("$", b)),
        _BLOB.map(lambda b: make("!", b)),
        _BLOB.map(lambda b: make("=", b"txt:" + b)),
        st.just(make("_")),
        st.just(make("$", None)),
        st.just(make("*", None)),
        st.booleans().map(lambda b: make("#", b)),
        st.sampled_from([b"1.5", b"-0", b"inf", b"-inf", b"nan", b"1e-05"]).map(
            lambda b: make(",", b)
        ),
    )


def _extend(children: st.SearchStrategy[Frame]) -> st.SearchStrategy[Frame]:
    items = st.lists(children, max_size=4).map(tuple)
    pairs = st.lists(st.tuples(children, children), max_size=3).map(
        lambda ps: tuple(x for pair in ps for x in pair)
    )
    plain = st.one_of(
        st.builds(make, st.sampled_from("*~>"), items),
        st.builds(make, st.just("%"), pairs),
    )
    attributed = st.builds(
        lambda attrs, reply: make(reply.kind, reply.value, attributes=make("|", attrs)),
        pairs,
        plain,
    )
    return st.one_of(plain, attributed)


FRAMES = st.recursive(_scalars(), _extend, max_leaves=12)
COMMANDS = st.one_of(
    st.lists(st.binary(max_size=10), min_size=1, max_size=5).map(lambda a: command(*a)),
    st.lists(
        st.binary(min_size=1, max_size=6).filter(lambda b: not (set(b) & set(b" \t\r\n*"))),
        min_size=1,
        max_size=4,
    ).map(lambda words: RespParser("client").feed(b" ".join(words) + b"\r\n")[0]),
)


def _parse_split(side: Side, data: bytes, cut: int) -> list[Frame]:
    parser = RespParser(side)
    frames = parser.feed(data[:cut])
    frames += parser.feed(data[cut:])
    assert parser.buffered == 0
    return frames


@settings(max_examples=80, deadline=None)
@given(st.lists(FRAMES, min_size=1, max_size=4))
def test_server_frames_survive_every_split(frames: list[Frame]) -> None:
    data = b"".join(frame.raw for frame in frames)
    for cut in range(len(data) + 1):
        parsed = _parse_split("server", data, cut)
        assert parsed == frames
        assert [frame.raw for frame in parsed] == [frame.raw for frame in frames]


@settings(max_examples=100, deadline=None)
@given(st.lists(COMMANDS, min_size=1, max_size=4))
def test_client_commands_survive_every_split(frames: list[Frame]) -> None:
    data = b"".join(frame.raw for frame in frames)
    for cut in range(len(data) + 1):
        parsed = _parse_split("client", data, cut)
        assert [frame.raw for frame in parsed] == [frame.raw for frame in frames]
        assert [command_args(f) for f in parsed] == [command_args(f) for f in frames]


@settings(max_examples=50, deadline=None)
@given(st.lists(FRAMES, min_size=1, max_size=3))
def test_frames_fed_byte_by_byte(frames: list[Frame]) -> None:
    data = b"".join(frame.raw for frame in frames)
    parser = RespParser("server")
    parsed = [f for i in range(len(data)) for f in parser.feed(data[i : i + 1])]
    assert parsed == frames


def test_values_decode_as_redis_py_would() -> None:
    data = b"|1\r\n+ttl\r\n:3\r\n%2\r\n+a\r\n:1\r\n$1\r\nb\r\n*2\r\n#t\r\n_\r\n"
    (frame,) = RespParser("server").feed(data)
    assert frame.kind == "%"
    assert frame.raw == data
    assert frame.attributes is not None
    assert to_python(frame.attributes) == {b"ttl": 3}
    assert to_python(frame) == {b"a": 1, b"b": [True, None]}


def test_differently_shaped_but_valid_input_is_kept_byte_for_byte() -> None:
    # Not what an encoder writes, yet RESP: a "+" sign, a bare "\n" ending an
    # inline command, runs of spaces, RESP2 nulls.
    parser = RespParser("server")
    data = b":+5\r\n$-1\r\n*-1\r\n*0\r\n"
    frames = parser.feed(data)
    assert [f.value for f in frames] == [5, None, None, ()]
    assert b"".join(f.raw for f in frames) == data
    client = RespParser("client")
    (inline, empty, array) = client.feed(b"get   key\n\r\n*1\r\n$4\r\nPING\r\n")
    assert (command_name(inline), command_args(inline)) == ("GET", (b"get", b"key"))
    assert inline.raw == b"get   key\n"
    assert command_args(empty) == ()
    assert command_name(array) == "PING"


HOSTILE = [
    pytest.param("server", b"?what\r\n", _messages.WIRE_RESP_BAD_TYPE.format(byte=b"?"), id="type"),
    pytest.param(
        "server",
        b"$x1\r\n",
        _messages.WIRE_RESP_BAD_LENGTH.format(kind="$", text=b"x1"),
        id="length",
    ),
    pytest.param(
        "server",
        b"*-7\r\n",
        _messages.WIRE_RESP_BAD_LENGTH.format(kind="*", text=b"-7"),
        id="negative",
    ),
    pytest.param(
        "server",
        b"$3\r\nabcd\r\n",
        _messages.WIRE_RESP_NO_CRLF.format(size=3),
        id="no-crlf",
    ),
    pytest.param(
        "server", b"#x\r\n", _messages.WIRE_RESP_BAD_LINE.format(kind="#", text=b"x"), id="bool"
    ),
    pytest.param(
        "server", b":12a\r\n", _messages.WIRE_RESP_BAD_LINE.format(kind=":", text=b"12a"), id="int"
    ),
    pytest.param("server", b"$?\r\n", _messages.WIRE_RESP_STREAMED.format(kind="$"), id="streamed"),
    pytest.param(
        "client",
        b"*1\r\n+PING\r\n",
        _messages.WIRE_RESP_NOT_A_COMMAND.format(kind="+"),
        id="not-a-command",
    ),
    pytest.param(
        "client",
        b"*1\r\n$-1\r\n",
        _messages.WIRE_RESP_NOT_A_COMMAND.format(kind="null"),
        id="null-argument",
    ),
    pytest.param(
        "server",
        b"$100\r\n",
        _messages.WIRE_RESP_TOO_LONG.format(what="bulk string", size=100, limit=64),
        id="bulk-limit",
    ),
    pytest.param(
        "server",
        b"*" * 1 + b"1\r\n" + b"*1\r\n" * 8 + b":1\r\n",
        _messages.WIRE_RESP_TOO_DEEP.format(limit=4),
        id="depth-limit",
    ),
    pytest.param(
        "client",
        b"A" * 100,
        _messages.WIRE_RESP_TOO_LONG.format(what="line", size=100, limit=64),
        id="endless-line",
    ),
]


@pytest.mark.parametrize(("side", "data", "reason"), HOSTILE)
def test_broken_input_is_refused_with_its_reason(side: Side, data: bytes, reason: str) -> None:
    parser = RespParser(side, Limits(max_bulk=64, max_depth=4, max_line=64))
    prefix = b"+OK\r\n" if side == "server" else b"PING\r\n"
    assert len(parser.feed(prefix)) == 1
    with pytest.raises(RespError) as caught:
        parser.feed(data)
    assert caught.value.reason == reason
    assert caught.value.offset == len(prefix)
    with pytest.raises(RespError):  # a broken stream stays broken
        parser.feed(b"+OK\r\n")


def test_a_long_bulk_string_arrives_in_many_chunks() -> None:
    value = bytes(range(256)) * 400
    data = make("*", (make("$", value), make(":", 7))).raw + b"+OK\r\n"
    parser = RespParser("server")
    frames = [f for i in range(0, len(data), 1000) for f in parser.feed(data[i : i + 1000])]
    assert [to_python(f) for f in frames] == [[value, 7], b"OK"]
    assert b"".join(f.raw for f in frames) == data
