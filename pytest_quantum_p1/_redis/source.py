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
from pytest_quantum_p1._redis.url import RedisURL

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
    #: ``redis://`` / ``rediss://`` URL, its password redacted wherever it is shown;
    #: ``None`` for a fake source (it has no address).
    url: RedisURL | None = None
    #: The harness may empty it: a private ``server``, or a URL whose database
    #: the user declared the harness's own (``--p1-redis-owned``).
    owned: bool = False
    #: What every policy name the harness makes on it starts with
    #: (:mod:`~pytest_quantum_p1._redis.namespace`); ``""`` on a server of the harness's own.
    namespace: str = ""
    _fake_server: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def fake(cls) -> RedisSource:
        """A new fakeredis server of its own."""
        import fakeredis

        return cls("fake", _fake_server=fakeredis.FakeServer())

    @classmethod
    def server(cls, url: str | RedisURL) -> RedisSource:
        """A private redis-server the harness started (and so may flush)."""
        return cls("server", _as_url(url), owned=True)

    @classmethod
    def external(
        cls, url: str | RedisURL, *, owned: bool = False, namespace: str = ""
    ) -> RedisSource:
        """Someone else's server, by URL: used as given, never flushed.

        ``owned=True``: the user declared its database the harness's own
        (``--p1-redis-owned``): it may be emptied (``FLUSHDB``). ``namespace``:
        the prefix of the names the harness makes on it.
        """
        return cls("url", _as_url(url), owned=owned, namespace=namespace)

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
        """The URL other processes reach this Redis by, password included (never print it);
        :class:`TypeError` for a fake one."""
        if self.url is None:
            raise TypeError(_messages.NOT_A_SERVER)
        return self.url.reveal()

    def flush(self) -> None:
        """Empty it; only a source the harness owns may be emptied.

        A private server is emptied whole; a URL's database the user declared
        the harness's own, only that database.
        """
        if not self.owned:
            raise PermissionError(_messages.REDIS_NOT_OWNED.format(source=self))
        import redis

        with redis.Redis.from_url(self.address) as admin:
            if self.kind == "server":
                admin.flushall()
            else:
                admin.flushdb()

    def __str__(self) -> str:
        """How the source is shown to people: credentials redacted."""
        return "fake" if self.url is None else str(self.url)


def _as_url(url: str | RedisURL) -> RedisURL:
    return url if isinstance(url, RedisURL) else RedisURL(url)
