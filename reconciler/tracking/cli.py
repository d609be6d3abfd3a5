"""`reconciler ui`: the MLflow UI over the reconciler's store. Imports only click at load."""

from __future__ import annotations

import click


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
def ui_command(host: str, port: int) -> None:
    """Serve the MLflow UI over the store every command uses (aliases, lineage, runs)."""
    import os
    from pathlib import Path

    from reconciler.settings import Settings
    from reconciler.tracking.ui import SERVER_ENVIRONMENT, ui_server

    settings = Settings.from_environment()
    server = ui_server(settings, host=host, port=port)  # a tracking server: RemoteStoreError
    database = settings.tracking_uri.removeprefix("sqlite:///")
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"MLflow UI on {server.url} (Ctrl-C to stop)", err=True)
    environment = {**os.environ, **SERVER_ENVIRONMENT}
    # The reconciler's own store settings must not leak into the server as a client's would.
    environment.pop("MLFLOW_TRACKING_URI", None)
    environment.pop("MLFLOW_REGISTRY_URI", None)
    # Replaced by the server: Ctrl-C and SIGTERM reach it directly, nothing is left behind.
    os.execve(server.argv[0], list(server.argv), environment)
