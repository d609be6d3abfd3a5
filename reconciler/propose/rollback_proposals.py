"""Pull requests that write automatic rollbacks back to git (`spec.rejected`).

One branch per use case (`reconciler/rejected/<use case>`), updated rather than duplicated,
never counted against `proposals.limit`: keeping git truthful is not an upgrade. The time in
each entry is when the rollback was first proposed, kept in the PR's hidden marker, so later
runs push nothing new.
"""

from __future__ import annotations

import re

from reconciler.propose.body import code, fit
from reconciler.propose.branches import rollback_branch
from reconciler.propose.context import Context, Outcome, plan_excerpt
from reconciler.propose.dashboard import Dashboard
from reconciler.propose.edits import append_rejections, load_edited, unified_diff
from reconciler.propose.rollback import Rejection, unrecorded_rejections

_AT_MARKER = re.compile(r"<!-- reconciler:rejected-at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) -->")
DEFAULT_LABELS = ("model-rollback",)


def _body(rejections: list[Rejection], excerpt: str, diff: str, at: str) -> str:
    lines = [
        "## Record automatic rollbacks in the desired state",
        "",
        "The reconciler rolled these versions back. Merging records them in `spec.rejected`, "
        "so git stays the source of truth and they are never retried; the plan after merging "
        "is shown below.",
        "",
        "| Version | Key | Built from | Reason |",
        "|---|---|---|---|",
    ]
    for r in rejections:
        lines.append(
            f"| v{r.version} | {code(r.key[:19] + '…')} | {code(r.model or '?')} | "
            f"{code(r.reason)} |"
        )
    sections = [
        "\n\n<details><summary>What merging will do (plan)</summary>\n\n```text\n"
        + excerpt.rstrip()
        + "\n```\n\n</details>\n",
        "\n<details><summary>Change</summary>\n\n```diff\n"
        + diff.rstrip()
        + "\n```\n\n</details>\n",
    ]
    tail = f"\n<!-- reconciler:rejected-at {at} -->\n"
    return fit("\n".join(lines), sections, tail, limit=65_536)


def propose_rollbacks(context: Context, dashboard: Dashboard) -> list[Outcome]:
    assert context.observed is not None
    outcomes = []
    for use_case in context.desired.use_cases:
        if context.options.names and use_case.name not in context.options.names:
            continue
        rejections = unrecorded_rejections(use_case, context.observed)
        if not rejections:
            continue
        branch = rollback_branch(use_case.name)
        existing = next((p for p in context.open_pulls() if p.head == branch), None)
        found = _AT_MARKER.search(existing.body) if existing else None
        at = found.group(1) if found else context.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        file = context.desired.origins[use_case.name]
        before = (context.options.repo / file).read_text(encoding="utf-8")
        texts = {file: before}
        from datetime import datetime

        when = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ")
        append_rejections(texts, file, use_case.name, [r.entry(when) for r in rejections])
        edited = load_edited(context.options.repo, context.desired, texts)
        diff = unified_diff(before, texts[file], file)
        body = _body(rejections, plan_excerpt(context, edited, use_case.name), diff, at)
        versions = ", ".join(f"v{r.version}" for r in rejections)
        title = f"Record the rollback of {use_case.name} {versions} in spec.rejected"
        if context.options.dry_run:
            context.say(f"--- {use_case.name}: would record {versions} in spec.rejected")
            context.say(diff.rstrip())
            context.say(f"--- pull request: {title}\n{body}")
            outcomes.append(Outcome(use_case.name, "dry-run", f"would record {versions}"))
            continue
        assert context.forge is not None and context.git is not None
        published = context.git.publish(
            branch,
            texts,
            f"{title}\n\nWritten back by `reconciler propose` after an automatic rollback.",
            token=context.forge.settings.token,
            server_url=context.forge.settings.server_url,
            environ=context.environ,
        )
        labels = (
            use_case.spec.discovery.proposals.labels if use_case.spec.discovery else []
        ) or list(DEFAULT_LABELS)
        if existing is not None:
            if published.pushed or existing.body != body or existing.title != title:
                context.forge.update_pull(existing.number, title=title, body=body)
            outcomes.append(Outcome(use_case.name, "updated", existing.url, existing.number))
            number = existing.number
        else:
            base = context.git.base_branch(context.environ)
            pull = context.forge.create_pull(title=title, head=branch, base=base, body=body)
            context.forge.add_labels(pull.number, labels)
            context.pulls.append(pull)
            context.proposal_opened(pull, [use_case.name], "rollback")
            outcomes.append(Outcome(use_case.name, "opened", pull.url, pull.number))
            number = pull.number
        context.say(f"{use_case.name}: rollback of {versions} proposed in PR #{number}")
        dashboard.entry(use_case.name).rejected.append(f"#{number} {title}")
    return outcomes
