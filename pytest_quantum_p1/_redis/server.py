"""A private redis-server for tests (URL redaction lives in :mod:`.url`, re-exported here).

``--p1-redis=server`` and the project's own real-Redis tests spawn a throwaway
``redis-server`` on a free loopback port, with no persistence and a temporary
working directory, so nothing shared is ever touched. Standard library only
(pytest is imported by :func:`require_redis_server` alone) and the messages module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._redis.url import RedisURL, redact_text, redact_url

__all__ = [
    "RedisServer",
    "RedisServerUnavailable",
    "RedisURL",
    "find_binary",
    "free_port",
    "redact_text",
    "redact_url",
    "spawn_redis_server",
]

HOST: Final = "127.0.0.1"
_BINARY: Final = "redis-server"
_LOG_TAIL_LINES: Final = 20
_STOP_TIMEOUT: Final = 5.0
# A bind race (another process took the free port first) is worth a retry.
_START_ATTEMPTS: Final = 3


class RedisServerUnavailable(RuntimeError):
    """No private redis-server could be started."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}\n{_messages.REDIS_SERVER_INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server process on ``127.0.0.1:port``, owned by the caller.

    :meth:`start` spawns it and returns once it answers ``PING``; :meth:`stop`
    terminates it and removes its working directory; :meth:`kill` ends it with
    SIGKILL, as a crash would. It can be started again on the same port, which
    fault tests use to take Redis away and bring it back.
    """

    host: Final = HOST

    def __init__(
        self,
        binary: str,
        port: int,
        *,
        startup_timeout: float = 10.0,
        args: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.port = port
        self.startup_timeout = startup_timeout
        #: More ``redis-server`` arguments, after the defaults (a cluster node's settings).
        self.args = tuple(args)
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The process id while it runs, else ``None``."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Spawn the server and wait until it answers ``PING``; a no-op if running."""
        if self.running:
            return
        self._cleanup()
        self._dir = Path(tempfile.mkdtemp(prefix="p1-redis-"))
        log_path = self._dir / "redis.log"
        command = [
            self.binary,
            *("--port", str(self.port), "--bind", self.host),
            *("--save", "", "--appendonly", "no", "--dir", str(self._dir)),
            *("--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"),
            *self.args,
        ]
        with log_path.open("wb") as log:
            try:
                self._process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            except OSError as exc:
                self._cleanup()
                raise RedisServerUnavailable(
                    _messages.REDIS_SERVER_CANNOT_RUN.format(binary=self.binary, error=exc)
                ) from exc
        deadline = time.monotonic() + self.startup_timeout
        while not _answers_ping(self.port):
            exited = self._process.poll() is not None
            if exited or time.monotonic() > deadline:
                tail = self._log_tail()
                what = (
                    _messages.REDIS_SERVER_EXITED
                    if exited
                    else _messages.REDIS_SERVER_NO_PING.format(timeout=self.startup_timeout)
                )
                self.kill()
                raise RedisServerUnavailable(
                    _messages.REDIS_SERVER_DID_NOT_START.format(
                        port=self.port, what=what, tail=tail
                    )
                )
            time.sleep(0.01)  # the server is starting; there is nothing to wait on

    def stop(self) -> None:
        """Terminate the server and remove its directory. Idempotent."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """End the server with SIGKILL, as a crash would, and remove its directory."""
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _log_tail(self) -> str:
        if self._dir is None:
            return "(no log)"
        try:
            lines = (self._dir / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"


def find_binary(binary: str | None = None) -> str:
    """The path of ``binary`` (default ``redis-server`` on ``PATH``); :class:`RedisServerUnavailable`
    saying where it was looked for when there is none."""
    path = shutil.which(binary or _BINARY)
    if path is None:
        where = (
            _messages.REDIS_SERVER_NOT_EXECUTABLE.format(binary=binary)
            if binary
            else _messages.REDIS_SERVER_NOT_ON_PATH.format(binary=_BINARY)
        )
        raise RedisServerUnavailable(_messages.REDIS_SERVER_NOT_FOUND.format(where=where))
    return path


def spawn_redis_server(binary: str | None = None, *, startup_timeout: float = 10.0) -> RedisServer:
    """Start a private redis-server on a free loopback port and return it, running.

    ``binary`` defaults to ``redis-server`` on ``PATH``. Raises
    :class:`RedisServerUnavailable` (with the server's log tail when it started
    but failed) if no server can be started. The caller stops it.
    """
    path = find_binary(binary)
    error: RedisServerUnavailable | None = None
    for _ in range(_START_ATTEMPTS):
        server = RedisServer(path, free_port(), startup_timeout=startup_timeout)
        try:
            server.start()
        except RedisServerUnavailable as exc:
            error = exc
            if "in use" not in str(exc):
                break
        else:
            return server
    assert error is not None
    raise error


def require_redis_server(binary: str | None = None, *, why: str = "{error}") -> RedisServer:
    """A private server for a test, fixture or benchmark; the one rule for when there is none.

    A missing server is an environment problem locally (the test skips) but a
    broken CI (under ``CI=true`` it fails). ``why`` words the problem; it
    gets ``{error}``.
    """
    import pytest

    try:
        return spawn_redis_server(binary)
    except RedisServerUnavailable as exc:
        problem = why.format(error=exc)
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs a real Redis: {problem}", pytrace=False)
    pytest.skip(problem)
