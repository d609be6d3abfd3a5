"""Observed worlds for the planner's tests: one registered model and its routes, built up by
small functions named after the situation they show; and the `Planned` value a stage starts
from, with the changes a stage table expects."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

from pydantic import BaseModel

from reconciler import lineage
from reconciler.lineage import Alias
from reconciler.observe.state import (
    ObservedState,
    RegisteredModelSnapshot,
    Route,
    TrafficSnapshot,
    VersionSnapshot,
)
from reconciler.plan.diff import diff
from reconciler.plan.model import (
    Action,
    AliasMap,
    Change,
    Plan,
    ReasonCode,
    RouteRef,
    ServingBefore,
    ShiftAfter,
    VersionRef,
)
from reconciler.plan.planned import Planned
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase

NPC = "npc-dialogue"  # LoRA-trained, selfHeal on
FACTION = "faction-decision"  # fully trained, selfHeal off
STORY = "story-generation"  # external provider, never trained


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

    def not_ready(self, number: str, key: str) -> World:
        """A version whose registration failed: it has the key but can never serve."""
        self.versions.append(
            VersionSnapshot(
                number, status="FAILED_REGISTRATION", tags=MappingProxyType({lineage.KEY: key})
            )
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


def planned(
    desired: DesiredState,
    name: str,
    build: Build = None,
    *,
    use_case: UseCase | None = None,
    identity: UseCaseIdentity | None = None,
) -> Planned:
    """What a stage starts from: the world `build` makes (None: no registered model, no
    routes), seen by the use case as shipped or as given. The world is always built with the
    shipped keys, so a different `identity` shows a desired state edited since."""
    shipped = desired.identities[name]
    use_case = use_case or desired.use_case(name)
    identity = identity or shipped
    if build is None:
        return Planned(use_case, identity, None, TrafficSnapshot())
    world = build(World(shipped))
    return Planned(
        use_case,
        identity,
        world.snapshot(name),
        TrafficSnapshot(world.routes, world.applied_routes),
    )


@dataclass(frozen=True)
class Expect:
    """One change as a stage table states it: everything but the human `reason`."""

    action: Action
    code: ReasonCode
    before: BaseModel | None = None
    after: BaseModel | None = None
    drift: bool = False

    @classmethod
    def of(cls, change: Change) -> Expect:
        return cls(change.action, change.code, change.before, change.after, change.drift)


# How a stage table states a situation (None: nothing registered, no routes) and, from the
# use case's keys, the changes it expects.
Build = Callable[[World], World] | None
Expected = Callable[[UseCaseIdentity], list[Expect]]


def added(p: Planned) -> list[Expect]:
    return [Expect.of(change) for change in p.changes]


def routes(*weights: tuple[VersionRef, int]) -> list[RouteRef]:
    return [RouteRef(version=version, weight=weight) for version, weight in weights]


def aliases(**names: str | None) -> AliasMap:
    return {Alias(name): version for name, version in names.items()}


def route_all(version: str, *, serving: list[tuple[str, int]], drift: bool = False) -> Expect:
    """The shift that sends all live traffic to `version` at once."""
    return Expect(
        Action.SHIFT,
        ReasonCode.DRIFT_ROUTES if drift else ReasonCode.ROUTE_TO_CHAMPION,
        before=ServingBefore(routes=routes(*serving)),
        after=ShiftAfter(routes=routes((version, 100))),
        drift=drift,
    )


def version_of(p: Planned, number: str) -> VersionSnapshot:
    assert p.model is not None
    found = p.model.version(number)
    assert found is not None
    return found


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


def leftover_challenger(*, by_reconciler: bool) -> Callable[[World], World]:
    """Converged on 2, and version 1 still carries the challenger alias."""

    def build(w: World) -> World:
        converged(w)
        w.aliases["challenger"] = "1"
        if by_reconciler:
            assert w.applied is not None
            w.applied["challenger"] = "1"
        return w

    return build


def without_routes(w: World) -> World:
    """Converged on 2 in the registry, but the route table is empty."""
    converged(w)
    w.routes, w.applied_routes = (), None
    return w
