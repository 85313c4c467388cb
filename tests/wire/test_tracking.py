"""CLIENT TRACKING through the proxy (a real server: fakeredis has no CLIENT TRACKING).

Default mode on RESP3, where invalidations are ``>`` pushes on the tracking
connection itself, and BCAST with a RESP2 ``REDIRECT`` connection, where they
are messages on ``__redis__:invalidate``: both seen as deliveries and steered
like pub/sub messages.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio

from pytest_quantum_p1._harness.portal import Portal
from pytest_quantum_p1._wire.proxy import WireProxy
from pytest_quantum_p1._wire.records import INVALIDATE_CHANNEL, TRACKING
from pytest_quantum_p1._wire.resp import RespParser, command, to_python
from tests.wire.conftest import Upstream
from tests.wire.test_proxy import TIMEOUT, client, next_message

pytestmark = pytest.mark.real_redis


async def _tracking_connection(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # A bare RESP3 connection, so the test reads the pushes exactly as they arrive.
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(command("HELLO", "3").raw + command("CLIENT", "TRACKING", "on").raw)
    await writer.drain()
    return reader, writer


async def _frames(reader: asyncio.StreamReader, parser: RespParser, count: int) -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(TIMEOUT):
        while len(got) < count:
            data = await reader.read(4096)
            if not data:
                break  # closed: what came is the answer
            got += parser.feed(data)
    return got


def test_resp3_default_mode_invalidations_are_deliveries_that_can_be_held(
    portal: Portal, real_proxy: WireProxy, real_upstream: Upstream
) -> None:
    parser = RespParser("server")

    async def track() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await _tracking_connection(real_proxy.url)
        await _frames(reader, parser, 2)  # HELLO's map, CLIENT TRACKING's +OK
        writer.write(command("GET", "k").raw)
        (reply,) = await _frames(reader, parser, 1)
        assert reply.is_null
        return reader, writer

    reader, writer = portal.run(track())
    state = real_proxy.wait_subscribed(TRACKING, TIMEOUT)
    assert state.tracking is not None
    assert not state.tracking.bcast
    real_proxy.hold()

    async def write(value: str) -> None:
        async with client(real_upstream.url) as direct:
            await direct.set("k", value)

    portal.run(write("1"))
    (held,) = real_proxy.wait_pending(1, TIMEOUT)
    assert (held.kind, held.channel, held.data) == ("invalidate", INVALIDATE_CHANNEL, [b"k"])
    assert held.frame.kind == ">"
    real_proxy.duplicate(1)
    real_proxy.release()
    real_proxy.inject([b"other"], channel=TRACKING)

    async def read_pushes() -> list[Any]:
        pushes = await _frames(reader, parser, 3)
        writer.close()
        await writer.wait_closed()
        return [(p.kind, to_python(p)) for p in pushes]

    invalidation = [b"invalidate", [b"k"]]
    assert portal.run(read_pushes()) == [
        (">", invalidation),
        (">", invalidation),
        (">", [b"invalidate", [b"other"]]),
    ]
    assert [d.how for d in real_proxy.deliveries] == ["duplicate", "released", "injected"]


def test_a_push_overtakes_a_held_read_on_the_same_connection(
    portal: Portal, real_proxy: WireProxy, real_upstream: Upstream
) -> None:
    # The interleaving a cache must survive: the fetch ran, the key changed and
    # its invalidation arrived, and only then does the fetch's reply arrive.
    parser = RespParser("server")

    async def track_and_read() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with client(real_upstream.url) as direct:
            await direct.set("k", "old")
        reader, writer = await _tracking_connection(real_proxy.url)
        await _frames(reader, parser, 2)
        real_proxy.hold_reads()
        writer.write(command("GET", "k").raw)
        return reader, writer

    reader, writer = portal.run(track_and_read())
    real_proxy.wait_pending_reads(1, TIMEOUT)

    async def overwrite_then_read() -> list[Any]:
        async with client(real_upstream.url) as direct:
            await direct.set("k", "new")
        (push,) = await _frames(reader, parser, 1)
        real_proxy.release_reads()
        (reply,) = await _frames(reader, parser, 1)
        writer.close()
        await writer.wait_closed()
        return [(push.kind, push.first_text()), (reply.kind, reply.value)]

    assert portal.run(overwrite_then_read()) == [(">", "invalidate"), ("$", b"old")]


def test_bcast_with_a_resp2_redirect_connection_is_seen_on_the_invalidate_channel(
    portal: Portal, real_proxy: WireProxy, real_upstream: Upstream
) -> None:
    async def set_up() -> tuple[redis.asyncio.Redis, Any, redis.asyncio.Redis]:
        listener = client(real_proxy.url, protocol=2)
        pubsub = listener.pubsub()
        await pubsub.subscribe(INVALIDATE_CHANNEL)
        async with client(real_upstream.url) as admin:
            (entry,) = [c for c in await admin.client_list() if c.get("cmd") == "subscribe"]
        tracker = client(real_proxy.url, protocol=2, single_connection_client=True)
        await tracker.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT", "TRACKING", "on", "REDIRECT", entry["id"], "BCAST", "PREFIX", "policy:"
        )
        return listener, pubsub, tracker

    listener, pubsub, tracker = portal.run(set_up())
    assert real_proxy.wait_subscribed(TRACKING, TIMEOUT).channels == {INVALIDATE_CHANNEL}
    states = {s.id: s for s in real_proxy.connections}
    (tracking,) = [s.tracking for s in states.values() if s.tracking is not None]
    assert tracking.bcast
    assert tracking.prefixes == (b"policy:",)
    real_proxy.hold()

    async def write() -> None:
        async with client(real_upstream.url) as direct:
            await direct.set("policy:a", "1")
            await direct.set("other", "1")  # outside the prefix: no invalidation

    portal.run(write())
    (held,) = real_proxy.wait_pending(1, TIMEOUT)
    assert (held.kind, held.channel, held.data) == ("invalidate", INVALIDATE_CHANNEL, [b"policy:a"])
    real_proxy.release()
    real_proxy.inject([b"policy:b"], channel=TRACKING)

    async def read_and_close() -> list[Any]:
        try:
            return [(await next_message(pubsub))["data"] for _ in range(2)]
        finally:
            await pubsub.aclose()
            await listener.aclose()
            await tracker.aclose()

    assert portal.run(read_and_close()) == [[b"policy:a"], [b"policy:b"]]
    assert [d.how for d in real_proxy.deliveries] == ["released", "injected"]


@pytest.mark.parametrize("protocol", [2, 3])
def test_shard_channel_messages_are_deliveries_too(
    portal: Portal, real_proxy: WireProxy, real_upstream: Upstream, protocol: int
) -> None:
    async def subscribe() -> tuple[redis.asyncio.Redis, Any]:
        r = client(real_proxy.url, protocol=protocol)
        pubsub = r.pubsub()
        await pubsub.ssubscribe("shard")
        return r, pubsub

    r, pubsub = portal.run(subscribe())
    state = real_proxy.wait_subscribed("shard", TIMEOUT)
    assert state.shard_channels == frozenset({"shard"})
    real_proxy.hold()

    async def publish() -> None:
        async with client(real_upstream.url) as direct:
            await direct.spublish("shard", "s1")

    portal.run(publish())
    (held,) = real_proxy.wait_pending(1, TIMEOUT)
    assert (held.kind, held.channel, held.data) == ("smessage", "shard", b"s1")
    real_proxy.release()

    async def read_and_close() -> Any:
        try:
            return (await next_message(pubsub))["data"]
        finally:
            await pubsub.aclose()
            await r.aclose()

    assert portal.run(read_and_close()) == b"s1"
