"""The portal: an event loop in a background thread, reachable from sync code and other loops.

Fixtures are synchronous, while stores and ``redis.asyncio`` clients belong to
the one loop they were first used on. A :class:`Portal` (in the manner of
anyio's ``BlockingPortal``) owns such a loop in a daemon thread: sync code calls
into it with :meth:`Portal.call`, async code running on *another* loop (a
pytest-asyncio or anyio test) with :meth:`Portal.acall`.

The module also holds the small loop-affinity helpers the harness objects use to
offer both ``x()`` and ``await x_async()`` over one coroutine: :func:`run_soon`
for non-blocking operations, :func:`block_on` and :func:`await_on` for waiting
ones, :func:`owning_loop` to bind an object to its loop, and :class:`Signal` for
event-driven waits (nothing here sleeps to wait).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar, TypeVarTuple

from pytest_quantum_p1 import _messages

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "LOOP_GRACE",
    "Portal",
    "Signal",
    "await_on",
    "block_on",
    "on_loop_thread",
    "owning_loop",
    "run_soon",
]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: Seconds :meth:`Portal.call` waits when no timeout is given.
DEFAULT_CALL_TIMEOUT = 30.0

#: Extra seconds a blocking caller allows beyond a coroutine's own timeout, so
#: the coroutine's clearer error wins over a bare "the loop did not answer".
LOOP_GRACE = 10.0


def on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the calling code runs on ``loop`` (in its thread, while it runs)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def owning_loop(loop: asyncio.AbstractEventLoop | None, what: str) -> asyncio.AbstractEventLoop:
    """``loop``, or the running loop: the one an object named ``what`` will belong to."""
    if loop is not None:
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(_messages.LOOP_NOT_OWNED.format(what=what)) from None


def run_soon(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[*Ts], T],
    *args: *Ts,
    timeout: float = LOOP_GRACE,
) -> T:
    """Run the non-blocking ``fn(*args)`` on ``loop``'s thread and return its result.

    Harness state is touched only from its loop's thread; this lets a sync
    caller on any thread mutate it safely. Called on the loop itself, or while
    the loop is not running (nothing can race then), ``fn`` runs directly.
    """
    if on_loop_thread(loop) or not loop.is_running():
        return fn(*args)
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def invoke() -> None:
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(fn(*args))
        except BaseException as exc:  # the caller re-raises it in its own thread
            done.set_exception(exc)

    loop.call_soon_threadsafe(invoke)
    try:
        return done.result(timeout)
    except TimeoutError:
        done.cancel()
        raise TimeoutError(
            _messages.LOOP_DID_NOT_RUN.format(fn=_name(fn), timeout=timeout)
        ) from None


def block_on(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[*Ts], Coroutine[Any, Any, T]],
    *args: *Ts,
    timeout: float | None = DEFAULT_CALL_TIMEOUT,
) -> T:
    """Run ``await fn(*args)`` on ``loop`` and block the calling thread for its result.

    ``timeout=None`` waits as long as the coroutine takes (use it when the
    coroutine enforces its own deadline). On timeout the coroutine is cancelled
    and :class:`TimeoutError` is raised.
    """
    if on_loop_thread(loop):
        raise RuntimeError(_messages.LOOP_WOULD_BLOCK.format(fn=_name(fn)))
    if loop.is_closed() or not loop.is_running():
        raise RuntimeError(_messages.LOOP_NOT_RUNNING.format(fn=_name(fn)))
    future = asyncio.run_coroutine_threadsafe(fn(*args), loop)
    try:
        return future.result(timeout)
    except TimeoutError:
        if not future.done():
            future.cancel()
            raise TimeoutError(
                _messages.LOOP_CALL_TIMED_OUT.format(fn=_name(fn), timeout=timeout)
            ) from None
        raise  # the coroutine itself raised TimeoutError: keep its message


async def await_on(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[*Ts], Coroutine[Any, Any, T]],
    *args: *Ts,
) -> T:
    """``await fn(*args)`` on ``loop``, from a coroutine running on any loop.

    Cancelling the caller cancels the coroutine on ``loop`` too.
    """
    if on_loop_thread(loop):
        return await fn(*args)
    if loop.is_closed() or not loop.is_running():
        raise RuntimeError(_messages.LOOP_NOT_RUNNING.format(fn=_name(fn)))
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fn(*args), loop))


def _name(fn: Callable[..., object]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class Signal:
    """Wakes every waiter when some state changed; waiters re-check their own condition.

    Level-triggered and loop-bound: :meth:`notify` and :meth:`wait_until` must
    run on the loop that owns the state. A waiter never misses a change, because
    it checks its condition before every wait and the event it waits on is
    replaced (not cleared) on each notification.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake all current waiters."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(
        self,
        check: Callable[[], T | None],
        timeout: float | None,
    ) -> T:
        """Return the first non-``None`` result of ``check()``, re-checked on each change.

        Raises :class:`TimeoutError` after ``timeout`` seconds (``None``: never).
        """
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if result is not None:
                    return result
                await self._event.wait()


class Portal:
    """An asyncio event loop running in a daemon thread, callable from anywhere.

    ``call(fn, *args)`` runs ``await fn(*args)`` on the portal's loop and blocks
    the calling (sync) thread for the result; ``await acall(fn, *args)`` does the
    same from a coroutine running on another loop without blocking it;
    ``spawn(fn, *args)`` starts it and returns a :class:`concurrent.futures.Future`.
    Everything bound to one loop (``redis.asyncio`` clients, stores, their
    listener tasks) is created and used through the same portal.

    Use it as a context manager, or call :meth:`close`, which cancels the tasks
    still running on the loop, waits for them and joins the thread.
    """

    def __init__(
        self, *, name: str = "p1-portal", default_timeout: float = DEFAULT_CALL_TIMEOUT
    ) -> None:
        self.default_timeout = default_timeout
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._close_lock = threading.Lock()
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), name=name, daemon=True)
        self._thread.start()
        started.wait()

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(started.set)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's event loop (use it only through the portal's methods)."""
        return self._loop

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def call(
        self,
        fn: Callable[[*Ts], Coroutine[Any, Any, T]],
        *args: *Ts,
        timeout: float | None = None,
    ) -> T:
        """Run ``await fn(*args)`` on the portal and return its result (sync callers).

        ``timeout`` defaults to :attr:`default_timeout`; on expiry the coroutine
        is cancelled and :class:`TimeoutError` raised. Calling this from the
        portal's own thread is an error (it would deadlock).
        """
        self._check_open()
        return block_on(
            self._loop, fn, *args, timeout=self.default_timeout if timeout is None else timeout
        )

    async def acall(self, fn: Callable[[*Ts], Coroutine[Any, Any, T]], *args: *Ts) -> T:
        """``await fn(*args)`` on the portal from a coroutine on any loop."""
        self._check_open()
        return await await_on(self._loop, fn, *args)

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run an already created coroutine on the portal and return its result."""

        async def wrapper() -> T:
            return await coro

        try:
            return self.call(wrapper, timeout=timeout)
        except RuntimeError:
            coro.close()  # never scheduled: avoid "coroutine was never awaited"
            raise

    def spawn(
        self, fn: Callable[[*Ts], Coroutine[Any, Any, T]], *args: *Ts
    ) -> concurrent.futures.Future[T]:
        """Start ``fn(*args)`` on the portal; the returned future holds its outcome."""
        self._check_open()
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(_messages.PORTAL_CLOSED)

    def close(self, timeout: float | None = None) -> None:
        """Cancel the tasks left on the loop, stop it and join its thread. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            if on_loop_thread(self._loop):
                raise RuntimeError(_messages.PORTAL_CLOSED_FROM_ITS_THREAD)
            self._closed = True
        limit = self.default_timeout if timeout is None else timeout
        try:
            block_on(self._loop, self._cancel_leftovers, timeout=limit)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(limit)
            if not self._thread.is_alive():
                self._loop.close()

    async def _cancel_leftovers(self) -> None:
        me = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not me]
        for task in leftovers:
            task.cancel()
        # return_exceptions: a leftover that failed must not stop the others'
        # clean-up; its error belonged to whoever should have awaited it.
        await asyncio.gather(*leftovers, return_exceptions=True)
        await self._loop.shutdown_asyncgens()
        with contextlib.suppress(RuntimeError):  # already shut down
            await self._loop.shutdown_default_executor()

    def __enter__(self) -> Portal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<Portal {self._thread.name} {state}>"
