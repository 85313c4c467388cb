"""The names the harness writes on a Redis it does not own: one per-run namespace, removed at the end.

On someone else's server (``--p1-redis=redis://...``) every policy name the
harness makes (the criteria's probes, the stale-read search's policies, the
settle and quiesce markers) starts with one prefix, ``p1-<token>-``, whose
token no key on the server contains when the run claims it
(:meth:`Namespace.claim`). A store keeps a policy under ``<its key prefix><name>``,
so every key the run makes contains the token; :meth:`Namespace.remove` deletes
exactly those (``SCAN`` + ``UNLINK``, never a ``FLUSH``), and what the stores
publish names only such policies. On a Redis Cluster both run on every master,
since ``SCAN`` sees only the keys of the node it runs on.

The prefix in force reaches the code that makes names through a context
variable (:func:`current_prefix`, set with :func:`using_prefix`): a criterion
runs in a worker thread started with a copy of the caller's context, and the
stale-read search forks from there.

A run cut short (Ctrl-C, a criterion abandoned at its deadline) may leave a
worker still writing: :meth:`Namespace.retire` first marks the namespace
retired, which the stale-read search checks before every step
(:func:`is_retired`), waits a bounded while for the workers, removes the keys,
and sweeps once more at exit if a worker is still alive.
"""

from __future__ import annotations

import atexit
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from pytest_quantum_p1 import _messages

if TYPE_CHECKING:
    from pytest_quantum_p1._redis.source import RedisSource

__all__ = [
    "RETIRE_GRACE_S",
    "WORKER_THREAD_PREFIX",
    "Namespace",
    "NamespaceUnavailable",
    "current_prefix",
    "is_retired",
    "using_prefix",
]

#: Attempts at a token no key contains before giving up (each is 32 random bits).
_CLAIM_ATTEMPTS: Final = 5
#: Keys asked for per ``SCAN`` round trip, and unlinked per ``UNLINK``.
_BATCH: Final = 1000

#: The name of every thread a criterion runs in starts with it (``drive.run_within``).
WORKER_THREAD_PREFIX: Final = "p1 "
#: Seconds :meth:`Namespace.retire` waits for workers still running before it removes keys.
RETIRE_GRACE_S: Final = 5.0

_PREFIX: ContextVar[str] = ContextVar("p1_name_prefix", default="")
#: Prefixes of retired namespaces: process-wide, as the threads that must see it are.
_RETIRED: set[str] = set()


def current_prefix() -> str:
    """The prefix every policy name the harness makes starts with now (``""``: none)."""
    return _PREFIX.get()


@contextmanager
def using_prefix(prefix: str) -> Iterator[None]:
    """Make ``prefix`` the one :func:`current_prefix` returns inside the block (and its copies)."""
    token = _PREFIX.set(prefix)
    try:
        yield
    finally:
        _PREFIX.reset(token)


def is_retired(prefix: str) -> bool:
    """Whether ``prefix`` lies in a namespace whose run is over: nothing may be written in it."""
    return bool(prefix) and any(prefix.startswith(retired) for retired in _RETIRED)


class NamespaceUnavailable(RuntimeError):
    """No token free on the server could be found (every one tried is in some key)."""


@dataclass(frozen=True)
class Namespace:
    """``p1-<token>-``: the prefix of every name the harness makes on one server, in one run."""

    token: str
    _children: Iterator[int] = field(
        default_factory=lambda: itertools.count(1), repr=False, compare=False
    )

    @property
    def prefix(self) -> str:
        """What names start with: ``p1-<token>-``."""
        return f"p1-{self.token}-"

    def child(self) -> str:
        """A new prefix inside this namespace, for one test: ``p1-<token>-t<n>-``."""
        return f"{self.prefix}t{next(self._children)}-"

    @classmethod
    def claim(cls, source: RedisSource, *, tokens: Callable[[], str] | None = None) -> Namespace:
        """A namespace whose token no key on ``source``'s database contains (checked with SCAN).

        ``tokens`` draws a candidate token (default: 8 random hex digits). A
        server that cannot be reached gets an unchecked one: nothing can be
        written there either, and each check that needs it says why.
        """
        import redis

        draw = tokens or (lambda: secrets.token_hex(4))
        try:
            addresses = source.master_addresses()
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.RedisClusterException):
            return cls(draw())
        for _ in range(_CLAIM_ATTEMPTS):
            namespace = cls(draw())
            try:
                taken = any(_holds(address, namespace.pattern) for address in addresses)
            except (redis.ConnectionError, redis.TimeoutError):
                return namespace
            if not taken:
                return namespace
        raise NamespaceUnavailable(
            _messages.REDIS_NAMESPACE_UNAVAILABLE.format(source=source, attempts=_CLAIM_ATTEMPTS)
        )

    @property
    def pattern(self) -> str:
        """The ``SCAN`` pattern of every key containing the token."""
        return f"*{self.token}*"

    def remove(self, source: RedisSource) -> int:
        """Delete every key on ``source``'s database (a cluster's: every master's) that
        contains the token; how many."""
        single_slot = source.is_cluster
        return sum(
            _unlink_matching(address, self.pattern, single_slot=single_slot)
            for address in source.master_addresses()
        )

    def retire(self, source: RedisSource, grace_s: float = RETIRE_GRACE_S) -> int:
        """End the namespace: stop its writers, remove its keys; how many were removed.

        Marks it retired (the stale-read search stops at its next step), waits
        up to ``grace_s`` for the criteria's worker threads still running, then
        removes every key holding the token. A worker still alive after that
        gets one more sweep when the process exits.
        """
        _RETIRED.add(self.prefix)
        deadline = time.monotonic() + grace_s
        for worker in _workers():
            worker.join(max(0.0, deadline - time.monotonic()))
        import redis

        try:
            removed = self.remove(source)
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.RedisClusterException):
            # Unreachable now: nothing of this run can be removed, or written, here.
            removed = 0
        if _workers():
            atexit.register(self._remove_quietly, source)
        return removed

    def _remove_quietly(self, source: RedisSource) -> None:
        with suppress(Exception):  # at exit nobody is left to tell
            self.remove(source)


def _holds(address: str, pattern: str) -> bool:
    import redis

    with redis.Redis.from_url(address) as client:
        return next(iter(client.scan_iter(match=pattern, count=_BATCH)), None) is not None


def _unlink_matching(address: str, pattern: str, *, single_slot: bool) -> int:
    """``UNLINK`` every key matching ``pattern`` on one server; how many.

    ``single_slot``: a cluster node, where one ``UNLINK`` may name keys of one
    hash slot only: each key is unlinked alone, pipelined.
    """
    import redis

    removed = 0
    with redis.Redis.from_url(address) as client:
        batch: list[bytes] = []

        def flush() -> int:
            if not single_slot:
                return int(client.unlink(*batch))
            with client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.unlink(key)
                return sum(int(n) for n in pipe.execute())

        for key in client.scan_iter(match=pattern, count=_BATCH):
            batch.append(key)
            if len(batch) >= _BATCH:
                removed += flush()
                batch = []
        if batch:
            removed += flush()
    return removed


def _workers() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(WORKER_THREAD_PREFIX) and thread is not threading.current_thread()
    ]
