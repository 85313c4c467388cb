"""Durations and percentiles: the two units every figure of the harness is stated in.

One definition each, so a "p99" means the same in every report: percentiles
are **nearest-rank** (the smallest observed value with at least ``q`` % of the
samples at or below it), so every reported percentile is a value that was
actually measured, never an interpolation between two calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_quantum_p1 import _messages

__all__ = ["format_duration", "parse_duration", "percentile"]

# Two-letter units first, so "ms" is not read as "m" + "s". (Plain string
# checks rather than regular expressions: compiling those costs start-up time.)
_UNIT_NS = (("ns", 1), ("us", 1_000), ("µs", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000))


def _is_decimal(text: str) -> bool:
    """Digits with at most one ``.`` and at least one digit: no sign, exponent or ``inf``."""
    digits = text.replace(".", "", 1)
    return text.isascii() and digits.isdigit()


def parse_duration(text: str) -> int:
    """``"1ms"``, ``"250us"``, ``"0.5s"``, ``"500ns"`` -> nanoseconds (> 0).

    A unit is required: a bare number is ambiguous between seconds and
    nanoseconds. Raises :class:`ValueError` naming the accepted forms.
    """
    if isinstance(text, str):
        stripped = text.strip()
        for unit, scale in _UNIT_NS:
            number = stripped.removesuffix(unit).rstrip()
            if number != stripped and _is_decimal(number):
                nanoseconds = round(float(number) * scale)
                if nanoseconds > 0:
                    return nanoseconds
                break
    raise ValueError(_messages.EXPECT_DURATION)


def format_duration(nanoseconds: float) -> str:
    """A duration for people: ``850 ns``, ``12.3 us``, ``1.52 ms``, ``2.00 s``."""
    if nanoseconds < 1_000:
        return f"{nanoseconds:.0f} ns"
    if nanoseconds < 1_000_000:
        return f"{nanoseconds / 1_000:.3g} us"
    if nanoseconds < 1_000_000_000:
        return f"{nanoseconds / 1_000_000:.3g} ms"
    return f"{nanoseconds / 1_000_000_000:.3g} s"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest-rank: an observed value.

    ``percentile(xs, 50)`` is the lower median; ``percentile(xs, 100)`` the
    maximum. Raises :class:`ValueError` for no values or ``q`` outside [0, 100].
    """
    if not values:
        raise ValueError(_messages.PERCENTILE_OF_NOTHING)
    if not 0 <= q <= 100:
        raise ValueError(_messages.PERCENTILE_OUT_OF_RANGE.format(q=q))
    ordered = sorted(values)
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point.
    rank = math.ceil(round(q * len(ordered) / 100, 9))
    return ordered[max(1, rank) - 1]
