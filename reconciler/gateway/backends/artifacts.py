"""Model-version artifacts from MLflow, downloaded once into the gateway's model cache.

Two layouts are served: a model logged with `mlflow.transformers.log_model` (weights under
`model/`, tokenizer under `components/tokenizer/`) and a plain Hugging Face folder logged as
artifacts. Both are found by looking for the files transformers itself needs, not by path.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.gateway.backends.base import BackendError, failure_text

_COMPLETE_MARKER = ".download-complete"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


@dataclass(frozen=True)
class ModelFolders:
    weights: Path  # holds config.json
    tokenizer: Path


def locate_model_folders(root: Path) -> ModelFolders:
    """The folders holding the model config and the tokenizer, anywhere below `root`."""
    configs = sorted(root.rglob("config.json"), key=lambda p: (len(p.parts), str(p)))
    if not configs:
        raise BackendError(f"no config.json below {root}: not a transformers model")
    weights = configs[0].parent
    if any((weights / name).exists() for name in _TOKENIZER_FILES):
        return ModelFolders(weights, weights)
    candidates = sorted(
        {p.parent for name in _TOKENIZER_FILES for p in root.rglob(name)},
        key=lambda p: (len(p.parts), str(p)),
    )
    if not candidates:
        raise BackendError(f"no tokenizer files below {root}")
    return ModelFolders(weights, candidates[0])


def download_model_version(
    *,
    model_uri: str,
    registered_model: str,
    version: str,
    cache_dir: Path,
    tracking_uri: str,
    registry_uri: str | None = None,
) -> Path:
    """The local folder of a version's artifacts, downloading them on first use."""
    destination = cache_dir / registered_model / version
    if (destination / _COMPLETE_MARKER).exists():
        return destination
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow.artifacts

    cache_dir.mkdir(parents=True, exist_ok=True)
    # Download beside the destination and rename, so a crash never leaves a half folder
    # that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{registered_model}-{version}-", dir=cache_dir))
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri,
            dst_path=str(staging),
            tracking_uri=tracking_uri,
            registry_uri=registry_uri or tracking_uri,
        )
        (staging / _COMPLETE_MARKER).touch()
        if destination.exists():
            shutil.rmtree(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(destination)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, BackendError):
            raise
        raise BackendError(f"cannot download {model_uri}: {failure_text(exc)}") from exc
    return destination
