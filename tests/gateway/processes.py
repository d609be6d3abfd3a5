"""Starting and stopping the real processes the gateway tests talk to."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

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
    def request_log(self) -> Path:
        return self.state_dir / "requests.db"


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
