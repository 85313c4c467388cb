"""Where the harness's Redis is: one :class:`RedisSource`, from the option to every client.

``--p1-redis`` says ``fake``, ``server``, ``cluster`` or a URL once; the plugin turns that
into a source, and everything that needs a client (a fixture, a cluster, a
child process) asks the source. Whether Redis is fake, and whether the harness
may empty it, is decided here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._redis.url import RedisURL

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "CLUSTER_PUBSUB_REDIS_PY",
    "ClusterProbe",
    "RedisFactory",
    "RedisKind",
    "RedisSource",
    "RedisTooOld",
    "cluster_node_url",
    "initialized",
    "probe_cluster",
    "require_cluster_pubsub",
]

RedisKind = Literal["fake", "server", "url", "cluster"]

#: The first redis-py whose ``redis.asyncio.cluster.RedisCluster`` has ``pubsub()``
#: (and ``publish``): 8.0.0. Earlier ones have the async cluster client without it.
CLUSTER_PUBSUB_REDIS_PY: Final = (8, 0)


class RedisTooOld(RuntimeError):
    """The installed redis-py lacks what a Redis source needs (cluster pub/sub: 8.0)."""


def require_cluster_pubsub(version: str | None = None) -> None:
    """Raise :class:`RedisTooOld` unless redis-py (``version``, default the installed one)
    has async cluster pub/sub, which every store and the harness's observation need."""
    if version is None:
        import redis

        version = redis.__version__
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers < CLUSTER_PUBSUB_REDIS_PY:
        raise RedisTooOld(
            _messages.REDIS_CLUSTER_REDIS_PY_TOO_OLD.format(
                installed=version, needed=".".join(map(str, CLUSTER_PUBSUB_REDIS_PY))
            )
        )


async def initialized(client: Redis) -> Redis:
    """``client``, ready for every use: a ``RedisCluster`` is initialized (a no-op otherwise).

    A fresh ``redis.asyncio.cluster.RedisCluster`` routes commands on its own,
    but its ``pubsub()`` looks the channel's slot up in a slot table that only
    ``initialize()`` fills (redis-py 8.1: a bare ``KeyError: <slot>`` otherwise).
    """
    initialize = getattr(client, "initialize", None)
    if initialize is not None and _is_cluster_client(client):
        await initialize()
    return client


def cluster_node_url(url: str) -> str:
    """``url`` as redis-py takes it: ``redis+cluster://`` becomes ``redis://`` (``rediss`` too)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.lower().removesuffix('+cluster')}{sep}{rest}" if sep else url


@dataclass(frozen=True)
class ClusterProbe:
    """What one node said about its cluster."""

    nodes: int
    masters: int


def probe_cluster(url: str, *, timeout: float = 2.0) -> ClusterProbe | None:
    """Ask the server at ``url`` whether it is a Redis Cluster node (``INFO cluster``).

    ``None``: a standalone server; else the nodes it knows (``CLUSTER NODES``,
    failed ones included). Connection errors propagate (``redis.RedisError``).
    """
    import redis

    with redis.Redis.from_url(
        cluster_node_url(url), socket_connect_timeout=timeout, socket_timeout=timeout
    ) as client:
        if not int(client.info("cluster").get("cluster_enabled", 0)):
            return None
        view: dict[str, dict[str, Any]] = client.execute_command("CLUSTER NODES")
    masters = sum("master" in str(entry.get("flags", "")).split(",") for entry in view.values())
    return ClusterProbe(nodes=len(view), masters=masters)


def _is_cluster_client(client: object) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


class RedisFactory(Protocol):
    """The ``p1_redis_factory`` fixture: a new ``redis.asyncio`` client on the selected Redis.

    Keyword arguments go to the client (``decode_responses=True``, ...).
    """

    def __call__(self, **kwargs: Any) -> Redis: ...


@dataclass(frozen=True)
class RedisSource:
    """One Redis the harness works on, and how to make clients on it.

    Build one with :meth:`fake`, :meth:`server`, :meth:`external` or
    :meth:`cluster`. A fake source holds its own fakeredis server (one per
    source: isolation without flushing); the others hold a URL that any
    process can reach (a cluster's: one node it starts from).
    """

    kind: RedisKind
    #: ``redis://`` / ``rediss://`` URL, its password redacted wherever it is shown;
    #: ``None`` for a fake source (it has no address).
    url: RedisURL | None = None
    #: The harness may empty it: a private ``server`` or cluster, or a URL whose database
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

    @classmethod
    def cluster(
        cls, url: str | RedisURL, *, owned: bool = False, namespace: str = ""
    ) -> RedisSource:
        """A Redis Cluster, by the URL of one of its nodes (``redis://`` or ``redis+cluster://``).

        ``owned=True``: the harness's private cluster (``--p1-redis=cluster``) or
        one the user declared its own: every master may be emptied. Otherwise
        never flushed; ``namespace``: the prefix of the names the harness makes
        on it. Raises :class:`RedisTooOld` when redis-py has no async cluster pub/sub.
        """
        require_cluster_pubsub()
        node = RedisURL(cluster_node_url(url.reveal() if isinstance(url, RedisURL) else url))
        return cls("cluster", node, owned=owned, namespace=namespace)

    @property
    def is_cluster(self) -> bool:
        """A Redis Cluster: keys live on several masters; clients are ``RedisCluster``."""
        return self.kind == "cluster"

    @property
    def fake_server(self) -> Any:
        """The ``fakeredis.FakeServer`` of a fake source (what its TCP server serves); ``None`` otherwise."""
        return self._fake_server

    @property
    def is_fake(self) -> bool:
        """fakeredis lives in this process: other processes cannot reach it."""
        return self.kind == "fake"

    def client(self, **kwargs: Any) -> Redis:
        """A new ``redis.asyncio`` client on this Redis; ``kwargs`` go to the client.

        On a cluster a ``redis.asyncio.cluster.RedisCluster`` (typed as ``Redis``,
        whose commands it offers): pass it through :func:`initialized` before
        ``pubsub()``; its ``aclose()`` takes no argument.
        """
        if self.is_fake:
            import fakeredis

            return fakeredis.FakeAsyncRedis(server=self._fake_server, **kwargs)
        if self.is_cluster:
            from redis.asyncio.cluster import RedisCluster

            # Stores and the harness type their client as Redis; a RedisCluster
            # has the same command methods, and the differences are handled where used.
            return cast("Redis", RedisCluster.from_url(self.address, **kwargs))
        import redis.asyncio

        return redis.asyncio.Redis.from_url(self.address, **kwargs)

    def master_addresses(self) -> list[str]:
        """The URL of every master now (password included: never print them).

        A cluster's masters, as its nodes report them (each keeps the source's
        scheme and credentials); anything else: :attr:`address` alone.
        """
        if not self.is_cluster:
            return [self.address]
        from redis.cluster import RedisCluster

        parts = urlsplit(self.address)
        credentials = parts.netloc.rpartition("@")[0]
        urls = []
        with RedisCluster.from_url(self.address) as admin:
            for node in admin.get_primaries():
                netloc = f"{node.host}:{node.port}"
                netloc = f"{credentials}@{netloc}" if credentials else netloc
                urls.append(urlunsplit((parts.scheme, netloc, "", parts.query, "")))
        return urls

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
        the harness's own, only that database; a cluster, every master (its
        replicas follow).
        """
        if not self.owned:
            raise PermissionError(_messages.REDIS_NOT_OWNED.format(source=self))
        import redis

        if self.is_cluster:
            for address in self.master_addresses():
                with redis.Redis.from_url(address) as admin:
                    admin.flushall()
            return
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
