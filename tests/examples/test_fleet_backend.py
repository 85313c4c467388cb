"""The fleet example backend does the seed's P1 tasks right, checked without the harness.

fleet (``examples/fleet``) is the second worked example: a pyee bus, a
synchronous mode service, JSON-lines monitoring, a policy cache that builds
its own Redis client from a URL, and federation v2 under ``legacy/fedv2``.
These are its own unit tests, as its team would keep them; the cache tests
run on fakeredis over TCP and on the private redis-server.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

# mypy does not search examples/ (pyproject's [tool.mypy] names the checked packages).
from fleet import events  # type: ignore[import-not-found]
from fleet.cache import policies  # type: ignore[import-not-found]
from fleet.federation.bridge import V2Bridge  # type: ignore[import-not-found]
from fleet.health import readiness  # type: ignore[import-not-found]
from fleet.legacy.fedv2 import FedV2Engine  # type: ignore[import-not-found]
from fleet.models.shadow import ShadowRunner  # type: ignore[import-not-found]
from fleet.ops.modes import ModeService  # type: ignore[import-not-found]
from fleet.safety.governor import Governor  # type: ignore[import-not-found]

FLEET = Path(events.__file__).resolve().parent
MONITOR = "fleet.monitor"


class ManualClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _published(bus: Any, name: str) -> list[dict[str, Any]]:
    """Every payload of ``name`` emitted on ``bus`` from now on."""
    seen: list[dict[str, Any]] = []
    bus.on(name, seen.append)
    return seen


def _utc(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset() == UTC.utcoffset(None)
    return parsed


# -- P1-1: events, publishers, monitoring -------------------------------------------------


def test_the_synchronous_mode_service_publishes_the_change_and_logs_one_json_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = events.new_bus()
    seen = _published(bus, "ai.hfos.mode_changed")
    service = ModeService(bus, mode="normal")
    with caplog.at_level(logging.INFO, logger=MONITOR):
        service.set_mode("defensive")  # a plain call: no event loop needed
    (payload,) = seen
    assert {k: payload[k] for k in ("old_mode", "new_mode")} == {
        "old_mode": "normal",
        "new_mode": "defensive",
    }
    assert abs((datetime.now(UTC) - _utc(payload["timestamp"])).total_seconds()) < 60
    (record,) = [r for r in caplog.records if r.name == MONITOR]
    assert record.levelno == logging.INFO
    assert json.loads(record.getMessage()) == {"event": "ai.hfos.mode_changed", "payload": payload}


def test_every_required_event_is_known_monitored_and_published_by_its_owner() -> None:
    required = {
        "ai.hfos.mode_changed",
        "safety.governor.level_changed",
        "model.shadow_test.completed",
        "federation.node.status_changed",
    }
    assert required <= set(events.EVENTS)
    assert set(events.MONITORED) == required
    owners = {
        "ai.hfos.mode_changed": "ops/modes.py",
        "safety.governor.level_changed": "safety/governor.py",
        "model.shadow_test.completed": "models/shadow.py",
        "federation.node.status_changed": "legacy/fedv2/engine.py",
    }
    for name, owner in owners.items():
        publishers = {
            str(path.relative_to(FLEET))
            for path in FLEET.rglob("*.py")
            if f'"{name}"' in path.read_text(encoding="utf-8") and path.name != "events.py"
        }
        assert publishers == {owner}, name


def test_governor_shadow_runner_and_v2_engine_publish_their_fields() -> None:
    bus = events.new_bus()
    level = _published(bus, "safety.governor.level_changed")
    shadow = _published(bus, "model.shadow_test.completed")
    status = _published(bus, "federation.node.status_changed")

    async def scenario() -> None:
        await Governor(bus, level=1).set_level(4, reason="drawdown")
        await ShadowRunner(bus).complete("m1", [1.0, 2.0], [1.0, 2.5])
        with pytest.warns(DeprecationWarning, match="FedV2Engine is deprecated"):
            engine = FedV2Engine(bus, cluster="c")
        await engine.update_node_status("n1", "online")
        await engine.update_node_status("n1", "offline")

    asyncio.run(scenario())
    assert level[0] | {"timestamp": None} == {
        "old_level": 1,
        "new_level": 4,
        "reason": "drawdown",
        "timestamp": None,
    }
    assert (shadow[0]["verdict"], shadow[0]["samples"]) == ("fail", 2)
    assert shadow[0]["metrics"] == {"mean_abs_error": 0.25}
    assert [(s["old_status"], s["new_status"]) for s in status] == [
        ("unknown", "online"),
        ("online", "offline"),
    ]
    for payload in (*level, *shadow, *status):
        _utc(payload["timestamp"])


def test_bad_input_is_refused_and_publishes_nothing() -> None:
    bus = events.new_bus()
    seen = _published(bus, "safety.governor.level_changed")
    governor = Governor(bus, level=2)
    with pytest.raises(ValueError, match=r"safety level must be 1\.\.5, got 9"):
        asyncio.run(governor.set_level(9))
    with pytest.raises(ValueError, match="two non-empty series of the same length"):
        asyncio.run(ShadowRunner(bus).complete("m1", [1.0], []))
    assert (seen, governor.level) == ([], 2)


def test_a_raising_subscriber_is_logged_and_the_others_still_get_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = events.new_bus()
    before = _published(bus, "ai.hfos.mode_changed")

    def broken(payload: Mapping[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    bus.on("ai.hfos.mode_changed", broken)
    after = _published(bus, "ai.hfos.mode_changed")
    with caplog.at_level(logging.INFO):
        ModeService(bus).set_mode("halted")  # must not raise
    assert len(before) == len(after) == 1
    assert [r.getMessage() for r in caplog.records if r.name == MONITOR]
    (failure,) = [r for r in caplog.records if r.name == "fleet.events"]
    assert failure.levelno == logging.ERROR
    assert "event handler failed: RuntimeError('subscriber bug')" in failure.getMessage()


def test_get_bus_is_one_bus_per_process() -> None:
    assert events.get_bus() is events.get_bus()


# -- P1-3: federation v2 -----------------------------------------------------------------


def test_the_v2_engine_needs_its_cluster_and_warns_at_its_callers_line() -> None:
    bus = events.new_bus()
    with pytest.raises(TypeError, match="cluster"):
        FedV2Engine(bus)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FedV2Engine(bus, cluster="c")
    (warning,) = caught
    assert warning.category is DeprecationWarning
    assert warning.filename == __file__
    assert "use fleet.federation.v3" in str(warning.message)


def test_the_bridge_relays_a_round_to_every_v2_node_past_a_failing_one() -> None:
    received: dict[str, list[Any]] = {"a": [], "b": []}

    async def down(message: Mapping[str, Any]) -> None:
        raise ConnectionError("node down")

    async def scenario() -> dict[str, bool]:
        bus = events.new_bus()
        with pytest.warns(DeprecationWarning, match="FedV2Engine is deprecated"):
            bridge = V2Bridge(bus)
        bridge.engine.register_node("down", down)
        for node_id, inbox in received.items():

            async def node(message: Mapping[str, Any], inbox: list[Any] = inbox) -> None:
                inbox.append(message)

            bridge.engine.register_node(node_id, node)
        delivered: dict[str, bool] = await bridge.engine.broadcast({"type": "ping"})
        bridge.start()
        bus.emit("federation.round.completed", {"round": 1})
        await bus.wait_for_complete()
        bridge.stop()
        bus.emit("federation.round.completed", {"round": 2})  # stopped: not relayed
        await bus.wait_for_complete()
        return delivered

    assert asyncio.run(scenario()) == {"down": False, "a": True, "b": True}
    for inbox in received.values():
        assert inbox == [{"type": "ping"}, {"type": "round", "payload": {"round": 1}}]


def _v2_importers() -> set[str]:
    found = set()
    for path in FLEET.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(n.startswith("fleet.legacy.fedv2") for n in names):
                found.add(str(path.relative_to(FLEET)))
    return found


def test_only_the_bridge_and_the_v2_package_itself_import_v2() -> None:
    assert _v2_importers() == {"federation/bridge.py", "legacy/fedv2/__init__.py"}


def test_the_removed_v2_files_are_gone_and_the_live_heartbeat_is_another_module() -> None:
    for name in ("protocol", "consensus", "node_discovery", "heartbeat"):
        assert not (FLEET / "legacy" / "fedv2" / f"{name}.py").exists()
    assert (FLEET / "net" / "heartbeat.py").is_file()


def test_the_docs_name_v3_current_and_v2_deprecated() -> None:
    for doc in sorted((FLEET / "docs").glob("*.md")):
        text = doc.read_text(encoding="utf-8").replace("**", "")
        assert "Current: Federation v3" in text, doc.name
        assert "Deprecated: Federation v2" in text, doc.name


# -- health ------------------------------------------------------------------------------


class _Unreachable:
    async def ping(self) -> bool:
        raise ConnectionError("Connection refused")


def test_readiness_is_ok_with_redis_and_degraded_without(fake_redis_url: str) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        client = redis.asyncio.from_url(fake_redis_url)
        try:
            return await readiness(events.new_bus(), client), await readiness(
                events.new_bus(), _Unreachable()
            )
        finally:
            await client.aclose()

    up, down = asyncio.run(scenario())
    assert (up["status"], up["redis"]) == ("ok", "ok")
    assert down == {
        "bus_events": 5,
        "status": "degraded",
        "redis": "ConnectionError: Connection refused",
    }


# -- P1-2: the policy cache --------------------------------------------------------------


@asynccontextmanager
async def _caches(url: str, count: int, clock: ManualClock) -> Any:
    caches = [policies.PolicyCache(url, ttl=10.0, clock=clock) for _ in range(count)]
    for cache in caches:
        await cache.initialize()
    raw = redis.asyncio.from_url(url, decode_responses=True)
    try:
        yield caches, raw
    finally:
        await raw.aclose()
        for cache in caches:
            await cache.close()


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait, without a figure to assert, until ``check()`` holds (a 10 s deadline for liveness)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


def test_a_cached_read_stays_off_redis_until_its_ttl_ends(redis_url: str) -> None:
    clock = ManualClock()

    async def scenario() -> list[Any]:
        async with _caches(redis_url, 1, clock) as ([cache], raw):
            await cache.update_policy("risk", {"max": 1})
            first = await cache.get_policy("risk")
            # Changed behind its back (no invalidation): the cache keeps serving its copy.
            await raw.set(policies.KEY_PREFIX + "risk", json.dumps({"max": 2}))
            clock.now += 9.9
            cached = await cache.get_policy("risk")
            clock.now += 0.2
            expired = await cache.get_policy("risk")
            return [dict(first), dict(cached), dict(expired), cache.hits, cache.misses]

    assert asyncio.run(scenario()) == [{"max": 1}, {"max": 1}, {"max": 2}, 1, 2]


def test_an_update_on_one_instance_invalidates_every_instance(redis_url: str) -> None:
    async def scenario() -> None:
        async with _caches(redis_url, 3, ManualClock()) as (caches, _):
            await caches[0].update_policy("risk", {"v": 1})
            for cache in caches:
                assert dict(await cache.get_policy("risk")) == {"v": 1}
            await caches[2].update_policy("risk", {"v": 2})
            # The writer reads its own write at once; the others once the message arrives.
            assert dict(await caches[2].get_policy("risk")) == {"v": 2}
            for cache in caches:

                async def fresh(cache: Any = cache) -> bool:
                    return dict(await cache.get_policy("risk")) == {"v": 2}

                await _eventually(fresh, "an instance served the new value")

    asyncio.run(scenario())


def test_update_publishes_its_invalidation_after_the_value_is_stored(redis_url: str) -> None:
    async def scenario() -> tuple[dict[str, Any], str | None]:
        async with _caches(redis_url, 1, ManualClock()) as ([cache], raw):
            pubsub = raw.pubsub()
            await pubsub.subscribe(policies.CHANNEL)
            await _eventually(lambda: _confirmed(pubsub), "the test's subscription was confirmed")
            await cache.update_policy("risk", {"v": 7})
            message = None
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            stored = await raw.get(policies.KEY_PREFIX + "risk")
            await pubsub.aclose()
            return json.loads(message["data"]), stored

    body, stored = asyncio.run(scenario())
    assert body == {"op": "invalidate", "name": "risk"}
    assert stored is not None
    assert json.loads(stored) == {"v": 7}


async def _confirmed(pubsub: Any) -> bool:
    message = await pubsub.get_message(timeout=0.1)
    return message is not None and message["type"] == "subscribe"


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xfe", b"", b"x" * (1 << 20), b'{"op": "reshard"}', b"[1, 2]", b"risk"],
    ids=["not-utf8", "empty", "1MiB", "unknown-op", "not-an-object", "bare-name"],
)
def test_garbage_on_the_channel_drops_the_cache_and_the_listener_goes_on(
    redis_url: str, garbage: bytes
) -> None:
    clock = ManualClock()

    async def scenario() -> None:
        async with _caches(redis_url, 2, clock) as ([writer, reader], raw):
            await writer.update_policy("risk", {"v": 1})
            await writer.update_policy("other", {"v": 1})
            await reader.get_policy("risk")
            await reader.get_policy("other")
            bytes_raw = redis.asyncio.from_url(redis_url)
            try:
                await raw.set(policies.KEY_PREFIX + "other", json.dumps({"v": 2}))
                await bytes_raw.publish(policies.CHANNEL, garbage)
            finally:
                await bytes_raw.aclose()

            async def dropped() -> bool:
                return dict(await reader.get_policy("other")) == {"v": 2}

            await _eventually(dropped, "the garbage dropped the whole cache")
            await writer.update_policy("risk", {"v": 3})

            async def applied() -> bool:
                return dict(await reader.get_policy("risk")) == {"v": 3}

            await _eventually(applied, "the invalidation after the garbage was applied")

    asyncio.run(scenario())


@pytest.mark.real_redis
def test_a_lost_link_drops_the_cache_and_subscribes_again(url: str) -> None:
    clock = ManualClock()

    async def scenario() -> None:
        async with _caches(url, 2, clock) as ([writer, reader], raw):
            await writer.update_policy("risk", {"v": 1})
            await reader.get_policy("risk")
            # Lost with the link: a write whose invalidation nobody can receive.
            await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            await raw.set(policies.KEY_PREFIX + "risk", json.dumps({"v": 2}))

            async def fresh() -> bool:
                return dict(await reader.get_policy("risk")) == {"v": 2}

            await _eventually(fresh, "the reader dropped what it cached before the link loss")

            async def subscribed() -> bool:
                return int((await raw.pubsub_numsub(policies.CHANNEL))[0][1]) == 2

            await _eventually(subscribed, "both instances subscribed again")
            await writer.update_policy("risk", {"v": 3})

            async def applied() -> bool:
                return dict(await reader.get_policy("risk")) == {"v": 3}

            await _eventually(applied, "invalidations work again")

    asyncio.run(scenario())


class _GatedRedis(redis.asyncio.Redis):
    """A client whose first GET holds its answer until :attr:`gate` is set."""

    gate: asyncio.Event
    held = False

    async def get(self, name: Any) -> Any:
        value = await super().get(name)
        if not _GatedRedis.held:
            _GatedRedis.held = True
            await self.gate.wait()
        return value


def test_a_fetch_overtaken_by_a_newer_one_does_not_go_back_in_time(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the acceptance run's stale-read search: with the invalidation lost,
    # a slow fetch of the old value finished after a newer read and replaced it.
    monkeypatch.setattr(_GatedRedis, "held", False)
    monkeypatch.setattr(
        policies.aioredis,
        "from_url",
        lambda url, **options: _GatedRedis.from_url(url, **options),
    )

    async def scenario() -> list[dict[str, Any]]:
        _GatedRedis.gate = asyncio.Event()
        cache = policies.PolicyCache(redis_url, ttl=10.0, clock=ManualClock())
        await cache.initialize()
        raw = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            await raw.set(policies.KEY_PREFIX + "risk", json.dumps({"v": 1}))
            slow = asyncio.create_task(cache.get_policy("risk"))  # reads v1, then held
            await _eventually(_held, "the slow fetch read its value")
            await raw.set(policies.KEY_PREFIX + "risk", json.dumps({"v": 2}))  # invalidation lost
            newer = dict(await cache.get_policy("risk"))
            _GatedRedis.gate.set()
            older = dict(await slow)
            after = dict(await cache.get_policy("risk"))
            return [newer, older, after]
        finally:
            await raw.aclose()
            await cache.close()

    assert asyncio.run(scenario()) == [{"v": 2}, {"v": 2}, {"v": 2}]


async def _held() -> bool:
    return _GatedRedis.held


def test_a_missing_policy_and_a_cache_not_initialised_are_clear_errors(
    fake_redis_url: str,
) -> None:
    cache = policies.PolicyCache(fake_redis_url)
    with pytest.raises(RuntimeError, match=r"PolicyCache.initialize\(\) was not awaited"):
        asyncio.run(cache.get_policy("risk"))

    async def scenario() -> None:
        async with _caches(fake_redis_url, 1, ManualClock()) as ([ready], _):
            with pytest.raises(policies.PolicyNotFound):
                await ready.get_policy("nope")

    asyncio.run(scenario())
