"""`reconciler gateway`: serve live traffic. Importing this module imports only click."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("gateway")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Folder holding desired_state/: the use cases served and their generation settings.",
)
@click.option(
    "--max-loaded-models",
    default=4,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Model versions kept loaded; the least recently used is evicted beyond this.",
)
@click.option(
    "--retention-days",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Request-log rows older than this are deleted.",
)
@click.option("--access-log", is_flag=True, help="Log every HTTP request (method, path, status).")
@click.option("--verbose", "-v", is_flag=True, help="Log route switches and model loads.")
def gateway_command(
    *,
    host: str,
    port: int,
    repo: Path,
    max_loaded_models: int,
    retention_days: float,
    access_log: bool,
    verbose: bool,
) -> None:
    """Serve the use cases over an OpenAI-compatible API, routed by the traffic table.

    Admin writes (PUT /admin/routes/USE_CASE) need RECONCILER_GATEWAY_TOKEN to be set.
    """
    from reconciler.gateway.config import GatewayConfig
    from reconciler.gateway.server import build_gateway, configure_logging, serve_forever
    from reconciler.settings import Settings

    configure_logging(verbose)
    config = GatewayConfig.from_settings(
        Settings.from_environment(),
        host=host,
        port=port,
        repo=repo,
        max_loaded_models=max_loaded_models,
        retention_days=retention_days,
    )
    gateway = build_gateway(config)
    click.echo(
        f"Gateway on http://{host}:{port}/v1 serving {', '.join(gateway.catalog.names) or 'no'} "
        f"use case(s); request log {config.request_log}.",
        err=True,
    )
    serve_forever(gateway, access_log=access_log)
