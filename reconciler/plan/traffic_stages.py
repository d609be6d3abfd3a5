"""The stages of a plan that move traffic and aliases: the rollout of the candidate (shift in
steps, then promote), routing all traffic to the champion, and healing hand-moved aliases.

A plan sees weights, not analyses: a canary standing at 25% is listed again from 25%, and the
rollout machine, which knows from its journal whether 25% passed, decides whether to judge it
again. Only a recorded, passed analysis at the last step earns the promotion.
"""

from __future__ import annotations

from reconciler import lineage
from reconciler.lineage import Alias
from reconciler.observe.state import normalize_routes
from reconciler.plan.model import (
    NEW_VERSION,
    AliasesBefore,
    Change,
    PromoteAfter,
    PromoteChange,
    ReasonCode,
    RollbackChange,
    RolloutPlan,
    ServingBefore,
    ShiftAfter,
    ShiftChange,
    VersionRef,
)
from reconciler.plan.planned import Planned, all_to, live_routes, route_refs
from reconciler.spec.model import Rollout, RolloutStrategy


def rollout(p: Planned, candidate: str | None) -> Planned:
    """Bring the candidate (None: the one this plan makes) to champion with all traffic."""
    target = candidate or NEW_VERSION
    champion = p.champion()
    challenger = p.alias(Alias.CHALLENGER)

    if candidate is not None and champion == candidate:
        if challenger is not None:
            p = p.add(
                PromoteChange(
                    use_case=p.name,
                    code=ReasonCode.LEFTOVER_CHALLENGER,
                    reason=f"{candidate} is champion: remove the leftover challenger alias "
                    f"({challenger})",
                    before=AliasesBefore(
                        aliases={Alias.CHAMPION: champion, Alias.CHALLENGER: challenger}
                    ),
                    after=PromoteAfter(aliases={Alias.CHAMPION: champion, Alias.CHALLENGER: None}),
                    drift=p.moved_by_hand(Alias.CHALLENGER),
                )
            )
        return route_all_to(p, candidate, "champion")

    if (
        candidate is not None
        and p.applied is not None
        and p.applied.get(Alias.CHAMPION.value) == candidate
    ):
        p = p.add(
            PromoteChange(
                use_case=p.name,
                code=ReasonCode.DRIFT_ALIAS,
                reason=f"alias champion was moved outside the reconciler (to {champion}); "
                f"restore {candidate}{p.heal_note()}",
                before=AliasesBefore(aliases={Alias.CHAMPION: champion}),
                after=PromoteAfter(aliases={Alias.CHAMPION: candidate}),
                drift=True,
            )
        )
        return route_all_to(p, candidate, "restored champion")

    if champion is None or not p.champion_is_real():
        why = (
            "no champion yet"
            if champion is None
            else f"champion {champion} no longer exists in the registry"
        )
        p = p.add(
            PromoteChange(
                use_case=p.name,
                code=ReasonCode.FIRST_CHAMPION,
                reason=f"{why}: {target} becomes champion directly (nothing to canary against)",
                before=AliasesBefore(aliases={Alias.CHAMPION: champion}),
                after=PromoteAfter(aliases={Alias.CHAMPION: target, Alias.CHALLENGER: None}),
            )
        )
        return route_all_to(p, target, "first champion")

    return _progressive(p, target, champion, challenger, candidate)


def _progressive(
    p: Planned,
    target: VersionRef,
    champion: VersionRef,
    challenger: str | None,
    candidate: str | None,
) -> Planned:
    spec = p.use_case.spec.rollout
    previous = p.alias(Alias.PREVIOUS)
    already = p.traffic.weight_of(candidate) if candidate else 0
    steps = spec.traffic_steps
    # The step the canary stands at is not known to have passed: it is listed again.
    remaining = [s for s in steps if s >= already] if already else steps
    shadow = already == 0 and (
        spec.shadow is not None or spec.strategy is RolloutStrategy.BLUE_GREEN
    )
    resuming = bool(already) and challenger == candidate
    notes = []
    if resuming:
        notes.append(f"resuming at {already}%")
    if challenger is not None and challenger != candidate:
        notes.append(f"replaces the unfinished rollout of {challenger}")
    note = f"; {'; '.join(notes)}" if notes else ""
    p = p.add(
        ShiftChange(
            use_case=p.name,
            code=ReasonCode.ROLLOUT_RESUME if resuming else ReasonCode.ROLLOUT,
            reason=f"{describe_rollout(spec, target, champion, remaining, shadow)}"
            f"{note}{p.routes_note()}",
            before=ServingBefore(
                routes=route_refs(p.current_routes()),
                aliases={Alias.CHAMPION: champion, Alias.CHALLENGER: challenger},
            ),
            after=ShiftAfter(
                routes=route_refs(all_to(target)),
                rollout=RolloutPlan(
                    candidate=target,
                    champion=champion,
                    strategy=spec.strategy,
                    shadow=shadow,
                    steps=remaining,
                ),
            ),
            drift=p.traffic.drifted,
        )
    )
    return p.add(
        PromoteChange(
            use_case=p.name,
            code=ReasonCode.PROMOTE_AFTER_ROLLOUT,
            reason=f"after a passed analysis at 100% {target} becomes champion; "
            f"{champion} becomes previous",
            # `before` is the state this change expects, i.e. after the shift above.
            before=AliasesBefore(
                aliases={
                    Alias.CHAMPION: champion,
                    Alias.CHALLENGER: target,
                    Alias.PREVIOUS: previous,
                }
            ),
            after=PromoteAfter(
                aliases={
                    Alias.CHAMPION: target,
                    Alias.CHALLENGER: None,
                    Alias.PREVIOUS: champion,
                },
                requires_analysis=True,
            ),
        )
    )


def describe_rollout(
    spec: Rollout, target: VersionRef, champion: VersionRef, steps: list[int], shadow: bool
) -> str:
    """One line for humans: the stages the rollout will walk and how long each bakes."""
    mirrored = spec.shadow.duration if spec.shadow else spec.bake_time
    if spec.strategy is RolloutStrategy.BLUE_GREEN:
        stages = []
        if shadow:
            stages.append(f"preview on mirrored traffic ({mirrored})")
        stages.append(f"100% with post-promotion analysis ({spec.bake_time})")
        return (
            f"blue-green {target} against champion {champion}: {' → '.join(stages)}; "
            f"{champion} stays loaded until the analysis passes"
        )
    ramp = " → ".join(f"{s}%" for s in steps)
    if shadow:
        ramp = f"shadow {mirrored} → {ramp}"
    return (
        f"canary {target} against champion {champion}: {ramp}, bake {spec.bake_time} per "
        "step with analysis"
    )


def route_all_to(p: Planned, version: VersionRef, role: str) -> Planned:
    current = live_routes(p.traffic)
    desired = all_to(version)
    if current == desired:
        return p
    drift = (
        p.traffic.drifted
        and p.traffic.applied is not None
        and normalize_routes(list(p.traffic.applied)) == desired
    )
    reason = f"route all traffic to the {role} {version}"
    if drift:
        reason = f"weights were edited outside the reconciler: {reason}{p.heal_note()}"
    else:
        reason += p.routes_note()
    return p.add(
        ShiftChange(
            use_case=p.name,
            code=ReasonCode.DRIFT_ROUTES if drift else ReasonCode.ROUTE_TO_CHAMPION,
            reason=reason,
            before=ServingBefore(routes=route_refs(current)),
            after=ShiftAfter(routes=route_refs(desired)),
            drift=drift,
        )
    )


def aliases_set_by(change: Change) -> set[Alias]:
    if isinstance(change, PromoteChange | RollbackChange):
        return set(change.after.aliases)
    if isinstance(change, ShiftChange) and change.after.rollout is not None:
        return {Alias.CHALLENGER}
    return set()


def restore_drifted_aliases(p: Planned) -> Planned:
    """Aliases moved by hand that no planned change already sets back."""
    if p.applied is None:
        return p
    touched = {alias for change in p.changes for alias in aliases_set_by(change)}
    for alias in lineage.MANAGED_ALIASES:
        if alias in touched or not p.moved_by_hand(alias):
            continue
        recorded = p.applied.get(alias.value)
        actual = p.alias(alias)
        p = p.add(
            PromoteChange(
                use_case=p.name,
                code=ReasonCode.DRIFT_ALIAS,
                reason=f"alias {alias.value} was moved outside the reconciler "
                f"({recorded or 'unset'} → {actual or 'unset'}); restore it{p.heal_note()}",
                before=AliasesBefore(aliases={alias: actual}),
                after=PromoteAfter(aliases={alias: recorded}),
                drift=True,
            )
        )
    return p
