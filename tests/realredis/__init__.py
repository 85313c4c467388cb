"""Real Redis at scale: cross-process clusters, faults and load on private redis-servers.

Shared helpers live here because child processes import them by name: a
process-backed cluster is given ``"tests.realredis:SwallowingStore"``, never the
class itself. Nothing here touches a Redis the tests did not start.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Final

from pytest_quantum_p1._target import DEFAULT_CHANNEL, Clock
from reference_impl.p1_target import TARGET

#: The reference backend's target, as child processes import it.
REFERENCE: Final = "reference_impl.p1_target:TARGET"
CHANNEL: Final = DEFAULT_CHANNEL
#: Where the reference store keeps a policy (``key_prefix`` + name).
KEY_PREFIX: Final = "policy:"
REFERENCE_TTL: Final = TARGET.policy_ttl
#: The issue's bound on recovering after a fault.
RECOVERY_BOUND_S: Final = 1.0


def encode(policy: Mapping[str, Any]) -> str:
    """A policy as the reference store writes it."""
    return json.dumps(dict(policy), separators=(",", ":"))


class _ListeningStore:
    """A deliberately small store: TTL cache, a listener on ``get_message``."""

    def __init__(self, redis: Any, clock: Clock, *, ttl: float = REFERENCE_TTL) -> None:
        self.redis = redis
        self.clock = clock
        self.ttl = ttl
        self.cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self.pubsub: Any = None
        self.listener: asyncio.Task[None] | None = None

    async def initialize(self) -> None:
        self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe(CHANNEL)
        confirmation = await self.pubsub.get_message(timeout=5)
        assert confirmation is not None, "Redis did not confirm the subscription"
        self.listener = asyncio.create_task(self.listen())

    async def listen(self) -> None:
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None:
                await self.on_message(message)

    async def on_message(self, message: Mapping[str, Any]) -> None:
        data = message["data"]
        name = data.decode() if isinstance(data, bytes) else str(data)
        self.cache.pop(name, None)

    async def get_policy(self, name: str) -> Mapping[str, Any]:
        entry = self.cache.get(name)
        if entry is not None and entry[0] > self.clock():
            return entry[1]
        expires = self.clock() + self.ttl
        raw = await self.redis.get(KEY_PREFIX + name)
        if raw is None:
            raise KeyError(name)
        policy: dict[str, Any] = json.loads(raw)
        self.cache[name] = (expires, policy)
        return policy

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await self.redis.set(KEY_PREFIX + name, encode(policy))
        self.cache.pop(name, None)
        await self.redis.publish(CHANNEL, name)

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
            # A listener that died of a lost connection has its error to give back.
            await asyncio.gather(self.listener, return_exceptions=True)
        if self.pubsub is not None:
            await self.pubsub.aclose()


class CorrectStore(_ListeningStore):
    """Drops a policy when its name arrives: converges (the control for the broken ones).

    It does not survive a lost connection: its listener dies, nothing resubscribes
    and nothing is flushed, which the fault tests must catch.
    """


class SwallowingStore(_ListeningStore):
    """Reads every invalidation and drops nothing: stale until its TTL."""

    async def on_message(self, message: Mapping[str, Any]) -> None:
        return None


class DeafStore(_ListeningStore):
    """Handles its first invalidation forever: its listener never reads again."""

    async def on_message(self, message: Mapping[str, Any]) -> None:
        await asyncio.Event().wait()


def exploding_factory(redis: Any, clock: Clock) -> CorrectStore:
    """A factory that fails when a child process calls it."""
    raise RuntimeError("exploding_factory: this store cannot be built")
