"""Real components for the gateway tests: an echo provider process, an MLflow sqlite store
with registered versions, a desired-state repository, and the gateway itself as a process
started through the CLI, shared by the tests of a session (its start costs seconds).

`hostile_gateway` is a second gateway process whose external use cases are set up the way a
careless operator or provider would leave them: `story` (version 1 fine, version 2 on a
provider that echoes credentials in its errors), `tale` (a base URL with user:password in it),
`saga` (its API-key variable not set)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.child_process import free_port, wait_until_serving
from tests.gateway.processes import (
    PROVIDER_KEY,
    RunningGateway,
    World,
    gateway_process,
    stop_process,
)
from tests.gateway.tiny_model import build_tiny_gpt2

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
    with gateway_process(
        repo=world.repo,
        tracking_uri=world.tracking_uri,
        state_dir=world.state_dir,
        cwd=world.root,
        env={"ECHO_PROVIDER_URL": echo_provider_url, "ECHO_PROVIDER_KEY": PROVIDER_KEY},
        args=["--max-loaded-models", "6"],
    ) as url:
        yield RunningGateway(url=url, world=world)


@pytest.fixture(scope="session")
def tiny_versions(world: World) -> tuple[str, str]:
    """tiny-npc version 1 (logged with mlflow.transformers) and 2 (plain folder artifacts)."""
    import mlflow

    # The fluent API's URIs are process-wide (and exported to the environment): restore them
    # at once, so no later test of the session inherits this store.
    previous = {
        name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    mlflow.set_tracking_uri(world.tracking_uri)
    mlflow.set_registry_uri(world.tracking_uri)
    try:
        return _register_tiny_versions(world)
    finally:
        mlflow.set_tracking_uri(previous["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(previous["MLFLOW_REGISTRY_URI"])
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _register_tiny_versions(world: World) -> tuple[str, str]:
    import mlflow
    import transformers

    folder = build_tiny_gpt2(world.root / "tiny-gpt2")
    experiment = mlflow.create_experiment("tiny-npc", artifact_location=world.artifact_uri)
    with mlflow.start_run(experiment_id=experiment):
        logged = mlflow.transformers.log_model(
            {
                "model": transformers.AutoModelForCausalLM.from_pretrained(folder),
                "tokenizer": transformers.AutoTokenizer.from_pretrained(folder),
            },
            name="model",
            task="text-generation",
            pip_requirements=[],
        )
    first = mlflow.register_model(logged.model_uri, "tiny-npc")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(folder), artifact_path="hf-folder")
    # A folder of files is no MLflow "logged model": register its artifact location directly.
    second = mlflow.MlflowClient().create_model_version(
        "tiny-npc", source=f"{run.info.artifact_uri}/hf-folder", run_id=run.info.run_id
    )
    return str(first.version), str(second.version)


HOSTILE_KEY = "sk-live-hostile0123456789abcdef"
URL_PASSWORD = "url-password-9f8e7d"
HOSTILE_USE_CASES = ("story", "tale", "saga")


def _external_use_case(name: str, **provider: str) -> str:
    settings = ", ".join(f"{key}: {value}" for key, value in provider.items())
    return f"""\
apiVersion: reconciler/v1
kind: UseCase
metadata: {{name: {name}}}
spec:
  registeredModel: {name}
  acceptableModels:
    - {{source: openai-compatible, id: echo-large, license: proprietary, {settings}}}
  generation: {{temperature: 0.0, maxNewTokens: 16}}
  evaluation: {{prompts: desired_state/datasets/eval.jsonl}}
"""


@pytest.fixture(scope="session")
def hostile_gateway(
    world: World, echo_provider_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """A gateway process over the hostile use cases (see the module docstring), each with
    its versions registered: story 1 (echo-large) and 2 (echo-leaky), tale 1, saga 1."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=world.tracking_uri, registry_uri=world.tracking_uri)
    for name, models in (
        ("story", ("echo-large", "echo-leaky")),
        ("tale", ("echo-large",)),
        ("saga", ("echo-large",)),
    ):
        client.create_registered_model(name)
        for model in models:
            client.create_model_version(
                name,
                source=str(world.root / "external-has-no-artifacts"),
                tags={"reconciler.role": "external", "reconciler.base_model": model},
            )
    root = tmp_path_factory.mktemp("hostile")
    repo = root / "repo"
    (repo / "desired_state" / "datasets").mkdir(parents=True)
    (repo / "desired_state" / "datasets" / "eval.jsonl").write_text('{"prompt": "hello"}\n')
    files = {
        "story": _external_use_case(
            "story", baseUrlEnv="STORY_PROVIDER_URL", apiKeyEnv="STORY_PROVIDER_KEY"
        ),
        "tale": _external_use_case(
            "tale", baseUrlEnv="TALE_PROVIDER_URL", apiKeyEnv="TALE_PROVIDER_KEY"
        ),
        "saga": _external_use_case(
            "saga", baseUrl=echo_provider_url, apiKeyEnv="SAGA_PROVIDER_KEY"
        ),
    }
    for name, text in files.items():
        (repo / "desired_state" / f"{name}.yaml").write_text(text)
    port = echo_provider_url.removeprefix("http://127.0.0.1:").split("/")[0]
    env = {
        "STORY_PROVIDER_URL": echo_provider_url,
        "STORY_PROVIDER_KEY": HOSTILE_KEY,
        "TALE_PROVIDER_URL": f"http://player:{URL_PASSWORD}@127.0.0.1:{port}/v1",
        "TALE_PROVIDER_KEY": HOSTILE_KEY,
    }
    hostile = World(
        root=root,
        tracking_uri=world.tracking_uri,
        artifact_uri=world.artifact_uri,
        repo=repo,
        state_dir=root / "state",
    )
    with gateway_process(
        repo=repo, tracking_uri=world.tracking_uri, state_dir=hostile.state_dir, cwd=root, env=env
    ) as url:
        yield RunningGateway(url=url, world=hostile)
