"""End to end with real weights: a tiny GPT-2 registered in a real MLflow sqlite store (once
through `mlflow.transformers.log_model`, once as a plain Hugging Face folder), served by the
gateway process through transformers, and answered to the official OpenAI client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from reconciler.registry.version_files import locate_model_folders
from tests.gateway.processes import RunningGateway, World
from tests.gateway.tiny_model import build_tiny_gpt2


@pytest.fixture(scope="module")
def tiny_versions(world: World) -> Iterator[tuple[str, str]]:
    """tiny-npc version 1 (logged with mlflow.transformers) and 2 (plain folder artifacts)."""
    import mlflow

    # The fluent API's URIs are process-wide (and exported to the environment): restore them.
    previous = (os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_REGISTRY_URI"))
    mlflow.set_tracking_uri(world.tracking_uri)
    mlflow.set_registry_uri(world.tracking_uri)
    try:
        yield _register_tiny_versions(world)
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        for name, value in zip(
            ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"), previous, strict=True
        ):
            if value is None:
                os.environ.pop(name, None)


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


def test_a_tiny_transformers_model_is_served_from_mlflow(
    gateway: RunningGateway, tiny_versions: tuple[str, str]
) -> None:
    logged, plain = tiny_versions
    gateway.set_routes(
        "tiny-npc", [{"version": logged, "weight": 50}, {"version": plain, "weight": 50}]
    )
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    served = set()
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(
            model="tiny-npc",
            messages=[{"role": "user", "content": "Where can I buy a sword?"}],
        )
        completion = raw.parse()
        served.add(raw.headers["x-model-version"])
        assert isinstance(completion.choices[0].message.content, str)
        assert completion.usage is not None
        assert completion.usage.prompt_tokens > 5
        assert 1 <= completion.usage.completion_tokens <= 6  # the use case's maxNewTokens
    assert served == {logged, plain}

    batch = client.completions.create(model="tiny-npc", prompt=["The inn", "The well"])
    assert [c.index for c in batch.choices] == [0, 1]

    cache = gateway.world.state_dir / "model-cache" / "tiny-npc"
    via_log_model = locate_model_folders(cache / logged)
    assert via_log_model.tokenizer != via_log_model.weights  # components/tokenizer
    via_folder = locate_model_folders(cache / plain)
    assert via_folder.tokenizer == via_folder.weights
    assert Path(via_folder.weights, "config.json").exists()
