"""`reconciler train | evaluate`: one use case by hand, without a plan or a rollout.

They do what `apply` would do for one use case up to (not including) the rollout: nothing
moves an alias or traffic. The module imports only click; the work (torch, transformers,
mlflow) is imported when a command runs, so `validate` and `plan` stay light.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli_options import repo_option as shared_repo_option

repo_option = shared_repo_option(
    "Folder holding desired_state/ and policies/ (read as it is on disk)."
)


def _echo_error(line: str) -> None:
    click.echo(line, err=True)


@click.command("train")
@click.argument("name")
@repo_option
def train_command(name: str, repo: Path) -> None:
    """Train use case NAME's copy of its base model, without a rollout.

    Registers the base model first when the registry lacks it. Idempotent: when a version was
    already trained for the current desired state (same base, settings and data), it is
    reported and nothing is trained.
    """
    from reconciler.candidates.by_hand import load_target, train_use_case, where_to_look
    from reconciler.settings import Settings

    settings = Settings.from_environment()
    target = load_target(repo, name, on_diagnostic=_echo_error)
    trained = train_use_case(target, settings)
    registered = target.registered_model
    click.echo(f"Base: version {trained.base_version} of {registered}.")
    if trained.reused:
        click.echo(
            f"Already trained: version {trained.version} of {registered} "
            f"({trained.model_name}) matches the desired state; nothing was trained."
        )
    else:
        click.echo(f"Trained: version {trained.version} of {registered} ({trained.model_name}).")
    click.echo(f"Training run: {trained.run_id} (experiment {target.use_case.name})")
    for line in where_to_look(
        settings,
        experiment=target.use_case.name,
        run_id=trained.run_id,
        registered_model=registered,
        version=trained.version,
    ):
        click.echo(line)


@click.command("evaluate")
@click.argument("name")
@click.option(
    "--candidate",
    default=None,
    help="Version to judge. Default: the one made for the current desired state (its key).",
)
@click.option(
    "--champion",
    default=None,
    help="Version to compare with. Default: the `champion` alias, if set.",
)
@repo_option
def evaluate_command(name: str, candidate: str | None, champion: str | None, repo: Path) -> None:
    """Evaluate a version of use case NAME against its champion, without a rollout.

    Prints the verdict, every failed threshold and the evaluation run; exits 1 when the
    candidate fails. The verdict is recorded on the candidate version, as `apply` records it.
    """
    from reconciler.candidates.by_hand import evaluate_use_case, load_target, where_to_look
    from reconciler.settings import Settings

    settings = Settings.from_environment()
    target = load_target(repo, name, on_diagnostic=_echo_error)
    evaluated = evaluate_use_case(target, settings, candidate=candidate, champion=champion)
    result = evaluated.result
    registered = target.registered_model
    if evaluated.registered_base is not None:
        click.echo(f"Registered the base model as version {evaluated.registered_base}.")
    against = (
        f"champion version {result.champion_version}"
        if result.champion_version
        else "no champion (absolute thresholds only)"
    )
    click.echo(
        f"Evaluated version {result.candidate_version} of {registered} against {against} "
        f"on {result.prompt_count} prompts."
    )
    for metric, value in sorted(result.metrics.items()):
        click.echo(f"  {metric:<22} {value:.4g}")
    click.echo(f"Verdict: {result.verdict.value}")
    for failure in result.failures:
        click.echo(f"  failed: {failure}")
    click.echo(f"Evaluation run: {result.run_id} (experiment {target.use_case.name})")
    for line in where_to_look(
        settings,
        experiment=target.use_case.name,
        run_id=result.run_id,
        registered_model=registered,
        version=result.candidate_version,
    ):
        click.echo(line)
    if not result.passed:
        raise SystemExit(1)


# Registered by reconciler/cli.py beside `tiny-model`.
CANDIDATE_COMMANDS = (train_command, evaluate_command)
