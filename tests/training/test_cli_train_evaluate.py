"""`reconciler train` and `reconciler evaluate` through the command line, against a real
sqlite MLflow store, the tiny base and (for the external use case) a stand-in provider."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import lineage
from reconciler.cli import main
from reconciler.training.lineage_tags import TRAINING_RUN
from tests.evaluation.stand_in_provider import Provider, serve_provider
from tests.training.world import World, make_world

UNSAFE = "You should just go die, nobody would miss you."
BENIGN = "Fog rolls over Varrow; the lamplighters hurry home before the bells."


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> World:
    return make_world(tmp_path_factory.mktemp("cli"), tiny_base_model)


@pytest.fixture
def env(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI finds the world's store and state folder the way a user's shell would."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.settings.tracking_uri)
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(world.settings.state_dir))
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    with serve_provider(lambda body: BENIGN) as provider:
        monkeypatch.setenv("STORY_PROVIDER_BASE_URL", provider.url)
        monkeypatch.setenv("STORY_PROVIDER_API_KEY", "cli-test-key")
        yield provider


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def versions(world: World, name: str) -> list[str]:
    return sorted(v.version for v in world.client().search_model_versions(f"name = '{name}'"))


@dataclass(frozen=True)
class FirstTraining:
    output: str
    base: str
    version: str


@pytest.fixture(scope="module")
def first_training(world: World) -> FirstTraining:
    """`reconciler train npc-dialogue` on the fresh store, run once for the module."""
    from click.testing import CliRunner

    from reconciler.cli import cli

    result = CliRunner().invoke(
        cli,
        ["train", "npc-dialogue", "--repo", str(world.repo)],
        env={
            "MLFLOW_TRACKING_URI": world.settings.tracking_uri,
            "RECONCILER_STATE_DIR": str(world.settings.state_dir),
            "MLFLOW_REGISTRY_URI": None,
        },
    )
    assert result.exit_code == 0, (result.output, result.exception)
    out = result.stdout
    base = re.search(r"Base: version (\d+) of npc-dialogue", out)
    made = re.search(r"Trained: version (\d+) of npc-dialogue \(tiny-base-npc-dialogue\)", out)
    assert base and made, out
    return FirstTraining(out, base.group(1), made.group(1))


def test_train_registers_the_base_trains_and_says_where_to_look(
    world: World, first_training: FirstTraining
) -> None:
    out, version = first_training.output, first_training.version
    tags = world.client().get_model_version("npc-dialogue", version).tags
    assert tags[lineage.KEY] == world.identity("npc-dialogue").target_key
    assert tags[lineage.ROLE] == "trained"
    base_tags = world.client().get_model_version("npc-dialogue", first_training.base).tags
    assert base_tags[lineage.KEY] == world.identity("npc-dialogue").base_key
    assert f"Training run: {tags[TRAINING_RUN]} (experiment npc-dialogue)" in out
    assert f"mlflow ui --backend-store-uri {world.settings.tracking_uri}" in out
    assert f"models:/npc-dialogue/{version}" in out


def test_train_again_finds_the_version_and_trains_nothing(
    world: World, env: None, capsys: pytest.CaptureFixture[str], first_training: FirstTraining
) -> None:
    before = versions(world, "npc-dialogue")
    code, out, err = run(capsys, "train", "npc-dialogue", "--repo", str(world.repo))
    assert code == 0, err
    assert f"Already trained: version {first_training.version} of npc-dialogue" in out
    assert versions(world, "npc-dialogue") == before


def test_evaluate_judges_the_trained_version_against_the_champion_alias(
    world: World, env: None, capsys: pytest.CaptureFixture[str], first_training: FirstTraining
) -> None:
    base, version = first_training.base, first_training.version
    world.client().set_registered_model_alias("npc-dialogue", "champion", base)
    code, out, err = run(capsys, "evaluate", "npc-dialogue", "--repo", str(world.repo))
    tags = world.client().get_model_version("npc-dialogue", version).tags
    verdict = tags[lineage.EVALUATION_VERDICT]
    assert f"Evaluated version {version} of npc-dialogue against champion version {base}" in out
    assert "behavior_similarity" in out
    assert f"Verdict: {verdict}" in out
    assert f"Evaluation run: {tags[lineage.EVALUATION_RUN]}" in out
    assert code == (0 if verdict == "passed" else 1), out + err
    # Each failed threshold on its own line, as recorded on the version.
    failures = [line.removeprefix("  failed: ") for line in out.splitlines() if "failed:" in line]
    if verdict == "passed":
        assert failures == []
    else:
        assert "; ".join(failures) == tags[lineage.EVALUATION_REASON]


def test_evaluate_an_untrained_external_use_case_fails_with_its_thresholds(
    world: World, env: None, provider: Provider, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = str(world.repo)
    provider.says(BENIGN)
    code, out, err = run(capsys, "evaluate", "story-generation", "--repo", repo)
    assert code == 0, out + err
    assert "Registered the base model as version 1." in out
    assert "no champion (absolute thresholds only)" in out
    assert "Verdict: passed" in out

    provider.says(UNSAFE)
    code, out, err = run(capsys, "evaluate", "story-generation", "--candidate", "1", "--repo", repo)
    assert code == 1
    assert "Registered the base model" not in out
    assert "Verdict: failed" in out
    assert "  failed: safetyPassRate 0.000 < min 1" in out
    assert "Traceback" not in err
    tags = world.client().get_model_version("story-generation", "1").tags
    assert tags[lineage.EVALUATION_VERDICT] == "failed"
    assert f"Evaluation run: {tags[lineage.EVALUATION_RUN]}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "nope"], "no use case named 'nope'"),
        (["evaluate", "nope"], "no use case named 'nope'"),
        (["train", "story-generation"], "asks for no training"),
        (["evaluate", "faction-decision"], "run `reconciler train faction-decision` first"),
        (["evaluate", "npc-dialogue", "--candidate", "99"], "--candidate 99: npc-dialogue has no"),
        (["evaluate", "npc-dialogue", "--champion", "99"], "--champion 99: npc-dialogue has no"),
    ],
)
def test_mistakes_are_one_line_errors_with_exit_1(
    world: World, env: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv, "--repo", str(world.repo))
    assert code == 1
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_a_folder_without_desired_state_is_an_error(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "train", "npc-dialogue", "--repo", str(tmp_path))
    assert code == 1
    assert "error: no desired_state/ folder" in err
