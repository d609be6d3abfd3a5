"""Command-line options that several commands share, defined once so they read the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

REPO_HELP = "Folder (or git repository) holding desired_state/ and policies/."


def repo_option(help: str = REPO_HELP) -> Decorator:
    return click.option(
        "--repo",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("."),
        show_default=True,
        help=help,
    )


critical_rate_limit_option = click.option(
    "--critical-rate-limit",
    type=click.FloatRange(0.0, 1.0),
    default=0.01,
    show_default=True,
    help="Roll back a version whose rate of critical violations exceeds this.",
)
min_outputs_option = click.option(
    "--min-outputs",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Fewer logged outputs than this for a version is too little to judge its rate.",
)
parallelism_option = click.option(
    "--parallelism",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="How many use cases to apply at once (each has its own lock).",
)
