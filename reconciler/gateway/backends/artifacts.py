"""A self-hosted backend's files: the shared version cache, with failures as `BackendError`."""

from __future__ import annotations

from pathlib import Path

from reconciler.gateway.backends.base import BackendError
from reconciler.registry.version_files import (
    ModelFilesError,
    ModelFolders,
    download_version_files,
    locate_model_folders,
)


def fetch_model_folders(
    *,
    registered_model: str,
    version: str,
    cache_dir: Path,
    tracking_uri: str,
    registry_uri: str | None = None,
) -> ModelFolders:
    """The weights and tokenizer folders of a version, downloading it on first use."""
    try:
        root = download_version_files(
            registered_model=registered_model,
            version=version,
            cache_dir=cache_dir,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
        )
        return locate_model_folders(root)
    except ModelFilesError as exc:
        raise BackendError(str(exc)) from exc
