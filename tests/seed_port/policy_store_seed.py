"""The seed's ``PolicyStoreV2`` sketch (P1_MAINTENANCE_TASKS.md, task P1-2), ported as is.

Same structure, same bugs. Only what must change to run here changed, each
marked ``PORT:``:

- the Redis client is passed to the constructor instead of being created in
  ``initialize()`` with ``aioredis.from_url("redis://quantum_redis:6379")``;
- ``_read_policy_from_storage`` / ``_write_policy_to_storage``, which the sketch
  calls but does not show, are a plain JSON ``GET`` / ``SET`` of ``policy:<name>``;
- ``close()``, which the harness's store protocol needs and the sketch lacks,
  does nothing: the sketch keeps no handle on its listener task or pubsub.

Kept on purpose: cache ages from ``datetime.utcnow()`` (wall clock; the
injected clock is ignored), the unguarded cache fill after an ``await`` (a read
racing an invalidation caches the old value), and the listener started with
``asyncio.create_task`` and never supervised, which dies on the first message
that is not UTF-8 (``message["data"].decode()``) or on a lost connection.
Nothing here is meant to be fixed: the reference implementation is the fix.
Type annotations were added so that ``mypy --strict`` covers the tests; they
change nothing the code does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from pytest_quantum_p1 import Clock

logger = logging.getLogger(__name__)


class PolicyStoreV2:
    def __init__(self, redis_client: Redis) -> None:
        # PORT: the sketch creates its client in initialize(); here it is given.
        self._given_client = redis_client
        # None until initialize(), as in the sketch: Any, not Optional, so its
        # calls on the client stay as written.
        self.redis_client: Any = None
        self._cache: dict[str, dict[str, Any]] = {}  # ADD: In-memory cache
        self._cache_ttl = 10  # ADD: 10s TTL
        self._cache_timestamps: dict[str, datetime] = {}  # ADD: Track cache age

    async def initialize(self) -> None:
        # PORT: was `await aioredis.from_url("redis://quantum_redis:6379")`.
        self.redis_client = self._given_client

        # ADD: Subscribe to invalidation events
        await self._subscribe_invalidation()

    async def _subscribe_invalidation(self) -> None:
        """Subscribe to policy update events and invalidate cache."""
        pubsub = self.redis_client.pubsub()
        await pubsub.subscribe("policy:invalidate")

        async def listener() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    policy_name = message["data"].decode()
                    self._invalidate_cache(policy_name)
                    logger.debug(f"Cache invalidated for {policy_name}")

        asyncio.create_task(listener())  # noqa: RUF006  # the seed's bug: never kept or supervised

    # The sketch annotates policy_name as `str = None` (implicit Optional).
    def _invalidate_cache(self, policy_name: str | None = None) -> None:
        """Invalidate specific policy or all cache."""
        if policy_name:
            self._cache.pop(policy_name, None)
            self._cache_timestamps.pop(policy_name, None)
        else:
            self._cache.clear()
            self._cache_timestamps.clear()

    async def get_policy(self, name: str) -> dict[str, Any]:
        """Get policy with caching."""
        # Check cache first
        if name in self._cache:
            age = (datetime.utcnow() - self._cache_timestamps[name]).total_seconds()
            if age < self._cache_ttl:
                logger.debug(f"Cache hit for {name} (age: {age:.1f}s)")
                return self._cache[name]

        # Cache miss - read from Redis/disk
        policy = await self._read_policy_from_storage(name)

        # Update cache
        self._cache[name] = policy
        self._cache_timestamps[name] = datetime.utcnow()

        return policy

    async def update_policy(self, name: str, policy: dict[str, Any]) -> None:
        """Update policy and broadcast invalidation."""
        await self._write_policy_to_storage(name, policy)

        # Broadcast cache invalidation to all backend instances
        await self.redis_client.publish("policy:invalidate", name)

        # Invalidate local cache
        self._invalidate_cache(name)

    # PORT: not shown in the sketch.
    async def _read_policy_from_storage(self, name: str) -> dict[str, Any]:
        policy: dict[str, Any] = json.loads(await self.redis_client.get(f"policy:{name}"))
        return policy

    # PORT: not shown in the sketch.
    async def _write_policy_to_storage(self, name: str, policy: dict[str, Any]) -> None:
        await self.redis_client.set(f"policy:{name}", json.dumps(policy))

    # PORT: the harness's PolicyStore protocol needs close(); the sketch has none.
    async def close(self) -> None:
        pass


def seed_store_factory(redis: Redis, clock: Clock) -> PolicyStoreV2:
    """The harness's ``(redis client, clock) -> store``; the seed cannot take a clock."""
    return PolicyStoreV2(redis)
