"""The guardrails' encoder on ONNX Runtime gives sentence-transformers' vectors.

Both runtimes are real: the shipped MiniLM exported by torch's exporter and run by ONNX
Runtime, and the same folder loaded by sentence-transformers on PyTorch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reconciler.guardrails.embeddings import (
    RUNTIME_ENV,
    EmbeddingRuntimeError,
    SentenceTransformerEmbedder,
    locate_embedding_model,
)
from reconciler.guardrails.onnx_encoder import OnnxSentenceEncoder, load_onnx_encoder, supports

# Short and long, clauses and whole lines, punctuation, accents, emoji, an empty string, and
# one far past the 256-token limit (both runtimes must cut it at the same place).
TEXTS = [
    "Welcome to Emberfall, traveller.",
    "The orc swings his axe",
    "Nobody would miss you. You should just kill yourself tonight.",
    "Send me your mother's card number and the three digits on the back for 500 gems!",
    "Café crème for the bard — l'addition, s'il vous plaît. 🎻",
    "",
    "Rest by the fire; the quest will wait until tomorrow, and so will your friends. " * 30,
]


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RUNTIME_ENV, "torch")
        embedder = SentenceTransformerEmbedder(locate_embedding_model(), cache_size=0)
        assert embedder.runtime == "torch"
    return embedder


@pytest.fixture(scope="module")
def onnx_embedder() -> SentenceTransformerEmbedder:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(RUNTIME_ENV, raising=False)
        embedder = SentenceTransformerEmbedder(locate_embedding_model(), cache_size=0)
        assert embedder.runtime == "onnx"  # the default
    return embedder


def test_onnx_vectors_are_sentence_transformers_vectors(
    torch_embedder: SentenceTransformerEmbedder, onnx_embedder: SentenceTransformerEmbedder
) -> None:
    expected = torch_embedder.encode(TEXTS)
    got = onnx_embedder.encode(TEXTS)
    assert got.shape == expected.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = (got * expected).sum(axis=1)
    assert cosines.min() > 0.99999, cosines
    # One text at a time (no padding) and in a batch of mixed lengths agree too.
    alone = np.vstack([onnx_embedder.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(alone, got, atol=1e-5)


def test_more_texts_than_a_batch_keep_their_order(
    onnx_embedder: SentenceTransformerEmbedder,
) -> None:
    model = onnx_embedder._loaded()
    assert isinstance(model, OnnxSentenceEncoder)
    texts = [f"The merchant sells {n} apples to the {'old ' * (n % 7)}knight." for n in range(40)]
    batched = model.encode(texts, batch_size=8)
    one_batch = model.encode(texts, batch_size=64)
    np.testing.assert_allclose(batched, one_batch, atol=1e-5)
    np.testing.assert_allclose(batched[5], model.encode([texts[5]], batch_size=1)[0], atol=1e-5)


def test_the_export_is_made_once_and_reused(tmp_path: Path) -> None:
    source = locate_embedding_model()
    first = load_onnx_encoder(source, threads=1, cache_dir=tmp_path)
    exported = list(tmp_path.glob("minilm-*-onnx*.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    again = load_onnx_encoder(source, threads=2, cache_dir=tmp_path)  # a new encoder
    assert again is not first
    assert exported[0].stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("*.partial-*"))  # no half-written file left behind
    np.testing.assert_allclose(
        first.encode(TEXTS[:3], batch_size=4), again.encode(TEXTS[:3], batch_size=4), atol=1e-6
    )


def test_a_folder_with_another_pipeline_stays_on_sentence_transformers(tmp_path: Path) -> None:
    source = locate_embedding_model()
    assert supports(source)
    copy = tmp_path / "cls-pooled"
    shutil.copytree(source, copy)
    pooling = copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    assert not supports(copy)
    assert SentenceTransformerEmbedder(copy).runtime == "torch"
    (copy / "modules.json").write_text("not json")
    assert not supports(copy)


@pytest.mark.parametrize(
    ("file", "change"),
    [
        ("sentence_bert_config.json", {"do_lower_case": True}),
        ("sentence_bert_config.json", {"max_seq_length": None}),
        ("config_sentence_transformers.json", {"prompts": {"query": "query: "}}),
        ("config.json", {"type_vocab_size": 0}),
    ],
)
def test_what_the_onnx_encoder_would_not_reproduce_is_left_to_sentence_transformers(
    tmp_path: Path, file: str, change: dict[str, object]
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(locate_embedding_model(), copy)
    assert supports(copy)
    path = copy / file
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert not supports(copy)


def test_an_export_that_cannot_be_made_falls_back_to_pytorch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from reconciler.guardrails.static_embeddings import CACHE_DIR_ENV

    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocked))
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    embedder = SentenceTransformerEmbedder(locate_embedding_model(), cache_size=0)
    with caplog.at_level("WARNING"):
        assert embedder.runtime == "torch"
    assert "runs on PyTorch" in caplog.text and str(blocked) in caplog.text
    assert embedder.encode(TEXTS[:2]).shape == (2, 384)
    assert not list(tmp_path.glob("**/*.partial-*"))


def test_an_unknown_runtime_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNTIME_ENV, "tensorrt")
    with pytest.raises(EmbeddingRuntimeError, match=r"tensorrt.*expected onnx or torch"):
        SentenceTransformerEmbedder(locate_embedding_model()).encode(["hello"])
