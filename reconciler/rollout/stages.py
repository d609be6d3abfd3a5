"""The stages a rollout walks, made from the plan's rollout and the use case's spec.

    kind            candidate's live weight   mirrored to it       judged on
    --------------  ------------------------  -------------------  ---------------------------
    shadow          0                         shadow's weight      its answers to mirrored
                                                                   requests vs the champion's
    canary          the step's weight         -                    its live requests
    preview         0 (blue-green)            100%                 mirrored requests, as shadow
    postPromotion   100 (blue-green)          - (the old champion  its live requests
                                              keeps 1% mirrored,
                                              so it stays loaded)

Durations are in seconds already multiplied by `--time-scale`: bake times, the analysis
interval and the progress deadline are scaled alike.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.observe.state import Route, normalize_routes
from reconciler.rollout.analysis import Threshold, thresholds_of
from reconciler.spec.durations import duration_seconds
from reconciler.spec.model import NoDataPolicy, Rollout, RolloutStrategy

# The old champion's share of mirrored traffic during a blue-green post-promotion analysis:
# enough to keep it loaded and warm for an instant rollback, little enough to cost nothing.
KEEP_WARM_MIRROR = 1
SHADOW_MIRROR = 100


class StageKind(enum.StrEnum):
    SHADOW = "shadow"
    CANARY = "canary"
    PREVIEW = "preview"
    POST_PROMOTION = "postPromotion"


@dataclass(frozen=True)
class Stage:
    kind: StageKind
    weight: int  # the candidate's share of live traffic
    mirror: int  # percent of live requests copied to the candidate
    bake_seconds: float
    min_requests: int
    thresholds: tuple[Threshold, ...]

    @property
    def on_mirrored_traffic(self) -> bool:
        return self.weight == 0

    @property
    def label(self) -> str:
        if self.kind is StageKind.SHADOW:
            return "shadow"
        if self.kind is StageKind.PREVIEW:
            return "preview"
        if self.kind is StageKind.POST_PROMOTION:
            return "100% (post-promotion)"
        return f"{self.weight}%"

    def routes(self, champion: str, candidate: str) -> tuple[Route, ...]:
        if self.kind is StageKind.POST_PROMOTION:
            routes = [Route(candidate, 100), Route(champion, KEEP_WARM_MIRROR, shadow=True)]
        else:
            routes = [Route(champion, 100 - self.weight), Route(candidate, self.weight)]
            if self.mirror:
                routes.append(Route(candidate, self.mirror, shadow=True))
        return normalize_routes(routes)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "weight": self.weight,
            "mirror": self.mirror,
            "bake_seconds": self.bake_seconds,
            "min_requests": self.min_requests,
            "thresholds": [t.as_json() for t in self.thresholds],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stage:
        return cls(
            StageKind(data["kind"]),
            int(data["weight"]),
            int(data["mirror"]),
            float(data["bake_seconds"]),
            int(data["min_requests"]),
            tuple(Threshold.from_json(t) for t in data["thresholds"]),
        )


@dataclass(frozen=True)
class RolloutPolicy:
    """What applies to every stage of one rollout."""

    deadline_seconds: float  # per stage, from entering it to a passing analysis
    interval_seconds: float  # after the bake, how often a stage short of evidence is judged
    failure_limit: int
    on_no_data: NoDataPolicy

    def as_json(self) -> dict[str, Any]:
        return {
            "deadline_seconds": self.deadline_seconds,
            "interval_seconds": self.interval_seconds,
            "failure_limit": self.failure_limit,
            "on_no_data": self.on_no_data.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutPolicy:
        return cls(
            float(data["deadline_seconds"]),
            float(data["interval_seconds"]),
            int(data["failure_limit"]),
            NoDataPolicy(data["on_no_data"]),
        )


def policy_for(spec: Rollout, *, scale: float = 1.0) -> RolloutPolicy:
    return RolloutPolicy(
        deadline_seconds=duration_seconds(spec.progress_deadline) * scale,
        interval_seconds=duration_seconds(spec.analysis.interval) * scale,
        failure_limit=spec.analysis.failure_limit,
        on_no_data=spec.analysis.on_no_data,
    )


def stages_for(
    spec: Rollout, *, steps: list[int], shadow: bool, scale: float = 1.0
) -> tuple[Stage, ...]:
    """The stages for the plan's remaining `steps`, with a mirrored stage first if `shadow`."""
    bake = duration_seconds(spec.bake_time) * scale
    live = thresholds_of(spec.analysis.metrics)
    if spec.shadow is not None:
        mirrored_bake = duration_seconds(spec.shadow.duration) * scale
        mirrored_min = spec.shadow.min_requests
        mirrored = thresholds_of(spec.shadow.analysis)
    else:
        mirrored_bake, mirrored_min, mirrored = bake, spec.analysis.min_requests, live
    stages: list[Stage] = []
    if spec.strategy is RolloutStrategy.BLUE_GREEN:
        if shadow:
            stages.append(
                Stage(StageKind.PREVIEW, 0, SHADOW_MIRROR, mirrored_bake, mirrored_min, mirrored)
            )
        stages.append(
            Stage(StageKind.POST_PROMOTION, 100, 0, bake, spec.analysis.min_requests, live)
        )
        return tuple(stages)
    if shadow:
        stages.append(
            Stage(StageKind.SHADOW, 0, SHADOW_MIRROR, mirrored_bake, mirrored_min, mirrored)
        )
    stages += [
        Stage(StageKind.CANARY, weight, 0, bake, spec.analysis.min_requests, live)
        for weight in steps
    ]
    return tuple(stages)
