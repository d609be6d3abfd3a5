"""The pure planner: a table of observed situations and the changes each must produce."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import pytest

from reconciler import lineage
from reconciler.observe.state import (
    ObservedState,
    RegisteredModelSnapshot,
    Route,
    TrafficSnapshot,
    VersionSnapshot,
)
from reconciler.plan.diff import diff
from reconciler.plan.model import NEW_BASE, NEW_VERSION, Plan
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState, load_desired_state

ROOT = Path(__file__).resolve().parents[2]
NPC = "npc-dialogue"  # LoRA-trained, selfHeal on
FACTION = "faction-decision"  # fully trained, selfHeal off
STORY = "story-generation"  # external provider, never trained


@pytest.fixture(scope="module")
def desired() -> DesiredState:
    state = load_desired_state(ROOT).state
    assert state is not None
    return state


@dataclass
class World:
    """A small builder for one registered model and its routes."""

    identity: UseCaseIdentity
    versions: list[VersionSnapshot] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    applied: dict[str, str] | None = None
    routes: tuple[Route, ...] = ()
    applied_routes: tuple[Route, ...] | None = None

    def version(self, number: str, key: str, **tags: str) -> World:
        self.versions.append(
            VersionSnapshot(number, tags=MappingProxyType({lineage.KEY: key, **tags}))
        )
        return self

    def base(self, number: str = "1") -> World:
        return self.version(number, self.identity.base_key)

    def target(self, number: str, **tags: str) -> World:
        return self.version(number, self.identity.target_key, **tags)

    def passed(self, number: str) -> World:
        return self.target(
            number,
            **{
                lineage.EVALUATION_VERDICT: "passed",
                lineage.EVALUATION_DIGEST: self.identity.digest,
            },
        )

    def serving(self, version: str, weight: int = 100, *, by_reconciler: bool = True) -> World:
        self.routes = (Route(version, weight),)
        if by_reconciler:
            self.applied_routes = self.routes
        return self

    def snapshot(self, name: str) -> RegisteredModelSnapshot:
        tags = {}
        if self.applied is not None:
            tags[lineage.APPLIED_ALIASES] = json.dumps(self.applied)
        return RegisteredModelSnapshot(
            name=name,
            aliases=MappingProxyType(self.aliases),
            tags=MappingProxyType(tags),
            versions=tuple(self.versions),
        )


def plan_for(desired: DesiredState, use_case: str, build: Callable[[World], World] | None) -> Plan:
    registry = {}
    traffic = {}
    if build is not None:
        world = build(World(desired.identities[use_case]))
        registry[desired.use_case(use_case).spec.registered_model] = world.snapshot(use_case)
        traffic[use_case] = TrafficSnapshot(world.routes, world.applied_routes)
    observed = ObservedState(registry=registry, traffic=traffic)
    return diff(desired, observed, only=[use_case])


def actions(plan: Plan) -> list[str]:
    return [c.action.value + ("!" if c.drift else "") for c in plan.changes]


def converged(w: World, version: str = "2") -> World:
    w.base().passed(version)
    w.aliases = {"champion": version}
    w.applied = {"champion": version}
    return w.serving(version)


def in_rollout(w: World) -> World:
    """Champion 2 serves; candidate 3 is challenger at 25%."""
    w.base().passed("2").passed("3")
    w.aliases = {"champion": "2", "challenger": "3"}
    w.applied = dict(w.aliases)
    w.routes = (Route("2", 75), Route("3", 25))
    w.applied_routes = w.routes
    return w


def champion_moved_by_hand(w: World) -> World:
    converged(w)
    w.aliases["champion"] = "1"
    return w


def weights_edited_by_hand(w: World) -> World:
    converged(w)
    w.routes = (Route("1", 50), Route("2", 50))
    return w


def previous_moved_by_hand(w: World) -> World:
    converged(w)
    assert w.applied is not None
    w.applied["previous"] = "1"
    w.aliases["previous"] = "2"
    return w


def champion_deleted(w: World) -> World:
    w.base().passed("2")
    w.aliases = {"champion": "9"}
    return w


def new_candidate_after_converged(w: World) -> World:
    w.version("7", "sha256:an-older-training")
    return converged(w, "7").passed("8")


def evaluated_for_older_desired_state(w: World) -> World:
    return w.base().target(
        "2", **{lineage.EVALUATION_VERDICT: "passed", lineage.EVALUATION_DIGEST: "sha256:old"}
    )


def failed_evaluation(w: World) -> World:
    return w.base().target(
        "2",
        **{
            lineage.EVALUATION_VERDICT: "failed",
            lineage.EVALUATION_DIGEST: w.identity.digest,
            lineage.EVALUATION_REASON: "behaviorSimilarity 0.31 < 0.5",
        },
    )


def rejected_not_serving(w: World) -> World:
    w.base().version("2", "sha256:older")
    w.target(
        "3",
        **{lineage.REJECTED: "errorRate 0.2 > 0.01", lineage.REJECTED_DIGEST: w.identity.digest},
    )
    w.aliases = {"champion": "2"}
    w.applied = {"champion": "2"}
    return w.serving("2")


def rejected_still_serving(w: World) -> World:
    w.base().version("2", "sha256:older")
    w.target(
        "3",
        **{lineage.REJECTED: "errorRate 0.2 > 0.01", lineage.REJECTED_DIGEST: w.identity.digest},
    )
    w.aliases = {"champion": "2", "challenger": "3"}
    w.applied = dict(w.aliases)
    w.routes = (Route("2", 50), Route("3", 50))
    w.applied_routes = w.routes
    return w


CASES: list[tuple[str, str, Callable[[World], World] | None, list[str]]] = [
    (
        "nothing exists: the base serves first, the candidate canaries",
        NPC,
        None,
        ["register", "promote", "shift", "train", "evaluate", "shift", "promote"],
    ),
    ("external model is never trained", STORY, None, ["register", "evaluate", "promote", "shift"]),
    (
        "base registered",
        NPC,
        lambda w: w.base(),
        ["promote", "shift", "train", "evaluate", "shift", "promote"],
    ),
    (
        "trained",
        NPC,
        lambda w: w.base().target("2"),
        ["promote", "shift", "evaluate", "shift", "promote"],
    ),
    ("converged", NPC, converged, ["noop"]),
    (
        "evaluated for older desired state",
        NPC,
        evaluated_for_older_desired_state,
        ["promote", "shift", "evaluate", "shift", "promote"],
    ),
    (
        "failed evaluation: the base keeps serving",
        NPC,
        failed_evaluation,
        ["promote", "shift", "noop"],
    ),
    ("new candidate canaries", NPC, new_candidate_after_converged, ["shift", "promote"]),
    ("rollout in progress resumes", NPC, in_rollout, ["shift", "promote"]),
    ("champion moved by hand", NPC, champion_moved_by_hand, ["promote!"]),
    ("weights edited by hand", NPC, weights_edited_by_hand, ["shift!"]),
    ("previous moved by hand", NPC, previous_moved_by_hand, ["promote!"]),
    ("rejected candidate not retried", NPC, rejected_not_serving, ["noop"]),
    ("rejected candidate still serving", NPC, rejected_still_serving, ["rollback"]),
    (
        "champion alias names a deleted version",
        NPC,
        champion_deleted,
        ["promote", "shift", "shift", "promote"],
    ),
]


@pytest.mark.parametrize(
    ("title", "use_case", "build", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_plan_table(
    desired: DesiredState,
    title: str,
    use_case: str,
    build: Callable[[World], World] | None,
    expected: list[str],
) -> None:
    assert actions(plan_for(desired, use_case, build)) == expected


def test_fresh_pipeline_details(desired: DesiredState) -> None:
    plan = plan_for(desired, NPC, None)
    register, serve_base, route_base, train, evaluate, canary, promote = plan.changes
    identity = desired.identities[NPC]
    assert register.before is None
    assert register.after is not None and register.after["key"] == identity.base_key
    assert serve_base.after == {"champion": NEW_BASE, "challenger": None}
    assert route_base.after == {"routes": [{"version": NEW_BASE, "weight": 100}], "steps": [100]}
    assert train.after is not None and train.after["key"] == identity.target_key
    assert train.after["method"] == "lora" and train.after["base_version"] == NEW_BASE
    assert evaluate.after is not None and evaluate.after["baseline"] == NEW_BASE
    assert canary.before == {
        "champion": NEW_BASE,
        "challenger": None,
        "routes": [{"version": NEW_BASE, "weight": 100}],
    }
    assert canary.after is not None and canary.after["steps"] == [10, 25, 50, 75, 100]
    assert promote.after == {"champion": NEW_VERSION, "challenger": None, "previous": NEW_BASE}


def test_external_model_is_promoted_directly(desired: DesiredState) -> None:
    _, evaluate, promote, shift = plan_for(desired, STORY, None).changes
    assert evaluate.after is not None and evaluate.after["baseline"] is None
    assert "absolute thresholds only" in evaluate.reason
    assert promote.after == {"champion": NEW_VERSION, "challenger": None}
    assert shift.after is not None and shift.after["routes"] == [
        {"version": NEW_VERSION, "weight": 100}
    ]


def test_canary_uses_the_spec_steps_and_resumes_from_current_weight(desired: DesiredState) -> None:
    fresh = plan_for(desired, NPC, new_candidate_after_converged)
    shift = fresh.changes[0]
    assert shift.after is not None and shift.after["steps"] == [10, 25, 50, 75, 100]
    assert shift.after["challenger"] == "8"
    resumed = plan_for(desired, NPC, in_rollout).changes[0]
    # The canary stands at 25%; whether that step's analysis passed is the journal's to say,
    # not the plan's, so it is listed again (apply skips it when it did pass).
    assert resumed.after is not None and resumed.after["steps"] == [25, 50, 75, 100]
    assert "resuming at 25%" in resumed.reason
    promote = plan_for(desired, NPC, in_rollout).changes[1]
    assert promote.after == {"champion": "3", "challenger": None, "previous": "2"}
    # A change's `before` is what it expects after the earlier changes of the same plan.
    assert promote.before == {"champion": "2", "challenger": "3", "previous": None}


def test_rollback_restores_the_champion(desired: DesiredState) -> None:
    (rollback,) = plan_for(desired, NPC, rejected_still_serving).changes
    assert rollback.after == {
        "champion": "2",
        "challenger": None,
        "routes": [{"version": "2", "weight": 100}],
        "rejected": "3",
    }
    assert "errorRate 0.2 > 0.01" in rollback.reason


def test_drift_is_reported_with_self_heal_off(desired: DesiredState) -> None:
    (faction,) = plan_for(desired, FACTION, weights_edited_by_hand).changes
    assert faction.drift is True
    assert "selfHeal is off" in faction.reason
    (npc,) = plan_for(desired, NPC, weights_edited_by_hand).changes
    assert npc.drift is True and "selfHeal is off" not in npc.reason


def test_plan_is_deterministic(desired: DesiredState) -> None:
    assert plan_for(desired, NPC, in_rollout) == plan_for(desired, NPC, in_rollout)


def test_plan_records_source_and_observed_serial(desired: DesiredState) -> None:
    empty = diff(desired, ObservedState(registry={}, traffic={}))
    other = diff(
        desired,
        ObservedState(registry={}, traffic={NPC: TrafficSnapshot((Route("1", 100),))}),
    )
    assert empty.source.digest == desired.source.digest
    assert empty.observed_serial != other.observed_serial
    assert {c.use_case for c in empty.changes} == {NPC, FACTION, STORY}
