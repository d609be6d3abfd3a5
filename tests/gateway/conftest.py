"""Real components for the gateway tests: an echo provider process, an MLflow sqlite store
with registered versions, a desired-state repository, and the gateway itself as a process
started through the CLI, shared by the tests of a session (its start costs seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.child_process import free_port, wait_until_serving
from tests.gateway.processes import (
    ADMIN_TOKEN,
    PROVIDER_KEY,
    RunningGateway,
    World,
    stop_process,
)

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]
EXTERNAL_VERSIONS = ("1", "2", "3")

ECHO_CHAT_YAML = """\
apiVersion: reconciler/v1
kind: UseCase
metadata: {name: echo-chat}
spec:
  registeredModel: echo-chat
  acceptableModels:
    - source: openai-compatible
      id: echo-large
      baseUrlEnv: ECHO_PROVIDER_URL
      apiKeyEnv: ECHO_PROVIDER_KEY
      license: proprietary
  generation: {systemPrompt: You are an echo., temperature: 0.5, maxNewTokens: 64}
  evaluation: {prompts: desired_state/datasets/eval.jsonl}
"""
TINY_NPC_YAML = """\
apiVersion: reconciler/v1
kind: UseCase
metadata: {name: tiny-npc}
spec:
  registeredModel: tiny-npc
  acceptableModels:
    - {source: local, path: models/tiny, license: apache-2.0}
  generation: {systemPrompt: You are an NPC in Emberfall., temperature: 0.0, maxNewTokens: 6}
  evaluation: {prompts: desired_state/datasets/eval.jsonl}
"""


@pytest.fixture(scope="session")
def echo_provider_url() -> Iterator[str]:
    """`http://127.0.0.1:PORT/v1` of a real OpenAI-compatible echo server process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "bench" / "echo_provider.py"), "--port", str(port)]
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """An MLflow store with echo-chat versions 1-3 (external) and a desired-state repo."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("gateway-world")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model("echo-chat")
    for _ in EXTERNAL_VERSIONS:
        client.create_model_version(
            "echo-chat",
            source=str(root / "external-has-no-artifacts"),
            tags={"reconciler.role": "external", "reconciler.base_model": "echo-large"},
        )
    repo = root / "repo"
    (repo / "desired_state" / "datasets").mkdir(parents=True)
    (repo / "desired_state" / "datasets" / "eval.jsonl").write_text('{"prompt": "hello"}\n')
    (repo / "desired_state" / "echo-chat.yaml").write_text(ECHO_CHAT_YAML)
    (repo / "desired_state" / "tiny-npc.yaml").write_text(TINY_NPC_YAML)
    return World(
        root=root,
        tracking_uri=tracking_uri,
        artifact_uri=(root / "artifacts").as_uri(),
        repo=repo,
        state_dir=root / "state",
    )


@pytest.fixture(scope="session")
def gateway(world: World, echo_provider_url: str) -> Iterator[RunningGateway]:
    """`reconciler gateway` as its own process, the way an operator starts it."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": world.tracking_uri,
        "RECONCILER_STATE_DIR": str(world.state_dir),
        "RECONCILER_GATEWAY_TOKEN": ADMIN_TOKEN,
        "ECHO_PROVIDER_URL": echo_provider_url,
        "ECHO_PROVIDER_KEY": PROVIDER_KEY,
    }
    env.pop("MLFLOW_REGISTRY_URI", None)
    command = [sys.executable, "-m", "reconciler.cli", "gateway", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--repo", str(world.repo), "--max-loaded-models", "6"],
        env=env,
        cwd=world.root,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/healthz", process)
        yield RunningGateway(url=url, world=world)
    finally:
        stop_process(process)
