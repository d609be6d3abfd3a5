"""`reconciler propose`: discovery's best candidates become pull requests, Renovate's way.

Per use case with `spec.discovery`: discover, take the best eligible candidate that outranks
the current base, pre-evaluate it against the live champion (a failing candidate is not
proposed), edit the YAML, and open - or update - its pull request:

- an open proposal PR for the use case is updated (its branch force-pushed, its body edited),
  never duplicated;
- a proposal PR closed without merging means "ignore this candidate for this use case" (read
  back from the PR's hidden marker); reopening it lifts that;
- `proposals.limit` caps the open proposal PRs: past it, an upgrade waits as "pending";
- `proposals.group: true` puts the use cases that ask for it into one PR;
- rollbacks not yet in git become PRs adding them to `spec.rejected`;
- one dashboard issue, "Model upgrades", lists open, pending, ignored and rejected candidates
  per use case and is edited in place.

`--dry-run` prints each diff and body and changes nothing: no git, no forge, no registry
writes (the pre-evaluation runs in a scratch store).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.discovery.discover import UseCaseDiscovery, discover_use_case
from reconciler.errors import ReconcilerError
from reconciler.lineage import Alias
from reconciler.propose.body import UseCaseProposal, pull_request_body, title_for
from reconciler.propose.branches import (
    BRANCH_PREFIX,
    GROUP_BRANCH,
    proposal_branch,
    read_marker,
    use_case_prefix,
)
from reconciler.propose.context import Context, Outcome, plan_excerpt
from reconciler.propose.dashboard import Dashboard
from reconciler.propose.edits import load_edited, prepend_model, unified_diff
from reconciler.propose.evidence import Evidence, failed_to_run, pre_evaluate, skipped
from reconciler.propose.forge import PullRequest
from reconciler.propose.rollback import unrecorded_rejections
from reconciler.propose.rollback_proposals import propose_rollbacks
from reconciler.spec.model import UseCase


def _champion(context: Context, use_case: UseCase) -> str | None:
    if context.observed is None:
        return None
    model = context.observed.registered_model(use_case.spec.registered_model)
    return model.aliases.get(Alias.CHAMPION.value) if model else None


def _evidence(context: Context, use_case: UseCase, found: UseCaseDiscovery) -> Evidence:
    best = found.best
    assert best is not None and best.entry is not None
    if not context.options.evaluate:
        return skipped(best.candidate, use_case, context.desired)
    if context.observe_problem is not None:
        return failed_to_run(context.observe_problem, best.candidate, use_case, context.desired)
    try:
        return pre_evaluate(
            use_case,
            context.desired,
            best.candidate,
            best.entry,
            repo=context.options.repo,
            settings=context.settings,
            champion_version=_champion(context, use_case),
            embedder=context.embedder,
        )
    except Exception as exc:  # a model that cannot be fetched or loaded is not proposed
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        problem = f"{type(exc).__name__}: {first}"
        return failed_to_run(problem, best.candidate, use_case, context.desired)


def prepare(context: Context, use_case: UseCase, dashboard: Dashboard) -> UseCaseProposal | None:
    """The use case's proposal, or None (with its outcome said and put on the dashboard)."""
    found = discover_use_case(
        use_case,
        context.desired,
        repo=context.options.repo,
        environ=context.environ,
        now=context.now,
        ignored=context.ignored_for(use_case.name),
        policy=context.policy,
    )
    for report in found.sources:
        if report.skipped:
            context.say(f"{use_case.name}: source {report.source} skipped: {report.skipped}")
    entry = dashboard.entry(use_case.name)
    entry.ignored += [
        f"{c.candidate.label}: {r.removeprefix('ignored: ')}"
        for c in found.candidates
        for r in c.reasons
        if r.startswith("ignored: ")
    ]
    best = found.best
    if best is None or best.entry is None:
        context.say(f"{use_case.name}: no eligible candidate outranks the current base")
        return None
    evidence = _evidence(context, use_case, found)
    if not evidence.allows_proposal:
        why = "; ".join(evidence.reasons)
        context.say(f"{use_case.name}: {best.candidate.label} is not proposed: {why}")
        entry.failed.append(f"{best.candidate.label}: {why}")
        return None
    file = context.desired.origins[use_case.name]
    before = (context.options.repo / file).read_text(encoding="utf-8")
    texts = {file: before}
    prepend_model(texts, file, use_case.name, best.entry)
    edited = load_edited(context.options.repo, context.desired, texts)
    return UseCaseProposal(
        discovery=found,
        chosen=best,
        evidence=evidence,
        plan_excerpt=plan_excerpt(context, edited, use_case.name),
        file=file,
        diff=unified_diff(before, texts[file], file),
    )


def _files(context: Context, proposals: Sequence[UseCaseProposal]) -> dict[str, str]:
    """The edited files of all `proposals` together (several may share a file)."""
    texts: dict[str, str] = {}
    for p in proposals:
        if p.file not in texts:
            texts[p.file] = (context.options.repo / p.file).read_text(encoding="utf-8")
        assert p.chosen.entry is not None
        prepend_model(texts, p.file, p.name, p.chosen.entry)
    load_edited(context.options.repo, context.desired, texts)  # refused unless valid together
    return texts


def publish(
    context: Context,
    proposals: Sequence[UseCaseProposal],
    *,
    branch: str,
    existing: PullRequest | None,
    labels: Sequence[str],
    limit: int,
    dashboard: Dashboard,
) -> list[Outcome]:
    names = [p.name for p in proposals]
    title = title_for(proposals)
    body = pull_request_body(proposals, labels=labels, now=context.now)
    if context.options.dry_run:
        for p in proposals:
            context.say(f"--- {p.name}: would propose {p.chosen.candidate.label} on {branch}")
            context.say(p.diff.rstrip())
        context.say(f"--- pull request: {title}\n{body}")
        return [Outcome(n, "dry-run", f"would propose on {branch}") for n in names]
    assert context.forge is not None and context.git is not None
    files = _files(context, proposals)
    message = f"{title}\n\nProposed by `reconciler propose` with evidence in the pull request."
    token, server_url = context.forge.settings.token, context.forge.settings.server_url
    if existing is not None:
        published = context.git.publish(
            existing.head,
            files,
            message,
            token=token,
            server_url=server_url,
            environ=context.environ,
        )
        changed = published.pushed or existing.body != body or existing.title != title
        if changed:
            context.forge.update_pull(existing.number, title=title, body=body)
            before = {p.identity for p in read_marker(existing.body)}
            if before != {p.proposed.identity for p in proposals}:
                context.forge.comment(
                    existing.number,
                    "Updated by `reconciler propose`: now proposes "
                    + ", ".join(f"`{p.chosen.candidate.label}`" for p in proposals)
                    + ".",
                )
        status = "updated" if changed else "unchanged"
        for name in names:
            dashboard.entry(name).open.append(f"#{existing.number} {title}")
            context.say(f"{name}: {status} PR #{existing.number}")
        return [Outcome(n, status, existing.url, existing.number) for n in names]
    open_count = len([p for p in context.open_pulls() if not _is_rollback(p)])
    if open_count >= limit:
        for p in proposals:
            why = f"limit of {limit} open proposal PRs reached"
            dashboard.entry(p.name).pending.append(f"{p.chosen.candidate.label} ({why})")
            context.say(f"{p.name}: {p.chosen.candidate.label} is pending: {why}")
        return [Outcome(n, "pending", "limit reached") for n in names]
    context.git.publish(
        branch, files, message, token=token, server_url=server_url, environ=context.environ
    )
    base = context.git.base_branch(context.environ)
    pull = context.forge.create_pull(title=title, head=branch, base=base, body=body)
    context.forge.add_labels(pull.number, labels)
    context.pulls.append(pull)
    context.proposal_opened(pull, names, "upgrade")
    for name in names:
        dashboard.entry(name).open.append(f"#{pull.number} {title}")
        context.say(f"{name}: opened PR #{pull.number} {pull.url}")
    return [Outcome(n, "opened", pull.url, pull.number) for n in names]


def _guarded(
    context: Context,
    proposals: Sequence[UseCaseProposal],
    **arguments: Any,
) -> list[Outcome]:
    """`publish`, with a git or forge failure reported for these use cases only."""
    try:
        return publish(context, proposals, **arguments)
    except ReconcilerError as exc:
        for p in proposals:
            context.say(f"{p.name}: error: {exc}")
        return [Outcome(p.name, "error", str(exc)) for p in proposals]


def _is_rollback(pull: PullRequest) -> bool:
    return pull.head.startswith(f"{BRANCH_PREFIX}rejected/")


def _existing(context: Context, prefix: str, exact: bool = False) -> PullRequest | None:
    for pull in context.open_pulls():
        if (pull.head == prefix) if exact else pull.head.startswith(prefix):
            return pull
    return None


def run(context: Context, use_cases: Sequence[UseCase]) -> list[Outcome]:
    dashboard = Dashboard(now=context.now)
    outcomes: list[Outcome] = []
    grouped: list[tuple[UseCase, UseCaseProposal]] = []
    for use_case in use_cases:
        discovery = use_case.spec.discovery
        assert discovery is not None
        dashboard.entry(use_case.name).rejected += [
            f"`{r.key[:19]}…` v{r.version or '?'}: {r.reason}" for r in use_case.spec.rejected
        ]
        try:
            proposal = prepare(context, use_case, dashboard)
        except ReconcilerError as exc:  # this use case's problem; the others still run
            context.say(f"{use_case.name}: error: {exc}")
            outcomes.append(Outcome(use_case.name, "error", str(exc)))
            continue
        if proposal is None:
            outcomes.append(Outcome(use_case.name, "none", "nothing to propose"))
            continue
        if discovery.proposals.group:
            grouped.append((use_case, proposal))
            continue
        branch = proposal_branch(
            use_case.name, proposal.chosen.candidate.source.value, proposal.chosen.candidate.id
        )
        outcomes += _guarded(
            context,
            [proposal],
            branch=branch,
            existing=_existing(context, use_case_prefix(use_case.name)),
            labels=discovery.proposals.labels,
            limit=discovery.proposals.limit,
            dashboard=dashboard,
        )
    if grouped:
        first = grouped[0][0].spec.discovery
        assert first is not None
        labels = sorted(
            {
                label
                for u, _ in grouped
                for label in (u.spec.discovery.proposals.labels if u.spec.discovery else [])
            }
        )
        outcomes += _guarded(
            context,
            [p for _, p in grouped],
            branch=GROUP_BRANCH,
            existing=_existing(context, GROUP_BRANCH, exact=True),
            labels=labels,
            limit=min(u.spec.discovery.proposals.limit for u, _ in grouped),  # type: ignore[union-attr]
            dashboard=dashboard,
        )
    if context.observed is not None:
        outcomes += propose_rollbacks(context, dashboard)
    for use_case in context.desired.use_cases:
        if context.observed is not None:
            for rejection in unrecorded_rejections(use_case, context.observed):
                dashboard.entry(use_case.name).rejected.append(
                    f"v{rejection.version}: {rejection.reason} (not in git yet)"
                )
    if context.options.names:
        context.say("dashboard: left as it is (only some use cases were looked at)")
    elif context.forge is not None and not context.options.dry_run:
        number = dashboard.publish(context.forge)
        context.say(f"dashboard: issue #{number} is up to date")
    elif context.options.dry_run:
        context.say("--- dashboard issue (not written in a dry run)\n" + dashboard.body())
    return outcomes
