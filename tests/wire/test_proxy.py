"""The wire proxy, between a plain ``redis.asyncio`` client and Redis (fakeredis's TCP server, then real).

The proxy runs on a portal's loop, as the harness runs it; the clients run on
the same loop (``portal.run``) and the test steers the proxy from its own
thread through the sync API, as a controller would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._harness.observed import ObservedRedis
from pytest_quantum_p1._harness.portal import Portal
from pytest_quantum_p1._wire.proxy import WireProxy
from pytest_quantum_p1._wire.resp import Frame, Limits, RespParser, command, to_python
from tests.wire.conftest import Upstream

TIMEOUT = 5.0


def client(url: str, **options: Any) -> redis.asyncio.Redis:
    """A plain client on ``url`` (made on the loop it is used on)."""
    return redis.asyncio.Redis.from_url(url, **options)


def fragile(url: str, **options: Any) -> redis.asyncio.Redis:
    """A client that does not retry: a lost connection surfaces as an error."""
    return client(url, retry=Retry(NoBackoff(), 0), **options)


async def next_message(pubsub: Any) -> dict[str, Any]:
    """The next data message of a redis-py pubsub (confirmations skipped)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=TIMEOUT)
            if message is not None:
                result: dict[str, Any] = message
                return result


async def resilient_next_message(pubsub: Any) -> dict[str, Any]:
    """:func:`next_message`, reading on after connection errors as a store's listener does."""
    while True:
        try:
            return await next_message(pubsub)
        except redis.exceptions.ConnectionError:
            continue


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "bytes"])
def test_a_plain_client_sees_the_same_replies_through_the_proxy(
    portal: Portal, proxy: WireProxy, upstream: Upstream, protocol: int, decode: bool
) -> None:
    async def session(url: str) -> list[Any]:
        async with client(url, protocol=protocol, decode_responses=decode) as r:
            await r.delete("k", "h", "l")
            await r.set("k", "v\r\nwith crlf")
            await r.hset("h", mapping={"a": "1", "b": "2"})
            await r.rpush("l", "x", "y")
            async with r.pipeline(transaction=True) as pipe:
                pipe.get("k")
                pipe.hgetall("h")
                pipe.lrange("l", 0, -1)
                piped = await pipe.execute()
            return [
                await r.get("k"),
                await r.mget("k", "missing"),
                await r.hgetall("h"),
                await r.exists("k", "missing"),
                await r.ping(),
                piped,
            ]

    direct = portal.run(session(upstream.url))
    through = portal.run(session(proxy.url))
    assert through == direct
    assert proxy.storage_reads == 4
    state = proxy.connections[-1]
    assert state.protocol == protocol
    assert proxy.faults == ()


def test_storage_reads_are_counted_as_the_client_path_counts_them(
    portal: Portal, proxy: WireProxy, upstream: Upstream
) -> None:
    async def sequence(r: Any) -> None:
        await r.set("k", "1")
        await r.get("k")
        await r.mget(["k", "j"])
        await r.hset("h", "a", "1")
        await r.hget("h", "a")
        await r.hmget("h", ["a", "b"])
        await r.hgetall("h")
        await r.exists("k")
        await r.execute_command("GET", "k")
        await r.execute_command("GETEX", "k")
        await r.publish("c", "m")
        async with r.pipeline(transaction=True) as pipe:  # not counted on either path
            pipe.get("k")
            pipe.hget("h", "a")
            await pipe.execute()

    async def observed_path() -> tuple[int, dict[str, int]]:
        async with client(upstream.url) as raw:
            observed = ObservedRedis(raw, label="instance 0")
            await sequence(observed)
            return observed.storage_reads, observed.reads_by_command

    async def wire_path() -> None:
        async with client(proxy.url) as r:
            await sequence(r)

    counted = portal.run(observed_path())
    portal.run(wire_path())
    assert (proxy.storage_reads, proxy.reads_by_command) == counted
    assert counted[0] == 8
    assert [(p.channel, p.message, p.receivers) for p in proxy.publishes] == [(b"c", b"m", 0)]


def test_a_held_read_ran_but_its_reply_waits_for_the_release(
    portal: Portal, proxy: WireProxy, upstream: Upstream
) -> None:
    async def start_read() -> tuple[redis.asyncio.Redis, asyncio.Task[Any]]:
        r = client(proxy.url)
        await r.set("k", "old")
        proxy.hold_reads()
        read: Any = r.get("k")
        return r, asyncio.ensure_future(read)

    r, read = portal.run(start_read())
    (held,) = proxy.wait_pending_reads(1, TIMEOUT)
    assert (held.command, held.args) == ("GET", (b"k",))

    async def overwrite() -> bool:
        async with client(upstream.url) as direct:
            await direct.set("k", "new")
        return read.done()

    assert portal.run(overwrite()) is False
    held.release()

    async def finish() -> Any:
        try:
            return await read
        finally:
            await r.aclose()

    assert portal.run(finish()) == b"old"  # the command ran before the overwrite
    assert proxy.pending_reads == ()


def test_a_publish_is_seen_and_its_acknowledgement_held(
    portal: Portal, proxy: WireProxy, upstream: Upstream
) -> None:
    async def start() -> tuple[redis.asyncio.Redis, asyncio.Task[Any]]:
        r = client(proxy.url)
        proxy.hold_publishes()
        publishing: Any = r.publish("chan", "m1")
        return r, asyncio.ensure_future(publishing)

    r, publishing = portal.run(start())
    (held,) = proxy.wait_pending_publishes(1, TIMEOUT)
    assert held.command == "PUBLISH"
    assert [p.message for p in proxy.publishes] == [b"m1"]  # Redis already acknowledged it
    assert not publishing.done()
    proxy.release_publishes()

    async def finish() -> Any:
        try:
            return await publishing
        finally:
            await r.aclose()

    assert portal.run(finish()) == 0


def test_the_publish_gate_is_awaited_before_the_client_goes_on(
    portal: Portal, proxy: WireProxy
) -> None:
    seen: list[tuple[bytes, bytes, int | None]] = []

    async def gate(channel: bytes, message: bytes, receivers: int | None) -> None:
        seen.append((channel, message, receivers))

    proxy.publish_gate = gate

    async def publish() -> Any:
        async with client(proxy.url, protocol=3) as r:
            return await r.publish("chan", "m")

    assert portal.run(publish()) == 0
    assert seen == [(b"chan", b"m", 0)]


@pytest.mark.parametrize("protocol", [2, 3])
def test_held_pushes_are_dropped_duplicated_delivered_and_injected(
    portal: Portal, proxy: WireProxy, upstream: Upstream, protocol: int
) -> None:
    async def subscribe() -> tuple[redis.asyncio.Redis, Any]:
        r = client(proxy.url, protocol=protocol, decode_responses=True)
        pubsub = r.pubsub()
        await pubsub.subscribe("chan")
        await pubsub.psubscribe("pat.*")
        return r, pubsub

    r, pubsub = portal.run(subscribe())
    state = proxy.wait_subscribed("chan", TIMEOUT)
    proxy.wait_subscribed("pat.x", TIMEOUT)
    assert state.subscribed
    proxy.hold()

    async def publish() -> None:
        async with client(upstream.url) as direct:
            for message in ("m1", "m2", "m3"):
                await direct.publish("chan", message)
            await direct.publish("pat.x", "p1")

    portal.run(publish())
    held = proxy.wait_pending(4, TIMEOUT)
    assert [(d.kind, d.channel, d.data, d.pattern) for d in held] == [
        ("message", "chan", b"m1", None),
        ("message", "chan", b"m2", None),
        ("message", "chan", b"m3", None),
        ("pmessage", "pat.x", b"p1", "pat.*"),
    ]
    assert [d.text for d in proxy.drop(1)] == ["m1"]
    proxy.duplicate(1)
    proxy.deliver(1)
    assert proxy.release() == 2
    proxy.inject("synthetic", channel="chan")

    async def read_all() -> list[tuple[str, str]]:
        try:
            got = [await next_message(pubsub) for _ in range(5)]
            return [(m["channel"], m["data"]) for m in got]
        finally:
            await pubsub.aclose()
            await r.aclose()

    assert portal.run(read_all()) == [
        ("chan", "m2"),
        ("chan", "m2"),
        ("chan", "m3"),
        ("pat.x", "p1"),
        ("chan", "synthetic"),
    ]
    assert [d.how for d in proxy.deliveries] == [
        "duplicate",
        "released",
        "released",
        "released",
        "injected",
    ]
    assert [d.text for d in proxy.dropped] == ["m1"]
    assert all(
        d.forwarded_at is not None and d.forwarded_at >= d.received_at for d in proxy.deliveries
    )


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_barrier_answers_after_every_earlier_push(
    portal: Portal, proxy: WireProxy, upstream: Upstream, protocol: int
) -> None:
    async def subscribe() -> tuple[redis.asyncio.Redis, Any]:
        r = client(proxy.url, protocol=protocol)
        pubsub = r.pubsub()
        await pubsub.subscribe("chan")
        return r, pubsub

    r, pubsub = portal.run(subscribe())
    proxy.wait_subscribed("chan", TIMEOUT)

    async def publish_many() -> None:
        async with client(upstream.url) as direct:
            for n in range(50):
                await direct.publish("chan", str(n))

    portal.run(publish_many())
    assert proxy.barrier(TIMEOUT) == 1
    assert len(proxy.received) == 50  # no wait needed: the barrier proved they arrived

    async def read_and_close() -> list[bytes]:
        try:
            got = [await next_message(pubsub) for _ in range(50)]
            # The barrier's answer was the proxy's own: the client never sees it.
            extra = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            assert extra is None
            return [m["data"] for m in got]
        finally:
            await pubsub.aclose()
            await r.aclose()

    assert portal.run(read_and_close()) == [str(n).encode() for n in range(50)]


def test_a_cut_link_fails_the_client_and_a_redis_py_client_reconnects(
    portal: Portal, proxy: WireProxy, upstream: Upstream
) -> None:
    async def connect() -> tuple[redis.asyncio.Redis, redis.asyncio.Redis, Any, asyncio.Task[Any]]:
        plain = fragile(proxy.url)
        await plain.set("k", "v")
        healing = client(proxy.url)
        pubsub = healing.pubsub()
        await pubsub.subscribe("chan")
        # A listener as a store runs one: redis-py reconnects and resubscribes
        # under it, and raises once after doing so (the same without the proxy).
        listener = asyncio.get_running_loop().create_task(resilient_next_message(pubsub))
        return plain, healing, pubsub, listener

    plain, healing, pubsub, listener = portal.run(connect())
    before = proxy.wait_subscribed("chan", TIMEOUT)
    assert proxy.disconnect() == 2

    async def after_cut() -> tuple[type[BaseException] | None, Any]:
        error: type[BaseException] | None = None
        try:
            await plain.get("k")
        except redis.exceptions.ConnectionError as exc:
            error = type(exc)
        return error, await plain.get("k")

    error, value = portal.run(after_cut())
    assert error is redis.exceptions.ConnectionError
    assert value == b"v"  # the next command opened a new connection
    after = proxy.wait_subscribed("chan", TIMEOUT)
    assert after.id != before.id
    assert not proxy.connections[before.id - 1].open

    async def publish_and_close() -> Any:
        async with client(upstream.url) as direct:
            await direct.publish("chan", "after")
        try:
            return (await listener)["data"]
        finally:
            await pubsub.aclose()
            await healing.aclose()
            await plain.aclose()

    assert portal.run(publish_and_close()) == b"after"


def test_refused_connections_fail_until_accepted_and_only_subscriptions_can_be_cut(
    portal: Portal, proxy: WireProxy
) -> None:
    async def connect() -> tuple[redis.asyncio.Redis, Any]:
        r = fragile(proxy.url, single_connection_client=True)
        await r.ping()
        pubsub = fragile(proxy.url).pubsub()
        await pubsub.subscribe("chan")
        return r, pubsub

    r, pubsub = portal.run(connect())
    proxy.wait_subscribed("chan", TIMEOUT)
    assert proxy.open_connections == 2
    assert proxy.disconnect(subscriptions_only=True, refuse_for=60.0) == 1
    assert proxy.refusing
    assert proxy.open_connections == 1  # the command connection holds

    async def try_new() -> bool:
        try:
            async with fragile(proxy.url) as other:
                await other.ping()
        except redis.exceptions.ConnectionError:
            return False
        return True

    assert portal.run(try_new()) is False
    assert proxy.refused >= 1
    proxy.accept()
    assert portal.run(try_new()) is True

    async def close() -> None:
        await pubsub.aclose()
        await r.aclose()

    portal.run(close())


def test_a_hostile_client_is_cut_with_a_typed_fault_and_others_are_served(
    portal: Portal, proxy: WireProxy
) -> None:
    async def hostile() -> bytes:
        host, port = proxy.address
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"*1\r\n+PING\r\n")
        answer = await reader.read()  # until the proxy closes the connection
        writer.close()
        await writer.wait_closed()
        return answer

    answer = portal.run(hostile())
    reason = _messages.WIRE_RESP_NOT_A_COMMAND.format(kind="+")
    assert (
        answer
        == b"-" + _messages.WIRE_PROTOCOL_ERROR_REPLY.format(reason=reason).encode() + b"\r\n"
    )
    (fault,) = proxy.faults
    assert (fault.side, fault.error.reason) == ("client", reason)
    assert fault.message == _messages.WIRE_FAULT.format(
        label="instance 0", connection=fault.connection, side="client", reason=reason, offset=0
    )

    async def polite() -> Any:
        async with client(proxy.url) as r:
            return await r.ping()

    assert portal.run(polite()) is True


def test_a_hostile_server_is_cut_with_a_typed_fault(portal: Portal) -> None:
    async def garbage_server() -> asyncio.Server:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            writer.write(b"+OK\r\n^garbage\r\n")
            await writer.drain()
            await reader.read()
            writer.close()

        return await asyncio.start_server(answer, "127.0.0.1", 0)

    server = portal.run(garbage_server())
    port = server.sockets[0].getsockname()[1]
    proxy = WireProxy(("127.0.0.1", port), label="instance 9", loop=portal.loop)
    proxy.start()

    async def use() -> type[BaseException] | None:
        try:
            async with fragile(proxy.url, protocol=2) as r:
                await r.ping()
        except redis.exceptions.ConnectionError as exc:
            return type(exc)
        return None

    try:
        assert portal.run(use()) is redis.exceptions.ConnectionError
        (fault,) = proxy.faults
        assert fault.side == "server"
        assert fault.error.reason == _messages.WIRE_RESP_BAD_TYPE.format(byte=b"^")
    finally:
        proxy.close()

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        portal.run(stop())


def test_waits_time_out_with_what_they_saw(proxy: WireProxy) -> None:
    with pytest.raises(TimeoutError) as pending:
        proxy.wait_pending(1, timeout=0.05)
    assert str(pending.value) == _messages.WIRE_WAIT_PENDING_TIMED_OUT.format(
        label="instance 0",
        held=0,
        timeout=0.05,
        count=1,
        hint=_messages.WIRE_WAIT_PENDING_NOT_HOLDING,
    )
    with pytest.raises(TimeoutError, match="no open connection subscribed to 'chan'"):
        proxy.wait_subscribed("chan", timeout=0.05)
    with pytest.raises(ValueError, match=r"cannot drop 2 pushes, only 0 held"):
        proxy.drop(2)
    with pytest.raises(LookupError, match="no open connection"):
        proxy.inject("x")


def test_an_unreachable_upstream_is_reported_to_the_client(portal: Portal) -> None:
    from pytest_quantum_p1._redis.server import free_port

    port = free_port()
    proxy = WireProxy(("127.0.0.1", port), label="instance 0", loop=portal.loop)
    proxy.start()

    async def use() -> str:
        try:
            async with fragile(proxy.url, protocol=2) as r:
                await r.ping()
        except redis.exceptions.RedisError as exc:
            return str(exc)
        return ""

    try:
        assert f"cannot reach Redis at 127.0.0.1:{port}" in portal.run(use())
    finally:
        proxy.close()


async def _raw(proxy: WireProxy, data: bytes, replies: int) -> list[Any]:
    """Send ``data`` on a bare connection through the proxy; the first ``replies`` frames back."""
    host, port = proxy.address
    reader, writer = await asyncio.open_connection(host, port)
    parser = RespParser("server")
    writer.write(data)
    got: list[Any] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(got) < replies:
                data = await reader.read(4096)
                if not data:
                    break  # closed: what came is the answer
                got += parser.feed(data)
    finally:
        writer.close()
        await writer.wait_closed()
    return [to_python(frame) for frame in got]


@pytest.mark.real_redis
def test_inline_commands_transactions_and_reset_on_a_bare_connection(
    portal: Portal, real_proxy: WireProxy
) -> None:
    # A real server only: fakeredis's TCP server answers inline commands with
    # "unknown command" and closes the connection.
    proxy = real_proxy
    data = (
        b"SET k v\r\n"
        b"GET   k\n"  # inline, a bare newline and extra spaces: a counted read
        b"\r\n"  # an empty inline command: Redis does not answer it
        + command("MULTI").raw
        + command("GET", "k").raw  # queued: not counted, as on the client path
        + command("EXEC").raw
        + command("HELLO", "3").raw
        + command("RESET").raw
        + command("PING").raw
    )
    replies = portal.run(_raw(proxy, data, 8))
    assert replies[:5] == [b"OK", b"v", b"OK", b"QUEUED", [b"v"]]
    assert replies[6:] == [b"RESET", b"PONG"]
    assert proxy.reads_by_command == {"GET": 1}
    (state,) = proxy.connections
    assert state.protocol == 2  # RESET undid HELLO 3
    assert state.commands == 8


def test_a_plain_pipeline_is_counted_on_the_wire_unlike_the_client_path(
    portal: Portal, proxy: WireProxy, upstream: Upstream
) -> None:
    # The documented difference: on the wire a pipeline is just commands.
    async def pipelined(url: str, observe: bool) -> int:
        async with client(url) as raw:
            r: Any = ObservedRedis(raw, label="instance 0") if observe else raw
            async with r.pipeline(transaction=False) as pipe:
                pipe.get("a")
                pipe.get("b")
                await pipe.execute()
            return r.storage_reads if observe else 0

    assert portal.run(pipelined(upstream.url, True)) == 0
    portal.run(pipelined(proxy.url, False))
    assert proxy.storage_reads == 2


def test_subscription_state_follows_the_servers_confirmations(
    portal: Portal, proxy: WireProxy
) -> None:
    async def subscribe() -> tuple[redis.asyncio.Redis, Any]:
        r = client(proxy.url, protocol=2)
        pubsub = r.pubsub()
        await pubsub.subscribe("a", "b")
        await pubsub.psubscribe("p.*")
        return r, pubsub

    r, pubsub = portal.run(subscribe())
    proxy.wait_subscribed("p.z", TIMEOUT)
    state = proxy.wait_subscribed("b", TIMEOUT)
    assert state.channels == frozenset({"a", "b"})
    assert state.patterns == frozenset({"p.*"})

    async def unsubscribe_all() -> None:
        await pubsub.unsubscribe()
        await pubsub.punsubscribe()
        await pubsub.ping()  # answered after the confirmations: they have arrived
        while await pubsub.get_message(timeout=0.5) is not None:
            pass

    portal.run(unsubscribe_all())
    (state,) = [s for s in proxy.connections if s.id == state.id]
    assert not state.subscribed

    async def close() -> None:
        await pubsub.aclose()
        await r.aclose()

    portal.run(close())


def test_waits_work_from_another_event_loop(portal: Portal, proxy: WireProxy) -> None:
    async def subscribe() -> tuple[redis.asyncio.Redis, Any]:
        r = client(proxy.url)
        pubsub = r.pubsub()
        await pubsub.subscribe("chan")
        return r, pubsub

    r, pubsub = portal.run(subscribe())

    async def elsewhere() -> int:
        # A test's own loop (pytest-asyncio, anyio): the proxy stays on the portal.
        state = await proxy.wait_subscribed_async("chan", TIMEOUT)
        await proxy.wait_connections_async(1, TIMEOUT)
        await proxy.barrier_async(TIMEOUT)
        return state.id

    assert asyncio.run(elsewhere()) == proxy.connections[-1].id

    async def close() -> None:
        await pubsub.aclose()
        await r.aclose()

    portal.run(close())


def test_a_client_that_never_ends_its_line_is_cut_at_the_limit(portal: Portal) -> None:
    from tests.wire.conftest import fake_tcp_server, stop_fake_tcp_server

    server, thread = fake_tcp_server()
    proxy = WireProxy(
        ("127.0.0.1", server.server_address[1]),
        label="instance 0",
        loop=portal.loop,
        limits=Limits(max_line=1024),
    )
    proxy.start()
    try:
        answer = portal.run(_raw(proxy, b"G" * 5000, 1))
        reason = _messages.WIRE_RESP_TOO_LONG.format(what="line", size=5000, limit=1024)
        assert answer == [_messages.WIRE_PROTOCOL_ERROR_REPLY.format(reason=reason).encode()]
        assert [f.error.reason for f in proxy.faults] == [reason]
        assert portal.run(_raw(proxy, command("PING").raw, 1)) == [b"PONG"]
    finally:
        proxy.close()
        stop_fake_tcp_server(server, thread)


def test_a_held_command_waits_before_redis_and_its_connection_waits_behind_it(
    portal: Portal, proxy: WireProxy, upstream: Upstream
) -> None:
    # The window of an update between its storage write and its publish.
    proxy.hold_commands(lambda name, args: name == "PUBLISH")

    async def start() -> tuple[redis.asyncio.Redis, asyncio.Task[Any]]:
        r = client(proxy.url, single_connection_client=True)
        await r.set("k", "before")

        async def update() -> Any:
            receivers = await r.publish("chan", "m")
            return receivers, await r.get("k")

        return r, asyncio.ensure_future(update())

    r, update = portal.run(start())
    (held,) = proxy.wait_pending_commands(1, TIMEOUT)
    assert (held.command, held.args) == ("PUBLISH", (b"chan", b"m"))

    async def meanwhile() -> Any:
        async with client(upstream.url) as direct:
            await direct.set("k", "meanwhile")
            return update.done()

    assert portal.run(meanwhile()) is False
    assert not proxy.publishes  # Redis has not seen it
    proxy.release_commands()

    async def finish() -> Any:
        try:
            return await update
        finally:
            await r.aclose()

    assert portal.run(finish()) == (0, b"meanwhile")
    assert [p.message for p in proxy.publishes] == [b"m"]
    assert proxy.pending_commands == ()


def test_the_fetch_gate_is_awaited_before_the_client_gets_the_read(
    portal: Portal, proxy: WireProxy
) -> None:
    seen: list[tuple[str, tuple[bytes, ...], object]] = []

    async def gate(command: str, args: tuple[bytes, ...], reply: Frame) -> None:
        seen.append((command, args, reply.value))

    async def read() -> Any:
        async with client(proxy.url) as r:
            await r.set("k", "v")
            proxy.fetch_gate = gate
            return await r.get("k")

    assert portal.run(read()) == b"v"
    assert seen == [("GET", (b"k",), b"v")]


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_blocking_client_in_another_thread_is_observed_the_same(
    proxy: WireProxy, protocol: int
) -> None:
    # Another client shape: redis-py's synchronous client, blocking this thread
    # while the proxy runs on the portal's loop.
    import redis

    with redis.Redis.from_url(proxy.url, protocol=protocol, decode_responses=True) as r:
        r.set("k", "v")
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe("chan")
        proxy.wait_subscribed("chan", TIMEOUT)
        proxy.hold()
        assert r.publish("chan", "m") == 1
        proxy.wait_pending(1, TIMEOUT)
        assert pubsub.get_message(timeout=0.05) is None  # held
        proxy.release()
        message = pubsub.get_message(timeout=TIMEOUT)
        assert message is not None
        assert message["data"] == "m"
        assert r.get("k") == "v"
        pubsub.close()
    assert proxy.reads_by_command == {"GET": 1}
