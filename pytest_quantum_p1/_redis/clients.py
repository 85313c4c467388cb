"""The ``redis.asyncio`` clients one test made on a :class:`~.source.RedisSource`, and their clean-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection

    from pytest_quantum_p1._redis.source import RedisSource

__all__ = ["TrackedClients"]


async def _disconnect_at_loop_shutdown(connection: AbstractConnection) -> AsyncGenerator[None]:
    try:
        yield
    finally:
        await connection.disconnect()


class TrackedClients:
    """The clients one test made on its Redis source, closed when the test ends.

    A ``redis.asyncio`` connection can only be closed on the event loop it
    connected on, and a sync fixture tears down after that loop (typically an
    ``asyncio.run``) is gone. So each real connection parks an async generator
    on its loop; ``asyncio.run``, ``asyncio.Runner`` (pytest-asyncio, anyio)
    and the harness's portal close those before closing the loop, and that
    disconnects the connection. Teardown closes what is left on live loops.
    """

    def __init__(self, source: RedisSource) -> None:
        self.source = source
        self._clients: list[Redis] = []
        self._closers: list[tuple[asyncio.AbstractEventLoop, AsyncGenerator[None]]] = []

    def __call__(self, **kwargs: Any) -> Redis:
        if not self.source.is_fake:
            kwargs.setdefault("redis_connect_func", self._on_connect)
        client = self.source.client(**kwargs)
        self._clients.append(client)
        return client

    async def _on_connect(self, connection: AbstractConnection) -> None:
        await connection.on_connect()
        closer = _disconnect_at_loop_shutdown(connection)
        await anext(closer)  # first iteration registers it with the running loop
        self._closers.append((asyncio.get_running_loop(), closer))

    def close(self) -> None:
        for loop, closer in self._closers:
            if loop.is_closed():  # its shutdown already ran the closer
                continue
            if loop.is_running():  # on another thread (a portal, a session loop)
                asyncio.run_coroutine_threadsafe(closer.aclose(), loop).result(10)
            else:
                loop.run_until_complete(closer.aclose())
        for client in self._clients:
            asyncio.run(client.aclose())
