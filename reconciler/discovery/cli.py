"""`reconciler discover`: per use case, the current base and the ranked candidates.

Imports only click at module level (the CLI registers it beside `validate` and `plan`, which
must stay light); the work is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli_options import repo_option


@click.command("discover")
@repo_option()
@click.argument("names", nargs=-1)
@click.option(
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
def discover_command(repo: Path, names: tuple[str, ...], output: str) -> None:
    """Look for better models for each use case with `spec.discovery` (or only NAMES).

    Each candidate is checked against the use case's constraints - every failed check is a
    stated reason - and ranked by the weighted criteria with the current base; "better" means
    eligible and outranking it. A source that is offline or unreachable is skipped with one line.
    """
    import os
    from datetime import UTC, datetime

    from reconciler.discovery.discover import discover_use_case
    from reconciler.discovery.render import render_json, render_table
    from reconciler.discovery.selection import discoverable_use_cases

    desired, use_cases = discoverable_use_cases(repo, names)
    now = datetime.now(UTC)
    results = [
        discover_use_case(use_case, desired, repo=repo, environ=os.environ, now=now)
        for use_case in use_cases
    ]
    click.echo(render_json(results) if output == "json" else render_table(results), nl=False)
