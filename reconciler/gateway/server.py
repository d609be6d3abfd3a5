"""Starting and stopping a gateway: from the CLI (blocking) or from Python (a thread).

`GatewayServer` is how the apply engine, the demo and tests run a gateway in-process:
`start()` returns once the port answers and the initial routes are loaded, `stop()` drains
requests in flight and closes every backend. The parts are built by
`composition.build_gateway`.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

import uvicorn

from reconciler.errors import ReconcilerError
from reconciler.gateway.app import create_app
from reconciler.gateway.service import Gateway
from reconciler.redaction import redact_handlers


def _uvicorn_config(gateway: Gateway, *, access_log: bool) -> uvicorn.Config:
    config = uvicorn.Config(
        create_app(gateway),
        host=gateway.config.host,
        port=gateway.config.port,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    # Uvicorn set up its own handlers just now; its tracebacks must not leak secrets either.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        redact_handlers(logging.getLogger(name))
    return config


def serve_forever(gateway: Gateway, *, access_log: bool = False) -> None:
    """Serve until interrupted (SIGINT/SIGTERM drain requests in flight, then exit)."""
    server = uvicorn.Server(_uvicorn_config(gateway, access_log=access_log))
    server.run()
    if not server.started:
        raise ReconcilerError(
            f"the gateway could not start on {gateway.config.host}:{gateway.config.port} "
            "(port in use, or a start-up error above)"
        )


class GatewayServer:
    """A gateway running on a background thread of this process."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._server = uvicorn.Server(_uvicorn_config(gateway, access_log=False))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.gateway.config.host}:{self.gateway.config.port}"

    def start(self, timeout: float = 120.0) -> GatewayServer:
        """Start serving; returns once the initial routes are loaded and the port answers."""
        thread = threading.Thread(target=self._server.run, name="gateway", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ReconcilerError(
                    f"the gateway did not start on {self.url} within {timeout:g}s; see the log"
                )
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def configure_logging(verbose: bool) -> None:
    """Log to stderr, every line redacted (URLs with credentials, tokens, key-shaped text)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redact_handlers(logging.getLogger())
    logging.getLogger("reconciler.gateway").setLevel(logging.INFO)
