"""Scores of generated outputs: similarity and assertions (safety: `evaluation.safety`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

from reconciler.guardrails.embeddings import Embedder
from reconciler.spec.model import Assertion, AssertionType


def pairwise_similarity(
    embedder: Embedder, left: Sequence[str], right: Sequence[str]
) -> list[float]:
    """Cosine similarity of left[i] and right[i], both embedded in one call."""
    if not left:
        return []
    vectors = embedder.encode([*left, *right])
    count = len(left)
    return [
        float(max(-1.0, min(1.0, float(vectors[i] @ vectors[count + i])))) for i in range(count)
    ]


def assertion_holds(assertion: Assertion, text: str) -> bool:
    value = assertion.value
    kind = assertion.type
    if kind is AssertionType.CONTAINS:
        return str(value) in text
    if kind is AssertionType.NOT_CONTAINS:
        return str(value) not in text
    if kind is AssertionType.REGEX:
        return re.search(str(value), text) is not None
    if kind is AssertionType.MAX_LENGTH:
        return isinstance(value, int) and len(text) <= value
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan
