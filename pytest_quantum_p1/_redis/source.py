"""Where the harness's Redis is: one :class:`RedisSource`, from the option to every client.

``--p1-redis`` says ``fake``, ``server`` or a URL once; the plugin turns that
into a source, and everything that needs a client (a fixture, a cluster, a
child process) asks the source. Whether Redis is fake, and whether the harness
may empty it, is decided here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._redis.server import redact_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisFactory", "RedisKind", "RedisSource"]

RedisKind = Literal["fake", "server", "url"]


class RedisFactory(Protocol):
    """The ``p1_redis_factory`` fixture: a new ``redis.asyncio`` client on the selected Redis.

    Keyword arguments go to the client (``decode_responses=True``, ...).
    """

    def __call__(self, **kwargs: Any) -> Redis: ...


@dataclass(frozen=True)
class RedisSource:
    """One Redis the harness works on, and how to make clients on it.

    Build one with :meth:`fake`, :meth:`server` or :meth:`external`. A fake
    source holds its own fakeredis server (one per source: isolation without
    flushing); the others hold a URL that any process can reach.
    """

    kind: RedisKind
    #: ``redis://`` / ``rediss://`` URL; ``None`` for a fake source (it has no address).
    url: str | None = None
    #: The harness started this server and may empty it (a private ``server``).
    owned: bool = False
    _fake_server: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def fake(cls) -> RedisSource:
        """A new fakeredis server of its own."""
        import fakeredis

        return cls("fake", _fake_server=fakeredis.FakeServer())

    @classmethod
    def server(cls, url: str) -> RedisSource:
        """A private redis-server the harness started (and so may flush)."""
        return cls("server", url, owned=True)

    @classmethod
    def external(cls, url: str) -> RedisSource:
        """Someone else's server, by URL: used as given, never flushed."""
        return cls("url", url)

    @property
    def is_fake(self) -> bool:
        """fakeredis lives in this process: other processes cannot reach it."""
        return self.kind == "fake"

    def client(self, **kwargs: Any) -> Redis:
        """A new ``redis.asyncio`` client on this Redis; ``kwargs`` go to the client."""
        if self.is_fake:
            import fakeredis

            return fakeredis.FakeAsyncRedis(server=self._fake_server, **kwargs)
        import redis.asyncio

        return redis.asyncio.Redis.from_url(self.address, **kwargs)

    @property
    def address(self) -> str:
        """The URL other processes reach this Redis by; :class:`TypeError` for a fake one."""
        if self.url is None:
            raise TypeError(_messages.NOT_A_SERVER)
        return self.url

    def flush(self) -> None:
        """Empty the server; only a source the harness owns may be emptied."""
        if not self.owned:
            raise PermissionError(_messages.REDIS_NOT_OWNED.format(source=self))
        import redis

        with redis.Redis.from_url(self.address) as admin:
            admin.flushall()

    def __str__(self) -> str:
        """How the source is shown to people: credentials redacted."""
        return "fake" if self.url is None else redact_url(self.url)
