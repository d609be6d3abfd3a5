"""Semantic check: nearest exemplar on sentence embeddings, to catch paraphrases.

Patterns miss "nobody would notice if you were gone" when they look for "kill yourself". Here
each text is compared (cosine) with the check's exemplars of the category; it violates when
the best similarity reaches the threshold and beats the best similarity to the contrast
look-alikes (in-game fiction, neighbouring categories) by the margin. That contrast is what
lets "the orc swings his axe" pass a violence check whose threshold is low enough to catch
real paraphrases.

With ``staticPassBelow`` set the check is a cascade, like the hazard check: each unit is first
compared with the exemplars on the static embeddings distilled from the same MiniLM (a table
lookup, microseconds). A text whose every unit stays below that similarity passes without
the encoder; the others are decided by the encoder exactly as without the stage. The value is
chosen on the tuning data (``tests/guardrails/choose_static_bands.py``) so that almost none
of the texts the encoder flags fall below it.
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
    """Exemplar sentences and their embeddings, computed once per embedder (the encoder
    and the static stage's each keep theirs)."""

    def __init__(self, sentences: list[str]) -> None:
        self.sentences = sentences
        self._cached: dict[int, tuple[Embedder, FloatMatrix]] = {}

    def embeddings(self, embedder: Embedder) -> FloatMatrix:
        cached = self._cached.get(id(embedder))
        # The embedder is kept beside its vectors so its id cannot be reused by another.
        if cached is None or cached[0] is not embedder:
            cached = (embedder, embedder.encode(self.sentences))
            self._cached[id(embedder)] = cached
        return cached[1]


def static_similarity(batch: TextBatch, exemplar_sets: list[ExemplarSet]) -> FloatMatrix:
    """Per text, the highest static-embedding similarity of any of its units (the whole
    text and its clauses) to any exemplar of these sets."""
    import numpy as np

    vectors = batch.static_unit_embeddings()
    by_unit = np.zeros(len(batch.units), dtype=np.float32)
    for exemplars in exemplar_sets:
        if exemplars.sentences:
            scores = best_matches(vectors, exemplars, batch.static_embedder)[0]
            by_unit = np.maximum(by_unit, np.asarray(scores, dtype=np.float32))
    by_text = np.zeros(len(batch.texts), dtype=np.float32)
    np.maximum.at(by_text, np.asarray(batch.unit_rows), by_unit)
    return by_text


def rows_reaching_encoder(
    batch: TextBatch, exemplar_sets: list[ExemplarSet], pass_below: float | None
) -> list[int]:
    """The texts the static stage cannot pass: their static similarity to some exemplar
    reaches ``pass_below`` (every text when there is no static stage)."""
    if pass_below is None:
        return list(range(len(batch.texts)))
    import numpy as np

    return np.flatnonzero(static_similarity(batch, exemplar_sets) >= pass_below).tolist()


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
        self.static_pass_below = parameters.static_pass_below
        self._harmful = ExemplarSet(list(parameters.exemplars))
        self._contrast = ExemplarSet(list(parameters.contrast_exemplars))

    def scan(self, batch: TextBatch) -> list[CheckResult]:
        if not batch.texts:
            return []
        best: list[tuple[bool, float, int]] = [(False, 0.0, -1)] * len(batch.texts)
        rows = rows_reaching_encoder(batch, [self._harmful], self.static_pass_below)
        if rows:
            units, vectors = batch.encoder_embeddings(rows)
            scores, nearest = best_matches(vectors, self._harmful, batch.embedder)
            contrast_scores, _ = best_matches(vectors, self._contrast, batch.embedder)
            # Per text, the most telling of its units (the whole text and its clauses): a
            # violating unit beats a non-violating one, then the higher score wins.
            for unit, score, index, contrast in zip(
                units, scores, nearest, contrast_scores, strict=True
            ):
                row = batch.unit_rows[unit]
                violated = score >= self.threshold and score - contrast >= self.margin
                best[row] = max(best[row], (violated, score, index))
        return [
            CheckResult(
                violated=violated,
                score=score,
                evidence=f"like: {self._harmful.sentences[index][:EVIDENCE_CHARS]}"
                if index >= 0
                else "passed the static stage",
            )
            for violated, score, index in best
        ]
