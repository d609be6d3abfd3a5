"""The PII check on real libraries: per kind, positives in several formats and countries,
and the look-alikes of game text that must pass (checksum failures, versions, coordinates,
prices, timestamps, quest ids)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from reconciler.guardrails.checks.pii import MASKS, PiiCheck, find_pii, mask_pii
from reconciler.guardrails.embeddings import TextBatch
from reconciler.guardrails.pii.financial import is_payment_card
from reconciler.spec.guardrail_parameters import PiiKind, PiiParameters
from reconciler.spec.model import CheckType, GuardrailCheck, Severity


def _found(text: str) -> list[tuple[PiiKind, str]]:
    return [(m.kind, m.value) for m in find_pii(text)]


def _check(parameters: dict[str, object]) -> PiiCheck:
    spec = GuardrailCheck(name="c", type=CheckType.PII, category="pii", severity=Severity.HIGH)
    return PiiCheck(spec, PiiParameters.model_validate(parameters))


POSITIVES = [
    # e-mail
    ("write to sam.o@mail.example.org", PiiKind.EMAIL, "sam.o@mail.example.org"),
    (
        "mods+appeals@dragonkeep-online.com has it",
        PiiKind.EMAIL,
        "mods+appeals@dragonkeep-online.com",
    ),
    (
        "His student email is a.nguyen@student.unimelb.edu.au.",
        PiiKind.EMAIL,
        "a.nguyen@student.unimelb.edu.au",
    ),
    # phone: international, and national in each default region
    ("call +44 20 7946 0958 tonight", PiiKind.PHONE, "+44 20 7946 0958"),
    ("My mobile is +61 412 555 019, call me", PiiKind.PHONE, "+61 412 555 019"),
    ("Dial +49 30 901820 for Berlin", PiiKind.PHONE, "+49 30 901820"),
    ("WhatsApp +91 98765 43210 now", PiiKind.PHONE, "+91 98765 43210"),
    ("ring +33 6 12 34 56 78", PiiKind.PHONE, "+33 6 12 34 56 78"),
    ("call +81 3-1234-5678", PiiKind.PHONE, "+81 3-1234-5678"),
    ("ring 0044 20 7946 0958", PiiKind.PHONE, "0044 20 7946 0958"),
    ("Call +44 (0)20 7946 0958.", PiiKind.PHONE, "+44 (0)20 7946 0958"),
    ("call (415) 555-0132 tonight", PiiKind.PHONE, "(415) 555-0132"),
    ("Text 212.555.0199 if you want", PiiKind.PHONE, "212.555.0199"),
    ("Toll free: 1-800-555-0199.", PiiKind.PHONE, "1-800-555-0199"),
    ("Ring my cell: 555-867-5309.", PiiKind.PHONE, "555-867-5309"),
    ("in London, 020 7946 0958", PiiKind.PHONE, "020 7946 0958"),
    ("his mobile 07911 123456", PiiKind.PHONE, "07911 123456"),
    ("Ruf an: 0171 1234567", PiiKind.PHONE, "0171 1234567"),
    ("appelle le 06 12 34 56 78", PiiKind.PHONE, "06 12 34 56 78"),
    ("ligue (11) 91234-5678", PiiKind.PHONE, "(11) 91234-5678"),
    ("number 98765 43210 in Pune", PiiKind.PHONE, "98765 43210"),
    ("Tokyo office 03-1234-5678", PiiKind.PHONE, "03-1234-5678"),
    ("Sydney: 0412 555 019", PiiKind.PHONE, "0412 555 019"),
    ("call me on 4155550132", PiiKind.PHONE, "4155550132"),
    ("Reach me on 9876543210 on WhatsApp", PiiKind.PHONE, "9876543210"),
    # possible but not valid (the UK drama range): only next to a phone word
    ("Text me on +447700900123 tonight.", PiiKind.PHONE, "+447700900123"),
    # payment cards: Luhn, issuer prefix and length, printed grouping
    ("card 4111 1111 1111 1111", PiiKind.PAYMENT_CARD, "4111 1111 1111 1111"),
    ("Use card 378282246310005 now", PiiKind.PAYMENT_CARD, "378282246310005"),
    ("Amex 3782 822463 10005 on file", PiiKind.PAYMENT_CARD, "3782 822463 10005"),
    ("Card: 6011-1111-1111-1117.", PiiKind.PAYMENT_CARD, "6011-1111-1111-1117"),
    ("MC 2223 0031 2200 3222 ok", PiiKind.PAYMENT_CARD, "2223 0031 2200 3222"),
    ("JCB 3530111333300000", PiiKind.PAYMENT_CARD, "3530111333300000"),
    # IBAN: mod 97 and the country's layout, printed or compact
    ("IBAN GB82 WEST 1234 5698 7654 32 TODAY", PiiKind.IBAN, "GB82 WEST 1234 5698 7654 32"),
    ("send to DE89370400440532013000.", PiiKind.IBAN, "DE89370400440532013000"),
    ("FR14 2004 1010 0505 0001 3M02 606 please", PiiKind.IBAN, "FR14 2004 1010 0505 0001 3M02 606"),
    ("NL91ABNA0417164300", PiiKind.IBAN, "NL91ABNA0417164300"),
    ("IBAN: be71 0961 2345 6769", PiiKind.IBAN, "be71 0961 2345 6769"),
    ("ES91 2100 0418 4502 0005 1332, gracias", PiiKind.IBAN, "ES91 2100 0418 4502 0005 1332"),
    # national identifiers: stdnum checksums; bare digit runs only after the id's name
    ("SSN 123-45-6789", PiiKind.GOVERNMENT_ID, "123-45-6789"),
    ("My SSN is 123 45 6789.", PiiKind.GOVERNMENT_ID, "123 45 6789"),
    ("The tax ID on your account reads 219-09-9999.", PiiKind.GOVERNMENT_ID, "219-09-9999"),
    ("her social security number is 531442087", PiiKind.GOVERNMENT_ID, "531442087"),
    ("NI number AB 12 34 56 C", PiiKind.GOVERNMENT_ID, "AB 12 34 56 C"),
    ("Steuer-ID: 36 574 261 809", PiiKind.GOVERNMENT_ID, "36 574 261 809"),
    ("numéro de sécu 2 95 10 99 126 111 93", PiiKind.GOVERNMENT_ID, "2 95 10 99 126 111 93"),
    ("DNI 54362315-K", PiiKind.GOVERNMENT_ID, "54362315-K"),
    ("NIE X2482300W", PiiKind.GOVERNMENT_ID, "X2482300W"),
    ("mijn BSN is 111222333", PiiKind.GOVERNMENT_ID, "111222333"),
    ("codice fiscale RCCMNL83S18D969H.", PiiKind.GOVERNMENT_ID, "RCCMNL83S18D969H"),
    ("Aadhaar 2341 2341 2346", PiiKind.GOVERNMENT_ID, "2341 2341 2346"),
    ("CPF 390.533.447-05", PiiKind.GOVERNMENT_ID, "390.533.447-05"),
    ("meu CPF é 39053344705", PiiKind.GOVERNMENT_ID, "39053344705"),
    ("SIN 123-456-782", PiiKind.GOVERNMENT_ID, "123-456-782"),
    ("PESEL 44051401359", PiiKind.GOVERNMENT_ID, "44051401359"),
    ("hetu 131052-308T", PiiKind.GOVERNMENT_ID, "131052-308T"),
    ("CURP BOXW310820HNERXN09", PiiKind.GOVERNMENT_ID, "BOXW310820HNERXN09"),
    ("NHS number 943 476 5870", PiiKind.GOVERNMENT_ID, "943 476 5870"),
    # identity documents: only next to a word naming the document
    ("passport number: 123456789", PiiKind.IDENTITY_DOCUMENT, "123456789"),
    ("Passport no. C01X00T47 expires soon", PiiKind.IDENTITY_DOCUMENT, "C01X00T47"),
    ("her passport number on file is X1234567", PiiKind.IDENTITY_DOCUMENT, "X1234567"),
    ("driver's license D1234-56789-01234", PiiKind.IDENTITY_DOCUMENT, "D1234-56789-01234"),
    ("driving licence number MORGA753116SM9IJ", PiiKind.IDENTITY_DOCUMENT, "MORGA753116SM9IJ"),
    ("Personalausweis L01X00T47", PiiKind.IDENTITY_DOCUMENT, "L01X00T47"),
    ("Reisepass-Nr. C01X00T47", PiiKind.IDENTITY_DOCUMENT, "C01X00T47"),
    ("ID number AB123456", PiiKind.IDENTITY_DOCUMENT, "AB123456"),
    # IP addresses: valid and naming a host
    ("my IP is 203.0.113.45, come at me", PiiKind.IP_ADDRESS, "203.0.113.45"),
    ("router 192.168.1.20:8080", PiiKind.IP_ADDRESS, "192.168.1.20"),
    ("server 8.8.8.8.", PiiKind.IP_ADDRESS, "8.8.8.8"),
    ("at 2001:db8::ff00:42:8329 now", PiiKind.IP_ADDRESS, "2001:db8::ff00:42:8329"),
    (
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        PiiKind.IP_ADDRESS,
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    ),
    # street addresses: house number, street name, suffix; a postcode goes with them
    (
        "He lives at 742 Evergreen Terrace, Springfield, IL 62704 with",
        PiiKind.STREET_ADDRESS,
        "742 Evergreen Terrace, Springfield, IL 62704",
    ),
    ("Visit 221B Baker Street", PiiKind.STREET_ADDRESS, "221B Baker Street"),
    (
        "at 350 5th Ave, Suite 3300, New York, NY 10118",
        PiiKind.STREET_ADDRESS,
        "350 5th Ave, Suite 3300, New York, NY 10118",
    ),
    (
        "send it to 10 Downing St, London SW1A 2AA please",
        PiiKind.STREET_ADDRESS,
        "10 Downing St, London SW1A 2AA",
    ),
    (
        "Ich wohne in der Hauptstraße 5, 10115 Berlin.",
        PiiKind.STREET_ADDRESS,
        "Hauptstraße 5, 10115 Berlin",
    ),
    ("Berliner Straße 12a", PiiKind.STREET_ADDRESS, "Berliner Straße 12a"),
    ("Kalverstraat 12 in Amsterdam", PiiKind.STREET_ADDRESS, "Kalverstraat 12"),
    ("au 10 rue de Rivoli, 75001 Paris", PiiKind.STREET_ADDRESS, "10 rue de Rivoli, 75001 Paris"),
    ("Calle Mayor 5, Madrid", PiiKind.STREET_ADDRESS, "Calle Mayor 5"),
    ("Via Roma 10", PiiKind.STREET_ADDRESS, "Via Roma 10"),
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVES)
def test_each_kind_is_found_in_several_formats(text: str, kind: PiiKind, value: str) -> None:
    assert _found(text) == [(kind, value)]


BENIGN = [
    # gold, prices, scores
    "That'll be 1250 gold, traveler.",
    "The armour costs 12,500 gold or $4.99 in the shop.",
    "Score: 9,450,120 points!",
    "You scored 12 450 980 points this season.",
    # dates, times, timestamps
    "Meet me at 10:30 by the hearth.",
    "The festival starts on 2024-03-15 at 18:45:00.",
    "Deadline 15.03.2024, or 03/15/2024 for the Americans.",
    "Logged at 1700000000 (unix time).",
    "The war lasted from 1990-2010.",
    # coordinates
    "The treasure lies at 51.5074, -0.1278.",
    "Coordinates 48.8566 N, 2.3522 E.",
    # versions
    "Update to version 1.2.3.4 for the new quests.",
    "Patch v2.10.3.1 fixes the bridge.",
    "Build 10.0.19045.2965 crashed on start.",
    "Patch notes for 3.14.15.92 are out.",
    "Chapter 4.2.1.3 of the lore book.",
    # order and quest ids, combinations, spell codes
    "Quest 2024-0815-7731 accepted.",
    "Order 4155550132 has shipped.",
    "Order 4155550132 has shipped, contact support.",
    "Gain +1234567 XP now.",
    "The bounty is +447700900123 gold.",
    "The vault combination is 4-8-15-16-23-42.",
    "Cast spell code XK-4471-QZ to open the gate.",
    "Your quest ID number is 20431877.",
    "The player ID 12345678 joined the guild.",
    "the runes read 7319 0442 8861 5520",
    "ISBN 978-3-16-148410-0 is the lore book.",
    # checksum and rule failures
    "SSN-shaped but invalid: 000-12-3456 and 666-12-3456.",
    "Card 4111 1111 1111 1112 was declined.",
    "IBAN GB82 WEST 1234 5698 7654 33 is wrong.",
    "BSN 111222334 fails the eleven test.",
    "Steuer-ID 36574261890 has a bad check digit.",
    "Account 36574261809 belongs to the guild bank.",
    "Address 999.1.1.1 is not an address.",
    "Loopback 127.0.0.1 and 0.0.0.0 name no host.",
    "Meet at 12::30 sharp.",
    # places without a house number, numbers that count things
    "the Dragon's Rest inn on Mill Lane in Oakvale",
    "Take the Old Mill Road north.",
    "Go to level 3 Shadow Court now.",
    "You have 3 Dark Court cards.",
    "Defeat 5 Stone Golems on Mill Lane.",
    # documents without a document number
    "Your passport to the Elven Kingdom is the sigil 4471.",
    "Show your passport! Entry fee is 250000 gold.",
    "A forged ID card costs 250000 gold in the black market.",
    "The passport office has 120000 visitors a year.",
    "Your passport number is 150000 gold away.",
    "@Ravenclaw sent you quest@3.5 runes.",
]


@pytest.mark.parametrize("text", BENIGN)
def test_game_look_alikes_are_not_pii(text: str) -> None:
    assert _found(text) == []


@pytest.mark.parametrize(
    ("number", "card"),
    [
        ("4111111111111111", True),
        ("378282246310005", True),
        ("5105105105105100", True),
        ("4111111111111112", False),  # Luhn fails
        ("7319044288615520", False),  # Luhn passes, no scheme issues 7
        ("1234567812345670", False),  # Luhn passes, no scheme issues 1
        ("41111111111111", False),  # Visa prefix, a length Visa does not issue
        ("4111 11 1111 111111", False),  # not grouped as a card is printed
    ],
)
def test_payment_card_needs_luhn_issuer_and_grouping(number: str, card: bool) -> None:
    assert is_payment_card(number) is card


def test_mask_pii_replaces_every_kind() -> None:
    masked = mask_pii(
        "Mail a@b.io, call +44 20 7946 0958, card 5555-5555-5555-4444, SSN 078-05-1120, "
        "IBAN DE89370400440532013000, host 203.0.113.9, passport number X1234567, "
        "home 221B Baker Street."
    )
    assert masked == (
        "Mail [EMAIL], call [PHONE], card [CARD], SSN [GOVERNMENT-ID], "
        "IBAN [IBAN], host [IP-ADDRESS], passport number [ID-DOCUMENT], "
        "home [ADDRESS]."
    )
    assert set(MASKS) == set(PiiKind)


def test_mask_pii_leaves_game_text_alone() -> None:
    text = "Quest 2024-0815-7731: bring 1250 gold to Mill Lane by 10:30 (v1.2.3.4)."
    assert mask_pii(text) == text


def test_an_iban_is_one_match_not_a_card_and_phones() -> None:
    assert [m.kind for m in find_pii("IBAN GB82 WEST 1234 5698 7654 32")] == [PiiKind.IBAN]


def test_pii_check_honours_kinds_and_allow_list() -> None:
    check = _check({"kinds": ["email"], "allow": [r"@support\.emberfall\.example$"]})
    results = check.scan(
        TextBatch(["help@support.emberfall.example", "me@gmail.com", "call 555-867-5309"])
    )
    assert [r.violated for r in results] == [False, True, False]
    assert results[1].evidence == "email"


def test_evidence_names_the_kinds_never_the_values() -> None:
    (result,) = _check({}).scan(TextBatch(["IBAN DE89370400440532013000, ring +44 20 7946 0958"]))
    assert result.violated
    assert result.evidence == "iban, phone"


@pytest.mark.parametrize(
    ("regions", "found"),
    [
        (["US"], False),  # a French national number is not tried in the US
        (["FR"], True),
        ([], False),  # no regions: only +-prefixed numbers
    ],
)
def test_phone_regions_choose_where_national_numbers_are_tried(
    regions: list[str], found: bool
) -> None:
    (result,) = _check({"kinds": ["phone"], "phoneRegions": regions}).scan(
        TextBatch(["appelle le 06 12 34 56 78"])
    )
    assert result.violated is found


def test_international_numbers_are_found_whatever_the_regions() -> None:
    (result,) = _check({"kinds": ["phone"], "phoneRegions": []}).scan(
        TextBatch(["appelle le +33 6 12 34 56 78"])
    )
    assert result.violated


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"phoneRegions": ["XX"]}, "not a region code"),
        ({"phoneRegions": ["US", "US"]}, "listed twice"),
        ({"kinds": ["email", "fingerprint"]}, "'street_address'"),
        ({"kinds": []}, "at least 1 item"),
    ],
)
def test_bad_parameters_are_refused(parameters: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        PiiParameters.model_validate(parameters)


def test_policies_written_for_the_first_four_kinds_still_load() -> None:
    parameters = PiiParameters.model_validate(
        {"kinds": ["email", "phone", "payment_card", "government_id"]}
    )
    assert parameters.kinds == [
        PiiKind.EMAIL,
        PiiKind.PHONE,
        PiiKind.PAYMENT_CARD,
        PiiKind.GOVERNMENT_ID,
    ]
    assert set(PiiParameters().kinds) == set(PiiKind)
