"""`spec.rejected` in git makes the planner treat that key as rejected, whatever digest the
registry's rejection was made for: merging the rollback proposal leaves an empty plan, and a
later edit of the use case does not retry the rejected candidate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.observe.state import Route
from reconciler.plan.model import RollbackChange
from reconciler.spec.loader import DesiredState, load_desired_state
from tests.plan.worlds import NPC, World, actions, plan_for

ROOT = Path(__file__).resolve().parents[2]


def _desired(repo: Path) -> DesiredState:
    state = load_desired_state(repo).state
    assert state is not None
    return state


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for folder in ("desired_state", "policies"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def _rolled_back(digest: str):  # type: ignore[no-untyped-def]
    """Champion 2 serves; candidate 3 was rolled back, its rejection recorded for `digest`."""

    def build(w: World) -> World:
        w.base().version("2", "sha256:older")
        w.target(
            "3",
            **{"reconciler.rejected": "errorRate 0.2 > 0.01", "reconciler.rejected.digest": digest},
        )
        w.aliases = {"champion": "2"}
        w.applied = {"champion": "2"}
        return w.serving("2")

    return build


def _record_rejection(repo: Path, key: str, *, also_edit_thresholds: bool) -> None:
    path = repo / "desired_state" / "npc-dialogue.yaml"
    text = path.read_text()
    if also_edit_thresholds:
        text = text.replace("behaviorSimilarity: {min: 0.5}", "behaviorSimilarity: {min: 0.55}")
    text = text.replace(
        "  guardrails: [player-safety, healthy-engagement]\n",
        "  guardrails: [player-safety, healthy-engagement]\n"
        "  rejected:\n"
        f'    - {{key: "{key}", version: "3", reason: canary failed,\n'
        '       at: "2026-12-01T10:00:00Z"}\n',
    )
    path.write_text(text)


def test_without_the_record_an_edited_use_case_retries_the_rejected_candidate(repo: Path) -> None:
    before = _desired(repo)
    old_digest = before.identities[NPC].digest
    path = repo / "desired_state" / "npc-dialogue.yaml"
    path.write_text(path.read_text().replace("{min: 0.5}", "{min: 0.55}", 1))
    edited = _desired(repo)
    assert edited.identities[NPC].digest != old_digest
    plan = plan_for(edited, NPC, _rolled_back(old_digest))
    assert "evaluate" in actions(plan), "the registry's rejection was for an older digest"


@pytest.mark.parametrize("also_edit_thresholds", [False, True], ids=["merged-as-is", "then-edited"])
def test_a_rejection_recorded_in_git_keeps_the_plan_empty(
    repo: Path, also_edit_thresholds: bool
) -> None:
    before = _desired(repo)
    identity = before.identities[NPC]
    _record_rejection(repo, identity.target_key, also_edit_thresholds=also_edit_thresholds)
    after = _desired(repo)
    assert after.identities[NPC].target_key == identity.target_key
    plan = plan_for(after, NPC, _rolled_back(identity.digest))
    assert actions(plan) == ["noop"]
    assert "rejected" in plan.changes[0].reason
    assert not plan.has_changes


def test_a_recorded_rejection_still_rolls_back_a_candidate_that_serves(repo: Path) -> None:
    before = _desired(repo)
    identity = before.identities[NPC]
    _record_rejection(repo, identity.target_key, also_edit_thresholds=True)
    after = _desired(repo)

    def still_serving(w: World) -> World:
        w.base().version("2", "sha256:older")
        w.target("3", **{"reconciler.evaluation.verdict": "passed"})
        w.aliases = {"champion": "2", "challenger": "3"}
        w.applied = dict(w.aliases)
        w.routes = (Route("2", 50), Route("3", 50))
        w.applied_routes = w.routes
        return w

    plan = plan_for(after, NPC, still_serving)
    assert actions(plan) == ["rollback"]
    rollback = plan.changes[0]
    assert isinstance(rollback, RollbackChange) and rollback.after.rejected == "3"
