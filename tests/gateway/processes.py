"""Starting and stopping the real processes the gateway tests talk to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from reconciler.child_process import free_port, wait_until_serving
from reconciler.settings import DATABASE_FILE
from reconciler.state_store.database import StateDatabase

ADMIN_TOKEN = "test-admin-token-5f2c"
PROVIDER_KEY = "provider-key-for-tests"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class World:
    root: Path
    tracking_uri: str
    artifact_uri: str
    repo: Path
    state_dir: Path

    @property
    def state_db(self) -> Path:
        """The SQLite state store the gateway keeps its routes and request log in."""
        return self.state_dir / DATABASE_FILE

    @property
    def database(self) -> StateDatabase:
        return StateDatabase(f"sqlite:///{self.state_db}")


@dataclass(frozen=True)
class RunningGateway:
    url: str
    world: World

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def set_routes(self, use_case: str, routes: list[dict[str, object]]) -> int:
        """Write routes through the admin API and wait until the gateway serves them."""
        response = httpx.put(
            f"{self.url}/admin/routes/{use_case}",
            params={"wait": "true"},
            json=routes,
            headers=self.admin(),
            timeout=120,
        )
        assert response.status_code == 200, response.text
        return int(response.json()["written_generation"])


@contextmanager
def gateway_process(
    *,
    repo: Path,
    tracking_uri: str,
    state_dir: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float = 120.0,
) -> Iterator[str]:
    """`reconciler gateway` as its own process, the way an operator starts it; yields its URL.

    Its output goes to `gateway.log` in `state_dir`'s parent, which a failed start shows."""
    with gateway_and_process(
        repo=repo,
        tracking_uri=tracking_uri,
        state_dir=state_dir,
        cwd=cwd,
        env=env,
        args=args,
        timeout=timeout,
    ) as (url, _):
        yield url


@contextmanager
def gateway_and_process(
    *,
    repo: Path,
    tracking_uri: str,
    state_dir: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float = 120.0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`gateway_process`, yielding the process too (a test that kills it)."""
    port = free_port()
    environ = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "RECONCILER_STATE_DIR": str(state_dir),
        "RECONCILER_GATEWAY_TOKEN": ADMIN_TOKEN,
        **(env or {}),
    }
    environ.pop("MLFLOW_REGISTRY_URI", None)
    command = [sys.executable, "-m", "reconciler.cli", "gateway", "--port", str(port)]
    log_path = state_dir.parent / f"gateway-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*command, "--repo", str(repo), *args],
            env=environ,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{url}/healthz", process, timeout=timeout, log=log_path)
            yield url, process
        finally:
            stop_process(process)
