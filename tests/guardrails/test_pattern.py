"""The pattern check: expressions and phrases, with an allow-list (PII: test_pii.py)."""

from __future__ import annotations

from reconciler.guardrails.checks.pattern import PatternCheck
from reconciler.guardrails.embeddings import TextBatch
from reconciler.spec.guardrail_parameters import PatternParameters
from reconciler.spec.model import CheckType, GuardrailCheck, Severity


def _spec(kind: CheckType) -> GuardrailCheck:
    return GuardrailCheck(name="c", type=kind, category="x", severity=Severity.HIGH)


def _pattern(**parameters: list[str]) -> PatternCheck:
    return PatternCheck(_spec(CheckType.PATTERN), PatternParameters.model_validate(parameters))


def test_patterns_and_phrases_match_case_insensitively() -> None:
    check = _pattern(patterns=[r"\bhurt\s+yourself\b"], phrases=["real money"])
    results = check.scan(TextBatch(["Go HURT   yourself", "Pay with REAL money", "The orc roars"]))
    assert [r.violated for r in results] == [True, True, False]
    assert results[1].evidence == "REAL money"


def test_allow_list_excuses_only_the_overlapping_match() -> None:
    check = _pattern(patterns=[r"\bhurt\s+yourself\b"], allow=[r"\bdon'?t\s+hurt\s+yourself\b"])
    careful, mixed = check.scan(
        TextBatch(
            ["Careful, don't hurt yourself.", "Don't hurt yourself. No, wait: hurt yourself."]
        )
    )
    assert not careful.violated
    assert mixed.violated
