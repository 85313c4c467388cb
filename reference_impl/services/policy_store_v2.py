"""PolicyStoreV2: policies in Redis, a local TTL cache, invalidation over pub/sub.

This is the seed's task P1-2 done right. Each process keeps the policies it
reads in a dict with a TTL on an injected monotonic clock; ``update_policy``
writes the new JSON and publishes the policy name on an invalidation channel
in one atomic round trip (a server-side script; MULTI/EXEC where the server
has no scripting), and every store's listener drops its copy when the name
arrives. Compared with the seed's sketch:

- a read racing an invalidation never caches the old value: each miss notes the
  name's generation and the store's epoch before fetching, and fills the cache
  only if neither moved and the invalidation link is up;
- a lost invalidation link flushes the cache (the rule of Redis's
  client-side-caching guide: invalidations may have been missed), nothing is
  cached until the listener has resubscribed, and resubscription retries with
  capped exponential backoff instead of the listener dying silently;
- garbage on the channel is counted, logged (rate-limited) and answered with a
  full flush, because when in doubt a cache flushes: it can always refill;
- a silent link (no reply to a ``PING`` within ``keepalive`` seconds) counts as
  lost too, so a half-open TCP connection cannot keep a stale cache alive;
- names are validated, bad input raises the typed errors of
  :mod:`reference_impl.errors`, and Redis failures raise
  :class:`~reference_impl.errors.StoreUnavailableError` instead of serving
  possibly stale data;
- every round trip of a read or a write has the store's own deadline
  (``timeout``), whatever the client's socket timeouts: a stalled server is a
  :class:`~reference_impl.errors.StoreUnavailableError`, not a hang;
- what a write would refuse is never served or cached from a read either: a
  policy stored by someone else with ``NaN``, an int too long for text, nesting
  deeper than the write limit, or more than ``max_policy_bytes`` of JSON is a
  typed error;
- what it serves is read-only (:mod:`reference_impl.core.frozen`), built once
  when the entry is filled: a caller cannot change the cache through it, and a
  hit still returns the cached object itself;
- a flood on the channel neither starves the event loop nor leaves the cache
  serving what a queued invalidation would drop: see :meth:`PolicyStoreV2._pump`;
- it runs on a Redis Cluster too, given a ``redis.asyncio.cluster.RedisCluster``
  client: see below.

On a Redis Cluster
------------------

The write and its ``PUBLISH`` stay one script: it touches one key, which a
cluster allows. Invalidation uses classic pub/sub, which the cluster broadcasts
over its bus to every node, so a store may listen on any node. The store
listens first on the node owning the channel's slot, as redis-py would; when
that link is lost it flushes, asks the cluster for its topology again (its
listener does this itself: a store with no read traffic of its own must not
wait for a read to notice) and subscribes on the first node that answers, the
slot owner first. A dead node thus costs one flush and a resubscription within
milliseconds, not the cluster's failover time. Cluster failures (a redirect
surfacing, ``CLUSTERDOWN``, an uncovered slot) raise
:class:`~reference_impl.errors.StoreUnavailableError` saying so; a plain client
pointed at a cluster node gets one naming ``MOVED`` and the cluster client to
use instead.

Sharded pub/sub (``SSUBSCRIBE``/``SPUBLISH``) is deliberately not used: a script
may touch one slot, so the keys would all need the channel's hash tag, putting
every policy on one shard and renaming every stored key; and a failover ends a
sharded subscription with a ``sunsubscribe`` that the client does not follow.
Policies change rarely, so the bus's fan-out of each ``PUBLISH`` costs little.

Call :meth:`PolicyStoreV2.initialize` once before use: until the invalidation
subscription is confirmed, reads are served straight from Redis and never
cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from reference_impl.core.frozen import FrozenDict, FrozenList
from reference_impl.core.plain_json import INT_BOUND, MAX_DEPTH, is_plain, json_problem
from reference_impl.errors import (
    InvalidPolicyError,
    InvalidPolicyNameError,
    PolicyDecodeError,
    PolicyNotFoundError,
    PolicyTooLargeError,
    StoreUnavailableError,
)

__all__ = [
    "BEHIND_AFTER",
    "CLUSTER_ERROR",
    "CLUSTER_REDIRECT",
    "DEFAULT_MAX_POLICY_BYTES",
    "DEFAULT_REDIS_URL",
    "DEFAULT_TIMEOUT",
    "MAX_MESSAGE_BYTES",
    "MAX_NAME_LENGTH",
    "PLAIN_CLIENT_REDIRECT",
    "REDIS_URL_ENV",
    "TURN_SECONDS",
    "CacheStats",
    "PolicyStoreV2",
    "get_policy_store",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the Redis of the process-wide store.
REDIS_URL_ENV: Final = "QUANTUM_REDIS_URL"
DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"

MAX_NAME_LENGTH: Final = 128
#: Invalidation messages longer than this are rejected without being decoded.
MAX_MESSAGE_BYTES: Final = 1024
#: The message that flushes every store's whole cache.
FLUSH_ALL: Final = "*"
#: Default limit of one policy's JSON, in bytes, on write and on read.
DEFAULT_MAX_POLICY_BYTES: Final = 1024 * 1024
#: Default deadline, in seconds, of each read or write round trip to Redis.
DEFAULT_TIMEOUT: Final = 1.0
#: Seconds the listener works through waiting messages before it lets the event loop run.
TURN_SECONDS: Final = 0.0005
#: Messages applied back to back, each already waiting when asked for, after
#: which the listener counts as behind: the cache is flushed and bypassed until
#: it has caught up.
BEHIND_AFTER: Final = 64

# The write and its invalidation as one server-side script: atomic like
# MULTI/EXEC, but a single command, which redis-py sends and parses about as
# cheaply as a bare PUBLISH (its transaction pipeline costs ~80 us more a call).
_UPDATE_SCRIPT: Final = (
    "redis.call('SET', KEYS[1], ARGV[1])\nreturn redis.call('PUBLISH', ARGV[2], ARGV[3])"
)
_UPDATE_SHA: Final = hashlib.sha1(_UPDATE_SCRIPT.encode()).hexdigest().encode()
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
# Every rule of _name_problem in one C call, for the miss path and the listener.
_VALID_NAME: Final = re.compile(rf"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{MAX_NAME_LENGTH - 1}}}")


class _NotPlain(ValueError):
    """Decoded JSON that a write would refuse (NaN, infinities, huge ints, deep nesting)."""


def _refuse_constant(constant: str) -> Any:
    raise _NotPlain(f"holds {constant}, which JSON cannot represent")


# NaN and +-Infinity are not JSON, but json.loads accepts them by default.
_JSON: Final = json.JSONDecoder(parse_constant=_refuse_constant)
# Built once: json.dumps with any option builds a new encoder per call. What it
# encodes is plain JSON (is_plain or json_problem said so): depth-limited, hence
# acyclic, so it need not track the containers it is inside, and the only thing
# it cannot encode itself is a mapping that is not a dict.
_ENCODER: Final = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, check_circular=False, default=dict
)
_SUBSCRIBE_TIMEOUT: Final = 5.0
_BACKOFF_START: Final = 0.01
_BACKOFF_CAP: Final = 0.5
_CANCEL_RETRY: Final = 0.1
# What a dropped or unreachable server looks like; anything else is a bug or a
# surprise, logged with its traceback but handled the same way. redis-py's
# cluster errors are not all RedisErrors (RedisClusterException is not).
_LINK_ERRORS: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    RedisClusterException,
)

#: A redirect reaching a plain client: the server is one node of a Redis Cluster.
#: Fields: ``kind`` (``MOVED`` or ``ASK``), ``slot``, ``node`` (``host:port``).
PLAIN_CLIENT_REDIRECT: Final = (
    "Redis answered {kind} {slot} {node}: the server is a Redis Cluster node and slot"
    " {slot} is served by {node}; give the store a cluster client"
    " (redis.asyncio.cluster.RedisCluster)"
)
#: A redirect that a cluster client gave up following (slots moving under it).
CLUSTER_REDIRECT: Final = (
    "Redis Cluster kept redirecting slot {slot} ({kind} {node}): the cluster is"
    " resharding or failing over"
)
#: Any other cluster failure (``CLUSTERDOWN``, an uncovered slot, no node reachable).
CLUSTER_ERROR: Final = "Redis Cluster unavailable ({type}): {error}"


def _show(name: str) -> str:
    """``repr`` of a name, shortened so a huge bad name cannot flood a message."""
    return repr(name if len(name) <= 40 else name[:40] + "...")


def _unavailable(action: str, exc: BaseException, *, cluster: bool) -> StoreUnavailableError:
    """The typed error for a failed round trip; a cluster's failures say they are one.

    redis-py shows a redirect as its bare payload (``7693 127.0.0.1:30002``),
    which names neither ``MOVED`` nor a cluster.
    """
    if isinstance(exc, AskError):  # MovedError too
        kind = "MOVED" if isinstance(exc, MovedError) else "ASK"
        template = CLUSTER_REDIRECT if cluster else PLAIN_CLIENT_REDIRECT
        node = f"{exc.host}:{exc.port}"
        return StoreUnavailableError(
            f"{action}: {template.format(kind=kind, slot=exc.slot_id, node=node)}"
        )
    if isinstance(exc, ClusterError | RedisClusterException | TryAgainError):
        detail = CLUSTER_ERROR.format(type=type(exc).__name__, error=exc)
        return StoreUnavailableError(f"{action}: {detail}")
    return StoreUnavailableError(f"{action}: {exc}")


def _name_problem(name: object) -> str | None:
    """The rule ``name`` breaks, or ``None`` if it is a valid policy name."""
    if not isinstance(name, str):
        return f"policy name must be a str, got {type(name).__name__}"
    if not name:
        return "policy name must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"policy name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
    if "/" in name or "\\" in name:
        return f"policy name {_show(name)} contains a path separator ('/' or '\\')"
    if ".." in name:
        return f"policy name {_show(name)} contains '..'"
    if _NAME_RE.fullmatch(name) is None:
        return (
            f"policy name {_show(name)} must start with a letter or digit and contain only"
            " letters, digits, '_', '.', ':' and '-'"
        )
    return None


def _check_name(name: object) -> str:
    if type(name) is str and _VALID_NAME.fullmatch(name) is not None:
        return name
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidPolicyNameError(problem)
    return name  # type: ignore[return-value]  # _name_problem proved it a str


def _encode(name: str, policy: object) -> str:
    if type(policy) is dict and is_plain(policy):
        return _ENCODER.encode(policy)
    if not isinstance(policy, Mapping):
        raise InvalidPolicyError(f"policy {name!r} must be a mapping, got {type(policy).__name__}")
    problem = json_problem(policy, f"policy {name!r}")
    if problem is not None:
        raise InvalidPolicyError(problem)
    return _ENCODER.encode(policy)


_JSON_KINDS: Final[Mapping[type, str]] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _frozen(value: Any, depth: int = 0) -> Any:
    """Decoded JSON as read-only containers; raises :class:`_NotPlain` where a write would refuse.

    One walk both checks and copies: this runs on every miss.
    """
    if depth > MAX_DEPTH:
        raise _NotPlain
    kind = type(value)
    if kind is dict:
        return FrozenDict({key: _frozen(item, depth + 1) for key, item in value.items()})
    if kind is list:
        return FrozenList([_frozen(item, depth + 1) for item in value])
    if kind is int:
        if not -INT_BOUND < value < INT_BOUND:
            raise _NotPlain
    elif kind is float and not math.isfinite(value):  # "1e999" decodes to inf
        raise _NotPlain
    return value


def _decode(name: str, raw: bytes | str, limit: int) -> FrozenDict:
    size = len(raw)
    if type(raw) is str and size * 4 > limit:  # a client decoding responses: count UTF-8
        size = len(raw.encode())
    if size > limit:
        raise PolicyTooLargeError(
            f"policy {name!r} is stored as {size} bytes of JSON, over the limit of {limit}"
            " (max_policy_bytes); it is neither served nor cached"
        )
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw  # strict UTF-8
        # raw_decode skips json.loads' argument checks and whitespace scans,
        # half its cost on a small policy; anything unusual takes the full path.
        try:
            policy, end = _JSON.raw_decode(text)
        except _NotPlain:
            raise
        except ValueError:
            end = -1
        if end != len(text):
            policy = _JSON.decode(text)
    except _NotPlain as exc:
        raise PolicyDecodeError(f"policy {name!r} {exc}; writes refuse it") from None
    except (ValueError, RecursionError) as exc:  # ValueError covers bad UTF-8 too
        raise PolicyDecodeError(f"policy {name!r} is not valid JSON: {exc}") from exc
    if type(policy) is not dict:
        kind = _JSON_KINDS.get(type(policy), type(policy).__name__)
        raise PolicyDecodeError(f"policy {name!r} is stored as {kind}, not a JSON object")
    try:
        frozen: FrozenDict = _frozen(policy)
    except _NotPlain:
        problem = json_problem(policy, f"policy {name!r}")
        raise PolicyDecodeError(f"{problem}; writes refuse it") from None
    return frozen


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a store's counters."""

    #: Reads served from the local cache.
    hits: int
    #: Reads of a valid name that went to Redis (found or not).
    misses: int
    #: Invalidation requests applied: names and ``"*"`` received on the channel,
    #: and calls of :meth:`PolicyStoreV2.invalidate`.
    invalidations: int
    #: Channel messages that were not a policy name or ``"*"``; each flushed the cache.
    rejected_messages: int
    #: Times the invalidation subscription was re-established after being lost.
    reconnects: int
    #: Times the listener fell behind (:data:`BEHIND_AFTER` messages waiting
    #: back to back) and bypassed the cache until it caught up.
    backlogs: int = 0

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``, or ``0.0`` before the first read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0


class _Fill:
    """The misses of one name in flight, and what happened to the name meanwhile."""

    __slots__ = ("filled", "generation", "readers", "started")

    def __init__(self) -> None:
        #: Invalidations of the name seen since the first of these misses began.
        self.generation = 0
        self.readers = 0
        #: Misses begun, numbering them; and the number of the last one that filled.
        self.started = 0
        self.filled = 0


class PolicyStoreV2:
    """Policies stored as JSON in Redis, cached locally, invalidated over pub/sub.

    ``redis`` is the client the store uses for reads, writes and its
    subscription (it is not closed by :meth:`close` unless the store made it,
    see :meth:`from_url`): a ``redis.asyncio.Redis``, or a
    ``redis.asyncio.cluster.RedisCluster`` for a Redis Cluster. ``ttl`` is in
    seconds of ``clock``; ``0`` disables caching. Policies live under
    ``key_prefix + name``; invalidations are policy names published on
    ``channel``, and ``"*"`` flushes every cache. The link is probed with
    ``PING`` after ``keepalive`` seconds of silence and counted as lost if the
    probe is not answered within as long again. A policy's JSON
    may be at most ``max_policy_bytes`` long, written or read. Each read or
    write gives Redis ``timeout`` seconds (real time) to answer, retry included.
    """

    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        channel: str = "policy:invalidate",
        key_prefix: str = "policy:",
        keepalive: float = 5.0,
        max_policy_bytes: int = DEFAULT_MAX_POLICY_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not ttl >= 0:  # also rejects NaN
            raise ValueError(f"ttl must be >= 0 seconds, got {ttl!r}")
        if not keepalive > 0:
            raise ValueError(f"keepalive must be > 0 seconds, got {keepalive!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if type(max_policy_bytes) is not int or max_policy_bytes < 2:
            raise ValueError(
                f"max_policy_bytes must be an int >= 2 (the JSON of {{}}), got {max_policy_bytes!r}"
            )
        if not channel:
            raise ValueError("channel must not be empty")
        self._redis = redis
        self._cluster = redis if isinstance(redis, RedisCluster) else None
        self._ttl = float(ttl)
        self._clock = clock
        self._channel = channel
        self._key_prefix = key_prefix
        self._channel_bytes = channel.encode()
        self._prefix_bytes = key_prefix.encode()
        self._keepalive = float(keepalive)
        self._max_policy_bytes = max_policy_bytes
        self._timeout = float(timeout)
        self._owns_redis = False
        # Cleared for good when the server has no scripting (fakeredis without lupa).
        self._scripting = True
        # name -> (expiry on self._clock, policy): read-only, handed out as it is
        self._cache: dict[str, tuple[float, FrozenDict]] = {}
        # Only names with a miss in flight are tracked, so this stays small
        # whatever names arrive on the channel.
        self._fills: dict[str, _Fill] = {}
        # Bumped by every flush and every link transition: a miss that saw an
        # older epoch must not fill the cache.
        self._epoch = 0
        self._link_up = False
        # Set while the listener works through a backlog (see _pump): nothing is
        # cached then, since a queued invalidation may concern any name.
        self._behind = False
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._hits = 0
        self._misses = 0
        self._invalidations = 0
        self._rejected = 0
        self._reconnects = 0
        self._backlogs = 0
        self._next_rejection_warning = 1
        self._next_backlog_warning = 1

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        channel: str = "policy:invalidate",
        key_prefix: str = "policy:",
        keepalive: float = 5.0,
        max_policy_bytes: int = DEFAULT_MAX_POLICY_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        cluster: bool = False,
    ) -> Self:
        """A store with its own client for ``url``, closed by :meth:`close`. Does not connect.

        With ``cluster=True``, ``url`` names one node of a Redis Cluster and the
        client is a ``RedisCluster`` that finds the others.
        """
        store = cls(
            RedisCluster.from_url(url) if cluster else Redis.from_url(url),
            ttl=ttl,
            clock=clock,
            channel=channel,
            key_prefix=key_prefix,
            keepalive=keepalive,
            max_policy_bytes=max_policy_bytes,
            timeout=timeout,
        )
        store._owns_redis = True
        return store

    # -- public surface -----------------------------------------------------

    @property
    def stats(self) -> CacheStats:
        """The counters, as a snapshot."""
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            invalidations=self._invalidations,
            rejected_messages=self._rejected,
            reconnects=self._reconnects,
            backlogs=self._backlogs,
        )

    @property
    def link_up(self) -> bool:
        """Whether the invalidation subscription is confirmed and believed alive."""
        return self._link_up

    @property
    def behind(self) -> bool:
        """Whether the listener is working through a backlog: reads then bypass the cache."""
        return self._behind

    async def initialize(self) -> None:
        """Subscribe to the invalidation channel and start the listener.

        Returns once Redis has confirmed the subscription, so every invalidation
        published afterwards is seen. Idempotent. Raises
        :class:`StoreUnavailableError` if Redis cannot be reached.
        """
        async with self._start_lock:
            if self._closed:
                raise RuntimeError("this PolicyStoreV2 is closed")
            if self._listener is not None:
                return
            action = f"cannot subscribe to the invalidation channel {self._channel!r}"
            try:
                if self._cluster is not None:
                    await self._learn_topology(self._cluster, refresh=False)
                pubsub = await self._subscribe()
            except _LINK_ERRORS as exc:
                raise _unavailable(action, exc, cluster=self._cluster is not None) from exc
            self._pubsub = pubsub
            self._set_link(up=True)
            self._listener = asyncio.create_task(
                self._listen(), name=f"PolicyStoreV2 listener on {self._channel!r}"
            )

    async def get_policy(self, name: str) -> dict[str, Any]:
        """The policy named ``name``, from the cache while fresh.

        The policy is read-only all the way down (a
        :class:`~reference_impl.core.frozen.FrozenDict`, a ``dict`` subclass, of
        frozen lists and dicts, equal to the plain dict): it is the cached object itself,
        shared with every caller, so changing it raises ``TypeError``; copy it
        to change it (``dict(policy)``, or ``frozen.thaw(policy)``). Raises
        :class:`InvalidPolicyNameError`, :class:`PolicyNotFoundError`,
        :class:`PolicyDecodeError` (not a JSON object, or one a write would
        refuse), :class:`PolicyTooLargeError` or :class:`StoreUnavailableError`
        (unreachable, or no answer within ``timeout``).
        """
        # The hit path is deliberately bare (it is benchmarked against dict.get).
        # No validation: only valid names are ever cached. An unhashable name
        # falls through to the miss path, which rejects it.
        try:
            entry = self._cache.get(name)
        except TypeError:
            entry = None
        if entry is not None and entry[0] > self._clock():
            self._hits += 1
            return entry[1]
        return await self._load(name)

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        """Store ``policy`` under ``name`` and invalidate it on every store.

        The write and the invalidation are one atomic round trip (a server-side
        script, MULTI/EXEC without scripting), so no
        store can miss the invalidation of a write that happened. Raises
        :class:`InvalidPolicyNameError`, :class:`InvalidPolicyError` (not plain
        JSON: see :mod:`reference_impl.core.plain_json`),
        :class:`PolicyTooLargeError` (over ``max_policy_bytes`` encoded) or
        :class:`StoreUnavailableError` (unreachable, or no answer within
        ``timeout``: the write may or may not have happened); the local copy is
        dropped even when Redis fails.
        """
        name = _check_name(name)
        data = _encode(name, policy)
        # The encoder escapes non-ASCII, so characters are bytes.
        if len(data) > self._max_policy_bytes:
            raise PolicyTooLargeError(
                f"policy {name!r} is {len(data)} bytes of JSON, over the limit of"
                f" {self._max_policy_bytes} (max_policy_bytes); nothing was written"
            )
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    await self._write(name, data)
                except RedisConnectionError:
                    # See _load: a pooled connection may be dead. Writing the same
                    # value and invalidating twice is harmless.
                    await self._write(name, data)
        except TimeoutError as exc:
            raise StoreUnavailableError(
                f"cannot update policy {name!r}: Redis did not answer within {self._timeout:g}s"
                " (timeout); the write may or may not have happened"
            ) from exc
        except (RedisError, RedisClusterException, OSError) as exc:
            raise _unavailable(
                f"cannot update policy {name!r}", exc, cluster=self._cluster is not None
            ) from exc
        finally:
            self._drop(name)

    def invalidate(self, name: str | None = None) -> None:
        """Drop ``name`` from this store's cache, or everything when ``name`` is ``None``.

        Local only: use :meth:`update_policy` to invalidate every store.
        """
        if name is None:
            self._flush()
        else:
            self._drop(_check_name(name))
        self._invalidations += 1

    async def close(self) -> None:
        """Stop the listener, release the subscription and flush. Idempotent."""
        self._closed = True
        task, self._listener = self._listener, None
        if task is not None:
            # On Python 3.11 redis-py can swallow a cancellation (asyncio.wait_for
            # loses one that races the result), so cancel until it sticks; the
            # listener also stops on its own at its next turn, seeing _closed.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=_CANCEL_RETRY)
            if not task.cancelled() and (error := task.exception()) is not None:
                logger.error("the invalidation listener had failed", exc_info=error)
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await _close_quietly(pubsub)
        self._set_link(up=False)
        if self._owns_redis:
            self._owns_redis = False
            await self._redis.aclose()

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _write(self, name: str, data: str) -> None:
        if self._scripting:
            # Bytes, and EVALSHA by name: redis-py checks and encodes every other
            # argument on every call, which costs this path more than the script.
            message = name.encode()
            args = (b"1", self._prefix_bytes + message, data.encode(), self._channel_bytes, message)
            try:
                await self._redis.execute_command("EVALSHA", _UPDATE_SHA, *args)
                return
            except NoScriptError:
                # A new or restarted server has an empty script cache: EVAL runs
                # the script and caches it for the next EVALSHA.
                await self._redis.execute_command("EVAL", _UPDATE_SCRIPT, *args)
                return
            except ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                self._scripting = False  # no scripting here (fakeredis without lupa)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key_prefix + name, data)
            pipe.publish(self._channel, name)
            await pipe.execute()

    # -- reads ----------------------------------------------------------------

    async def _load(self, name: str) -> FrozenDict:
        name = _check_name(name)
        self._misses += 1
        fill = self._fills.get(name)
        if fill is None:
            fill = self._fills[name] = _Fill()
        fill.readers += 1
        fill.started += 1
        ticket, generation, epoch = fill.started, fill.generation, self._epoch
        # The value may be as old as the moment the GET was sent, so it expires
        # counting from before the round trip.
        expires = self._clock() + self._ttl
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    raw = await self._redis.get(self._key_prefix + name)
                except RedisConnectionError:
                    # redis-py finds a pooled connection dead (server restarted,
                    # idle timeout) only by using it; a read is safe to repeat.
                    raw = await self._redis.get(self._key_prefix + name)
        except TimeoutError as exc:
            raise StoreUnavailableError(
                f"cannot read policy {name!r}: Redis did not answer within {self._timeout:g}s"
                " (timeout)"
            ) from exc
        except (RedisError, RedisClusterException, OSError) as exc:
            if isinstance(exc, ResponseError) and str(exc).startswith("WRONGTYPE"):
                raise PolicyDecodeError(
                    f"policy {name!r} is stored as a non-string Redis type: {exc}"
                ) from exc
            raise _unavailable(
                f"cannot read policy {name!r}", exc, cluster=self._cluster is not None
            ) from exc
        finally:
            fill.readers -= 1
            if not fill.readers:
                del self._fills[name]
        if raw is None:
            raise PolicyNotFoundError(name)
        policy = _decode(name, raw, self._max_policy_bytes)
        # No await since the GET returned, so nothing can slip between this
        # check and the fill. A miss begun later may have filled already, with
        # a value at least as new: this one must not overwrite it.
        if (
            self._link_up
            and not self._behind
            and epoch == self._epoch
            and generation == fill.generation
            and ticket > fill.filled
            and self._ttl > 0
        ):
            fill.filled = ticket
            self._cache[name] = (expires, policy)
        return policy

    # -- invalidation -----------------------------------------------------------

    def _drop(self, name: str) -> None:
        self._cache.pop(name, None)
        fill = self._fills.get(name)
        if fill is not None:
            fill.generation += 1

    def _flush(self) -> None:
        self._cache.clear()
        self._epoch += 1

    def _set_link(self, *, up: bool) -> None:
        # Both transitions bump the epoch: a miss begun while the link was down
        # may have read a value whose invalidation nobody heard.
        self._link_up = up
        self._behind = False  # a new link starts with no backlog; a lost one is moot
        self._flush()

    def _fall_behind(self) -> None:
        self._behind = True
        self._backlogs += 1
        self._flush()
        if self._backlogs == self._next_backlog_warning:
            self._next_backlog_warning *= 10
            logger.warning(
                "invalidation listener on %r fell %d messages behind (backlog #%d); cache"
                " flushed and bypassed until it catches up. Further backlogs are logged at"
                " #%d, then every tenfold",
                self._channel,
                BEHIND_AFTER,
                self._backlogs,
                self._next_backlog_warning,
            )

    def _catch_up(self) -> None:
        # The epoch bump keeps a miss begun while behind from filling: its
        # value may predate an invalidation applied since.
        self._behind = False
        self._flush()
        logger.debug("invalidation listener on %r caught up", self._channel)

    def _reject(self, reason: str) -> None:
        self._rejected += 1
        self._flush()
        if self._rejected == self._next_rejection_warning:
            self._next_rejection_warning *= 10
            logger.warning(
                "rejected invalidation message #%d on %r (%s); cache flushed."
                " Further rejections are logged at #%d, then every tenfold",
                self._rejected,
                self._channel,
                reason,
                self._next_rejection_warning,
            )

    def _apply(self, data: object) -> None:
        if isinstance(data, bytes):
            if len(data) > MAX_MESSAGE_BYTES:
                self._reject(f"{len(data)} bytes, over the limit of {MAX_MESSAGE_BYTES}")
                return
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self._reject("not valid UTF-8")
                return
        elif isinstance(data, str):  # a client with decode_responses=True
            if len(data) > MAX_MESSAGE_BYTES:
                self._reject(f"{len(data)} characters, over the limit of {MAX_MESSAGE_BYTES}")
                return
            text = data
        else:
            self._reject(f"payload is a {type(data).__name__}")
            return
        if text == FLUSH_ALL:
            self._invalidations += 1
            self._flush()
            logger.debug("cache flushed on request from %r", self._channel)
            return
        if _VALID_NAME.fullmatch(text) is None:
            self._reject(_name_problem(text) or "not a policy name")
            return
        self._invalidations += 1
        self._drop(text)
        logger.debug("policy %r invalidated", text)

    def _on_message(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "message":
            self._apply(message.get("data"))
        elif kind == "subscribe":
            # redis-py re-subscribes by itself when the client has retries
            # enabled: whatever was published while it reconnected is lost.
            logger.warning(
                "invalidation link to %r was re-established; cache flushed", self._channel
            )
            self._reconnects += 1
            self._set_link(up=True)
        elif kind != "pong":
            raise RedisConnectionError(f"unexpected {kind!r} on the invalidation link")

    # -- the listener -----------------------------------------------------------

    async def _subscribe(self) -> PubSub:
        """A fresh pubsub whose subscription Redis has confirmed.

        On a cluster, on the first node in :meth:`_listening_nodes` that confirms
        it: the cluster broadcasts a classic ``PUBLISH`` to every node.
        """
        if self._cluster is None:
            return await self._subscribe_with(self._redis.pubsub())
        error: Exception | None = None
        for node in self._listening_nodes(self._cluster):
            try:
                return await self._subscribe_with(self._cluster.pubsub(node=node))
            except _LINK_ERRORS as exc:
                logger.debug("cannot subscribe on cluster node %s: %s", node.name, exc)
                error = exc
        raise error or RedisClusterException("the Redis Cluster client knows no node")

    def _listening_nodes(self, cluster: RedisCluster) -> list[ClusterNode]:
        """Where to subscribe, in order: the channel's slot owner, then every other node.

        The owner first, as redis-py would choose; the others because a node
        just killed is still listed as the owner until the cluster fails it over.
        """
        try:
            owner = cluster.get_node_from_key(self._channel)
        except RedisClusterException:  # the slot is not covered just now
            owner = None
        first = [] if owner is None else [owner]
        return first + [node for node in cluster.get_nodes() if node is not owner]

    async def _learn_topology(self, cluster: RedisCluster, *, refresh: bool) -> None:
        """Have ``cluster`` know its slots; with ``refresh``, ask the cluster again.

        ``initialize`` first: redis-py 8.1 raises a bare ``KeyError`` when a
        fresh cluster client makes a pubsub before it knows the slots. Refreshing
        is the listener's own job after a lost link: redis-py refreshes only
        when a command fails, and a store with no reads would wait forever.
        """
        try:
            async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
                if refresh:
                    await cluster.nodes_manager.initialize()
                else:
                    await cluster.initialize()
        except TimeoutError:
            raise TimeoutError(
                f"the Redis Cluster did not tell its slots within {_SUBSCRIBE_TIMEOUT}s"
            ) from None

    async def _subscribe_with(self, pubsub: PubSub) -> PubSub:
        """``pubsub``, once Redis has confirmed its subscription; closed if it fails."""
        try:
            # One deadline over connecting, the client's handshake, SUBSCRIBE and
            # its confirmation: a stalled server must not hold initialize().
            async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=False, timeout=_SUBSCRIBE_TIMEOUT
                    )
                    if message is not None and message.get("type") == "subscribe":
                        return pubsub
        except TimeoutError:
            await _close_quietly(pubsub)
            raise TimeoutError(
                f"Redis did not confirm SUBSCRIBE {self._channel!r} within {_SUBSCRIBE_TIMEOUT}s"
            ) from None
        except BaseException:
            await _close_quietly(pubsub)
            raise

    async def _pump(self, pubsub: PubSub) -> None:
        """Apply messages, one fully before asking for the next, until the link fails.

        A flood (a burst of messages already waiting, each handled without the
        event loop ever running anything else) is met two ways. The listener
        lets the loop run after each :data:`TURN_SECONDS` of work, so readers
        wait about that long for it, never the whole flood. And after
        :data:`BEHIND_AFTER` waiting messages back to back it counts as behind:
        an invalidation may be queued behind the flood for as long as the flood
        takes to read, so the cache is flushed and nothing is cached until the
        listener finds nothing waiting; reads meanwhile go to Redis, which
        holds the latest values. A queued invalidation thus stops stale reads
        within ``BEHIND_AFTER`` messages' work, however long the flood.
        """
        loop = asyncio.get_running_loop()
        probe_sent: float | None = None
        burst = 0  # messages found already waiting, since the last time none was
        turn_ends = loop.time() + TURN_SECONDS
        while not self._closed:
            # timeout=0 answers from what was already received, without waiting.
            message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=0)
            if message is None and burst:
                # The client's buffer ran dry, but the socket may hold more: the
                # first poll let the loop read it, so a second one tells.
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=0)
            if message is not None:
                burst += 1
                if burst == BEHIND_AFTER:
                    self._fall_behind()
                if loop.time() >= turn_ends:
                    await asyncio.sleep(0)  # the readers' turn
                    turn_ends = loop.time() + TURN_SECONDS
            else:
                burst = 0
                if self._behind:
                    self._catch_up()
                message = await pubsub.get_message(
                    ignore_subscribe_messages=False, timeout=self._keepalive
                )
                turn_ends = loop.time() + TURN_SECONDS
            if message is not None:
                probe_sent = None  # any traffic proves the link alive
                self._on_message(message)
            elif probe_sent is None:
                await pubsub.ping()
                probe_sent = loop.time()
            elif loop.time() - probe_sent >= self._keepalive:
                raise TimeoutError(f"no reply to PING within {self._keepalive}s")

    async def _listen(self) -> None:
        delay = _BACKOFF_START
        while not self._closed:
            pubsub = self._pubsub
            if pubsub is None:
                try:
                    if self._cluster is not None:
                        await self._learn_topology(self._cluster, refresh=True)
                    pubsub = await self._subscribe()
                except Exception as exc:
                    if isinstance(exc, _LINK_ERRORS):
                        logger.debug("resubscribing to %r failed: %s", self._channel, exc)
                    else:
                        logger.exception("resubscribing to %r failed", self._channel)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_CAP)
                    continue
                delay = _BACKOFF_START
                self._pubsub = pubsub
                self._reconnects += 1
                self._set_link(up=True)
                logger.info("invalidation link to %r restored", self._channel)
            try:
                await self._pump(pubsub)
            except Exception as exc:
                if isinstance(exc, _LINK_ERRORS):
                    logger.warning(
                        "invalidation link to %r lost (%s); cache flushed, resubscribing",
                        self._channel,
                        exc,
                    )
                else:
                    # When in doubt, assume messages were lost: flush and resubscribe.
                    logger.exception(
                        "unexpected error on the invalidation link to %r; cache flushed,"
                        " resubscribing",
                        self._channel,
                    )
                self._set_link(up=False)
                self._pubsub = None
                await _close_quietly(pubsub)


async def _close_quietly(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    except Exception as exc:  # the connection is being thrown away anyway
        logger.debug("closing a pubsub failed: %s", exc)


_default_store: PolicyStoreV2 | None = None


def get_policy_store() -> PolicyStoreV2:
    """The process-wide store, for the Redis named by ``$QUANTUM_REDIS_URL``.

    Created on first call without connecting; call ``await
    store.initialize()`` once before relying on the cache.
    """
    global _default_store
    if _default_store is None:
        _default_store = PolicyStoreV2.from_url(os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL))
    return _default_store
