"""`reconciler serve` as a team runs it: following a branch of a real bare git remote, and
stopped by SIGTERM in the middle of a rollout.

- A commit that changes a threshold is picked up and applied by the first reconcile cycle
  that starts after the push: story-generation's candidate, which failed its evaluation
  under a strict assertion pass rate, is evaluated again (for real, over the provider's API)
  when a commit relaxes the threshold, and its rollout starts. The webhook receiver never
  answers a delivery all along; the reconcile does not wait for it.
- SIGTERM while a rollout bakes: the process exits 0, the rollout's state is in the journal,
  and the next start carries on with that rollout (same start, same step, no second
  "rollout started") and obeys an operator's pause.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import httpx
import pytest

from reconciler import lineage
from reconciler.apply.journal import Journal, OperationStatus
from reconciler.child_process import free_port, wait_until_serving
from reconciler.cli import main
from reconciler.observe.state import RegisteredModelSnapshot, Route
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.rollout.state import Phase
from reconciler.traffic.store import TrafficStore
from tests.apply.world import USE_CASE, World
from tests.evaluation.stand_in_provider import last_user_message, serve_provider
from tests.server.conftest import (
    TOKEN,
    environment,
    serving,
    state_database,
    wait_for,
    webhook_document,
    world_environment,
)
from tests.stand_ins.receiver import serve_receiver

STORY = "story-generation"
EVAL_PROMPTS = "desired_state/datasets/story_generation/eval.jsonl"
BRIEF = "The keep is dark tonight."
LONG = (
    "The lighthouse keeper left a map in the lamp room; find it before the tide turns, "
    "and before the drowned bells ring again."
)
STORY_SPEC = """\
apiVersion: reconciler/v1
kind: UseCase
metadata: {{name: story-generation, owners: [narrative]}}
spec:
  registeredModel: story-generation
  acceptableModels:
{models}
  constraints: {{licenses: [proprietary]}}
  generation: {{systemPrompt: You are the narrator., temperature: 0.9, maxNewTokens: 96}}
  training: {{method: none}}
  evaluation:
    prompts: {prompts}
    thresholds:
      assertionPassRate: {{min: {min_pass_rate}}}
    assertions:
      - {{name: brief, type: max_length, value: 60}}
  rollout:
    steps: [10, 50, 100]
    bakeTime: 1h
    analysis:
      metrics: {{errorRate: {{max: 0.05}}}}
      onNoData: pause
  syncPolicy: {{automated: true}}
"""
PROVIDER_MODEL = """\
    - source: openai-compatible
      id: {id}
      baseUrlEnv: STORY_PROVIDER_BASE_URL
      apiKeyEnv: STORY_PROVIDER_API_KEY
      license: proprietary
"""


def story_spec(models: list[str], min_pass_rate: float) -> str:
    return STORY_SPEC.format(
        models="".join(PROVIDER_MODEL.format(id=m) for m in models),
        prompts=EVAL_PROMPTS,
        min_pass_rate=min_pass_rate,
    )


class CycleLines(logging.Handler):
    """The controller's one line per finished reconcile cycle, in the order they finish."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("reconcile:", "reconcile failed:")):  # `describe(report)`
            self.lines.append(message)


@contextmanager
def cycle_lines() -> Iterator[CycleLines]:
    handler = CycleLines()
    logger = logging.getLogger("reconciler.controller")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@dataclass
class TeamRepository:
    """The team's clone (where commits are made and pushed to the bare remote's main) and
    the controller's clone, which follows origin/main."""

    author: git.Repo
    follower: Path

    @property
    def story_spec(self) -> Path:
        return Path(self.author.working_dir) / "desired_state" / "story-generation.yaml"

    def merge(self, text: str, message: str) -> str:
        self.story_spec.write_text(text)
        self.author.git.add(A=True)
        sha = self.author.index.commit(message).hexsha
        self.author.remote("origin").push("main")
        return sha


@pytest.fixture
def team(shipped_repo: Path, tmp_path: Path) -> TeamRepository:
    """story-generation alone, on narrator-small, pushed to a bare remote and cloned."""
    folder = shipped_repo / "desired_state"
    for spec in ("npc-dialogue.yaml", "faction-decision.yaml"):
        (folder / spec).unlink()
    (folder / "story-generation.yaml").write_text(story_spec(["narrator-small"], 0.75))
    remote = git.Repo.init(tmp_path / "remote.git", bare=True, initial_branch="main")
    author = git.Repo.init(shipped_repo, initial_branch="main")
    author.git.add(A=True)
    author.index.commit("story-generation on narrator-small")
    author.create_remote("origin", remote.working_dir).push("main")
    follower = tmp_path / "controller"
    git.Repo.clone_from(remote.working_dir, follower)
    shutil.rmtree(follower / "desired_state" / "datasets")  # the commit is read, not the folder
    return TeamRepository(author, follower)


@pytest.fixture
def half_brief_provider(shipped_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The story provider. narrator-small answers briefly; narrator-large briefly to the first
    half of the evaluation prompts and over the `brief` assertion's limit to the rest - an
    assertion pass rate of 0.5."""
    prompts = [
        json.loads(line)["prompt"]
        for line in (shipped_repo / EVAL_PROMPTS).read_text().splitlines()
        if line.strip()
    ]
    brief_for = prompts[: len(prompts) // 2]

    def answer(body: dict[str, Any]) -> str:
        if body.get("model") == "narrator-small":
            return BRIEF  # always: it passes its own first evaluation
        asked = last_user_message(body)
        return BRIEF if any(prompt in asked for prompt in brief_for) else LONG

    with serve_provider(answer) as provider:
        monkeypatch.setenv("STORY_PROVIDER_BASE_URL", provider.url)
        monkeypatch.setenv("STORY_PROVIDER_API_KEY", "story-key-for-tests")
        yield


@dataclass
class StoryRegistry:
    registry: MlflowRegistry

    def model(self) -> RegisteredModelSnapshot:
        found = self.registry.snapshot([STORY])[STORY]
        assert found is not None
        return found

    def champion(self) -> str | None:
        found = self.registry.snapshot([STORY])[STORY]
        return None if found is None else found.aliases.get("champion")

    def tag(self, version: str, key: str) -> str | None:
        found = self.registry.snapshot([STORY])[STORY]
        candidate = found.version(version) if found is not None else None
        return None if candidate is None else candidate.tag(key)


@pytest.mark.usefixtures("half_brief_provider")
def test_a_commit_that_changes_a_threshold_is_applied_by_the_next_cycle(
    team: TeamRepository, fresh_sqlite_store: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    story = StoryRegistry(MlflowRegistry(fresh_sqlite_store))
    with serve_receiver() as receiver:
        receiver.hold()  # the webhook never answers while the controller works
        Path(team.author.working_dir, "desired_state", "notifications.yaml").write_text(
            webhook_document(receiver.url)
        )
        team.merge(story_spec(["narrator-small"], 0.75), "tell the operators")
        with (
            cycle_lines() as cycles,
            serving(
                team.follower,
                environment(fresh_sqlite_store, state_dir),
                ref="origin/main",
                fetch=True,
                interval=2,
            ) as plane,
        ):
            wait_for(
                lambda: story.tag("1", lineage.KEY) is not None and story.champion() == "1",
                "narrator-small to serve",
                every=1,
            )

            # narrator-large is preferred, but only half its answers are brief: it fails.
            two = ["narrator-large", "narrator-small"]
            strict = team.merge(story_spec(two, 0.75), "prefer narrator-large, 75% brief")
            wait_for(
                lambda: story.tag("2", lineage.EVALUATION_VERDICT) == "failed",
                "narrator-large to fail its evaluation",
                every=1,
            )
            assert story.model().aliases == {"champion": "1"}
            failed_for = story.tag("2", lineage.EVALUATION_DIGEST)

            # The threshold is relaxed: the next cycle evaluates again and starts the rollout.
            finished_before = len(cycles.lines)
            relaxed = team.merge(story_spec(two, 0.25), "half the answers brief is enough")
            wait_for(
                lambda: any(relaxed[:12] in line for line in cycles.lines),
                "a cycle at the relaxed commit",
            )
            first = next(i for i, line in enumerate(cycles.lines) if relaxed[:12] in line)
            # At most one cycle was under way at the push; the one after it applies the commit.
            assert first <= finished_before + 1, cycles.lines[finished_before:]
            assert f"applied {STORY} (Progressing)" in cycles.lines[first], cycles.lines[first]

            assert story.model().aliases == {"champion": "1", "challenger": "2"}
            assert story.tag("2", lineage.EVALUATION_VERDICT) == "passed"
            assert story.tag("2", lineage.EVALUATION_DIGEST) not in (None, failed_for)
            routes = TrafficStore(state_database(plane.env)).read(STORY).routes
            assert set(routes) == {Route("1", 90), Route("2", 10)}
            rollout = plane.journal.rollout(STORY)
            assert rollout is not None and rollout.phase is Phase.PROGRESSING

            status = plane.get("/api/v1/status").json()
            assert status["commit"] == relaxed != strict
            # All of it while the receiver sat on its first delivery, never answering.
            assert status["controller"]["notifications"]["delivered"] == 0
            receiver.wait_for(lambda r: "rollout-started" in r.events())  # arrived, unanswered
            assert not receiver.held.is_set()


@contextmanager
def serve_process(repo: Path, env: dict[str, str], log: Path) -> Iterator[ServeProcess]:
    """`reconciler serve` as its own process (JSON logs appended to `log`), killed if a test
    leaves it running."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "serve",
                "--repo",
                str(repo),
                "--port",
                str(port),
                "--interval",
                "1h",
                "--watch-interval",
                "1h",
                "--log-format",
                "json",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = ServeProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_serving(f"{running.url}/healthz", process, timeout=180, log=log)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def terminate(self) -> None:
        """SIGTERM, as a service manager stops it: it must exit 0 of its own accord."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=120) == 0, self.log.read_text()[-3000:]

    def cycles_finished(self) -> int:
        try:
            answer = httpx.get(f"{self.url}/api/v1/status", timeout=60)
        except httpx.TransportError:
            return 0
        return int(answer.json()["controller"]["cycles_finished"]) if answer.is_success else 0

    def messages(self) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line)["message"] for line in lines if line.startswith("{")]


def test_sigterm_during_a_rollout_leaves_a_state_the_next_start_resumes(
    served_world: World, tmp_path: Path
) -> None:
    journal = Journal(served_world.database)

    def baking() -> bool:
        state = journal.rollout(USE_CASE)
        return state is not None and state.stage_started_at is not None

    with serve_receiver() as receiver:
        (served_world.repo / "desired_state" / "notifications.yaml").write_text(
            webhook_document(receiver.url, events=["rollout-started", "paused", "break-glass"])
        )
        env = world_environment(served_world)
        with serve_process(served_world.repo, env, tmp_path / "first.log") as first:
            wait_for(baking, "the rollout to bake its first step")
            first.terminate()
        assert any("the next start resumes" in m for m in first.messages())

        before = journal.rollout(USE_CASE)
        assert before is not None and before.phase is Phase.PROGRESSING
        operation = journal.last_operation(USE_CASE)
        assert operation is None or operation.status is not OperationStatus.RUNNING
        assert set(served_world.traffic.read(USE_CASE).routes) == {Route("2", 90), Route("3", 10)}
        receiver.wait_for(lambda r: r.events() == ["rollout-started"])

        with serve_process(served_world.repo, env, tmp_path / "second.log") as second:
            wait_for(lambda: second.cycles_finished() >= 1, "the next start's first cycle")
            after = journal.rollout(USE_CASE)
            assert after is not None and after.phase is Phase.PROGRESSING
            # The same rollout, carried on: not started again, no step lost or repeated.
            for field in ("digest", "candidate", "started_at", "stage_index", "stage_started_at"):
                assert getattr(after, field) == getattr(before, field), field
            assert served_world.aliases() == {"champion": "2", "challenger": "3", "previous": "1"}

            paused = httpx.post(
                f"{second.url}/api/v1/use-cases/{USE_CASE}/pause?wait=120",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=180,
            )
            assert paused.status_code == 200, paused.text
            state = journal.rollout(USE_CASE)
            assert state is not None and state.phase is Phase.PAUSED
            assert state.started_at == before.started_at
            receiver.wait_for(lambda r: "break-glass" in r.events())
            assert receiver.events().count("rollout-started") == 1
            second.terminate()


def test_a_bad_interval_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str], shipped_repo: Path
) -> None:
    code = main(["serve", "--repo", str(shipped_repo), "--interval", "soon"])
    err = capsys.readouterr().err
    assert code == 1 and "soon" in err and "Traceback" not in err


def test_a_port_in_use_ends_serve_before_anything_is_reconciled(
    shipped_repo: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    env = environment(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}", state_dir)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "reconciler.cli", "serve", "--repo", str(shipped_repo)]
        finished = subprocess.run(
            [*command, "--port", str(port)],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert finished.returncode == 1, finished.stderr[-2000:]
    assert f"cannot serve the API on 127.0.0.1:{port}" in finished.stderr
    assert not (state_dir / "state.db").exists()  # no cycle ran
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()
