"""A registered version's files on local disk: downloaded once, found by what they hold.

The gateway (to serve a version), training (to fine-tune a base) and evaluation (to generate
with a candidate) all need the same thing, so they share one cache under the state folder,
keyed by registered model and version. The version's storage location is resolved with a
client bound to the given URIs: MLflow's `models:/` resolution reads the process-global
registry URI, which in a process hosting both a gateway and an apply may point elsewhere.

Two layouts are served: a model logged with `mlflow.transformers.log_model` (weights under
`model/`, tokenizer under `components/tokenizer/`) and a plain Hugging Face folder logged as
artifacts. Both are found by the files transformers itself needs, not by path.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.settings import redact_uri

COMPLETE_MARKER = ".download-complete"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


class ModelFilesError(ReconcilerError):
    """A version's files cannot be had or are not a model."""


@dataclass(frozen=True)
class ModelFolders:
    weights: Path  # holds config.json
    tokenizer: Path


def locate_model_folders(root: Path) -> ModelFolders:
    """The folders holding the model config (with weights) and the tokenizer below `root`."""
    configs = sorted(root.rglob("config.json"), key=lambda p: (len(p.parts), str(p)))
    with_weights = [
        c for c in configs if any(any(c.parent.glob(pattern)) for pattern in _WEIGHT_PATTERNS)
    ]
    configs = with_weights or configs
    if not configs:
        raise ModelFilesError(f"no config.json below {root}: not a transformers model")
    weights = configs[0].parent
    if any((weights / name).exists() for name in _TOKENIZER_FILES):
        return ModelFolders(weights, weights)
    candidates = sorted(
        {p.parent for name in _TOKENIZER_FILES for p in root.rglob(name)},
        key=lambda p: (len(p.parts), str(p)),
    )
    if not candidates:
        raise ModelFilesError(f"no tokenizer files below {root}")
    return ModelFolders(weights, candidates[0])


def download_version_files(
    *,
    registered_model: str,
    version: str,
    cache_dir: Path,
    tracking_uri: str,
    registry_uri: str | None = None,
) -> Path:
    """The local folder of a version's artifacts, downloading them on first use.

    Safe across processes: each download is staged in its own folder and renamed into place;
    when another process got there first, its folder is kept and the staged copy dropped.
    """
    destination = cache_dir / registered_model / version
    if (destination / COMPLETE_MARKER).exists():
        return destination
    for noisy in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=destination.parent))
    try:
        import mlflow.artifacts
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
        location = client.get_model_version_download_uri(registered_model, version)
        mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(staging), tracking_uri=tracking_uri
        )
        (staging / COMPLETE_MARKER).touch()
        if destination.exists() and not (destination / COMPLETE_MARKER).exists():
            shutil.rmtree(destination)  # a download interrupted before markers existed
        try:
            os.rename(staging, destination)
        except OSError:
            if not (destination / COMPLETE_MARKER).exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another process finished first
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelFilesError(
            f"cannot download models:/{registered_model}/{version} from "
            f"{redact_uri(registry_uri or tracking_uri)}: {_first_line(exc)}"
        ) from exc
    return destination


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {redact_uri(lines[0])}" if lines else type(exc).__name__
