"""`reconciler serve`: argument parsing only (click at module level, the rest when it runs)."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli_options import controller_options


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8710, show_default=True)
@controller_options
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line, for log pipelines.",
)
@click.option("--time-scale", type=float, default=1.0, show_default=True, hidden=True)
def serve_command(
    host: str,
    port: int,
    repo: Path,
    ref: str | None,
    fetch: bool,
    interval: str,
    watch_interval: str,
    watch_window: str,
    critical_rate_limit: float,
    min_outputs: int,
    parallelism: int,
    log_format: str,
    time_scale: float,
) -> None:
    """Run the controller and the control plane's HTTP API until SIGTERM.

    Reconciles every --interval (as `reconciler controller` does), watches guardrails, runs
    discovery on its schedule, and serves status, plans, history, guardrail reports and
    discovery at /api/v1, Prometheus metrics at /metrics and the OpenAPI document at
    /openapi.json. Writes (reconcile now, rollback, pause, resume, abort, promote) need
    RECONCILER_API_TOKEN as a bearer token; without it they are refused.
    """
    from reconciler.controller import ControllerSettings
    from reconciler.errors import ReconcilerError
    from reconciler.server.log_format import LogFormat
    from reconciler.server.serve import ServeOptions, run_serve
    from reconciler.spec.durations import duration_seconds

    try:
        interval_s, watch_interval_s, watch_window_s = (
            duration_seconds(value) for value in (interval, watch_interval, watch_window)
        )
    except ValueError as exc:
        raise ReconcilerError(str(exc)) from None
    options = ServeOptions(
        host=host,
        port=port,
        controller=ControllerSettings(
            repo=repo,
            ref=ref,
            fetch=fetch,
            interval_seconds=interval_s,
            watch_interval_seconds=watch_interval_s,
            watch_window_seconds=watch_window_s,
            critical_rate_limit=critical_rate_limit,
            min_outputs=min_outputs,
            parallelism=parallelism,
        ),
        time_scale=time_scale,
        log_format=LogFormat(log_format),
    )
    raise SystemExit(run_serve(options))
