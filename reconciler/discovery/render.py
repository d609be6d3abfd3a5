"""`reconciler discover` output: a table per use case for people, JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence

from reconciler.discovery.discover import RankedCandidate, UseCaseDiscovery

_SHORT = {
    "quality": "qual",
    "resourceEfficiency": "res",
    "size": "size",
    "communityHealth": "comm",
    "recency": "rec",
    "license": "lic",
}


def render_json(results: Sequence[UseCaseDiscovery]) -> str:
    return json.dumps({"use_cases": [r.as_json() for r in results]}, indent=2) + "\n"


def _parameters(value: float | None) -> str:
    if value is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def _row(mark: str, ranked: RankedCandidate) -> str:
    c = ranked.candidate
    breakdown = " ".join(f"{_SHORT[k]}={v:.2f}" for k, v in ranked.breakdown.items())
    memory = f"{ranked.memory_gib:.2f}GiB" if ranked.memory_gib is not None else "?"
    return (
        f"  {mark} {ranked.score:6.3f}  {c.label[:60]:<60} {c.license or '?':<12} "
        f"{_parameters(c.parameters):>6} {memory:>9}  {breakdown}"
    )


def render_table(results: Sequence[UseCaseDiscovery]) -> str:
    lines: list[str] = []
    for result in results:
        lines.append(f"{result.name}")
        for report in result.sources:
            if report.skipped:
                lines.append(f"  ! source {report.source} skipped: {report.skipped}")
            for passed in report.passed_over:
                lines.append(f"  ! source {report.source} passed over {passed.line}")
        lines.append(_row("=", result.current) + "  (current base)")
        if not result.candidates:
            lines.append("    no candidates found")
        for ranked in result.candidates:
            mark = "*" if ranked.better else ("+" if ranked.eligible else "-")
            lines.append(_row(mark, ranked))
            for reason in ranked.reasons:
                lines.append(f"        - {reason}")
        best = result.best
        lines.append(
            f"  better candidate: {best.candidate.label}"
            if best
            else "  no eligible candidate outranks the current base"
        )
        lines.append("")
    lines.append("* better than the current base   + eligible   - not eligible (reasons below it)")
    return "\n".join(lines) + "\n"
