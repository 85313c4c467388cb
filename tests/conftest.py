"""Shared fixtures of the project's own tests: one Redis per test, fake or real.

What every run from this checkout shares (pytester, isolating its inner runs)
is in the repository's root ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from pytest_quantum_p1._redis.server import RedisServer, require_redis_server
from pytest_quantum_p1._redis.source import RedisSource


class RedisBackend:
    """One Redis for one test: fakeredis or the private redis-server.

    :attr:`source` is the harness's :class:`RedisSource` for it (what
    ``PolicyCluster.open`` takes); :meth:`client` makes a new
    ``redis.asyncio`` client on it each call: call it inside the running event
    loop, and close what it returns.
    """

    def __init__(self, source: RedisSource) -> None:
        self.source = source
        #: ``"fake"`` or ``"server"``, as in the test ids.
        self.name = "fake" if source.is_fake else "server"

    def client(self, **options: Any) -> Redis:
        """A new client on this backend; ``options`` go to the client's constructor."""
        return self.source.client(**options)

    def __repr__(self) -> str:
        return f"<RedisBackend {self.name}>"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, for the whole session."""
    with require_redis_server() as server:
        yield server


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    """The session's private redis-server, emptied for this test."""
    # The server is private to this session: the harness may empty it.
    RedisSource.server(redis_server.url).flush()
    return redis_server.url


@pytest.fixture(
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("server", id="server", marks=pytest.mark.real_redis),
    ]
)
def redis_backend(request: pytest.FixtureRequest) -> RedisBackend:
    """Each test that uses it runs once on fakeredis and once on a real server."""
    if request.param == "fake":
        return RedisBackend(RedisSource.fake())  # a fakeredis server of its own
    url: str = request.getfixturevalue("url")
    return RedisBackend(RedisSource.server(url))


@pytest.fixture
def redis_source(redis_backend: RedisBackend) -> RedisSource:
    """:attr:`RedisBackend.source` of :func:`redis_backend`: fakeredis, then the real server."""
    return redis_backend.source
