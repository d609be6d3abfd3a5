"""The embedder's cache: repeated lines are embedded once, and the answers do not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reconciler.guardrails.embeddings import SentenceTransformerEmbedder, locate_embedding_model

LINES = [
    "Welcome to Emberfall, traveller.",
    "The orc swings his axe.",
    "Take a break, the quest will wait.",
]


def test_cached_vectors_equal_fresh_ones_and_keep_the_order(
    embedder: SentenceTransformerEmbedder,
) -> None:
    fresh = SentenceTransformerEmbedder(locate_embedding_model(), cache_size=0)
    fresh._model = embedder._loaded()  # the same weights, without loading them twice
    expected = fresh.encode(LINES)
    first = embedder.encode([LINES[0], LINES[1], LINES[0]])
    again = embedder.encode([LINES[2], LINES[1], LINES[0]])
    np.testing.assert_allclose(first, expected[[0, 1, 0]], atol=1e-5)
    np.testing.assert_allclose(again, expected[[2, 1, 0]], atol=1e-5)


def test_the_cache_keeps_only_the_most_recent_lines(
    embedder: SentenceTransformerEmbedder,
) -> None:
    small = SentenceTransformerEmbedder(locate_embedding_model(), cache_size=2)
    small._model = embedder._loaded()
    small.encode(LINES[:2])
    small.encode([LINES[0]])  # LINES[0] becomes the most recently used
    small.encode([LINES[2]])
    assert list(small._cache) == [LINES[0], LINES[2]]


def test_the_static_cache_is_per_user_unless_moved_or_unwritable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.guardrails.static_embeddings import CACHE_DIR_ENV, static_cache_dir

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "moved"))
    assert static_cache_dir() == tmp_path / "moved"
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert static_cache_dir() == tmp_path / "xdg" / "reconciler" / "static-embeddings"
    assert static_cache_dir().is_dir()
    # A cache home that cannot hold a folder (a file stands there): the state folder's.
    (tmp_path / "blocked").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path / "state"))
    assert static_cache_dir() == tmp_path / "state" / "static-embeddings"
