"""Semantic check: nearest exemplar on sentence embeddings, to catch paraphrases.

Patterns miss "nobody would notice if you were gone" when they look for "kill yourself". Here
each text is compared (cosine) with the check's exemplars of the category; it violates when
the best similarity reaches the threshold and beats the best similarity to the contrast
look-alikes (in-game fiction, neighbouring categories) by the margin. That contrast is what
lets "the orc swings his axe" pass a violence check whose threshold is low enough to catch
real paraphrases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.guardrails.embeddings import Embedder, TextBatch
from reconciler.guardrails.verdicts import CheckResult
from reconciler.spec.guardrail_parameters import SemanticParameters
from reconciler.spec.model import GuardrailCheck

if TYPE_CHECKING:
    from reconciler.guardrails.embeddings import FloatMatrix

EVIDENCE_CHARS = 80


class ExemplarSet:
    """Exemplar sentences and their embeddings, computed once per embedder."""

    def __init__(self, sentences: list[str]) -> None:
        self.sentences = sentences
        self._cached: tuple[Embedder, FloatMatrix] | None = None

    def embeddings(self, embedder: Embedder) -> FloatMatrix:
        if self._cached is None or self._cached[0] is not embedder:
            self._cached = (embedder, embedder.encode(self.sentences))
        return self._cached[1]


def best_matches(
    texts: FloatMatrix, exemplars: ExemplarSet, embedder: Embedder
) -> tuple[list[float], list[int]]:
    """For each text row: the highest cosine similarity to an exemplar, and which exemplar."""
    if not exemplars.sentences or texts.shape[0] == 0:
        return [0.0] * texts.shape[0], [-1] * texts.shape[0]
    similarities = texts @ exemplars.embeddings(embedder).T
    return similarities.max(axis=1).tolist(), similarities.argmax(axis=1).tolist()


class SemanticCheck:
    def __init__(self, spec: GuardrailCheck, parameters: SemanticParameters) -> None:
        self.spec = spec
        self.threshold = parameters.threshold
        self.margin = parameters.margin
        self._harmful = ExemplarSet(list(parameters.exemplars))
        self._contrast = ExemplarSet(list(parameters.contrast_exemplars))

    def scan(self, batch: TextBatch) -> list[CheckResult]:
        if not batch.texts:
            return []
        vectors = batch.embeddings()
        scores, nearest = best_matches(vectors, self._harmful, batch.embedder)
        contrast_scores, _ = best_matches(vectors, self._contrast, batch.embedder)
        # Per text, the most telling of its units (the whole text and its clauses): a
        # violating unit beats a non-violating one, then the higher score wins.
        best: list[tuple[bool, float, int]] = [(False, 0.0, -1)] * len(batch.texts)
        for row, score, index, contrast in zip(
            batch.unit_rows, scores, nearest, contrast_scores, strict=True
        ):
            violated = score >= self.threshold and score - contrast >= self.margin
            best[row] = max(best[row], (violated, score, index))
        return [
            CheckResult(
                violated=violated,
                score=score,
                evidence=f"like: {self._harmful.sentences[index][:EVIDENCE_CHARS]}",
            )
            for violated, score, index in best
        ]
