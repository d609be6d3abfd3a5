"""Shared fixtures: the real embedding model, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.guardrails.embeddings import SentenceTransformerEmbedder, default_embedder
from reconciler.guardrails.engine import GuardrailEngine, compile_policies
from reconciler.spec.loader import load_desired_state
from reconciler.spec.model import GuardrailPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return default_embedder()


@pytest.fixture(scope="session")
def shipped_policies() -> tuple[GuardrailPolicy, ...]:
    result = load_desired_state(REPO_ROOT)
    assert result.state is not None, [d.render() for d in result.diagnostics]
    return result.state.policies


@pytest.fixture(scope="session")
def shipped_engine(
    shipped_policies: tuple[GuardrailPolicy, ...], embedder: SentenceTransformerEmbedder
) -> GuardrailEngine:
    return compile_policies(shipped_policies, embedder=embedder)
