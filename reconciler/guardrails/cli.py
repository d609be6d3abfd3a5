"""``reconciler guardrails``: check outputs against policies, and report stored violations.

Only click is imported here; the engine (and with it torch, when a policy needs embeddings)
is imported inside the commands, so adding this group to the main CLI keeps ``reconciler
validate`` and ``plan`` light.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli_options import repo_option

if TYPE_CHECKING:
    from reconciler.guardrails.engine import GuardrailEngine

EXIT_ERROR = 1
CHECK_CHUNK = 256


@click.group()
def guardrails() -> None:
    """Check model outputs against guardrail policies; report recorded violations."""


def _engine(repo: Path, policy: str | None) -> GuardrailEngine:
    from reconciler.errors import ReconcilerError
    from reconciler.guardrails.engine import compile_policies
    from reconciler.spec.loader import load_desired_state

    result = load_desired_state(repo)
    if result.state is None:
        for diagnostic in result.diagnostics:
            click.echo(diagnostic.render(), err=True)
        raise ReconcilerError("the desired state has errors; fix them (reconciler validate)")
    policies = list(result.state.policies)
    if policy is not None:
        policies = [p for p in policies if p.name == policy]
        if not policies:
            known = ", ".join(p.name for p in result.state.policies) or "none"
            raise click.BadParameter(
                f"no policy {policy!r} (known: {known})", param_hint="--policy"
            )
    return compile_policies(policies, base_path=repo)


def _read_lines(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text or None when malformed, problem) for each non-blank line."""
    with path.open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"not valid JSON ({exc.msg})"
                continue
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                yield number, None, 'expected an object with a string "text"'
                continue
            yield number, record["text"], ""


def _render_text(number: int, verdict: dict[str, Any]) -> str:
    if not verdict["flagged"]:
        return f"{number}: pass"
    checks = ", ".join(f"{f['policy']}/{f['check']}" for f in verdict["findings"])
    return (
        f"{number}: FLAGGED {verdict['severity']} -> {verdict['intervention']} "
        f"[{', '.join(verdict['categories'])}] ({checks})"
    )


@guardrails.command()
@repo_option("Folder holding desired_state/ and policies/.")
@click.option("--policy", default=None, help="Apply only this policy (default: all of them).")
@click.option(
    "--input",
    "input_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help='JSON Lines, one {"text": ...} per line; other keys are ignored.',
)
@click.option("--output", type=click.Choice(["json", "text"]), default="json", show_default=True)
def check(repo: Path, policy: str | None, input_file: Path, output: str) -> None:
    """Check each line's text; print one result per line. Exit 1 if any line was malformed."""
    engine = _engine(repo, policy)
    malformed = 0
    pending: list[tuple[int, str]] = []

    def flush() -> None:
        verdicts = engine.check_batch([text for _, text in pending])
        for (number, _), verdict in zip(pending, verdicts, strict=True):
            result = {"line": number, **verdict.to_json()}
            click.echo(json.dumps(result) if output == "json" else _render_text(number, result))
        pending.clear()

    for number, text, problem in _read_lines(input_file):
        if text is None:
            malformed += 1
            click.echo(f"{input_file}:{number}: {problem}", err=True)
            continue
        pending.append((number, text))
        if len(pending) >= CHECK_CHUNK:
            flush()
    if pending:
        flush()
    if malformed:
        click.echo(f"{malformed} malformed line(s) skipped.", err=True)
        raise SystemExit(EXIT_ERROR)


@guardrails.command()
@repo_option("Folder holding desired_state/ and policies/.")
@click.option("--policy", default=None, help="Prepare only this policy (default: all of them).")
def prepare(repo: Path, policy: str | None) -> None:
    """Build what the checks need before their first output: the distilled static
    embeddings, the encoder's ONNX Runtime export and the hazard classifiers, in the per-user
    cache (RECONCILER_STATIC_EMBEDDINGS_DIR moves it). Run it when building an image or a CI
    cache: a gateway's first start then loads them instead of making them."""
    from reconciler.guardrails.embeddings import default_embedder
    from reconciler.guardrails.static_embeddings import static_cache_dir

    engine = _engine(repo, policy)
    engine.warm_up()
    cache = static_cache_dir()
    click.echo(f"prepared: {', '.join(engine.policy_names)} ({len(engine.checks)} checks)")
    click.echo(f"encoder runtime: {default_embedder().runtime}")
    click.echo(f"cache: {cache}")
    for path in sorted(cache.iterdir()):
        if path.name.startswith("minilm-") and not path.name.endswith(".lock"):
            click.echo(f"  {path.name}{'/' if path.is_dir() else ''}")


@guardrails.command()
@click.argument("use_case")
@click.option("--output", type=click.Choice(["json", "text"]), default="text", show_default=True)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="State folder whose state.db holds the violations (default: RECONCILER_STATE_DIR or "
    ".reconciler/); ignored when RECONCILER_DATABASE_URL names the store.",
)
def report(use_case: str, output: str, state_dir: Path | None) -> None:
    """Summarise the violations recorded for USE_CASE."""
    from dataclasses import replace

    from reconciler.guardrails.store import ViolationStore
    from reconciler.settings import Settings
    from reconciler.state_store.database import StateDatabase

    settings = Settings.from_environment()
    if state_dir is not None:
        settings = replace(settings, state_dir=state_dir)
    store = ViolationStore(StateDatabase.of(settings))
    summary = store.report(use_case)
    if output == "json":
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    if summary.total == 0:
        click.echo(f"No violations recorded for {use_case}.")
        return
    click.echo(f"{summary.total} violation(s) recorded for {use_case}.")
    for title, counts in (
        ("By severity", summary.by_severity),
        ("By category", summary.by_category),
        ("By version", summary.by_version),
    ):
        click.echo(f"{title}: " + ", ".join(f"{key} {n}" for key, n in counts.items()))
    click.echo("Latest:")
    for record in summary.latest:
        click.echo(
            f"  {record.recorded_at:%Y-%m-%d %H:%M:%S} v{record.version} {record.severity} "
            f"{record.category} ({record.policy}/{record.check}): {record.sample}"
        )
