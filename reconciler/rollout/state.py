"""A rollout's persisted state, its phases, operator controls, and judgements.

The state is everything the machine needs to carry on after a crash: which stage, since when
its routes stood, when the next judgement is due, the failures counted so far, and why it is
waiting. It is saved after every step (the journal keeps it as JSON), so a new process
re-seeded with it resumes exactly where the last one stopped - the way gitops-engine re-seeds
`Sync()` with its persisted results.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.rollout.analysis import Analysis, AnalysisOutcome, Measurement
from reconciler.rollout.stages import RolloutPolicy, Stage
from reconciler.spec.model import RolloutStrategy


class Phase(enum.StrEnum):
    PROGRESSING = "Progressing"  # at a stage: setting routes, baking, or judging
    PAUSED = "Paused"  # by an operator, or short of evidence at the deadline
    PROMOTING = "Promoting"  # the last analysis passed (or an operator promoted)
    ROLLING_BACK = "RollingBack"  # failed or aborted: the champion takes all traffic back
    SUCCEEDED = "Succeeded"  # the candidate is champion
    ROLLED_BACK = "RolledBack"  # the champion serves again; the candidate is rejected

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.ROLLED_BACK)


class PauseReason(enum.StrEnum):
    OPERATOR = "operator"  # until `reconciler resume`
    NO_DATA = "noData"  # too little traffic by the deadline: the next reconcile tries again


class Control(enum.StrEnum):
    """What an operator asks of a running rollout (`reconciler pause | resume | ...`)."""

    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    PROMOTE = "promote"


class PromotionBasis(enum.StrEnum):
    ANALYSIS = "analysis"  # a passed analysis at the last stage
    OPERATOR = "operator"  # `reconciler promote`


@dataclass(frozen=True)
class Judgement:
    """One analysis of one stage's window, as history shows it."""

    use_case: str
    digest: str
    candidate: str
    champion: str
    stage: str  # the stage's label: "shadow", "25%", "100% (post-promotion)"
    weight: int
    final: bool  # the last stage: a pass here earns the promotion
    window_start: float
    window_end: float
    analysis: Analysis
    decision: str  # what the machine did with it

    @property
    def outcome(self) -> AnalysisOutcome:
        return self.analysis.outcome

    def as_json(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "digest": self.digest,
            "candidate": self.candidate,
            "champion": self.champion,
            "stage": self.stage,
            "weight": self.weight,
            "final": self.final,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "outcome": self.outcome.value,
            "requests": self.analysis.requests,
            "min_requests": self.analysis.min_requests,
            "summary": self.analysis.summary,
            "measurements": [m.as_json() for m in self.analysis.measurements],
            "decision": self.decision,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Judgement:
        analysis = Analysis(
            AnalysisOutcome(data["outcome"]),
            int(data["requests"]),
            int(data["min_requests"]),
            tuple(Measurement.from_json(m) for m in data["measurements"]),
        )
        return cls(
            use_case=data["use_case"],
            digest=data["digest"],
            candidate=data["candidate"],
            champion=data["champion"],
            stage=data["stage"],
            weight=int(data["weight"]),
            final=bool(data["final"]),
            window_start=float(data["window_start"]),
            window_end=float(data["window_end"]),
            analysis=analysis,
            decision=data["decision"],
        )


@dataclass(frozen=True)
class RolloutState:
    use_case: str
    digest: str  # the desired state this rollout serves; a new digest starts a new rollout
    candidate: str
    champion: str
    strategy: RolloutStrategy
    stages: tuple[Stage, ...]
    policy: RolloutPolicy
    started_at: float
    phase: Phase = Phase.PROGRESSING
    stage_index: int = 0
    # When the current stage's routes were seen in place: its window starts here. None until
    # they are, so a crash between writing the routes and seeing them costs a re-bake, never
    # a window judged on the wrong weights.
    stage_started_at: float | None = None
    # When the stage was first seen in place: its progress deadline runs from here, across
    # re-bakes after failed checks, so failing below the limit cannot postpone it forever.
    stage_entered_at: float | None = None
    next_judgement_at: float | None = None  # after an inconclusive judgement
    failures: int = 0
    pause_reason: PauseReason | None = None
    promoted_by: PromotionBasis | None = None
    message: str = ""
    last_judgement: Judgement | None = None

    @property
    def stage(self) -> Stage:
        return self.stages[min(self.stage_index, len(self.stages) - 1)]

    @property
    def on_last_stage(self) -> bool:
        return self.stage_index >= len(self.stages) - 1

    @property
    def active(self) -> bool:
        return not self.phase.terminal

    @property
    def stage_deadline(self) -> float | None:
        if self.stage_entered_at is None:
            return None
        return self.stage_entered_at + self.policy.deadline_seconds

    def judgement_due(self, now: float) -> bool:
        """Whether the next advance judges a window (the caller then measures it)."""
        if self.phase is not Phase.PROGRESSING or self.stage_started_at is None:
            return False
        if now < self.stage_started_at + self.stage.bake_seconds:
            return False
        return self.next_judgement_at is None or now >= self.next_judgement_at

    def same_rollout(self, *, digest: str, candidate: str, champion: str) -> bool:
        return (self.digest, self.candidate, self.champion) == (digest, candidate, champion)

    def evolve(self, **changes: Any) -> RolloutState:
        return dataclasses.replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "digest": self.digest,
            "candidate": self.candidate,
            "champion": self.champion,
            "strategy": self.strategy.value,
            "stages": [s.as_json() for s in self.stages],
            "policy": self.policy.as_json(),
            "started_at": self.started_at,
            "phase": self.phase.value,
            "stage_index": self.stage_index,
            "stage_started_at": self.stage_started_at,
            "stage_entered_at": self.stage_entered_at,
            "next_judgement_at": self.next_judgement_at,
            "failures": self.failures,
            "pause_reason": None if self.pause_reason is None else self.pause_reason.value,
            "promoted_by": None if self.promoted_by is None else self.promoted_by.value,
            "message": self.message,
            "last_judgement": None
            if self.last_judgement is None
            else self.last_judgement.as_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutState:
        return cls(
            use_case=data["use_case"],
            digest=data["digest"],
            candidate=data["candidate"],
            champion=data["champion"],
            strategy=RolloutStrategy(data["strategy"]),
            stages=tuple(Stage.from_json(s) for s in data["stages"]),
            policy=RolloutPolicy.from_json(data["policy"]),
            started_at=float(data["started_at"]),
            phase=Phase(data["phase"]),
            stage_index=int(data["stage_index"]),
            stage_started_at=data["stage_started_at"],
            stage_entered_at=data["stage_entered_at"],
            next_judgement_at=data["next_judgement_at"],
            failures=int(data["failures"]),
            pause_reason=None
            if data["pause_reason"] is None
            else PauseReason(data["pause_reason"]),
            promoted_by=None
            if data["promoted_by"] is None
            else PromotionBasis(data["promoted_by"]),
            message=data["message"],
            last_judgement=None
            if data["last_judgement"] is None
            else Judgement.from_json(data["last_judgement"]),
        )
