"""The stages of a plan that make the candidate: register the base, serve it first, train,
and the evaluation gate (evaluate, or stop at a failed or rejected candidate).

Each stage takes the `Planned` so far and returns it with its changes added; stages that find
or plan a version also return it. Versions are matched by key tag, never by number.
"""

from __future__ import annotations

from reconciler import lineage
from reconciler.digest import short
from reconciler.lineage import Alias
from reconciler.observe.state import VersionSnapshot
from reconciler.plan.model import (
    NEW_BASE,
    NEW_VERSION,
    AliasesBefore,
    EvaluateAfter,
    EvaluateBefore,
    EvaluateChange,
    NoopChange,
    PromoteAfter,
    PromoteChange,
    ReasonCode,
    RegisterAfter,
    RegisterBefore,
    RegisterChange,
    RollbackAfter,
    RollbackChange,
    ServingBefore,
    TrainAfter,
    TrainChange,
)
from reconciler.plan.planned import Planned, all_to, live_routes, route_refs
from reconciler.plan.traffic_stages import route_all_to
from reconciler.spec.identity import base_model_descriptor
from reconciler.spec.model import ModelSource


def register(p: Planned) -> tuple[Planned, VersionSnapshot | None]:
    """The base version, found by key, or a change that registers it."""
    found = p.find(p.identity.base_key)
    if found is not None:
        return p, found
    spec = p.use_case.spec
    preferred = spec.preferred_model
    descriptor = base_model_descriptor(p.use_case)
    revision = descriptor.get("revision")
    after = RegisterAfter(
        registered_model=spec.registered_model,
        source=preferred.source,
        reference=descriptor["reference"],
        revision=revision,
        license=preferred.license,
        role="external" if preferred.source is ModelSource.OPENAI_COMPATIBLE else "base",
        key=p.identity.base_key,
    )
    shown = f"{preferred.source.value}:{preferred.reference}"
    if revision:
        shown += f"@{revision[:12]}"
    if p.model is None:
        change = RegisterChange(
            use_case=p.name,
            code=ReasonCode.NEW_REGISTERED_MODEL,
            reason=f"registered model {spec.registered_model} does not exist: create it and "
            f"register {shown} as its first version",
            after=after,
        )
    else:
        change = RegisterChange(
            use_case=p.name,
            code=ReasonCode.NEW_BASE_VERSION,
            reason=f"no version of {spec.registered_model} is {shown} "
            f"(key {short(p.identity.base_key)}): register it",
            before=RegisterBefore(
                registered_model=spec.registered_model, versions=len(p.model.versions)
            ),
            after=after,
        )
    return p.add(change), None


def serve_base_first(p: Planned, base: VersionSnapshot | None) -> Planned:
    """With no champion, the base model is acceptable as it is: it serves until the trained
    candidate has canaried against it, so even a first rollout is judged on live traffic."""
    champion = p.alias(Alias.CHAMPION)
    if champion is not None and p.exists(champion):
        return p
    label = base.version if base else NEW_BASE
    p = p.add(
        PromoteChange(
            use_case=p.name,
            code=ReasonCode.BASE_SERVES_FIRST,
            reason="no champion yet: the base model serves first, and the trained candidate "
            "will canary against it",
            before=AliasesBefore(aliases={Alias.CHAMPION: champion}),
            after=PromoteAfter(aliases={Alias.CHAMPION: label, Alias.CHALLENGER: None}),
        )
    )
    p = route_all_to(p, label, "base model")
    return p.serving(label, all_to(label))


def train(p: Planned, base: VersionSnapshot | None) -> tuple[Planned, VersionSnapshot | None]:
    """The trained candidate, found by key, or a change that trains it."""
    if not p.identity.trains:
        return p, base
    found = p.find(p.identity.target_key)
    if found is not None:
        return p, found
    training = p.use_case.spec.training
    datasets = [path for path in [training.data.initial] if path]
    sources = ", ".join(datasets)
    if training.data.historical_logs is not None:
        logs = f"logs of the last {training.data.historical_logs.since}"
        sources = f"{sources} + {logs}" if sources else logs
    change = TrainChange(
        use_case=p.name,
        code=ReasonCode.NOT_TRAINED,
        reason=f"no version trained for key {short(p.identity.target_key)}: "
        f"{training.method.value} fine-tune of the base on {sources}",
        after=TrainAfter(
            key=p.identity.target_key,
            base_key=p.identity.base_key,
            base_version=base.version if base else NEW_BASE,
            method=training.method,
            datasets=datasets,
            historical_logs=training.data.historical_logs is not None,
        ),
    )
    return p.add(change), None


def evaluate(p: Planned, candidate: VersionSnapshot | None, stale: str | None = None) -> Planned:
    champion = p.champion()
    baseline = champion if p.champion_is_real() else None
    thresholds = p.use_case.spec.evaluation.thresholds.model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    against = (
        f"against champion {baseline}" if baseline else "with no champion: absolute thresholds only"
    )
    label = candidate.version if candidate else NEW_VERSION
    why = f" ({stale})" if stale else ""
    return p.add(
        EvaluateChange(
            use_case=p.name,
            code=ReasonCode.VERDICT_STALE if stale else ReasonCode.NOT_EVALUATED,
            reason=f"candidate {label} {against}{why}",
            before=None
            if candidate is None
            else EvaluateBefore(candidate=label, verdict=candidate.tag(lineage.EVALUATION_VERDICT)),
            after=EvaluateAfter(
                candidate=label,
                baseline=baseline,
                thresholds=thresholds,
                digest=p.identity.digest,
            ),
        )
    )


def gate(p: Planned, candidate: VersionSnapshot) -> tuple[Planned, bool]:
    """Whether the existing candidate may roll out; plans evaluation or a rollback if not."""
    version = candidate.version
    # Rejected in the registry for this desired state, or in git for good: a champion too
    # (a rejection written into `spec.rejected` by hand is a request to roll it back).
    rejection = rejection_of(p, candidate) or rejected_in_git(p, candidate)
    if p.alias(Alias.CHAMPION) == version and rejection is None:
        return p, True  # already serving: the gate is for promotion only
    if rejection is not None:
        return rejected(p, candidate, rejection), False
    verdict = candidate.tag(lineage.EVALUATION_VERDICT)
    judged_for = candidate.tag(lineage.EVALUATION_DIGEST)
    if verdict is None or verdict == lineage.EvaluationVerdict.INCOMPLETE:
        return evaluate(p, candidate), True
    if judged_for != p.identity.digest:
        return evaluate(p, candidate, stale="its verdict was for an earlier desired state"), True
    if verdict == lineage.EvaluationVerdict.FAILED:
        reason = candidate.tag(lineage.EVALUATION_REASON) or "thresholds not met"
        return (
            p.add(
                NoopChange(
                    use_case=p.name,
                    code=ReasonCode.EVALUATION_FAILED,
                    reason=f"candidate {version} failed evaluation for this desired state "
                    f"({reason}); change the desired state to try again",
                )
            ),
            False,
        )
    return p, True


def rejection_of(p: Planned, candidate: VersionSnapshot) -> str | None:
    """Why the candidate was rolled back for this desired state (a registry tag for its
    digest), or None."""
    tagged = candidate.tag(lineage.REJECTED)
    if tagged is not None and candidate.tag(lineage.REJECTED_DIGEST) == p.identity.digest:
        return tagged
    return None


def rejected_in_git(p: Planned, candidate: VersionSnapshot) -> str | None:
    """Rejected in git (`spec.rejected`, written back after a rollback): whatever digest the
    registry's rejection was made for, the desired state says never again."""
    key = candidate.tag(lineage.KEY)
    for entry in p.use_case.spec.rejected:
        if entry.key == key:
            return f"{entry.reason}; recorded in spec.rejected"
    return None


def rejected(p: Planned, candidate: VersionSnapshot, rejection: str) -> Planned:
    version = candidate.version
    champion = p.alias(Alias.CHAMPION)
    challenger = p.alias(Alias.CHALLENGER)
    holds_traffic = p.traffic.weight_of(version) > 0
    if version not in (champion, challenger) and not holds_traffic:
        return p.add(
            NoopChange(
                use_case=p.name,
                code=ReasonCode.REJECTED,
                reason=f"candidate {version} was rejected for this desired state ({rejection}); "
                f"champion {champion} keeps serving. Change the desired state to try again",
            )
        )
    restore = p.alias(Alias.PREVIOUS) if champion == version else champion
    if restore is None or not p.exists(restore):
        return p.add(
            NoopChange(
                use_case=p.name,
                code=ReasonCode.NOTHING_TO_ROLL_BACK_TO,
                reason=f"candidate {version} was rejected ({rejection}) but there is no earlier "
                "version to roll back to; it keeps serving until the desired state changes",
            )
        )
    return p.add(
        RollbackChange(
            use_case=p.name,
            code=ReasonCode.REJECTED_STILL_SERVING,
            reason=f"candidate {version} was rejected ({rejection}) but still serves; "
            f"restore {restore}",
            before=ServingBefore(
                routes=route_refs(live_routes(p.traffic)),
                aliases={Alias.CHAMPION: champion, Alias.CHALLENGER: challenger},
            ),
            after=RollbackAfter(
                aliases={Alias.CHAMPION: restore, Alias.CHALLENGER: None},
                routes=route_refs(all_to(restore)),
                rejected=version,
            ),
        )
    )
