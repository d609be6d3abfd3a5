"""Alias moves and route writes, each recorded as applied so drift can be told from them."""

from __future__ import annotations

import json
from collections.abc import Mapping

from reconciler import lineage
from reconciler.apply.journal import Cause
from reconciler.apply.run import UseCaseRun
from reconciler.lineage import Alias
from reconciler.observe.state import Route
from reconciler.traffic.store import Writer

HISTORY_TAG = "reconciler.history"
_HISTORY_KEPT = 20


def set_aliases(run: UseCaseRun, wanted: Mapping[str, str | None], *, cause: Cause) -> None:
    """Move aliases (None removes one) and record the reconciler's view of them."""
    registry = run.context.registry
    model = run.model()
    current = dict(model.aliases) if model else {}
    recorded = dict((model.applied_aliases() if model else None) or {})
    old_champion = current.get(Alias.CHAMPION.value)
    for alias, version in wanted.items():
        if version is None:
            if alias in current:
                registry.delete_alias(run.model_name, alias)
            recorded.pop(alias, None)
        else:
            if current.get(alias) != version:
                registry.set_alias(run.model_name, alias, version)
            recorded[alias] = version
    registry.set_model_tag(
        run.model_name, lineage.APPLIED_ALIASES, json.dumps(recorded, sort_keys=True)
    )
    new_champion = wanted.get(Alias.CHAMPION.value, old_champion)
    if new_champion is not None and new_champion != old_champion:
        record_champion(run, new_champion, old_champion, cause)


def record_champion(run: UseCaseRun, version: str, previous: str | None, cause: Cause) -> None:
    """History in the journal, and the last entries on the registered model for the MLflow UI."""
    detail = f"commit {run.context.desired.source.commit or 'uncommitted'}"
    change = run.context.journal.record_champion(run.name, version, previous, cause, detail)
    entries = [
        {"at": c.at, "version": c.version, "previous": c.previous, "cause": c.cause.value}
        for c in run.context.journal.history(run.name)[-_HISTORY_KEPT:]
    ]
    run.context.registry.set_model_tag(run.model_name, HISTORY_TAG, json.dumps(entries))
    run.say(f"champion {previous or '-'} → {version} ({change.cause.value})")


def write_routes(run: UseCaseRun, routes: list[Route]) -> None:
    live = [r for r in routes if r.weight > 0]
    run.context.traffic.write(run.name, live, writer=Writer.RECONCILER)


def rollback(
    run: UseCaseRun, *, restore: str, rejected: str, reason: str, cause: Cause = Cause.ROLLBACK
) -> None:
    """Send all traffic back to `restore` and reject `rejected` for this desired state.

    The rejection is tagged first: whatever point a crash interrupts this at, the next plan
    knows not to try the candidate again and finishes the rollback.
    """
    registry = run.context.registry
    registry.set_version_tag(run.model_name, rejected, lineage.REJECTED, reason)
    registry.set_version_tag(run.model_name, rejected, lineage.REJECTED_DIGEST, run.identity.digest)
    write_routes(run, [Route(restore, 100)])
    set_aliases(
        run,
        {Alias.CHAMPION.value: restore, Alias.CHALLENGER.value: None},
        cause=cause,
    )
    run.context.journal.clear_rollout(run.name)
    run.say(f"rolled back to {restore}; {rejected} rejected: {reason}")
