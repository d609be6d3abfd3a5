"""`reconciler serve`: the controller's jobs and the control plane's API in one process.

Start: logging (text or JSON lines, redacted), the notification dispatcher, the API on its
port (a port that cannot be bound ends the process with exit 1 before anything is
reconciled), then the controller's jobs.

Stop (SIGTERM or SIGINT): the API stops taking requests, no new job starts, and the running
one finishes its step - a controller cycle advances each rollout one step and persists it
before its effects, so whatever the signal interrupts the next start resumes from the
journal. Queued notifications get a bounded time to leave. A second signal stops at once;
the next start then marks the unfinished journal row interrupted and resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from reconciler.apply.context import ApplyContext, Reporter
from reconciler.controller import Controller, ControllerSettings
from reconciler.notifications.dispatcher import Dispatcher
from reconciler.notifications.webhooks import FAILURE_LOG
from reconciler.server.app import create_app
from reconciler.server.audit import AuditLog
from reconciler.server.auth import TOKEN_ENV
from reconciler.server.log_format import LogFormat, configure_logging
from reconciler.server.metrics import ControlPlaneMetrics
from reconciler.server.runtime import ServeRuntime
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState

log = logging.getLogger("reconciler.serve")

START_TIMEOUT_SECONDS = 60.0
API_DRAIN_SECONDS = 15.0
NOTIFICATION_DRAIN_SECONDS = 10.0


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    controller: ControllerSettings
    time_scale: float = 1.0
    log_format: LogFormat = LogFormat.TEXT


class LogReporter(Reporter):
    """Apply progress ("use case: what happened") as log records with the use case named."""

    def __call__(self, line: str) -> None:
        name, _, message = line.partition(": ")
        logging.getLogger("reconciler.apply").info(
            line, extra={"use_case": name} if message else {}
        )


def run_serve(
    options: ServeOptions,
    *,
    environ: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    adapt_context: Callable[[ApplyContext], ApplyContext] | None = None,
    configure_logs: bool = True,
) -> int:
    """Serve until `stop` is set (default: until SIGTERM or SIGINT); the exit code.

    `adapt_context` lets an embedding (a test) substitute parts of each cycle's context."""
    env = os.environ if environ is None else environ
    if configure_logs:
        configure_logging(options.log_format)
    settings = Settings.from_environment(env)
    dispatcher = Dispatcher(failure_log=settings.state_dir / FAILURE_LOG)
    config = options.controller
    runtime = ServeRuntime(
        repo=config.repo,
        ref=config.ref,
        settings=settings,
        dispatcher=dispatcher,
        audit=AuditLog(settings.state_dir),
        token=env.get(TOKEN_ENV) or None,
        time_scale=options.time_scale,
        environ=env,
    )
    metrics = ControlPlaneMetrics(
        journal=runtime.journal, dispatcher=dispatcher, desired=lambda: runtime.latest_desired
    )

    def make_context(repo: Path, desired: DesiredState, settings: Settings) -> ApplyContext:
        context = dataclasses.replace(
            runtime.make_context(repo, desired, settings), report=LogReporter()
        )
        return adapt_context(context) if adapt_context else context

    controller = Controller(
        config,
        settings,
        make_context=make_context,
        say=lambda line: logging.getLogger("reconciler.controller").info(line),
        on_cycle=metrics.observe_cycle,
    )
    runtime.controller = controller
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime, metrics),
            host=options.host,
            port=options.port,
            log_config=None,
            access_log=True,
            lifespan="off",
            timeout_graceful_shutdown=int(API_DRAIN_SECONDS),
        )
    )
    stopping = stop or _signal_stop()
    api = threading.Thread(target=server.run, name="api", daemon=True)
    api.start()
    if not _started(server, api):
        log.error(
            "cannot serve the API on %s:%d (port in use, or see above)", options.host, options.port
        )
        server.should_exit = True
        dispatcher.close(0)
        return 1
    controller.start()
    log.info(
        "serving the control plane on http://%s:%d; reconciling %s%s every %gs",
        options.host,
        options.port,
        config.repo,
        f" at {config.ref}" if config.ref else "",
        config.interval_seconds,
    )
    if not runtime.token:
        log.warning("%s is not set: every API write is refused (403)", TOKEN_ENV)
    stopping.wait()
    log.info("stopping: the API takes no new requests and the running step finishes")
    server.should_exit = True
    api.join(API_DRAIN_SECONDS + 5)
    controller.shutdown()
    dispatcher.close(NOTIFICATION_DRAIN_SECONDS)
    log.info("stopped; the next start resumes every rollout from the journal")
    return 0


def _started(server: uvicorn.Server, thread: threading.Thread) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _signal_stop() -> threading.Event:
    """An event the first SIGTERM or SIGINT sets; a second one exits at once."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # No logging here: its lock may be held by the code this signal interrupted.
            os.write(2, f"second {signal.Signals(signum).name}: stopping now\n".encode())
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    return stop
