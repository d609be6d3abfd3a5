"""A candidate as an acceptable-model entry, and the use case it would make.

The entry is what `propose` writes into the desired state, so it is built from untrusted text
and validated with the very model the loader uses before anything is written: an id that is
not a Hub id, a revision that is not a commit sha, a license that is missing - each makes the
candidate unproposable, with the reason, instead of a broken YAML file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reconciler.discovery.candidate import Candidate, SourceKind
from reconciler.spec.identity import UseCaseIdentity, identify
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import (
    AcceptableModel,
    HuggingFaceModel,
    LocalModel,
    OpenAICompatibleModel,
    UseCase,
)
from reconciler.spec.validation import dataset_paths

Entry = dict[str, str | int | float | bool | None]
_ACCEPTABLE: TypeAdapter[Any] = TypeAdapter(AcceptableModel)


def entry_for(candidate: Candidate) -> tuple[Entry | None, str | None]:
    """(the YAML entry in camelCase, None) or (None, why it cannot be written)."""
    if not candidate.license:
        return None, "license unknown: an acceptable model must name its license"
    entry: Entry
    parameters = candidate.parameters
    if candidate.source is SourceKind.HUGGINGFACE:
        entry = {"source": "huggingface", "id": candidate.id, "revision": candidate.revision}
    elif candidate.source is SourceKind.LOCAL:
        entry = {"source": "local", "path": candidate.path or candidate.id}
        if candidate.revision:
            entry["revision"] = candidate.revision
    else:
        entry = {"source": "openai-compatible", "id": candidate.id}
        if candidate.base_url:
            entry["baseUrl"] = candidate.base_url
        if candidate.base_url_env:
            entry["baseUrlEnv"] = candidate.base_url_env
        if candidate.api_key_env:
            entry["apiKeyEnv"] = candidate.api_key_env
    entry["license"] = candidate.license
    if parameters is not None:
        entry["parameters"] = parameters
    try:
        _ACCEPTABLE.validate_python(entry)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'entry'}: {e['msg']}" for e in exc.errors()
        )
        return None, f"cannot be written as an acceptable model ({problems[:300]})"
    return entry, None


def model_from_entry(
    entry: Mapping[str, Any],
) -> HuggingFaceModel | LocalModel | OpenAICompatibleModel:
    model: HuggingFaceModel | LocalModel | OpenAICompatibleModel = _ACCEPTABLE.validate_python(
        dict(entry)
    )
    return model


def with_preferred(use_case: UseCase, entry: Mapping[str, Any]) -> UseCase:
    """The use case as it would be with `entry` as its first acceptable model."""
    model = model_from_entry(entry)
    spec = use_case.spec.model_copy(
        update={"acceptable_models": [model, *use_case.spec.acceptable_models]}
    )
    return use_case.model_copy(update={"spec": spec})


def identity_of(use_case: UseCase, desired: DesiredState) -> UseCaseIdentity:
    """The keys `use_case` would have in `desired` (same datasets and policies)."""
    policies = {p.name: p.model_dump(mode="json", by_alias=True) for p in desired.policies}
    return identify(
        use_case,
        {path: desired.dataset_digests[path] for path in dataset_paths(use_case)},
        [policies[name] for name in use_case.spec.guardrails],
    )


def same_model(candidate: Candidate, use_case: UseCase) -> bool:
    """Whether `candidate` is the use case's current desired base."""
    preferred = use_case.spec.preferred_model
    revision = getattr(preferred, "revision", None)
    if candidate.source is SourceKind.OLLAMA:
        return isinstance(preferred, OpenAICompatibleModel) and preferred.id == candidate.id
    if candidate.source.value != preferred.source.value:
        return False
    if preferred.reference != (candidate.path or candidate.id):
        return False
    return candidate.source is SourceKind.OPENAI_COMPATIBLE or revision == candidate.revision
