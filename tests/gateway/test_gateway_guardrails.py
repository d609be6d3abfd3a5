"""The shipped guardrail policies inline in `reconciler gateway`: the echo provider makes the
model say what the prompt says, so a test can make it say something no player may read."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from reconciler.guardrails.store import ViolationStore
from reconciler.state_store.database import StateDatabase
from tests.gateway.processes import ADMIN_TOKEN, PROVIDER_KEY, World, gateway_process

PROJECT_ROOT = Path(__file__).resolve().parents[2]
USE_CASE = "guarded-echo"
GUARDED_YAML = f"""\
apiVersion: reconciler/v1
kind: UseCase
metadata: {{name: {USE_CASE}}}
spec:
  registeredModel: echo-chat
  acceptableModels:
    - source: openai-compatible
      id: echo-large
      baseUrlEnv: ECHO_PROVIDER_URL
      apiKeyEnv: ECHO_PROVIDER_KEY
      license: proprietary
  generation: {{temperature: 0.5, maxNewTokens: 64}}
  evaluation: {{prompts: desired_state/datasets/eval.jsonl}}
  guardrails: [player-safety, healthy-engagement]
"""
SELF_HARM = "Nobody would miss you, you should kill yourself tonight."
CONTACT = "Write to me at bob.smith@example.com and I will tell you more."
GREETING = "Welcome to the inn, traveller. The stew is hot tonight."


@pytest.fixture(scope="module")
def guarded_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A desired state whose use case lists the shipped policies (copied, unchanged)."""
    repo = tmp_path_factory.mktemp("guarded") / "repo"
    (repo / "desired_state" / "datasets").mkdir(parents=True)
    (repo / "desired_state" / "datasets" / "eval.jsonl").write_text('{"prompt": "hello"}\n')
    (repo / "desired_state" / f"{USE_CASE}.yaml").write_text(GUARDED_YAML)
    shutil.copytree(PROJECT_ROOT / "policies", repo / "policies")
    # The shipped files' editor header names the committed schema.
    (repo / "reconciler" / "spec").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "reconciler/spec/schema.json", repo / "reconciler/spec/schema.json")
    return repo


@contextmanager
def _serving(
    tmp_path: Path, world: World, repo: Path, echo_provider_url: str, *args: str
) -> Iterator[str]:
    with gateway_process(
        repo=repo,
        tracking_uri=world.tracking_uri,
        state_dir=tmp_path / "state",
        cwd=tmp_path,
        env={"ECHO_PROVIDER_URL": echo_provider_url, "ECHO_PROVIDER_KEY": PROVIDER_KEY},
        args=args,
    ) as url:
        routed = httpx.put(
            f"{url}/admin/routes/{USE_CASE}",
            params={"wait": "true"},
            json=[{"version": "2", "weight": 100}],
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=120,
        )
        assert routed.status_code == 200, routed.text
        yield url


def _say(url: str, text: str) -> dict[str, str]:
    body = {"model": USE_CASE, "messages": [{"role": "user", "content": text}]}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    return {"content": choice["message"]["content"], "finish": choice["finish_reason"]}


def test_the_shipped_policies_stop_unsafe_outputs_inline(
    tmp_path: Path, world: World, guarded_repo: Path, echo_provider_url: str
) -> None:
    with _serving(tmp_path, world, guarded_repo, echo_provider_url) as url:
        since = time.time()
        blocked = _say(url, SELF_HARM)
        assert blocked == {"content": "", "finish": "content_filter"}
        masked = _say(url, CONTACT)
        assert "bob.smith@example.com" not in masked["content"]
        assert masked["content"].startswith("echo[echo-large]: Write to me at")
        assert _say(url, GREETING) == {"content": f"echo[echo-large]: {GREETING}", "finish": "stop"}

        window = httpx.get(
            f"{url}/admin/metrics", params={"use_case": USE_CASE, "since": since}, timeout=30
        ).json()["versions"]["2"]
        assert (window["requests"], window["guardrail_violations"]) == (3, 2)
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        labels = f'use_case="{USE_CASE}",version="2",shadow="false"'
        assert f'gateway_guardrail_violations_total{{{labels},action="block"}} 1' in metrics
        assert f'gateway_guardrail_violations_total{{{labels},action="replace"}} 1' in metrics
        # The cascade's stage counter: every output checked (the masked one twice) is counted
        # once, by the last stage it reached; the benchmark's encoder_fraction comes from it.
        stages = {
            stage: int(count)
            for stage, count in re.findall(
                r'reconciler_guardrail_outputs_total\{stage="(\w+)"\} (\d+)', metrics
            )
        }
        assert set(stages) == {"static", "encoder"}
        assert sum(stages.values()) >= 3

    found = ViolationStore(
        StateDatabase(f"sqlite:///{tmp_path / 'state' / 'state.db'}")
    ).violations(USE_CASE)
    assert {(v.policy, v.check) for v in found} >= {
        ("player-safety", "self-harm"),
        ("player-safety", "personal-data"),
    }
    assert all(v.version == "2" for v in found)
    assert all("bob.smith@example.com" not in v.sample for v in found)


def test_no_guardrails_is_an_explicit_opt_out(
    tmp_path: Path, world: World, guarded_repo: Path, echo_provider_url: str
) -> None:
    with _serving(tmp_path, world, guarded_repo, echo_provider_url, "--no-guardrails") as url:
        unchecked = _say(url, SELF_HARM)
        assert unchecked == {"content": f"echo[echo-large]: {SELF_HARM}", "finish": "stop"}
    stored = ViolationStore(StateDatabase(f"sqlite:///{tmp_path / 'state' / 'state.db'}"))
    assert stored.violations(USE_CASE) == []
