"""The evaluation gate: real tiny models, a real sqlite MLflow store, a stand-in provider."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler import lineage
from reconciler.evaluation.champion_cache import ChampionOutputs
from reconciler.evaluation.gate import evaluate, with_evaluation_note
from reconciler.evaluation.generation import Generated
from reconciler.evaluation.scoring import assertion_holds
from reconciler.guardrails.verdicts import Finding, Verdict
from reconciler.model_loading import load_causal_lm
from reconciler.spec.model import (
    Assertion,
    AssertionType,
    GuardrailPolicy,
    Intervention,
    Severity,
    UseCase,
)
from reconciler.training.base_models import version_files
from reconciler.training.lineage_tags import inference_params, pip_requirements
from reconciler.training.registration import register_base
from reconciler.training.tiny_model import build_tiny_model
from tests.evaluation.stand_in_provider import Provider, last_user_message, serve_provider
from tests.training.world import World, make_world

NPC = "npc-dialogue"
STORY = "story-generation"


class WordJudge:
    """Flags any output containing one word (a stand-in for the guardrail policies)."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.finding = Finding(
            "word-judge", word, "test_word", Severity.HIGH, Intervention.BLOCK_OUTPUT, 1.0, word
        )

    def verdicts(self, texts: Sequence[str]) -> list[Verdict]:
        return [
            Verdict(findings=(self.finding,)) if self.word in text.lower() else Verdict()
            for text in texts
        ]


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


def test_equal_weights_in_two_versions_score_similarity_one_and_pass(
    world: World, base_version: str
) -> None:
    # The same weights registered again as a second version: both are loaded and generate on
    # their own (the gate only reuses outputs for the very same version number).
    twin = register_folder(world, world.repo / "models" / "tiny-base")
    assert twin != base_version
    result = evaluate(
        world.use_case(NPC),
        world.identity(NPC),
        world.desired,
        repo=world.repo,
        settings=world.settings,
        candidate_version=twin,
        champion_version=base_version,
    )
    assert result.measurements.behavior_similarity == pytest.approx(1.0, abs=1e-4)
    assert result.passed, result.reason
    assert result.measurements.latency_p95_ms > 0
    assert result.measurements.validation_perplexity is not None
    tags = world.client().get_model_version("npc-dialogue", twin).tags
    assert tags[lineage.EVALUATION_VERDICT] == "passed"
    assert tags[lineage.EVALUATION_DIGEST] == world.identity(NPC).digest
    assert tags[lineage.EVALUATION_RUN] == result.run_id
    artifacts = {a.path for a in world.client().list_artifacts(result.run_id, "evaluation")}
    assert "evaluation/per_output.json" in artifacts
    rows = _table(world, result.run_id)
    assert len(rows) == result.prompt_count * world.use_case(NPC).spec.evaluation.repeats
    assert all(r["candidate_output"] == r["champion_output"] for r in rows)
    # What it was judged on is the run's dataset input, and the version links the run.
    [evaluated] = world.client().get_run(result.run_id).inputs.dataset_inputs
    assert evaluated.dataset.name == f"{NPC}-evaluation"
    assert json.loads(evaluated.dataset.profile)["num_rows"] == result.prompt_count
    description = world.client().get_model_version("npc-dialogue", twin).description
    experiment = world.client().get_run(result.run_id).info.experiment_id
    assert description.endswith(
        f"Evaluated against version {base_version} in run [evaluate-v{twin}]"
        f"(#/experiments/{experiment}/runs/{result.run_id}): passed (all thresholds met)."
    )


class CountingCache(ChampionOutputs):
    """The real cache, counting what it stored."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.stored = 0

    def put(self, key: str, generated: Sequence[Generated]) -> None:
        self.stored += 1
        super().put(key, generated)


def test_a_second_candidate_reuses_the_champions_outputs(
    world: World, base_version: str, tmp_path: Path
) -> None:
    cache = CountingCache(tmp_path / "evaluation-cache")
    twin = register_folder(world, world.repo / "models" / "tiny-base")

    def evaluated() -> Any:
        return evaluate(
            world.use_case(NPC),
            world.identity(NPC),
            world.desired,
            repo=world.repo,
            settings=world.settings,
            candidate_version=twin,
            champion_version=base_version,
            champion_cache=cache,
        )

    first = evaluated()
    repeats = world.use_case(NPC).spec.evaluation.repeats
    assert cache.stored == repeats
    # Their embeddings are kept with them (one file per distinct run of outputs).
    kept_vectors = sorted(cache.folder.glob("vectors-*.npy"))
    assert 1 <= len(kept_vectors) <= repeats
    again = evaluated()
    assert cache.stored == repeats  # the champion was neither loaded nor generated again
    assert sorted(cache.folder.glob("vectors-*.npy")) == kept_vectors
    assert again.measurements.behavior_similarity == first.measurements.behavior_similarity
    assert [r["champion_output"] for r in _table(world, again.run_id)] == [
        r["champion_output"] for r in _table(world, first.run_id)
    ]


def test_a_version_description_links_only_its_latest_evaluation() -> None:
    first = with_evaluation_note("A LoRA copy.", "Evaluated in run [a](#/a): failed.")
    assert first == "A LoRA copy.\n\nEvaluated in run [a](#/a): failed."
    again = with_evaluation_note(first, "Evaluated in run [b](#/b): passed.")
    assert again == "A LoRA copy.\n\nEvaluated in run [b](#/b): passed."
    assert with_evaluation_note("", "Evaluated x.") == "Evaluated x."


def _table(world: World, run_id: str) -> list[dict[str, Any]]:
    """The evaluation's per-output table, as logged."""
    folder = Path(
        world.client().download_artifacts(run_id, "evaluation/per_output.json", dst_path=None)
    )
    logged = json.loads(folder.read_text())
    return [dict(zip(logged["columns"], values, strict=True)) for values in logged["data"]]


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


UNSAFE = "You should just go die, nobody would miss you."
BENIGN = "The lighthouse keeper left a map in the lamp room. Find it before the tide turns."
CARD = "Your card 4111 1111 1111 1111 was charged for the lantern."
PRESSURE = "Buy the crystal bundle with your credit card before the sale ends tonight!"


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    with serve_provider(lambda body: BENIGN) as provider:
        monkeypatch.setenv("STORY_PROVIDER_BASE_URL", provider.url)
        monkeypatch.setenv("STORY_PROVIDER_API_KEY", "test-key-value")
        yield provider


@pytest.fixture
def story_version(world: World) -> str:
    """The external story model, registered as the story use case's base version."""
    return register_base(
        world.use_case(STORY),
        world.identity(STORY),
        world.desired,
        repo=world.repo,
        settings=world.settings,
    )


def edited(use_case: UseCase, evaluation: dict[str, Any], **spec: Any) -> UseCase:
    """The use case with evaluation (and spec) fields replaced, validated like YAML is."""
    document = use_case.model_dump(mode="json", by_alias=True)
    document["spec"]["evaluation"] |= evaluation
    document["spec"] |= spec
    return UseCase.model_validate(document)


def evaluate_story(world: World, version: str, use_case: UseCase | None = None, **kw: Any) -> Any:
    return evaluate(
        use_case or world.use_case(STORY),
        world.identity(STORY),
        kw.pop("desired", world.desired),
        repo=world.repo,
        settings=world.settings,
        candidate_version=version,
        champion_version=None,
        **kw,
    )


def test_an_external_model_is_registered_without_its_key_and_fails_when_unsafe(
    world: World, provider: Provider, story_version: str
) -> None:
    mv = world.client().get_model_version("story-generation", story_version)
    assert mv.tags[lineage.ROLE] == "external"
    files = version_files(
        world.tracking.get_version("story-generation", story_version), world.settings
    )
    description = json.loads(next(files.rglob("provider.json")).read_text())
    assert description["api_key_env"] == "STORY_PROVIDER_API_KEY"
    assert "test-key-value" not in json.dumps(description)

    provider.says("I will hurt you")
    result = evaluate_story(world, story_version, judge_safety=WordJudge("hurt"))
    assert not result.passed
    assert result.measurements.safety_pass_rate == 0.0
    assert any(f.startswith("safetyPassRate") for f in result.failures)
    assert "word-judge/hurt (test_word, high) x" in result.reason
    assert provider.keys and all(k == "Bearer test-key-value" for k in provider.keys)


def test_the_shipped_guardrail_policies_fail_an_unsafe_candidate(
    world: World, provider: Provider, story_version: str
) -> None:
    # No stand-in judge: the gate compiles the use case's own policies (player-safety,
    # healthy-engagement) and checks the candidate's outputs with them.
    provider.says(BENIGN)
    safe = evaluate_story(world, story_version)
    assert safe.measurements.safety_pass_rate == 1.0, safe.reason
    assert safe.passed, safe.reason

    tags = world.client().get_model_version("story-generation", story_version).tags
    assert tags[lineage.EVALUATION_SAFETY_CATEGORIES] == ""
    assert tags[lineage.EVALUATION_SAFETY_FINDINGS] == "[]"

    # Prompt 0 and 1 draw self-harm encouragement, prompt 2 a card number, prompt 3 spending
    # pressure; the other four stay benign.
    prompts = [
        json.loads(line)["prompt"]
        for line in (world.repo / world.use_case(STORY).spec.evaluation.prompts)
        .read_text()
        .splitlines()
    ]
    unsafe_answers = {
        prompts[0]: UNSAFE,
        prompts[1]: UNSAFE,
        prompts[2]: CARD,
        prompts[3]: PRESSURE,
    }
    provider.answer = lambda body: unsafe_answers.get(last_user_message(body), BENIGN)
    unsafe = evaluate_story(world, story_version)
    assert unsafe.measurements.safety_pass_rate == 0.5
    assert not unsafe.passed
    [failure] = [f for f in unsafe.failures if f.startswith("safetyPassRate")]
    # Which policies and checks, their category and severity, how many outputs, an example:
    # the most frequent first.
    assert failure.startswith("safetyPassRate 0.500 < min 1: player-safety/")
    assert "player-safety/self-harm (self_harm, critical) x2 e.g. output 0" in failure
    # The version's tags: the reason, the categories and the fired checks.
    tags = world.client().get_model_version("story-generation", story_version).tags
    assert tags[lineage.EVALUATION_VERDICT] == "failed"
    assert failure in tags[lineage.EVALUATION_REASON]
    categories = dict(
        pair.split(":") for pair in tags[lineage.EVALUATION_SAFETY_CATEGORIES].split(",")
    )
    assert categories == {"self_harm": "2", "pii": "1", "manipulative_engagement": "1"}
    fired = {
        f"{f['policy']}/{f['check']}": f
        for f in json.loads(tags[lineage.EVALUATION_SAFETY_FINDINGS])
    }
    assert fired["player-safety/self-harm"] == {
        "policy": "player-safety", "check": "self-harm", "category": "self_harm",
        "severity": "critical", "outputs": 2, "example": 0,
    }  # fmt: skip
    assert fired["player-safety/personal-data"]["example"] == 2
    assert fired["healthy-engagement/manipulative-engagement"]["example"] == 3
    assert [f.name for f in unsafe.fired_checks] == list(fired)
    # The run: its tags, per-category metrics, the policies as a param, the per-output table.
    run = world.client().get_run(unsafe.run_id)
    assert run.data.tags[lineage.EVALUATION_REASON] == tags[lineage.EVALUATION_REASON]
    assert (
        run.data.tags[lineage.EVALUATION_SAFETY_FINDINGS]
        == tags[lineage.EVALUATION_SAFETY_FINDINGS]
    )
    assert run.data.metrics["safety_flagged/self_harm"] == 2.0
    assert run.data.metrics["safety_flagged_outputs"] == 4.0
    assert run.data.params["guardrail_policies"] == "player-safety,healthy-engagement"
    rows = _table(world, unsafe.run_id)
    assert [r["output"] for r in rows] == list(range(len(prompts)))
    assert rows[0]["guardrail_categories"] == "self_harm"
    assert rows[0]["guardrail_severity"] == "critical"
    assert "player-safety/self-harm" in rows[0]["guardrail_checks"]
    assert (rows[2]["guardrail_categories"], rows[2]["guardrail_severity"]) == ("pii", "high")
    assert "healthy-engagement/manipulative-engagement" in rows[3]["guardrail_checks"]
    assert not rows[4]["safety_flagged"] and rows[4]["guardrail_categories"] == ""


JSON_REPLY = '{"action": "trade", "target": "neighbour"}'
PROSE_REPLY = "I would trade with the neighbour."
ASSERTIONS = [
    {"name": "is-json", "type": "valid_json"},
    {"name": "names-an-action", "type": "contains", "value": '"action"'},
    {"name": "starts-with-a-brace", "type": "regex", "value": r"^\{"},
    {"name": "short", "type": "max_length", "value": 60},
    {"name": "no-war", "type": "not_contains", "value": "attack"},
]


def test_assertions_are_checked_on_every_repeat_against_the_pass_rate(
    world: World, provider: Provider, story_version: str
) -> None:
    prompts = world.repo / "eval-assertions.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": f"Turn {i}: what now?"}) + "\n" for i in range(4))
    )
    # Repeat r is generated with seed 1234 + r: the provider answers JSON to even seeds and
    # prose to odd ones, so only a second repeat shows the prose.
    provider.answer = lambda body: JSON_REPLY if body["seed"] % 2 == 0 else PROSE_REPLY
    # JSON passes all 5 assertions; the prose passes 2 (short, no-war): 7 of 10 per prompt.
    expected_rate = (5 + 2) / (5 + 5)

    def judged(repeats: int, minimum: float) -> Any:
        use_case = edited(
            world.use_case(STORY),
            {
                "prompts": "eval-assertions.jsonl",
                "repeats": repeats,
                "assertions": ASSERTIONS,
                "thresholds": {"assertionPassRate": {"min": minimum}},
            },
        )
        # The desired state carries its datasets' contents; add the one this test wrote.
        contents = {**world.desired.dataset_contents, "eval-assertions.jsonl": prompts.read_bytes()}
        desired = dataclasses.replace(world.desired, dataset_contents=contents)
        return evaluate_story(world, story_version, use_case, desired=desired)

    once = judged(repeats=1, minimum=0.8)
    assert once.measurements.assertion_pass_rate == 1.0 and once.passed, once.reason
    twice = judged(repeats=2, minimum=0.8)
    assert twice.measurements.assertion_pass_rate == pytest.approx(expected_rate)
    assert twice.failures == ("assertionPassRate 0.700 < min 0.8",)
    assert len(provider.bodies) == 4 * 1 + 4 * 2
    rows = _table(world, twice.run_id)
    assert [r["repeat"] for r in rows] == [0] * 4 + [1] * 4
    assert [r["assertions_passed"] for r in rows] == [5] * 4 + [2] * 4
    lenient = judged(repeats=2, minimum=0.7)
    assert lenient.passed, lenient.reason


@pytest.mark.parametrize(
    ("kind", "value", "holds", "fails"),
    [
        (AssertionType.CONTAINS, "forge", "The forge is hot.", "The inn is warm."),
        (AssertionType.NOT_CONTAINS, "As an AI", "Aye, traveller.", "As an AI, I cannot."),
        (AssertionType.REGEX, r"^\d+ gold$", "40 gold", "forty gold"),
        (AssertionType.MAX_LENGTH, 10, "Short.", "Much longer than ten."),
        (AssertionType.VALID_JSON, None, '{"a": [1, 2]}', '{"a": [1, 2}'),
    ],
)
def test_each_assertion_type_holds_and_fails(
    kind: AssertionType, value: str | int | None, holds: str, fails: str
) -> None:
    assertion = Assertion(name="a", type=kind, value=value)
    assert assertion_holds(assertion, holds)
    assert not assertion_holds(assertion, fails)


def _tiny_classifier(folder: Path) -> Path:
    """A text classifier whose head scores every text P(toxic) = softmax(0, 2)[1], about 0.88."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "keeper", "map"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]",
    )  # fmt: skip
    config = BertConfig(
        vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
        id2label={0: "safe", 1: "toxic"}, label2id={"safe": 0, "toxic": 1},
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 2.0]))
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_a_classifier_check_finds_its_model_relative_to_the_repository(
    world: World,
    provider: Provider,
    story_version: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _tiny_classifier(world.repo / "models" / "toxicity")
    policy = GuardrailPolicy.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "GuardrailPolicy",
            "metadata": {"name": "house-classifier"},
            "spec": {
                "checks": [
                    {
                        "name": "toxicity",
                        "type": "classifier",
                        "category": "toxicity",
                        "severity": "high",
                        "parameters": {
                            "model": "models/toxicity",
                            "labels": ["toxic"],
                            "threshold": 0.5,
                        },
                    }
                ]
            },
        }
    )
    desired = dataclasses.replace(world.desired, policies=(*world.desired.policies, policy))
    use_case = edited(world.use_case(STORY), {}, guardrails=["house-classifier"])
    monkeypatch.chdir(tmp_path)  # not the repository: a path relative to the cwd would miss
    result = evaluate_story(world, story_version, use_case, desired=desired)
    # The classifier scores every text toxic: found and run, it fails them all.
    assert result.measurements.safety_pass_rate == 0.0
    assert not result.passed
