"""PII check: personal data in model outputs, found with well-kept libraries.

Each kind has its recogniser in `reconciler.guardrails.pii`: phone numbers with
``phonenumbers``, IBANs, payment cards (Luhn) and national identifiers with
``python-stdnum`` checksums, IP addresses with ``ipaddress``, e-mail addresses, identity
documents next to a word naming them, and street addresses with a house number. Each module
says which look-alikes it lets pass (gold, scores, dates, versions, quest ids) and why.

`mask_pii` replaces every kind with a placeholder such as ``[PHONE]``; the gateway uses it to
return a masked output, and the violation store to redact the samples it keeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from reconciler.guardrails.embeddings import TextBatch
from reconciler.guardrails.pii import Span
from reconciler.guardrails.pii.addresses import find_street_addresses
from reconciler.guardrails.pii.financial import find_ibans, find_payment_cards
from reconciler.guardrails.pii.identifiers import (
    find_identity_documents,
    find_national_identifiers,
)
from reconciler.guardrails.pii.network import find_emails, find_ip_addresses
from reconciler.guardrails.pii.phones import find_phone_numbers
from reconciler.guardrails.verdicts import PASSED, CheckResult
from reconciler.spec.guardrail_parameters import DEFAULT_PHONE_REGIONS, PiiKind, PiiParameters
from reconciler.spec.model import GuardrailCheck

MASKS: dict[PiiKind, str] = {
    PiiKind.EMAIL: "[EMAIL]",
    PiiKind.PHONE: "[PHONE]",
    PiiKind.PAYMENT_CARD: "[CARD]",
    PiiKind.GOVERNMENT_ID: "[GOVERNMENT-ID]",
    PiiKind.IBAN: "[IBAN]",
    PiiKind.IP_ADDRESS: "[IP-ADDRESS]",
    PiiKind.IDENTITY_DOCUMENT: "[ID-DOCUMENT]",
    PiiKind.STREET_ADDRESS: "[ADDRESS]",
}

# When spans overlap the more specific kind wins: an IBAN holds card-length digit runs, a
# card holds phone-shaped groups, an SSN is phone-shaped, an address holds a postcode.
PRIORITY = (
    PiiKind.IBAN,
    PiiKind.PAYMENT_CARD,
    PiiKind.GOVERNMENT_ID,
    PiiKind.IDENTITY_DOCUMENT,
    PiiKind.EMAIL,
    PiiKind.IP_ADDRESS,
    PiiKind.PHONE,
    PiiKind.STREET_ADDRESS,
)
# Every kind but e-mail needs digits; most texts have none, and then only e-mail is looked for.
_NEEDS_DIGITS = frozenset(PRIORITY) - {PiiKind.EMAIL}
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class PiiMatch:
    kind: PiiKind
    start: int
    end: int
    value: str


@cache
def _recognisers(regions: tuple[str, ...]) -> dict[PiiKind, Callable[[str], list[Span]]]:
    return {
        PiiKind.IBAN: find_ibans,
        PiiKind.PAYMENT_CARD: find_payment_cards,
        PiiKind.GOVERNMENT_ID: find_national_identifiers,
        PiiKind.IDENTITY_DOCUMENT: find_identity_documents,
        PiiKind.EMAIL: find_emails,
        PiiKind.IP_ADDRESS: find_ip_addresses,
        PiiKind.PHONE: lambda text: find_phone_numbers(text, regions),
        PiiKind.STREET_ADDRESS: find_street_addresses,
    }


def find_pii(
    text: str,
    kinds: Iterable[PiiKind] = tuple(PiiKind),
    allow: Iterable[re.Pattern[str]] = (),
    phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
) -> list[PiiMatch]:
    """PII in ``text``, in order, without overlaps (see `PRIORITY`), allow-list applied."""
    allowed = list(allow)
    wanted = set(kinds)
    if _DIGIT.search(text) is None:
        wanted -= _NEEDS_DIGITS
    recognisers = _recognisers(tuple(phone_regions))
    chosen: list[PiiMatch] = []
    for kind in (k for k in PRIORITY if k in wanted):
        for start, end in recognisers[kind](text):
            match = PiiMatch(kind, start, end, text[start:end])
            if any(a.search(match.value) for a in allowed):
                continue
            if all(match.end <= c.start or c.end <= match.start for c in chosen):
                chosen.append(match)
    return sorted(chosen, key=lambda m: m.start)


def mask_pii(text: str, phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> str:
    """``text`` with every kind of PII replaced by a placeholder such as ``[EMAIL]``."""
    masked = text
    for match in reversed(find_pii(text, phone_regions=phone_regions)):
        masked = masked[: match.start] + MASKS[match.kind] + masked[match.end :]
    return masked


class PiiCheck:
    def __init__(self, spec: GuardrailCheck, parameters: PiiParameters) -> None:
        self.spec = spec
        self._kinds = tuple(parameters.kinds)
        self._allow = [re.compile(a, re.IGNORECASE) for a in parameters.allow]
        self._regions = tuple(parameters.phone_regions)

    def scan(self, batch: TextBatch) -> list[CheckResult]:
        results = []
        for text in batch.texts:
            matches = find_pii(text, self._kinds, self._allow, self._regions)
            if not matches:
                results.append(PASSED)
                continue
            kinds = sorted({m.kind.value for m in matches})
            # Evidence names the kinds only: the value itself is the secret.
            results.append(CheckResult(violated=True, score=1.0, evidence=", ".join(kinds)))
        return results
