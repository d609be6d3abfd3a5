"""The lineage tags every version the reconciler registers carries, and its logging settings."""

from __future__ import annotations

from importlib.metadata import version as installed_version
from typing import Any

from reconciler import lineage
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import Generation, UseCase

TRAINING_RUN = "reconciler.training.run_id"


def dataset_digest_tag(name: str) -> str:
    return f"reconciler.dataset.{name}.digest"


def base_tags(
    use_case: UseCase, identity: UseCaseIdentity, desired: DesiredState
) -> dict[str, str]:
    model = use_case.spec.preferred_model
    return {
        lineage.BASE_KEY: identity.base_key,
        lineage.BASE_MODEL: model.reference,
        lineage.BASE_REVISION: str(getattr(model, "revision", None) or ""),
        lineage.USE_CASE: use_case.name,
        lineage.DESIRED_COMMIT: desired.source.commit or "",
    }


def inference_params(generation: Generation) -> dict[str, Any]:
    """The use case's generation settings, as signature params of the logged model."""
    return {
        "max_new_tokens": generation.max_new_tokens,
        "temperature": generation.temperature,
        "top_p": generation.top_p,
        "do_sample": generation.temperature > 0,
    }


def pip_requirements() -> list[str]:
    # Explicit pins: MLflow's inference of requirements starts a subprocess per model.
    return [
        f"{name}=={installed_version(name)}"
        for name in ("mlflow", "transformers", "torch", "tokenizers", "safetensors")
    ]
