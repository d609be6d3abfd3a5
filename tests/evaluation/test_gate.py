"""The evaluation gate: real tiny models, a real sqlite MLflow store, a stand-in provider."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from reconciler import lineage
from reconciler.evaluation.gate import evaluate
from reconciler.model_loading import load_causal_lm
from reconciler.training.base_models import version_files
from reconciler.training.lineage_tags import inference_params, pip_requirements
from reconciler.training.registration import register_base
from reconciler.training.tiny_model import build_tiny_model
from tests.training.world import World, make_world

NPC = "npc-dialogue"
STORY = "story-generation"


class WordJudge:
    """Flags any output containing one word (a stand-in for the guardrail policies)."""

    def __init__(self, word: str) -> None:
        self.word = word

    def flags(self, texts: Sequence[str]) -> list[bool]:
        return [self.word in text.lower() for text in texts]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> World:
    return make_world(tmp_path_factory.mktemp("gate"), tiny_base_model)


@pytest.fixture(scope="module")
def base_version(world: World) -> str:
    return register_base(
        world.use_case(NPC),
        world.identity(NPC),
        world.desired,
        repo=world.repo,
        settings=world.settings,
    )


def register_folder(world: World, folder: Path) -> str:
    use_case = world.use_case(NPC)
    model, tokenizer = load_causal_lm(folder)
    with world.tracking.run(NPC, "stand-in") as run:
        uri = run.log_transformers_model(
            model,
            tokenizer,
            inference_params=inference_params(use_case.spec.generation),
            pip_requirements=pip_requirements(),
        )
        return world.tracking.register(
            "npc-dialogue",
            model_uri=uri,
            run_id=run.run_id,
            tags={lineage.ROLE: "trained"},
            description="stand-in",
        ).version


def test_a_model_compared_with_itself_passes_with_similarity_one(
    world: World, base_version: str
) -> None:
    result = evaluate(
        world.use_case(NPC),
        world.identity(NPC),
        world.desired,
        repo=world.repo,
        settings=world.settings,
        candidate_version=base_version,
        champion_version=base_version,
    )
    assert result.measurements.behavior_similarity == pytest.approx(1.0, abs=1e-4)
    assert result.passed, result.reason
    assert result.measurements.latency_p95_ms > 0
    assert result.measurements.validation_perplexity is not None
    tags = world.client().get_model_version("npc-dialogue", base_version).tags
    assert tags[lineage.EVALUATION_VERDICT] == "passed"
    assert tags[lineage.EVALUATION_DIGEST] == world.identity(NPC).digest
    assert tags[lineage.EVALUATION_RUN] == result.run_id
    artifacts = {a.path for a in world.client().list_artifacts(result.run_id, "evaluation")}
    assert "evaluation/per_output.json" in artifacts


def test_a_randomly_initialised_candidate_fails_similarity(
    world: World, base_version: str, tmp_path: Path
) -> None:
    stranger = register_folder(
        world, build_tiny_model(tmp_path / "stranger", seed=99, pretrain_steps=0)
    )
    use_case = world.use_case(NPC)
    strict = use_case.model_copy(
        update={
            "spec": use_case.spec.model_copy(
                update={
                    "evaluation": use_case.spec.evaluation.model_copy(
                        update={
                            "thresholds": use_case.spec.evaluation.thresholds.model_copy(
                                update={
                                    "behavior_similarity": type(
                                        use_case.spec.evaluation.thresholds.behavior_similarity
                                    )(min=0.9)
                                }
                            )
                        }
                    )
                }
            )
        }
    )
    result = evaluate(
        strict,
        world.identity(NPC),
        world.desired,
        repo=world.repo,
        settings=world.settings,
        candidate_version=stranger,
        champion_version=base_version,
        judge_safety=WordJudge("xyzzy"),
    )
    assert not result.passed
    assert any(f.startswith("behaviorSimilarity") for f in result.failures)
    assert result.measurements.behavior_similarity is not None
    assert result.measurements.behavior_similarity < 0.9
    tags = world.client().get_model_version("npc-dialogue", stranger).tags
    assert tags[lineage.EVALUATION_VERDICT] == "failed"
    assert "behaviorSimilarity" in tags[lineage.EVALUATION_REASON]


class _Provider(BaseHTTPRequestHandler):
    reply = "I will hurt you"
    seen_keys: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Provider.seen_keys.append(self.headers.get("Authorization", ""))
        payload = {
            "id": "x",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("STORY_PROVIDER_BASE_URL", url)
    monkeypatch.setenv("STORY_PROVIDER_API_KEY", "test-key-value")
    yield url
    server.shutdown()


def test_an_external_model_is_registered_without_its_key_and_fails_when_unsafe(
    world: World, provider: str
) -> None:
    use_case, identity = world.use_case(STORY), world.identity(STORY)
    version = register_base(
        use_case, identity, world.desired, repo=world.repo, settings=world.settings
    )
    mv = world.client().get_model_version("story-generation", version)
    assert mv.tags[lineage.ROLE] == "external"
    files = version_files(world.tracking.get_version("story-generation", version), world.settings)
    description = json.loads(next(files.rglob("provider.json")).read_text())
    assert description["api_key_env"] == "STORY_PROVIDER_API_KEY"
    assert "test-key-value" not in json.dumps(description)

    result = evaluate(
        use_case,
        identity,
        world.desired,
        repo=world.repo,
        settings=world.settings,
        candidate_version=version,
        champion_version=None,
        judge_safety=WordJudge("hurt"),
    )
    assert not result.passed
    assert result.measurements.safety_pass_rate == 0.0
    assert any(f.startswith("safetyPassRate") for f in result.failures)
    assert _Provider.seen_keys and all(k == "Bearer test-key-value" for k in _Provider.seen_keys)
