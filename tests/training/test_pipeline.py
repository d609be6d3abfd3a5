"""Register, train (LoRA and full) and retrain against a real sqlite MLflow store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import lineage
from reconciler.guardrails.verdicts import Verdict
from reconciler.model_loading import load_causal_lm
from reconciler.registry.version_files import locate_model_folders
from reconciler.training.base_models import version_files
from reconciler.training.datasets import training_data
from reconciler.training.fine_tune import encode_examples, mean_loss, perplexity
from reconciler.training.lineage_tags import MODEL_NAME, TRAINING_RUN, dataset_digest_tag
from reconciler.training.logs import JsonlLogSource, LoggedExchange, exchange_to_json
from reconciler.training.pipeline import TRAINING_ATTEMPT, train
from reconciler.training.registration import register_base
from tests.training.world import World, make_world

NPC = "npc-dialogue"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> World:
    return make_world(tmp_path_factory.mktemp("pipeline"), tiny_base_model)


@pytest.fixture(scope="module")
def logs(world: World) -> JsonlLogSource:
    now = time.time()
    rows = [
        LoggedExchange(NPC, "1", "", "Is the forge hot?", "", "Always is.", 0.9, None, False, now),
        LoggedExchange(NPC, "1", "", "Bad one", "", "rude reply", 0.1, None, False, now),
        LoggedExchange(NPC, "1", "", "Flagged", "", "unsafe reply", 0.9, None, True, now),
    ]
    path = world.repo / "logs.jsonl"
    path.write_text("".join(json.dumps(exchange_to_json(r)) + "\n" for r in rows))
    return JsonlLogSource(path)


@pytest.fixture(scope="module")
def lora_version(world: World, logs: JsonlLogSource) -> Iterator[tuple[str, str]]:
    use_case, identity = world.use_case(NPC), world.identity(NPC)
    base = register_base(
        use_case, identity, world.desired, repo=world.repo, settings=world.settings
    )
    version = train(
        use_case,
        identity,
        world.desired,
        repo=world.repo,
        settings=world.settings,
        base_version=base,
        logs=logs,
        progress=False,
    )
    yield base, version


def test_register_base_is_idempotent_and_tagged(
    world: World, lora_version: tuple[str, str]
) -> None:
    base, _ = lora_version
    use_case, identity = world.use_case(NPC), world.identity(NPC)
    again = register_base(
        use_case, identity, world.desired, repo=world.repo, settings=world.settings
    )
    assert again == base
    tags = world.client().get_model_version(use_case.spec.registered_model, base).tags
    assert tags[lineage.KEY] == identity.base_key
    assert tags[lineage.ROLE] == "base"
    assert tags[lineage.BASE_MODEL] == "models/tiny-base"
    assert tags[lineage.BASE_REVISION] == "tiny-v1"
    assert tags[lineage.USE_CASE] == NPC


def test_the_registered_lora_version_beats_the_base_version_on_validation_loss(
    world: World, logs: JsonlLogSource, lora_version: tuple[str, str]
) -> None:
    base, version = lora_version
    use_case = world.use_case(NPC)
    data = training_data(use_case, datasets=world.desired.dataset_contents, logs=logs)
    client = world.client()
    mv = client.get_model_version("npc-dialogue", version)
    # The same validation examples the training run held out.
    assert mv.tags[dataset_digest_tag("validation")] == data.validation.digest
    assert data.validation.examples

    def validation_loss(number: str) -> float:
        """Mean loss of the registered version's own files on the validation examples."""
        files = version_files(world.tracking.get_version("npc-dialogue", number), world.settings)
        folders = locate_model_folders(files)
        model, tokenizer = load_causal_lm(folders.weights, folders.tokenizer)
        max_length = use_case.spec.training.hyperparameters.max_sequence_length
        encoded = encode_examples(tokenizer, data.validation.examples, max_length)
        return mean_loss(model, encoded, int(tokenizer.pad_token_id))

    base_loss, trained_loss = validation_loss(base), validation_loss(version)
    assert trained_loss < base_loss
    assert perplexity(trained_loss) < perplexity(base_loss)
    # What was registered is what the run measured: the base before training, the best after.
    run = client.get_run(mv.tags[TRAINING_RUN])
    assert run.data.metrics["initial_validation_loss"] == pytest.approx(base_loss, rel=1e-3)
    assert run.data.metrics["best_validation_loss"] == pytest.approx(trained_loss, rel=1e-3)
    history = client.get_metric_history(run.info.run_id, "validation_loss")
    assert len(history) >= 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "lora-adapter" in artifacts


def test_trained_version_carries_lineage_and_dataset_inputs(
    world: World, lora_version: tuple[str, str]
) -> None:
    base, version = lora_version
    identity = world.identity(NPC)
    client = world.client()
    mv = client.get_model_version("npc-dialogue", version)
    assert mv.tags[lineage.KEY] == identity.target_key
    assert mv.tags[lineage.ROLE] == "trained"
    assert mv.tags[lineage.BASE_KEY] == identity.base_key
    assert mv.tags[lineage.BASE_MODEL] == "models/tiny-base"
    assert mv.tags[lineage.USE_CASE] == NPC
    assert lineage.DESIRED_COMMIT in mv.tags
    for name in ("initial", "historical", "train", "validation"):
        assert mv.tags[dataset_digest_tag(name)].startswith("sha256:")
    assert mv.tags[MODEL_NAME] == "tiny-base-npc-dialogue"
    assert (mv.description or "").startswith("tiny-base-npc-dialogue: a use-case copy")
    # The logged model the version was registered from carries the use-case copy's name.
    assert mv.source.startswith("models:/m-")
    logged = client.get_logged_model(mv.source.removeprefix("models:/"))
    assert logged.name == "tiny-base-npc-dialogue"
    run = client.get_run(mv.tags[TRAINING_RUN])
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert {"npc-dialogue-initial", "npc-dialogue-train", "npc-dialogue-validation"} <= set(inputs)
    historical = inputs["npc-dialogue-historical"].dataset
    # Only the well-rated, guardrail-clean exchange made it into the training data.
    assert json.loads(historical.profile)["num_rows"] == 1
    assert version != base


def test_second_identical_training_reuses_the_version(
    world: World, logs: JsonlLogSource, lora_version: tuple[str, str]
) -> None:
    base, version = lora_version
    before = len(world.client().search_model_versions("name = 'npc-dialogue'"))
    again = train(
        world.use_case(NPC),
        world.identity(NPC),
        world.desired,
        repo=world.repo,
        settings=world.settings,
        base_version=base,
        logs=logs,
        progress=False,
    )
    assert again == version
    assert len(world.client().search_model_versions("name = 'npc-dialogue'")) == before


def test_full_fine_tuning_registers_a_version(world: World) -> None:
    name = "faction-decision"
    use_case, identity = world.use_case(name), world.identity(name)
    base = register_base(
        use_case, identity, world.desired, repo=world.repo, settings=world.settings
    )
    version = train(
        use_case,
        identity,
        world.desired,
        repo=world.repo,
        settings=world.settings,
        base_version=base,
        progress=False,
    )
    mv = world.client().get_model_version(name, version)
    run = world.client().get_run(mv.tags[TRAINING_RUN])
    assert run.data.params["method"] == "full"
    assert run.data.metrics["best_validation_loss"] < run.data.metrics["initial_validation_loss"]


def test_retrain_loop_makes_one_version_per_attempt_until_it_passes(
    world: World, lora_version: tuple[str, str]
) -> None:
    from reconciler.candidates.retrain import train_until_passing

    base, first = lora_version
    use_case = world.use_case(NPC)
    # Nothing tiny can reach this similarity to the base: every attempt fails.
    thresholds = use_case.spec.evaluation.thresholds.model_copy(
        update={
            "reference_similarity": type(use_case.spec.evaluation.thresholds.behavior_similarity)(
                min=0.99
            )
        }
    )
    strict = use_case.model_copy(
        update={
            "spec": use_case.spec.model_copy(
                update={
                    "evaluation": use_case.spec.evaluation.model_copy(
                        update={"thresholds": thresholds}
                    )
                }
            )
        }
    )

    class NoFlags:
        def verdicts(self, texts: list[str]) -> list[Verdict]:
            return [Verdict() for _ in texts]

    outcome = train_until_passing(
        strict,
        world.identity(NPC),
        world.desired,
        repo=world.repo,
        settings=world.settings,
        base_version=base,
        champion_version=base,
        progress=False,
        judge_safety=NoFlags(),
    )
    assert outcome.verdict is lineage.EvaluationVerdict.FAILED and outcome.attempts == 2
    assert outcome.version != first
    second = world.client().get_model_version("npc-dialogue", outcome.version)
    assert second.tags[TRAINING_ATTEMPT] == "2"
    run = world.client().get_run(second.tags[TRAINING_RUN])
    assert float(run.data.params["learning_rate"]) < 5e-4
    assert (
        world.client().get_model_version("npc-dialogue", first).tags[lineage.EVALUATION_VERDICT]
        == "failed"
    )
    # Each attempt finds its own version again, never a later attempt's (same key, newer).
    for attempt, expected in ((1, first), (2, outcome.version)):
        again = train(
            world.use_case(NPC),
            world.identity(NPC),
            world.desired,
            repo=world.repo,
            settings=world.settings,
            base_version=base,
            progress=False,
            attempt=attempt,
        )
        assert again == expected
        tags = world.client().get_model_version("npc-dialogue", again).tags
        assert tags[TRAINING_ATTEMPT] == str(attempt)
