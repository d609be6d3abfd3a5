"""A stand-in OpenAI-compatible provider on 127.0.0.1: `POST /v1/chat/completions` only.

What it answers is a function of the request body (prompt, seed, ...), set per test; it
records every body and Authorization header it saw. The reconciler reaches it through the
use case's `baseUrlEnv` with the real httpx client, as it would reach a paid provider.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], str]


@dataclass
class Provider:
    url: str
    answer: Answer
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    # The next requests to fail, each as (HTTP status, Retry-After header or None).
    failures: list[tuple[int, str | None]] = field(default_factory=list)

    def says(self, text: str) -> None:
        self.answer = lambda body: text

    def fails(self, times: int, status: int = 503, retry_after: str | None = None) -> None:
        self.failures += [(status, retry_after)] * times


def last_user_message(body: dict[str, Any]) -> str:
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


@contextmanager
def serve_provider(answer: Answer) -> Iterator[Provider]:
    provider = Provider(url="", answer=answer)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                provider.bodies.append(body)
                provider.keys.append(self.headers.get("Authorization", ""))
                failure = provider.failures.pop(0) if provider.failures else None
            if failure is not None:
                status, retry_after = failure
                error = json.dumps(
                    {"error": {"message": "overloaded; echoing Bearer sk-live-secret"}}
                ).encode()
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
            text = provider.answer(body)
            payload = {
                "id": "chatcmpl-stand-in",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 3,
                    "completion_tokens": len(text.split()),
                    "total_tokens": 3 + len(text.split()),
                },
            }
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
