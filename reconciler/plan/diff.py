"""The diff: desired state + observed state -> Plan. Pure: no I/O, no clock, no randomness.

Per use case the reconciler wants one thing: the version identified by the desired target key
is the `champion` and takes all live traffic. The plan is the ordered path from what is
observed to that, built by stage functions over a `Planned` value that carries the planned
champion and routes forward:

    register -> serve the base first -> train -> evaluate -> shift (rollout) -> promote -> drift

Versions are matched by key tag, never by number, so a plan made twice over the same inputs
is the same plan and a re-run never asks for work already done. Drift - an alias or a weight
changed outside the reconciler - is told from the reconciler's own moves by comparing with
what it last applied (an MLflow tag for aliases, the route table's `applied` column for
weights); a change that restores such a value is marked `drift`.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.observe.state import ObservedState, RegisteredModelSnapshot, TrafficSnapshot
from reconciler.plan import build_stages, traffic_stages
from reconciler.plan.model import Change, NoopChange, Plan, PlanSource, ReasonCode
from reconciler.plan.planned import Planned, live_routes
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase

__all__ = ["diff", "live_routes", "observed_serial", "plan_use_case"]


def diff(
    desired: DesiredState,
    observed: ObservedState,
    *,
    only: Sequence[str] | None = None,
) -> Plan:
    changes: list[Change] = []
    in_scope = [u for u in desired.use_cases if only is None or u.name in only]
    for use_case in in_scope:
        changes += plan_use_case(
            use_case,
            desired.identities[use_case.name],
            observed.registered_model(use_case.spec.registered_model),
            observed.traffic_of(use_case.name),
        )
    source = desired.source
    return Plan(
        source=PlanSource(
            repo=source.repo,
            ref=source.ref,
            commit=source.commit,
            dirty=source.dirty,
            digest=source.digest,
        ),
        observed_serial=observed_serial(desired, observed, [u.name for u in in_scope]),
        changes=tuple(changes),
    )


def observed_serial(
    desired: DesiredState, observed: ObservedState, use_cases: Sequence[str]
) -> str:
    """The serial of what a plan for `use_cases` was made from: their registered models and
    their traffic (for every use case, all that was observed). Applying it is refused as
    stale only when that changed."""
    scope = [u for u in desired.use_cases if u.name in use_cases]
    return observed.serial_of(
        models={u.spec.registered_model for u in scope}, use_cases={u.name for u in scope}
    )


def plan_use_case(
    use_case: UseCase,
    identity: UseCaseIdentity,
    model: RegisteredModelSnapshot | None,
    traffic: TrafficSnapshot,
) -> list[Change]:
    p = Planned(use_case, identity, model, traffic)
    p, base = build_stages.register(p)
    if identity.trains:
        p = build_stages.serve_base_first(p, base)
    p, candidate = build_stages.train(p, base)
    if candidate is None:
        p = build_stages.evaluate(p, None)
        p = traffic_stages.rollout(p, None)
    else:
        p, may_roll_out = build_stages.gate(p, candidate)
        if may_roll_out:
            p = traffic_stages.rollout(p, candidate.version)
    p = traffic_stages.restore_drifted_aliases(p)
    if not p.changes:
        p = p.add(
            NoopChange(
                use_case=use_case.name,
                code=ReasonCode.IN_SYNC,
                reason=f"in sync: champion {p.aliases.get('champion')} serves all traffic",
            )
        )
    return list(p.changes)
