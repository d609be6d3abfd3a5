"""The one percentile the analysis and the evaluation gate share."""

from __future__ import annotations

import pytest

from reconciler.percentiles import percentile


def test_nearest_rank_is_an_observed_value_whatever_the_order() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.95) == 4.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.0) == 1.0
    assert percentile(iter([10.0, 30.0, 20.0]), 0.34) == 20.0


def test_no_values_have_no_percentile() -> None:
    assert percentile([], 0.5) is None


@pytest.mark.parametrize("fraction", [-0.1, 1.5, 95])
def test_a_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], fraction)
