"""Where things are: MLflow tracking URI, artifact root, and the local state folder.

Defaults run on one machine with nothing to set up: an embedded MLflow store under
``mlruns/`` (sqlite + artifacts folder; MLflow 3's plain file store is deprecated) and the
state folder ``.reconciler/``. ``MLFLOW_TRACKING_URI`` points at a real tracking server
instead (which then decides where artifacts go), or at another sqlite file, whose artifacts
are kept in an ``artifacts`` folder beside it; ``RECONCILER_STATE_DIR`` moves the state folder.

Training and evaluation run in this process by default; ``RECONCILER_JOBS=ray`` submits them
to the Ray cluster at ``RAY_ADDRESS`` (Ray's own variable; unset, a local Ray is started), each
bounded by ``RECONCILER_JOB_TIMEOUT``.

``RECONCILER_DATABASE_URL`` says where the live state is (route table, request log, journal,
locks, violations): by default ``sqlite:///`` ``state.db`` in the state folder, one host's;
``postgresql://…`` for a store that gateway replicas and reconcilers on several hosts share.
It may carry a password, so it is never part of a repr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

STATE_DIR_ENV = "RECONCILER_STATE_DIR"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
REGISTRY_URI_ENV = "MLFLOW_REGISTRY_URI"
# A running gateway to read the route table from, where the state folder is not at hand.
GATEWAY_URL_ENV = "RECONCILER_GATEWAY_URL"
GATEWAY_TOKEN_ENV = "RECONCILER_GATEWAY_TOKEN"
DATABASE_URL_ENV = "RECONCILER_DATABASE_URL"
DATABASE_FILE = "state.db"
# Registered versions' files, shared by the gateway, training and evaluation.
MODEL_CACHE_DIR = "model-cache"
# Where training and evaluation jobs run: `local` (this process) or `ray`.
JOBS_ENV = "RECONCILER_JOBS"
RAY_ADDRESS_ENV = "RAY_ADDRESS"
# How long one job may take, queueing included, before it is cancelled as failed.
JOB_TIMEOUT_ENV = "RECONCILER_JOB_TIMEOUT"
DEFAULT_JOB_TIMEOUT = "6h"


@dataclass(frozen=True)
class Settings:
    tracking_uri: str
    registry_uri: str
    artifact_root: Path
    state_dir: Path
    gateway_url: str | None = None
    gateway_token: str | None = field(default=None, repr=False)
    jobs: str = "local"
    ray_address: str | None = None
    job_timeout: str = DEFAULT_JOB_TIMEOUT
    # Empty: the default, `state.db` in the state folder (see `database`).
    database_url: str = field(default="", repr=False)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        base = (cwd or Path.cwd()).resolve()
        mlruns = base / "mlruns"
        tracking = env.get(TRACKING_URI_ENV) or f"sqlite:///{mlruns / 'mlflow.db'}"
        registry = env.get(REGISTRY_URI_ENV) or tracking
        state = Path(env.get(STATE_DIR_ENV) or base / ".reconciler")
        return cls(
            database_url=env.get(DATABASE_URL_ENV) or "",
            tracking_uri=tracking,
            registry_uri=registry,
            artifact_root=_artifact_root(tracking, base) or mlruns / "artifacts",
            state_dir=state if state.is_absolute() else base / state,
            gateway_url=env.get(GATEWAY_URL_ENV) or None,
            gateway_token=env.get(GATEWAY_TOKEN_ENV) or None,
            jobs=(env.get(JOBS_ENV) or "local").strip().lower(),
            ray_address=env.get(RAY_ADDRESS_ENV) or None,
            job_timeout=env.get(JOB_TIMEOUT_ENV) or DEFAULT_JOB_TIMEOUT,
        )

    @property
    def database(self) -> str:
        """The state store's URL: the setting, or SQLite in the state folder."""
        return self.database_url or f"sqlite:///{self.state_dir / DATABASE_FILE}"

    @property
    def model_cache_dir(self) -> Path:
        return self.state_dir / MODEL_CACHE_DIR


def _artifact_root(tracking_uri: str, base: Path) -> Path | None:
    """`artifacts/` beside a sqlite store's file, so each store keeps its own artifacts."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return (database if database.is_absolute() else base / database).parent / "artifacts"


def redact_uri(uri: str) -> str:
    """A URI fit to print: user and password, and secret query values, replaced by ***."""
    from reconciler.redaction import redact_uri as redacted

    return redacted(uri)
