"""The fixtures built on the other modules: Redis, clock, cluster, v2 scan and guard.

Each runs in pytester against a tiny target written here, with a switch that
breaks it, so every check is seen failing with the message users read, and
against the reference target where it passes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._messages import NOT_CONVERGED
from pytest_quantum_p1._messages import V2_RUNTIME_HEADLINE as RUNTIME_HEADLINE
from pytest_quantum_p1._messages import V2_SCAN_HEADLINE as SCAN_HEADLINE
from pytest_quantum_p1._redis.server import RedisServer, require_redis_server

# A whole small backend: a bus, a policy store (STALE=1 in the environment
# makes it forget to invalidate), and a v2 engine behind a bridge, with a
# rogue module that reaches the engine through importlib.
TINY_PACKAGE = {
    "tinypkg/__init__.py": "",
    "tinypkg/engine_v2.py": """
class EngineV2:
    pass
""",
    "tinypkg/bridge.py": """
from tinypkg.engine_v2 import EngineV2


def make_engine():
    return EngineV2()
""",
    "tinypkg/rogue.py": """
import importlib


def make_engine():
    return importlib.import_module("tinypkg.engine_v2").EngineV2()
""",
    "tinypkg/target.py": """
import asyncio
import contextlib
import json
import os
from pathlib import Path

from pytest_quantum_p1 import P1Target, V2Rules
from reference_impl.core.event_bus import EventBus, EventSpec

CHANNEL = "policy:invalidate"
BUS = EventBus({"tiny.happened": EventSpec("tiny.happened", "Something happened.")})
ROOT = Path(__file__).resolve().parent


class Store:
    def __init__(self, redis, clock):
        self.redis = redis
        self.clock = clock
        self.cache = {}
        self.stale = os.environ.get("STALE") == "1"

    async def initialize(self):
        self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe(CHANNEL)
        await self.pubsub.get_message(timeout=5)  # the subscription's confirmation
        self.listener = asyncio.create_task(self.listen())

    async def listen(self):
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None and not self.stale:
                self.cache.pop(message["data"].decode(), None)

    async def get_policy(self, name):
        if name not in self.cache:
            self.cache[name] = json.loads(await self.redis.get("policy:" + name))
        return self.cache[name]

    async def update_policy(self, name, policy):
        await self.redis.set("policy:" + name, json.dumps(dict(policy)))
        await self.redis.publish(CHANNEL, name)

    async def close(self):
        self.listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.listener
        await self.pubsub.aclose()


TARGET = P1Target(
    name="tiny",
    bus=lambda: BUS,
    required_events=(),
    monitor_logger="tiny.events",
    store_factory=Store,
    policy_ttl=10.0,
    v2=V2Rules(
        source_roots=(ROOT,),
        v2_modules=("tinypkg.engine_v2",),
        bridge_modules=("tinypkg.bridge",),
        removed_paths=(),
        docs=(),
        doc_notice=(),
        engine_class=os.environ.get("ENGINE", "tinypkg.engine_v2:EngineV2"),
    ),
)
""",
}


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose runs use the tiny target."""
    for path, source in TINY_PACKAGE.items():
        (pytester.path / path).parent.mkdir(exist_ok=True)
        (pytester.path / path).write_text(source.lstrip())
    pytester.syspathinsert()
    pytester.makeini("[pytest]\np1_target = tinypkg.target:TARGET\n")
    return pytester


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, standing for "someone else's server"."""
    with require_redis_server() as server:
        yield server


# -- p1_redis / p1_redis_factory ----------------------------------------------------

_REDIS_TESTS = """
import asyncio

def test_a_writes(p1_redis):
    async def main():
        await p1_redis.set("mark", "a")
        return await p1_redis.get("mark")

    assert asyncio.run(main()) == b"a"

def test_b_starts_empty(p1_redis):
    assert asyncio.run(p1_redis.get("mark")) is None

def test_factory_clients_share_the_redis(p1_redis, p1_redis_factory):
    other = p1_redis_factory(decode_responses=True)

    async def main():
        await p1_redis.set("shared", "yes")
        return await other.get("shared")

    assert asyncio.run(main()) == "yes"

def test_one_client_on_two_loops_in_turn(p1_redis):
    asyncio.run(p1_redis.set("k", "1"))
    assert asyncio.run(p1_redis.get("k")) == b"1"
"""


def test_p1_redis_fake_is_isolated_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(_REDIS_TESTS)
    result = pytester.runpytest("-p", "quantum_p1", "-p", "no:randomly")
    result.assert_outcomes(passed=4)


@pytest.mark.real_redis
def test_p1_redis_server_is_private_flushed_and_closed_cleanly(
    pytester: pytest.Pytester, private_redis: RedisServer
) -> None:
    # ``private_redis`` only proves a server can start here; the run spawns its own.
    pytester.makepyfile(_REDIS_TESTS)
    # Unclosed connections would surface as ResourceWarnings: make them errors.
    result = pytester.runpytest(
        "-p", "quantum_p1", "--p1-redis=server", "-W", "error", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["quantum-p1: target=*, redis=server"])


@pytest.mark.real_redis
def test_p1_redis_url_is_used_as_given_and_never_flushed(
    pytester: pytest.Pytester, private_redis: RedisServer
) -> None:
    with redis.Redis.from_url(private_redis.url) as client:
        client.set("precious", "keep me")
    pytester.makepyfile(
        """
        import asyncio

        def test_sees_existing_data(p1_redis):
            assert asyncio.run(p1_redis.get("precious")) == b"keep me"
        """
    )
    result = pytester.runpytest(
        "-p", "quantum_p1", f"--p1-redis={private_redis.url}", "-W", "error"
    )
    result.assert_outcomes(passed=1)
    with redis.Redis.from_url(private_redis.url) as client:
        assert client.get("precious") == b"keep me"


_OWN_LOOP_TESTS = """
import asyncio

def test_closes_its_loop_alone(p1_redis):
    loop = asyncio.new_event_loop()
    loop.run_until_complete(p1_redis.set("k", "1"))
    loop.close()

def test_shuts_its_loop_down_first(p1_redis):
    loop = asyncio.new_event_loop()
    loop.run_until_complete(p1_redis.set("k", "1"))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()

def test_runs_with_a_runner(p1_redis):
    with asyncio.Runner() as runner:
        runner.run(p1_redis.set("k", "1"))
"""


@pytest.mark.parametrize(
    "redis_option",
    [
        pytest.param("fake", id="fake"),
        pytest.param("server", id="server", marks=pytest.mark.real_redis),
    ],
)
def test_a_loop_closed_with_connections_open_on_it_is_the_same_error_on_fake_and_real_redis(
    pytester: pytest.Pytester, redis_option: str
) -> None:
    # Issue 14: on a real server this used to error "Event loop is closed", on fakeredis pass.
    pytester.makepyfile(_OWN_LOOP_TESTS)
    result = pytester.runpytest(
        "-p", "quantum_p1", f"--p1-redis={redis_option}", "-W", "error", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_closes_its_loop_alone*",
            _messages.REDIS_CONNECTIONS_LEFT_OPEN.format(count=1)[:60] + "*",
        ]
    )
    assert "Event loop is closed" not in result.stdout.str()


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", "skipped"), ("true", "errors")], ids=["locally", "under-ci"]
)
def test_a_missing_redis_server_skips_locally_and_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("PATH", str(pytester.mkdir("empty-bin")))
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile("def test_needs_redis(p1_redis): pass")
    result = pytester.runpytest("-p", "quantum_p1", "--p1-redis=server", "-rs")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(
        ["*" + _messages.REDIS_SERVER_UNAVAILABLE.format(error="cannot start a private Redis*")]
    )


# -- virtual_clock ------------------------------------------------------------------


def test_virtual_clock_moves_only_when_advanced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_quantum_p1 import VirtualClock

        def test_clock(virtual_clock):
            assert isinstance(virtual_clock, VirtualClock)
            start = virtual_clock()
            assert virtual_clock() == start
            assert virtual_clock.advance(300) == start + 300
        """
    )
    pytester.runpytest("-p", "quantum_p1").assert_outcomes(passed=1)


# -- policy_cluster -------------------------------------------------------------------

_CLUSTER_TEST = """
def test_invalidation_reaches_every_instance(policy_cluster):
    cluster = policy_cluster()
    assert len(cluster) == 3
    cluster.update(0, "risk", {"limit": 1})
    assert [dict(v) for v in cluster.read_all("risk")] == [{"limit": 1}] * 3
    cluster.update(1, "risk", {"limit": 2})
    cluster.assert_converged("risk", {"limit": 2})
"""


def test_policy_cluster_converges_with_a_correct_store(tiny: pytest.Pytester) -> None:
    tiny.makepyfile(_CLUSTER_TEST)
    tiny.runpytest("-p", "quantum_p1", "--p1-instances=3").assert_outcomes(passed=1)


def test_policy_cluster_fails_a_store_that_never_invalidates(
    tiny: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STALE", "1")
    tiny.makepyfile(_CLUSTER_TEST)
    result = tiny.runpytest("-p", "quantum_p1", "--p1-instances=3")
    result.assert_outcomes(failed=1)
    headline = NOT_CONVERGED.format(name="risk", count=3, total=3)
    result.stdout.fnmatch_lines(["E   *" + headline.replace("[", "[[]") + "*"])


def test_policy_cluster_with_the_reference_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_reference(policy_cluster):
            cluster = policy_cluster(instances=2)
            cluster.update(0, "orchestrator", {"mode": "normal"})
            cluster.read_all("orchestrator")
            cluster.update(1, "orchestrator", {"mode": "defensive"})
            cluster.assert_converged("orchestrator", {"mode": "defensive"})
        """
    )
    pytester.runpytest("-p", "quantum_p1", "--p1-target=reference").assert_outcomes(passed=1)


# -- v2_usage -------------------------------------------------------------------------


def test_v2_usage_finds_an_importlib_import_outside_the_bridge(tiny: pytest.Pytester) -> None:
    tiny.makepyfile(
        """
        from pytest_quantum_p1._v2 import format_violations

        def test_scan(v2_usage, p1_target):
            assert [v.importer for v in v2_usage.violations] == ["tinypkg.rogue"]
            assert v2_usage.ok, format_violations(v2_usage, p1_target.v2)
        """
    )
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   *" + SCAN_HEADLINE.format(count=1, s="") + ":",
            "E   *- *rogue.py:5  tinypkg.rogue → tinypkg.engine_v2 (importlib.import_module)",
        ]
    )


def test_v2_usage_of_the_reference_target_is_clean(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_scan(v2_usage):
            assert v2_usage.ok
            assert v2_usage.files_scanned > 5
        """
    )
    pytester.runpytest("-p", "quantum_p1", "--p1-target=reference").assert_outcomes(passed=1)


# -- v2_guard / forbid_v2 ---------------------------------------------------------------


def test_forbid_v2_fails_a_construction_outside_the_bridge(tiny: pytest.Pytester) -> None:
    tiny.makepyfile(
        """
        import pytest
        from tinypkg import bridge, rogue

        @pytest.mark.forbid_v2
        def test_through_the_bridge():
            bridge.make_engine()

        @pytest.mark.forbid_v2
        def test_rogue():
            rogue.make_engine()

        def test_guard_records_callers(v2_guard):
            bridge.make_engine()
            rogue.make_engine()
            assert [c.caller_module for c in v2_guard.constructions] == [
                "tinypkg.bridge", "tinypkg.rogue"
            ]
            assert [c.caller_module for c in v2_guard.violations] == ["tinypkg.rogue"]
        """
    )
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_rogue _*",
            RUNTIME_HEADLINE.format(engine="EngineV2", count=1) + ":",
            "- *rogue.py:5 in tinypkg.rogue",
            "Fix: construct it only in the bridge: tinypkg.bridge*",
        ]
    )


def test_forbid_v2_misuse_is_a_clear_error(tiny: pytest.Pytester) -> None:
    tiny.makepyfile(
        """
        import pytest

        @pytest.mark.forbid_v2("tinypkg.rogue")
        def test_misused():
            pass
        """
    )
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            _messages.MARKER_FORBID_V2_MISUSE.format(
                nodeid="test_forbid_v2_misuse_is_a_clear_error.py::test_misused",
                args="'tinypkg.rogue'",
            )
        ]
    )


def test_v2_guard_names_an_engine_class_it_cannot_import(
    tiny: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE", "tinypkg.engine_v3:EngineV3")
    tiny.makepyfile("def test_guarded(v2_guard): pass")
    result = tiny.runpytest("-p", "quantum_p1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            _messages.V2_ENGINE_UNAVAILABLE.format(
                spec="tinypkg.engine_v3:EngineV3",
                error=_messages.SPEC_NOT_IMPORTABLE.format(
                    module="tinypkg.engine_v3", error="No module named 'tinypkg.engine_v3'"
                ),
            )
        ]
    )


def test_forbid_v2_passes_the_reference_target_acting_through_its_bridge(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import warnings

        import pytest

        @pytest.mark.forbid_v2
        def test_node_status_change(p1_target, p1_events):
            (required,) = [
                e for e in p1_target.required_events
                if e.name == "federation.node.status_changed"
            ]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                asyncio.run(required.action(p1_target.bus()))
            p1_events.assert_published("federation.node.status_changed")
        """
    )
    # In a subprocess: guarding a class leaves an inert wrapper on it for good
    # (see _v2.patch), and the reference engine class is shared with other tests here.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.runpytest_subprocess("-p", "quantum_p1", "--p1-target=reference").assert_outcomes(
        passed=1
    )
