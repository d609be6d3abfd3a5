"""Plan, Change and Action: plain data with no I/O.

A `Change` records what one action will do to one use case:

    action     before                               after
    ---------  -----------------------------------  ------------------------------------------
    register   None, or the registered model's      the model version to register (source,
               version count                        reference, revision, key)
    train      None                                 the version to train (key, base, method,
                                                    dataset digests)
    evaluate   the candidate and its stale verdict  candidate, baseline (champion), thresholds
    promote    the aliases as observed              the aliases as they will be
    shift      routes (and aliases) as observed     the challenger, the remaining steps, the
                                                    final routes
    rollback   aliases and routes as observed       aliases and routes restored
    noop       None                                 None

`before` is also the change's precondition: the state it expects when it starts, i.e. after
the earlier changes of the same plan. The executor refuses a change whose `before` no longer
holds, and skips one whose `after` already holds (a resumed apply). `reason` is for humans
and is never used for decisions.
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

PLAN_FORMAT_VERSION: Final = 1
NEW_VERSION = "(new)"  # the candidate this plan creates; its number is known only when applied
NEW_BASE = "(new base)"  # the base version this plan registers


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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Change(_Frozen):
    use_case: str
    action: Action
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    drift: bool = False


class PlanSource(_Frozen):
    """What the desired state was read from."""

    repo: str
    ref: str | None
    commit: str | None
    dirty: bool
    digest: str


class Plan(_Frozen):
    format_version: Literal[1] = PLAN_FORMAT_VERSION
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

    def summary(self) -> dict[str, Any]:
        counts = Counter(c.action.value for c in self.pending)
        in_sync = [
            name for name in self.use_cases() if not any(c.use_case == name for c in self.pending)
        ]
        return {
            "changes": len(self.pending),
            "use_cases": len(self.use_cases()),
            "in_sync": len(in_sync),
            "drift": sum(1 for c in self.pending if c.drift),
            "by_action": {a.value: counts[a.value] for a in Action if a is not Action.NOOP},
        }
