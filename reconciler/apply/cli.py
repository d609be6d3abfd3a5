"""`reconciler apply | status | history | pause | resume | abort | promote | rollback`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli_options import (
    critical_rate_limit_option,
    min_outputs_option,
    parallelism_option,
    repo_option,
)
from reconciler.rollout.state import Control


@click.command("apply")
@click.argument("planfile", required=False, type=click.Path(path_type=Path, dir_okay=False))
@repo_option()
@click.option("--ref", default=None, help="Read the desired state from this git ref.")
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--use-case", "use_cases", multiple=True, help="Apply only these use cases.")
@click.option(
    "--lock-timeout",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for a use case locked by another reconciler.",
)
@click.option(
    "--time-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Multiply bake times (0.001 turns 30m into 1.8s, for demos and tests).",
)
@parallelism_option
def apply_command(
    planfile: Path | None,
    repo: Path,
    ref: str | None,
    auto_approve: bool,
    use_cases: tuple[str, ...],
    lock_timeout: float,
    time_scale: float,
    parallelism: int,
) -> None:
    """Apply a saved PLANFILE exactly, or plan now and apply after confirmation."""
    from reconciler.apply.commands import run_apply

    code = run_apply(
        planfile=planfile,
        repo=repo,
        ref=ref,
        auto_approve=auto_approve,
        only=list(use_cases) or None,
        lock_timeout=lock_timeout,
        time_scale=time_scale,
        interactive=sys.stdin.isatty(),
        parallelism=parallelism,
    )
    raise SystemExit(code)


@click.command("status")
@repo_option()
@click.option("--ref", default=None)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status_command(repo: Path, ref: str | None, output: str) -> None:
    """Sync and health of every use case: champion, traffic, and any rollout and why it waits."""
    from reconciler.apply.commands import collect_status
    from reconciler.apply.views import status_json, status_text

    statuses = collect_status(repo, ref)
    click.echo(status_json(statuses) if output == "json" else status_text(statuses))


@click.command("history")
@click.argument("use_case")
@repo_option()
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history_command(use_case: str, repo: Path, output: str) -> None:
    """Every champion change of USE_CASE and every rollout analysis behind it."""
    from reconciler.apply.commands import journal, known_use_case
    from reconciler.apply.views import history_json, history_text

    known_use_case(repo, use_case)
    store = journal()
    changes, judgements = store.history(use_case), store.judgements(use_case)
    if output == "json":
        click.echo(history_json(use_case, changes, judgements))
    else:
        click.echo(history_text(use_case, changes, judgements))


def _control_command(name: str, control: Control, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("use_case")
    @repo_option()
    def command(use_case: str, repo: Path) -> None:
        from reconciler.apply.commands import request_control

        click.echo(request_control(repo, use_case, control))

    return command


pause_command = _control_command(
    "pause", Control.PAUSE, "Pause the rollout of USE_CASE at its current step."
)
resume_command = _control_command("resume", Control.RESUME, "Resume a paused rollout.")
abort_command = _control_command(
    "abort", Control.ABORT, "Abort the rollout of USE_CASE and roll back to the champion."
)
promote_command = _control_command(
    "promote", Control.PROMOTE, "Skip the remaining steps and promote the challenger."
)


@click.command("rollback")
@click.argument("use_case")
@repo_option()
@click.option("--to", "to_version", default=None, help="Version to restore (default: previous).")
def rollback_command(use_case: str, repo: Path, to_version: str | None) -> None:
    """Restore the previous champion (or --to VERSION) with all traffic, now."""
    from reconciler.apply.commands import manual_rollback

    click.echo(manual_rollback(repo, use_case, to_version))


@click.command("monitor")
@repo_option()
@click.option("--since", default="1h", show_default=True, help="How much recent traffic to check.")
@critical_rate_limit_option
@min_outputs_option
def monitor_command(repo: Path, since: str, critical_rate_limit: float, min_outputs: int) -> None:
    """Check recent live outputs against the guardrails; roll back critical offenders."""
    from reconciler.apply.commands import run_guardrail_watch

    findings = run_guardrail_watch(repo, since, critical_rate_limit, min_outputs)
    if not findings:
        click.echo("No version exceeds the critical violation rate or an engagement window.")


COMMANDS = (
    apply_command,
    status_command,
    history_command,
    pause_command,
    resume_command,
    abort_command,
    promote_command,
    rollback_command,
    monitor_command,
)
