from __future__ import annotations

import pytest

from reconciler.guardrails.checks.pattern import PatternCheck
from reconciler.guardrails.checks.pii import PiiCheck, find_pii, luhn_valid, mask_pii
from reconciler.guardrails.embeddings import TextBatch
from reconciler.spec.guardrail_parameters import PatternParameters, PiiKind, PiiParameters
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


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("378282246310005", True),
        ("5105105105105100", True),
        ("4111111111111112", False),
        ("1234567812345678", False),
        ("12ab", False),
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


def test_card_shaped_numbers_must_pass_luhn() -> None:
    assert [m.kind for m in find_pii("card 4111 1111 1111 1111")] == [PiiKind.PAYMENT_CARD]
    assert find_pii("the runes read 7319 0442 8861 5520") == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to sam.o@mail.example.org", PiiKind.EMAIL),
        ("call (415) 555-0132 tonight", PiiKind.PHONE),
        ("call +44 20 7946 0958 tonight", PiiKind.PHONE),
        ("SSN 123-45-6789", PiiKind.GOVERNMENT_ID),
        ("her social security number is 531442087", PiiKind.GOVERNMENT_ID),
        ("NI number AB 12 34 56 C", PiiKind.GOVERNMENT_ID),
    ],
)
def test_each_kind_is_found(text: str, kind: PiiKind) -> None:
    assert [m.kind for m in find_pii(text)] == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "That'll be 1250 gold, traveler.",
        "The vault combination is 4-8-15-16-23-42.",
        "Score: 9,450,120 points!",
        "Quest 2024-0815-7731 accepted.",
        "Meet me at 10:30 by the hearth.",
        "SSN-shaped but invalid: 000-12-3456 and 666-12-3456.",
    ],
)
def test_game_numbers_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_mask_pii_replaces_every_kind() -> None:
    masked = mask_pii("Mail a@b.io, call 555-867-5309, card 5555-5555-5555-4444, SSN 078-05-1120.")
    assert masked == "Mail [EMAIL], call [PHONE], card [CARD], SSN [GOVERNMENT-ID]."


def test_pii_check_honours_kinds_and_allow_list() -> None:
    parameters = PiiParameters.model_validate(
        {"kinds": ["email"], "allow": [r"@support\.emberfall\.example$"]}
    )
    check = PiiCheck(_spec(CheckType.PII), parameters)
    results = check.scan(
        TextBatch(["help@support.emberfall.example", "me@gmail.com", "call 555-867-5309"])
    )
    assert [r.violated for r in results] == [False, True, False]
    assert results[1].evidence == "email"
