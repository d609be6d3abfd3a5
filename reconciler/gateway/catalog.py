"""The use cases the gateway serves and how each one generates, taken from the desired state.

The gateway reads the desired state once at start: the use-case names it answers to, the
registered model behind each, the generation settings (system prompt, sampling) and the
provider settings of external models. A profile is plain data so tests and other callers can
build one without YAML.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.spec.loader import DesiredState
    from reconciler.spec.model import UseCase


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()

    def overridden(
        self,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_new_tokens: int | None = None,
        stop: Iterable[str] = (),
    ) -> SamplingSettings:
        """The request's own values where given; the use case caps the output length."""
        return replace(
            self,
            temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p if top_p is None else top_p,
            max_new_tokens=self.max_new_tokens
            if max_new_tokens is None
            else min(max_new_tokens, self.max_new_tokens),
            stop=tuple(dict.fromkeys((*self.stop, *stop))),
        )


@dataclass(frozen=True)
class ProviderSettings:
    """Where an external OpenAI-compatible model is served; names env vars, never secrets."""

    model_id: str
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None


@dataclass(frozen=True)
class UseCaseProfile:
    name: str
    registered_model: str
    system_prompt: str = ""
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    providers: tuple[ProviderSettings, ...] = ()

    def provider_for(self, model_id: str | None) -> ProviderSettings | None:
        """The provider of `model_id` when the spec lists it, else the preferred provider."""
        for provider in self.providers:
            if provider.model_id == model_id:
                return provider
        return self.providers[0] if self.providers else None


@dataclass(frozen=True)
class UseCaseCatalog:
    profiles: Mapping[str, UseCaseProfile] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, profiles: Iterable[UseCaseProfile]) -> UseCaseCatalog:
        return cls(MappingProxyType({p.name: p for p in profiles}))

    def get(self, name: str) -> UseCaseProfile | None:
        return self.profiles.get(name)

    def profile(self, name: str) -> UseCaseProfile:
        """The profile of `name`; a use case only in the route table gets defaults."""
        return self.profiles.get(name) or UseCaseProfile(name=name, registered_model=name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.profiles))


def profile_of(use_case: UseCase) -> UseCaseProfile:
    from reconciler.spec.model import OpenAICompatibleModel

    generation = use_case.spec.generation
    # Every openai-compatible entry is kept: an external version tagged with a model id is
    # served by that entry's provider, an untagged one by the first (the preferred) entry.
    providers = tuple(
        ProviderSettings(
            model_id=model.id,
            base_url=model.base_url,
            base_url_env=model.base_url_env,
            api_key_env=model.api_key_env,
        )
        for model in use_case.spec.acceptable_models
        if isinstance(model, OpenAICompatibleModel)
    )
    return UseCaseProfile(
        name=use_case.name,
        registered_model=use_case.spec.registered_model,
        system_prompt=generation.system_prompt,
        sampling=SamplingSettings(
            temperature=generation.temperature,
            top_p=generation.top_p,
            max_new_tokens=generation.max_new_tokens,
            stop=tuple(generation.stop),
        ),
        providers=providers,
    )


def load_valid_state(repo: Path) -> DesiredState:
    """The desired state in `repo`; an invalid desired state is refused."""
    from reconciler.spec.loader import load_desired_state

    result = load_desired_state(repo)
    if result.state is None:
        first = result.diagnostics[0].render() if result.diagnostics else "unknown problem"
        raise ReconcilerError(
            f"the desired state in {repo} is invalid ({len(result.diagnostics)} problem(s); "
            f"first: {first}); run `reconciler validate --repo {repo}`"
        )
    return result.state


def catalog_of(state: DesiredState) -> UseCaseCatalog:
    return UseCaseCatalog.of(profile_of(use_case) for use_case in state.use_cases)


def load_catalog(repo: Path) -> UseCaseCatalog:
    """The catalog of the desired state in `repo`; an invalid desired state is refused."""
    return catalog_of(load_valid_state(repo))
