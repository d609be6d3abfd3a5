"""Content keys that identify what the desired state asks for.

A model version is matched to the desired state by key, never by number: the reconciler tags
every version it creates with its key, so a re-run finds the version it already made instead
of training again (idempotency), and a changed input (base revision, training settings, data
content) yields a new key and therefore a new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.digest import digest_of
from reconciler.spec.model import Constraints, Training, TrainingMethod, UseCase


@dataclass(frozen=True)
class UseCaseIdentity:
    """The keys of one use case's desired target.

    - `base_key`: the preferred acceptable model (source, id or path, revision);
    - `target_key`: the version that should serve: `base_key` when nothing is trained, else
      the digest of base + training settings + dataset contents;
    - `digest`: everything the use case asks of its models (spec, dataset contents, guardrail
      policies); evaluations and rejections are recorded against it. Not in it: the sync
      policy and the metadata's owners, labels and description, which say how and by whom
      the use case is run - flipping `automated` must not re-open a rejected candidate or
      throw away an evaluation. Nor are `discovery` (how to look for upgrades) and `rejected`
      (what the planner must not retry, checked by key on its own).
    """

    base_key: str
    target_key: str
    digest: str

    @property
    def trains(self) -> bool:
        return self.target_key != self.base_key


def base_model_descriptor(use_case: UseCase) -> dict[str, Any]:
    model = use_case.spec.preferred_model
    descriptor: dict[str, Any] = {"source": model.source.value, "reference": model.reference}
    revision = getattr(model, "revision", None)
    if revision is not None:
        descriptor["revision"] = revision
    return descriptor


def identify(
    use_case: UseCase,
    dataset_digests: dict[str, str],
    policy_documents: list[dict[str, Any]],
) -> UseCaseIdentity:
    spec = use_case.spec
    base_key = digest_of(base_model_descriptor(use_case))
    target_key = base_key
    if spec.training.method is not TrainingMethod.NONE:
        data = spec.training.data
        target_key = digest_of(
            {
                "base": base_key,
                "method": spec.training.method.value,
                "lora": spec.training.lora_settings.model_dump(mode="json")
                if spec.training.method is TrainingMethod.LORA
                else None,
                "hyperparameters": spec.training.hyperparameters.model_dump(mode="json"),
                "systemPrompt": spec.generation.system_prompt,
                "initial": dataset_digests.get(data.initial) if data.initial else None,
                "historicalLogs": data.historical_logs.model_dump(mode="json")
                if data.historical_logs
                else None,
            }
        )
    digest = digest_of(
        {
            "name": use_case.name,
            "spec": _digested_spec(use_case),
            "datasets": dataset_digests,
            "policies": policy_documents,
        }
    )
    return UseCaseIdentity(base_key=base_key, target_key=target_key, digest=digest)


# Not what is asked of the models: how the use case is run, searched and what it refused.
_NOT_DIGESTED = {"sync_policy", "discovery", "rejected"}


def _digested_spec(use_case: UseCase) -> dict[str, Any]:
    spec: dict[str, Any] = use_case.spec.model_dump(
        mode="json", by_alias=True, exclude=_NOT_DIGESTED
    )
    # Constraints added after v1 count only when set, so upgrading the reconciler keeps every
    # digest - and with it every evaluation and rejection recorded against it.
    constraints = spec["constraints"]
    for name in Constraints.LATER_FIELDS:
        if constraints.get(name) is None:
            constraints.pop(name, None)
    # Moving a job to a bigger machine must not throw away its evaluation.
    for name in Training.NOT_DIGESTED:
        spec["training"].pop(name, None)
    return spec
