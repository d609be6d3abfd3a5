"""The journal: what the apply engine did, is doing, and was asked to do (the state store).

- operations: one row per executed change (running / succeeded / failed / skipped /
  interrupted), keyed by the desired-state digest, use case and change, with the pid and host
  of the process that ran it, so a row left `running` by a process that died is recognised;
- rollouts: each use case's latest rollout state (the step machine's, as JSON), saved after
  every step so a crash or a pause resumes it;
- judgements: every analysis a rollout made, with each metric's value, threshold, sample size
  and verdict - saved in the same transaction as the state that acted on it, so no stage is
  ever passed without its judgement on record;
- controls: operator requests (`pause`, `resume`, `abort`, `promote`) waiting to be obeyed,
  and what became of each: obeyed, or dropped with why (its rollout ended first);
- history: every champion change with its cause (commit, rollback, manual, drift).

Times come from the injected clock. On a shared store, reconcilers on several hosts read and
write one journal; the per-use-case lock (`locks.py`) keeps them off each other's use cases.
"""

from __future__ import annotations

import enum
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, delete, insert, select, update

from reconciler.clock import SYSTEM_CLOCK, Clock, iso
from reconciler.rollout.state import Control, Judgement, PromotionBasis, RolloutState
from reconciler.state_store import schema
from reconciler.state_store.database import StateDatabase
from reconciler.state_store.upsert import upsert

_operations = schema.operations


class OperationStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    SUSPENDED = "suspended"  # waits for traffic or an operator; the next reconcile goes on
    PROGRESSING = "progressing"  # a rollout advanced one step; the controller goes on
    INTERRUPTED = "interrupted"  # its process died (the lock was free, the pid gone)


class Cause(enum.StrEnum):
    COMMIT = "commit"
    ROLLBACK = "rollback"
    MANUAL = "manual"
    DRIFT = "drift"


@dataclass(frozen=True)
class Operation:
    id: int
    use_case: str
    digest: str
    action: str
    change_index: int
    status: OperationStatus
    message: str
    result: dict[str, Any] | None
    started_at: str
    finished_at: str | None
    pid: int | None = None
    host: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "status": self.status.value,
            "message": self.message,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class ChampionChange:
    use_case: str
    at: str
    version: str
    previous: str | None
    cause: Cause
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "at": self.at,
            "version": self.version,
            "previous": self.previous,
            "cause": self.cause.value,
            "detail": self.detail,
        }


_OPERATION_COLUMNS = (
    _operations.c.id,
    _operations.c.use_case,
    _operations.c.digest,
    _operations.c.action,
    _operations.c.change_index,
    _operations.c.status,
    _operations.c.message,
    _operations.c.result,
    _operations.c.started_at,
    _operations.c.finished_at,
    _operations.c.pid,
    _operations.c.host,
)


def _operation(row: Sequence[Any]) -> Operation:
    return Operation(
        id=row[0],
        use_case=row[1],
        digest=row[2],
        action=row[3],
        change_index=row[4],
        status=OperationStatus(row[5]),
        message=row[6],
        result=json.loads(row[7]) if row[7] else None,
        started_at=row[8],
        finished_at=row[9],
        pid=row[10],
        host=row[11],
    )


class ControlOutcome(enum.StrEnum):
    PENDING = "pending"  # waiting for the rollout's next step
    OBEYED = "obeyed"
    DROPPED = "dropped"  # its rollout ended before it was obeyed


@dataclass(frozen=True)
class ControlRecord:
    """An operator control and what became of it."""

    use_case: str
    control: Control
    requested_at: str
    outcome: ControlOutcome = ControlOutcome.PENDING
    reason: str = ""  # why it was dropped
    settled_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "control": self.control.value,
            "requested_at": self.requested_at,
            "outcome": self.outcome.value,
            "reason": self.reason or None,
            "settled_at": self.settled_at,
        }


class Journal:
    def __init__(self, database: StateDatabase, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.database = database
        self.clock = clock

    def _now(self) -> str:
        return iso(self.clock)

    # -- operations --------------------------------------------------------------------------

    def start(self, use_case: str, digest: str, action: str, change_index: int) -> int:
        values = {
            "use_case": use_case,
            "digest": digest,
            "action": action,
            "change_index": change_index,
            "status": OperationStatus.RUNNING.value,
            "started_at": self._now(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        statement = insert(_operations).values(values).returning(_operations.c.id)
        return int(self.database.write(lambda db: db.execute(statement).scalar_one()))

    def finish(
        self,
        operation: int,
        status: OperationStatus,
        message: str,
        result: dict[str, Any] | None = None,
    ) -> None:
        statement = (
            update(_operations)
            .where(_operations.c.id == operation)
            .values(
                status=status.value,
                message=message,
                result=json.dumps(result) if result else None,
                finished_at=self._now(),
            )
        )
        self.database.write(lambda db: db.execute(statement))

    def last_operation(self, use_case: str, *, digest: str | None = None) -> Operation | None:
        query = select(*_OPERATION_COLUMNS).where(_operations.c.use_case == use_case)
        if digest is not None:
            query = query.where(_operations.c.digest == digest)
        query = query.order_by(_operations.c.id.desc()).limit(1)
        row = self.database.read(lambda db: db.execute(query).first())
        return None if row is None else _operation(row)

    def interrupt_orphans(self, use_case: str) -> int:
        """Mark `running` rows of `use_case` interrupted. Call it holding the use case's lock:
        then no live process can be running them, whatever their rows say."""
        statement = (
            update(_operations)
            .where(
                _operations.c.use_case == use_case,
                _operations.c.status == OperationStatus.RUNNING.value,
            )
            .values(
                status=OperationStatus.INTERRUPTED.value,
                finished_at=self._now(),
                message=case(
                    (_operations.c.message == "", "its process stopped before it finished"),
                    else_=_operations.c.message,
                ),
            )
        )
        return int(self.database.write(lambda db: db.execute(statement).rowcount))

    # -- rollouts ----------------------------------------------------------------------------

    def rollout(self, use_case: str) -> RolloutState | None:
        query = select(schema.rollouts.c.state).where(schema.rollouts.c.use_case == use_case)
        state = self.database.read(lambda db: db.execute(query).scalar())
        return None if state is None else RolloutState.from_json(json.loads(state))

    def save_rollout(self, state: RolloutState, judgement: Judgement | None = None) -> None:
        """The rollout's new state and the judgement it made, in one transaction."""
        row = {
            "use_case": state.use_case,
            "digest": state.digest,
            "candidate": state.candidate,
            "champion": state.champion,
            "phase": state.phase.value,
            "state": json.dumps(state.as_json()),
            "updated_at": self._now(),
        }

        def save(db: Connection) -> None:
            db.execute(upsert(db, schema.rollouts, row, key=("use_case",)))
            if judgement is not None:
                db.execute(
                    insert(schema.judgements).values(
                        use_case=judgement.use_case,
                        digest=judgement.digest,
                        candidate=judgement.candidate,
                        champion=judgement.champion,
                        stage=judgement.stage,
                        final=judgement.final,
                        outcome=judgement.outcome.value,
                        at=judgement.window_end,
                        body=json.dumps(judgement.as_json()),
                    )
                )

        self.database.write(save)

    def judgements(self, use_case: str) -> list[Judgement]:
        table = schema.judgements
        query = select(table.c.body).where(table.c.use_case == use_case).order_by(table.c.id)
        bodies = self.database.read(lambda db: list(db.scalars(query)))
        return [Judgement.from_json(json.loads(body)) for body in bodies]

    def promotion_basis(
        self, use_case: str, *, digest: str, candidate: str, champion: str
    ) -> PromotionBasis | None:
        """What earns promoting `candidate` over `champion` for this desired state: a passed
        analysis at the final stage, or an operator's promote of this very rollout."""
        table = schema.judgements
        query = (
            select(table.c.id)
            .where(
                table.c.use_case == use_case,
                table.c.digest == digest,
                table.c.candidate == candidate,
                table.c.champion == champion,
                table.c.final.is_(True),
                table.c.outcome == "Successful",
            )
            .limit(1)
        )
        if self.database.read(lambda db: db.execute(query).first()) is not None:
            return PromotionBasis.ANALYSIS
        state = self.rollout(use_case)
        if (
            state is not None
            and state.same_rollout(digest=digest, candidate=candidate, champion=champion)
            and state.promoted_by is PromotionBasis.OPERATOR
        ):
            return PromotionBasis.OPERATOR
        return None

    # -- controls ----------------------------------------------------------------------------

    def request(self, use_case: str, control: Control) -> str:
        """Ask for `control`; returns when it was asked, which names it in `control_record`."""
        now = self._now()
        row = {"use_case": use_case, "command": control.value, "requested_at": now}
        self.database.write(
            lambda db: db.execute(upsert(db, schema.controls, row, key=("use_case",)))
        )
        return now

    def pending_control(self, use_case: str) -> Control | None:
        table = schema.controls
        query = select(table.c.command).where(table.c.use_case == use_case)
        command = self.database.read(lambda db: db.execute(query).scalar())
        return None if command is None else Control(command)

    def clear_control(
        self, use_case: str, control: Control | None = None, *, dropped: str | None = None
    ) -> None:
        """Settle the pending control: obeyed, or - with `dropped`, the reason - dropped
        unobeyed. With `control`, only if it is still that one (a newer request that arrived
        meanwhile is kept)."""
        table = schema.controls
        where = [table.c.use_case == use_case]
        if control is not None:
            where.append(table.c.command == control.value)
        settled_at = self._now()

        def settle(db: Connection) -> None:
            pending = db.execute(
                select(table.c.command, table.c.requested_at).where(*where)
            ).first()
            if pending is None:
                return
            db.execute(delete(table).where(*where))
            db.execute(
                insert(schema.control_outcomes).values(
                    use_case=use_case,
                    command=pending[0],
                    requested_at=pending[1],
                    settled_at=settled_at,
                    outcome=(ControlOutcome.OBEYED if dropped is None else ControlOutcome.DROPPED),
                    reason=dropped or "",
                )
            )

        self.database.write(settle)

    def control_record(
        self, use_case: str, requested_at: str | None = None
    ) -> ControlRecord | None:
        """The control asked at `requested_at` (default: the latest), pending or settled."""
        pending, outcomes = schema.controls, schema.control_outcomes

        def read(db: Connection) -> ControlRecord | None:
            query = select(pending.c.command, pending.c.requested_at).where(
                pending.c.use_case == use_case
            )
            if requested_at is not None:
                query = query.where(pending.c.requested_at == requested_at)
            waiting = db.execute(query).first()
            if waiting is not None:
                return ControlRecord(use_case, Control(waiting[0]), waiting[1])
            settled_query = (
                select(
                    outcomes.c.command,
                    outcomes.c.requested_at,
                    outcomes.c.outcome,
                    outcomes.c.reason,
                    outcomes.c.settled_at,
                )
                .where(outcomes.c.use_case == use_case)
                .order_by(outcomes.c.id.desc())
                .limit(1)
            )
            if requested_at is not None:
                settled_query = settled_query.where(outcomes.c.requested_at == requested_at)
            row = db.execute(settled_query).first()
            if row is None:
                return None
            command, asked_at, outcome, reason, settled_at = row
            return ControlRecord(
                use_case, Control(command), asked_at, ControlOutcome(outcome), reason, settled_at
            )

        return self.database.read(read)

    # -- history -----------------------------------------------------------------------------

    def record_champion(
        self, use_case: str, version: str, previous: str | None, cause: Cause, detail: str
    ) -> ChampionChange:
        change = ChampionChange(use_case, self._now(), version, previous, cause, detail)
        statement = insert(schema.history).values(
            use_case=use_case,
            at=change.at,
            version=version,
            previous=previous,
            cause=cause.value,
            detail=detail,
        )
        self.database.write(lambda db: db.execute(statement))
        return change

    def history(self, use_case: str) -> list[ChampionChange]:
        table = schema.history
        query = (
            select(
                table.c.use_case,
                table.c.at,
                table.c.version,
                table.c.previous,
                table.c.cause,
                table.c.detail,
            )
            .where(table.c.use_case == use_case)
            .order_by(table.c.id)
        )
        rows = self.database.read(lambda db: db.execute(query).all())
        return [ChampionChange(r[0], r[1], r[2], r[3], Cause(r[4]), r[5]) for r in rows]
