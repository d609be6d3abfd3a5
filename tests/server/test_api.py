"""The control plane's API on a running `reconciler serve`: reads, the OpenAPI document and
metrics; writes that refuse a missing or wrong token (and every write when no token is set);
a break-glass rollback that acts at once and is recorded; operator controls obeyed at once."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.apply.journal import Cause
from reconciler.lineage import KEY, REJECTED, REJECTED_DIGEST
from reconciler.notifications.signing import verify
from reconciler.observe.state import Route
from reconciler.rollout.state import Phase
from reconciler.server.audit import AUDIT_FILE
from tests.apply.world import USE_CASE, World
from tests.server.conftest import (
    NPC_SPEC,
    TOKEN,
    automated,
    serving,
    webhook_document,
    world_environment,
)
from tests.stand_ins.github import serve_github
from tests.stand_ins.receiver import Receiver, serve_receiver

WRITES = [
    ("/api/v1/reconcile", {}),
    (f"/api/v1/use-cases/{USE_CASE}/rollback", {"json": {}}),
    (f"/api/v1/use-cases/{USE_CASE}/pause", {}),
    (f"/api/v1/use-cases/{USE_CASE}/resume", {}),
    (f"/api/v1/use-cases/{USE_CASE}/abort", {}),
    (f"/api/v1/use-cases/{USE_CASE}/promote", {}),
]
SECRET = "whsec-break-glass-0123456789"
GITHUB_TOKEN = "ghs_stand-in-token-for-serve-0123456789"


def test_reads_answer_what_the_controller_sees(served_world: World) -> None:
    automated(served_world.repo, False)
    with serving(served_world.repo, world_environment(served_world)) as plane:
        done = plane.post("/api/v1/reconcile?wait=120")
        assert done.status_code == 200 and done.json()["done"], done.text
        status = plane.get("/api/v1/status").json()
        npc = next(u for u in status["use_cases"] if u["name"] == USE_CASE)
        assert (npc["champion"], npc["sync"]) == ("2", "OutOfSync")
        assert status["controller"]["last_cycle"]["waiting"] == [USE_CASE, "story-generation"]

        one = plane.get(f"/api/v1/use-cases/{USE_CASE}").json()
        assert [c["action"] for c in one["plan"]] == ["shift", "promote"]
        assert one["judgements"] == [] and one["pending_control"] is None

        as_json = plane.get("/api/v1/plan")
        assert as_json.headers["content-type"].startswith("application/json")
        assert {c["use_case"] for c in as_json.json()["changes"]} >= {USE_CASE}
        markdown = plane.get("/api/v1/plan", headers={"Accept": "text/markdown"})
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert (
            USE_CASE in markdown.text
            and markdown.text == plane.get("/api/v1/plan?format=markdown").text
        )

        history = plane.get(f"/api/v1/use-cases/{USE_CASE}/history").json()
        assert history["champion_changes"] == [] and history["operator_actions"] == []
        guardrails = plane.get(f"/api/v1/use-cases/{USE_CASE}/guardrails").json()
        assert guardrails["total"] == 0
        discovery = plane.get("/api/v1/discovery").json()
        assert [u["name"] for u in discovery["use_cases"]] == [USE_CASE]

        missing = plane.get("/api/v1/use-cases/npc-dialog")
        assert missing.status_code == 404 and "known: npc-dialogue" in missing.json()["detail"]

        openapi = plane.get("/openapi.json").json()
        for path in (
            "/api/v1/status",
            "/api/v1/use-cases/{name}",
            "/api/v1/use-cases/{name}/history",
            "/api/v1/plan",
            "/api/v1/use-cases/{name}/guardrails",
            "/api/v1/discovery",
            "/api/v1/reconcile",
            "/api/v1/use-cases/{name}/rollback",
            "/api/v1/use-cases/{name}/pause",
        ):
            assert path in openapi["paths"], path
        assert openapi["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        assert openapi["paths"]["/api/v1/reconcile"]["post"]["security"] == [{"HTTPBearer": []}]

        metrics = plane.get("/metrics").text
        assert 'reconciler_reconcile_cycles_total{result="ok"}' in metrics
        assert "reconciler_reconcile_duration_seconds_count" in metrics
        assert "reconciler_last_successful_sync_timestamp_seconds{" not in metrics  # all wait
        assert 'reconciler_rollouts{phase="Progressing"} 0.0' in metrics


@pytest.mark.parametrize(
    "token", [None, "wrong-token", TOKEN[:-1], TOKEN + "x", f"Token {TOKEN}", f"Basic {TOKEN}"]
)
def test_writes_refuse_a_missing_or_wrong_token(served_world: World, token: str | None) -> None:
    automated(served_world.repo, False)
    with serving(served_world.repo, world_environment(served_world)) as plane:
        # The start-up cycle begins on its own (the next is an hour away): counted first, so
        # a busy machine that starts it late cannot pass for a cycle a refused write asked for.
        deadline = time.monotonic() + 60
        while (begun := plane.get("/api/v1/status").json()["controller"]["cycles_begun"]) < 1:
            assert time.monotonic() < deadline, "the start-up cycle never began"
            time.sleep(0.05)
        for path, kwargs in WRITES:
            refused = plane.post(path, token=token, **kwargs)
            assert refused.status_code == 401, (path, refused.text)
            assert TOKEN not in refused.text and "api-token" not in refused.text
            assert refused.headers["www-authenticate"] == "Bearer"
        # Nothing was done: no rollback, no control waiting, no cycle asked for, no audit.
        assert served_world.aliases() == {"champion": "2", "previous": "1"}
        assert plane.journal.pending_control(USE_CASE) is None
        assert plane.get("/api/v1/status").json()["controller"]["cycles_begun"] == begun
        assert not (served_world.state_dir / AUDIT_FILE).exists()


def test_without_a_configured_token_every_write_is_refused(served_world: World) -> None:
    env = world_environment(served_world)
    del env["RECONCILER_API_TOKEN"]
    with serving(served_world.repo, env) as plane:
        for path, kwargs in WRITES:
            for token in (None, TOKEN, "wrong-token"):
                refused = plane.post(path, token=token, **kwargs)
                assert refused.status_code == 403, (path, refused.text)
                assert "RECONCILER_API_TOKEN" in refused.json()["detail"]
        assert served_world.aliases() == {"champion": "2", "previous": "1"}
        assert plane.get("/api/v1/status").status_code == 200  # reads stay open


def _with_webhook(world: World, receiver: Receiver) -> dict[str, str]:
    (world.repo / "desired_state" / "notifications.yaml").write_text(
        webhook_document(
            receiver.url,
            events=["break-glass", "rollout-started", "paused"],
            secret_env="OPS_WEBHOOK_SECRET",
        )
    )
    return world_environment(world, OPS_WEBHOOK_SECRET=SECRET)


def test_a_break_glass_rollback_acts_at_once_and_is_recorded(served_world: World) -> None:
    automated(served_world.repo, False)
    with serve_receiver() as receiver:
        env = _with_webhook(served_world, receiver)
        with serving(served_world.repo, env) as plane:
            # No rollout runs: a promote (or abort, or resume) has nothing to act on.
            refused = plane.post(f"/api/v1/use-cases/{USE_CASE}/promote")
            assert refused.status_code == 409 and "no rollout" in refused.json()["detail"]
            assert plane.journal.pending_control(USE_CASE) is None

            answer = plane.post(f"/api/v1/use-cases/{USE_CASE}/rollback", json={})
            assert answer.status_code == 200, answer.text
            result = answer.json()
            # Done when the answer comes: champion, routes, rejection.
            assert result["done"] and result["pull_request"] is None
            # 1 was previous and is champion now: it is nobody's fallback, least of all its own.
            assert served_world.aliases() == {"champion": "1"}
            assert served_world.traffic.read(USE_CASE).routes == (Route("1", 100),)
            tags = served_world.version_tags("2")
            assert "API (break-glass)" in tags[REJECTED]
            assert tags[REJECTED_DIGEST] == served_world.desired.identities[USE_CASE].digest
            assert result["recorded"] == "history (the desired state in git must catch up)"

            [change] = plane.journal.history(USE_CASE)
            assert (change.version, change.previous, change.cause) == ("1", "2", Cause.MANUAL)
            assert change.detail.startswith("break-glass rollback through the API")
            history = plane.get(f"/api/v1/use-cases/{USE_CASE}/history").json()
            [action] = history["operator_actions"]
            assert (action["action"], action["client"]) == ("rollback", "127.0.0.1")
            assert history["champion_changes"][0]["cause"] == "manual"

            receiver.wait_for(lambda r: "break-glass" in r.events())
            [delivery] = [d for d in receiver.deliveries if b"break-glass" in d.body]
            signed = delivery.headers["x-reconciler-signature-256"]
            assert verify(SECRET, delivery.body, signed), signed
            told = json.loads(delivery.body)
            assert "must catch up" in told["message"] and told["use_case"] == USE_CASE

            again = plane.post(f"/api/v1/use-cases/{USE_CASE}/rollback", json={"to": "1"})
            assert again.json()["done"] is False  # 1 is champion already: nothing changes
        audit = (served_world.state_dir / AUDIT_FILE).read_text()
        assert TOKEN not in audit and SECRET not in audit
        assert [json.loads(line)["action"] for line in audit.splitlines()] == [
            "rollback",
            "rollback",
        ]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_where_propose_can_a_break_glass_rollback_is_recorded_in_a_pull_request(
    served_world: World, tmp_path: Path
) -> None:
    repo, remote = served_world.repo, tmp_path / "remote.git"
    automated(repo, False)
    # Version 2, about to be rolled back, carries a key of the shape git records.
    rolled_back_key = "sha256:" + "2b" * 32
    served_world.registry.client.set_model_version_tag(USE_CASE, "2", KEY, rolled_back_key)
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Test Person")
    _git(repo, "config", "user.email", "person@example.com")
    _git(repo, "remote", "add", "origin", str(remote))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "desired state")
    _git(repo, "push", "-q", "origin", "main")
    with serve_github(token=GITHUB_TOKEN) as (github, forge):
        env = world_environment(
            served_world,
            GITHUB_API_URL=github.url,
            GITHUB_TOKEN=GITHUB_TOKEN,
            GITHUB_REPOSITORY=forge.repository,
        )
        with serving(repo, env) as plane:
            answer = plane.post(f"/api/v1/use-cases/{USE_CASE}/rollback", json={})
            assert answer.status_code == 200, answer.text
            result = answer.json()
            assert result["done"] and served_world.aliases()["champion"] == "1"
            [pull] = forge.pulls
            assert result["pull_request"] == pull["html_url"]
            assert result["recorded"] == f"pull request {pull['html_url']}"
            branch = pull["head"]["ref"]
            assert branch == f"reconciler/rejected/{USE_CASE}"
            edited = subprocess.run(
                ["git", "show", f"{branch}:{NPC_SPEC}"],
                cwd=remote,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            assert f'    - key: "{rolled_back_key}"\n      version: "2"\n' in edited
            assert "API (break-glass)" in edited
            actions = plane.get(f"/api/v1/use-cases/{USE_CASE}/history").json()
            [action] = actions["operator_actions"]
            assert action["recorded"] == f"pull request {pull['html_url']}"
        for text in (json.dumps(forge.pulls), (served_world.state_dir / AUDIT_FILE).read_text()):
            assert GITHUB_TOKEN not in text and TOKEN not in text


def test_operator_controls_are_obeyed_at_once(served_world: World) -> None:
    with serve_receiver() as receiver:
        env = _with_webhook(served_world, receiver)
        with serving(served_world.repo, env) as plane:  # npc-dialogue is automated: it rolls out
            journal = plane.journal

            def baking() -> bool:
                state = journal.rollout(USE_CASE)
                return state is not None and state.stage_started_at is not None

            plane.wait_for(baking, "the rollout to start baking its first step")
            paused = plane.post(f"/api/v1/use-cases/{USE_CASE}/pause?wait=120")
            assert paused.status_code == 200, paused.text
            assert paused.json()["done"] and paused.json()["rollout"]["phase"] == "Paused"
            state = journal.rollout(USE_CASE)
            assert state is not None and state.phase is Phase.PAUSED
            assert journal.pending_control(USE_CASE) is None

            resumed = plane.post(f"/api/v1/use-cases/{USE_CASE}/resume?wait=120").json()
            assert resumed["done"] and resumed["rollout"]["phase"] == "Progressing"
            actions = plane.get(f"/api/v1/use-cases/{USE_CASE}/history").json()
            assert [a["action"] for a in actions["operator_actions"]] == ["pause", "resume"]
            receiver.wait_for(lambda r: r.events().count("break-glass") == 2)
            assert receiver.events()[0] == "rollout-started" and "paused" in receiver.events()

            metrics = plane.get("/metrics").text
            assert 'reconciler_rollouts{phase="Progressing"} 1.0' in metrics
            assert (
                'reconciler_last_successful_sync_timestamp_seconds{use_case="npc-dialogue"}'
                in metrics
            )


def test_a_control_whose_rollout_ends_first_is_reported_dropped(served_world: World) -> None:
    with serving(served_world.repo, world_environment(served_world)) as plane:
        journal = plane.journal

        def baking() -> bool:
            state = journal.rollout(USE_CASE)
            return state is not None and state.stage_started_at is not None

        plane.wait_for(baking, "the rollout to start baking its first step")
        # The candidate is rejected for this desired state from elsewhere (another replica's
        # guardrail watch, say): the next cycle rolls it back before its rollout steps again.
        digest = served_world.desired.identities[USE_CASE].digest
        client = served_world.registry.client
        client.set_model_version_tag(USE_CASE, "3", REJECTED, "guardrail critical rate")
        client.set_model_version_tag(USE_CASE, "3", REJECTED_DIGEST, digest)

        answer = plane.post(f"/api/v1/use-cases/{USE_CASE}/promote?wait=120")

        assert answer.status_code == 409, answer.text
        result = answer.json()
        assert result["dropped"] and not result["done"]
        assert result["outcome"].startswith(
            "promote dropped: the rollout of 3 was rolled back from outside it"
        )
        assert served_world.aliases()["champion"] == "2"
        one = plane.get(f"/api/v1/use-cases/{USE_CASE}").json()
        assert one["pending_control"] is None
        last = one["last_control"]
        assert (last["control"], last["outcome"]) == ("promote", "dropped")
        assert last["reason"].startswith("the rollout of 3 was rolled back from outside it")
