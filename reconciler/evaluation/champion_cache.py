"""The champion's outputs, generated once per (version, prompts, generation settings, seed).

Every candidate is compared with the champion on the same prompts and seeds, so the champion's
answers are the same each time: they are kept in the state folder (``evaluation-cache/``, one
JSON file per digest) and reused by every later evaluation against that champion, without
loading its weights. The file survives restarts; written to a temporary name and renamed, so
a reader never sees half of one.

The champion's outputs' sentence embeddings are kept too (``vectors-<digest>.npy``, keyed by
the embedding model's digest and the texts): an evaluation against a cached champion then
encodes only the candidate's outputs, its clauses and the references. `recall_vectors` hands
the stored ones to the evaluation's `EmbeddingPass` before it encodes; `keep_vectors` stores
those of runs that had none, once the pass has encoded them. Vectors of a model that cannot
be named (a test's embedder) are not kept.

The digest covers everything an output depends on: the registered model, version, its run id
(a UUID of the tracking store, so a folder copied from another host or a recreated store never
hands out another model's outputs under the same version number) and idempotency key, the
prompts in order, the generation settings, the batch size (batch composition changes sampling
draws), the seed and the format of this cache. Another host without the file generates and
writes its own. Only self-hosted weights are cached: a provider may change what a model id
answers, so an external champion is asked again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import lineage
from reconciler.digest import digest_of
from reconciler.evaluation.embedding_pass import EmbeddingPass
from reconciler.evaluation.generation import Generated, Generator
from reconciler.spec.model import Generation
from reconciler.tracking.mlflow_tracking import RegisteredVersion

if TYPE_CHECKING:
    from reconciler.guardrails.embeddings import FloatMatrix

CACHE_DIR = "evaluation-cache"
# Bumped when what a cached output means changes (e.g. how batches are formed).
CACHE_FORMAT = 2
# Bumped when what stored vectors mean changes (e.g. their normalisation).
VECTORS_FORMAT = 1


def outputs_key(
    version: RegisteredVersion,
    prompts: Sequence[str],
    generation: Generation,
    *,
    seed: int,
    batch_size: int,
) -> str:
    return digest_of(
        {
            "format": CACHE_FORMAT,
            "model": version.name,
            "version": version.version,
            "run_id": version.run_id,
            "key": version.tags.get(lineage.KEY),
            "prompts": list(prompts),
            "generation": generation.model_dump(mode="json"),
            "seed": seed,
            "batch_size": batch_size,
        }
    )


class ChampionOutputs:
    """Cached generations in `folder` (normally ``<state folder>/evaluation-cache``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key.removeprefix('sha256:')}.json"

    def get(self, key: str, count: int) -> list[Generated] | None:
        """The `count` outputs stored under `key`; None when missing or unreadable."""
        try:
            rows = json.loads(self._path(key).read_text(encoding="utf-8"))
            generated = [Generated(str(r["text"]), float(r["latency_ms"]), int(r["new_tokens"]))
                         for r in rows]  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return generated if len(generated) == count else None

    def put(self, key: str, generated: Sequence[Generated]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        rows = [
            {"text": g.text, "latency_ms": g.latency_ms, "new_tokens": g.new_tokens}
            for g in generated
        ]
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(rows, file, ensure_ascii=False)
            os.replace(temporary, self._path(key))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _vectors_path(self, model: str, texts: Sequence[str]) -> Path:
        key = digest_of({"format": VECTORS_FORMAT, "model": model, "texts": list(texts)})
        return self.folder / f"vectors-{key.removeprefix('sha256:')}.npy"

    def get_vectors(self, model: str, texts: Sequence[str]) -> FloatMatrix | None:
        """The vectors stored for these texts (one row each) by the embedding model named
        `model`; None when missing or unreadable."""
        import numpy as np

        try:
            vectors = np.load(self._vectors_path(model, texts), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(texts):
            return None
        return vectors  # type: ignore[no-any-return]

    def has_vectors(self, model: str, texts: Sequence[str]) -> bool:
        return self._vectors_path(model, texts).is_file()

    def put_vectors(self, model: str, texts: Sequence[str], vectors: FloatMatrix) -> None:
        import numpy as np

        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.save(file, np.asarray(vectors, dtype=np.float32), allow_pickle=False)
            os.replace(temporary, self._vectors_path(model, texts))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def champion_runs(
    cache: ChampionOutputs | None,
    version: RegisteredVersion,
    prompts: Sequence[str],
    generation: Generation,
    *,
    seeds: Sequence[int],
    batch_size: int,
    load: Callable[[], Generator],
) -> list[list[Generated]]:
    """The champion's outputs for each seed: from `cache` where stored, else generated with
    the generator `load` returns (called at most once, only when a seed is missing)."""
    loaded: Generator | None = None
    runs: list[list[Generated]] = []
    for seed in seeds:
        key = outputs_key(version, prompts, generation, seed=seed, batch_size=batch_size)
        cached = cache.get(key, len(prompts)) if cache is not None else None
        if cached is None:
            loaded = loaded or load()
            cached = loaded.generate(prompts, seed=seed)
            if cache is not None:
                cache.put(key, cached)
        runs.append(cached)
    return runs


def recall_vectors(
    cache: ChampionOutputs | None, runs: Sequence[Sequence[str]], vectors: EmbeddingPass
) -> list[Sequence[str]]:
    """Hand `vectors` the stored embeddings of each run's outputs (the champion's, one run
    per seed); returns the runs that had none, for `keep_vectors` once the pass has encoded
    them (all of them without a cache or a nameable embedding model)."""
    model = vectors.digest
    if cache is None or model is None:
        return list(runs)
    missing: list[Sequence[str]] = []
    for texts in runs:
        unique = list(dict.fromkeys(texts))
        stored = cache.get_vectors(model, unique)
        if stored is None:
            missing.append(texts)
        else:
            vectors.remember(unique, stored)
    return missing


def keep_vectors(
    cache: ChampionOutputs | None, runs: Sequence[Sequence[str]], vectors: EmbeddingPass
) -> None:
    """Store the embeddings of each run's outputs, taken from `vectors` (which has encoded
    them already in the evaluation's pass)."""
    model = vectors.digest
    if cache is None or model is None:
        return
    for texts in runs:
        unique = list(dict.fromkeys(texts))
        if unique and not cache.has_vectors(model, unique):
            cache.put_vectors(model, unique, vectors.encode(unique))
