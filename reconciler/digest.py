"""Content digests: sha256 over canonical JSON, so equal content always gives equal keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest_of(value: Any) -> str:
    """sha256 of the canonical JSON of `value` (sorted keys, no whitespace)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short(key: str | None, length: int = 12) -> str:
    """The first `length` hex digits of a digest, for humans."""
    if key is None:
        return "-"
    return key.removeprefix("sha256:")[:length]
