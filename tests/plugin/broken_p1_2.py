"""P1-2 (policy cache) targets: the reference broken in one way per bug kind, and correct stores of other shapes.

The broken stores subclass the reference :class:`PolicyStoreV2` and change one
thing, so every other criterion still passes; where the flaw lives inside the
reference (how it writes, what its listener does with a message) they
override that one private method, checked by ``_overridable``. The correct
stores of other shapes are the toy's variants (``tests/stores.py``): each
proves a check does not reject a design it has no reason to reject.

Builders are ``root -> P1Target``, module-level, as ``write_target_module`` needs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_quantum_p1 import Clock, P1Target, PolicyStore
from reference_impl.services.policy_store_v2 import PolicyStoreV2
from tests import stores
from tests.plugin.broken_targets import _overridable, _with_store

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "listener_dying_on_garbage",
    "listener_stopping_after_a_lost_link",
    "plain_toy",
    "store_comparing_bytes_with_str_names",
    "store_decoding_json_on_every_hit",
    "store_publishing_before_it_writes",
    "store_serving_extra_fields",
    "store_whose_counters_flatter",
    "toy_announcing_before_and_after",
    "toy_awaiting_its_own_invalidation",
    "toy_counting_under_other_names",
    "toy_never_publishing",
    "toy_returning_copies",
    "toy_with_its_own_message_format",
    "toy_writing_through",
    "writer_keeping_its_old_value",
]


def _toy(store_class: type[stores.ToyStore]) -> P1Target:
    def factory(redis: Redis, clock: Clock) -> PolicyStore:
        return store_class(redis, clock)

    return _with_store(factory)


# --- broken: one promise each -------------------------------------------------------


class _WriterKeepingItsOldValue(PolicyStoreV2):
    """Leaves its own copy to the invalidation coming back over pub/sub.

    The reference drops it in ``update_policy`` right after the write; this
    skips that one drop (the next ``_drop`` of the name, with no await between).
    """

    def __init__(self, redis: Redis, *, clock: Clock) -> None:
        super().__init__(redis, clock=clock)
        self._written: str | None = None

    async def _write(self, name: str, data: str) -> None:
        await super()._write(name, data)
        self._written = name

    def _drop(self, name: str) -> None:
        if name == self._written:
            self._written = None
            return
        super()._drop(name)


def writer_keeping_its_old_value(root: Path) -> P1Target:
    """P1-2.read-your-writes: right after its own update, the writer still serves its old copy."""
    _overridable("_write")
    _overridable("_drop")
    return _with_store(lambda redis, clock: _WriterKeepingItsOldValue(redis, clock=clock))


class _StorePublishingBeforeItWrites(PolicyStoreV2):
    """Publishes the invalidation, then writes the value: two commands, in the wrong order."""

    async def _write(self, name: str, data: str) -> None:
        await self._redis.publish(self._channel, name)
        await self._redis.set(self._key_prefix + name, data)


def store_publishing_before_it_writes(root: Path) -> P1Target:
    """P1-2.write-then-invalidate: an instance that reads in between caches the old value."""
    _overridable("_write")
    return _with_store(lambda redis, clock: _StorePublishingBeforeItWrites(redis, clock=clock))


class _ListenerStoppingAfterALostLink(PolicyStoreV2):
    """The seed's listener: it pumps messages until the link fails, then ends for good.

    The cache is flushed and, its link down, never filled again.
    """

    async def _listen(self) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            await self._pump(pubsub)
        except Exception:
            self._set_link(up=False)


def listener_stopping_after_a_lost_link(root: Path) -> P1Target:
    """P1-2.link-recovery: after a lost link the store never subscribes or caches again."""
    _overridable("_listen")
    _overridable("_pump")
    return _with_store(lambda redis, clock: _ListenerStoppingAfterALostLink(redis, clock=clock))


class _ListenerDied(BaseException):
    """Ends the listener task: the reference's loop catches ``Exception`` only."""


class _ListenerDyingOnGarbage(PolicyStoreV2):
    """Decodes each message strictly, like the seed's ``message["data"].decode()``, and its
    listener ends on the first one that is not UTF-8, while the store serves its cache on."""

    def _apply(self, data: object) -> None:
        if isinstance(data, bytes):
            data.decode("utf-8")  # raises on garbage
        super()._apply(data)

    async def _pump(self, pubsub: Any) -> None:
        try:
            await super()._pump(pubsub)
        except UnicodeDecodeError:
            raise _ListenerDied from None

    async def _listen(self) -> None:
        try:
            await super()._listen()
        except _ListenerDied:
            return


def listener_dying_on_garbage(root: Path) -> P1Target:
    """P1-2.garbage-messages: one message that is not UTF-8 ends the listener."""
    for name in ("_apply", "_pump", "_listen"):
        _overridable(name)
    return _with_store(lambda redis, clock: _ListenerDyingOnGarbage(redis, clock=clock))


class _StoreDecodingJsonOnEveryHit(PolicyStoreV2):
    """Keeps each policy's JSON text and decodes it on every hit (the seed's 10-15 % CPU).

    The reference decides hit or miss; on a miss the text is kept (encoded
    once, standing for what Redis returned), on a hit it is parsed again.
    """

    def __init__(self, redis: Redis, *, clock: Clock) -> None:
        super().__init__(redis, clock=clock)
        self.texts: dict[str, str] = {}

    async def get_policy(self, name: str) -> dict[str, Any]:
        misses = self.stats.misses
        policy = await super().get_policy(name)
        if self.stats.misses > misses or name not in self.texts:
            self.texts[name] = json.dumps(policy)
            return policy
        decoded: dict[str, Any] = json.loads(self.texts[name])
        return decoded


def store_decoding_json_on_every_hit(root: Path) -> P1Target:
    """P1-2.no-reparse: a hit costs in proportion to the policy's size.

    Small policies (the other criteria's) cost a few microseconds more a hit:
    still far under the budget, and far cheaper than a read from storage.
    """
    return _with_store(lambda redis, clock: _StoreDecodingJsonOnEveryHit(redis, clock=clock))


class _StoreWhoseCountersFlatter(PolicyStoreV2):
    """Counts a hit for every name it read before, expired or invalidated since."""

    def __init__(self, redis: Redis, *, clock: Clock) -> None:
        super().__init__(redis, clock=clock)
        self.seen: set[str] = set()
        self.hits = 0
        self.misses = 0

    async def get_policy(self, name: str) -> dict[str, Any]:
        if name in self.seen:
            self.hits += 1
        else:
            self.misses += 1
            self.seen.add(name)
        return await super().get_policy(name)


def _flattering_counters(store: Any) -> tuple[int, int]:
    return store.hits, store.misses


def store_whose_counters_flatter(root: Path) -> P1Target:
    """P1-2.counters: the store's own hit rate is far higher than the harness's count."""
    target = _with_store(lambda redis, clock: _StoreWhoseCountersFlatter(redis, clock=clock))
    return dataclasses.replace(target, cache_counters=_flattering_counters)


class _StoreComparingBytesWithStrNames(PolicyStoreV2):
    """Looks the message up as it arrives: ``bytes`` never equals a cached ``str`` name."""

    def _apply(self, data: object) -> None:
        self._drop(data)  # type: ignore[arg-type]  # the bug: data is bytes


def store_comparing_bytes_with_str_names(root: Path) -> P1Target:
    """P1-2.invalidation: subscribed, receiving and processing every message, dropping nothing."""
    _overridable("_apply")
    _overridable("_drop")
    return _with_store(lambda redis, clock: _StoreComparingBytesWithStrNames(redis, clock=clock))


class _StoreServingExtraFields(PolicyStoreV2):
    """Adds a field of its own to every policy it serves."""

    async def get_policy(self, name: str) -> dict[str, Any]:
        return {**await super().get_policy(name), "served_by": "cache"}


def store_serving_extra_fields(root: Path) -> P1Target:
    """P1-2.ttl (among others): a read serves something other than what was stored."""
    return _with_store(lambda redis, clock: _StoreServingExtraFields(redis, clock=clock))


def toy_never_publishing(root: Path) -> P1Target:
    """The toy whose updates never publish an invalidation (its own listener hears nothing)."""
    return _toy(stores.NeverPublishes)


# --- correct, of other shapes -----------------------------------------------------------


def toy_writing_through(root: Path) -> P1Target:
    """Correct: update caches the new value (write-through) instead of dropping it."""
    return _toy(stores.WritesThrough)


def toy_awaiting_its_own_invalidation(root: Path) -> P1Target:
    """Correct: update returns once the writer's own invalidation came back and dropped its copy."""
    return _toy(stores.AwaitsOwnInvalidation)


def toy_announcing_before_and_after(root: Path) -> P1Target:
    """Correct: publishes before writing and again after, so an early refill is dropped."""
    return _toy(stores.AnnouncesBeforeAndAfter)


def toy_with_its_own_message_format(root: Path) -> P1Target:
    """Correct: invalidations are JSON objects, not bare policy names."""
    return _toy(stores.WordsItsOwnMessages)


def toy_invalidating_by_key_list(root: Path) -> P1Target:
    """Correct: invalidations are JSON lists of storage keys, as tracking caches send."""
    return _toy(stores.InvalidatesByKeyList)


def toy_dying_on_unknown_messages(root: Path) -> P1Target:
    """Correct in its own format, but its listener dies on any other message (as cashews')."""
    return _toy(stores.DiesOnUnknownMessages)


def toy_returning_copies(root: Path) -> P1Target:
    """Correct: every read returns a shallow copy of the cached policy."""
    return _toy(stores.ReturnsCopies)


def _counters_in_a_dict(store: Any) -> tuple[int, int]:
    counters: Mapping[str, int] = store.counters
    return counters["cache_hit"], counters["cache_miss"]


def toy_counting_under_other_names(root: Path) -> P1Target:
    """Correct: counters under names of its own, read by the adapter."""
    return dataclasses.replace(_toy(stores.CountsInADict), cache_counters=_counters_in_a_dict)


def plain_toy(root: Path) -> P1Target:
    """Correct: the toy as it is (resubscribes at once, flushes on garbage, no counters declared)."""
    return dataclasses.replace(_toy(stores.ToyStore), cache_counters=None)
