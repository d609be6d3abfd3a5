"""Start and stop a real `mlflow server` on 127.0.0.1 (tests and benchmarks share it).

Its backend store is a fresh sqlite file by default, or the PostgreSQL database given (as a
production tracking server's is), with its artifacts in a folder of their own either way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.child_process import free_port, wait_until_serving


@contextmanager
def mlflow_server(
    root: Path, *, backend_store_uri: str | None = None, timeout: float = 180.0
) -> Iterator[str]:
    """A tracking server over `backend_store_uri` (default: a fresh sqlite store under
    `root`), artifacts under `root`; yields its URL. A `postgresql://` URI is served through
    psycopg 3, the driver the reconciler itself uses. `timeout` covers MLflow migrating an
    empty store on a busy machine; a server that is up is found as soon as it answers."""
    root.mkdir(parents=True, exist_ok=True)
    backend = backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
    if backend.startswith("postgresql://"):
        backend = "postgresql+psycopg://" + backend.removeprefix("postgresql://")
    port = free_port()
    log = (root / "server.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend,
        "--default-artifact-root",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        # uvicorn's default h11 parser answers keep-alive requests ~40 ms late (delayed ACK);
        # httptools does not. MLflow's client keeps connections alive, so this decides
        # whether observing 200 models takes 1 s or 5 s.
        "--uvicorn-opts",
        "--http httptools",
    ]
    # Job execution (scorers, trace rollups) is not used here, and its start-up imports
    # optional GenAI packages that may try to reach the internet; keep the server lean.
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
        },
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    # Run in the server's own folder: anything MLflow writes beside itself stays there.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/health", process, timeout=timeout, log=root / "server.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
