"""The dashboard issue, "Model upgrades": one place listing, per use case, the open proposal
PRs, the upgrades waiting (pending), the candidates ignored (a proposal closed without merging)
and the ones rejected (rolled back). Like Renovate's Dependency Dashboard it is edited in
place, and only when its text changed; it carries no timestamps, so an idle run edits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reconciler.propose.body import code
from reconciler.propose.forge import GitHubForge

TITLE = "Model upgrades"
LABELS = ("model-upgrade",)


@dataclass
class DashboardEntry:
    open: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass
class Dashboard:
    now: datetime
    entries: dict[str, DashboardEntry] = field(default_factory=dict)

    def entry(self, use_case: str) -> DashboardEntry:
        return self.entries.setdefault(use_case, DashboardEntry())

    def body(self) -> str:
        lines = [
            "This issue lists the model upgrades `reconciler propose` found, per use case. "
            "It is updated in place by each run.",
            "",
        ]
        for name in sorted(self.entries):
            entry = self.entries[name]
            lines.append(f"## {code(name)}")
            sections = (
                ("Open", entry.open),
                ("Pending", entry.pending),
                ("Not proposed (pre-evaluation)", entry.failed),
                ("Ignored", entry.ignored),
                ("Rejected", entry.rejected),
            )
            shown = False
            for label, items in sections:
                for item in items:
                    lines.append(f"- **{label}**: {_line(item)}")
                    shown = True
            if not shown:
                lines.append("- nothing to propose")
            lines.append("")
        return "\n".join(lines)

    def publish(self, forge: GitHubForge) -> int:
        body = self.body()
        issue = forge.find_issue(TITLE)
        if issue is None:
            return forge.create_issue(title=TITLE, body=body, labels=LABELS).number
        if issue.body != body:
            forge.update_issue(issue.number, body=body)
        return issue.number


def _line(text: str) -> str:
    # Items start with a PR reference or a candidate label; the label is untrusted text.
    head, sep, rest = text.partition(" ")
    if head.startswith("#") and head[1:].isdigit():
        return f"{head} {code(rest)}" if sep else head
    return code(text)
