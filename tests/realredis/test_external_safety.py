"""A run against someone else's Redis (``--p1-redis=redis://...``) leaves it as it found it.

The session's private redis-server is seeded with about 100 "production" keys
of every type, under the reference store's key prefix (``policy:``, some with
the very names the stale-read search and the probes use) and others, some with
a TTL. Then the acceptance run goes at it as an external server: after a
passing run, a failing one and one interrupted with SIGINT, every seeded key
is byte-identical (``DUMP``) with its TTL, no other key is left, and every
message published on the server named a policy of the run's namespace (the
harness's own barrier tokens go to channels of their own, which no store reads).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._redis.namespace import Namespace, NamespaceUnavailable
from pytest_quantum_p1._redis.source import RedisSource
from tests.plugin import broken_targets as broken
from tests.plugin.broken_targets import run_p1

pytestmark = pytest.mark.real_redis

#: What every name the harness published looks like: ``p1-<token>-t<n>-...``.
NAMESPACED = re.compile(rb"p1-[0-9a-f]{8}-t\d+-.+")
#: Where the harness publishes its own barrier tokens (never on a store's channel).
BARRIER_CHANNEL = b"p1:barrier:"
#: Seconds an interrupted run gets to start writing, and then to end.
INTERRUPT_WAIT_S = 60.0
FEW_SCENARIOS = "--p1-scenarios=20"


@dataclass
class Production:
    """A seeded server: what each key was, and every message published while watched."""

    url: str
    before: dict[bytes, tuple[bytes, int]]
    published: list[tuple[bytes, bytes]] = field(default_factory=list)

    def snapshot(self) -> dict[bytes, tuple[bytes, int]]:
        with redis.Redis.from_url(self.url) as client:
            return {key: (client.dump(key), client.pttl(key)) for key in client.scan_iter()}

    def assert_untouched(self) -> None:
        """Every seeded key as it was (its TTL no longer than before), and nothing else."""
        after = self.snapshot()
        assert sorted(after) == sorted(self.before), sorted(set(after) ^ set(self.before))
        for key, (dump, ttl) in self.before.items():
            dump_after, ttl_after = after[key]
            assert dump_after == dump, key
            if ttl < 0:
                assert ttl_after == ttl, key
            else:
                assert 0 < ttl_after <= ttl, key

    def assert_published_only_probe_names(self) -> None:
        # The harness's own messages go only to its barrier channels, which no
        # store listens to; on any other channel, only the stores' invalidations.
        channels = {channel for channel, _data in self.published}
        assert any(c.startswith(BARRIER_CHANNEL) for c in channels), "no barrier was seen"
        names = {
            data for channel, data in self.published if not channel.startswith(BARRIER_CHANNEL)
        }
        assert names, "the run published nothing: the watch saw no invalidation"
        strays = sorted(name for name in names if not NAMESPACED.fullmatch(name))
        assert not strays, strays[:10]
        tokens = {name.split(b"-")[1] for name in names}
        assert not any(token in key for token in tokens for key in self.before)


def _seed(client: redis.Redis) -> None:
    # The reference store's own prefix, with the names the run's probes and the
    # stale-read search would take if they had no namespace.
    harness_like = ["a", "b", "c", "p1-cached-deadbeef", "p1-settle-abcdef-1", "p1-quiesce-1"]
    names = harness_like + [f"prod-{i}" for i in range(54)]
    for i, name in enumerate(names):
        client.set(f"policy:{name}", f'{{"limit": {i}, "owner": "production"}}')
    for i in range(10):
        client.hset(f"user:{i}", mapping={"name": f"user {i}", "tier": i % 3})
    for i in range(8):
        client.rpush(f"queue:{i}", *[f"job-{j}" for j in range(5)])
    for i in range(8):
        client.sadd(f"tags:{i}", "a", "b", f"t{i}")
    for i in range(8):
        client.zadd(f"rank:{i}", {"x": 1.5, "y": i})
    for i in range(4):
        client.xadd(f"events:{i}", {"kind": "deploy", "n": str(i)})
    for i in range(6):
        client.set(f"session:{i}", "token", ex=86_400)


@pytest.fixture
def production(url: str) -> Iterator[Production]:
    """The session's private server (emptied), seeded, with every publish recorded."""
    with redis.Redis.from_url(url) as client:
        _seed(client)
    seeded = Production(url, {})
    seeded.before = seeded.snapshot()
    assert len(seeded.before) >= 100
    stop = threading.Event()
    listening = threading.Event()

    def watch() -> None:
        with redis.Redis.from_url(url) as client, client.pubsub() as pubsub:
            pubsub.psubscribe("*")
            while not stop.is_set():
                message = pubsub.get_message(timeout=0.1)
                if message is None:
                    continue
                if message["type"] == "psubscribe":
                    listening.set()
                elif message["type"] == "pmessage":
                    seeded.published.append((message["channel"], message["data"]))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert listening.wait(10)
    try:
        yield seeded
    finally:
        stop.set()
        watcher.join(10)


def test_a_passing_run_leaves_every_key_as_it_was(
    pytester: pytest.Pytester, production: Production
) -> None:
    result = run_p1(pytester, f"--p1-redis={production.url}", FEW_SCENARIOS)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    production.assert_untouched()
    production.assert_published_only_probe_names()


def test_a_failing_run_leaves_every_key_as_it_was(
    pytester: pytest.Pytester, production: Production
) -> None:
    # Fails P1-2.invalidation and the stale-read search (which then shrinks: many writes).
    result = run_p1(
        pytester,
        f"--p1-redis={production.url}",
        FEW_SCENARIOS,
        "-k",
        "P1-2",
        target=broken.store_that_ignores_invalidations,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAIL*P1-2.invalidation*", "*FAIL*P1-2.no-stale-reads*"])
    production.assert_untouched()
    production.assert_published_only_probe_names()


def test_an_interrupted_run_leaves_every_key_as_it_was(
    pytester: pytest.Pytester, production: Production
) -> None:
    # A search far too long to finish: the run is stopped with SIGINT (Ctrl-C)
    # once the search's policies exist on the server.
    command = [
        sys.executable,
        *("-m", "pytest", "-p", "quantum_p1", "-p", "no:cacheprovider", "--p1"),
        *("--p1-target=reference", f"--p1-redis={production.url}", "--p1-scenarios=100000"),
        *("-k", "no-stale-reads"),
    ]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with subprocess.Popen(
        command, cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as run:
        with redis.Redis.from_url(production.url) as client:
            deadline = time.monotonic() + INTERRUPT_WAIT_S
            while not any(client.scan_iter(match="policy:p1-*-a", count=1000)):
                assert run.poll() is None, run.stdout.read() if run.stdout else ""
                assert time.monotonic() < deadline, "the search never wrote its policies"
                time.sleep(0.05)  # polling the server: the run says nothing when it starts
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=INTERRUPT_WAIT_S)
    text = output.decode(errors="replace")
    if not _cpython_ast_bug(text):
        assert run.returncode == pytest.ExitCode.INTERRUPTED, text[-3000:]
    # Whatever the exit looked like, the server is as it was.
    production.assert_untouched()
    production.assert_published_only_probe_names()


def _cpython_ast_bug(output: str) -> bool:
    # CPython gh-106905 (fixed in 3.11.8): pytest formatting the KeyboardInterrupt
    # can die with this SystemError; the exit code is then not pytest's. Not ours.
    return sys.version_info < (3, 11, 8) and "AST constructor recursion depth mismatch" in output


def test_a_namespace_whose_token_a_key_holds_is_not_taken(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.set("policy:report-deadbeef-2025", "production")
    tokens = iter(["deadbeef", "0badf00d"])
    source = RedisSource.external(url)
    namespace = Namespace.claim(source, tokens=lambda: next(tokens))
    assert namespace.prefix == "p1-0badf00d-"
    # Removing it removes only keys holding its token.
    with redis.Redis.from_url(url) as client:
        client.set(f"policy:{namespace.child()}x", "probe")
    assert namespace.remove(source) == 1
    with redis.Redis.from_url(url) as client:
        assert client.get("policy:report-deadbeef-2025") == b"production"


def test_no_free_namespace_is_an_error_saying_so(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.set("deadbeef", "production")
    source = RedisSource.external(url)
    with pytest.raises(NamespaceUnavailable) as caught:
        Namespace.claim(source, tokens=lambda: "deadbeef")
    assert str(caught.value) == _messages.REDIS_NAMESPACE_UNAVAILABLE.format(
        source=source, attempts=5
    )


_ISOLATION_TESTS = """
import asyncio

SEEN = []

def test_a_writes_in_its_namespace(p1_redis, p1_redis_namespace):
    SEEN.append(p1_redis_namespace)
    asyncio.run(p1_redis.set(p1_redis_namespace + "k", "a"))

def test_b_has_a_namespace_of_its_own(p1_redis, p1_redis_namespace):
    assert p1_redis_namespace not in SEEN
    assert asyncio.run(p1_redis.get(SEEN[0] + "k")) == b"a"  # shared server: visible
    assert asyncio.run(p1_redis.get(p1_redis_namespace + "k")) is None
    assert asyncio.run(p1_redis.get("policy:a")) is not None  # the server as it is
"""


def test_p1_redis_on_a_url_gives_each_test_a_namespace_removed_at_the_end(
    pytester: pytest.Pytester, production: Production
) -> None:
    pytester.makepyfile(_ISOLATION_TESTS)
    result = pytester.runpytest(
        "-p", "quantum_p1", f"--p1-redis={production.url}", "-W", "error", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)
    production.assert_untouched()


_OWNED_TESTS = """
import asyncio

def test_a_writes(p1_redis):
    asyncio.run(p1_redis.set("mine", "1"))

def test_b_starts_from_an_empty_database(p1_redis):
    assert asyncio.run(p1_redis.dbsize()) == 0
"""


def test_a_database_declared_owned_is_emptied_before_each_test_and_only_it(
    pytester: pytest.Pytester, production: Production
) -> None:
    pytester.makepyfile(_OWNED_TESTS)
    owned = production.url.rsplit("/", 1)[0] + "/7"
    result = pytester.runpytest(
        "-p", "quantum_p1", f"--p1-redis={owned}", "--p1-redis-owned", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*redis={owned}{_messages.HEADER_REDIS_OWNED}*"])
    production.assert_untouched()  # database 0 was not flushed
