"""What may be shown of URLs and of text that came from outside: secrets replaced by ***.

Secrets reach the reconciler in three shapes: credentials written into a URL (`user:pass@`,
or a key in its query string), bearer tokens that a provider echoes back in an error body,
and key-shaped strings (`sk-…`, `ghp_…`) anywhere in an upstream's text. Everything that puts
a URL or an upstream's words in front of a person or into a file (error bodies, logs, the
admin API, the request log) goes through `redact_text`, and every log line the gateway writes
goes through `RedactingFormatter`, so a path that forgot to redact still cannot leak.

`url_secrets` is the other half: it names (never shows) what is secret in a URL, so the
spec and the gateway can refuse such a URL instead of carrying it around.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlsplit

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^@/\s?#]+)@", re.I)
# Query parameters whose value is a credential by the name's own account.
_SECRET_PARAMETER = re.compile(
    r"key|token|secret|passw(or)?d|pwd|auth|signature|^sig$|credential|session", re.I
)
_QUERY_PAIR = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#;\s]+)=(?P<value>[^&#;\s\"']*)")
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{4,}", re.I)
_AUTH_HEADER = re.compile(
    r"(?P<name>\b(?:authorization|x-api-key|api-key)[\"']?\s*[:=]\s*[\"']?)"
    r"(?!Bearer\b|Basic\b)[^\s\"',;]+",
    re.I,
)
# Prefixes of well-known key formats (OpenAI, Stripe, GitHub, Hugging Face, Slack, AWS).
KEY_PREFIXES = (
    "sk-",
    "sk_",
    "rk_",
    "pk_live_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "hf_",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxr-",
    "AKIA",
)
_KEY_SHAPE = re.compile(
    r"(?<![A-Za-z0-9])(?:" + "|".join(re.escape(p) for p in KEY_PREFIXES) + r")[A-Za-z0-9_-]{8,}"
)
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.I)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _redact_query(url: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if not _SECRET_PARAMETER.search(match.group("name")):
            return match.group(0)
        return f"{match.group('lead')}{match.group('name')}={MASK}"

    return _QUERY_PAIR.sub(replace, url)


def redact_uri(uri: str) -> str:
    """`uri` fit to print: user and password, and secret query values, replaced by ***."""
    without_userinfo = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", uri)
    return _redact_query(without_userinfo) if "?" in without_userinfo else without_userinfo


def redact_text(text: str) -> str:
    """`text` with every URL redacted, and bearer tokens and key-shaped strings masked."""
    text = _URL.sub(lambda m: redact_uri(m.group(0)), text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('name')}{MASK}", text)
    return _KEY_SHAPE.sub(MASK, text)


def url_secrets(url: str) -> list[str]:
    """What in `url` is a credential, named but never shown: empty when there is none."""
    found = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return ["an unparsable URL"]
    if "@" in parts.netloc:
        found.append("credentials before the host (user:password@)")
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_PARAMETER.search(name):
            found.append(f"the query parameter {name!r}")
        elif _KEY_SHAPE.search(value):
            found.append(f"a key-shaped value in the query parameter {name!r}")
    if not found and _KEY_SHAPE.search(url):
        found.append("a key-shaped string")
    return found


def without_surrogates(text: str) -> str:
    """`text` with lone UTF-16 surrogates (which no UTF-8 encoder accepts) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then redacts the whole line, traceback included."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self.inner.format(record))


def redact_handlers(logger: logging.Logger) -> None:
    """Make every handler of `logger` redact what it writes (once; idempotent)."""
    for handler in logger.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))
