"""Views of a plan: text for terminals, markdown for pull-request comments, JSON for machines.

Rendering only reads the Plan; it never decides anything. Text uses colour only when asked
(the CLI asks when stdout is a terminal and NO_COLOR is unset).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from reconciler.digest import short
from reconciler.plan import planfile
from reconciler.plan.model import Action, Change, Plan

_COLOURS = {
    Action.REGISTER: "32",  # green
    Action.TRAIN: "32",
    Action.EVALUATE: "36",  # cyan
    Action.PROMOTE: "35",  # magenta
    Action.SHIFT: "33",  # yellow
    Action.ROLLBACK: "31",  # red
    Action.NOOP: "2",  # dim
}


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and {"version", "weight"} <= v.keys() for v in value)
    ):
        return ", ".join(f"{v['version']}={v['weight']}%" for v in value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]" if value else "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith("sha256:"):
        return short(value)
    return str(value)


def _fields(payload: BaseModel | None) -> dict[str, Any]:
    """A payload as flat `field: value` pairs: aliases and the rollout by their own names."""
    if payload is None:
        return {}
    document = payload.model_dump(mode="json")
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if key in ("aliases", "rollout") and isinstance(value, dict):
            flat.update(value)
        elif key != "rollout":
            flat[key] = value
    return flat


def field_lines(change: Change) -> list[str]:
    """`field: before → after` for every field the change touches."""
    before = _fields(change.before)
    after = _fields(change.after)
    lines = []
    for key in list(dict.fromkeys([*after, *before])):
        old, new = before.get(key), after.get(key)
        if key not in after or (old is None and new in (None, False)):
            continue  # nothing touched: an absent optional value, or a flag left off
        if change.before is None:
            lines.append(f"{key}: {_value(new)}")
        elif old != new:
            lines.append(f"{key}: {_value(old)} → {_value(new)}")
    return lines


def source_line(plan: Plan) -> str:
    source = plan.source
    where = source.repo + (f" @ {source.ref}" if source.ref else "")
    commit = f"commit {source.commit[:12]}" if source.commit else "not a git commit"
    if source.dirty:
        commit += " (uncommitted changes)"
    return (
        f"{where} · {commit} · desired {short(source.digest)} · "
        f"observed {short(plan.observed_serial)}"
    )


def summary_line(plan: Plan) -> str:
    summary = plan.summary()
    if not plan.has_changes:
        if summary["use_cases"] == 1:
            return "No changes. 1 use case is in sync."
        return f"No changes. {summary['use_cases']} use cases are in sync."
    counts = ", ".join(f"{n} {a}" for a, n in summary["by_action"].items() if n)
    drift = f", {summary['drift']} restoring drift" if summary["drift"] else ""
    changed = summary["use_cases"] - summary["in_sync"]
    return (
        f"Plan: {_count(summary['changes'], 'change')} in {_count(changed, 'use case')} "
        f"({counts}{drift}); {summary['in_sync']} in sync."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render_text(plan: Plan, *, colour: bool = False, show_noop: bool = True) -> str:
    out = [f"Plan for {source_line(plan)}", ""]
    for use_case in plan.use_cases():
        changes = plan.changes_for(use_case)
        out.append(_paint(use_case, "1", colour))
        for change in changes:
            if change.action is Action.NOOP and not show_noop:
                continue
            code = _COLOURS[change.action]
            symbol = _paint(change.action.symbol, code, colour)
            action = _paint(f"{change.action.value:<9}", code, colour)
            drift = _paint(" [drift]", "31", colour) if change.drift else ""
            out.append(f"  {symbol} {action} {change.reason}{drift}")
            out += [f"      {line}" for line in field_lines(change)]
        out.append("")
    out.append(_paint(summary_line(plan), "1", colour))
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# GitHub refuses a comment body over 65,536 characters; the sticky-comment action adds its own
# hidden marker, so the plan keeps a margin below the limit.
COMMENT_LIMIT = 65_000


def render_markdown(
    plan: Plan, *, details_url: str | None = None, limit: int = COMMENT_LIMIT
) -> str:
    """The plan as a pull-request comment of at most `limit` characters.

    Each use case's changes fold into its own `<details>`. When the whole plan does not fit,
    the summary line stays, table rows and use-case sections are kept in plan order while they
    fit, and a note at the top says how many were left out and links `details_url` (where the
    full plan is: the workflow run holding the plan artifact).
    """
    head = ["### Model reconciler plan", "", f"`{source_line(plan)}`", ""]
    grouped: dict[str, list[Change]] = {}
    for change in plan.changes:
        grouped.setdefault(change.use_case, []).append(change)
    rows = [_table_row(use_case, changes) for use_case, changes in grouped.items()]
    sections = [_details_section(use_case, changes) for use_case, changes in grouped.items()]
    foot = f"**{summary_line(plan)}**\n"
    table_head = "| Use case | Changes | Actions |\n|---|---:|---|\n"
    full = "\n".join(head) + "\n" + table_head + "".join(rows) + "\n" + "".join(sections) + foot
    if len(full) <= limit:
        return full
    total = len(rows)
    # The note is sized for the largest counts it can show, so what it reserves is enough.
    budget = limit - len("\n".join(head)) - 1 - len(table_head) - 1 - len(foot)
    budget -= len(_truncation_note(total, total, total, details_url))
    kept_rows: list[str] = []
    for row in rows:
        if len(row) > budget:
            break
        kept_rows.append(row)
        budget -= len(row)
    kept_sections: list[str] = []
    for section in sections:
        if len(section) > budget:
            break
        kept_sections.append(section)
        budget -= len(section)
    note = _truncation_note(len(kept_rows), len(kept_sections), total, details_url)
    # The note comes first: a reviewer learns at once that the comment is not the whole plan.
    return (
        "\n".join(head)
        + "\n"
        + note
        + table_head
        + "".join(kept_rows)
        + "\n"
        + "".join(kept_sections)
        + foot
    )


def _table_row(use_case: str, changes: list[Change]) -> str:
    pending = [c for c in changes if c.action is not Action.NOOP]
    actions = (
        ", ".join(c.action.value + (" (drift)" if c.drift else "") for c in pending) or "in sync"
    )
    return f"| `{_cell(use_case)}` | {len(pending)} | {_cell(actions)} |\n"


def _details_section(use_case: str, changes: list[Change]) -> str:
    pending = [c for c in changes if c.action is not Action.NOOP]
    title = f"{len(pending)} changes" if pending else "in sync"
    out = [f"<details><summary><b>{use_case}</b>: {title}</summary>", ""]
    out += ["| | Action | Reason |", "|---|---|---|"]
    for change in changes:
        drift = " **drift**" if change.drift else ""
        out.append(
            f"| `{change.action.symbol}` | {change.action.value} | {_cell(change.reason)}{drift} |"
        )
    details = [
        f"{change.action.symbol} {change.action.value}: {line}"
        for change in changes
        for line in field_lines(change)
    ]
    if details:
        out += ["", "```", *details, "```"]
    out += ["", "</details>", ""]
    return "\n".join(out) + "\n"


def _truncation_note(rows: int, sections: int, total: int, details_url: str | None) -> str:
    where = (
        f"[the `plan` artifact of this run]({details_url})"
        if details_url
        else "the JSON plan (`--out`)"
    )
    return (
        f"> [!NOTE]\n> This plan is too long for one comment: {rows} of {total} use cases "
        f"are listed in the table and {sections} of {total} are shown in detail. "
        f"The full plan is in {where}.\n\n"
    )


def render_json(plan: Plan) -> str:
    return planfile.dumps(plan)
