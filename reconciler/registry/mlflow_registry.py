"""MLflow model registry adapter (MLflow 3: aliases and tags, never stages).

Observation costs two requests per registered model whatever its number of versions: one
`get_registered_model` (aliases and tags) and one `search_model_versions` page (every version
with its tags). Models are fetched concurrently against a tracking server. mlflow is imported
lazily so commands that never reach the registry stay fast.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from reconciler.errors import RegistryError
from reconciler.observe.state import RegisteredModelSnapshot, VersionSnapshot
from reconciler.settings import redact_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

# An unreachable server should fail a plan in seconds, not after MLflow's default ~2 minutes of
# retries. Users who set these themselves keep their values.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_PAGE_SIZE = 10_000


def _is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def _ensure_local_store(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


class MlflowRegistry:
    """Reads (and, for the apply engine, writes) registered models through `MlflowClient`."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None, workers: int = 8):
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.workers = workers if _is_remote(self.registry_uri) else 1
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            for name, value in _HTTP_DEFAULTS.items():
                os.environ.setdefault(name, value)
            _ensure_local_store(self.registry_uri)
            # Schema migrations of a new embedded store are not the user's business.
            for noisy in ("alembic", "mlflow.store.db.utils"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
            from mlflow import MlflowClient

            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
            )
        return self._client

    def snapshot(self, names: Sequence[str]) -> Mapping[str, RegisteredModelSnapshot | None]:
        unique = sorted(set(names))
        try:
            client = self.client
            if self.workers > 1 and len(unique) > 1:
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    found = list(pool.map(self._read_one, unique))
            else:
                found = [self._read_one(name) for name in unique]
        except RegistryError:
            raise
        except Exception as exc:  # any SDK or transport failure becomes one clear message
            raise RegistryError(
                f"cannot read the model registry at {redact_uri(self.registry_uri)}: "
                f"{_first_line(exc)}"
            ) from exc
        del client
        return MappingProxyType(dict(zip(unique, found, strict=True)))

    def _read_one(self, name: str) -> RegisteredModelSnapshot | None:
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            model = client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        versions = client.search_model_versions(
            filter_string=f"name='{name}'", max_results=_PAGE_SIZE
        )
        return RegisteredModelSnapshot(
            name=model.name,
            aliases=MappingProxyType({str(k): str(v) for k, v in (model.aliases or {}).items()}),
            tags=MappingProxyType(dict(model.tags or {})),
            versions=tuple(_version(v) for v in versions),
        )


def _version(entity: Any) -> VersionSnapshot:
    return VersionSnapshot(
        version=str(entity.version),
        status=str(entity.status),
        tags=MappingProxyType(dict(entity.tags or {})),
        source=str(entity.source or ""),
        run_id=entity.run_id or None,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact_uri(text[0]) if text else type(exc).__name__
