"""Plan, Change and Action: plain data with no I/O.

A change records what one action will do to one use case. Each action has its own change
type, with typed `before` and `after` (Terraform's `Change{Action, Before, After}`):

    action     before                                 after
    ---------  -------------------------------------  -----------------------------------------
    register   None, or the registered model's        the model version to register (source,
               version count                          reference, revision, license, role, key)
    train      None                                   the version to train (key, base, method,
                                                      datasets)
    evaluate   None, or the candidate and its stale   candidate, baseline (champion),
               verdict                                thresholds, the digest judged for
    promote    the aliases it expects                 the aliases as they will be, and whether
                                                      a passed rollout analysis must back it
    shift      the routes and aliases it expects      the final routes, and the rollout that
                                                      gets there (strategy, shadow, steps)
    rollback   the routes and aliases it expects      the aliases and routes restored, and the
                                                      rejected version
    noop       -                                      -

`before` is also the change's precondition: the state it expects when it starts, i.e. after
the earlier changes of the same plan. The executor refuses a change whose `before` no longer
holds, and skips one whose `after` already holds (a resumed apply). `reason` is for humans;
`code` says the same for machines. Neither is used for decisions.

Versions a plan is about to create have no number yet: `(new base)` and `(new)` stand for
them (`VersionRef`) and are resolved by the executor as the earlier changes make them.
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.lineage import Alias
from reconciler.observe.state import Route
from reconciler.spec.model import ModelSource, RolloutStrategy, TrainingMethod

PLAN_FORMAT_VERSION: Final = 2
NEW_VERSION: Final = (
    "(new)"  # the candidate this plan creates; its number is known only when applied
)
NEW_BASE: Final = "(new base)"  # the base version this plan registers

# A registered version's number, or one of the placeholders above.
VersionRef = str


class Action(enum.StrEnum):
    REGISTER = "register"
    TRAIN = "train"
    EVALUATE = "evaluate"
    PROMOTE = "promote"
    SHIFT = "shift"
    ROLLBACK = "rollback"
    NOOP = "noop"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {
    Action.REGISTER: "+",
    Action.TRAIN: "+",
    Action.EVALUATE: "?",
    Action.PROMOTE: "^",
    Action.SHIFT: "~",
    Action.ROLLBACK: "<",
    Action.NOOP: " ",
}


class ReasonCode(enum.StrEnum):
    """Why a change is planned, for machines (dashboards, notifications, tests)."""

    NEW_REGISTERED_MODEL = "new_registered_model"
    NEW_BASE_VERSION = "new_base_version"
    BASE_SERVES_FIRST = "base_serves_first"
    NOT_TRAINED = "not_trained"
    NOT_EVALUATED = "not_evaluated"
    VERDICT_STALE = "verdict_stale"
    ROLLOUT = "rollout"
    ROLLOUT_RESUME = "rollout_resume"
    PROMOTE_AFTER_ROLLOUT = "promote_after_rollout"
    FIRST_CHAMPION = "first_champion"
    ROUTE_TO_CHAMPION = "route_to_champion"
    LEFTOVER_CHALLENGER = "leftover_challenger"
    DRIFT_ALIAS = "drift_alias"
    DRIFT_ROUTES = "drift_routes"
    REJECTED_STILL_SERVING = "rejected_still_serving"
    REJECTED = "rejected"
    EVALUATION_FAILED = "evaluation_failed"
    NOTHING_TO_ROLL_BACK_TO = "nothing_to_roll_back_to"
    IN_SYNC = "in_sync"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteRef(_Frozen):
    """A route as the plan names it: the version may be a placeholder."""

    version: VersionRef
    weight: int = Field(ge=0, le=100)
    shadow: bool = False

    @classmethod
    def of(cls, route: Route) -> RouteRef:
        return cls(version=route.version, weight=route.weight, shadow=route.shadow)


AliasMap = dict[Alias, VersionRef | None]  # only the aliases named are compared or set


# --- payloads, one per action ----------------------------------------------------------------


class RegisterBefore(_Frozen):
    registered_model: str
    versions: int


class RegisterAfter(_Frozen):
    registered_model: str
    source: ModelSource
    reference: str
    revision: str | None = None
    license: str
    role: Literal["base", "external"]
    key: str


class TrainAfter(_Frozen):
    key: str
    base_key: str
    base_version: VersionRef
    method: TrainingMethod
    datasets: list[str]
    historical_logs: bool


class EvaluateBefore(_Frozen):
    candidate: VersionRef
    verdict: str | None


class EvaluateAfter(_Frozen):
    candidate: VersionRef
    baseline: VersionRef | None
    thresholds: dict[str, dict[str, float]]
    digest: str


class AliasesBefore(_Frozen):
    aliases: AliasMap


class PromoteAfter(_Frozen):
    aliases: AliasMap
    # True when the alias move is a rollout's promotion: it needs a recorded, passed analysis
    # at the final step (or an operator's promote) for this candidate and desired state.
    requires_analysis: bool = False


class ServingBefore(_Frozen):
    """The live routes (and, where they matter, aliases) a traffic change expects."""

    routes: list[RouteRef]
    aliases: AliasMap = Field(default_factory=dict)


class RolloutPlan(_Frozen):
    """How a candidate takes the traffic: the stages the rollout machine walks."""

    candidate: VersionRef
    champion: VersionRef
    strategy: RolloutStrategy
    shadow: bool
    steps: list[int]


class ShiftAfter(_Frozen):
    routes: list[RouteRef]  # where the traffic ends
    rollout: RolloutPlan | None = None  # None: set the routes at once


class RollbackAfter(_Frozen):
    aliases: AliasMap
    routes: list[RouteRef]
    rejected: VersionRef


# --- changes ---------------------------------------------------------------------------------


class _Change(_Frozen):
    use_case: str
    reason: str
    code: ReasonCode
    drift: bool = False


class RegisterChange(_Change):
    action: Literal[Action.REGISTER] = Action.REGISTER
    before: RegisterBefore | None = None
    after: RegisterAfter


class TrainChange(_Change):
    action: Literal[Action.TRAIN] = Action.TRAIN
    before: None = None
    after: TrainAfter


class EvaluateChange(_Change):
    action: Literal[Action.EVALUATE] = Action.EVALUATE
    before: EvaluateBefore | None = None
    after: EvaluateAfter


class PromoteChange(_Change):
    action: Literal[Action.PROMOTE] = Action.PROMOTE
    before: AliasesBefore
    after: PromoteAfter


class ShiftChange(_Change):
    action: Literal[Action.SHIFT] = Action.SHIFT
    before: ServingBefore
    after: ShiftAfter


class RollbackChange(_Change):
    action: Literal[Action.ROLLBACK] = Action.ROLLBACK
    before: ServingBefore
    after: RollbackAfter


class NoopChange(_Change):
    action: Literal[Action.NOOP] = Action.NOOP
    before: None = None
    after: None = None


Change = Annotated[
    RegisterChange
    | TrainChange
    | EvaluateChange
    | PromoteChange
    | ShiftChange
    | RollbackChange
    | NoopChange,
    Field(discriminator="action"),
]


class PlanSource(_Frozen):
    """What the desired state was read from."""

    repo: str
    ref: str | None
    commit: str | None
    dirty: bool
    digest: str


class Plan(_Frozen):
    format_version: Literal[2] = PLAN_FORMAT_VERSION
    source: PlanSource
    observed_serial: str
    changes: tuple[Change, ...]

    @property
    def pending(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is not Action.NOOP)

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def use_cases(self) -> list[str]:
        return list(dict.fromkeys(c.use_case for c in self.changes))

    def changes_for(self, use_case: str) -> list[Change]:
        return [c for c in self.changes if c.use_case == use_case]

    def only(self, use_cases: set[str] | frozenset[str]) -> Plan:
        """The same plan, restricted to some use cases."""
        return self.model_copy(
            update={"changes": tuple(c for c in self.changes if c.use_case in use_cases)}
        )

    def summary(self) -> dict[str, Any]:
        counts = Counter(c.action.value for c in self.pending)
        changing = {c.use_case for c in self.pending}
        in_sync = [name for name in self.use_cases() if name not in changing]
        return {
            "changes": len(self.pending),
            "use_cases": len(self.use_cases()),
            "in_sync": len(in_sync),
            "drift": sum(1 for c in self.pending if c.drift),
            "by_action": {a.value: counts[a.value] for a in Action if a is not Action.NOOP},
        }
