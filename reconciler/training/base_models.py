"""Where a model's files are: the spec's preferred model, or a registered version's artifacts.

Local models are folders in the repository; Hugging Face models come through
`huggingface_hub.snapshot_download` and its cache (pinned to the spec's commit), so an offline
machine can still use a model it downloaded before; registered versions are downloaded once
into the state folder's model cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.registry.version_files import download_version_files
from reconciler.settings import Settings
from reconciler.spec.model import HuggingFaceModel, LocalModel, OpenAICompatibleModel
from reconciler.tracking.mlflow_tracking import RegisteredVersion

PROVIDER_FILE = "provider.json"


class ModelUnavailableError(ReconcilerError):
    """The model's files cannot be had: missing folder, offline and not cached, ..."""


def preferred_model_folder(model: LocalModel | HuggingFaceModel, *, repo: Path) -> Path:
    if isinstance(model, LocalModel):
        folder = (repo / model.path).resolve()
        if not (folder / "config.json").is_file():
            raise ModelUnavailableError(
                f"local model {model.path} has no config.json under {repo}; build it first "
                "(for the tiny demo base: reconciler tiny-model --out models/tiny-base)"
            )
        return folder
    return huggingface_snapshot(model.id, model.revision)


def huggingface_snapshot(model_id: str, revision: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model_id, revision=revision))
    except LocalEntryNotFoundError as exc:
        raise ModelUnavailableError(
            f"cannot download {model_id}@{revision[:12]} from the Hugging Face Hub and it is not "
            "in the local cache; connect to the hub (or set HF_ENDPOINT to a mirror) or download "
            "it once with `huggingface-cli download`"
        ) from exc
    except Exception as exc:
        raise ModelUnavailableError(
            f"cannot download {model_id}@{revision[:12]}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def provider_description(model: OpenAICompatibleModel) -> dict[str, Any]:
    """The artifact of an external version: how to reach it, never the key itself."""
    return {
        "kind": "openai-compatible",
        "id": model.id,
        "base_url": model.base_url,
        "base_url_env": model.base_url_env,
        "api_key_env": model.api_key_env,
    }


def version_files(version: RegisteredVersion, settings: Settings) -> Path:
    """The version's artifacts in the shared model cache (downloaded on first use)."""
    return download_version_files(
        registered_model=version.name,
        version=version.version,
        cache_dir=settings.model_cache_dir,
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
    )


def read_provider(folder: Path) -> dict[str, Any]:
    found = sorted(folder.rglob(PROVIDER_FILE))
    if not found:
        raise ModelUnavailableError(f"no {PROVIDER_FILE} below {folder}")
    description: dict[str, Any] = json.loads(found[0].read_text(encoding="utf-8"))
    return description
