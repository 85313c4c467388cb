"""The tests' one toy policy store: small and correct, with a switch per promise.

:class:`ToyStore` keeps every promise the harness checks: a TTL cache on the
injected clock, an update that publishes its name, a listener on
``client.pubsub().get_message`` that drops what it is told, fills guarded
against racing invalidations and against overwriting a newer fill, and a lost
link that is noticed, flushed and resubscribed. Each class-level switch keeps
one promise; a broken variant turns one off. The variants are module-level
classes because a process-backed cluster is given names, never objects
(``"tests.stores:NeverPublishes"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, ClassVar

import redis.exceptions

from pytest_quantum_p1._target import DEFAULT_CHANNEL, Clock

__all__ = [
    "CHANNEL",
    "KEY_PREFIX",
    "TTL",
    "AnnouncesBeforeAndAfter",
    "AwaitsOwnInvalidation",
    "BacksOffBeforeResubscribing",
    "CachesForever",
    "CountsInADict",
    "DiesOnGarbage",
    "DiesOnUnknownMessages",
    "DiesWithItsLink",
    "HangsOnInitialize",
    "InvalidatesByKeyList",
    "KeepsCacheOnLinkLoss",
    "KeepsItsOldCopy",
    "NeverPublishes",
    "NeverReads",
    "NeverSubscribes",
    "OverwritesNewerFill",
    "PublishesBeforeStoring",
    "RacyFill",
    "RaisesInFactory",
    "RaisesOnInitialize",
    "ReturnsCopies",
    "StallsOnGarbage",
    "StopsReading",
    "SwallowsMessages",
    "ToyStore",
    "WordsItsOwnMessages",
    "WritesThrough",
    "WritesThroughWhileLinked",
    "encode",
]

CHANNEL = DEFAULT_CHANNEL
#: Where a policy is kept: ``KEY_PREFIX + name``, as the reference store keeps it.
KEY_PREFIX = "policy:"
TTL = 10.0


def encode(policy: Mapping[str, Any]) -> str:
    """A policy as the reference store writes it (compact JSON)."""
    return json.dumps(dict(policy), separators=(",", ":"))


class ToyStore:
    """A correct store the size of a test; each broken variant flips one switch."""

    #: An update publishes the policy's name, so other instances drop their copy.
    publishes: ClassVar[bool] = True
    #: An invalidation drops the named policy (a payload that is not UTF-8 flushes all).
    drops_on_message: ClassVar[bool] = True
    #: The listener comes back for the next message once it handled one.
    keeps_reading: ClassVar[bool] = True
    #: A cached entry expires ``ttl`` seconds (of the injected clock) after its read began.
    honours_ttl: ClassVar[bool] = True
    #: A read that raced an invalidation, a flush or a down link is not cached.
    guards_fills: ClassVar[bool] = True
    #: A slow miss never overwrites what a miss begun after it cached.
    fills_in_order: ClassVar[bool] = True
    #: A lost link is noticed and resubscribed; without it the listener dies with the link.
    resubscribes: ClassVar[bool] = True
    #: A lost link flushes the cache (invalidations may have been missed meanwhile).
    flushes_on_link_loss: ClassVar[bool] = True
    #: ``initialize()`` subscribes to the channel.
    subscribes: ClassVar[bool] = True
    #: ``initialize()`` returns.
    initialize_returns: ClassVar[bool] = True

    def __init__(self, redis: Any, clock: Clock, *, ttl: float = TTL) -> None:
        self.redis = redis
        self.clock = clock
        self.ttl = ttl
        # name -> (expiry on the clock, policy)
        self.cache: dict[str, tuple[float, dict[str, Any]]] = {}
        # Bumped by each drop of a name, and by each fill: a miss that saw an
        # older generation must not fill.
        self.generation: defaultdict[str, int] = defaultdict(int)
        # Bumped by each flush, for the same reason.
        self.epoch = 0
        #: Whether the subscription is confirmed and believed alive.
        self.link_up = False
        self.pubsub: Any = None
        self.listener: asyncio.Task[None] | None = None

    async def initialize(self) -> None:
        if not self.initialize_returns:
            await asyncio.Event().wait()
        if not self.subscribes:
            return
        self.pubsub = await self._subscribe()
        self.link_up = True
        self.listener = asyncio.create_task(self._listen())

    async def _subscribe(self) -> Any:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        while True:
            message = await pubsub.get_message(timeout=5)
            assert message is not None, "Redis did not confirm the subscription"
            if message["type"] == "subscribe":
                return pubsub

    async def _listen(self) -> None:
        while True:
            try:
                message = await self.pubsub.get_message(timeout=None)
            except redis.exceptions.ConnectionError:
                if not self.resubscribes:
                    raise  # nothing noticed, nothing flushed, never resubscribed
                await self._relink()
                continue
            if message is None or message["type"] != "message":
                continue
            self.on_message(message["data"])
            if not self.keeps_reading:
                await asyncio.Event().wait()

    async def _relink(self) -> None:
        self.link_up = False
        if self.flushes_on_link_loss:
            self._flush()
        while True:
            with contextlib.suppress(redis.exceptions.RedisError):
                await self.pubsub.aclose()
            try:
                self.pubsub = await self._subscribe()
                break
            except redis.exceptions.ConnectionError:
                continue  # lost again while resubscribing
        if self.flushes_on_link_loss:
            self._flush()  # whatever was published meanwhile is lost
        self.link_up = True

    def on_message(self, data: bytes | str) -> None:
        if not self.drops_on_message:
            return
        if isinstance(data, str):  # a client with decode_responses=True
            self._drop(data)
            return
        try:
            name = data.decode()
        except UnicodeDecodeError:
            self._flush()  # not a name: assume the worst
            return
        self._drop(name)

    def _drop(self, name: str) -> None:
        self.cache.pop(name, None)
        self.generation[name] += 1

    def _flush(self) -> None:
        self.cache.clear()
        self.epoch += 1

    async def get_policy(self, name: str) -> dict[str, Any]:
        entry = self.cache.get(name)
        if entry is not None and (not self.honours_ttl or entry[0] > self.clock()):
            return entry[1]
        generation, epoch = self.generation[name], self.epoch
        # The value may be as old as the moment the GET was sent.
        expires = self.clock() + self.ttl
        raw = await self.redis.get(KEY_PREFIX + name)
        if raw is None:
            raise KeyError(name)
        policy: dict[str, Any] = json.loads(raw)
        untouched = self.link_up and generation == self.generation[name] and epoch == self.epoch
        if untouched or not self.guards_fills:
            self.cache[name] = (expires, policy)
            if self.fills_in_order:
                # A miss begun earlier may still be in flight with an older
                # value: it must not overwrite this one.
                self.generation[name] += 1
        return policy

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await self.redis.set(KEY_PREFIX + name, encode(policy))
        self._drop(name)
        if self.publishes:
            await self.redis.publish(CHANNEL, name)

    async def close(self) -> None:
        if self.listener is not None:
            # redis-py's get_message can lose a cancellation that races its reply
            # (Python 3.11): cancel again until the listener has ended.
            while not self.listener.done():
                self.listener.cancel()
                await asyncio.wait({self.listener}, timeout=0.05)
            # A broken variant's listener may have died; the harness reported that.
            with contextlib.suppress(asyncio.CancelledError, redis.exceptions.RedisError):
                await self.listener
        if self.pubsub is not None:
            await self.pubsub.aclose()


class NeverPublishes(ToyStore):
    """Updates never invalidate the other instances."""

    publishes = False


class SwallowsMessages(ToyStore):
    """The listener reads every invalidation and drops nothing: stale until the TTL."""

    drops_on_message = False


class StopsReading(ToyStore):
    """Handles its first invalidation, then never reads again."""

    keeps_reading = False


class CachesForever(ToyStore):
    """Ignores its TTL: a missed invalidation is never healed."""

    honours_ttl = False


class RacyFill(ToyStore):
    """Caches a read that raced an invalidation."""

    guards_fills = False


class OverwritesNewerFill(ToyStore):
    """A slow miss overwrites what a later miss cached."""

    fills_in_order = False


class DiesWithItsLink(ToyStore):
    """Its listener dies with a lost link: nothing noticed, flushed or resubscribed."""

    resubscribes = False


class KeepsCacheOnLinkLoss(ToyStore):
    """Resubscribes after a lost link but keeps what it cached."""

    flushes_on_link_loss = False


class NeverSubscribes(ToyStore):
    """``initialize()`` forgets to subscribe at all."""

    subscribes = False


class HangsOnInitialize(ToyStore):
    """``initialize()`` never returns."""

    initialize_returns = False


# --- correct stores of other shapes (P1-2 verdicts must not reject them) ---------


class WritesThrough(ToyStore):
    """Caches the new value on update instead of dropping it (write-through)."""

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await super().update_policy(name, policy)
        # Its own invalidation, coming back later, drops this copy: harmless.
        self.cache[name] = (self.clock() + self.ttl, dict(policy))
        self.generation[name] += 1  # a miss in flight must not overwrite it


class AwaitsOwnInvalidation(ToyStore):
    """Keeps its copy on update and returns once its own invalidation came back and dropped it."""

    def __init__(self, redis: Any, clock: Clock, *, ttl: float = TTL) -> None:
        super().__init__(redis, clock, ttl=ttl)
        self.echoes: dict[str, asyncio.Event] = {}

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        echo = self.echoes[name] = asyncio.Event()
        await self.redis.set(KEY_PREFIX + name, encode(policy))
        await self.redis.publish(CHANNEL, name)
        await echo.wait()

    def on_message(self, data: bytes | str) -> None:
        super().on_message(data)
        name = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        echo = self.echoes.pop(name, None)
        if echo is not None:
            echo.set()


class AnnouncesBeforeAndAfter(ToyStore):
    """Publishes the invalidation before writing, and again once the value is stored."""

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await self.redis.publish(CHANNEL, name)
        await super().update_policy(name, policy)


class WordsItsOwnMessages(ToyStore):
    """Invalidations are JSON objects (``{"invalidate": name}``), not bare names."""

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await self.redis.set(KEY_PREFIX + name, encode(policy))
        self._drop(name)
        await self.redis.publish(CHANNEL, json.dumps({"invalidate": name}))

    def on_message(self, data: bytes | str) -> None:
        try:
            name = json.loads(data)["invalidate"]
        except (ValueError, KeyError, TypeError):
            self._flush()  # not one of ours: assume the worst
            return
        self._drop(str(name))


class InvalidatesByKeyList(ToyStore):
    """Invalidations are JSON lists of storage keys (``["policy:a"]``), as tracking caches send.

    A message that is not such a list flushes everything (assume the worst).
    """

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await self.redis.set(KEY_PREFIX + name, encode(policy))
        self._drop(name)
        await self.redis.publish(CHANNEL, json.dumps([KEY_PREFIX + name]))

    def on_message(self, data: bytes | str) -> None:
        try:
            keys = json.loads(data)
        except ValueError:
            keys = None
        if not isinstance(keys, list):
            self._flush()
            return
        for key in keys:
            if isinstance(key, str) and key.startswith(KEY_PREFIX):
                self._drop(key.removeprefix(KEY_PREFIX))


class DiesOnUnknownMessages(WordsItsOwnMessages):
    """Correct, but its listener dies on any message not in its own JSON format.

    As cashews' tracking listener does on a message it cannot parse: a harness
    that published anything of its own on the store's channel would kill it.
    """

    def on_message(self, data: bytes | str) -> None:
        name = json.loads(data)["invalidate"]  # anything else raises: the listener dies
        self._drop(str(name))


class ReturnsCopies(ToyStore):
    """Returns a shallow copy of the cached policy, so callers cannot mutate the cache."""

    async def get_policy(self, name: str) -> dict[str, Any]:
        return dict(await super().get_policy(name))


class CountsInADict(ToyStore):
    """Counts its hits and misses under names of its own: ``counters["cache_hit"]`` ..."""

    def __init__(self, redis: Any, clock: Clock, *, ttl: float = TTL) -> None:
        super().__init__(redis, clock, ttl=ttl)
        self.counters = {"cache_hit": 0, "cache_miss": 0}

    async def get_policy(self, name: str) -> dict[str, Any]:
        entry = self.cache.get(name)
        fresh = entry is not None and entry[0] > self.clock()
        self.counters["cache_hit" if fresh else "cache_miss"] += 1
        return await super().get_policy(name)


# --- the stale-read search (issue 12 §6): interleavings, timing, no-verdict causes ---------


class PublishesBeforeStoring(ToyStore):
    """Publishes the invalidation, then writes: a reader in between refills the old value."""

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        self._drop(name)
        await self.redis.publish(CHANNEL, name)
        await self.redis.set(KEY_PREFIX + name, encode(policy))


class DiesOnGarbage(ToyStore):
    """Its listener dies on the first message that is not UTF-8 (as the seed's does)."""

    def on_message(self, data: bytes | str) -> None:
        self._drop(data.decode() if isinstance(data, bytes) else data)


class KeepsItsOldCopy(ToyStore):
    """An update leaves the writer's own copy in place until its invalidation comes back."""

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await self.redis.set(KEY_PREFIX + name, encode(policy))
        await self.redis.publish(CHANNEL, name)


class BacksOffBeforeResubscribing(ToyStore):
    """Waits ``backoff`` real seconds after a lost link before resubscribing (correct, slow)."""

    backoff: ClassVar[float] = 0.3

    async def _relink(self) -> None:
        self.link_up = False
        self._flush()
        await asyncio.sleep(self.backoff)
        await super()._relink()


class RaisesInFactory(ToyStore):
    """Its constructor raises: no store can be built."""

    def __init__(self, redis: Any, clock: Clock, *, ttl: float = TTL) -> None:
        raise RuntimeError("cannot build a store: no configuration")


class RaisesOnInitialize(ToyStore):
    """``initialize()`` raises."""

    async def initialize(self) -> None:
        raise ConnectionError("initialize() cannot reach its Redis")


class NeverReads(ToyStore):
    """Subscribes in ``initialize()`` but never reads the subscription."""

    async def initialize(self) -> None:
        self.pubsub = await self._subscribe()
        self.link_up = True


class StallsOnGarbage(ToyStore):
    """Its listener stops for good (never asks for the next message) after one that is not UTF-8."""

    def on_message(self, data: bytes | str) -> None:
        if isinstance(data, bytes) and not data.isascii():
            self.keeps_reading = False  # type: ignore[misc]  # this instance only
        super().on_message(data)


class WritesThroughWhileLinked(ToyStore):
    """Write-through, done right: caches its own new value, unless its invalidation link is down.

    (:class:`WritesThrough` caches it even while the link is down, when another
    instance's newer write cannot reach it: the search finds that stale read.)
    """

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await super().update_policy(name, policy)
        if self.link_up:
            self.cache[name] = (self.clock() + self.ttl, dict(policy))
            self.generation[name] += 1  # a miss in flight must not overwrite it
