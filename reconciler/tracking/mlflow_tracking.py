"""The MLflow tracking adapter: every write training and evaluation make goes through here.

Training and evaluation code never imports mlflow; it asks this adapter for a run, logs
params, metrics, dataset inputs, tables and models in it, and registers versions with their
lineage tags. mlflow is imported lazily, so commands that never track (validate, plan) stay
light. Experiments get an explicit artifact location under `settings.artifact_root` for a
sqlite store (MLflow would otherwise put artifacts beside the process's working directory);
a tracking server decides its own.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.settings import Settings

READY = "READY"
# What `mlflow.set_tracking_uri` / `set_registry_uri` write into the environment.
_EXPORTED_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@dataclass(frozen=True)
class RegisteredVersion:
    """What training and evaluation need to know about one registry version."""

    name: str
    version: str
    status: str
    tags: Mapping[str, str]
    run_id: str | None
    description: str = ""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class DatasetTable:
    """A dataset to show as a run input: its rows, a name and the content digest."""

    name: str
    digest: str
    rows: Sequence[Mapping[str, Any]]
    source: str | None  # a local file it was read from; None for derived data


class TrackingRun:
    """One active MLflow run; the methods log into it."""

    def __init__(self, run_id: str, experiment_id: str) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id

    @property
    def ui_link(self) -> str:
        """The run's page in the MLflow UI, relative to the UI's root (a markdown link target
        in a version description opens it)."""
        return f"#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: _param_text(v) for k, v in params.items()}, run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics(dict(metrics), step=step, run_id=self.run_id)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(tags))

    def log_dataset(self, dataset: DatasetTable, *, context: str) -> None:
        """Logged as a run input, so the MLflow UI lists it with its digest and schema."""
        import mlflow
        import pandas as pd
        from mlflow.data.pandas_dataset import from_pandas

        frame = pd.DataFrame(list(dataset.rows))
        if dataset.source is None:  # MLflow records the calling code as the source
            data = from_pandas(frame, name=dataset.name, digest=dataset.digest[:36])
        else:
            data = from_pandas(
                frame, source=dataset.source, name=dataset.name, digest=dataset.digest[:36]
            )
        mlflow.log_input(data, context=context)

    def log_table(self, rows: Sequence[Mapping[str, Any]], artifact_file: str) -> None:
        import mlflow
        import pandas as pd

        mlflow.log_table(pd.DataFrame(list(rows)), artifact_file=artifact_file, run_id=self.run_id)

    def log_dict(self, content: Mapping[str, Any], artifact_file: str) -> None:
        import mlflow

        mlflow.log_dict(dict(content), artifact_file, run_id=self.run_id)

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        import mlflow

        mlflow.log_artifacts(str(folder), artifact_path=artifact_path, run_id=self.run_id)

    def log_transformers_model(
        self,
        model: Any,
        tokenizer: Any,
        *,
        inference_params: Mapping[str, Any],
        pip_requirements: Sequence[str],
        name: str = "model",
    ) -> str:
        """Log a causal LM with a text-generation signature; returns its model URI.

        `name` is the logged model's name in the MLflow UI (a trained use-case copy is
        named `<base>-<use-case>`)."""
        import mlflow
        from mlflow.models import infer_signature

        # Generation settings become signature params: callers can override them per request
        # and the registry page shows the defaults the use case asked for.
        signature = infer_signature(["prompt"], ["completion"], params=dict(inference_params))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model card lookups on the hub
        logging.getLogger("mlflow.transformers").setLevel(logging.ERROR)
        info = mlflow.transformers.log_model(
            {"model": model, "tokenizer": tokenizer},
            name=name,
            task="text-generation",
            signature=signature,
            pip_requirements=list(pip_requirements),
        )
        return str(info.model_uri)


class Tracking:
    """MLflow experiments, runs and the model registry of one tracking store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._configured = False

    def _mlflow(self) -> Any:
        """mlflow, pointed at this adapter's store.

        The fluent API (runs, `log_model`) reads process-global URIs, so they are set on every
        call: another `Tracking` in the same process may have pointed them elsewhere since.
        MLflow also exports them as environment variables for subprocesses; those are put back
        as they were, so one adapter's store never leaks into the settings of later commands.
        """
        import mlflow

        if not self._configured:
            uri = self.settings.tracking_uri
            if uri.startswith("sqlite:///"):
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            for noisy in ("alembic", "mlflow.store.db.utils", "mlflow.tracking._model_registry"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
            self._configured = True
        exported = {name: os.environ.get(name) for name in _EXPORTED_URI_VARIABLES}
        try:
            mlflow.set_tracking_uri(self.settings.tracking_uri)
            mlflow.set_registry_uri(self.settings.registry_uri)
        finally:
            for name, value in exported.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        return mlflow

    @property
    def local_store(self) -> bool:
        return self.settings.tracking_uri.startswith("sqlite:")

    def experiment_id(self, name: str) -> str:
        mlflow = self._mlflow()
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = (
            (self.settings.artifact_root / name).resolve().as_uri() if (self.local_store) else None
        )
        return str(mlflow.create_experiment(name, artifact_location=location))

    @contextmanager
    def run(
        self, experiment: str, run_name: str, tags: Mapping[str, str] | None = None
    ) -> Iterator[TrackingRun]:
        mlflow = self._mlflow()
        experiment_id = self.experiment_id(experiment)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, tags=dict(tags or {})
        ) as active:
            yield TrackingRun(str(active.info.run_id), experiment_id)

    # -- registry ------------------------------------------------------------------------

    def find_version(self, name: str, tags: Mapping[str, str]) -> RegisteredVersion | None:
        """The newest READY version of `name` carrying all of `tags`."""
        mlflow = self._mlflow()
        from mlflow.exceptions import MlflowException

        client = mlflow.MlflowClient()
        conditions = " and ".join(
            f"tags.`{key}` = '{value}'" for key, value in sorted(tags.items())
        )
        try:
            found = client.search_model_versions(filter_string=f"name = '{name}' and {conditions}")
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        ready = [_registered(v) for v in found if str(v.status) == READY]
        return max(ready, key=lambda v: int(v.version)) if ready else None

    def get_version(self, name: str, version: str) -> RegisteredVersion:
        client = self._mlflow().MlflowClient()
        return _registered(client.get_model_version(name, version))

    def register(
        self,
        name: str,
        *,
        model_uri: str,
        run_id: str,
        tags: Mapping[str, str],
        description: str,
    ) -> RegisteredVersion:
        """A new version of `name` (created when missing) from `model_uri`, with tags."""
        mlflow = self._mlflow()
        from mlflow.exceptions import MlflowException

        client = mlflow.MlflowClient()
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        created = client.create_model_version(
            name,
            source=model_uri,
            run_id=run_id,
            tags=dict(tags),
            description=description,
            model_id=model_uri.removeprefix("models:/") if _is_logged_model(model_uri) else None,
        )
        return _registered(created)

    def artifact_uri(self, run_id: str, path: str) -> str:
        client = self._mlflow().MlflowClient()
        return f"{client.get_run(run_id).info.artifact_uri}/{path}"

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        client = self._mlflow().MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)

    def set_version_description(self, name: str, version: str, description: str) -> None:
        """The version page renders it as markdown: links in it are how lineage that has no
        field of its own (the evaluation run) is reached from the version."""
        client = self._mlflow().MlflowClient()
        client.update_model_version(name, version, description=description)


def _is_logged_model(uri: str) -> bool:
    # MLflow 3 logged models are addressed as models:/m-<id>; registry URIs carry a '/'.
    return uri.startswith("models:/m-") and "/" not in uri.removeprefix("models:/")


def _registered(entity: Any) -> RegisteredVersion:
    return RegisteredVersion(
        name=str(entity.name),
        version=str(entity.version),
        status=str(entity.status),
        tags=MappingProxyType({str(k): str(v) for k, v in (entity.tags or {}).items()}),
        run_id=str(entity.run_id) if entity.run_id else None,
        description=str(entity.description or ""),
    )


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:6000]  # MLflow's limit on a param value
