"""Hostile targets: the reference with one call that never returns, or that raises what it must not.

Each builder returns ``reference_impl.p1_target:TARGET`` with one part swapped
(as :mod:`tests.plugin.broken_targets` does), so every criterion that does not
make that call still passes. "Never returns" comes in the shapes a backend
really hangs in: a sync call blocked on a lock (:func:`_block`), a coroutine
awaiting something that never happens (:func:`_await_forever`), and a
coroutine that blocks its event loop with a sync call.

The stuck calls stay stuck for good: the harness abandons them (its worker
threads are daemons), which is what these targets prove.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_quantum_p1 import Bus, Clock, P1Target
from reference_impl.p1_target import TARGET
from reference_impl.services.policy_store_v2 import PolicyStoreV2
from tests.plugin.broken_targets import _with_action, _with_store, _with_v2

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from redis.asyncio import Redis

__all__ = [
    "HostileExit",
    "action_calling_pytest_fail",
    "action_raising_a_base_exception",
    "action_raising_system_exit",
    "async_action_awaiting_forever",
    "async_action_blocking_its_loop",
    "block_for_a_test",
    "health_check_awaiting_forever",
    "raise_from_the_target",
    "relay_probe_awaiting_forever",
    "store_whose_close_never_returns",
    "store_whose_get_policy_blocks_its_loop_in_one_instance",
    "store_whose_get_policy_never_returns_in_one_instance",
    "store_whose_initialize_never_returns_in_one_instance",
    "sync_action_that_never_returns",
    "target_module_calling_sys_exit",
]

#: The lock every sync hang waits on; nobody ever releases it.
_NEVER = threading.Event()


def _block() -> NoReturn:
    """A sync call that never returns (a lock nobody releases, a socket without a timeout)."""
    while True:
        _NEVER.wait()


async def _await_forever() -> NoReturn:
    """A coroutine that never completes (a reply that never comes)."""
    while True:
        await asyncio.Event().wait()


# --- actions ----------------------------------------------------------------------


def _mode_change_blocking(bus: Bus) -> Awaitable[Mapping[str, Any]]:
    _block()  # a plain (sync) function that blocks before it returns its awaitable


def sync_action_that_never_returns(root: Path) -> P1Target:
    """P1-1.hfos-mode: the action is a sync call that never returns.

    Every criterion that performs the actions makes this call too
    (``P1-1.logged``, ``P1-3.bridge-only-at-runtime``).
    """
    return _with_action("ai.hfos.mode_changed", _mode_change_blocking)


async def _safety_change_awaiting_forever(bus: Bus) -> Mapping[str, Any]:
    await _await_forever()


def async_action_awaiting_forever(root: Path) -> P1Target:
    """P1-1.safety-level: the action awaits a reply that never comes (its loop stays free)."""
    return _with_action("safety.governor.level_changed", _safety_change_awaiting_forever)


async def _shadow_test_blocking_its_loop(bus: Bus) -> Mapping[str, Any]:
    _block()  # a sync call inside a coroutine: the whole event loop stops


def async_action_blocking_its_loop(root: Path) -> P1Target:
    """P1-1.shadow-test: the action blocks its event loop with a sync call that never returns."""
    return _with_action("model.shadow_test.completed", _shadow_test_blocking_its_loop)


class HostileExit(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt (like CancelledError)."""


async def _mode_change_raising_a_base_exception(bus: Bus) -> Mapping[str, Any]:
    raise HostileExit("the action gave up")


def action_raising_a_base_exception(root: Path) -> P1Target:
    """P1-1.hfos-mode errors: the action raises a BaseException subclass (not a verdict)."""
    return _with_action("ai.hfos.mode_changed", _mode_change_raising_a_base_exception)


async def _node_status_calling_sys_exit(bus: Bus) -> Mapping[str, Any]:
    sys.exit("node status: shutting down")


def action_raising_system_exit(root: Path) -> P1Target:
    """P1-1.node-status errors: the action calls ``sys.exit()``."""
    return _with_action("federation.node.status_changed", _node_status_calling_sys_exit)


async def _level_change_calling_pytest_fail(bus: Bus) -> Mapping[str, Any]:
    pytest.fail("governor: not in a test")  # a helper shared with the team's own tests


def action_calling_pytest_fail(root: Path) -> P1Target:
    """P1-1.safety-level errors: the action calls ``pytest.fail`` (no verdict of the harness's)."""
    return _with_action("safety.governor.level_changed", _level_change_calling_pytest_fail)


# --- stores -----------------------------------------------------------------------


def _label(redis: object) -> str:
    # The harness hands each store a client labelled "instance N": the test's
    # only way to pick one instance of a cluster (a real backend never looks).
    return str(getattr(redis, "label", ""))


class _StuckStore(PolicyStoreV2):
    """The reference store whose ``stuck`` method never returns on instance ``instance``.

    ``instance=None``: on every instance. ``blocking``: a sync call that stops the
    event loop instead of a coroutine that awaits forever.
    """

    def __init__(
        self, redis: Redis, *, clock: Clock, stuck: str, instance: str | None, blocking: bool
    ) -> None:
        super().__init__(redis, clock=clock)
        self._stuck = stuck if instance is None or _label(redis) == instance else None
        self._blocking = blocking

    async def _hang(self, method: str) -> None:
        if method == self._stuck:
            if self._blocking:
                _block()
            await _await_forever()

    async def initialize(self) -> None:
        await self._hang("initialize")
        await super().initialize()

    async def get_policy(self, name: str) -> dict[str, Any]:
        await self._hang("get_policy")
        return await super().get_policy(name)

    async def close(self) -> None:
        await super().close()
        await self._hang("close")


def _stuck_store(stuck: str, *, instance: str | None, blocking: bool = False) -> P1Target:
    return _with_store(
        lambda redis, clock: _StuckStore(
            redis, clock=clock, stuck=stuck, instance=instance, blocking=blocking
        )
    )


def store_whose_initialize_never_returns_in_one_instance(root: Path) -> P1Target:
    """P1-2 cluster criteria: instance 1's ``initialize()`` awaits forever.

    The single-store criteria (``cached-read``, ``cold-vs-warm``) run one
    instance, instance 0, and pass.
    """
    return _stuck_store("initialize", instance="instance 1")


def store_whose_get_policy_never_returns_in_one_instance(root: Path) -> P1Target:
    """P1-2 cluster criteria: instance 1's ``get_policy()`` awaits forever."""
    return _stuck_store("get_policy", instance="instance 1")


def store_whose_get_policy_blocks_its_loop_in_one_instance(root: Path) -> P1Target:
    """P1-2 cluster criteria: instance 1's ``get_policy()`` blocks the cluster's event loop."""
    return _stuck_store("get_policy", instance="instance 1", blocking=True)


def store_whose_close_never_returns(root: Path) -> P1Target:
    """Every P1-2 criterion: ``close()`` awaits forever, on every instance."""
    return _stuck_store("close", instance=None)


# --- health check, relay probe ----------------------------------------------------


async def _health_awaiting_forever(bus: Bus, redis: Redis) -> Mapping[str, Any]:
    await _await_forever()


def health_check_awaiting_forever(root: Path) -> P1Target:
    """deploy.health: the health check never answers."""
    return dataclasses.replace(TARGET, health=_health_awaiting_forever)


async def _relay_awaiting_forever(
    bus: Bus, payload: Mapping[str, Any]
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    await _await_forever()


def relay_probe_awaiting_forever(root: Path) -> P1Target:
    """P1-3.bridge-relays: the relay probe never returns (also run by bridge-only-at-runtime)."""
    return _with_v2(relay_probe=_relay_awaiting_forever)


# --- for the watchdog's own tests ------------------------------------------------


def block_for_a_test() -> NoReturn:
    """A target function that never returns, called directly by a test."""
    _block()


def raise_from_the_target() -> NoReturn:
    """A target function that raises, called directly by a test."""
    raise RuntimeError("raised by the target")


# --- loading ----------------------------------------------------------------------


def target_module_calling_sys_exit(root: Path) -> str:
    """A target module that calls ``sys.exit()`` when imported; returns its spec."""
    (root / "exiting_target.py").write_text("import sys\n\nsys.exit('backend refuses to load')\n")
    return "exiting_target:TARGET"
