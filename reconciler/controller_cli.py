"""`reconciler controller`: the reconcile loop as a command, wired to the real adapters.

Above both the apply engine and the controller loop it composes: settings → contexts (which
never block on a bake: a controller advances each rollout one step per cycle) → the loop.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.apply.commands import build_context
from reconciler.apply.context import ApplyContext
from reconciler.cli_options import controller_options
from reconciler.errors import ReconcilerError
from reconciler.health import Health
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState


@click.command("controller")
@controller_options
@click.option("--time-scale", type=float, default=1.0, show_default=True, hidden=True)
@click.option("--once", is_flag=True, help="Run one reconcile and one watch, then exit.")
def controller_command(
    repo: Path,
    ref: str | None,
    fetch: bool,
    interval: str,
    watch_interval: str,
    watch_window: str,
    critical_rate_limit: float,
    min_outputs: int,
    parallelism: int,
    time_scale: float,
    once: bool,
) -> None:
    """Reconcile on a schedule: apply automated use cases, watch guardrails, until stopped.

    Use cases with `syncPolicy.automated: true` are applied on every cycle; the others are
    reported out of sync and wait for `reconciler apply`. Stop it with Ctrl-C or SIGTERM.
    """
    raise SystemExit(
        run_controller_command(
            repo=repo,
            ref=ref,
            fetch=fetch,
            interval=interval,
            watch_interval=watch_interval,
            watch_window=watch_window,
            critical_rate_limit=critical_rate_limit,
            min_outputs=min_outputs,
            parallelism=parallelism,
            time_scale=time_scale,
            once=once,
        )
    )


def run_controller_command(
    *,
    repo: Path,
    ref: str | None,
    fetch: bool,
    interval: str,
    watch_interval: str,
    watch_window: str,
    critical_rate_limit: float,
    min_outputs: int,
    parallelism: int,
    time_scale: float,
    once: bool,
) -> int:
    import signal
    import threading

    from reconciler.controller import (
        ControllerSettings,
        describe,
        reconcile_once,
        run_controller,
        watch_once,
    )
    from reconciler.spec.durations import duration_seconds

    try:
        seconds = {
            name: duration_seconds(value)
            for name, value in (
                ("interval", interval),
                ("watch-interval", watch_interval),
                ("watch-window", watch_window),
            )
        }
    except ValueError as exc:
        raise ReconcilerError(str(exc)) from None
    settings = Settings.from_environment()

    def make_context(repo: Path, desired: DesiredState, settings: Settings) -> ApplyContext:
        # A controller advances each rollout one step per cycle and never waits on a bake.
        return build_context(repo, desired, settings, time_scale=time_scale, drive_rollouts=False)

    if once:
        report = reconcile_once(
            repo, ref, settings, make_context=make_context, fetch=fetch, parallelism=parallelism
        )
        click.echo(describe(report))
        watch_once(
            repo,
            settings,
            make_context=make_context,
            window_seconds=seconds["watch-window"],
            critical_rate_limit=critical_rate_limit,
            min_outputs=min_outputs,
            ref=ref,
        )
        for name, message in sorted(report.messages.items()):
            click.echo(f"  {name}: {message}")
        degraded = Health.DEGRADED in report.applied.values()
        return 1 if report.error is not None or degraded else 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(
        f"controller: reconciling {repo}{f' at {ref}' if ref else ''} every {interval}, "
        f"watching guardrails every {watch_interval}; Ctrl-C to stop"
    )
    run_controller(
        ControllerSettings(
            repo=repo,
            ref=ref,
            fetch=fetch,
            interval_seconds=seconds["interval"],
            watch_interval_seconds=seconds["watch-interval"],
            watch_window_seconds=seconds["watch-window"],
            critical_rate_limit=critical_rate_limit,
            min_outputs=min_outputs,
            parallelism=parallelism,
        ),
        settings,
        make_context=make_context,
        say=click.echo,
        stop=stop,
    )
    click.echo("controller stopped")
    return 0
