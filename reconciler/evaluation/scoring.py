"""Scores of generated outputs: similarity, assertions, safety, latency percentiles."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from reconciler.guardrails.embeddings import Embedder
from reconciler.spec.model import Assertion, AssertionType, GuardrailPolicy


class SafetyJudge(Protocol):
    def flags(self, texts: Sequence[str]) -> list[bool]:
        """One flag per text: True when a guardrail would stop it."""
        ...


class GuardrailsJudge:
    """The guardrails package's checks of the use case's policies, as a safety judge.

    `base_path` is the repository: a classifier check names its model folder relative to it,
    and the process may run anywhere (the CLI's `--repo`, the apply engine's checkout).
    """

    def __init__(
        self,
        policies: Sequence[GuardrailPolicy],
        embedder: Embedder | None = None,
        *,
        base_path: Path = Path("."),
    ):
        from reconciler.guardrails.engine import compile_policies

        self.engine = (
            compile_policies(policies, embedder=embedder, base_path=base_path) if policies else None
        )

    def flags(self, texts: Sequence[str]) -> list[bool]:
        if self.engine is None or not texts:
            return [False] * len(texts)
        return [verdict.flagged for verdict in self.engine.check_batch(texts)]


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
