"""The ``redis.asyncio`` clients one test made on a :class:`~.source.RedisSource`, and their clean-up."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from pytest_quantum_p1 import _messages

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.connection import AbstractConnection

    from pytest_quantum_p1._redis.source import RedisSource

__all__ = ["LeftOpen", "TrackedClients", "close_client"]

#: What a connection calls once connected (redis-py's ``redis_connect_func``).
ConnectFunc = Callable[["AbstractConnection"], Awaitable[None]]


async def close_client(client: Redis) -> None:
    """Close a ``redis.asyncio`` client of any kind, its connection pool included.

    ``Redis.aclose(close_connection_pool=None)`` closes the pool it made;
    ``RedisCluster.aclose()`` takes no argument and closes every node's
    connections. Both are called here with none.
    """
    await client.aclose()


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

    A loop closed without that step (``loop.close()`` alone) leaves its
    connections open, where nothing can close them any more: teardown
    raises :class:`LeftOpen` saying so, on fakeredis as on a real server (the
    real sockets are shut down first, so the server lets them go).
    """

    def __init__(self, source: RedisSource) -> None:
        self.source = source
        self._clients: list[Redis] = []
        self._closers: list[
            tuple[asyncio.AbstractEventLoop, AsyncGenerator[None], AbstractConnection]
        ] = []

    def __call__(self, **kwargs: Any) -> Redis:
        if self.source.is_cluster:
            client = self.source.client(**kwargs)
            self._track_cluster(client)
            self._clients.append(client)
            return client
        if not self.source.is_fake:
            kwargs.setdefault("redis_connect_func", self._on_connect)
        client = self.source.client(**kwargs)
        if self.source.is_fake:
            # fakeredis drops the keyword; its connections still call it when
            # set on the pool, so a closed loop is found as on a real server.
            client.connection_pool.connection_kwargs.setdefault(
                "redis_connect_func", self._on_connect
            )
        self._clients.append(client)
        return client

    def _track_cluster(self, client: Redis) -> None:
        # RedisCluster takes no redis_connect_func keyword; its nodes make
        # connections from connection_kwargs (the manager's for nodes found
        # later, each startup node's own copy), so the hook goes there, before
        # RedisCluster's own (READONLY on replicas) when it has one.
        manager = cast("RedisCluster", client).nodes_manager
        targets: list[dict[str, Any]] = [manager.connection_kwargs]
        targets += [node.connection_kwargs for node in manager.startup_nodes.values()]
        for kwargs in targets:
            previous: ConnectFunc | None = kwargs.get("redis_connect_func")
            kwargs["redis_connect_func"] = partial(self._on_connect, then=previous)

    async def _on_connect(
        self, connection: AbstractConnection, then: ConnectFunc | None = None
    ) -> None:
        if then is None:
            await connection.on_connect()
        else:
            await then(connection)
        closer = _disconnect_at_loop_shutdown(connection)
        await anext(closer)  # first iteration registers it with the running loop
        self._closers.append((asyncio.get_running_loop(), closer, connection))

    def close(self) -> None:
        """Close every client; raise :class:`LeftOpen` for connections a closed loop stranded."""
        stranded: list[AbstractConnection] = []
        busy = False
        for loop, closer, connection in self._closers:
            if loop.is_closed():
                if getattr(closer, "ag_frame", None) is not None:  # its shutdown never ran it
                    stranded.append(connection)
                continue
            if loop.is_running():  # on another thread (a portal, a session loop)
                busy = True
                try:
                    asyncio.run_coroutine_threadsafe(closer.aclose(), loop).result(10)
                except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
                    # That loop is being stopped under it (Ctrl-C): the
                    # connection is closed when the loop shuts down.
                    continue
            else:
                loop.run_until_complete(closer.aclose())
        for connection in stranded:
            _shut_down(connection)
        for client in self._clients:
            try:
                asyncio.run(close_client(client))
            except RuntimeError:
                # "Event loop is closed": the stranded ones, reported below; or
                # "attached to a different loop": a check abandoned at its
                # deadline or by Ctrl-C still uses it on its loop, which ends with it.
                if not (stranded or busy):
                    raise
        if stranded:
            # Their objects too: a RedisCluster's nodes warn "Unclosed ClusterNode"
            # when collected with a connection still marked connected.
            _STRANDED.extend(self._clients)
            raise LeftOpen(_messages.REDIS_CONNECTIONS_LEFT_OPEN.format(count=len(stranded)))


class LeftOpen(RuntimeError):
    """The test closed an event loop with connections of ``p1_redis`` still open on it."""


#: Transports of stranded connections, kept for the life of the process: one
#: collected later would warn ``unclosed transport`` in whatever test runs then.
_STRANDED: list[object] = []


def _shut_down(connection: AbstractConnection) -> None:
    # Its transport cannot be closed without its loop; the socket can still
    # tell the server the connection is over.
    writer = getattr(connection, "_writer", None)
    transport = getattr(writer, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        _STRANDED.append(transport)
