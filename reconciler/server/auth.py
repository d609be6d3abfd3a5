"""The API token: writes need `Authorization: Bearer <RECONCILER_API_TOKEN>`.

Compared in constant time. Missing or wrong: 401, with nothing about the token in the answer.
Not configured on the server: every write is refused with 403 - an unset variable must never
leave the control plane open. The token is never logged (the access log has no headers).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKEN_ENV = "RECONCILER_API_TOKEN"

bearer = HTTPBearer(
    auto_error=False, description=f"The value of {TOKEN_ENV} on the server (writes only)."
)


def writer_check(token: str | None) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """A FastAPI dependency that lets a request through only with `token`."""

    def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if not token:
            raise HTTPException(
                403,
                f"writes are disabled on this server: set {TOKEN_ENV} in its environment and "
                "send it as 'Authorization: Bearer <token>'",
            )
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                401,
                "this write needs 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(
                401, "the token is not valid", headers={"WWW-Authenticate": "Bearer"}
            )

    return check
