"""One embedding pass for an evaluation: every unique text encoded once, longest first.

Behaviour similarity (candidate vs champion), reference similarity and the guardrails'
semantic and engagement checks all embed the candidate's outputs; the guardrails embed their
clauses too. `EmbeddingPass.prepare` gathers all of those texts, drops repeats, sorts them by
length (batches of like length pad the least) and encodes them in one call; afterwards
`encode` - the `Embedder` the similarity scores and the guardrail engine are given - serves
them from the pass and encodes only what it was not told about (the checks' exemplars, which
the inner embedder caches itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from reconciler.guardrails.embeddings import Embedder, clauses

if TYPE_CHECKING:
    from reconciler.guardrails.embeddings import FloatMatrix


class EmbeddingPass:
    """An `Embedder` over `inner` that remembers the vectors of one evaluation's texts."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self._vectors: dict[str, FloatMatrix] = {}
        self.encoded = 0  # texts sent to the inner embedder, for tests and benchmarks

    def prepare(self, texts: Iterable[str], *, guarded: Iterable[str] = ()) -> None:
        """Encode `texts` and the guardrail units (each text and its clauses) of `guarded`."""
        units = [*texts]
        for text in guarded:
            units += [text, *clauses(text)]
        self.encode(units)

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        missing = sorted(
            (t for t in dict.fromkeys(texts) if t not in self._vectors), key=lambda t: -len(t)
        )
        if missing:
            self.encoded += len(missing)
            self._vectors.update(zip(missing, self.inner.encode(missing), strict=True))
        return np.stack([self._vectors[t] for t in texts])
