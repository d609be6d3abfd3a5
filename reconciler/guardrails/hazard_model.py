"""The hazard classifier: one-vs-rest logistic regressions over sentence embeddings.

Trained at compile time on a labelled corpus (JSON lines ``{"text": ..., "labels": [...]}``,
an empty list for benign look-alikes) twice: over the cheap static embeddings (the cascade's
first stage) and over the full MiniLM encoder (the second stage, run only for uncertain
outputs). A learned boundary per category generalises past its examples better than nearest-
exemplar matching: it weighs every direction of the embedding the corpus shows matters, and
the other categories and the benign fiction are its negatives.

Training takes seconds (the corpus is embedded once with each model); the weights are cached
as plain arrays keyed by the corpus's and both models' digests, so a process that compiles the
same policies again only loads them. Scoring is a matrix product and a sigmoid, in numpy.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from reconciler.guardrails.embeddings import Embedder, FloatMatrix

# Inverse regularisation strength of the logistic regressions, chosen by cross-validation on
# the tuning data (tests/guardrails/choose_thresholds.py prints the alternatives).
REGULARISATION_C = 4.0
CLASSIFIER_VERSION = "2"


class HazardCorpusError(ReconcilerError):
    """The labelled corpus of a hazard check is missing or malformed."""


@dataclass(frozen=True)
class LabelledText:
    text: str
    labels: tuple[str, ...]


def corpus_files(path: Path) -> list[Path]:
    """The ``*.jsonl`` files of a corpus folder (sorted), or the one file given."""
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
    elif path.is_file():
        files = [path]
    else:
        raise HazardCorpusError(f"no hazard corpus at {path}")
    if not files:
        raise HazardCorpusError(f"no *.jsonl files in the hazard corpus folder {path}")
    return files


def load_corpus(paths: Sequence[Path]) -> list[LabelledText]:
    """Every labelled line of these corpus folders or files, with its file and line on error."""
    rows: list[LabelledText] = []
    for path in paths:
        for file in corpus_files(path):
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                    text, labels = raw["text"], raw["labels"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise HazardCorpusError(
                        f'{file}:{number}: expected {{"text": ..., "labels": [...]}} ({exc})'
                    ) from exc
                if not isinstance(text, str) or not isinstance(labels, list):
                    raise HazardCorpusError(
                        f"{file}:{number}: text must be a string, labels a list"
                    )
                rows.append(LabelledText(text, tuple(str(label) for label in labels)))
    return rows


def corpus_digest(rows: Sequence[LabelledText]) -> str:
    digest = hashlib.sha256(CLASSIFIER_VERSION.encode())
    for row in rows:
        digest.update(json.dumps([row.text, sorted(row.labels)]).encode())
    return digest.hexdigest()[:16]


def label_matrix(rows: Sequence[LabelledText], categories: Sequence[str]) -> npt.NDArray[np.int8]:
    import numpy as np

    return np.array([[c in r.labels for c in categories] for r in rows], dtype=np.int8)


@dataclass(frozen=True)
class LinearScorer:
    """One logistic regression per category: probability = sigmoid(x · w + b)."""

    weights: FloatMatrix  # (categories, dimensions)
    bias: FloatMatrix  # (categories,)

    def probabilities(self, vectors: FloatMatrix) -> FloatMatrix:
        import numpy as np

        logits = vectors @ self.weights.T + self.bias
        result: FloatMatrix = (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)
        return result


def fit_scorer(
    vectors: FloatMatrix, labels: npt.NDArray[np.int8], *, c: float = REGULARISATION_C
) -> LinearScorer:
    """One balanced logistic regression per column of ``labels`` (scikit-learn)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    weights, bias = [], []
    for column in range(labels.shape[1]):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        model.fit(vectors, labels[:, column])
        weights.append(model.coef_[0])
        bias.append(model.intercept_[0])
    return LinearScorer(np.asarray(weights, dtype=np.float32), np.asarray(bias, dtype=np.float32))


@dataclass(frozen=True)
class HazardModel:
    """The two stages' scorers over the same categories, and the corpus they were fitted on.

    The encoder stage's scorer reads the static and the encoder vectors side by side: the
    two views disagree on different lines, and together they separate better (CV on the
    tuning data) than the encoder's alone.
    """

    categories: tuple[str, ...]
    static: LinearScorer
    encoder: LinearScorer
    digest: str


_lock = threading.Lock()
_models: dict[str, HazardModel] = {}


def train_hazard_model(
    rows: Sequence[LabelledText],
    categories: Sequence[str],
    *,
    static: Embedder,
    static_digest: str,
    encoder: Embedder,
    encoder_digest: str,
    cache_dir: Path,
) -> HazardModel:
    """The model for this corpus and these embedders: from memory, the cache, or trained now."""
    import numpy as np

    key = "-".join(
        [
            corpus_digest(rows),
            static_digest,
            encoder_digest,
            hashlib.sha256(",".join(categories).encode()).hexdigest()[:8],
        ]
    )
    with _lock:
        if key in _models:
            return _models[key]
        cached = cache_dir / f"hazard-{key}.npz"
        if cached.is_file():
            arrays = np.load(cached)
            model = HazardModel(
                tuple(categories),
                LinearScorer(arrays["static_w"], arrays["static_b"]),
                LinearScorer(arrays["encoder_w"], arrays["encoder_b"]),
                key,
            )
        else:
            texts = [r.text for r in rows]
            labels = label_matrix(rows, categories)
            static_vectors = static.encode(texts)
            model = HazardModel(
                tuple(categories),
                fit_scorer(static_vectors, labels),
                fit_scorer(np.hstack([static_vectors, encoder.encode(texts)]), labels),
                key,
            )
            cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(cached.name + ".partial.npz")
            np.savez(
                partial,
                static_w=model.static.weights,
                static_b=model.static.bias,
                encoder_w=model.encoder.weights,
                encoder_b=model.encoder.bias,
            )
            partial.rename(cached)
        _models[key] = model
        return model
