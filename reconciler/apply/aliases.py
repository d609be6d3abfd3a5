"""Alias moves and route writes, each recorded as applied so drift can be told from them;
and the two moves that end a rollout: promote and roll back."""

from __future__ import annotations

import json
from collections.abc import Mapping

from reconciler import lineage
from reconciler.apply.context import UseCaseRun
from reconciler.apply.journal import Cause
from reconciler.errors import ReconcilerError
from reconciler.lineage import Alias
from reconciler.observe.state import Route
from reconciler.rollout.state import Phase, PromotionBasis
from reconciler.traffic.store import Writer


class PromotionNotEarnedError(ReconcilerError):
    """A promotion with no passed analysis at the last step (and no operator's promote)."""


HISTORY_TAG = "reconciler.history"
_HISTORY_KEPT = 20


def set_aliases(
    run: UseCaseRun,
    wanted: Mapping[str, str | None],
    *,
    cause: Cause,
    detail: str | None = None,
) -> None:
    """Move aliases (None removes one) and record the reconciler's view of them.

    The record is written first, as a write-ahead intent: a process killed between two moves
    leaves aliases that differ from the record, which the next plan restores to it - rather
    than a record that calls the reconciler's own half-done moves the work of a hand.
    """
    registry = run.context.registry
    model = run.model()
    current = dict(model.aliases) if model else {}
    recorded = dict((model.applied_aliases() if model else None) or {})
    for alias, version in wanted.items():
        if version is None:
            recorded.pop(alias, None)
        else:
            recorded[alias] = version
    registry.set_model_tag(
        run.model_name, lineage.APPLIED_ALIASES, json.dumps(recorded, sort_keys=True)
    )
    for alias, version in wanted.items():
        if version is None:
            if alias in current:
                registry.delete_alias(run.model_name, alias)
        elif current.get(alias) != version:
            registry.set_alias(run.model_name, alias, version)
    # History is the journal's: a champion is a change when the journal's last champion differs
    # (the registry's, before there is any history). A move cut short by a crash is recorded
    # when it is finished, and a champion moved by hand and restored is no change at all.
    history = run.context.journal.history(run.name)
    old_champion = history[-1].version if history else current.get(Alias.CHAMPION.value)
    new_champion = wanted.get(Alias.CHAMPION.value)
    if new_champion is not None and new_champion != old_champion:
        record_champion(run, new_champion, old_champion, cause, detail)


def record_champion(
    run: UseCaseRun, version: str, previous: str | None, cause: Cause, detail: str | None = None
) -> None:
    """History in the journal, and the last entries on the registered model for the MLflow UI.

    `detail` says why, where the cause alone does not (a break-glass write); by default the
    desired state's commit."""
    commit = f"commit {run.context.desired.source.commit or 'uncommitted'}"
    detail = f"{detail}; {commit}" if detail else commit
    change = run.context.journal.record_champion(run.name, version, previous, cause, detail)
    entries = [
        {"at": c.at, "version": c.version, "previous": c.previous, "cause": c.cause.value}
        for c in run.context.journal.history(run.name)[-_HISTORY_KEPT:]
    ]
    run.context.registry.set_model_tag(run.model_name, HISTORY_TAG, json.dumps(entries))
    run.say(f"champion {previous or '-'} → {version} ({change.cause.value})")


def write_routes(run: UseCaseRun, routes: list[Route] | tuple[Route, ...]) -> None:
    live = [r for r in routes if r.weight > 0]
    run.context.traffic.write(run.name, live, writer=Writer.RECONCILER)


def earned_promotion(run: UseCaseRun, *, candidate: str, champion: str) -> PromotionBasis:
    """What entitles `candidate` to replace `champion`, from the journal; raises if nothing.

    A passed analysis at the final stage of this candidate's rollout against this champion,
    for this desired state - or an operator's promote of that rollout. Checked right before
    the aliases move, whoever asks (the rollout machine, or a plan's promote change).
    """
    basis = run.context.journal.promotion_basis(
        run.name, digest=run.identity.digest, candidate=candidate, champion=champion
    )
    if basis is None:
        raise PromotionNotEarnedError(
            f"{candidate} has no passed analysis at its last step against champion {champion} "
            "for this desired state, and no operator promoted it: the rollout must finish "
            "first (apply again, or `reconciler promote` to skip the remaining steps)"
        )
    return basis


def promote(run: UseCaseRun, *, candidate: str, champion: str) -> None:
    """All traffic to `candidate`, which becomes champion; `champion` becomes previous."""
    basis = earned_promotion(run, candidate=candidate, champion=champion)
    cause = Cause.MANUAL if basis is PromotionBasis.OPERATOR else Cause.COMMIT
    write_routes(run, [Route(candidate, 100)])
    # The order survives a crash between any two writes: `previous` moves before the champion,
    # so a rollback target always exists; the challenger alias goes last, so until the
    # promotion is recorded whole the next plan sees a leftover challenger and finishes it.
    set_aliases(run, {Alias.PREVIOUS.value: champion, Alias.CHAMPION.value: candidate}, cause=cause)
    set_aliases(run, {Alias.CHALLENGER.value: None}, cause=cause)


def rollback(
    run: UseCaseRun,
    *,
    restore: str,
    rejected: str,
    reason: str,
    cause: Cause = Cause.ROLLBACK,
    detail: str | None = None,
) -> None:
    """Send all traffic back to `restore` and reject `rejected` for this desired state.

    The rejection is tagged first: whatever point a crash interrupts this at, the next plan
    knows not to try the candidate again and finishes the rollback.
    """
    registry = run.context.registry
    registry.set_version_tag(run.model_name, rejected, lineage.REJECTED, reason)
    registry.set_version_tag(run.model_name, rejected, lineage.REJECTED_DIGEST, run.identity.digest)
    write_routes(run, [Route(restore, 100)])
    wanted: dict[str, str | None] = {Alias.CHAMPION.value: restore, Alias.CHALLENGER.value: None}
    model = run.model()
    if model is not None and model.aliases.get(Alias.PREVIOUS.value) == restore:
        # Restored from `previous`: it is champion now, not its own fallback (and the rejected
        # version must not become one), so a second rollback finds nothing rather than itself.
        wanted[Alias.PREVIOUS.value] = None
    set_aliases(run, wanted, cause=cause, detail=detail)
    rollout = run.context.journal.rollout(run.name)
    if (
        rollout is not None
        and rollout.active
        and rollout.phase is not Phase.ROLLING_BACK
        and rollout.candidate == rejected
    ):
        # Rolled back from outside the rollout (the guardrail watch, an operator): the rollout
        # is over, and status must not keep calling it in progress.
        ended = rollout.evolve(phase=Phase.ROLLED_BACK, message=f"rolled back: {reason}")
        run.context.journal.save_rollout(ended)
        run.context.journal.clear_control(
            run.name,
            dropped=f"the rollout of {rejected} was rolled back from outside it: {reason}",
        )
    run.say(f"rolled back to {restore}; {rejected} rejected: {reason}")
