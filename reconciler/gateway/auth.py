"""Bearer-token protection of the admin writes.

Without a configured token the admin writes are off (403), never open: an unset variable
must not leave the route table writable by anyone who can reach the port. The token is
compared in constant time and never logged or echoed, not even in error messages.
"""

from __future__ import annotations

import hmac

from reconciler.gateway.config import TOKEN_ENV
from reconciler.gateway.openai_wire import ErrorType, GatewayError


def require_admin(authorization: str | None, token: str | None) -> None:
    """Return when `authorization` carries the admin token, else raise 401/403."""
    if not token:
        raise GatewayError(
            403,
            f"admin writes are disabled on this gateway: set {TOKEN_ENV} in its environment "
            "and send it as 'Authorization: Bearer <token>'",
            type=ErrorType.PERMISSION,
            code="admin_disabled",
        )
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise GatewayError(
            401,
            "admin writes need 'Authorization: Bearer <token>'",
            type=ErrorType.AUTHENTICATION,
            code="missing_token",
        )
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise GatewayError(
            401, "the admin token is wrong", type=ErrorType.AUTHENTICATION, code="invalid_token"
        )
