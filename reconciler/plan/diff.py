"""The diff: desired state + observed state -> Plan. Pure: no I/O, no clock, no randomness.

Per use case the reconciler wants one thing: the version identified by the desired target key
is the `champion` and takes all live traffic. The plan is the ordered path from what is
observed to that:

    register -> train -> evaluate -> shift (canary as `challenger`) -> promote

Versions are matched by key tag, never by number, so a plan made twice over the same inputs
is the same plan and a re-run never asks for work already done. Drift - an alias or a weight
changed outside the reconciler - is told from the reconciler's own moves by comparing with
what it last applied (an MLflow tag for aliases, the route table's `applied` column for
weights); a change that restores such a value is marked `drift`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler import lineage
from reconciler.digest import short
from reconciler.lineage import Alias
from reconciler.observe.state import (
    ObservedState,
    RegisteredModelSnapshot,
    Route,
    TrafficSnapshot,
    VersionSnapshot,
    normalize_routes,
)
from reconciler.plan.model import NEW_BASE, NEW_VERSION, Action, Change, Plan, PlanSource
from reconciler.spec.identity import UseCaseIdentity, base_model_descriptor
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import ModelSource, UseCase


def diff(
    desired: DesiredState,
    observed: ObservedState,
    *,
    only: Sequence[str] | None = None,
) -> Plan:
    changes: list[Change] = []
    for use_case in desired.use_cases:
        if only is not None and use_case.name not in only:
            continue
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
        observed_serial=observed.serial,
        changes=tuple(changes),
    )


def live_routes(traffic: TrafficSnapshot) -> tuple[Route, ...]:
    return normalize_routes([r for r in traffic.routes if not r.shadow])


def routes_json(routes: Sequence[Route]) -> list[dict[str, Any]]:
    return [{"version": r.version, "weight": r.weight} for r in normalize_routes(list(routes))]


def _all_to(version: str) -> tuple[Route, ...]:
    return (Route(version, 100),)


class _UseCasePlan:
    """Builds the changes of one use case; a class only to share the observed context."""

    def __init__(
        self,
        use_case: UseCase,
        identity: UseCaseIdentity,
        model: RegisteredModelSnapshot | None,
        traffic: TrafficSnapshot,
    ) -> None:
        self.use_case = use_case
        self.identity = identity
        self.model = model
        self.traffic = traffic
        self.aliases: Mapping[str, str] = model.aliases if model else {}
        self.applied: Mapping[str, str] | None = model.applied_aliases() if model else None
        self.changes: list[Change] = []
        # Set when this plan first serves the base model: the champion and routes that later
        # changes of the same plan will find.
        self.planned_champion: str | None = None
        self.planned_routes: tuple[Route, ...] | None = None

    # -- helpers ---------------------------------------------------------------------------

    def add(
        self,
        action: Action,
        reason: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        drift: bool = False,
    ) -> None:
        self.changes.append(
            Change(
                use_case=self.use_case.name,
                action=action,
                reason=reason,
                before=before,
                after=after,
                drift=drift,
            )
        )

    def alias(self, name: Alias) -> str | None:
        return self.aliases.get(name.value)

    def exists(self, version: str | None) -> bool:
        return self.model is not None and self.model.version(version) is not None

    def routes_note(self) -> str:
        notes = []
        missing = sorted(
            {r.version for r in live_routes(self.traffic) if not self.exists(r.version)}
        )
        if missing:
            notes.append(f"routes name versions that do not exist: {', '.join(missing)}")
        if self.traffic.drifted:
            notes.append("weights were edited outside the reconciler")
        return f" ({'; '.join(notes)})" if notes else ""

    # -- the pipeline ------------------------------------------------------------------------

    def build(self) -> list[Change]:
        base = self.register()
        if self.identity.trains and not self.has_champion():
            self.serve_base_first(base)
        candidate = self.train(base)
        if candidate is None:
            self.evaluate(None)
            self.rollout(None)
        elif self.gate(candidate):
            self.rollout(candidate.version)
        self.restore_drifted_aliases()
        if not self.changes:
            champion = self.alias(Alias.CHAMPION)
            self.add(
                Action.NOOP,
                f"in sync: champion {champion} serves all traffic",
                before=None,
                after=None,
            )
        return self.changes

    def register(self) -> VersionSnapshot | None:
        spec = self.use_case.spec
        found = self.model.find_by_key(self.identity.base_key) if self.model else None
        if found is not None:
            return found
        preferred = spec.preferred_model
        descriptor = base_model_descriptor(self.use_case)
        role = "external" if preferred.source is ModelSource.OPENAI_COMPATIBLE else "base"
        after = {
            "registered_model": spec.registered_model,
            **descriptor,
            "license": preferred.license,
            "role": role,
            "key": self.identity.base_key,
        }
        shown = f"{preferred.source.value}:{preferred.reference}"
        revision = descriptor.get("revision")
        if revision:
            shown += f"@{revision[:12]}"
        if self.model is None:
            self.add(
                Action.REGISTER,
                f"registered model {spec.registered_model} does not exist: create it and "
                f"register {shown} as its first version",
                before=None,
                after=after,
            )
        else:
            self.add(
                Action.REGISTER,
                f"no version of {spec.registered_model} is {shown} "
                f"(key {short(self.identity.base_key)}): register it",
                before={
                    "registered_model": spec.registered_model,
                    "versions": len(self.model.versions),
                },
                after=after,
            )
        return None

    def has_champion(self) -> bool:
        champion = self.alias(Alias.CHAMPION)
        return champion is not None and self.exists(champion)

    def serve_base_first(self, base: VersionSnapshot | None) -> None:
        """The base model is acceptable as it is: it serves until the trained candidate has
        canaried against it, so even a first rollout is judged on live traffic."""
        label = base.version if base else NEW_BASE
        candidate = self.model.find_by_key(self.identity.target_key) if self.model else None
        if candidate is not None and self.alias(Alias.CHAMPION) == candidate.version:
            return
        champion = self.alias(Alias.CHAMPION)
        self.add(
            Action.PROMOTE,
            "no champion yet: the base model serves first, and the trained candidate will "
            "canary against it",
            before={"champion": champion},
            after={"champion": label, "challenger": None},
        )
        self.route_all_to(label, "base model")
        self.planned_champion = label
        self.planned_routes = _all_to(label)

    def train(self, base: VersionSnapshot | None) -> VersionSnapshot | None:
        if not self.identity.trains:
            return base
        found = self.model.find_by_key(self.identity.target_key) if self.model else None
        if found is not None:
            return found
        training = self.use_case.spec.training
        datasets = [p for p in [training.data.initial] if p]
        sources = ", ".join(datasets)
        if training.data.historical_logs is not None:
            sources = f"{sources} + logs of the last {training.data.historical_logs.since}".lstrip(
                ", +"
            )
        self.add(
            Action.TRAIN,
            f"no version trained for key {short(self.identity.target_key)}: "
            f"{training.method.value} fine-tune of the base on {sources}",
            before=None,
            after={
                "key": self.identity.target_key,
                "base_key": self.identity.base_key,
                "base_version": base.version if base else NEW_BASE,
                "method": training.method.value,
                "datasets": datasets,
                "historical_logs": training.data.historical_logs is not None,
            },
        )
        return None

    def evaluate(self, candidate: VersionSnapshot | None, stale: str | None = None) -> None:
        champion = self.planned_champion or self.alias(Alias.CHAMPION)
        baseline = champion if champion == self.planned_champion or self.exists(champion) else None
        thresholds = self.use_case.spec.evaluation.thresholds.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        against = (
            f"against champion {baseline}"
            if baseline
            else "with no champion: absolute thresholds only"
        )
        label = candidate.version if candidate else NEW_VERSION
        why = f" ({stale})" if stale else ""
        self.add(
            Action.EVALUATE,
            f"candidate {label} {against}{why}",
            before=None
            if candidate is None
            else {"candidate": label, "verdict": candidate.tag(lineage.EVALUATION_VERDICT)},
            after={
                "candidate": label,
                "baseline": baseline,
                "thresholds": thresholds,
                "digest": self.identity.digest,
            },
        )

    def gate(self, candidate: VersionSnapshot) -> bool:
        """Whether the existing candidate may roll out; plans evaluation or a rollback if not."""
        version = candidate.version
        if self.alias(Alias.CHAMPION) == version and candidate.tag(lineage.REJECTED) is None:
            return True  # already serving: the gate is for promotion only
        rejection = candidate.tag(lineage.REJECTED)
        if rejection is not None and candidate.tag(lineage.REJECTED_DIGEST) == self.identity.digest:
            self.rejected(candidate, rejection)
            return False
        # Rejected in git (`spec.rejected`, written back after a rollback): whatever digest
        # the registry's rejection was made for, the desired state says never again.
        recorded = self.rejected_in_git(candidate)
        if recorded is not None:
            self.rejected(candidate, recorded)
            return False
        verdict = candidate.tag(lineage.EVALUATION_VERDICT)
        judged_for = candidate.tag(lineage.EVALUATION_DIGEST)
        if verdict is None:
            self.evaluate(candidate)
            return True
        if judged_for != self.identity.digest:
            self.evaluate(candidate, stale="its verdict was for an earlier desired state")
            return True
        if verdict == lineage.Verdict.FAILED:
            reason = candidate.tag(lineage.EVALUATION_REASON) or "thresholds not met"
            self.add(
                Action.NOOP,
                f"candidate {version} failed evaluation for this desired state ({reason}); "
                "change the desired state to try again",
            )
            return False
        return True

    def rejected_in_git(self, candidate: VersionSnapshot) -> str | None:
        key = candidate.tag(lineage.KEY)
        for entry in self.use_case.spec.rejected:
            if entry.key == key:
                return f"{entry.reason}; recorded in spec.rejected"
        return None

    def rejected(self, candidate: VersionSnapshot, rejection: str) -> None:
        version = candidate.version
        champion = self.alias(Alias.CHAMPION)
        challenger = self.alias(Alias.CHALLENGER)
        holds_traffic = self.traffic.weight_of(version) > 0
        if version not in (champion, challenger) and not holds_traffic:
            self.add(
                Action.NOOP,
                f"candidate {version} was rejected for this desired state ({rejection}); "
                f"champion {champion} keeps serving. Change the desired state to try again",
            )
            return
        restore = self.alias(Alias.PREVIOUS) if champion == version else champion
        if restore is None or not self.exists(restore):
            self.add(
                Action.NOOP,
                f"candidate {version} was rejected ({rejection}) but there is no earlier "
                "version to roll back to; it keeps serving until the desired state changes",
            )
            return
        self.add(
            Action.ROLLBACK,
            f"candidate {version} was rejected ({rejection}) but still serves; restore {restore}",
            before={
                "champion": champion,
                "challenger": challenger,
                "routes": routes_json(live_routes(self.traffic)),
            },
            after={
                "champion": restore,
                "challenger": None,
                "routes": routes_json(_all_to(restore)),
                "rejected": version,
            },
        )

    def rollout(self, candidate: str | None) -> None:
        target = candidate or NEW_VERSION
        champion = self.planned_champion or self.alias(Alias.CHAMPION)
        challenger = self.alias(Alias.CHALLENGER)
        previous = self.alias(Alias.PREVIOUS)
        current = self.planned_routes or live_routes(self.traffic)

        if candidate is not None and champion == candidate:
            if challenger is not None:
                self.add(
                    Action.PROMOTE,
                    f"{candidate} is champion: remove the leftover challenger alias ({challenger})",
                    before={"champion": champion, "challenger": challenger},
                    after={"champion": champion, "challenger": None},
                    drift=self._moved_by_hand(Alias.CHALLENGER),
                )
            self.route_all_to(candidate, "champion")
            return

        if (
            candidate is not None
            and self.applied is not None
            and self.applied.get(Alias.CHAMPION.value) == candidate
        ):
            self.add(
                Action.PROMOTE,
                f"alias champion was moved outside the reconciler (to {champion}); "
                f"restore {candidate}{self._heal_note()}",
                before={"champion": champion},
                after={"champion": candidate},
                drift=True,
            )
            self.route_all_to(candidate, "restored champion")
            return

        if champion is None or not (champion == self.planned_champion or self.exists(champion)):
            why = (
                "no champion yet"
                if champion is None
                else f"champion {champion} no longer exists in the registry"
            )
            self.add(
                Action.PROMOTE,
                f"{why}: {target} becomes champion directly (nothing to canary against)",
                before={"champion": champion},
                after={"champion": target, "challenger": None},
            )
            self.route_all_to(target, "first champion")
            return

        steps = self.use_case.spec.rollout.steps
        already = self.traffic.weight_of(candidate) if candidate else 0
        # The step the canary stands at is not known to have passed (a plan sees weights, not
        # analyses): it is listed again, and apply skips it when the journal says it passed.
        remaining = [s for s in steps if s >= already] if already else list(steps)
        rollout = self.use_case.spec.rollout
        notes = []
        if already and challenger == candidate:
            notes.append(f"resuming at {already}%")
        if challenger is not None and challenger != candidate:
            notes.append(f"replaces the unfinished rollout of {challenger}")
        note = f"; {'; '.join(notes)}" if notes else ""
        ramp = " → ".join(f"{s}%" for s in remaining)
        self.add(
            Action.SHIFT,
            f"canary {target} against champion {champion}: {ramp}, "
            f"bake {rollout.bake_time} per step with analysis{note}{self.routes_note()}",
            before={
                "champion": champion,
                "challenger": challenger,
                "routes": routes_json(current),
            },
            after={
                "challenger": target,
                "steps": remaining,
                "routes": routes_json(_all_to(target)),
            },
            drift=self.traffic.drifted,
        )
        self.add(
            Action.PROMOTE,
            f"after the last step {target} becomes champion; {champion} becomes previous",
            # `before` is the state this change expects, i.e. after the shift above.
            before={"champion": champion, "challenger": target, "previous": previous},
            after={"champion": target, "challenger": None, "previous": champion},
        )

    def route_all_to(self, version: str, role: str) -> None:
        current = live_routes(self.traffic)
        desired = _all_to(version)
        if current == desired:
            return
        drift = (
            self.traffic.drifted
            and self.traffic.applied is not None
            and (normalize_routes(list(self.traffic.applied)) == desired)
        )
        reason = f"route all traffic to the {role} {version}"
        if drift:
            reason = f"weights were edited outside the reconciler: {reason}{self._heal_note()}"
        else:
            reason += self.routes_note()
        self.add(
            Action.SHIFT,
            reason,
            before={"routes": routes_json(current)},
            after={"routes": routes_json(desired), "steps": [100]},
            drift=drift,
        )

    def _moved_by_hand(self, alias: Alias) -> bool:
        return self.applied is not None and self.applied.get(alias.value) != self.alias(alias)

    def _heal_note(self) -> str:
        if self.use_case.spec.sync_policy.self_heal:
            return ""
        return " [selfHeal is off: apply reports this drift and leaves it]"

    def restore_drifted_aliases(self) -> None:
        """Aliases moved by hand that no planned change already sets back."""
        if self.applied is None:
            return
        touched = {
            key
            for change in self.changes
            for key in (change.after or {})
            if key in {a.value for a in lineage.MANAGED_ALIASES}
        }
        for alias in lineage.MANAGED_ALIASES:
            if alias.value in touched or not self._moved_by_hand(alias):
                continue
            recorded = self.applied.get(alias.value)
            actual = self.alias(alias)
            self.add(
                Action.PROMOTE,
                f"alias {alias.value} was moved outside the reconciler "
                f"({recorded or 'unset'} → {actual or 'unset'}); restore it{self._heal_note()}",
                before={alias.value: actual},
                after={alias.value: recorded},
                drift=True,
            )


def plan_use_case(
    use_case: UseCase,
    identity: UseCaseIdentity,
    model: RegisteredModelSnapshot | None,
    traffic: TrafficSnapshot,
) -> list[Change]:
    return _UseCasePlan(use_case, identity, model, traffic).build()
