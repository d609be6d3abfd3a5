"""E-mail addresses and IP addresses.

E-mail: a careful expression (RFC 5321 dot-atoms, letters-only top-level domain), since a
validating library would add nothing for text that only has to *look* like an address.

IP addresses: dotted quads and colon-hex runs that the standard library's ``ipaddress``
accepts (so no octet over 255, no leading zeros), minus the addresses that name no host —
unspecified, loopback, multicast, reserved and broadcast — and minus four-part version
and section numbers: ``1.2.3.4`` right after "v", or a few words after "version", "build",
"patch", "release" or "chapter" in the same sentence, numbers a version or a section.
Private (``192.168.1.20``) and documentation (``203.0.113.7``) addresses still count: handed
to a player they locate somebody's machine or stand for one.
"""

from __future__ import annotations

import ipaddress
import re

from reconciler.guardrails.pii import Span

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w@-])"
)


def find_emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    return [m.span() for m in _EMAIL.finditer(text)]


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]|\.\w)")
# Four dotted numbers after one of these words, in the same sentence, number a version or a
# section: "patch notes for 3.14.15.92", "chapter 4.2.1.3".
_NUMBERING_BEFORE = re.compile(
    r"(?:\b(?:version|ver|release|build|patch|update|firmware|rev|revision|chapter|section|"
    r"paragraph|verse|step|part|rule|appendix)\b|\bv\.?\s?$)[^.!?\n]{0,24}$",
    re.IGNORECASE,
)
_MIN_IPV6_GROUPS = 3


def _names_a_host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (
        address.is_unspecified or address.is_loopback or address.is_multicast or address.is_reserved
    )


def _ipv4_spans(text: str) -> list[Span]:
    spans = []
    for match in _IPV4.finditer(text):
        try:
            address = ipaddress.IPv4Address(match.group(0))
        except ValueError:
            continue
        if _NUMBERING_BEFORE.search(text, max(0, match.start() - 40), match.start()):
            continue
        if _names_a_host(address):
            spans.append(match.span())
    return spans


def _ipv6_spans(text: str) -> list[Span]:
    spans = []
    for match in _IPV6.finditer(text):
        value = match.group(0)
        # "12::30" and "10:30:45" are times and ratios; an address has three or more groups.
        if sum(1 for group in value.split(":") if group) < _MIN_IPV6_GROUPS:
            continue
        try:
            address = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        if _names_a_host(address):
            spans.append(match.span())
    return spans


def find_ip_addresses(text: str) -> list[Span]:
    spans = _ipv4_spans(text) if "." in text else []
    return spans + (_ipv6_spans(text) if "::" in text or text.count(":") >= 7 else [])
