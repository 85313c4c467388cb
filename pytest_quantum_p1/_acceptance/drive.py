"""How a criterion drives the target: run its awaitables, name probe data, quiet v2 warnings."""

from __future__ import annotations

import asyncio
import secrets
import warnings
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["probe_name", "quiet_v2_warnings", "run"]

T = TypeVar("T")


def run(awaitable: Awaitable[T]) -> T:
    """Run a target's awaitable (typed ``Awaitable``, not only coroutines) to completion."""

    async def wait() -> T:
        return await awaitable

    return asyncio.run(wait())


def probe_name(prefix: str) -> str:
    """A policy or round name no other probe (nor the target's own data) uses."""
    return f"p1-{prefix}-{secrets.token_hex(4)}"


@contextmanager
def quiet_v2_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record, instead of raising or showing, the warnings of the block."""
    # Actions legitimately build the deprecated engine through the bridge; its
    # DeprecationWarning is P1-3's business, not a failure of a P1-1 check
    # (and would be an error under -W error).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
