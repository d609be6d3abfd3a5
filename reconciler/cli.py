"""The `reconciler` command line: argument parsing only; work happens in the packages.

Exit codes follow Terraform: 0 success / no changes, 1 error, 2 changes present (only with
`plan --detailed-exitcode`). Usage errors therefore exit 1, never 2. No command prints a
traceback unless RECONCILER_DEBUG=1.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import click

from reconciler import __version__
from reconciler.apply.cli import COMMANDS as APPLY_COMMANDS
from reconciler.candidates.cli import CANDIDATE_COMMANDS
from reconciler.cli_options import repo_option
from reconciler.controller_cli import controller_command
from reconciler.discovery.cli import discover_command
from reconciler.errors import ReconcilerError
from reconciler.gateway.cli import gateway_command
from reconciler.guardrails.cli import guardrails as guardrails_group
from reconciler.propose.cli import propose_command
from reconciler.redaction import redact_text
from reconciler.server.cli import serve_command
from reconciler.spec.diagnostics import Diagnostic, count_problems
from reconciler.tracking.cli import ui_command
from reconciler.training.cli import tiny_model_command

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2

ref_option = click.option(
    "--ref", default=None, help="Read the desired state from this git ref (branch, tag, sha)."
)


def _colour(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative GitOps reconciler for the ML/LLM models behind your use cases."""


def _print_diagnostics(diagnostics: tuple[Diagnostic, ...], output: str) -> None:
    if output == "json":
        return
    for diagnostic in diagnostics:
        if output == "github":
            line = diagnostic.position.line if diagnostic.position else 1
            col = diagnostic.position.column if diagnostic.position else 1
            field = f"{diagnostic.field}: " if diagnostic.field else ""
            click.echo(
                f"::{diagnostic.severity.value} file={diagnostic.file},line={line},col={col}::"
                f"{field}{diagnostic.message}"
            )
        else:
            click.echo(diagnostic.render(), err=True)


@cli.command()
@repo_option()
@ref_option
@click.option(
    "--output",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github: workflow-command annotations for GitHub Actions.",
)
def validate(repo: Path, ref: str | None, output: str) -> None:
    """Check the desired state: every error, each as FILE:LINE:COL: field: problem."""
    from reconciler.spec.loader import load_desired_state

    result = load_desired_state(repo, ref)
    _print_diagnostics(result.diagnostics, output)
    errors = [d for d in result.diagnostics if d.severity.value == "error"]
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "valid": result.ok,
                    "digest": result.state.source.digest if result.state else None,
                    "diagnostics": [
                        {
                            "file": d.file,
                            "line": d.position.line if d.position else None,
                            "column": d.position.column if d.position else None,
                            "field": d.field,
                            "message": d.message,
                            "severity": d.severity.value,
                            "repeats": d.repeats,
                        }
                        for d in result.diagnostics
                    ],
                },
                indent=2,
            )
        )
    elif result.state is None:
        files = len({d.file for d in errors})
        count = count_problems(errors)
        click.echo(f"{count} error(s) in {files} file(s); nothing was changed.", err=True)
    else:
        state = result.state
        click.echo(
            f"Valid: {len(state.use_cases)} use cases, {len(state.policies)} guardrail "
            f"policies (desired digest {state.source.digest.removeprefix('sha256:')[:12]})."
        )
    if result.state is None:
        raise SystemExit(EXIT_ERROR)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of desired-state documents."""
    from reconciler.spec.schema import render_schema

    click.echo(render_schema(), nl=False)


@cli.command()
@repo_option()
@ref_option
@click.option(
    "--output",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan (JSON) for a later `apply PLANFILE`.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when the plan has changes, 0 when everything is in sync.",
)
@click.option("--use-case", "use_cases", multiple=True, help="Plan only these use cases.")
@click.option(
    "--details-url",
    default=None,
    help="Markdown: where the full plan is, linked when the plan is cut to fit a PR comment.",
)
def plan(
    repo: Path,
    ref: str | None,
    output: str,
    out_file: Path | None,
    detailed_exitcode: bool,
    use_cases: tuple[str, ...],
    details_url: str | None,
) -> None:
    """Compare the desired state with the registry and traffic, and show what would change."""
    from reconciler.plan import planfile
    from reconciler.plan.render import render_json, render_markdown, render_text
    from reconciler.planning import make_plan
    from reconciler.settings import Settings

    # Like Terraform, --out never creates folders (a typo would scatter plans); unlike it, a
    # missing folder is refused before the registry is read, not after the plan is shown.
    if out_file is not None and not out_file.parent.is_dir():
        reason = "is not a folder" if out_file.parent.exists() else "does not exist"
        raise ReconcilerError(
            f"cannot save the plan to {out_file}: folder {out_file.parent} {reason}"
        )
    made = make_plan(repo, ref, Settings.from_environment(), only=use_cases or None)
    if made.plan is None:
        _print_diagnostics(made.diagnostics, "text")
        click.echo(
            f"{count_problems(made.diagnostics)} error(s) in the desired state; no plan was made.",
            err=True,
        )
        raise SystemExit(EXIT_ERROR)
    result = made.plan
    if output == "json":
        click.echo(render_json(result), nl=False)
    elif output == "markdown":
        click.echo(render_markdown(result, details_url=details_url), nl=False)
    else:
        click.echo(render_text(result, colour=_colour(sys.stdout)), nl=False)
    if out_file is not None:
        try:
            planfile.save(result, out_file)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ReconcilerError(f"cannot save the plan to {out_file}: {reason}") from exc
        click.echo(f"Saved the plan to {out_file}.", err=True)
    if detailed_exitcode and result.has_changes:
        raise SystemExit(EXIT_CHANGES)


# Command families live beside their packages; their modules import only click, so
# `validate` and `plan` stay light.
for command in (
    discover_command,
    propose_command,
    gateway_command,
    guardrails_group,
    tiny_model_command,
    ui_command,
    serve_command,
    *CANDIDATE_COMMANDS,
    *APPLY_COMMANDS,
    controller_command,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn every failure into a message and exit code 1."""
    try:
        cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else EXIT_ERROR
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_ERROR
    except ReconcilerError as exc:
        click.echo(f"error: {redact_text(str(exc))}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("RECONCILER_DEBUG") == "1":
            traceback.print_exc()
        click.echo(
            f"internal error: {type(exc).__name__}: {redact_text(str(exc))} "
            "(this is a bug; set RECONCILER_DEBUG=1 for the traceback)",
            err=True,
        )
        return EXIT_ERROR
    return EXIT_OK


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
