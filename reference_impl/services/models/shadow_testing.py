"""Shadow testing of a candidate model, with ``model.shadow_test.completed`` (P1-1).

Before promotion a candidate model runs in the shadow of the production model:
both predict on the same inputs and only production's answers are used. A
shadow test compares the two prediction series. Two predictions *agree* when
they differ by at most ``tolerance``; the candidate passes when the share of
agreeing predictions reaches ``min_agreement``. Every completed test is
published with its verdict and metrics, pass or fail, so promotion decisions
can be audited from the event stream.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from reference_impl.core.event_bus import EventBus, get_event_bus
from reference_impl.errors import InvalidShadowTestError

__all__ = [
    "DEFAULT_MIN_AGREEMENT",
    "DEFAULT_TOLERANCE",
    "SHADOW_TEST_COMPLETED",
    "InvalidShadowTestError",
    "ShadowTestResult",
    "ShadowTester",
    "Verdict",
]

logger = logging.getLogger(__name__)

#: The event published after every shadow test.
SHADOW_TEST_COMPLETED: Final = "model.shadow_test.completed"
DEFAULT_MIN_AGREEMENT: Final = 0.95
DEFAULT_TOLERANCE: Final = 1e-6

Verdict = Literal["pass", "fail"]


@dataclass(frozen=True, slots=True)
class ShadowTestResult:
    """The outcome of one shadow test."""

    model_id: str
    verdict: Verdict
    samples: int
    #: Share of inputs on which the two models agreed, in ``[0, 1]``.
    agreement_rate: float
    mean_abs_diff: float
    max_abs_diff: float
    min_agreement: float
    tolerance: float
    #: When the test completed, ISO-8601 in UTC.
    timestamp: str

    @property
    def passed(self) -> bool:
        """Whether the candidate may be promoted."""
        return self.verdict == "pass"

    def metrics(self) -> dict[str, float]:
        """The figures the verdict rests on, as published."""
        return {
            "agreement_rate": self.agreement_rate,
            "mean_abs_diff": self.mean_abs_diff,
            "max_abs_diff": self.max_abs_diff,
            "min_agreement": self.min_agreement,
            "tolerance": self.tolerance,
        }


def _predictions(label: str, values: Iterable[float]) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidShadowTestError(
            f"{label} predictions must be a sequence of numbers, got {type(values).__name__}"
        )
    checked: list[float] = []
    for index, value in enumerate(values):
        # bool is an int subclass, but a True prediction is a bug upstream.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidShadowTestError(
                f"{label} prediction [{index}] is a {type(value).__name__}, not a number"
            )
        if not math.isfinite(value):
            raise InvalidShadowTestError(f"{label} prediction [{index}] is {value!r}")
        checked.append(float(value))
    if not checked:
        raise InvalidShadowTestError(f"{label} predictions are empty")
    return checked


def _fraction(name: str, value: float, *, upper: float | None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (upper is not None and value > upper)
    ):
        bounds = f"from 0 to {upper}" if upper is not None else "0 or more"
        raise InvalidShadowTestError(f"{name} must be a finite number {bounds}, got {value!r}")
    return float(value)


class ShadowTester:
    """Compares candidate and production predictions and publishes the result."""

    def __init__(self, bus: EventBus | None = None) -> None:
        self._bus = get_event_bus() if bus is None else bus

    async def run(
        self,
        model_id: str,
        candidate_predictions: Iterable[float],
        production_predictions: Iterable[float],
        *,
        min_agreement: float = DEFAULT_MIN_AGREEMENT,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> ShadowTestResult:
        """Compare the two series, publish ``model.shadow_test.completed``, return the result.

        The series must be equally long, non-empty, and hold finite numbers
        predicted on the same inputs in the same order; anything else raises
        :class:`InvalidShadowTestError` and publishes nothing.
        """
        if not isinstance(model_id, str) or not model_id.strip():
            raise InvalidShadowTestError(f"model_id must be a non-empty str, got {model_id!r}")
        min_agreement = _fraction("min_agreement", min_agreement, upper=1.0)
        tolerance = _fraction("tolerance", tolerance, upper=None)
        candidate = _predictions("candidate", candidate_predictions)
        production = _predictions("production", production_predictions)
        if len(candidate) != len(production):
            raise InvalidShadowTestError(
                f"candidate has {len(candidate)} predictions but production has "
                f"{len(production)}; both must cover the same inputs"
            )

        diffs = [abs(c - p) for c, p in zip(candidate, production, strict=True)]
        samples = len(diffs)
        agreement_rate = sum(d <= tolerance for d in diffs) / samples
        max_abs_diff = max(diffs)
        # Rounding can put the mean of equal differences one ulp above their
        # maximum (3 x 0.2); a published mean above the max would look like a bug.
        mean_abs_diff = min(math.fsum(diffs) / samples, max_abs_diff)
        result = ShadowTestResult(
            model_id=model_id,
            verdict="pass" if agreement_rate >= min_agreement else "fail",
            samples=samples,
            agreement_rate=agreement_rate,
            mean_abs_diff=mean_abs_diff,
            max_abs_diff=max_abs_diff,
            min_agreement=min_agreement,
            tolerance=tolerance,
            timestamp=datetime.now(UTC).isoformat(),
        )
        payload: dict[str, Any] = {
            "model_id": result.model_id,
            "verdict": result.verdict,
            "metrics": result.metrics(),
            "samples": result.samples,
            "timestamp": result.timestamp,
        }
        await self._bus.publish(SHADOW_TEST_COMPLETED, payload)
        logger.info(
            "Shadow test of %s: %s (agreement %.1f%% over %d samples)",
            model_id,
            result.verdict,
            agreement_rate * 100,
            samples,
        )
        return result
