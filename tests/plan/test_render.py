from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reconciler.lineage import Alias
from reconciler.observe.state import ObservedState
from reconciler.plan.diff import diff
from reconciler.plan.model import (
    NEW_BASE,
    NEW_VERSION,
    Action,
    AliasesBefore,
    Change,
    EvaluateAfter,
    EvaluateChange,
    Plan,
    PlanSource,
    PromoteAfter,
    PromoteChange,
    ReasonCode,
    RegisterAfter,
    RegisterChange,
    TrainAfter,
    TrainChange,
)
from reconciler.plan.render import COMMENT_LIMIT, render_json, render_markdown, render_text
from reconciler.spec.loader import load_desired_state
from reconciler.spec.model import ModelSource, TrainingMethod

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


def _change(action: Action, use_case: str, reason: str) -> Change:
    """A typed change of `action` with a minimal payload."""
    common = {"use_case": use_case, "reason": reason}
    if action is Action.REGISTER:
        after = RegisterAfter(
            registered_model=use_case,
            source=ModelSource.LOCAL,
            reference="models/tiny",
            license="mit",
            role="base",
            key=f"sha256:{use_case}",
        )
        return RegisterChange(**common, code=ReasonCode.NEW_REGISTERED_MODEL, after=after)
    if action is Action.TRAIN:
        trained = TrainAfter(
            key=f"sha256:{use_case}-trained",
            base_key=f"sha256:{use_case}",
            base_version=NEW_BASE,
            method=TrainingMethod.LORA,
            datasets=[],
            historical_logs=False,
        )
        return TrainChange(**common, code=ReasonCode.NOT_TRAINED, after=trained)
    if action is Action.EVALUATE:
        judged = EvaluateAfter(candidate=NEW_VERSION, baseline=None, thresholds={}, digest="d")
        return EvaluateChange(**common, code=ReasonCode.NOT_EVALUATED, after=judged)
    return PromoteChange(
        **common,
        code=ReasonCode.FIRST_CHAMPION,
        before=AliasesBefore(aliases={Alias.CHAMPION: None}),
        after=PromoteAfter(aliases={Alias.CHAMPION: NEW_VERSION}),
    )


def _large_plan(
    use_cases: int,
    actions: tuple[Action, ...] = (Action.REGISTER, Action.TRAIN, Action.EVALUATE, Action.PROMOTE),
) -> Plan:
    """`use_cases` use cases with a long reason each: far more than one comment holds."""
    source = PlanSource(
        repo=".", ref=None, commit="c" * 40, dirty=False, digest="sha256:" + "d" * 64
    )
    changes = tuple(
        _change(action, f"use-case-{n:04d}", f"{action.value} for use case {n}: " + "why " * 40)
        for n in range(use_cases)
        for action in actions
    )
    return Plan(source=source, observed_serial="sha256:" + "0" * 64, changes=changes)


def test_markdown_fits_a_pull_request_comment_and_links_the_full_plan() -> None:
    plan = _large_plan(400)
    url = "https://github.example/o/r/actions/runs/7#artifacts"
    markdown = render_markdown(plan, details_url=url)
    assert len(markdown) <= COMMENT_LIMIT < 65_536
    # The summary of the whole plan stays, whatever was cut.
    assert markdown.rstrip().endswith(
        "**Plan: 1600 changes in 400 use cases "
        "(400 register, 400 train, 400 evaluate, 400 promote); 0 in sync.**"
    )
    note = re.search(
        r"(\d+) of 400 use cases are listed in the table and (\d+) of 400 are shown in detail",
        markdown,
    )
    assert note is not None, markdown[-2000:]
    listed, detailed = int(note[1]), int(note[2])
    assert markdown.count("| `use-case-") == listed
    assert markdown.count("<details>") == markdown.count("</details>") == detailed
    assert 0 < detailed < listed <= 400
    # What is shown is the head of the plan, in order, each use case whole.
    assert f"<b>use-case-{detailed - 1:04d}</b>" in markdown
    assert f"<b>use-case-{detailed:04d}</b>" not in markdown
    assert f"[the `plan` artifact of this run]({url})" in markdown


def test_markdown_names_the_json_plan_when_there_is_no_link() -> None:
    markdown = render_markdown(_large_plan(400))
    assert "The full plan is in the JSON plan (`--out`)." in markdown


def test_markdown_of_a_plan_that_fits_is_never_cut(fresh_plan: Plan) -> None:
    whole = render_markdown(fresh_plan)
    assert "too long for one comment" not in whole
    assert render_markdown(fresh_plan, limit=len(whole)) == whole
    cut = render_markdown(fresh_plan, limit=len(whole) - 1, details_url="https://x.example/run")
    assert len(cut) <= len(whole) - 1
    assert "3 of 3 use cases are listed in the table and 2 of 3 are shown in detail" in cut


def test_markdown_cuts_the_table_too_when_it_alone_is_too_long() -> None:
    markdown = render_markdown(_large_plan(2500, actions=(Action.REGISTER,)))
    assert len(markdown) <= COMMENT_LIMIT
    note = re.search(r"(\d+) of 2500 use cases are listed in the table and 0 of 2500", markdown)
    assert note is not None
    assert 0 < int(note[1]) < 2500 and markdown.count("| `use-case-") == int(note[1])
    assert "<details>" not in markdown
    assert markdown.rstrip().endswith("0 in sync.**")
