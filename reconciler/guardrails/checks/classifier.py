"""Classifier check: a local transformers text-classification model, given by path.

For teams that have trained a toxicity or self-harm classifier of their own. The model is
loaded on first use (never downloaded: the folder must hold the weights and tokenizer) and
runs over the whole batch in one pipeline call. A text violates when any of the configured
labels scores at least the threshold.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.guardrails.embeddings import ENCODE_BATCH_SIZE, TextBatch
from reconciler.guardrails.verdicts import CheckResult
from reconciler.model_loading import loading_models
from reconciler.spec.guardrail_parameters import ClassifierParameters
from reconciler.spec.model import GuardrailCheck


class ClassifierModelMissingError(ReconcilerError):
    """The classifier folder of a guardrail check does not exist."""


class ClassifierCheck:
    def __init__(
        self, spec: GuardrailCheck, parameters: ClassifierParameters, model_path: Path
    ) -> None:
        self.spec = spec
        self.model_path = model_path
        self.labels = frozenset(parameters.labels)
        self.threshold = parameters.threshold
        self.max_length = parameters.max_length
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                if not self.model_path.is_dir():
                    raise ClassifierModelMissingError(
                        f"check {self.spec.name!r}: no classifier model folder at {self.model_path}"
                    )
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                with loading_models():
                    from transformers import pipeline

                    self._pipeline = pipeline(
                        "text-classification", model=str(self.model_path), device="cpu", top_k=None
                    )
            return self._pipeline

    def scan(self, batch: TextBatch) -> list[CheckResult]:
        if not batch.texts:
            return []
        outputs = self._loaded()(
            list(batch.texts),
            batch_size=ENCODE_BATCH_SIZE,
            truncation=True,
            max_length=self.max_length,
        )
        results = []
        for scores in outputs:
            relevant = [s for s in scores if s["label"] in self.labels]
            best = max(relevant, key=lambda s: float(s["score"]), default=None)
            score = float(best["score"]) if best else 0.0
            results.append(
                CheckResult(
                    violated=score >= self.threshold,
                    score=score,
                    evidence=f"label {best['label']}" if best else "",
                )
            )
        return results
