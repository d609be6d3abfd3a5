"""The tiny base builds deterministically; an uncached Hugging Face model offline fails clearly."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from reconciler.training.base_models import ModelUnavailableError, huggingface_snapshot
from reconciler.training.tiny_model import build_tiny_model


def test_tiny_model_build_is_deterministic(tmp_path: Path) -> None:
    # A short pretraining is enough to show it is part of what is reproduced.
    build = partial(build_tiny_model, extra_texts=["A smith's forge."], pretrain_steps=20)
    one, two = build(tmp_path / "one", seed=3), build(tmp_path / "two", seed=3)
    names = sorted(p.name for p in one.iterdir())
    assert "model.safetensors" in names and "tokenizer.json" in names
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    other = build(tmp_path / "other", seed=4)
    assert (other / "model.safetensors").read_bytes() != (one / "model.safetensors").read_bytes()


def test_huggingface_model_offline_and_not_cached_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(ModelUnavailableError, match="not in the local cache"):
        huggingface_snapshot("HuggingFaceTB/SmolLM2-135M-Instruct", "a" * 40)
