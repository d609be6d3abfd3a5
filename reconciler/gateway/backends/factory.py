"""Which backend class serves a described target, built with the gateway's settings."""

from __future__ import annotations

from functools import partial

from reconciler.gateway.backends.artifacts import fetch_model_folders
from reconciler.gateway.backends.base import Backend
from reconciler.gateway.backends.external import ExternalBackend
from reconciler.gateway.backends.self_hosted import SelfHostedBackend
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.targets import TargetDescription, TargetKind


def backend_for(description: TargetDescription, config: GatewayConfig) -> Backend:
    """A backend for `description`, not yet started."""
    if description.kind is TargetKind.EXTERNAL:
        return ExternalBackend(
            description,
            timeout_seconds=config.upstream_timeout_seconds,
            retries=config.upstream_retries,
        )
    fetch = partial(
        fetch_model_folders,
        registered_model=description.registered_model,
        version=description.target.version,
        cache_dir=config.model_cache_dir,
        tracking_uri=config.tracking_uri,
        registry_uri=config.registry_uri,
    )
    return SelfHostedBackend(description, fetch)
