"""Fixtures of the real-server suites."""

from __future__ import annotations

import pytest
import redis

from pytest_quantum_p1._redis import RedisServer


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    """The session's private redis-server, emptied for this test."""
    # The session's server is private to this run: emptying it is safe.
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.flushall()
    return redis_server.url
