"""A `source: huggingface` base, imported through the real huggingface_hub client from a
stand-in Hub on 127.0.0.1, registered with its lineage, and still usable offline from the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import lineage
from reconciler.model_loading import load_causal_lm
from reconciler.registry.version_files import locate_model_folders
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.tracking.mlflow_tracking import Tracking
from reconciler.training.base_models import (
    ModelUnavailableError,
    huggingface_snapshot,
    version_files,
)
from reconciler.training.registration import register_base
from tests.training.stand_in_hub import StandInHub, serve_hub

REPO_ID = "reconciler-tests/tiny-gpt2"
COMMIT = "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
USE_CASE = f"""\
# yaml-language-server: $schema=../reconciler/spec/schema.json
apiVersion: reconciler/v1
kind: UseCase
metadata:
  name: hub-chat
spec:
  registeredModel: hub-chat
  acceptableModels:
    - source: huggingface
      id: {REPO_ID}
      revision: {COMMIT}
      license: apache-2.0
  training:
    method: none
  evaluation:
    prompts: desired_state/datasets/npc_dialogue/eval.jsonl
"""


@pytest.fixture
def hub(
    tiny_base_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StandInHub]:
    """The stand-in Hub serving the tiny base, with the client pointed at it (HF_ENDPOINT) and
    its cache in tmp (HF_HUB_CACHE). huggingface_hub reads both when first imported, so its
    constants are set as well as the environment."""
    import huggingface_hub.constants as hub_constants

    with serve_hub(REPO_ID, COMMIT, tiny_base_model) as hub:
        cache = str(tmp_path / "hf-cache")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", cache)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(hub_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(
            hub_constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        )
        monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", cache)
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
        yield hub


@pytest.fixture
def desired(shipped_repo: Path) -> DesiredState:
    (shipped_repo / "desired_state" / "hub-chat.yaml").write_text(USE_CASE)
    loaded = load_desired_state(shipped_repo)
    assert loaded.state is not None, [d.render() for d in loaded.diagnostics]
    return loaded.state


def settings_in(folder: Path) -> Settings:
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    return Settings(
        tracking_uri=uri,
        registry_uri=uri,
        artifact_root=folder / "mlruns" / "artifacts",
        state_dir=folder / "state",
    )


def register(desired: DesiredState, repo: Path, settings: Settings) -> str:
    return register_base(
        desired.use_case("hub-chat"),
        desired.identities["hub-chat"],
        desired,
        repo=repo,
        settings=settings,
    )


def test_a_hub_model_is_downloaded_at_its_commit_registered_and_then_works_offline(
    hub: StandInHub,
    desired: DesiredState,
    shipped_repo: Path,
    tiny_base_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub.constants as hub_constants
    import torch

    settings = settings_in(tmp_path / "online")
    version = register(desired, shipped_repo, settings)

    # Every file of the commit came through the Hub protocol: listing, then HEAD + GET each.
    assert ("GET", f"/api/models/{REPO_ID}/tree/{COMMIT}") in hub.requests
    for name in hub.files:
        assert ("HEAD", f"/{REPO_ID}/resolve/{COMMIT}/{name}") in hub.requests
        assert ("GET", f"/{REPO_ID}/resolve/{COMMIT}/{name}") in hub.requests
    snapshot = Path(hub_constants.HF_HUB_CACHE) / "models--reconciler-tests--tiny-gpt2"
    assert (snapshot / "snapshots" / COMMIT / "model.safetensors").is_file()

    identity = desired.identities["hub-chat"]
    tags = Tracking(settings).get_version("hub-chat", version).tags
    assert tags[lineage.KEY] == identity.base_key
    assert tags[lineage.ROLE] == "base"
    assert tags[lineage.BASE_MODEL] == REPO_ID
    assert tags[lineage.BASE_REVISION] == COMMIT
    assert tags[lineage.USE_CASE] == "hub-chat"
    # The registered weights are the Hub's.
    files = version_files(Tracking(settings).get_version("hub-chat", version), settings)
    folders = locate_model_folders(files)
    registered, _ = load_causal_lm(folders.weights, folders.tokenizer)
    original, _ = load_causal_lm(tiny_base_model)
    expected = original.state_dict()
    for name, tensor in registered.state_dict().items():
        assert torch.equal(tensor, expected[name]), name

    # Offline: the cached snapshot serves, and nothing is asked of the Hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    asked = len(hub.requests)
    assert huggingface_snapshot(REPO_ID, COMMIT) == snapshot / "snapshots" / COMMIT
    offline_settings = settings_in(tmp_path / "offline")
    offline_version = register(desired, shipped_repo, offline_settings)
    offline_tags = Tracking(offline_settings).get_version("hub-chat", offline_version).tags
    assert offline_tags[lineage.KEY] == identity.base_key
    assert offline_tags[lineage.BASE_REVISION] == COMMIT
    assert len(hub.requests) == asked


def test_a_commit_the_hub_does_not_have_is_a_clear_error(hub: StandInHub) -> None:
    missing = "0" * 40
    with pytest.raises(ModelUnavailableError, match=f"cannot download {REPO_ID}@000000000000"):
        huggingface_snapshot(REPO_ID, missing)
    assert ("GET", f"/api/models/{REPO_ID}/tree/{missing}") in hub.requests
