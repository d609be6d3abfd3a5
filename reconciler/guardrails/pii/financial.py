"""Payment cards and IBANs, validated with ``python-stdnum``.

A payment card is 12-19 digits that pass the Luhn checksum (``stdnum.luhn``), start with a
prefix a card scheme issues (Visa 4, Mastercard 51-55 and 2221-2720, Amex 34/37, ...) at a
length that scheme uses, and, when written with separators, are grouped as cards are printed
(fours, or Amex's 4-6-5). Random digit strings fail one of the three nine times in ten or
more; the runes of a puzzle rarely carry an issuer prefix.

An IBAN must pass ``stdnum.iban``: the mod-97 check digits and the country's BBAN layout.
"""

from __future__ import annotations

import re

from stdnum import iban, luhn

from reconciler.guardrails.pii import Span

_CARD_CANDIDATE = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){11,18}(?![\w-]|[.,]\d)")
# (first prefix, last prefix, lengths): card schemes' issuer identification ranges.
_ISSUERS: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(16, 20))),
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (2200, 2204, frozenset(range(16, 20))),  # Mir
    (50, 50, frozenset(range(12, 20))),  # Maestro
    (56, 58, frozenset(range(12, 20))),
    (639, 639, frozenset(range(12, 20))),
    (67, 67, frozenset(range(12, 20))),
    (60, 60, frozenset({16})),  # RuPay
    (508, 508, frozenset({16})),
)
# Printed groupings: fours (the last group shorter), or Amex / Diners 4-6-5 and 4-6-4.
_PRINTED_GROUPS = re.compile(
    r"\d{4}(?:([ -])\d{4}(?:\1\d{4}){0,3})?(?:[ -]\d{1,4})?|\d{4}([ -])\d{6}\2\d{4,5}"
)


def _issued(digits: str) -> bool:
    for first, last, lengths in _ISSUERS:
        prefix = int(digits[: len(str(first))])
        if first <= prefix <= last and len(digits) in lengths:
            return True
    return False


def _printed_like_a_card(raw: str) -> bool:
    return raw.isdigit() or _PRINTED_GROUPS.fullmatch(raw) is not None


def is_payment_card(raw: str) -> bool:
    digits = re.sub(r"\D", "", raw)
    return (
        12 <= len(digits) <= 19
        and _printed_like_a_card(raw)
        and _issued(digits)
        and luhn.is_valid(digits)
    )


def find_payment_cards(text: str) -> list[Span]:
    return [m.span() for m in _CARD_CANDIDATE.finditer(text) if is_payment_card(m.group(0))]


# Printed IBANs come in groups of four; the compact form is one run.
# Either case: stdnum upper-cases before it checks, and the checksum keeps words out.
_IBAN_CANDIDATE = re.compile(
    r"(?<![\w-])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?", re.IGNORECASE
)
_IBAN_GROUP_END = re.compile(r"(?<=[A-Za-z0-9])(?= )")


def _longest_valid_iban(candidate: str) -> int:
    """Length of the longest prefix of ``candidate`` that is a valid IBAN, 0 if none: a word
    in capitals after a printed IBAN ("... 7654 32 TODAY") can look like one more group."""
    ends = [len(candidate), *(m.start() for m in _IBAN_GROUP_END.finditer(candidate))]
    for end in sorted(set(ends), reverse=True):
        if iban.is_valid(candidate[:end]):
            return end
    return 0


def find_ibans(text: str) -> list[Span]:
    spans = []
    for match in _IBAN_CANDIDATE.finditer(text):
        length = _longest_valid_iban(match.group(0))
        if length and not text[match.start() + length : match.start() + length + 1].isalnum():
            spans.append((match.start(), match.start() + length))
    return spans
