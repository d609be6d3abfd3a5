"""Static embeddings distilled from the shipped all-MiniLM-L6-v2: the cascade's cheap first stage.

`model2vec` runs the MiniLM encoder once over every token of its own vocabulary and keeps the
(PCA-reduced) output vectors; a sentence is then the mean of its tokens' vectors — a table
lookup, tens of microseconds, instead of a transformer forward pass of milliseconds.
Distillation needs only the local model folder and its vocabulary (``HF_HUB_OFFLINE=1``:
nothing is downloaded); it takes 20 s to minutes on two cores, so it is done once, shown with
a progress bar, and cached per user under the source model's digest (``static_cache_dir``;
``$RECONCILER_STATIC_EMBEDDINGS_DIR`` moves it).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.guardrails.embeddings import l2_normalised, locate_embedding_model
from reconciler.model_loading import loading_models

if TYPE_CHECKING:
    from reconciler.guardrails.embeddings import FloatMatrix

CACHE_DIR_ENV = "RECONCILER_STATIC_EMBEDDINGS_DIR"
PCA_DIMS = 256
# The files that decide the distilled vectors: the weights and the vocabulary.
_DIGESTED_FILES = ("model.safetensors", "tokenizer.json", "vocab.txt", "config.json")
# Longer texts are cut: a mean over thousands of tokens says nothing a prefix does not.
MAX_TOKENS = 256


def model_digest(folder: Path) -> str:
    """sha256 over the source model's weights and vocabulary (first 16 hex digits)."""
    digest = hashlib.sha256()
    for name in _DIGESTED_FILES:
        path = folder / name
        if not path.is_file():
            continue
        digest.update(name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def static_cache_dir() -> Path:
    """Where distilled models (and the classifiers trained over them) live:
    ``$RECONCILER_STATIC_EMBEDDINGS_DIR``, else the user's cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``, then ``reconciler/static-embeddings``), else, where
    that cannot be created, the state folder's.

    A per-user cache rather than the state folder's: what is cached is a pure function of the
    source model's and the corpus's digests (the names say which), so every state folder and
    clone on the host shares one build instead of distilling and training again.
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "reconciler" / "static-embeddings"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        from reconciler.settings import Settings

        return Settings.from_environment().state_dir / "static-embeddings"
    return folder


class StaticEmbedder:
    """Mean of distilled token vectors, L2-normalised (a dot product is a cosine)."""

    def __init__(self, model: Any, digest: str) -> None:
        import numpy as np

        self.digest = digest
        self._model = model
        self._tokenizer = model.tokenizer
        self._table = np.asarray(model.embedding, dtype=np.float32)
        # Plain mean pooling is what we reimplement below; other layouts go through model2vec.
        self._fast = model.token_mapping is None and model.weights is None
        self._unknown = self._tokenizer.token_to_id("[UNK]")

    @property
    def dimensions(self) -> int:
        return int(self._table.shape[1])

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        if not self._fast:
            return np.asarray(self._model.encode(list(texts), normalize=True), dtype=np.float32)
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            ids = [i for i in encoding.ids[:MAX_TOKENS] if i != self._unknown]
            if ids:
                out[row] = self._table[ids].mean(axis=0)
        return l2_normalised(out)


def _distil(source: Path, target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from model2vec.distill import distill

    print(
        f"Distilling static embeddings from {source.name} (once; cached in {target})",
        file=sys.stderr,
    )
    # model2vec shows a tqdm progress bar over the vocabulary while it encodes it.
    with loading_models():
        model = distill(model_name=str(source), pca_dims=PCA_DIMS)
    # A folder of this process's own, renamed into place: two processes distilling at once
    # (gateway replicas starting together on one host) never write into each other's files,
    # and the first rename wins.
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(str(partial))
    try:
        partial.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
        shutil.rmtree(partial, ignore_errors=True)


_lock = threading.Lock()


def load_static_embedder(
    source: Path | None = None, cache_dir: Path | None = None
) -> StaticEmbedder:
    """The distilled model of ``source`` (default: the shipped MiniLM), built on first need."""
    folder = source or locate_embedding_model()
    cache = cache_dir or static_cache_dir()
    return _load(folder.resolve(), cache.resolve())


@functools.cache
def default_static_embedder() -> StaticEmbedder:
    """The process-wide distilled model of the shipped MiniLM: located once, not per batch
    (finding the model's package and resolving paths cost more than embedding a line)."""
    return load_static_embedder()


@functools.cache
def _load(folder: Path, cache: Path) -> StaticEmbedder:
    digest = model_digest(folder)
    target = cache / f"minilm-{digest}-pca{PCA_DIMS}"
    with _lock:
        if not (target / "config.json").is_file():
            cache.mkdir(parents=True, exist_ok=True)
            from filelock import FileLock

            # Processes sharing the cache (replicas starting together on one host) distil
            # once: the others wait for the first and then load what it made.
            with FileLock(str(cache / f"{target.name}.lock")):
                if not (target / "config.json").is_file():
                    _distil(folder, target)
    from model2vec import StaticModel

    return StaticEmbedder(StaticModel.from_pretrained(str(target)), digest)
