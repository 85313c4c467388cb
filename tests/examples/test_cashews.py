"""The worked example: the stale-read search finds cashews 7.6's two bugs on a real redis-server.

cashews' client-side cache (Redis server-assisted, ``CLIENT TRACKING ... BCAST``
with a ``REDIRECT`` to its own pub/sub connection) is checked through
``examples/cashews_run/adapter.py`` alone, on the wire: what is asserted here
is what ``examples/cashews_run/README.md`` reports.
"""

from __future__ import annotations

import os

import pytest
import redis.asyncio

from pytest_quantum_p1._messages import (
    MACHINE_NOT_MONOTONIC,
    MACHINE_STALE_READ,
    MACHINE_WIRE_SERVED,
)
from pytest_quantum_p1._stateful import NoStaleReadsResult, check_no_stale_reads

if not os.environ.get("CI"):  # locally optional; CI installs the extra and must run it
    pytest.importorskip("cashews")

from examples.cashews_run.adapter import CHANNEL, RULES_OFF, factory

pytestmark = pytest.mark.real_redis


def _head(template: str) -> str:
    return template.split("{", 1)[0]


def _search(url: str, protocol: int | None, *off: str, scenarios: int) -> NoStaleReadsResult:
    return check_no_stale_reads(
        factory(protocol),
        10.0,
        lambda: redis.asyncio.Redis.from_url(url),
        scenarios=scenarios,
        channel=CHANNEL,
        disabled_rules=RULES_OFF + off,
        shrink=False,
        settle_timeout=1.0,
    )


def test_on_resp3_tracking_invalidations_never_reach_the_cache(url: str) -> None:
    # redis-py 8 speaks RESP3 by default; the invalidation is forwarded to
    # cashews' connection (the wire shows it) and its copy is never dropped.
    result = _search(url, None, "slow_fetch", scenarios=50)
    assert result.kind == "stale", result.failures
    assert result.failures is not None
    assert _head(MACHINE_STALE_READ) in result.failures
    assert "delivered (step" in result.failures
    assert _head(MACHINE_WIRE_SERVED) in result.failures


def test_on_resp2_the_same_scenarios_pass(url: str) -> None:
    result = _search(url, 2, "slow_fetch", scenarios=50)
    assert result.failures is None, result.failures


def test_a_slow_miss_overwrites_the_writers_newer_copy(url: str) -> None:
    # The stale-fill race, on RESP2 (where invalidations do arrive): a miss in
    # flight while the same instance writes stores the old value over the new.
    result = _search(url, 2, scenarios=100)
    assert result.kind in ("monotonic", "stale"), result.failures
    assert result.failures is not None
    assert "slow_fetch" in result.failures
    assert _head(MACHINE_NOT_MONOTONIC) in result.failures or _head(MACHINE_STALE_READ) in (
        result.failures
    )
