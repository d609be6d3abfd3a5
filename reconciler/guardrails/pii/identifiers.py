"""National identifiers with ``python-stdnum`` checksums, and identity documents in context.

A national identifier counts when its layout matches and stdnum validates it (check digits,
embedded dates, reserved ranges). Layouts that are distinctive on their own — ``123-45-6789``,
``390.533.447-05``, ``RCCMNL83S18D969H`` — count anywhere. Bare runs of digits (a Dutch BSN
is nine digits, a German tax id eleven) pass a one-digit checksum one time in ten or eleven,
so they count only a few words after the identifier's name ("BSN", "Steuer-ID", "Aadhaar").

Passports, identity cards and driving licences have no common checksum: an identifier of
6-20 capitals and digits (at least five digits) counts only right after a word naming the
document ("passport number", "Personalausweis", "driver's license"), with nothing but
linking words between ("number on file is") and no currency after it ("250000 gold").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.cn import ric
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fi import hetu
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.mx import curp
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer
from stdnum.us import ssn

from reconciler.guardrails.pii import Span

# stdnum rejects these three as never issued, but they were printed on wallet inserts and in
# advertising as SSNs; an output presenting one as somebody's SSN is still leaking one.
_PUBLICISED_SSNS = frozenset({"078051120", "457555462", "219099999"})
_CONTEXT_CHARS = 48


def _ssn(value: str) -> bool:
    digits = re.sub(r"\D", "", value)  # stdnum takes "123-45-6789", not "123 45 6789"
    return ssn.is_valid(digits) or digits in _PUBLICISED_SSNS


@dataclass(frozen=True)
class _Identifier:
    name: str
    pattern: re.Pattern[str]
    is_valid: Callable[[str], bool]
    # A word that must appear shortly before the value; None when the layout suffices.
    context: re.Pattern[str] | None = None

    def spans(self, text: str) -> list[Span]:
        found = []
        for match in self.pattern.finditer(text):
            start = match.start()
            # The context first: it is a regex search, stdnum's validation costs far more.
            if self.context and not self.context.search(
                text, max(0, start - _CONTEXT_CHARS), start
            ):
                continue
            if self.is_valid(match.group(0)):
                found.append(match.span())
        return found


def _shape(body: str) -> re.Pattern[str]:
    """``body`` as a whole token: not inside a longer word, number or dotted run."""
    return re.compile(rf"(?<![\w.-])(?:{body})(?![\w-]|[.,]\w)")


def _named(*names: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(names) + r")\b", re.IGNORECASE)


# UK National Insurance numbers carry no checksum (stdnum has no module for them); HMRC's
# prefix rules and capitals-only keep ordinary words out.
_NINO = _shape(
    r"(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]"
)

NATIONAL_IDENTIFIERS: tuple[_Identifier, ...] = (
    _Identifier("US SSN", _shape(r"\d{3}([- ])\d{2}\1\d{4}"), _ssn),
    _Identifier("US SSN", _shape(r"\d{9}"), _ssn, _named("ssn", "social security", "social")),
    _Identifier("UK NINO", _NINO, lambda _: True),
    _Identifier("ES DNI", _shape(r"\d{8}-?[A-Z]"), dni.is_valid),
    _Identifier("ES NIE", _shape(r"[XYZ]-?\d{7}-?[A-Z]"), nie.is_valid),
    _Identifier(
        "IT codice fiscale",
        _shape(r"[A-Z]{6}[\dLMNP-V]{2}[A-EHLMPR-T][\dLMNP-V]{2}[A-Z][\dLMNP-V]{3}[A-Z]"),
        codicefiscale.is_valid,
    ),
    _Identifier("BR CPF", _shape(r"\d{3}\.\d{3}\.\d{3}-\d{2}"), cpf.is_valid),
    _Identifier("BR CPF", _shape(r"\d{11}"), cpf.is_valid, _named("cpf")),
    _Identifier(
        "FR NIR",
        _shape(r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}"),
        nir.is_valid,
    ),
    _Identifier("FI HETU", _shape(r"\d{6}[-+A-FU-Y]\d{3}[\dA-Y]"), hetu.is_valid),
    _Identifier("CN RIC", _shape(r"\d{17}[\dX]"), ric.is_valid),
    _Identifier("MX CURP", _shape(r"[A-Z]{4}\d{6}[HMX][A-Z]{5}[\dA-Z]\d"), curp.is_valid),
    _Identifier(
        "DE IdNr",
        _shape(r"\d{2} ?\d{3} ?\d{3} ?\d{3}"),
        idnr.is_valid,
        _named(r"steuer-?id(?:entifikationsnummer)?", r"steuer-?idnr", "idnr", r"tax\s+id", "TIN"),
    ),
    _Identifier(
        "NL BSN",
        _shape(r"\d{4}\.?\d{2}\.?\d{3}"),
        bsn.is_valid,
        _named("bsn", "burgerservicenummer", "sofinummer"),
    ),
    _Identifier(
        "IN Aadhaar",
        _shape(r"[2-9]\d{3}([ -]?)\d{4}\1\d{4}"),
        aadhaar.is_valid,
        _named("aadhaa?r", "uidai", "uid"),
    ),
    _Identifier(
        "CA SIN",
        _shape(r"\d{3}([ -]?)\d{3}\1\d{3}"),
        sin.is_valid,
        _named("sin", r"social\s+insurance"),
    ),
    _Identifier("PL PESEL", _shape(r"\d{11}"), pesel.is_valid, _named("pesel")),
    _Identifier(
        "SE personnummer",
        _shape(r"(?:\d{2})?\d{6}[-+]?\d{4}"),
        personnummer.is_valid,
        _named("personnummer", "personnr"),
    ),
    _Identifier(
        "GB NHS number",
        _shape(r"\d{3}([ -]?)\d{3}\1\d{4}"),
        nhs.is_valid,
        _named(r"nhs(?:\s+(?:number|no))?"),
    ),
)


# Every identifier above holds six digits in a row (separators aside) or is a codice fiscale;
# most outputs have neither, and then the nineteen expressions are not run.
_ANY_IDENTIFIER = re.compile(r"\d(?:[ .-]?\d){5}|[A-Z]{6}[\dLMNP-V]{2}[A-EHLMPR-T]")


def find_national_identifiers(text: str) -> list[Span]:
    if _ANY_IDENTIFIER.search(text) is None:
        return []
    return [span for identifier in NATIONAL_IDENTIFIERS for span in identifier.spans(text)]


_NUMBER_WORD = r"(?:number|num\.?|no\.?|nr\.?|n[°º]|#|nummer|numéro|id)"
_DOCUMENT = re.compile(
    r"(?i:\b(?:"
    # Documents named outright; "number" may follow.
    r"(?:passport|passeport|pasaporte|passaporto|reisepass|personalausweis|ausweis|"
    r"identity\s+card|id\s+card|national\s+id(?:entity)?(?:\s+card)?|"
    r"carte\s+d'identit[ée]|documento\s+de\s+identidad|driver'?s'?\s+licen[cs]e|"
    r"driving\s+licen[cs]e|f[üu]hrerschein|permis\s+de\s+conduire)"
    rf"(?:[\s-]*{_NUMBER_WORD})?"
    # Words too common alone ("player ID", "quest document"): only with "number" after.
    rf"|(?:id|identification|document|licen[cs]e)\s*{_NUMBER_WORD}"
    r"))"
    # Only linking words between: "number on file is", ":", "reads". "ID card costs
    # 250000 gold" and "passport office has 120000 visitors" are prices and counts.
    r"(?:[\s:#=,()-]|\b(?:is|was|reads?|on|file|record|as|printed|shows?|says|here|"
    r"of|the|her|his|my|your|their|its)\b){0,12}?"
    r"(?<![\w-])(?=(?:[A-Z-]*\d){5})([A-Z0-9][A-Z0-9-]{4,18}[A-Z0-9])(?![\w-])"
    r"(?!\s*(?:gold|coins?|gems?|xp|points?|credits?|silver|crowns?|dollars?|euros?)\b)"
)


# "Quest ID number 20431877" names a game object, not a person's document.
_GAME_OBJECT_BEFORE = re.compile(
    r"\b(?:quest|order|player|item|guild|match|server|session|transaction|ticket|build|"
    r"level|party|raid|lobby|room|game|save|slot|character|npc|mission)\s*$",
    re.IGNORECASE,
)


def find_identity_documents(text: str) -> list[Span]:
    return [
        m.span(1)
        for m in _DOCUMENT.finditer(text)
        if not _GAME_OBJECT_BEFORE.search(text, max(0, m.start() - 16), m.start())
    ]
