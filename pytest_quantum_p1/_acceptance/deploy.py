"""The deployment checklist: the target's health check reports healthy (``deploy.health``).

Twice: with the run's Redis, where it must say ``ok``; and with a client to a
Redis that is down (:class:`DownRedis`: a loopback server closing every
connection at once), where it must say anything but ``ok``. A check that
says ``ok`` either way checks no Redis. Raising a connection error when Redis
is down counts as reporting it (an endpoint answering 500).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.drive import run
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.verdict import bullets, fail

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from pytest_quantum_p1._redis.source import RedisFactory
    from pytest_quantum_p1._target import P1Target

__all__ = ["DownRedis", "criterion_health"]


class DownRedis:
    """A Redis that is down: a loopback port whose every connection is closed at once.

    Counts the connections, so the verdict can say whether the health check
    tried this Redis at all. Use inside the event loop the health check runs in.
    """

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> DownRedis:
        self._server = await asyncio.start_server(self._refuse, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def client(self) -> Redis:
        """A client to this Redis, failing fast (the health check's own timeouts still apply).

        No retries: redis-py 6+ retries a refused connection three times with
        backoff (about 4 s), which would time the client, not the health check.
        """
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return Redis(
            host="127.0.0.1",
            port=self.port,
            socket_connect_timeout=1,
            socket_timeout=1,
            retry=Retry(NoBackoff(), 0),
        )

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


def criterion_health(
    p1_target: P1Target, p1_redis_factory: RedisFactory, _p1_criterion: CriterionRecord
) -> None:
    """The target's health check reports healthy, and not healthy when Redis is down."""
    from redis.exceptions import RedisError

    health = p1_target.health
    if health is None:
        pytest.skip(_messages.DEPLOY_NO_HEALTH_CHECK)

    async def probe() -> Mapping[str, Any]:
        client = p1_redis_factory()
        try:
            return await health(p1_target.bus(), client)
        finally:
            await client.aclose()

    async def probe_down() -> tuple[Mapping[str, Any] | BaseException, int]:
        async with DownRedis() as down:
            client = down.client()
            try:
                return await health(p1_target.bus(), client), down.connections
            except (RedisError, OSError) as exc:  # TimeoutError is an OSError
                return exc, down.connections
            finally:
                await client.aclose()

    started = time.perf_counter()
    report = run(probe())
    status = report.get("status")
    _p1_criterion.figures = {"health_ms": round((time.perf_counter() - started) * 1000, 3)}
    _p1_criterion.summary = _messages.DEPLOY_HEALTH_SUMMARY.format(status=status)
    if status != "ok":
        fail(
            _messages.DEPLOY_HEALTH_NOT_OK.format(status=status),
            *bullets([f"{k}: {v!r}" for k, v in report.items() if k != "status"]),
            _messages.DEPLOY_HEALTH_NOT_OK_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
    down_report, connections = run(probe_down())
    _p1_criterion.figures["redis_down_connections"] = connections
    if isinstance(down_report, BaseException) or down_report.get("status") != "ok":
        return
    _p1_criterion.summary = _messages.DEPLOY_HEALTH_OK_WHILE_DOWN_SUMMARY
    fail(
        _messages.DEPLOY_HEALTH_OK_WHILE_DOWN,
        *bullets([f"{k}: {v!r}" for k, v in down_report.items()]),
        _messages.DEPLOY_HEALTH_CONNECTED.format(connections=connections)
        if connections
        else _messages.DEPLOY_HEALTH_NEVER_CONNECTED,
        _messages.DEPLOY_HEALTH_OK_WHILE_DOWN_FIX,
        _messages.ACCEPTANCE_READ_MORE,
    )
