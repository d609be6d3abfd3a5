"""Hazard check: a taxonomy classifier run as a two-stage cascade.

Stage one scores every output with logistic regressions over static embeddings distilled
from MiniLM (a table lookup and a matrix product: tens of microseconds per output). Per
category, a probability below the policy's ``bandLow`` passes and one at or above
``bandHigh`` fires. Only outputs with some category inside that uncertain band go to stage
two: the full MiniLM encoder and the regressions trained over it, which decide at
``threshold``. Most outputs — ordinary game lines — never pay for a transformer forward pass.
Only a text's most likely category may fire (cross-validation on the tuning data: macro F1
0.816 -> 0.836): neighbouring categories (guilt-tripping and self-harm, weapons and violence)
otherwise fire together and each counts as the other's false positive.

Each output is scored as a whole: scoring its clauses too (the highest counting) lowered
F1 in cross-validation on the tuning data, the clauses of honest fiction being harsher out
of context. One finding per category that fired.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.guardrails.embeddings import Embedder, TextBatch, default_embedder
from reconciler.guardrails.hazard_model import (
    HazardCorpusError,
    HazardModel,
    load_corpus,
    train_hazard_model,
)
from reconciler.guardrails.verdicts import CategoryHit, CheckResult
from reconciler.spec.guardrail_parameters import HazardParameters
from reconciler.spec.model import GuardrailCheck

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from reconciler.guardrails.embeddings import FloatMatrix


def embedder_digest(embedder: Embedder) -> str:
    """A digest naming the embedding model, for the classifier cache's key."""
    digest = getattr(embedder, "digest", None)
    if isinstance(digest, str):
        return digest
    model_path = getattr(embedder, "model_path", None)
    if isinstance(model_path, Path):
        from reconciler.guardrails.static_embeddings import model_digest

        return model_digest(model_path)
    # An embedder we cannot name: its weights stay in memory, keyed by the object.
    return f"object{id(embedder)}"


class HazardCheck:
    def __init__(
        self,
        spec: GuardrailCheck,
        parameters: HazardParameters,
        *,
        base_path: Path,
        embedder: Embedder | None = None,
        static_embedder: Embedder | None = None,
    ) -> None:
        import numpy as np

        self.spec = spec
        paths = [Path(p) if Path(p).is_absolute() else base_path / p for p in parameters.corpus]
        rows = load_corpus(paths)
        known = sorted({label for row in rows for label in row.labels})
        unknown = [c for c in parameters.categories if c not in known]
        if unknown:
            raise HazardCorpusError(
                f"check {spec.name!r}: categories {', '.join(unknown)} have no labelled lines "
                f"in its corpus (labels there: {', '.join(known)})"
            )
        if static_embedder is None:
            from reconciler.guardrails.static_embeddings import default_static_embedder

            static_embedder = default_static_embedder()
        encoder = embedder or default_embedder()
        # One model over every label of the corpus: checks that share a corpus share it, and
        # each category's negatives include the other categories.
        self.model: HazardModel = train_hazard_model(
            rows,
            known,
            static=static_embedder,
            static_digest=embedder_digest(static_embedder),
            encoder=encoder,
            encoder_digest=embedder_digest(encoder),
            cache_dir=_classifier_cache_dir(),
        )
        self.categories = list(parameters.categories)
        self._columns = [known.index(c) for c in self.categories]
        settings = [parameters.categories[c] for c in self.categories]
        self._threshold = np.array([s.threshold for s in settings], dtype=np.float32)
        self._low = np.array([s.band_low for s in settings], dtype=np.float32)
        self._high = np.array([s.band_high for s in settings], dtype=np.float32)

    def scan(self, batch: TextBatch) -> list[CheckResult]:
        import numpy as np

        if not batch.texts:
            return []
        static_vectors = batch.static_embeddings()
        columns = np.array(self._columns)
        # Probabilities of every category of the model: the categories compete, and only
        # the most likely one of a text may fire (a guilt-trip is not also self-harm).
        static_all = self.model.static.probabilities(static_vectors)
        static = static_all[:, columns]
        uncertain = (static >= self._low) & (static < self._high)
        best_all = static_all.copy()
        to_encode = np.flatnonzero(uncertain.any(axis=1)).tolist()
        if to_encode:
            _, vectors = batch.encoder_embeddings(to_encode, with_clauses=False)
            both = np.hstack([static_vectors[to_encode], vectors])
            best_all[to_encode] = self.model.encoder.probabilities(both)
        encoder = best_all[:, columns]
        fired_static = (static >= self._high) & (
            static_all.argmax(axis=1)[:, None] == columns[None, :]
        )
        fired_encoder = (
            uncertain
            & (encoder >= self._threshold)
            & (best_all.argmax(axis=1)[:, None] == columns[None, :])
        )
        return [
            self._result(static[row], encoder[row], fired_static[row], fired_encoder[row])
            for row in range(len(batch.texts))
        ]

    def _result(
        self,
        static: FloatMatrix,
        encoder: FloatMatrix,
        fired_static: npt.NDArray[np.bool_],
        fired_encoder: npt.NDArray[np.bool_],
    ) -> CheckResult:
        hits = []
        for column, category in enumerate(self.categories):
            if fired_static[column]:
                hits.append(CategoryHit(category, float(static[column]), "static stage"))
            elif fired_encoder[column]:
                hits.append(CategoryHit(category, float(encoder[column]), "encoder stage"))
        if not hits:
            return CheckResult(violated=False, score=float(max(static.max(), encoder.max())))
        best = max(hits, key=lambda h: h.score)
        return CheckResult(
            violated=True, score=best.score, evidence=best.evidence, hits=tuple(hits)
        )


def _classifier_cache_dir() -> Path:
    from reconciler.guardrails.static_embeddings import static_cache_dir

    return static_cache_dir() / "classifiers"
