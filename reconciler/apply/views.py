"""How the apply-family commands show things: status and history as text or JSON.

Only reads values; decides nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from reconciler.apply.journal import ChampionChange
from reconciler.apply.status import UseCaseStatus
from reconciler.rollout.state import Judgement


def status_json(statuses: Sequence[UseCaseStatus]) -> str:
    return json.dumps({"use_cases": [s.as_json() for s in statuses]}, indent=2)


def status_text(statuses: Sequence[UseCaseStatus]) -> str:
    lines = []
    for s in statuses:
        traffic = ", ".join(f"{v}={w}%" for v, w in s.traffic) or "no routes"
        lines.append(
            f"{s.name:<24} {s.sync.value:<10} {s.health.value:<12} champion {s.champion or '-'}"
            f"  challenger {s.challenger or '-'}  traffic {traffic}"
        )
        lines.append(f"{'':<24} {s.message}")
        last = (s.rollout or {}).get("last_judgement")
        if last:
            lines.append(f"{'':<24} last analysis at {last['stage']}: {last['summary']}")
    return "\n".join(lines)


def history_json(
    use_case: str, changes: Sequence[ChampionChange], judgements: Sequence[Judgement]
) -> str:
    document: dict[str, Any] = {
        "use_case": use_case,
        "champion_changes": [c.as_json() for c in changes],
        "judgements": [{"at": _iso(j.window_end), **j.as_json()} for j in judgements],
    }
    return json.dumps(document, indent=2)


def history_text(
    use_case: str, changes: Sequence[ChampionChange], judgements: Sequence[Judgement]
) -> str:
    """One timeline: champion changes and every analysis, oldest first."""
    entries: list[tuple[str, str]] = [
        (
            c.at,
            f"{c.at}  champion {c.previous or '-'} → {c.version}  {c.cause.value:<8} {c.detail}",
        )
        for c in changes
    ]
    for j in judgements:
        at = _iso(j.window_end)
        measured = "; ".join(m.describe() for m in j.analysis.measurements)
        entries.append(
            (
                at,
                f"{at}  analysis of {j.candidate} vs {j.champion} at {j.stage}: "
                f"{j.outcome.value} ({j.analysis.requests} requests) → {j.decision}"
                + (f"\n{'':<27}{measured}" if measured else ""),
            )
        )
    if not entries:
        return f"No champion changes or analyses recorded for {use_case}."
    return "\n".join(line for _, line in sorted(entries, key=lambda e: e[0]))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
