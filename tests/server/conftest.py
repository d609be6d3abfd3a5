"""`reconciler serve` in this process, on a free port, over the apply tests' world: MLflow
(sqlite) with npc-dialogue's champion 2 (previous 1) and evaluated candidate 3, the route
table, the journal. The server is the real one - controller jobs, FastAPI on uvicorn, the
notification dispatcher - started by `run_serve` on a thread and stopped as SIGTERM would.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import lineage
from reconciler.apply.context import ApplyContext
from reconciler.apply.journal import Journal
from reconciler.child_process import free_port
from reconciler.controller import ControllerSettings
from reconciler.server.serve import ServeOptions, run_serve
from reconciler.state_store.database import StateDatabase
from tests.apply.conftest import world
from tests.apply.world import USE_CASE, World

__all__ = ["world"]  # the apply tests' fixture, shared

TOKEN = "api-token-for-tests-0123456789"
NPC_SPEC = "desired_state/npc-dialogue.yaml"


@dataclass
class ControlPlane:
    url: str
    state_dir: Path
    env: dict[str, str]
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=120))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self.url + path, **kwargs)

    def post(self, path: str, token: str | None = TOKEN, **kwargs: Any) -> httpx.Response:
        """POST with `Authorization: Bearer <token>`; a token with a space in it is the whole
        header value (another scheme); None sends no header."""
        if token is None:
            headers = {}
        elif " " in token:
            headers = {"Authorization": token}
        else:
            headers = {"Authorization": f"Bearer {token}"}
        return self.client.post(self.url + path, headers=headers, **kwargs)

    @property
    def journal(self) -> Journal:
        return Journal(state_database(self.env))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
        wait_for(condition, what, timeout)


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 300, every: float = 0.1
) -> None:
    """Return once `condition` holds, looking `every` seconds; fail after `timeout` seconds
    (a bound, not a pace)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(every)


def webhook_document(
    url: str, *, events: list[str] | None = None, secret_env: str | None = None
) -> str:
    """A `kind: Notifications` document with one webhook, `ops`."""
    fields = [f'name: ops, url: "{url}"']
    if secret_env:
        fields.append(f"secretEnv: {secret_env}")
    if events:
        fields.append(f"events: [{', '.join(events)}]")
    return (
        "apiVersion: reconciler/v1\nkind: Notifications\nmetadata: {name: operators}\n"
        f"spec:\n  webhooks:\n    - {{{', '.join(fields)}}}\n"
    )


def automated(repo: Path, on: bool) -> None:
    """npc-dialogue's syncPolicy.automated, as committed in the scratch repository."""
    path = repo / NPC_SPEC
    text = path.read_text()
    old, new = (
        ("automated: false", "automated: true") if on else ("automated: true", "automated: false")
    )
    path.write_text(text.replace(old, new))


@pytest.fixture
def served_world(world: World) -> World:
    """The world with `previous` 1 set (a rollback target) and only what needs no training."""
    (world.repo / "desired_state" / "faction-decision.yaml").unlink()
    client = world.registry.client
    client.set_registered_model_alias(USE_CASE, "previous", "1")
    client.set_registered_model_tag(
        USE_CASE, lineage.APPLIED_ALIASES, json.dumps({"champion": "2", "previous": "1"})
    )
    return world


def environment(tracking_uri: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """What `serve` is started with: a scratch MLflow store and state folder, the API token."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "RECONCILER_STATE_DIR": str(state_dir),
        "RECONCILER_API_TOKEN": TOKEN,
        **extra,
    }


def world_environment(world: World, **extra: str) -> dict[str, str]:
    """`serve` on the world's own state store (SQLite in its folder, or PostgreSQL)."""
    return environment(
        world.tracking_uri,
        world.state_dir,
        RECONCILER_DATABASE_URL=world.database_url,
        **extra,
    )


def state_database(env: dict[str, str]) -> StateDatabase:
    """The state store `serve` runs on with `env`: the named one, else `state.db`."""
    url = env.get("RECONCILER_DATABASE_URL")
    return StateDatabase(url or f"sqlite:///{Path(env['RECONCILER_STATE_DIR']) / 'state.db'}")


@contextmanager
def serving(
    repo: Path,
    env: dict[str, str],
    *,
    ref: str | None = None,
    fetch: bool = False,
    interval: float = 3600,
    adapt_context: Callable[[ApplyContext], ApplyContext] | None = None,
) -> Iterator[ControlPlane]:
    port = free_port()
    options = ServeOptions(
        host="127.0.0.1",
        port=port,
        controller=ControllerSettings(
            repo=repo,
            ref=ref,
            fetch=fetch,
            interval_seconds=interval,
            watch_interval_seconds=3600,
            watch_window_seconds=3600,
            critical_rate_limit=0.01,
            min_outputs=20,
            parallelism=2,
        ),
    )
    stop = threading.Event()
    exit_codes: list[int] = []

    def run() -> None:
        exit_codes.append(
            run_serve(
                options,
                environ=env,
                stop=stop,
                adapt_context=adapt_context,
                configure_logs=False,
            )
        )

    thread = threading.Thread(target=run, name="serve", daemon=True)
    thread.start()
    plane = ControlPlane(f"http://127.0.0.1:{port}", Path(env["RECONCILER_STATE_DIR"]), env)
    try:
        plane.wait_for(lambda: _answers(plane) or not thread.is_alive(), "the server to start")
        assert thread.is_alive(), f"serve exited with {exit_codes}"
        yield plane
    finally:
        stop.set()
        thread.join(120)
        plane.client.close()
    assert exit_codes == [0], _stacks()


def _stacks() -> str:
    """Every thread's stack: what a server that did not stop was waiting on."""
    import sys
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(
        f"--- {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
        for ident, frame in sys._current_frames().items()
    )


def _answers(plane: ControlPlane) -> bool:
    try:
        return plane.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False
