"""Shared fixtures of the project's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from redis.asyncio import Redis

from pytest_quantum_p1._redis.server import RedisServer, require_redis_server

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _isolate_pytester_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Options meant for the outer run must not leak into pytester's inner runs.
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


class RedisBackend:
    """One Redis for one test: fakeredis or the private redis-server.

    :meth:`client` makes a new ``redis.asyncio`` client on it each call; call it
    inside the running event loop, and close what it returns.
    """

    def __init__(self, name: str, factory: Callable[..., Redis]) -> None:
        self.name = name
        self._factory = factory

    def client(self, **options: Any) -> Redis:
        """A new client on this backend; ``options`` go to the client's constructor."""
        return self._factory(**options)

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
    # The server is private to this session: emptying it is safe.
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.flushall()
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
        fake_server = fakeredis.FakeServer()
        return RedisBackend(
            "fake", lambda **options: fakeredis.FakeAsyncRedis(server=fake_server, **options)
        )
    url: str = request.getfixturevalue("url")
    return RedisBackend("server", lambda **options: redis.asyncio.Redis.from_url(url, **options))
