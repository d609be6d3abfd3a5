"""Phone numbers, found and validated with ``phonenumbers`` (Google's libphonenumber).

A cheap expression first picks digit runs that could be a phone number (7-17 digits with
the separators people write), so texts without one never reach the library. Then:

* ``+44 20 7946 0958``, ``0044 20 7946 0958``: an international number counts when
  libphonenumber says it is a valid number of its country, however it is grouped.
* ``020 7946 0958``, ``06 12 34 56 78``, ``(11) 91234-5678``: a national number counts when
  it is valid in one of the configured regions *and* its separators fall where that region
  writes them (leniency ``STRICT_GROUPING``), so ``4-8-15-16-23-42`` (valid in India as ten
  digits) stays a combination.
* ``+447700900123``: an international number that is possible but not valid (the UK's
  drama range, an unassigned block) counts only next to a word such as "call", "phone",
  "text" or "WhatsApp".
* ``4155550132``: a bare run of digits counts only next to such a word: order ids and
  scores are bare digits too.
* ``555-867-5309``: a number in the North American 3-3-4 layout counts even when its area
  code is unassigned. libphonenumber rejects the 555 numbers of films and examples, but
  handed out by a model they are contact details all the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher

from reconciler.guardrails.pii import Span
from reconciler.spec.guardrail_parameters import DEFAULT_PHONE_REGIONS

# Digits, each separated from the next by at most two of the separators people use.
_CANDIDATE = re.compile(r"(?<![\w.,+/-])\+?\(?\d(?:[ \t\u00a0.\-/()]{0,2}\d){6,}")
_SEPARATOR = re.compile(r"[ \t\u00a0.\-/()]")
# Dates are digit runs with separators too; libphonenumber would try them in every region.
_DATE = re.compile(r"\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2(?:\d{4}|\d{2})")
_NORTH_AMERICAN_LAYOUT = re.compile(
    r"(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}([ .-]))[2-9]\d{2}(?(1)\1|[ .-])\d{4}"
)
_PHONE_WORD = re.compile(
    r"\b(?:call|calling|phone|tel|telephone|mobile|cell|cellphone|text|sms|dial|ring|"
    r"whatsapp|signal|telegram|fax|contact|reach|my\s+number|handy|telefon|t[ée]l[ée]phone|"
    r"portable|celular|telefone)\b",
    re.IGNORECASE,
)
# After the number only a service or line right behind it: "9876543210 on WhatsApp".
_PHONE_WORD_AFTER = re.compile(
    r"[ \t]*[(\[]?(?:(?:on|via|by)[ \t]+)?(?:whatsapp|signal|telegram|sms|text|mobile|cell|phone|"
    r"tel|landline)\b",
    re.IGNORECASE,
)
_DIALLED_INTERNATIONAL = re.compile(r"00[1-9]")
_CONTEXT_BEFORE = 32
_MIN_DIGITS = 7
_MAX_DIGITS = 17


@cache
def _shape(region: str) -> tuple[str, frozenset[int], re.Pattern[str] | None]:
    """The region's trunk prefix, national number lengths and general number pattern."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return "", frozenset(), None
    general = metadata.general_desc
    pattern = (
        re.compile(general.national_number_pattern) if general.national_number_pattern else None
    )
    return metadata.national_prefix or "", frozenset(general.possible_length or ()), pattern


def _plausible_in(region: str, digits: str) -> bool:
    """Whether ``digits``, with or without the region's trunk prefix, has a length and shape
    the region uses: a cheap test that spares the matcher most regions (it costs far more)."""
    prefix, lengths, pattern = _shape(region)
    numbers = [digits]
    if prefix and digits.startswith(prefix):
        numbers.append(digits[len(prefix) :])
    return any(
        len(number) in lengths and (pattern is None or pattern.fullmatch(number))
        for number in numbers
    )


def _valid_in(region: str | None, raw: str) -> bool:
    """``phonenumbers.is_valid_number`` for ``raw`` read in ``region``: cheaper than the
    matcher, so most look-alikes are dropped before it runs."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def _possible(raw: str) -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(raw, None))
    except phonenumbers.NumberParseException:
        return False


def _matched_span(window: str, offset: int, region: str | None, strict: bool) -> Span | None:
    leniency = Leniency.STRICT_GROUPING if strict else Leniency.VALID
    for match in PhoneNumberMatcher(window, region, leniency=leniency):
        return offset + match.start, offset + match.end
    return None


def _candidate_span(text: str, start: int, end: int, regions: Sequence[str]) -> Span | None:
    raw = text[start:end].rstrip("(")
    digits = re.sub(r"\D", "", raw)
    if not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS or _DATE.fullmatch(raw):
        return None
    near_phone_word = (
        _PHONE_WORD.search(text, max(0, start - _CONTEXT_BEFORE), start) is not None
        or _PHONE_WORD_AFTER.match(text, end) is not None
    )
    # "0044 20 7946 0958": the international call prefix most countries dial, written out.
    international = "+" + raw[2:] if _DIALLED_INTERNATIONAL.match(raw) else raw
    if international.startswith("+"):
        # Valid as written: any grouping will do, and the matcher's scan is not needed.
        if _valid_in(None, international):
            return start, start + len(raw)
        if international is not raw:
            return None
        span = _matched_span(raw, start, None, strict=False)
        if span is None and near_phone_word and _possible(raw):
            return start, end
        return span
    grouped = _SEPARATOR.search(raw) is not None
    if not grouped and not near_phone_word:
        return None
    for region in regions:
        if _plausible_in(region, digits) and _valid_in(region, raw):
            span = _matched_span(raw, start, region, strict=grouped)
            if span is not None:
                return span
    layout = _NORTH_AMERICAN_LAYOUT.search(raw)
    if layout is not None:
        return start + layout.start(), start + layout.end()
    return None


def find_phone_numbers(text: str, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> list[Span]:
    spans = []
    for candidate in _CANDIDATE.finditer(text):
        span = _candidate_span(text, candidate.start(), candidate.end(), regions)
        if span is not None:
            spans.append(span)
    return spans
