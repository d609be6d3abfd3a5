"""The lineage tags every version the reconciler registers carries, and its logging settings."""

from __future__ import annotations

from importlib.metadata import version as installed_version
from typing import Any

from reconciler import lineage
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import Generation, UseCase

TRAINING_RUN = "reconciler.training.run_id"
# The use-case copy's name, `<base>-<use case>` (e.g. tiny-base-npc-dialogue): the registered
# model is named after the use case, so the copy's own name travels as a tag.
MODEL_NAME = "reconciler.model_name"


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


def use_case_model_name(use_case: UseCase) -> str:
    """`<base>-<use case>`: the last path part of the base's reference, then the use case."""
    base = use_case.spec.preferred_model.reference.rstrip("/").split("/")[-1]
    return f"{base}-{use_case.name}"


def public_version(version: str) -> str:
    """The version without its PEP 440 local label: `2.13.0+cpu` -> `2.13.0`.

    A local label names a build of one index (PyTorch's CPU wheels); PyPI never serves it, so a
    pin carrying it cannot be installed where the model is served.
    """
    return version.split("+", 1)[0]


def pip_requirements() -> list[str]:
    # Explicit pins: MLflow's inference of requirements starts a subprocess per model.
    return [
        f"{name}=={public_version(installed_version(name))}"
        for name in ("mlflow", "transformers", "torch", "tokenizers", "safetensors")
    ]
