"""Pull-request and dashboard bodies: tables of what changes, the evidence, and what merging does.

Every value that came from a source (ids, revisions, licenses) is shown in a code span with
backticks and line breaks removed and pipes escaped, so it can neither break a table, inject
markdown or HTML, nor @-mention anyone. A body never exceeds GitHub's 65,536 characters: the
plan excerpts and evidence are folded into <details> and, when still too long, truncated with
a note, while the summary table and the hidden marker always stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from reconciler.discovery.discover import RankedCandidate, UseCaseDiscovery
from reconciler.propose.branches import Proposed, marker
from reconciler.propose.evidence import Evidence

GITHUB_BODY_LIMIT = 65_536
_METRICS = (
    ("behavior_similarity", "behaviorSimilarity", "behaviour similarity"),
    ("reference_similarity", "referenceSimilarity", "reference similarity"),
    ("safety_pass_rate", "safetyPassRate", "safety pass rate"),
    ("assertion_pass_rate", "assertionPassRate", "assertion pass rate"),
    ("latency_p95_ms", "latencyP95Ms", "p95 latency (ms)"),
    ("validation_perplexity", "validationPerplexity", "validation perplexity"),
    ("tokens_per_second", "", "tokens/s"),
)


def code(text: object) -> str:
    """`text` as an inline code span that cannot escape its table cell."""
    cleaned = " ".join(str(text).replace("`", "'").split()).replace("|", "\\|")
    return f"`{cleaned[:200]}`" if cleaned else "-"


def _parameters(value: float | None) -> str:
    if value is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def _age(candidate: RankedCandidate, now: datetime) -> str:
    released = candidate.candidate.released_at
    if released is None:
        return "?"
    # Whole days: the body, and so the PR, changes at most once a day for this column.
    days = int((now - released).total_seconds() // 86400)
    return f"{days}d" if days >= 1 else "<1d"


@dataclass(frozen=True)
class UseCaseProposal:
    """One use case's upgrade, with everything its pull request shows."""

    discovery: UseCaseDiscovery
    chosen: RankedCandidate
    evidence: Evidence
    plan_excerpt: str
    file: str
    diff: str

    @property
    def name(self) -> str:
        return self.discovery.name

    @property
    def proposed(self) -> Proposed:
        c = self.chosen.candidate
        return Proposed(self.name, c.source.value, c.id, c.revision)


def title_for(proposals: Sequence[UseCaseProposal]) -> str:
    if len(proposals) == 1:
        p = proposals[0]
        label = p.chosen.candidate.label.replace("`", "'")[:120]
        return f"Upgrade {p.name} to {label}"
    return f"Upgrade models of {len(proposals)} use cases"


def _summary(proposals: Sequence[UseCaseProposal], now: datetime) -> str:
    lines = [
        "| Use case | From → To | Source | License | Parameters | Memory | Age | Score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in proposals:
        c = p.chosen
        memory = f"{c.memory_gib:.2f} GiB" if c.memory_gib is not None else "?"
        breakdown = ", ".join(f"{k} {v:.2f}" for k, v in c.breakdown.items())
        lines.append(
            f"| {code(p.name)} | {code(p.discovery.current.candidate.label)} → "
            f"{code(c.candidate.label)} | {c.candidate.source.value} | "
            f"{code(c.candidate.license or '?')} | {_parameters(c.candidate.parameters)} | "
            f"{memory} | {_age(c, now)} | **{c.score:.3f}** vs {p.discovery.current.score:.3f} "
            f"({breakdown}) |"
        )
    return "\n".join(lines)


def _threshold(thresholds: Mapping[str, Mapping[str, float]], key: str) -> tuple[str, bool | None]:
    bound = thresholds.get(key) if key else None
    if not bound:
        return "-", None
    if "min" in bound:
        return f"≥ {bound['min']:g}", True
    return f"≤ {bound['max']:g}", False


def _value(figures: Mapping[str, float], name: str) -> str:
    value = figures.get(name)
    return "-" if value is None else f"{value:.3f}"


def evidence_table(evidence: Evidence) -> str:
    if evidence.verdict == "skipped":
        return (
            "Pre-evaluation was skipped (`--no-evaluate`): no evidence against the champion. "
            "The evaluation gate still judges the candidate before any traffic moves."
        )
    if evidence.verdict == "error":
        return "Pre-evaluation could not run: " + "; ".join(evidence.reasons)
    champion = (
        f"champion v{evidence.champion_version}" if evidence.champion_version else "no champion"
    )
    lines = [
        f"Candidate against the live {champion}, through the use case's evaluation gate:",
        "",
        "| Metric | Candidate | Champion | Threshold | Verdict |",
        "|---|---|---|---|---|",
    ]
    for name, key, label in _METRICS:
        if name not in evidence.candidate_figures and not (key and key in evidence.thresholds):
            continue
        shown, at_least = _threshold(evidence.thresholds, key)
        value = evidence.candidate_figures.get(name)
        verdict = "-"
        if at_least is not None:
            bound = evidence.thresholds[key]
            limit = bound["min"] if at_least else bound["max"]
            ok = value is not None and (value >= limit if at_least else value <= limit)
            verdict = "✅ pass" if ok else "❌ fail"
        lines.append(
            f"| {label} | {_value(evidence.candidate_figures, name)} | "
            f"{_value(evidence.champion_figures, name)} | {shown} | {verdict} |"
        )
    memory = f"{evidence.memory_gib:.2f} GiB" if evidence.memory_gib is not None else "?"
    lines.append(f"| estimated serving memory | {memory} | - | - | - |")
    cost = evidence.cost
    if cost is not None:
        kind = "measured" if cost.measured else "estimate"
        lines.append(
            f"| cost per 1,000 requests (USD, {kind}) | {cost.per_1k_requests:.4f} | - | - | - |"
        )
    lines += ["", f"**Verdict: {evidence.verdict}** - " + "; ".join(evidence.reasons)]
    if cost is not None:
        lines += ["", f"Cost basis: {cost.basis}."]
    return "\n".join(lines)


def _fenced(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _details(summary: str, content: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{content}\n\n</details>"


def pull_request_body(
    proposals: Sequence[UseCaseProposal],
    *,
    labels: Sequence[str],
    now: datetime,
    limit: int = GITHUB_BODY_LIMIT,
) -> str:
    head = "\n".join(
        [
            "## Model upgrade proposed by the reconciler",
            "",
            "Discovery found an eligible candidate that outranks the current desired base; "
            "merging makes it the first acceptable model (pinned), and the reconciler then "
            "registers, trains, evaluates and canaries it as for any change.",
            "",
            _summary(proposals, now),
            "",
        ]
    )
    sections = []
    for p in proposals:
        sections.append(
            "\n".join(
                [
                    f"### {code(p.name)}",
                    "",
                    evidence_table(p.evidence),
                    "",
                    _details("What merging will do (plan)", _fenced(p.plan_excerpt)),
                    "",
                    _details(f"Change to {code(p.file)}", _fenced(p.diff)),
                    "",
                ]
            )
        )
    shown_labels = ", ".join(code(label) for label in labels) or "none"
    tail = "\n".join(
        [
            "",
            f"Labels: {shown_labels}. Close this pull request without merging to ignore this "
            "candidate for this use case; reopen it to lift that.",
            "",
            marker([p.proposed for p in proposals]),
        ]
    )
    return fit(head, sections, tail, limit=limit)


def fit(head: str, sections: Sequence[str], tail: str, *, limit: int) -> str:
    """head + sections + tail within `limit` characters; sections are cut first, head last.

    Sections follow one another (never nested), so a cut leaves at most one code fence and one
    <details> open; both are closed again, within a reserved margin.
    """
    body = head + "".join(sections) + tail
    if len(body) <= limit:
        return body
    note = (
        "\n\n… (truncated to fit GitHub's 65,536-character limit; "
        "`reconciler propose --dry-run` shows all of it)\n"
    )
    closers_margin = 32
    budget = limit - len(head) - len(tail) - len(note) - closers_margin
    if budget <= 0:
        return head[: max(0, limit - len(tail) - len(note))] + note + tail
    middle = "".join(sections)[:budget]
    fence = max((f for f in ("````", "```") if f in middle), key=len, default="")
    if fence and middle.count(fence) % 2:
        middle += "\n" + fence
    if middle.count("<details>") > middle.count("</details>"):
        middle += "\n</details>"
    return head + middle + note + tail
