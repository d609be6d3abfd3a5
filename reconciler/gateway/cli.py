"""`reconciler gateway`: serve live traffic. Importing this module imports only click."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli_options import repo_option

if TYPE_CHECKING:
    from reconciler.gateway.guard import OutputGuard
    from reconciler.spec.loader import DesiredState
    from reconciler.state_store.database import StateDatabase

# Checked once before the port opens, so loading the embedding model (seconds) is not paid
# by the first player whose answer needs a semantic check.
_WARM_UP_TEXT = "Welcome to the inn, traveller. The road north is safe today."


@click.command("gateway")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@repo_option(
    "Folder holding desired_state/ (the use cases served, their generation settings) "
    "and policies/ (the guardrails they list)."
)
@click.option(
    "--max-loaded-models",
    default=4,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Model versions kept loaded; the least recently used is evicted beyond this. "
    "Versions that live routes name are never evicted: they may exceed it.",
)
@click.option(
    "--retention-days",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Request-log rows older than this are deleted.",
)
@click.option(
    "--route-poll-seconds",
    default=0.5,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="How often the route table is read. On a PostgreSQL store (RECONCILER_DATABASE_URL) "
    "changes are also pushed to every replica at once (LISTEN/NOTIFY); polling is the fallback.",
)
@click.option(
    "--no-guardrails",
    is_flag=True,
    help="Do not check outputs inline against the guardrail policies the use cases list "
    "(they are enforced by default).",
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
    route_poll_seconds: float,
    no_guardrails: bool,
    access_log: bool,
    verbose: bool,
) -> None:
    """Serve the use cases over an OpenAI-compatible API, routed by the traffic table.

    Every output is checked against the guardrail policies its use case lists before it is
    returned (blocked or replaced when a policy says so); --no-guardrails turns that off.
    Admin writes (PUT /admin/routes/USE_CASE) need RECONCILER_GATEWAY_TOKEN to be set.
    """
    from reconciler.gateway.catalog import catalog_of, load_valid_state
    from reconciler.gateway.composition import build_gateway
    from reconciler.gateway.config import GatewayConfig
    from reconciler.gateway.server import configure_logging, serve_forever
    from reconciler.settings import Settings
    from reconciler.state_files import private_folder
    from reconciler.state_store.database import StateDatabase

    configure_logging(verbose)
    settings = Settings.from_environment()
    # Before anything else writes there (the state store, the model cache): private.
    private_folder(settings.state_dir)
    desired = load_valid_state(repo)
    database = StateDatabase.of(settings)
    config = GatewayConfig.from_settings(
        settings,
        host=host,
        port=port,
        repo=repo,
        max_loaded_models=max_loaded_models,
        retention_days=retention_days,
        route_poll_seconds=route_poll_seconds,
    )
    guard, guarding = (None, "off (--no-guardrails)")
    if not no_guardrails:
        guard, guarding = _policy_guard(desired, database, repo)
    gateway = build_gateway(config, catalog=catalog_of(desired), guard=guard, database=database)
    click.echo(
        f"Gateway on http://{host}:{port}/v1 serving {', '.join(gateway.catalog.names) or 'no'} "
        f"use case(s); guardrails {guarding}; state store {database.redacted}.",
        err=True,
    )
    serve_forever(gateway, access_log=access_log)


def _policy_guard(
    desired: DesiredState, database: StateDatabase, repo: Path
) -> tuple[OutputGuard | None, str]:
    """The inline guard of the use cases' guardrail policies, warmed, and a line about it;
    None when no use case lists any (outputs then pass without a trip to the guard thread)."""
    from reconciler.gateway.policy_guard import PolicyOutputGuard
    from reconciler.guardrails.store import ViolationStore

    guard = PolicyOutputGuard.from_desired_state(
        desired, store=ViolationStore(database), base_path=repo
    )
    if not guard.engines:
        return None, "none listed"
    from reconciler.guardrails.embeddings import set_encoder_threads

    set_encoder_threads()
    for engine in guard.engines.values():
        engine.warm_up(_WARM_UP_TEXT)  # straight to the engine: nothing is recorded or counted
    guarded = ", ".join(
        f"{name} ({', '.join(engine.policy_names)})"
        for name, engine in sorted(guard.engines.items())
    )
    return guard, f"inline on {guarded}"
