"""The invalidation state machine on stores of the URL form: every instance behind a wire proxy.

The stores (:mod:`tests.url_stores`) build their own client from the URL they
are given, with ``decode_responses=True``; the machine sees them only on the
wire. A correct one must pass (no false positive from what the wire cannot
see: reads are judged by serving), on fakeredis and on a real server, in RESP2
and RESP3; each broken one must fail with its kind and the wire's note.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio

from pytest_quantum_p1._messages import (
    MACHINE_CACHED_ACROSS_LINK_LOSS,
    MACHINE_STALE_READ,
    MACHINE_WIRE_SERVED,
)
from pytest_quantum_p1._redis.server import RedisServer
from pytest_quantum_p1._stateful import (
    InvalidationError,
    NoStaleReadsResult,
    check_no_stale_reads,
    machine_for,
    seeded_search,
)
from pytest_quantum_p1._stateful.machine import SharedClients
from pytest_quantum_p1._target import PolicyStore, from_url
from tests.stores import TTL
from tests.url_stores import (
    UrlKeepsCacheOnLinkLoss,
    UrlNeverInvalidates,
    UrlRacyFill,
    UrlSeedStore,
    UrlSeedStoreResp2,
    UrlSeedStoreResp3,
)

#: Short waits: a broken store is waited out once per failing read.
SETTLE = 0.5


def _head(template: str) -> str:
    """The fixed start of a message template, before its first field."""
    return template.split("{", 1)[0]


def _search(
    store: Callable[..., PolicyStore], scenarios: int, **options: object
) -> NoStaleReadsResult:
    return check_no_stale_reads(
        from_url(store),
        TTL,
        scenarios=scenarios,
        shrink=False,
        settle_timeout=SETTLE,
        reconnect_timeout=2.0,
        **options,  # type: ignore[arg-type]
    )


def test_the_seed_store_in_url_form_passes_on_fakeredis() -> None:
    result = _search(UrlSeedStore, 40)
    assert result.failures is None, result.failures
    assert result.scenarios >= 40


@pytest.mark.real_redis
def test_the_seed_store_in_url_form_passes_on_a_real_server(url: str) -> None:
    result = _search(UrlSeedStore, 25, make_client=lambda: redis.asyncio.Redis.from_url(url))
    assert result.failures is None, result.failures
    assert result.scenarios >= 25


@pytest.mark.parametrize("store", [UrlSeedStoreResp2, UrlSeedStoreResp3])
def test_resp2_and_resp3_clients_are_observed_alike(store: Callable[..., PolicyStore]) -> None:
    result = _search(store, 20)
    assert result.failures is None, result.failures


@pytest.mark.parametrize(
    ("store", "kind", "head"),
    [
        pytest.param(UrlNeverInvalidates, "stale", MACHINE_STALE_READ, id="never-invalidates"),
        pytest.param(UrlRacyFill, "stale", MACHINE_STALE_READ, id="stale-fill-race"),
        pytest.param(
            UrlKeepsCacheOnLinkLoss,
            "link-loss",
            MACHINE_CACHED_ACROSS_LINK_LOSS,
            id="no-flush-on-lost-link",
        ),
    ],
)
def test_a_broken_url_store_fails_with_the_wire_evidence(
    store: Callable[..., PolicyStore], kind: str, head: str
) -> None:
    result = _search(store, 200)
    assert result.kind == kind, result.failures
    assert result.failures is not None
    assert _head(head) in result.failures
    # What the wire path could and could not prove is said with the verdict.
    assert _head(MACHINE_WIRE_SERVED) in result.failures
    assert "state.create_policies" in result.failures


@pytest.mark.real_redis
def test_a_broken_url_store_fails_on_a_real_server(redis_server: RedisServer) -> None:
    machine = machine_for(
        from_url(UrlKeepsCacheOnLinkLoss),
        redis_url=redis_server.url,
        settle_timeout=SETTLE,
        disabled_rules=("slow_fetch", "inject_garbage", "advance_clock"),
    )
    machine.shared = SharedClients(redis_url=redis_server.url)
    try:
        with pytest.raises(InvalidationError) as excinfo:
            seeded_search(machine, examples=100, steps=15, seed=0, shrink=False)
    finally:
        machine.shared.close()
        machine.shared = None
    assert excinfo.value.kind == "link-loss"
    assert _head(MACHINE_WIRE_SERVED) in str(excinfo.value)


def test_a_correct_store_is_not_failed_for_what_it_handles_late() -> None:
    # The same store on both paths, same seed: the wire's verdict is the client
    # path's, although on the wire nothing says when the store handled a push.
    from tests.stores import ToyStore

    def on_client(client: redis.asyncio.Redis, clock: Callable[[], float]) -> PolicyStore:
        return ToyStore(client, clock)

    client = check_no_stale_reads(on_client, TTL, scenarios=20, shrink=False)
    wire = _search(UrlSeedStore, 20)
    assert (client.kind, wire.kind) == (None, None)
