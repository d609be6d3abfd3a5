"""One percentile for the whole project: the canary analysis and the evaluation gate compare
latencies against the same thresholds, so they must agree on what "p95" means.

Nearest-rank: the smallest value with at least that fraction of the values at or below it. It
is always an observed latency, never an interpolation between two requests, so a p95 over 20
requests names one real request.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile of ``values`` (any order); None when there are none."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"a percentile's fraction is between 0 and 1, not {fraction}")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
