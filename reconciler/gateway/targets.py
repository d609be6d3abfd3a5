"""What a route target is, and how the gateway learns which backend serves it.

A route names a model version of the use case's registered model. The version's MLflow tag
`reconciler.role` says whether it is an external provider model (`external`) or weights to
load (anything else). The resolver is the one place that asks the registry; it is an
interface so a gateway can also be given targets some other way.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from reconciler import lineage
from reconciler.errors import ReconcilerError
from reconciler.gateway.catalog import ProviderSettings, UseCaseCatalog
from reconciler.settings import redact_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXTERNAL_ROLE = "external"


class TargetError(ReconcilerError):
    """A route target cannot be served: unknown version, missing provider settings."""


@dataclass(frozen=True, order=True)
class Target:
    use_case: str
    version: str

    def __str__(self) -> str:
        return f"{self.use_case}@{self.version}"


class TargetKind(enum.StrEnum):
    SELF_HOSTED = "self-hosted"
    EXTERNAL = "external"


@dataclass(frozen=True)
class TargetDescription:
    target: Target
    kind: TargetKind
    registered_model: str
    model_uri: str
    provider: ProviderSettings | None = None


class TargetResolver(Protocol):
    def describe(self, target: Target) -> TargetDescription:
        """How `target` is served; raises TargetError when it cannot be. Blocking I/O."""
        ...


class RegistryTargetResolver:
    """Describes targets from their MLflow model versions (one lookup per target)."""

    def __init__(
        self, catalog: UseCaseCatalog, tracking_uri: str, registry_uri: str | None = None
    ) -> None:
        self.catalog = catalog
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            logging.getLogger("alembic").setLevel(logging.WARNING)
            from mlflow import MlflowClient

            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
            )
        return self._client

    def describe(self, target: Target) -> TargetDescription:
        from mlflow.exceptions import MlflowException

        profile = self.catalog.profile(target.use_case)
        name = profile.registered_model
        try:
            version = self.client.get_model_version(name, target.version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise TargetError(
                    f"version {target.version} of registered model {name!r} does not exist"
                ) from exc
            raise TargetError(
                f"cannot read version {target.version} of {name!r} from the registry at "
                f"{redact_uri(self.registry_uri)}: {str(exc).splitlines()[0]}"
            ) from exc
        tags = dict(version.tags or {})
        model_uri = f"models:/{name}/{target.version}"
        if tags.get(lineage.ROLE) != EXTERNAL_ROLE:
            return TargetDescription(target, TargetKind.SELF_HOSTED, name, model_uri)
        tagged_model = tags.get(lineage.BASE_MODEL)
        provider = profile.provider_for(tagged_model)
        if provider is None:
            raise TargetError(
                f"{target} is an external model but use case {target.use_case!r} lists no "
                "openai-compatible acceptable model to take the provider settings from"
            )
        if tagged_model and provider.model_id != tagged_model:
            # A version made for a model the spec no longer lists is still served as made.
            provider = replace(provider, model_id=tagged_model)
        return TargetDescription(target, TargetKind.EXTERNAL, name, model_uri, provider)
