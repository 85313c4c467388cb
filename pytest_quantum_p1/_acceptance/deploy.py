"""The deployment checklist: the target's health check reports healthy (``deploy.health``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._acceptance.verdict import bullets, fail

if TYPE_CHECKING:
    from pytest_quantum_p1._redis.source import RedisFactory
    from pytest_quantum_p1._target import P1Target

__all__ = ["criterion_health"]


def criterion_health(
    p1_target: P1Target, p1_redis_factory: RedisFactory, _p1_criterion: CriterionRecord
) -> None:
    """The target's health check reports healthy."""
    health = p1_target.health
    if health is None:
        pytest.skip(_messages.DEPLOY_NO_HEALTH_CHECK)

    async def probe() -> Mapping[str, Any]:
        client = p1_redis_factory()
        try:
            return await health(p1_target.bus(), client)
        finally:
            await client.aclose()

    started = time.perf_counter()
    report = asyncio.run(probe())
    status = report.get("status")
    _p1_criterion.figures = {"health_ms": round((time.perf_counter() - started) * 1000, 3)}
    _p1_criterion.summary = _messages.DEPLOY_HEALTH_SUMMARY.format(status=status)
    if status != "ok":
        fail(
            _messages.DEPLOY_HEALTH_NOT_OK.format(status=status),
            *bullets([f"{k}: {v!r}" for k, v in report.items() if k != "status"]),
            _messages.DEPLOY_HEALTH_NOT_OK_FIX,
            _messages.ACCEPTANCE_READ_MORE,
        )
