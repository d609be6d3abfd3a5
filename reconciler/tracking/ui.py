"""The MLflow UI over the store the reconciler writes to: where lineage is seen.

`reconciler ui` (and `make ui`) serve the same store every other command uses — the embedded
`sqlite:///mlruns/mlflow.db` with artifacts in `mlruns/artifacts`, or the sqlite file
`MLFLOW_TRACKING_URI` names — with a real `mlflow server`, so registered models show their
aliases and lineage tags, and runs their metrics and dataset inputs. A tracking server already
serves its own UI; nothing is started for one.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.errors import ReconcilerError
from reconciler.settings import Settings, redact_uri

DEFAULT_PORT = 5000
# The server's job runner (scorers, trace rollups) is not used by the reconciler, and its
# start-up imports optional GenAI packages that may try to reach the internet.
SERVER_ENVIRONMENT: Mapping[str, str] = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class RemoteStoreError(ReconcilerError):
    """The store is a tracking server: it serves the UI itself."""


@dataclass(frozen=True)
class UiServer:
    """The `mlflow server` command line for one store, and where it will answer."""

    argv: tuple[str, ...]
    url: str


def ui_server(settings: Settings, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> UiServer:
    """How to serve the UI over `settings`' store; RemoteStoreError for a tracking server."""
    uri = settings.tracking_uri
    if not uri.startswith("sqlite:"):
        raise RemoteStoreError(f"{redact_uri(uri)} is a tracking server: open its own UI")
    argv = (
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        # Experiments the reconciler creates name their own artifact folder; this is where
        # the others' go, so that nothing lands in the working directory.
        "--default-artifact-root",
        settings.artifact_root.resolve().as_uri(),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "2",
    )
    return UiServer(argv=argv, url=f"http://{host}:{port}")
