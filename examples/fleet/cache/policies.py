"""Policies, read through a local TTL cache that every instance invalidates over Redis pub/sub.

Each process builds its own client from a URL in :meth:`PolicyCache.initialize`
(``decode_responses=True``, as everywhere in fleet). Invalidations are JSON
messages on :data:`CHANNEL`: ``{"op": "invalidate", "name": ...}`` for one
policy, ``{"op": "flush"}`` for all. The rules the cache keeps:

- an entry lives ``ttl`` seconds of ``clock`` (monotonic), even if its
  invalidation is lost;
- a read that misses and sees an invalidation of that name (or a flush) while
  it fetches returns what it fetched but does not cache it;
- a fetch that completes after one started later returns (and caches) nothing
  older than that one read: with an invalidation lost, the older fetch may hold
  the older value, and reads must not go back in time;
- anything on the channel it cannot read drops the whole cache (it refills);
- while the subscription is down nothing is served from or put into the
  cache, and it is dropped when the link goes down and when it comes back
  (redis-py may reconnect a subscription by itself: a new subscribe
  confirmation is how that shows);
- ``update_policy`` stores the value and publishes its invalidation in one
  MULTI/EXEC, so no instance can see the invalidation before the value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

__all__ = ["CHANNEL", "KEY_PREFIX", "PolicyCache", "PolicyNotFound"]

CHANNEL: Final = "fleet:policy-events"
KEY_PREFIX: Final = "fleet:policy:"

_log = logging.getLogger(__name__)


class PolicyNotFound(KeyError):
    """No policy of that name is stored."""


class PolicyCache:
    """Policy reads with a per-process cache, kept coherent across instances."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        channel: str = CHANNEL,
        subscribe_timeout: float = 5.0,
        max_backoff: float = 1.0,
    ) -> None:
        self._url = url
        self._ttl = ttl
        self._clock = clock
        self._channel = channel
        self._subscribe_timeout = subscribe_timeout
        self._max_backoff = max_backoff
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        # name -> (expires at, policy)
        self._entries: dict[str, tuple[float, Mapping[str, Any]]] = {}
        # Fetches are numbered in the order they start; name -> the highest-numbered
        # fetch that completed, and what it read.
        self._tickets = 0
        self._latest: dict[str, tuple[int, Mapping[str, Any]]] = {}
        # Bumped on each invalidation of a name / each drop of the whole cache, so
        # a fetch can tell whether its value was invalidated while in flight.
        self._versions: dict[str, int] = {}
        self._epoch = 0
        self._linked = False
        self.hits = 0
        self.misses = 0

    # -- lifecycle ------------------------------------------------------------------

    async def initialize(self) -> None:
        """Connect and subscribe; returns once the subscription is confirmed."""
        self._redis = aioredis.from_url(self._url, decode_responses=True)
        pubsub = await self._subscribe()
        self._listener = asyncio.create_task(self._listen(pubsub), name="fleet-policy-listener")

    async def close(self) -> None:
        """Stop listening and close the connections."""
        task, self._listener = self._listener, None
        if task is not None:
            # On Python 3.11 redis-py's pubsub read can swallow a cancellation
            # (one racing its result is lost): cancel until the listener ends.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        self._linked = False
        self._entries.clear()

    # -- reads and writes -------------------------------------------------------------

    async def get_policy(self, name: str) -> Mapping[str, Any]:
        """The policy ``name``, from the cache while fresh and the link is up."""
        now = self._clock()
        entry = self._entries.get(name)
        if entry is not None and self._linked and now < entry[0]:
            self.hits += 1
            return entry[1]
        self.misses += 1
        version, epoch = self._versions.get(name, 0), self._epoch
        self._tickets += 1
        ticket = self._tickets
        raw = await self._client().get(KEY_PREFIX + name)
        if raw is None:
            raise PolicyNotFound(name)
        policy: Mapping[str, Any] = MappingProxyType(json.loads(raw))
        latest = self._latest.get(name)
        if latest is not None and latest[0] > ticket:
            return latest[1]  # a fetch started after this one already returned: newer
        self._latest[name] = (ticket, policy)
        if self._linked and epoch == self._epoch and version == self._versions.get(name, 0):
            self._entries[name] = (now + self._ttl, policy)
        return policy

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        """Store ``policy`` and invalidate ``name`` on every instance."""
        body = json.dumps(policy)
        message = json.dumps({"op": "invalidate", "name": name})
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.set(KEY_PREFIX + name, body)
            pipe.publish(self._channel, message)
            await pipe.execute()
        self._invalidate(name)

    # -- invalidation -----------------------------------------------------------------

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("PolicyCache.initialize() was not awaited")
        return self._redis

    def _invalidate(self, name: str) -> None:
        self._versions[name] = self._versions.get(name, 0) + 1
        self._entries.pop(name, None)

    def _drop_all(self) -> None:
        self._epoch += 1
        self._entries.clear()

    def _on_message(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # A confirmation here means redis-py reconnected the subscription by
            # itself: what was published meanwhile is lost.
            _log.warning("policy invalidation link re-established; cache dropped")
            self._drop_all()
            self._linked = True
            return
        if kind != "message":
            return
        try:
            body = json.loads(message["data"])
            op, name = body["op"], body.get("name")
        except (ValueError, TypeError, KeyError, AttributeError):
            _log.warning("unreadable policy invalidation; cache dropped")
            self._drop_all()
            return
        if op == "invalidate" and isinstance(name, str):
            self._invalidate(name)
        else:
            if op != "flush":
                _log.warning("unknown policy invalidation %r; cache dropped", op)
            self._drop_all()

    async def _subscribe(self) -> PubSub:
        pubsub = self._client().pubsub()
        try:
            await pubsub.subscribe(self._channel)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._subscribe_timeout
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"no confirmation of SUBSCRIBE {self._channel}")
                message = await pubsub.get_message(timeout=left)
                if message is not None and message["type"] == "subscribe":
                    break
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        self._pubsub = pubsub
        self._drop_all()
        self._linked = True
        return pubsub

    async def _listen(self, pubsub: PubSub | None) -> None:
        backoff = 0.05
        while True:
            try:
                if pubsub is None:
                    pubsub = await self._subscribe()
                    backoff = 0.05
                async for message in pubsub.listen():
                    self._on_message(message)
                raise ConnectionError("subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever broke the link: drop, wait, subscribe again
                _log.warning("policy invalidation link lost (%r); cache dropped", exc)
                self._linked = False
                self._drop_all()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                pubsub = self._pubsub = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
