"""Policy stores of the URL form: each builds its own client from the URL it is given.

The seed's sketch builds its client with ``from_url`` inside ``initialize()``;
:class:`UrlSeedStore` is that sketch done right, with the promises of
:class:`tests.stores.ToyStore` (whose logic it reuses): a client of its own with
``decode_responses=True``, a listener that flushes when its link is lost, fills
guarded against racing invalidations. The harness reaches these stores only
through the URL (a proxy of its own per instance): wrap the class in
``from_url(...)``. Each broken variant turns one promise off; the ``Resp2`` and
``Resp3`` variants pin the protocol (redis-py 8 speaks RESP3 by default).

Its client does not retry: redis-py's retries would reconnect and resubscribe
behind the store's back, and a store that is not told its link went down
cannot flush what it may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pytest_quantum_p1._target import Clock
from tests.stores import CHANNEL, TTL, ToyStore

__all__ = [
    "UrlKeepsCacheOnLinkLoss",
    "UrlNeverInvalidates",
    "UrlRacyFill",
    "UrlSeedStore",
    "UrlSeedStoreResp2",
    "UrlSeedStoreResp3",
]


class UrlSeedStore(ToyStore):
    """The seed's policy store, correct, owning its client: ``UrlSeedStore(url, clock)``."""

    #: ``HELLO`` version to speak (``None``: the client library's default).
    protocol: ClassVar[int | None] = None

    def __init__(self, url: str, clock: Clock, *, ttl: float = TTL) -> None:
        super().__init__(None, clock, ttl=ttl)
        self.url = url

    async def initialize(self) -> None:
        options: dict[str, Any] = {"decode_responses": True, "retry": Retry(NoBackoff(), 0)}
        if self.protocol is not None:
            options["protocol"] = self.protocol
        self.redis = redis.asyncio.from_url(self.url, **options)
        await super().initialize()

    async def _listen(self) -> None:
        while True:
            try:
                await super()._listen()
            except UnicodeDecodeError:
                # decode_responses=True: the client could not decode a message, so
                # which policy it named is unknown (assume the worst), and its
                # connection is left mid-reply: start over on a new one.
                await self._relink()

    async def _subscribe(self) -> Any:
        # No deadline on the confirmation: while the link is down it comes
        # when the link is back, and reads meanwhile go to storage (link_up).
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "subscribe":
                return pubsub

    async def close(self) -> None:
        listener = self.listener
        # redis-py's get_message can lose a cancellation that races its reply
        # (Python 3.11): cancel again until the listener has ended.
        while listener is not None and not listener.done():
            listener.cancel()
            await asyncio.wait({listener}, timeout=0.05)
        try:
            await super().close()
        finally:
            if self.redis is not None:
                with contextlib.suppress(redis.exceptions.RedisError):
                    await self.redis.aclose()


class UrlSeedStoreResp2(UrlSeedStore):
    """Speaks RESP2 (pushes are arrays in subscribe mode)."""

    protocol = 2


class UrlSeedStoreResp3(UrlSeedStore):
    """Speaks RESP3 (pushes are ``>`` frames)."""

    protocol = 3


class UrlNeverInvalidates(UrlSeedStore):
    """Updates publish nothing: the other instances keep their copies until the TTL."""

    publishes = False


class UrlRacyFill(UrlSeedStore):
    """Caches a read that raced an invalidation (the stale-fill race)."""

    guards_fills = False


class UrlKeepsCacheOnLinkLoss(UrlSeedStore):
    """Resubscribes after a lost link but keeps what it cached meanwhile."""

    flushes_on_link_loss = False
