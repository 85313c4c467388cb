"""The reference backend with a store of the URL form: it builds its own client, decoding replies.

What a team's store looks like when it owns its connection
(``redis.asyncio.from_url(url, decode_responses=True)``, as the seed's own
sketch does): the acceptance run must reach the same verdicts on it as on the
reference's client form, observed on the wire instead of in the client.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis.asyncio

from pytest_quantum_p1 import Clock, P1Target, PolicyStore, from_url
from reference_impl.p1_target import TARGET as _REFERENCE
from reference_impl.services.policy_store_v2 import PolicyStoreV2


class OwnsItsClient(PolicyStoreV2):
    """The reference store, on a client of its own made from a URL."""

    def __init__(self, url: str, clock: Clock, **options: Any) -> None:
        self.client = redis.asyncio.from_url(url, decode_responses=True, **options)
        super().__init__(self.client, clock=clock)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self.client.aclose()


class OwnsARESP2Client(OwnsItsClient):
    """The same store on a RESP2 client that returns bytes."""

    def __init__(self, url: str, clock: Clock) -> None:
        self.client = redis.asyncio.from_url(url, protocol=2)
        PolicyStoreV2.__init__(self, self.client, clock=clock)


def _owns(url: str, clock: Clock) -> PolicyStore:
    return OwnsItsClient(url, clock)


def _owns_resp2(url: str, clock: Clock) -> PolicyStore:
    return OwnsARESP2Client(url, clock)


TARGET: P1Target = dataclasses.replace(_REFERENCE, store_factory=from_url(_owns))
RESP2: P1Target = dataclasses.replace(_REFERENCE, store_factory=from_url(_owns_resp2))
