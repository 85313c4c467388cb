"""A store that builds its own client from a URL, observed and steered through proxies alone.

The reference store's ``PolicyStoreV2.from_url`` owns its connection, as a
third-party store does; each instance gets its own proxy's URL, and nothing of
the store is touched: reads are counted, an invalidation held makes the stale
read visible, and a cut subscription is seen to come back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._harness.portal import Portal
from pytest_quantum_p1._wire.proxy import WireProxy
from reference_impl.services.policy_store_v2 import PolicyStoreV2
from tests.wire.conftest import Upstream
from tests.wire.test_proxy import TIMEOUT

CHANNEL = "policy:invalidate"
V1 = {"limit": 1}
V2 = {"limit": 2}


@pytest.fixture
def proxies(portal: Portal, upstream: Upstream) -> Iterator[list[WireProxy]]:
    """Two proxies on one Redis: one per store instance."""
    made = [WireProxy(upstream.address, label=f"instance {i}", loop=portal.loop) for i in range(2)]
    for proxy in made:
        proxy.start()
    try:
        yield made
    finally:
        for proxy in made:
            proxy.close()


async def _served(store: PolicyStoreV2, wanted: Any) -> Any:
    # The store handles the invalidation in its own listener task, on this
    # loop: let it run until it serves the new value (bounded). What the store
    # did with a push cannot be seen on the wire, only what it serves.
    async with asyncio.timeout(TIMEOUT):
        # A yield to the store's task, not a timed wait.
        while (served := await store.get_policy("risk")) != wanted:  # noqa: ASYNC110
            await asyncio.sleep(0)
    return served


def test_a_url_built_store_is_observed_on_the_wire(
    portal: Portal, proxies: list[WireProxy]
) -> None:
    clock = VirtualClock()

    async def open_stores() -> list[PolicyStoreV2]:
        stores = [PolicyStoreV2.from_url(p.url, clock=clock, ttl=60.0) for p in proxies]
        for store in stores:
            await store.initialize()
        return stores

    writer, reader = portal.run(open_stores())

    async def close(stores: list[PolicyStoreV2]) -> None:
        for store in stores:
            await store.close()

    try:
        for proxy in proxies:
            proxy.wait_subscribed(CHANNEL, TIMEOUT)

        portal.run(writer.update_policy("risk", V1))
        before = proxies[1].storage_reads
        assert portal.run(reader.get_policy("risk")) == V1
        assert portal.run(reader.get_policy("risk")) == V1
        assert proxies[1].storage_reads == before + 1  # the miss read storage, the hit did not

        proxies[1].hold()
        portal.run(writer.update_policy("risk", V2))
        (held,) = proxies[1].wait_pending(1, TIMEOUT)
        assert held.channel == CHANNEL
        assert portal.run(reader.get_policy("risk")) == V1  # stale while its invalidation is held

        proxies[1].release()
        assert proxies[1].barrier(TIMEOUT) == 1
        assert portal.run(_served(reader, V2)) == V2

        subscription = proxies[1].wait_subscribed(CHANNEL, TIMEOUT)
        assert proxies[1].disconnect(subscriptions_only=True) == 1
        again = proxies[1].wait_subscribed(CHANNEL, 10.0)  # the store resubscribed by itself
        assert again.id != subscription.id
    finally:
        portal.run(close([writer, reader]))
