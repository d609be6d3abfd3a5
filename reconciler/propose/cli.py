"""`reconciler propose`: open or update upgrade pull requests, with evidence.

Imports only click at module level; the work is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli_options import repo_option


@click.command("propose")
@repo_option()
@click.argument("names", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print each diff and PR body; change nothing.")
@click.option(
    "--no-evaluate",
    is_flag=True,
    help="Skip the pre-evaluation against the live champion (the PR says so).",
)
def propose_command(repo: Path, names: tuple[str, ...], dry_run: bool, no_evaluate: bool) -> None:
    """Propose upgrades found by discovery as pull requests (or only for NAMES).

    For each use case with `spec.discovery` whose best eligible candidate outranks the current
    base and passes the evaluation gate against the live champion: edit its YAML (only the
    list of acceptable models changes), push a branch and open a pull request through the
    GitHub REST API - or update the one already open. Rollbacks not yet in git are proposed as
    `spec.rejected` entries. Needs GITHUB_TOKEN and GITHUB_REPOSITORY (or a GitHub origin);
    GITHUB_API_URL points elsewhere than the public API.
    """
    import os
    from datetime import UTC, datetime

    from reconciler.propose.context import ProposeOptions, open_context
    from reconciler.propose.proposals import run
    from reconciler.settings import Settings

    options = ProposeOptions(repo=repo, names=names, dry_run=dry_run, evaluate=not no_evaluate)
    context, use_cases = open_context(
        options,
        settings=Settings.from_environment(),
        environ=os.environ,
        now=datetime.now(UTC),
        say=click.echo,
    )
    try:
        outcomes = run(context, use_cases)
    finally:
        if context.forge is not None:
            context.forge.__exit__()
    if not outcomes:
        click.echo("No use case has spec.discovery; nothing to propose.")
    if any(o.status == "error" for o in outcomes):
        raise SystemExit(1)
