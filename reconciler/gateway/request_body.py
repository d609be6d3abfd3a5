"""Reading a request body without ever holding more of it than the gateway accepts.

Starlette's `request.body()` reads everything first; a client that sends gigabytes with no
Content-Length (chunked) would have them held in memory before any check. The body is read
chunk by chunk instead and refused with a 413 as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.requests import Request

from reconciler.gateway.openai_wire import GatewayError


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 once it exceeds `limit` bytes (declared or not)."""
    too_large = GatewayError(413, f"the request body exceeds {limit} bytes", code="body_too_large")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
