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


def controller_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The reconcile loop's options, for `controller` and `serve`: what it follows, how often
    it reconciles and watches guardrails, the watch's limits and the parallelism."""
    options: tuple[Decorator, ...] = (
        repo_option(),
        click.option(
            "--ref",
            default=None,
            help="Follow this git ref (e.g. origin/main with --fetch); "
            "default: the folder as it is.",
        ),
        click.option("--fetch", is_flag=True, help="`git fetch` the remotes before every cycle."),
        click.option(
            "--interval", default="5m", show_default=True, help="Time between reconciles."
        ),
        click.option(
            "--watch-interval",
            default="5m",
            show_default=True,
            help="Time between guardrail watches.",
        ),
        click.option(
            "--watch-window",
            default="1h",
            show_default=True,
            help="Live traffic each watch judges.",
        ),
        critical_rate_limit_option,
        min_outputs_option,
        parallelism_option,
    )
    for option in reversed(options):  # the first listed shows first in --help
        command = option(command)
    return command
