"""Shadow runs: a candidate model's predictions compared with production's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyee.asyncio import AsyncIOEventEmitter

from fleet.events import utc_now

__all__ = ["ShadowResult", "ShadowRunner"]


@dataclass(frozen=True)
class ShadowResult:
    """The outcome of one shadow run."""

    model_id: str
    verdict: str
    mean_abs_error: float
    samples: int


class ShadowRunner:
    """Compares a candidate with production and announces the result."""

    def __init__(self, bus: AsyncIOEventEmitter, tolerance: float = 0.05) -> None:
        self._bus = bus
        self._tolerance = tolerance

    async def complete(
        self, model_id: str, production: Sequence[float], candidate: Sequence[float]
    ) -> ShadowResult:
        """Score ``candidate`` against ``production`` and publish ``model.shadow_test.completed``."""
        if not production or len(production) != len(candidate):
            raise ValueError("shadow run needs two non-empty series of the same length")
        error = sum(abs(p - c) for p, c in zip(production, candidate, strict=True)) / len(
            production
        )
        result = ShadowResult(
            model_id=model_id,
            verdict="pass" if error <= self._tolerance else "fail",
            mean_abs_error=error,
            samples=len(production),
        )
        self._bus.emit(
            "model.shadow_test.completed",
            {
                "model_id": model_id,
                "verdict": result.verdict,
                "metrics": {"mean_abs_error": error},
                "samples": result.samples,
                "timestamp": utc_now(),
            },
        )
        return result
