"""Weighted, normalised ranking of candidates, with the breakdown of every score. Pure.

Each criterion is a value in [0, 1], higher is better:

    quality             a benchmark figure the source reports (model-index results)
    resourceEfficiency  estimated serving memory for weights one serves; for a paid model, the
                        price per token - lower is better, scaled on a log axis over the pool
    size                parameter count - smaller loads and downloads faster, log-scaled over
                        the pool
    communityHealth     downloads and likes, log-scaled over the pool
    recency             halves every 180 days since the pinned revision was made
    license             1 for a permissive license, 0.5 for another named one, 0 if unknown

A criterion a candidate has no data for scores a neutral 0.5 and the breakdown says "unknown":
missing data neither wins nor loses a ranking. "Over the pool" means relative to the other
candidates of the same use case and its current base, which is ranked with them - a candidate
is better only when it outranks the base in the same ranking.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from reconciler.discovery.candidate import Candidate
from reconciler.discovery.memory import estimated_memory_gib

NEUTRAL = 0.5
RECENCY_HALF_LIFE_DAYS = 180.0
PERMISSIVE = frozenset(
    {
        "apache-2.0",
        "mit",
        "bsd-2-clause",
        "bsd-3-clause",
        "bsl-1.0",
        "isc",
        "unlicense",
        "cc0-1.0",
        "cc-by-4.0",
        "openrail",
        "openrail++",
    }
)
CRITERIA = ("quality", "resourceEfficiency", "size", "communityHealth", "recency", "license")


@dataclass(frozen=True)
class Score:
    total: float
    breakdown: Mapping[str, float]
    unknown: tuple[str, ...]  # criteria scored neutral for lack of data


def _cost_per_million_tokens(candidate: Candidate) -> float | None:
    pricing = candidate.pricing
    if pricing is None:
        return None
    return (pricing.prompt_per_token + pricing.completion_per_token) * 1e6 / 2


def _log_scaled(values: Sequence[float | None], *, lower_is_better: bool) -> list[float | None]:
    known = [math.log1p(v) for v in values if v is not None and v >= 0]
    if not known:
        return [None for _ in values]
    low, high = min(known), max(known)
    scaled: list[float | None] = []
    for value in values:
        if value is None or value < 0:
            scaled.append(None)
            continue
        position = 1.0 if high == low else (math.log1p(value) - low) / (high - low)
        scaled.append(1.0 - position if lower_is_better and high != low else position)
    return scaled


def _resource_scores(pool: Sequence[Candidate]) -> list[float | None]:
    # Memory and price are different measures: each is scaled among the candidates having it.
    memory = [estimated_memory_gib(c.parameters, c.bytes_per_parameter) for c in pool]
    cost = [
        _cost_per_million_tokens(c) if m is None else None
        for c, m in zip(pool, memory, strict=True)
    ]
    by_memory = _log_scaled(memory, lower_is_better=True)
    by_cost = _log_scaled(cost, lower_is_better=True)
    return [m if m is not None else c for m, c in zip(by_memory, by_cost, strict=True)]


def _community(candidate: Candidate) -> float | None:
    if candidate.downloads is None and candidate.likes is None:
        return None
    # A like is a deliberate act; a download may be a CI job.
    return float(candidate.downloads or 0) + 100.0 * float(candidate.likes or 0)


def _recency(candidate: Candidate, now: datetime) -> float | None:
    if candidate.released_at is None:
        return None
    days = max(0.0, (now - candidate.released_at).total_seconds() / 86400)
    return float(0.5 ** (days / RECENCY_HALF_LIFE_DAYS))


def _license(candidate: Candidate) -> float | None:
    if not candidate.license:
        return None
    return 1.0 if candidate.license.lower() in PERMISSIVE else 0.5


def rank(pool: Sequence[Candidate], weights: Mapping[str, float], *, now: datetime) -> list[Score]:
    """A score for each candidate of `pool`, in the same order."""
    columns: dict[str, list[float | None]] = {
        "quality": [c.quality for c in pool],
        "resourceEfficiency": _resource_scores(pool),
        "size": _log_scaled([c.parameters for c in pool], lower_is_better=True),
        "communityHealth": _log_scaled([_community(c) for c in pool], lower_is_better=False),
        "recency": [_recency(c, now) for c in pool],
        "license": [_license(c) for c in pool],
    }
    total_weight = sum(weights.get(name, 0.0) for name in CRITERIA)
    scores = []
    for index in range(len(pool)):
        breakdown = {}
        unknown = []
        for name in CRITERIA:
            value = columns[name][index]
            if value is None:
                unknown.append(name)
                value = NEUTRAL
            breakdown[name] = round(min(1.0, max(0.0, value)), 4)
        total = sum(weights.get(n, 0.0) * breakdown[n] for n in CRITERIA) / total_weight
        scores.append(Score(round(total, 4), breakdown, tuple(unknown)))
    return scores
