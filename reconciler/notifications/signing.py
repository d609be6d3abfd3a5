"""HMAC-SHA256 signatures of webhook bodies, as GitHub signs its webhooks.

The header is `X-Reconciler-Signature-256: sha256=<hex digest of the raw body>`, keyed with
the value of the environment variable a webhook's `secretEnv` names. A receiver recomputes it
over the bytes it received and compares in constant time (`verify`); the body carries the
event's time and a delivery id, so a replayed delivery can be recognised.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Reconciler-Signature-256"
EVENT_HEADER = "X-Reconciler-Event"
DELIVERY_HEADER = "X-Reconciler-Delivery"
_PREFIX = "sha256="


def signature(secret: str, body: bytes) -> str:
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` under `secret` (constant-time)."""
    if not header or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())
