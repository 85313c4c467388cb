"""A policy store over cashews 7.x's client-side cache, in the URL form: the whole adapter.

cashews (``cache.setup(url, client_side=True)``) keeps a local copy of what it
read and drops it when Redis's server-assisted client-side caching says the key
changed: ``CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX cashews:`` on a
pub/sub connection subscribed to ``__redis__:invalidate``, whose messages are
lists of keys. Nothing of cashews is changed or reached into: the adapter maps
the harness's four calls onto the public ``Cache`` API, and the harness sees
cashews only on the wire (one proxy per instance), whatever protocol its
client speaks.

cashews takes no clock: its local copies have no TTL here (none is set), so
the search runs without ``advance_clock`` and the report claims nothing about
TTL expiry. Its reconnect wait is 10 s (``_RECONNECT_WAIT``): a search with the
link rules needs ``reconnect_timeout`` above it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Final

from cashews import Cache

from pytest_quantum_p1 import Clock, FromURL, from_url

__all__ = ["CHANNEL", "RULES_OFF", "CashewsPolicyStore", "factory"]

#: Where cashews hears invalidations: tracking, not a channel of its own.
CHANNEL: Final = "__redis__:invalidate"
#: Rules the search leaves out: no injectable clock; a 10 s reconnect per link step;
#: a message it cannot parse ends cashews' listener for good (it then reads Redis on
#: every call, which is safe, but no cache) and leaves that connection open.
RULES_OFF: Final = ("advance_clock", "disconnect", "reconnect", "inject_garbage")


class CashewsPolicyStore:
    """``initialize`` / ``get_policy`` / ``update_policy`` / ``close`` over one cashews ``Cache``.

    ``protocol`` is passed to cashews' redis-py client: ``None`` keeps redis-py's
    default (RESP3 on redis-py 8), ``2`` asks for RESP2.
    """

    def __init__(self, url: str, clock: Clock, *, protocol: int | None = None) -> None:
        self.url = url
        self.protocol = protocol
        self.cache = Cache()

    async def initialize(self) -> None:
        options: dict[str, Any] = {"client_side": True, "suppress": False}
        if self.protocol is not None:
            options["protocol"] = self.protocol
        self.cache.setup(self.url, **options)
        await self.cache.init()

    async def get_policy(self, name: str) -> dict[str, Any]:
        value = await self.cache.get(name)
        if value is None:
            raise KeyError(name)
        return dict(value)

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await self.cache.set(name, dict(policy))

    async def close(self) -> None:
        # cashews 7.6 closes its client with redis-py's deprecated close(): under
        # warnings-as-errors that would abort the close and leave every connection open.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            await self.cache.close()


def factory(protocol: int | None = None) -> FromURL:
    """The harness's store factory: ``(url, clock) -> CashewsPolicyStore``."""

    def make(url: str, clock: Clock) -> CashewsPolicyStore:
        return CashewsPolicyStore(url, clock, protocol=protocol)

    make.__name__ = f"cashews_resp{protocol or 'default'}"
    return from_url(make)
