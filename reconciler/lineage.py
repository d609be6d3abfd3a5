"""Names of the MLflow tags and aliases the reconciler reads and writes.

The registry is the reconciler's memory: what a version is (its key), how it was judged
(evaluation verdict, rejection) and which aliases the reconciler itself last set (to tell a
hand-moved alias, i.e. drift, from one it moved). Kept in one place so planner, executors and
the MLflow UI agree on them.
"""

from __future__ import annotations

import enum


class Alias(enum.StrEnum):
    CHAMPION = "champion"  # serving
    CHALLENGER = "challenger"  # in rollout
    PREVIOUS = "previous"  # rollback target


MANAGED_ALIASES = (Alias.CHAMPION, Alias.CHALLENGER, Alias.PREVIOUS)

PREFIX = "reconciler."

# Version tags.
KEY = "reconciler.key"  # idempotency key: what this version is
ROLE = "reconciler.role"  # base | trained | external
BASE_KEY = "reconciler.base_key"
BASE_MODEL = "reconciler.base_model"
BASE_REVISION = "reconciler.base_revision"
DESIRED_COMMIT = "reconciler.desired_commit"
USE_CASE = "reconciler.use_case"
EVALUATION_VERDICT = "reconciler.evaluation.verdict"  # passed | failed | incomplete
EVALUATION_DIGEST = "reconciler.evaluation.digest"  # use-case digest the verdict was made for
EVALUATION_REASON = "reconciler.evaluation.reason"
EVALUATION_RUN = "reconciler.evaluation.run_id"
# Which guardrails flagged the candidate's outputs: "category:outputs,..." (searchable) and a
# JSON list of the fired checks with counts and an example output id (bounded in length).
EVALUATION_SAFETY_CATEGORIES = "reconciler.evaluation.safety_categories"
EVALUATION_SAFETY_FINDINGS = "reconciler.evaluation.safety_findings"
REJECTED = "reconciler.rejected"  # reason the candidate was rolled back
REJECTED_DIGEST = "reconciler.rejected.digest"  # use-case digest it was rejected for

# Registered-model tags.
APPLIED_ALIASES = "reconciler.applied_aliases"  # JSON {alias: version} the reconciler last set


class EvaluationVerdict(enum.StrEnum):
    """The evaluation gate's verdict on a version, for one desired-state digest."""

    PASSED = "passed"
    FAILED = "failed"  # final for that digest
    INCOMPLETE = "incomplete"  # the evaluation could not finish (e.g. provider down): retried
