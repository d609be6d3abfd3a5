"""What one `propose` run shares: options, the loaded and observed state, forge and git."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.discovery.retries import RetryPolicy
from reconciler.discovery.selection import load_valid
from reconciler.errors import ReconcilerError
from reconciler.notifications.events import Notification, Notifier, SilentNotifier
from reconciler.notifications.webhooks import command_notifier
from reconciler.observe.state import ObservedState
from reconciler.propose.branches import BRANCH_PREFIX, read_marker
from reconciler.propose.forge import GitHubForge, PullRequest
from reconciler.propose.git_ops import GitRepository
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase
from reconciler.spec.notifications import NotificationEvent

Say = Callable[[str], None]


@dataclass(frozen=True)
class ProposeOptions:
    repo: Path
    names: tuple[str, ...] = ()
    dry_run: bool = False
    evaluate: bool = True


@dataclass
class Outcome:
    use_case: str
    status: str  # opened | updated | unchanged | pending | none | not-proposed | dry-run
    detail: str
    number: int | None = None


@dataclass
class Context:
    """What one `propose` run shares between use cases."""

    options: ProposeOptions
    desired: DesiredState
    observed: ObservedState | None
    observe_problem: str | None
    settings: Settings
    environ: Mapping[str, str]
    now: datetime
    say: Say
    forge: GitHubForge | None
    git: GitRepository | None
    pulls: list[PullRequest] = field(default_factory=list)
    embedder: Any | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    notifier: Notifier = field(default_factory=SilentNotifier)

    def proposal_opened(self, pull: PullRequest, use_cases: list[str], what: str) -> None:
        """Tell the webhooks a pull request was opened (once per PR, when it is created)."""
        for name in use_cases:
            self.notifier.notify(
                Notification(
                    NotificationEvent.PROPOSAL_OPENED,
                    name,
                    f"PR #{pull.number} opened: {pull.title}",
                    self.now.timestamp(),
                    {"pull_request": pull.url, "number": pull.number, "proposes": what},
                )
            )

    def open_pulls(self) -> list[PullRequest]:
        return [p for p in self.pulls if p.state == "open"]

    def ignored_for(self, use_case: str) -> dict[tuple[str, str, str | None], str]:
        """Candidates of proposal PRs closed without merging, unless an open PR proposes them."""
        open_identities = {p.identity for pull in self.open_pulls() for p in read_marker(pull.body)}
        ignored = {}
        for pull in self.pulls:
            if pull.state != "closed" or pull.merged:
                continue
            for proposed in read_marker(pull.body):
                if proposed.use_case == use_case and proposed.identity not in open_identities:
                    ignored[proposed.identity] = (
                        f"proposal PR #{pull.number} was closed without merging "
                        "(reopen it to propose again)"
                    )
        return ignored


def plan_excerpt(context: Context, edited: DesiredState, use_case: str) -> str:
    if context.observed is None:
        return f"(the registry could not be read: {context.observe_problem})"
    from reconciler.plan.diff import diff
    from reconciler.plan.render import render_text

    text = render_text(diff(edited, context.observed, only=[use_case]), colour=False)
    # The first line names the scratch folder the edit was loaded from: not worth a PR edit.
    return text.split("\n", 2)[2] if text.startswith("Plan for ") else text


def open_context(
    options: ProposeOptions,
    *,
    settings: Settings,
    environ: Mapping[str, str],
    now: datetime,
    say: Say,
    embedder: Any | None = None,
) -> tuple[Context, list[UseCase]]:
    desired = load_valid(options.repo)
    known = {u.name: u for u in desired.use_cases}
    unknown = [n for n in options.names if n not in known]
    if unknown:
        raise ReconcilerError(f"unknown use case(s): {', '.join(unknown)}")
    chosen = [known[n] for n in options.names] if options.names else list(desired.use_cases)
    observed, problem = _observe(desired, settings)
    forge = git = None
    if not options.dry_run:
        from reconciler.propose.forge import ForgeSettings

        git = GitRepository(options.repo)
        forge = GitHubForge(ForgeSettings.from_environment(environ, remote_url=git.remote_url()))
    context = Context(
        options=options,
        desired=desired,
        observed=observed,
        observe_problem=problem,
        settings=settings,
        environ=environ,
        now=now,
        say=say,
        forge=forge,
        git=git,
        embedder=embedder,
        notifier=command_notifier(desired, settings.state_dir, environ=environ),
    )
    if forge is not None:
        context.pulls = forge.pulls(state="all", head_prefix=BRANCH_PREFIX)
    return context, [u for u in chosen if u.spec.discovery is not None]


def _observe(desired: DesiredState, settings: Settings) -> tuple[ObservedState | None, str | None]:
    from reconciler.observe.observer import observe
    from reconciler.planning import traffic_reader
    from reconciler.registry.mlflow_registry import MlflowRegistry

    try:
        registry = MlflowRegistry(settings.tracking_uri, settings.registry_uri)
        return observe(desired, registry, traffic_reader(settings)), None
    except ReconcilerError as exc:
        return None, str(exc)
