"""One embedding pass for an evaluation: every unique text encoded once, longest first.

Behaviour similarity (candidate vs champion), reference similarity and the guardrails'
semantic and engagement checks all embed the candidate's outputs; the guardrails embed their
clauses too. `EmbeddingPass.prepare` gathers all of those texts, drops repeats, sorts them by
length (batches of like length pad the least) and encodes them in one call; afterwards
`encode` - the `Embedder` the similarity scores and the guardrail engine are given - serves
them from the pass and encodes only what it was not told about (the checks' exemplars, which
the inner embedder caches itself). Vectors known from elsewhere (the champion's outputs,
kept with them in the champion cache) are handed to the pass with `remember` and never
reach the encoder.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
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

    @property
    def digest(self) -> str | None:
        """The inner embedding model's digest (None when it cannot be named): what vectors
        kept on disk are keyed by, and what the hazard check's classifier cache is keyed by
        (without it a pass would be a new, unnamed embedder each evaluation)."""
        return embedding_model_digest(self.inner)

    def prepare(self, texts: Iterable[str], *, guarded: Iterable[str] = ()) -> None:
        """Encode `texts` and the guardrail units (each text and its clauses) of `guarded`."""
        units = [*texts]
        for text in guarded:
            units += [text, *clauses(text)]
        self.encode(units)

    def remember(self, texts: Sequence[str], vectors: FloatMatrix) -> None:
        """Take `vectors` (row i is the inner model's vector of texts[i]) as already encoded."""
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        self._vectors.update(zip(texts, vectors, strict=True))

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


def embedding_model_digest(embedder: Embedder) -> str | None:
    """A digest naming `embedder`'s model: its own ``digest``, else one of the weights and
    vocabulary in its ``model_path``; None when it has neither (vectors of an unnamed model
    are never kept on disk)."""
    digest = getattr(embedder, "digest", None)
    if isinstance(digest, str):
        return digest
    model_path = getattr(embedder, "model_path", None)
    if not isinstance(model_path, Path):
        return None
    folder = model_path.resolve()
    # Hashing the weights takes a moment: once per folder and version of its files.
    stamp = tuple(
        sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
               if p.is_file())
    )  # fmt: skip
    return _folder_digest(folder, stamp)


@functools.cache
def _folder_digest(folder: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:
    from reconciler.guardrails.static_embeddings import model_digest

    return model_digest(folder)
