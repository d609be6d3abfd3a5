"""The evaluation gate, a stage of its own: whether a candidate is evaluated, stopped at a
failed verdict or a rejection, or rolled back where a rejected candidate still serves -
a table of situations and exactly the changes each adds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from reconciler import lineage
from reconciler.lineage import Alias
from reconciler.observe.state import Route
from reconciler.plan import build_stages
from reconciler.plan.model import (
    NEW_VERSION,
    Action,
    EvaluateAfter,
    EvaluateBefore,
    ReasonCode,
    RollbackAfter,
    ServingBefore,
)
from reconciler.spec.discovery import RejectedCandidate
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from tests.plan.worlds import (
    NPC,
    Build,
    Expect,
    Expected,
    World,
    added,
    champion_deleted,
    converged,
    planned,
    rejected_not_serving,
    rejected_still_serving,
    routes,
    version_of,
)

NPC_THRESHOLDS = {
    "behaviorSimilarity": {"min": 0.5},
    "safetyPassRate": {"min": 1.0},
    "latencyP95Ms": {"max": 10000.0},
}
OLD_DIGEST = "sha256:an-earlier-desired-state"


# --- evaluate -------------------------------------------------------------------------------


def evaluation(
    i: UseCaseIdentity,
    candidate: str,
    baseline: str | None,
    *,
    verdict: str | None = None,
    stale: bool = False,
) -> list[Expect]:
    before = (
        None if candidate == NEW_VERSION else EvaluateBefore(candidate=candidate, verdict=verdict)
    )
    after = EvaluateAfter(
        candidate=candidate, baseline=baseline, thresholds=NPC_THRESHOLDS, digest=i.digest
    )
    code = ReasonCode.VERDICT_STALE if stale else ReasonCode.NOT_EVALUATED
    return [Expect(Action.EVALUATE, code, before=before, after=after)]


def candidate_3(**tags: str) -> Callable[[World], World]:
    return lambda w: converged(w).target("3", **tags)


EVALUATE_CASES: list[tuple[str, Build, str | None, str | None, Expected]] = [
    (
        "the candidate this plan trains, against the champion",
        converged,
        None,
        None,
        lambda i: evaluation(i, NEW_VERSION, "2"),
    ),
    (
        "no champion: absolute thresholds only",
        lambda w: w.base(),
        None,
        None,
        lambda i: evaluation(i, NEW_VERSION, None),
    ),
    (
        "champion deleted from the registry: absolute thresholds only",
        champion_deleted,
        None,
        None,
        lambda i: evaluation(i, NEW_VERSION, None),
    ),
    (
        "an incomplete evaluation is retried, its verdict shown",
        candidate_3(**{lineage.EVALUATION_VERDICT: "incomplete"}),
        "3",
        None,
        lambda i: evaluation(i, "3", "2", verdict="incomplete"),
    ),
    (
        "a verdict for an earlier desired state is stale",
        candidate_3(
            **{lineage.EVALUATION_VERDICT: "failed", lineage.EVALUATION_DIGEST: OLD_DIGEST}
        ),
        "3",
        "its verdict was for an earlier desired state",
        lambda i: evaluation(i, "3", "2", verdict="failed", stale=True),
    ),
]


@pytest.mark.parametrize(
    ("title", "build", "candidate", "stale", "expected"),
    EVALUATE_CASES,
    ids=[c[0] for c in EVALUATE_CASES],
)
def test_evaluate(
    desired: DesiredState,
    title: str,
    build: Build,
    candidate: str | None,
    stale: str | None,
    expected: Expected,
) -> None:
    p = planned(desired, NPC, build)
    existing = version_of(p, candidate) if candidate else None
    p = build_stages.evaluate(p, existing, stale)
    assert added(p) == expected(desired.identities[NPC])
    if stale:
        assert p.changes[0].reason.endswith(f"({stale})")


def test_the_base_this_plan_serves_first_is_the_baseline(desired: DesiredState) -> None:
    p = planned(desired, NPC, lambda w: w.base())
    p = build_stages.serve_base_first(p, p.find(p.identity.base_key))
    before = len(p.changes)
    p = build_stages.evaluate(p, None)
    assert [Expect.of(c) for c in p.changes[before:]] == evaluation(
        desired.identities[NPC], NEW_VERSION, "1"
    )


def rollback(
    serving: list[tuple[str, int]],
    champion: str,
    challenger: str | None,
    restore: str,
    rejected: str,
) -> list[Expect]:
    """What a rollback records: the routes and aliases it expects, and what it restores."""
    return [
        Expect(
            Action.ROLLBACK,
            ReasonCode.REJECTED_STILL_SERVING,
            before=ServingBefore(
                routes=routes(*serving),
                aliases={Alias.CHAMPION: champion, Alias.CHALLENGER: challenger},
            ),
            after=RollbackAfter(
                aliases={Alias.CHAMPION: restore, Alias.CHALLENGER: None},
                routes=routes((restore, 100)),
                rejected=rejected,
            ),
        )
    ]


# --- the gate -------------------------------------------------------------------------------

GATE_CASES: list[tuple[str, dict[str, str], Expected, bool]] = [
    (
        "never evaluated",
        {},
        lambda i: evaluation(i, "3", "2"),
        True,
    ),
    (
        "evaluation could not complete: evaluated again",
        {lineage.EVALUATION_VERDICT: "incomplete", lineage.EVALUATION_REASON: "provider down"},
        lambda i: evaluation(i, "3", "2", verdict="incomplete"),
        True,
    ),
    (
        "passed for an earlier desired state: evaluated again",
        {lineage.EVALUATION_VERDICT: "passed", lineage.EVALUATION_DIGEST: OLD_DIGEST},
        lambda i: evaluation(i, "3", "2", verdict="passed", stale=True),
        True,
    ),
    (
        "failed for an earlier desired state: evaluated again",
        {lineage.EVALUATION_VERDICT: "failed", lineage.EVALUATION_DIGEST: OLD_DIGEST},
        lambda i: evaluation(i, "3", "2", verdict="failed", stale=True),
        True,
    ),
    (
        "failed for this desired state: final, no retry",
        {lineage.EVALUATION_VERDICT: "failed"},
        lambda i: [Expect(Action.NOOP, ReasonCode.EVALUATION_FAILED)],
        False,
    ),
    ("passed for this desired state", {lineage.EVALUATION_VERDICT: "passed"}, lambda i: [], True),
    (
        "rejected for this desired state, not serving",
        {lineage.EVALUATION_VERDICT: "passed", lineage.REJECTED: "errorRate 0.2 > 0.01"},
        lambda i: [Expect(Action.NOOP, ReasonCode.REJECTED)],
        False,
    ),
    (
        "rejected for an earlier desired state: judged again",
        {lineage.REJECTED: "errorRate 0.2 > 0.01", lineage.REJECTED_DIGEST: OLD_DIGEST},
        lambda i: evaluation(i, "3", "2"),
        True,
    ),
]


@pytest.mark.parametrize(
    ("title", "tags", "expected", "may_roll_out"), GATE_CASES, ids=[c[0] for c in GATE_CASES]
)
def test_gate(
    desired: DesiredState,
    title: str,
    tags: dict[str, str],
    expected: Expected,
    may_roll_out: bool,
) -> None:
    identity = desired.identities[NPC]
    own = dict(tags)  # verdicts and rejections are for this desired state unless they say not
    if lineage.EVALUATION_VERDICT in own:
        own.setdefault(lineage.EVALUATION_DIGEST, identity.digest)
    if lineage.REJECTED in own:
        own.setdefault(lineage.REJECTED_DIGEST, identity.digest)
    p = planned(desired, NPC, candidate_3(**own))
    p, allowed = build_stages.gate(p, version_of(p, "3"))
    assert added(p) == expected(identity)
    assert allowed is may_roll_out


def unjudged_champion(w: World) -> World:
    """Version 2 was made champion by hand: never evaluated."""
    w.base().target("2")
    w.aliases = {"champion": "2"}
    return w.serving("2")


def rejected_champion(w: World) -> World:
    """Version 2 is champion, though rejected for this desired state; 1 was champion before."""
    w.base().target(
        "2",
        **{lineage.REJECTED: "errorRate 0.2 > 0.01", lineage.REJECTED_DIGEST: w.identity.digest},
    )
    w.aliases = {"champion": "2", "previous": "1"}
    w.applied = dict(w.aliases)
    return w.serving("2")


CHAMPION_GATE_CASES: list[tuple[str, Build, list[Expect], bool]] = [
    ("passed champion: nothing to judge", converged, [], True),
    ("champion never evaluated: the gate is for promotion only", unjudged_champion, [], True),
    (
        "champion rejected for this desired state: previous restored",
        rejected_champion,
        rollback([("2", 100)], "2", None, restore="1", rejected="2"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("title", "build", "expected", "may_roll_out"),
    CHAMPION_GATE_CASES,
    ids=[c[0] for c in CHAMPION_GATE_CASES],
)
def test_gate_of_the_serving_champion(
    desired: DesiredState, title: str, build: Build, expected: list[Expect], may_roll_out: bool
) -> None:
    p = planned(desired, NPC, build)
    p, allowed = build_stages.gate(p, version_of(p, "2"))
    assert added(p) == expected
    assert allowed is may_roll_out


@pytest.mark.parametrize("registry_rejection_for", [None, OLD_DIGEST])
def test_gate_refuses_a_key_rejected_in_git_whatever_the_registry_says(
    desired: DesiredState, registry_rejection_for: str | None
) -> None:
    tags = {lineage.EVALUATION_VERDICT: "passed", lineage.EVALUATION_DIGEST: OLD_DIGEST}
    if registry_rejection_for:
        tags |= {lineage.REJECTED: "canary failed", lineage.REJECTED_DIGEST: registry_rejection_for}
    use_case = desired.use_case(NPC)
    entry = RejectedCandidate(
        key=desired.identities[NPC].target_key,
        version="3",
        reason="canary failed",
        at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    edited = use_case.model_copy(
        update={"spec": use_case.spec.model_copy(update={"rejected": [entry]})}
    )
    p = planned(desired, NPC, candidate_3(**tags), use_case=edited)
    p, allowed = build_stages.gate(p, version_of(p, "3"))
    assert added(p) == [Expect(Action.NOOP, ReasonCode.REJECTED)] and not allowed
    assert "canary failed; recorded in spec.rejected" in p.changes[0].reason


# --- rejected: undo what a rejected candidate still holds -------------------------------------


def rejected_3(
    aliases: dict[str, str], weights: tuple[tuple[str, int], ...] = (("2", 100),)
) -> Callable[[World], World]:
    """Versions 1 (base), 2 and 3; 3 was rejected; `aliases` and `weights` as given."""

    def build(w: World) -> World:
        w.base().version("2", "sha256:older").target("3")
        w.aliases = dict(aliases)
        w.applied = dict(aliases)
        w.routes = tuple(Route(v, weight) for v, weight in weights)
        w.applied_routes = w.routes
        return w

    return build


NOTHING_TO_ROLL_BACK_TO = [Expect(Action.NOOP, ReasonCode.NOTHING_TO_ROLL_BACK_TO)]

REJECTED_CASES: list[tuple[str, Build, list[Expect]]] = [
    (
        "neither aliased nor serving: nothing to undo",
        rejected_not_serving,
        [Expect(Action.NOOP, ReasonCode.REJECTED)],
    ),
    (
        "challenger with traffic: the champion takes it all back",
        rejected_still_serving,
        rollback([("2", 50), ("3", 50)], "2", "3", restore="2", rejected="3"),
    ),
    (
        "weight given by hand, no alias: the champion takes it all back",
        rejected_3({"champion": "2"}, (("2", 80), ("3", 20))),
        rollback([("2", 80), ("3", 20)], "2", None, restore="2", rejected="3"),
    ),
    (
        "champion: previous is restored",
        rejected_3({"champion": "3", "previous": "2"}, (("3", 100),)),
        rollback([("3", 100)], "3", None, restore="2", rejected="3"),
    ),
    (
        "champion with no previous: nothing to roll back to",
        rejected_3({"champion": "3"}, (("3", 100),)),
        NOTHING_TO_ROLL_BACK_TO,
    ),
    (
        "champion whose previous was deleted: nothing to roll back to",
        rejected_3({"champion": "3", "previous": "9"}, (("3", 100),)),
        NOTHING_TO_ROLL_BACK_TO,
    ),
    (
        "challenger whose champion was deleted: nothing to roll back to",
        rejected_3({"champion": "9", "challenger": "3"}, (("3", 100),)),
        NOTHING_TO_ROLL_BACK_TO,
    ),
]


@pytest.mark.parametrize(
    ("title", "build", "expected"), REJECTED_CASES, ids=[c[0] for c in REJECTED_CASES]
)
def test_rejected(desired: DesiredState, title: str, build: Build, expected: list[Expect]) -> None:
    p = planned(desired, NPC, build)
    p = build_stages.rejected(p, version_of(p, "3"), "errorRate 0.2 > 0.01")
    assert added(p) == expected
    assert "errorRate 0.2 > 0.01" in p.changes[0].reason


def test_a_champion_whose_key_is_rejected_in_git_is_rolled_back_to_previous(
    desired: DesiredState,
) -> None:
    """Writing the serving version's key into `spec.rejected` asks for its rollback."""
    use_case = desired.use_case(NPC)
    entry = RejectedCandidate(
        key=desired.identities[NPC].target_key,
        version="3",
        reason="players report broken quests",
        at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    edited = use_case.model_copy(
        update={"spec": use_case.spec.model_copy(update={"rejected": [entry]})}
    )
    serving_3 = rejected_3({"champion": "3", "previous": "2"}, (("3", 100),))
    p = planned(desired, NPC, serving_3, use_case=edited)
    assert version_of(p, "3").tag(lineage.REJECTED) is None  # nothing in the registry says so

    p, allowed = build_stages.gate(p, version_of(p, "3"))

    assert not allowed
    assert added(p) == rollback([("3", 100)], "3", None, restore="2", rejected="3")
    assert "recorded in spec.rejected" in p.changes[0].reason
