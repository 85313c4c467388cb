"""How a criterion words its verdict: a failure message of lines, findings as bullets.

A failed criterion raises ``pytest.fail(message, pytrace=False)`` through
:func:`fail`; the message is what a user reads, in the order *what was found*,
*the evidence*, *how to fix it*, *where to read more* (``_messages``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import pytest

from pytest_quantum_p1 import _messages

__all__ = ["bullets", "fail"]


def fail(*lines: str) -> NoReturn:
    """Fail the criterion with ``lines`` (empty ones left out) as its message."""
    __tracebackhide__ = True
    # from None: raised inside an except block, the message must not trail a
    # "During handling of the above exception" chain.
    raise pytest.fail.Exception("\n".join(line for line in lines if line), pytrace=False) from None


def bullets(items: Sequence[object], limit: int = 12) -> list[str]:
    """``items`` as message lines ``  - item``, at most ``limit`` of them, then a count."""
    shown = [f"  - {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(_messages.ACCEPTANCE_BULLETS_MORE.format(count=len(items) - limit))
    return shown
