"""Street addresses: a house number next to a street name that ends in a street suffix.

Without a library that parses free text into addresses across countries (``usaddress`` is
US-only and labels any string it is given, address or not), the recogniser works on the one
feature every postal address has and places in a story lack: a house number. English-style
addresses put it first (``221B Baker Street``, ``1600 Pennsylvania Avenue NW``), German and
Dutch ones after the street (``Hauptstraße 5``, ``Kalverstraat 12a``), French ones first with
the suffix word leading (``10 rue de Rivoli``), Spanish and Italian after a leading suffix
word (``Calle Mayor 5``, ``Via Roma 10``). A postcode that follows is masked with the street.
"the Dragon's Rest inn on Mill Lane in Oakvale" has no number and passes; so does "level 3
Shadow Court", where the number counts something else.
"""

from __future__ import annotations

import re

from reconciler.guardrails.pii import Span

_ENGLISH_SUFFIX = (
    r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Place|Pl|"
    r"Terrace|Ter|Way|Close|Crescent|Cres|Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Cir|"
    r"Trail|Trl|Row|Mews|Gardens|Grove|Walk|Alley|Plaza|Broadway"
)
_NAME_WORD = r"(?:[A-Z][\w'\u2019-]*|\d+(?:st|nd|rd|th))"
_DIRECTION = r"(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?"
_US_TAIL = (
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|#)\.?\s*#?\w+)?"
    # City, state and ZIP, or a UK postcode: only taken when the code itself is there.
    r"(?:(?:,\s*[A-Z][a-zA-Z]+(?:\s[A-Z][a-zA-Z]+){0,2})?(?:,?\s*[A-Z]{2})?,?\s+\d{5}(?:-\d{4})?"
    r"|(?:,\s*[A-Z][a-zA-Z]+(?:\s[A-Z][a-zA-Z]+){0,2})?,?\s+[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})?"
)
_ENGLISH = re.compile(
    rf"(?<![\w.,-])\d{{1,5}}[A-Za-z]?(?:-\d{{1,5}})?\s+(?:{_DIRECTION}\s+)?"
    rf"(?:{_NAME_WORD}\s+){{0,3}}{_NAME_WORD}\s+(?:{_ENGLISH_SUFFIX})\b"
    rf"(?:\s+{_DIRECTION}(?!\w))?{_US_TAIL}"
)
_EUROPEAN_POSTCODE_TAIL = r"(?:,?\s+\d{4,5}(?:\s?[A-Z]{2})?\s+[A-ZÄÖÜ][\wäöüß-]+)?"
_COMPOUND_STREET = re.compile(
    r"(?<![\w-])(?:[A-ZÄÖÜ][\wäöüß-]*\s+)?"
    r"(?:[A-ZÄÖÜ][\wäöüß-]*?(?:straße|strasse|str\.|weg|allee|platz|gasse|damm|ufer|"
    r"chaussee|straat|laan|gracht|plein|kade|dijk|steeg)|Straße|Strasse|Str\.|Weg|Allee|Platz)"
    rf"\s+\d{{1,4}}[a-zA-Z]?(?![\w-]){_EUROPEAN_POSTCODE_TAIL}"
)
_FRENCH = re.compile(
    r"(?<![\w.,-])\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?i:rue|avenue|av\.|boulevard|bd|place|"
    r"chemin|allée|impasse|quai|route|cours)\s+(?:de\s+la\s+|de\s+l'|du\s+|des\s+|de\s+|d')?"
    r"[A-ZÉÈ][\w'\u2019-]*(?:\s+[A-ZÉÈ][\w'\u2019-]*){0,3}"
    r"(?:,?\s+\d{5}\s+[A-ZÉÈ][\w'\u2019-]+)?"
)
_SOUTHERN = re.compile(
    r"(?<![\w-])(?:Calle|C/|Avenida|Avda\.?|Paseo|Plaza|Carrer|Rua|Via|Viale|Piazza|Corso|Largo)"
    r"\s+(?:de\s+la\s+|del\s+|de\s+|dos\s+|da\s+)?[A-Z][\w'\u2019-]*(?:\s+[A-Z][\w'\u2019-]*){0,3},?"
    r"\s+(?:n[º°.]?\s*)?\d{1,4}[a-zA-Z]?(?![\w-])" + _EUROPEAN_POSTCODE_TAIL
)
# A number that counts levels, floors, rounds or things held is no house number.
_COUNTING_WORD_BEFORE = re.compile(
    r"\b(?:level|lvl|floor|chapter|act|wave|stage|round|room|quest|tier|rank|page|turn|"
    r"zone|area|sector|gate|door|ward|platform|wing|have|has|had|collect|gather|get|earn|"
    r"win|buy|sell|find|defeat|kill|slay|x|\u00d7)\s*$",
    re.IGNORECASE,
)


def find_street_addresses(text: str) -> list[Span]:
    spans = []
    for pattern in (_ENGLISH, _COMPOUND_STREET, _FRENCH, _SOUTHERN):
        for match in pattern.finditer(text):
            if pattern is _ENGLISH or pattern is _FRENCH:
                before = text[max(0, match.start() - 12) : match.start()]
                if _COUNTING_WORD_BEFORE.search(before):
                    continue
            spans.append(match.span())
    return spans
