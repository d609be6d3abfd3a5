"""A local stand-in for the paid provider of `story-generation`: a second gateway process.

It has its own MLflow store, state folder and one-use-case desired state (`narrator-large`,
the provider's model id) serving the tiny local model, so the external backend of the main
gateway talks to a real OpenAI-compatible server generating real text. Kept under the state
folder and reused across demo runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.child_process import wait_until_serving
from reconciler.settings import DATABASE_URL_ENV, Settings

PROVIDER_MODEL = "narrator-large"
_USE_CASE = f"""apiVersion: reconciler/v1
kind: UseCase
metadata: {{name: {PROVIDER_MODEL}}}
spec:
  registeredModel: {PROVIDER_MODEL}
  acceptableModels:
    - {{source: local, path: models/tiny-base, revision: tiny-v1, license: apache-2.0}}
  generation: {{temperature: 0.9, maxNewTokens: 48}}
  evaluation: {{prompts: desired_state/prompts.jsonl}}
"""


def _prepare(root: Path, tiny_model: Path) -> tuple[Path, Settings]:
    repo = root / "repo"
    (repo / "desired_state").mkdir(parents=True, exist_ok=True)
    (repo / "desired_state" / "narrator.yaml").write_text(_USE_CASE)
    (repo / "desired_state" / "prompts.jsonl").write_text('{"prompt": "Tell a tale."}\n')
    if not (repo / "models" / "tiny-base").exists():
        shutil.copytree(tiny_model, repo / "models" / "tiny-base")
    settings = Settings.from_environment(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
            "RECONCILER_STATE_DIR": str(root / "state"),
        },
        cwd=root,
    )
    return repo, settings


def _register_and_route(repo: Path, settings: Settings) -> None:
    from reconciler.observe.state import Route
    from reconciler.spec.loader import load_desired_state
    from reconciler.state_store.database import StateDatabase
    from reconciler.traffic.store import TrafficStore, Writer
    from reconciler.training.registration import register_base

    desired = load_desired_state(repo).state
    assert desired is not None, "the provider's desired state is invalid"
    use_case = desired.use_case(PROVIDER_MODEL)
    version = register_base(
        use_case, desired.identities[PROVIDER_MODEL], desired, repo=repo, settings=settings
    )
    store = TrafficStore(StateDatabase.of(settings))
    if [r.version for r in store.read(PROVIDER_MODEL).routes] != [version]:
        store.write(PROVIDER_MODEL, [Route(version, 100)], writer=Writer.RECONCILER)


@contextmanager
def running_provider(root: Path, tiny_model: Path, port: int) -> Iterator[str]:
    """Yields the provider's OpenAI base URL (…/v1) while its gateway process runs."""
    repo, settings = _prepare(root, tiny_model)
    _register_and_route(repo, settings)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "RECONCILER_STATE_DIR": str(settings.state_dir),
    }
    # The provider is a service of its own: its routes are in its state folder's store, never
    # in the shared one the demo may be pointed at.
    env.pop(DATABASE_URL_ENV, None)
    log = (root / "provider.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler.cli",
            "gateway",
            "--port",
            str(port),
            "--repo",
            str(repo),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/healthz", process, timeout=120, log=root / "provider.log")
        yield f"{url}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
