"""Fixtures of the wire tests: a portal loop, an upstream Redis (fake TCP or real) and a proxy on it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import fakeredis
import pytest

from pytest_quantum_p1._harness.portal import Portal
from pytest_quantum_p1._redis.server import RedisServer
from pytest_quantum_p1._wire.proxy import WireProxy


class Upstream:
    """The Redis a proxy forwards to: ``name`` is ``"fake"`` or ``"server"``, as in the test ids."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.host = host
        self.port = port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return (self.host, self.port)

    @property
    def url(self) -> str:
        """``redis://host:port/0``: the direct way, bypassing the proxy."""
        return f"redis://{self.host}:{self.port}/0"

    def __repr__(self) -> str:
        return f"<Upstream {self.name} {self.host}:{self.port}>"


def fake_tcp_server() -> tuple[fakeredis.TcpFakeServer, threading.Thread]:
    """A fakeredis TCP server on a free loopback port, served by a thread (the caller stops it)."""
    server = fakeredis.TcpFakeServer(("127.0.0.1", 0))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return server, thread


def stop_fake_tcp_server(server: fakeredis.TcpFakeServer, thread: threading.Thread) -> None:
    """Stop what :func:`fake_tcp_server` started."""
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture(
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("server", id="server", marks=pytest.mark.real_redis),
    ]
)
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    """Each test that uses it runs on fakeredis's TCP server, then on the private redis-server."""
    if request.param == "fake":
        server, thread = fake_tcp_server()
        try:
            yield Upstream("fake", "127.0.0.1", server.server_address[1])
        finally:
            stop_fake_tcp_server(server, thread)
        return
    request.getfixturevalue("url")  # empties the session's private server
    real: RedisServer = request.getfixturevalue("redis_server")
    yield Upstream("server", real.host, real.port)


@pytest.fixture
def real_upstream(url: str, redis_server: RedisServer) -> Upstream:
    """The private redis-server only (for what fakeredis lacks: CLIENT TRACKING)."""
    return Upstream("server", redis_server.host, redis_server.port)


@pytest.fixture
def portal() -> Iterator[Portal]:
    """A portal loop in asyncio debug mode, as the harness runs stores on."""
    with Portal(name="p1-wire-test") as running:
        running.loop.set_debug(True)
        yield running


def _make_proxy(portal: Portal, upstream: Upstream) -> Iterator[WireProxy]:
    proxy = WireProxy(upstream.address, label="instance 0", loop=portal.loop)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
        assert portal.call(_other_tasks) == [], "the proxy left tasks behind"


async def _other_tasks() -> list[str]:
    me = asyncio.current_task()
    return [t.get_name() for t in asyncio.all_tasks() if t is not me]


@pytest.fixture
def proxy(portal: Portal, upstream: Upstream) -> Iterator[WireProxy]:
    """A started proxy on :func:`upstream`, on the portal's loop; closed (no task left) after."""
    yield from _make_proxy(portal, upstream)


@pytest.fixture
def real_proxy(portal: Portal, real_upstream: Upstream) -> Iterator[WireProxy]:
    """A started proxy on the private redis-server."""
    yield from _make_proxy(portal, real_upstream)
