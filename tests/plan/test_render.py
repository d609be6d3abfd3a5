from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.observe.state import ObservedState
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.plan.render import render_json, render_markdown, render_text
from reconciler.spec.loader import load_desired_state

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh_plan() -> Plan:
    state = load_desired_state(ROOT).state
    assert state is not None
    return diff(state, ObservedState(registry={}, traffic={}))


def test_text_has_symbols_and_summary_and_no_colour_by_default(fresh_plan: Plan) -> None:
    text = render_text(fresh_plan)
    assert "\x1b[" not in text
    assert "  + register " in text
    assert "  ~ shift " in text
    assert text.rstrip().endswith("0 in sync.")
    assert "Plan: 18 changes in 3 use cases" in text


def test_text_colour_only_when_asked(fresh_plan: Plan) -> None:
    assert "\x1b[32m" in render_text(fresh_plan, colour=True)


def test_markdown_has_summary_table_and_details(fresh_plan: Plan) -> None:
    markdown = render_markdown(fresh_plan)
    assert "| Use case | Changes | Actions |" in markdown
    row = "| `npc-dialogue` | 7 | register, promote, shift, train, evaluate, shift, promote |"
    assert row in markdown
    assert markdown.count("<details>") == 3
    assert markdown.count("</details>") == 3


def test_json_shape(fresh_plan: Plan) -> None:
    document = json.loads(render_json(fresh_plan))
    assert document["format_version"] == 2
    assert set(document["source"]) >= {"commit", "digest", "ref"}
    assert document["summary"]["changes"] == 18
    assert document["summary"]["by_action"]["train"] == 2
    for change in document["changes"]:
        assert set(change) >= {"use_case", "action", "reason", "code", "before", "after"}
    assert {c["use_case"] for c in document["changes"]} == {
        "npc-dialogue",
        "faction-decision",
        "story-generation",
    }


def test_summary_counts_agree_in_number() -> None:
    state = load_desired_state(ROOT).state
    assert state is not None
    one = diff(state, ObservedState(registry={}, traffic={}), only=["story-generation"])
    line = render_text(one).rstrip().splitlines()[-1]
    assert line.startswith("Plan: ") and " in 1 use case (" in line, line
