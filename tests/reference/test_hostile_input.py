"""The reference store under hostile input (issue 14): typed errors, limits, read-only
policies, its own deadline and a flood on the invalidation channel.

Run on fakeredis and on a private redis-server, like ``test_policy_store.py``,
whose helpers (:class:`Kit`, :func:`run`) this module reuses. No assertion
here is on a duration: the flood is judged by what happened in which order.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import pickle
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from reference_impl.core.frozen import FrozenDict, FrozenList, freeze, thaw
from reference_impl.errors import (
    InvalidPayloadError,
    InvalidPolicyError,
    P1Error,
    PolicyDecodeError,
    PolicyNotFoundError,
    PolicyTooLargeError,
    StoreUnavailableError,
)
from reference_impl.services import policy_store_v2
from reference_impl.services.policy_store_v2 import (
    BEHIND_AFTER,
    DEFAULT_MAX_POLICY_BYTES,
    DEFAULT_TIMEOUT,
    PolicyStoreV2,
)
from tests.conftest import RedisBackend
from tests.reference.test_policy_store import CHANNEL, KEY, NEW, OLD, Kit, count_gets, run

# -- typed errors: what a write refuses, a read neither serves nor caches ------------


@pytest.mark.parametrize(
    "policy",
    [{"x": 10**5000}, {"x": [1, {"y": -(10**641)}]}],
    ids=["flat", "nested"],
)
def test_an_int_too_long_for_text_is_an_invalid_policy(
    redis_backend: RedisBackend, policy: dict[str, Any]
) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        with pytest.raises(InvalidPolicyError, match=r"digits; plain JSON allows at most 640$"):
            await store.update_policy("risk", policy)
        assert await kit.client().exists(KEY) == 0

    run(scenario, redis_backend)


STORED_BUT_REFUSED = [
    pytest.param(b'{"x": NaN}', "policy 'risk' holds NaN, which JSON cannot represent", id="nan"),
    pytest.param(b'{"x": [-Infinity]}', "holds -Infinity, which JSON cannot", id="-infinity"),
    pytest.param(b'{"x": 1e999}', r"policy 'risk'\.x is inf, which JSON cannot", id="overflow"),
    pytest.param(
        b'{"x": ' + b"9" * 700 + b"}",
        r"policy 'risk'\.x is an int of 700 digits; plain JSON allows at most 640",
        id="long-int",
    ),
    pytest.param(
        b'{"x": ' + b"9" * 5000 + b"}", "is not valid JSON: Exceeds the limit", id="huge-int"
    ),
    pytest.param(b'{"x":' * 70 + b"{}" + b"}" * 70, "nested deeper than 64 levels", id="too-deep"),
]


@pytest.mark.parametrize(("stored", "message"), STORED_BUT_REFUSED)
def test_a_stored_policy_a_write_would_refuse_is_a_decode_error_and_not_cached(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch, stored: bytes, message: str
) -> None:
    async def scenario(kit: Kit) -> None:
        await kit.client().set(KEY, stored)
        client = kit.client()
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client)
        for _ in range(2):
            with pytest.raises(PolicyDecodeError, match=message) as caught:
                await store.get_policy("risk")
        assert isinstance(caught.value, P1Error)
        assert len(gets) == 2, "nothing was cached"
        if "NaN" in message or "Infinity" in message or "inf" in message:
            assert str(caught.value).endswith("; writes refuse it")

    run(scenario, redis_backend)


# -- size limits ----------------------------------------------------------------------


def test_the_default_limits() -> None:
    assert DEFAULT_MAX_POLICY_BYTES == 1024 * 1024
    assert DEFAULT_TIMEOUT == 1.0


def test_a_policy_over_the_limit_is_refused_on_write(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store(max_policy_bytes=100)
        exactly = {"x": "a" * (100 - len('{"x":""}'))}
        await store.update_policy("risk", exactly)  # 100 bytes: at the limit
        with pytest.raises(PolicyTooLargeError) as caught:
            await store.update_policy("risk", {"x": "a" * 100})
        assert isinstance(caught.value, P1Error)
        assert isinstance(caught.value, ValueError)
        assert str(caught.value) == (
            "policy 'risk' is 108 bytes of JSON, over the limit of 100 (max_policy_bytes);"
            " nothing was written"
        )
        written = await kit.client().get(KEY)
        assert written is not None
        assert json.loads(written) == exactly

    run(scenario, redis_backend)


def test_the_default_limit_refuses_a_50_mb_policy_before_writing() -> None:
    async def scenario() -> None:
        client = fakeredis.FakeAsyncRedis()
        store = PolicyStoreV2(client)
        with pytest.raises(PolicyTooLargeError, match="over the limit of 1048576"):
            await store.update_policy("risk", {"blob": "x" * 50_000_000})
        assert await client.exists(KEY) == 0
        await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("decode_responses", [False, True], ids=["bytes", "str"])
def test_a_stored_policy_over_the_limit_is_neither_served_nor_cached(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch, decode_responses: bool
) -> None:
    async def scenario(kit: Kit) -> None:
        # Non-ASCII: 60 characters, 120 bytes of UTF-8; the limit counts bytes.
        await kit.client().set(KEY, json.dumps({"x": "\u00e9" * 60}, ensure_ascii=False))
        client = kit.client(decode_responses=decode_responses)
        gets = count_gets(monkeypatch, client)
        store = await kit.store(client, max_policy_bytes=100)
        for _ in range(2):
            with pytest.raises(PolicyTooLargeError) as caught:
                await store.get_policy("risk")
        assert str(caught.value) == (
            "policy 'risk' is stored as 129 bytes of JSON, over the limit of 100"
            " (max_policy_bytes); it is neither served nor cached"
        )
        assert len(gets) == 2

    run(scenario, redis_backend)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_policy_bytes": 1}, "max_policy_bytes must be an int >= 2"),
        ({"max_policy_bytes": 1.5e6}, "max_policy_bytes must be an int >= 2"),
        ({"timeout": 0}, "timeout must be > 0 seconds, got 0"),
        ({"timeout": math.nan}, "timeout must be > 0 seconds"),
    ],
)
def test_bad_limits(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PolicyStoreV2(fakeredis.FakeAsyncRedis(), **options)


# -- read-only policies ---------------------------------------------------------------

MUTATIONS = [
    pytest.param(lambda p: p.__setitem__("max_position", 1), id="set"),
    pytest.param(lambda p: p.__delitem__("tags"), id="del"),
    pytest.param(lambda p: p.update(x=1), id="update"),
    pytest.param(lambda p: p.pop("tags"), id="pop"),
    pytest.param(lambda p: p.popitem(), id="popitem"),
    pytest.param(lambda p: p.setdefault("x", 1), id="setdefault"),
    pytest.param(lambda p: p.clear(), id="clear"),
    pytest.param(lambda p: p.__ior__({"x": 1}), id="ior"),
    pytest.param(lambda p: p["tags"].append("c"), id="nested-append"),
    pytest.param(lambda p: p["tags"].__setitem__(0, "z"), id="nested-setitem"),
    pytest.param(lambda p: p["tags"].extend(["c"]), id="nested-extend"),
    pytest.param(lambda p: p["tags"].sort(), id="nested-sort"),
    pytest.param(lambda p: p["tags"].__iadd__(["c"]), id="nested-iadd"),
    pytest.param(lambda p: p["limits"].__setitem__("daily", 0), id="nested-dict"),
]


@pytest.mark.parametrize("mutate", MUTATIONS)
def test_a_caller_cannot_change_the_cache_through_a_returned_policy(
    redis_backend: RedisBackend, mutate: Any
) -> None:
    stored = {**OLD, "limits": {"daily": 5}}

    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        await store.update_policy("risk", stored)
        # Heard before reading, or a late echo would turn a hit into a miss.
        await kit.until(lambda: store.stats.invalidations == 1, "its own update heard")
        for _ in range(2):  # the miss, then a hit
            policy = await store.get_policy("risk")
            with pytest.raises(TypeError, match="is read-only \\(it is shared with the cache\\)"):
                mutate(policy)
        assert await store.get_policy("risk") == stored
        assert store.stats.hits >= 2

    run(scenario, redis_backend)


def test_a_returned_policy_is_equal_to_plain_json_and_serialisable(
    redis_backend: RedisBackend,
) -> None:
    stored = {"a": [1, {"b": [True, None, 2.5]}], "s": "x"}

    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        await store.update_policy("risk", stored)
        await kit.until(lambda: store.stats.invalidations == 1, "its own update heard")
        first = await store.get_policy("risk")
        assert await store.get_policy("risk") is first  # a hit returns the cached object
        assert first == stored
        assert isinstance(first, dict)
        assert isinstance(first, Mapping)
        assert json.loads(json.dumps(first)) == stored
        assert pickle.loads(pickle.dumps(first)) == stored
        assert copy.deepcopy(first) == stored
        changed = dict(first)
        changed["s"] = "y"  # the top level of a copy is the caller's
        mutable = thaw(first)
        mutable["a"][1]["b"].append(3)
        assert type(mutable["a"]) is list
        assert await store.get_policy("risk") == stored
        await store.update_policy("risk", first)  # a read policy can be written back
        await store.update_policy("other", {**first, "s": "z"})
        assert await store.get_policy("other") == {**stored, "s": "z"}

    run(scenario, redis_backend)


def test_freeze_and_thaw() -> None:
    plain = {"a": [1, {"b": []}], "t": (1, 2)}
    frozen = freeze(plain)
    assert type(frozen) is FrozenDict
    assert type(frozen["a"]) is FrozenList
    assert type(frozen["a"][1]) is FrozenDict
    assert frozen["t"] == (1, 2)
    assert frozen == plain
    assert repr(frozen) == repr(plain)
    back = thaw(frozen)
    assert back == plain
    assert type(back) is dict
    assert type(back["a"]) is list
    assert type(pickle.loads(pickle.dumps(frozen))) is FrozenDict
    with pytest.raises(TypeError, match="FrozenList is read-only"):
        frozen["a"].insert(0, 1)


# -- the store's own deadline ---------------------------------------------------------


class SilentRedis:
    """A stalled Redis: a loopback port that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._held.append(writer)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SilentRedis]:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        try:
            yield self
        finally:
            for writer in self._held:
                writer.close()
            self._server.close()
            await self._server.wait_closed()

    def client(self) -> Redis:
        """A client with no socket timeout of its own: without a deadline, a call waits forever."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return Redis(host="127.0.0.1", port=port, socket_timeout=None, socket_connect_timeout=None)


@pytest.mark.parametrize("call", ["get_policy", "update_policy"])
def test_a_stalled_server_is_store_unavailable_at_the_stores_own_deadline(call: str) -> None:
    async def scenario() -> None:
        async with SilentRedis().running() as silent:
            client = silent.client()
            store = PolicyStoreV2(client, timeout=0.05)  # not initialised: that would subscribe
            action: Coroutine[Any, Any, Any] = (
                store.get_policy("risk")
                if call == "get_policy"
                else store.update_policy("risk", OLD)
            )
            # The outer guard only catches a hang: the store must give up by itself.
            with pytest.raises(StoreUnavailableError) as caught:
                await asyncio.wait_for(action, timeout=30)
            assert silent.connections >= 1
            await client.aclose()
        verb = "read" if call == "get_policy" else "update"
        assert str(caught.value).startswith(
            f"cannot {verb} policy 'risk': Redis did not answer within 0.05s (timeout)"
        )
        assert isinstance(caught.value, ConnectionError)

    asyncio.run(scenario())


# -- a flood on the invalidation channel ----------------------------------------------

FLOOD = 20_000


def hold_listener(monkeypatch: pytest.MonkeyPatch, client: Redis) -> asyncio.Event:
    """Hold every ``get_message`` on ``client``'s pubsubs until the returned event is set."""
    gate = asyncio.Event()
    real_pubsub = client.pubsub

    def pubsub(**options: Any) -> PubSub:
        created = real_pubsub(**options)
        real_get_message = created.get_message

        async def get_message(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
            await gate.wait()
            message: dict[str, Any] | None = await real_get_message(*args, **kwargs)
            return message

        monkeypatch.setattr(created, "get_message", get_message)
        return created

    monkeypatch.setattr(client, "pubsub", pubsub)
    return gate


def test_a_flood_neither_starves_readers_nor_hides_a_genuine_invalidation(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20,000 valid-looking names, then a genuine invalidation, all waiting at once."""

    async def scenario(kit: Kit) -> None:
        writer = await kit.store(start=False)
        await writer.update_policy("risk", OLD)
        client = kit.client()
        gate = hold_listener(monkeypatch, client)
        gate.set()
        store = await kit.store(client)
        assert await store.get_policy("risk") == OLD
        gate.clear()  # the listener's next get_message waits: messages pile up
        publisher = kit.client()
        for start in range(0, FLOOD, 5_000):
            async with publisher.pipeline(transaction=False) as pipe:
                for k in range(start, start + 5_000):
                    pipe.publish(CHANNEL, f"flood-{k}")
                await pipe.execute()
        await writer.update_policy("risk", NEW)  # its invalidation is queued behind the flood

        applied_at_reads: list[int] = []  # how far the listener was, at each reader turn
        first_new: list[int] = []

        async def reader() -> None:
            while store.stats.invalidations <= FLOOD:
                await asyncio.sleep(0)
                applied_at_reads.append(store.stats.invalidations)
                if not first_new and await store.get_policy("risk") == NEW:
                    first_new.append(store.stats.invalidations)

        reading = asyncio.create_task(reader())
        gate.set()
        await asyncio.wait_for(reading, timeout=120)  # a guard against a hang only

        during = [n for n in applied_at_reads if n <= FLOOD]
        # Not starved: the reader ran again and again while the flood was worked through
        # (the listener of before let it run once per socket read at best, never on fakeredis).
        assert len(set(during)) >= FLOOD // 2_000, f"the reader ran at {len(set(during))} points"
        # Not hidden: the new value was served before the listener reached its invalidation.
        assert first_new, "the new value was never served"
        assert first_new[0] < FLOOD, f"first served after {first_new[0]} messages"
        assert store.stats.backlogs >= 1
        # Caught up: the cache fills and serves hits again.
        await kit.until(lambda: not store.behind, "the listener to catch up")
        hits = store.stats.hits
        await store.get_policy("risk")
        assert await store.get_policy("risk") == NEW
        assert store.stats.hits == hits + 1
        assert store.link_up
        assert store.stats.reconnects == 0

    run(scenario, redis_backend)


def test_a_short_burst_is_not_a_backlog(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store()
        publisher = kit.client()
        async with publisher.pipeline(transaction=False) as pipe:
            for k in range(BEHIND_AFTER - 1):
                pipe.publish(CHANNEL, f"burst-{k}")
            await pipe.execute()
        await kit.until(lambda: store.stats.invalidations == BEHIND_AFTER - 1, "the burst")
        assert store.stats.backlogs == 0

    run(scenario, redis_backend)


def test_a_backlog_is_logged_then_every_tenfold(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PolicyStoreV2(fakeredis.FakeAsyncRedis())
    for _ in range(12):
        store._fall_behind()
        store._catch_up()
    warned = [r for r in caplog.records if r.name == policy_store_v2.__name__]
    assert [r.args[2] for r in warned] == [1, 10]  # type: ignore[index]
    assert (
        warned[0]
        .getMessage()
        .startswith(
            f"invalidation listener on 'policy:invalidate' fell {BEHIND_AFTER} messages behind"
            " (backlog #1); cache flushed and bypassed until it catches up."
        )
    )
    assert store.stats.backlogs == 12


def test_the_typed_errors_of_a_read_are_not_found_first(redis_backend: RedisBackend) -> None:
    async def scenario(kit: Kit) -> None:
        store = await kit.store(max_policy_bytes=10)
        with pytest.raises(PolicyNotFoundError):
            await store.get_policy("absent")

    run(scenario, redis_backend)


def test_the_payload_and_policy_rules_agree_on_long_ints() -> None:
    with pytest.raises(InvalidPayloadError):
        asyncio.run(PolicyStoreV2(fakeredis.FakeAsyncRedis()).update_policy("p", {"x": 10**640}))
    asyncio.run(_write_at_the_limit())


async def _write_at_the_limit() -> None:
    client = fakeredis.FakeAsyncRedis()
    store = PolicyStoreV2(client)
    await store.update_policy("p", {"x": 10**640 - 1})
    assert (await store.get_policy("p"))["x"] == 10**640 - 1
    await client.aclose()


def test_initialize_on_a_stalled_server_is_store_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(policy_store_v2, "_SUBSCRIBE_TIMEOUT", 0.05)

    async def scenario() -> None:
        async with SilentRedis().running() as silent:
            client = silent.client()
            store = PolicyStoreV2(client)
            with pytest.raises(StoreUnavailableError) as caught:
                await asyncio.wait_for(store.initialize(), timeout=30)  # a guard only
            await store.close()
            await client.aclose()
        assert str(caught.value) == (
            "cannot subscribe to the invalidation channel 'policy:invalidate':"
            " Redis did not confirm SUBSCRIBE 'policy:invalidate' within 0.05s"
        )

    asyncio.run(scenario())
