"""The harness's units: durations, and the one percentile every figure uses."""

from __future__ import annotations

import pytest

from pytest_quantum_p1._units import format_duration, percentile


def test_percentile_is_nearest_rank_so_every_figure_was_observed() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 75) == 3.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([5.0, 9.0], 0) == 5.0
    assert percentile([5.0, 9.0], 100) == 9.0
    # 1000 samples: p99 is the 990th smallest, p99.9 the 999th.
    samples = [float(i) for i in range(1, 1001)]
    assert percentile(samples, 99) == 990.0
    assert percentile(samples, 99.9) == 999.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 101)


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(850, "850 ns"), (12_300, "12.3 us"), (1_520_000, "1.52 ms"), (2_000_000_000, "2 s")],
)
def test_durations_read_as_people_write_them(nanoseconds: float, text: str) -> None:
    assert format_duration(nanoseconds) == text
