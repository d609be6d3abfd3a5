"""Registering the preferred acceptable model as the use case's base version.

Idempotent on the base key: when a READY version tagged with it exists, it is returned and
nothing is logged. Weights (local folder or Hugging Face snapshot) are logged with
`mlflow.transformers.log_model`; an external OpenAI-compatible model becomes a version whose
artifact is a small JSON naming the provider and the environment variables to reach it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from reconciler import lineage
from reconciler.registry.version_files import locate_model_folders
from reconciler.settings import Settings
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import OpenAICompatibleModel, UseCase
from reconciler.tracking.mlflow_tracking import Tracking
from reconciler.training.base_models import (
    PROVIDER_FILE,
    preferred_model_folder,
    provider_description,
)
from reconciler.training.lineage_tags import base_tags, inference_params, pip_requirements

ROLE_BASE = "base"
ROLE_EXTERNAL = "external"
PROVIDER_ARTIFACT = "provider"


def register_base(
    use_case: UseCase,
    identity: UseCaseIdentity,
    desired: DesiredState,
    *,
    repo: Path,
    settings: Settings,
    tracking: Tracking | None = None,
) -> str:
    """The number of the version holding the preferred model, registering it when missing."""
    tracking = tracking or Tracking(settings)
    name = use_case.spec.registered_model
    existing = tracking.find_version(name, {lineage.KEY: identity.base_key})
    if existing is not None:
        return existing.version
    model = use_case.spec.preferred_model
    external = isinstance(model, OpenAICompatibleModel)
    tags = {
        lineage.KEY: identity.base_key,
        lineage.ROLE: ROLE_EXTERNAL if external else ROLE_BASE,
        **base_tags(use_case, identity, desired),
    }
    with tracking.run(use_case.name, f"register-base-{model.source.value}", tags=tags) as run:
        run.log_params(
            {
                "source": model.source.value,
                "reference": model.reference,
                **inference_params(use_case.spec.generation),
            }
        )
        if isinstance(model, OpenAICompatibleModel):
            with tempfile.TemporaryDirectory() as scratch:
                folder = Path(scratch)
                (folder / PROVIDER_FILE).write_text(
                    json.dumps(provider_description(model), indent=2, sort_keys=True)
                )
                run.log_folder(folder, PROVIDER_ARTIFACT)
            model_uri = tracking.artifact_uri(run.run_id, PROVIDER_ARTIFACT)
            description = f"{model.id} served by an external OpenAI-compatible provider."
        else:
            from reconciler.model_loading import load_causal_lm

            folders = locate_model_folders(preferred_model_folder(model, repo=repo))
            weights, tokenizer = load_causal_lm(folders.weights, folders.tokenizer)
            model_uri = run.log_transformers_model(
                weights,
                tokenizer,
                inference_params=inference_params(use_case.spec.generation),
                pip_requirements=pip_requirements(),
            )
            description = f"Base model {model.reference} for use case {use_case.name}."
        registered = tracking.register(
            name, model_uri=model_uri, run_id=run.run_id, tags=tags, description=description
        )
    return registered.version
