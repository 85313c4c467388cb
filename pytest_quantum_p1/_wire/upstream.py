"""Where a wire proxy forwards to: the Redis of a :class:`~pytest_quantum_p1._redis.source.RedisSource`.

A store of the URL form (:class:`~pytest_quantum_p1.FromURL`) is given a URL,
so its Redis must be reachable over TCP: a real server is reached at its
address; fakeredis, which lives in this process, is served over TCP by
fakeredis's own ``TcpFakeServer`` on a free loopback port, bound to the
source's fake server so the harness's clients and the store share one dataset.

fakeredis's TCP server writes pushes (pub/sub messages, tracking
invalidations) when its per-connection poll wakes, every 10 ms: on fakeredis,
propagation figures measured on the wire include that wait. They are for
correctness; ``--p1-redis=server`` gives figures worth comparing.

This module imports fakeredis only for a fake source.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

from pytest_quantum_p1 import _messages

if TYPE_CHECKING:
    from pytest_quantum_p1._redis.source import RedisSource

__all__ = ["FAKE_TCP_NEEDS", "Upstream", "upstream_of"]

#: The first fakeredis whose TCP server writes pub/sub pushes without spinning and speaks RESP3.
FAKE_TCP_NEEDS: Final = (2, 39)


@dataclass(frozen=True)
class Upstream:
    """A Redis reachable over TCP, and what a store's URL must carry to use it."""

    host: str
    port: int
    db: int = 0
    #: ``user:password@`` (URL-quoted) of the source's URL, or ``""``.
    userinfo: str = ""

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``: what :class:`~pytest_quantum_p1._wire.proxy.WireProxy` forwards to."""
        return (self.host, self.port)

    def store_url(self, proxy: tuple[str, int]) -> str:
        """The URL a store is given: the proxy's address, the source's credentials and database.

        It holds the password when the source's does: never print it.
        """
        host, port = proxy
        return f"redis://{self.userinfo}{host}:{port}/{self.db}"


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _parsed(source: RedisSource) -> Upstream:
    url = urllib.parse.urlsplit(source.address)
    if url.scheme == "rediss":
        raise TypeError(_messages.WIRE_UPSTREAM_TLS.format(url=source))
    userinfo = url.netloc.rpartition("@")[0]
    path = url.path.strip("/")
    query = urllib.parse.parse_qs(url.query)
    db = int(path) if path.isdigit() else int(query.get("db", ["0"])[0])
    return Upstream(
        url.hostname or "127.0.0.1", url.port or 6379, db, f"{userinfo}@" if userinfo else ""
    )


@contextlib.contextmanager
def upstream_of(source: RedisSource) -> Iterator[Upstream]:
    """The TCP Redis of ``source`` for as long as the block runs.

    A server or a URL: its address (TLS is refused: the proxy speaks plain
    TCP). fakeredis: a ``TcpFakeServer`` on a free loopback port serving the
    source's fake server, shut down when the block ends.
    """
    if not source.is_fake:
        yield _parsed(source)
        return
    found = metadata.version("fakeredis")
    if _version(found) < FAKE_TCP_NEEDS:
        needed = ".".join(str(n) for n in FAKE_TCP_NEEDS)
        raise TypeError(_messages.WIRE_FAKE_NEEDS.format(needed=needed, found=found))
    from fakeredis import TcpFakeServer

    tcp = TcpFakeServer(("127.0.0.1", 0))
    # Nagle off, as redis-server has it: a push written right after a reply
    # (a barrier's PING behind a PUBLISH) would otherwise wait for the
    # client's delayed ACK, ~40 ms each time.
    handler: type[Any] = tcp.RequestHandlerClass  # type: ignore[assignment]
    tcp.RequestHandlerClass = type("NoDelayHandler", (handler,), {"disable_nagle_algorithm": True})
    # One dataset: what the harness's own clients write, the stores read.
    tcp.fake_server = source.fake_server
    # A handler thread must not keep the interpreter alive at exit.
    tcp.daemon_threads = True
    thread = threading.Thread(
        target=tcp.serve_forever, kwargs={"poll_interval": 0.05}, name="p1-fake-tcp", daemon=True
    )
    thread.start()
    try:
        host, port = tcp.server_address[:2]
        yield Upstream(str(host), int(port))
    finally:
        tcp.shutdown()
        tcp.server_close()
        thread.join(timeout=5.0)
