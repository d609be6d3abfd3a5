"""PII check: e-mail addresses, phone numbers, payment cards and government ids in outputs.

Shapes are deliberately strict so game text passes: a phone number needs separators or a
``+country`` prefix (plain runs of digits are scores and gold), a payment card must pass the
Luhn checksum (item codes rarely do), and a bare nine-digit SSN counts only next to words
that name it. `mask_pii` is also what the violation store uses to redact its samples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.guardrails.embeddings import TextBatch
from reconciler.guardrails.verdicts import PASSED, CheckResult
from reconciler.spec.guardrail_parameters import PiiKind, PiiParameters
from reconciler.spec.model import GuardrailCheck

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_NORTH_AMERICAN_PHONE = re.compile(
    r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]\d{4}(?![\d-])"
)
_INTERNATIONAL_PHONE = re.compile(r"(?<![\w+])\+[1-9]\d{0,2}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?!\d)")
_CARD_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
_NAMED_SSN = re.compile(
    r"\b(?:ssn|social\s+security(?:\s+number)?|social)\b\D{0,20}?(?<!\d)(\d{9})(?!\d)",
    re.IGNORECASE,
)
# UK National Insurance number: upper case only, so ordinary words never match.
_UK_NATIONAL_INSURANCE = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"
)

MASKS: dict[PiiKind, str] = {
    PiiKind.EMAIL: "[EMAIL]",
    PiiKind.PHONE: "[PHONE]",
    PiiKind.PAYMENT_CARD: "[CARD]",
    PiiKind.GOVERNMENT_ID: "[GOVERNMENT-ID]",
}


@dataclass(frozen=True)
class PiiMatch:
    kind: PiiKind
    start: int
    end: int
    value: str


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number carries."""
    if not digits.isdigit():
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _phone_digits_plausible(value: str) -> bool:
    return 8 <= sum(c.isdigit() for c in value) <= 15


def _candidates(text: str, kinds: Iterable[PiiKind]) -> list[PiiMatch]:
    found: list[PiiMatch] = []
    for kind in kinds:
        if kind is PiiKind.EMAIL:
            spans = [m.span() for m in _EMAIL.finditer(text)]
        elif kind is PiiKind.PAYMENT_CARD:
            spans = [
                m.span()
                for m in _CARD_CANDIDATE.finditer(text)
                if 13 <= len(digits := re.sub(r"\D", "", m.group(0))) <= 19 and luhn_valid(digits)
            ]
        elif kind is PiiKind.PHONE:
            spans = [m.span() for m in _NORTH_AMERICAN_PHONE.finditer(text)]
            spans += [
                m.span()
                for m in _INTERNATIONAL_PHONE.finditer(text)
                if _phone_digits_plausible(m.group(0))
            ]
        else:
            spans = [m.span() for m in _SSN.finditer(text)]
            spans += [m.span(1) for m in _NAMED_SSN.finditer(text)]
            spans += [m.span() for m in _UK_NATIONAL_INSURANCE.finditer(text)]
        found += [PiiMatch(kind, start, end, text[start:end]) for start, end in spans]
    return found


def find_pii(
    text: str, kinds: Iterable[PiiKind] = tuple(PiiKind), allow: Iterable[re.Pattern[str]] = ()
) -> list[PiiMatch]:
    """PII in ``text``, in order, without overlaps (cards win over phones), allow-list applied."""
    allowed = list(allow)
    # Cards first: a 16-digit card also contains phone-shaped runs.
    priority = [PiiKind.PAYMENT_CARD, PiiKind.GOVERNMENT_ID, PiiKind.EMAIL, PiiKind.PHONE]
    wanted = set(kinds)
    chosen: list[PiiMatch] = []
    for match in _candidates(text, [k for k in priority if k in wanted]):
        if any(a.search(match.value) for a in allowed):
            continue
        if all(match.end <= c.start or c.end <= match.start for c in chosen):
            chosen.append(match)
    return sorted(chosen, key=lambda m: m.start)


def mask_pii(text: str) -> str:
    """``text`` with every kind of PII replaced by a placeholder such as ``[EMAIL]``."""
    masked = text
    for match in reversed(find_pii(text)):
        masked = masked[: match.start] + MASKS[match.kind] + masked[match.end :]
    return masked


class PiiCheck:
    def __init__(self, spec: GuardrailCheck, parameters: PiiParameters) -> None:
        self.spec = spec
        self._kinds = tuple(parameters.kinds)
        self._allow = [re.compile(a, re.IGNORECASE) for a in parameters.allow]

    def scan(self, batch: TextBatch) -> list[CheckResult]:
        results = []
        for text in batch.texts:
            matches = find_pii(text, self._kinds, self._allow)
            if not matches:
                results.append(PASSED)
                continue
            kinds = sorted({m.kind.value for m in matches})
            # Evidence names the kinds only: the value itself is the secret.
            results.append(CheckResult(violated=True, score=1.0, evidence=", ".join(kinds)))
        return results
