"""`reconciler rollback` is break-glass too: it acts at once, is recorded in history, and the
desired state's webhooks hear the same `break-glass` event the API's rollback sends, signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys

from reconciler.apply.journal import Cause, Journal
from reconciler.notifications.signing import SIGNATURE_HEADER
from reconciler.observe.state import Route
from reconciler.state_store.database import StateDatabase
from tests.apply.world import USE_CASE, World
from tests.server.conftest import webhook_document, world_environment
from tests.stand_ins.receiver import serve_receiver

SECRET = "whsec-cli-break-glass-0123456789"


def _rollback(world: World, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reconciler.cli", "rollback", USE_CASE]
    return subprocess.run(
        [*command, "--repo", str(world.repo), *extra],
        check=False,
        env=env | {"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_rollback_from_the_command_line_tells_the_webhooks_signed(served_world: World) -> None:
    with serve_receiver() as receiver:
        (served_world.repo / "desired_state" / "notifications.yaml").write_text(
            webhook_document(receiver.url, events=["break-glass"], secret_env="OPS_WEBHOOK_SECRET")
        )
        env = world_environment(served_world, OPS_WEBHOOK_SECRET=SECRET)

        done = _rollback(served_world, env)

        assert done.returncode == 0, done.stderr[-2000:]
        assert served_world.aliases() == {"champion": "1"}
        assert served_world.traffic.read(USE_CASE).routes == (Route("1", 100),)
        database = StateDatabase(served_world.database_url)
        try:
            [change] = Journal(database).history(USE_CASE)
        finally:
            database.dispose()
        assert (change.version, change.previous, change.cause) == ("1", "2", Cause.MANUAL)
        assert change.detail.startswith(
            "break-glass rollback from the command line; the desired state in git must catch up"
        )
        # The process flushed its deliveries before it exited.
        [delivery] = receiver.deliveries
        expected = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
        assert delivery.headers[SIGNATURE_HEADER.lower()] == expected
        told = json.loads(delivery.body)
        assert (told["event"], told["use_case"]) == ("break-glass", USE_CASE)
        assert told["message"].startswith("rollback from the command line: ")
        assert "must catch up" in told["message"]
        assert told["details"] == {
            "action": "rollback",
            "done": True,
            "recorded": "history (the desired state in git must catch up)",
            "pull_request": "",
        }
        assert SECRET not in done.stdout + done.stderr

        again = _rollback(served_world, env, "--to", "1")  # champion already: nothing changes
        assert again.returncode == 0, again.stderr[-2000:]
        receiver.wait_for(lambda r: len(r.deliveries) == 2)
        assert json.loads(receiver.deliveries[1].body)["details"]["done"] is False
