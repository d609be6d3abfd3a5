"""How one gateway process is set up: addresses, files, limits; all fixed at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.settings import DATABASE_FILE, MODEL_CACHE_DIR, Settings

TOKEN_ENV = "RECONCILER_GATEWAY_TOKEN"


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8700
    repo: Path | None = None
    state_dir: Path = Path(".reconciler")
    # The state store (route table, request log, violations); empty: `state.db` in state_dir.
    # Replicas on one PostgreSQL store serve the same routes and share one request log.
    database_url: str = field(default="", repr=False)
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    registry_uri: str | None = None
    max_loaded_models: int = 4
    retention_days: float = 30.0
    route_poll_seconds: float = 0.5
    max_body_bytes: int = 1_000_000
    # A route table is a few versions; nothing an operator sends is near this.
    max_admin_body_bytes: int = 64_000
    max_prompt_chars: int = 32_000
    max_new_tokens_limit: int = 4096
    upstream_timeout_seconds: float = 60.0
    upstream_retries: int = 2
    max_shadow_in_flight: int = 64
    # Records waiting for the request-log writer before new ones are dropped (and counted);
    # and how long it may spend in one batch before /healthz calls it stuck.
    request_log_queue_limit: int = 100_000
    request_log_stall_seconds: float = 60.0
    # The token never appears in repr() or logs.
    admin_token: str | None = field(default=None, repr=False)

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / DATABASE_FILE}"

    @property
    def model_cache_dir(self) -> Path:
        return self.state_dir / MODEL_CACHE_DIR

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: object,
    ) -> GatewayConfig:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "state_dir": settings.state_dir,
            "database_url": settings.database,
            "tracking_uri": settings.tracking_uri,
            "registry_uri": settings.registry_uri,
            "admin_token": env.get(TOKEN_ENV) or None,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
