"""Shared fixtures: the real embedding model, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.guardrails.embeddings import SentenceTransformerEmbedder, default_embedder
from reconciler.guardrails.engine import GuardrailEngine, compile_policies
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.spec.model import GuardrailPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return default_embedder()


@pytest.fixture(scope="session")
def shipped_state() -> DesiredState:
    result = load_desired_state(REPO_ROOT)
    assert result.state is not None, [d.render() for d in result.diagnostics]
    return result.state


@pytest.fixture(scope="session")
def every_policy(shipped_state: DesiredState) -> tuple[GuardrailPolicy, ...]:
    """Every policy in `policies/`, the opt-in `game-hazards` included."""
    return shipped_state.policies


@pytest.fixture(scope="session")
def shipped_policies(shipped_state: DesiredState) -> tuple[GuardrailPolicy, ...]:
    """The policies the shipped use cases list: what the demo's gateway and gate run."""
    used = {name for u in shipped_state.use_cases for name in u.spec.guardrails}
    assert used, "the shipped use cases list guardrail policies"
    return tuple(p for p in shipped_state.policies if p.name in used)


@pytest.fixture(scope="session")
def shipped_engine(
    shipped_policies: tuple[GuardrailPolicy, ...], embedder: SentenceTransformerEmbedder
) -> GuardrailEngine:
    return compile_policies(shipped_policies, embedder=embedder, base_path=REPO_ROOT)


@pytest.fixture(scope="session")
def opted_in_engine(
    every_policy: tuple[GuardrailPolicy, ...], embedder: SentenceTransformerEmbedder
) -> GuardrailEngine:
    """The shipped policies plus the opt-in `game-hazards` (its hazard cascade)."""
    return compile_policies(every_policy, embedder=embedder, base_path=REPO_ROOT)
