"""MLflow model registry adapter (MLflow 3: aliases and tags, never stages).

Observation costs about one request per registered model whatever its number of versions:
one `get_registered_model` each (aliases and tags; search results carry no aliases), plus one
`search_model_versions` page per batch of models (`name IN (...)`, every version with its
tags). Requests run concurrently against a tracking server. mlflow is imported lazily so
commands that never reach the registry stay fast.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.errors import RegistryError
from reconciler.observe.state import RegisteredModelSnapshot, VersionSnapshot
from reconciler.settings import redact_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

# An unreachable server should fail a plan in seconds, not after MLflow's default ~2 minutes of
# retries. Users who set these themselves keep their values.
T = TypeVar("T")
R = TypeVar("R")

_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_PAGE_SIZE = 10_000
# Names per `name IN (...)` version search: keeps the query string short while cutting the
# requests for versions to one per batch.
_BATCH = 25


def _is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def _ensure_local_store(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _wrap_errors(action: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(method: Callable[..., None]) -> Callable[..., None]:
        def wrapper(self: MlflowRegistry, *args: str) -> None:
            try:
                method(self, *args)
            except Exception as exc:
                raise RegistryError(
                    f"cannot {action} in {redact_uri(self.registry_uri)}: {_first_line(exc)}"
                ) from exc

        wrapper.__doc__ = method.__doc__
        return wrapper

    return decorate


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
            models = dict(zip(unique, self._map(self._read_model, unique), strict=True))
            present = [name for name in unique if models[name] is not None]
            batches = [present[i : i + _BATCH] for i in range(0, len(present), _BATCH)]
            versions: dict[str, list[VersionSnapshot]] = {name: [] for name in present}
            for found in self._map(self._read_versions, batches):
                for name, version in found:
                    versions[name].append(version)
        except RegistryError:
            raise
        except Exception as exc:  # any SDK or transport failure becomes one clear message
            raise RegistryError(
                f"cannot read the model registry at {redact_uri(self.registry_uri)}: "
                f"{_first_line(exc)}"
            ) from exc
        snapshots: dict[str, RegisteredModelSnapshot | None] = {}
        for name in unique:
            model = models[name]
            snapshots[name] = (
                None
                if model is None
                else RegisteredModelSnapshot(
                    name=name,
                    aliases=model.aliases,
                    tags=model.tags,
                    versions=tuple(sorted(versions[name], key=lambda v: int(v.version))),
                )
            )
        return MappingProxyType(snapshots)

    @_wrap_errors("set an alias")
    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    @_wrap_errors("delete an alias")
    def delete_alias(self, name: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # already gone is done
                raise

    @_wrap_errors("tag a registered model")
    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self.client.set_registered_model_tag(name, key, value)

    @_wrap_errors("tag a model version")
    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(name, version, key, value)

    def _map(self, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self.workers > 1 and len(items) > 1:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                return list(pool.map(work, items))
        return [work(item) for item in items]

    def _read_model(self, name: str) -> RegisteredModelSnapshot | None:
        """Aliases and tags of one registered model (versions come in batches)."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return RegisteredModelSnapshot(
            name=model.name,
            aliases=MappingProxyType({str(k): str(v) for k, v in (model.aliases or {}).items()}),
            tags=MappingProxyType(dict(model.tags or {})),
        )

    def _read_versions(self, names: list[str]) -> list[tuple[str, VersionSnapshot]]:
        quoted = ", ".join(f"'{name}'" for name in names)  # names are validated: no quotes
        found: list[tuple[str, VersionSnapshot]] = []
        token: str | None = None
        while True:
            page = self.client.search_model_versions(
                filter_string=f"name IN ({quoted})", max_results=_PAGE_SIZE, page_token=token
            )
            found += [(str(entity.name), _version(entity)) for entity in page]
            token = page.token
            if not token:
                return found


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
