"""Train until a candidate passes: the retrain loop above training and evaluation.

Each attempt trains a version (more steps and a lower learning rate than the one before, up to
`retrain.maxAttempts`) and judges it with the evaluation gate. Each attempt is its own run and
version; a crash resumes at the attempt it stopped in, because versions are found by key and
attempt, and a verdict already recorded for this use-case digest is reused rather than measured
again (an `incomplete` one is not a verdict: that attempt is evaluated again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler import lineage
from reconciler.evaluation.gate import evaluate
from reconciler.evaluation.safety import SafetyJudge
from reconciler.settings import Settings
from reconciler.spec.identity import UseCaseIdentity
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase
from reconciler.tracking.mlflow_tracking import Tracking
from reconciler.training.logs import LogSource
from reconciler.training.pipeline import train


@dataclass(frozen=True)
class TrainingOutcome:
    version: str
    verdict: lineage.EvaluationVerdict
    reason: str
    attempts: int


def train_until_passing(
    use_case: UseCase,
    identity: UseCaseIdentity,
    desired: DesiredState,
    *,
    repo: Path,
    settings: Settings,
    base_version: str,
    champion_version: str | None,
    logs: LogSource | None = None,
    progress: bool = True,
    judge_safety: SafetyJudge | None = None,
    tracking: Tracking | None = None,
) -> TrainingOutcome:
    """Train, evaluate, and retrain with adjusted settings until a version passes.

    Each attempt is its own run and version; a crash resumes at the attempt it stopped in,
    because versions are found by key and attempt, and a verdict already recorded for this
    use-case digest is reused rather than measured again.
    """
    tracking = tracking or Tracking(settings)
    name = use_case.spec.registered_model
    attempts = use_case.spec.training.retrain.max_attempts
    version, verdict, reason = base_version, lineage.EvaluationVerdict.FAILED, "not trained"
    for attempt in range(1, attempts + 1):
        version = train(
            use_case,
            identity,
            desired,
            repo=repo,
            settings=settings,
            base_version=base_version,
            logs=logs,
            progress=progress,
            attempt=attempt,
            tracking=tracking,
        )
        tags = tracking.get_version(name, version).tags
        if tags.get(lineage.EVALUATION_DIGEST) == identity.digest and tags.get(
            lineage.EVALUATION_VERDICT
        ) in (lineage.EvaluationVerdict.PASSED, lineage.EvaluationVerdict.FAILED):
            verdict = lineage.EvaluationVerdict(tags[lineage.EVALUATION_VERDICT])
            reason = tags.get(lineage.EVALUATION_REASON, "")
        else:
            result = evaluate(
                use_case,
                identity,
                desired,
                repo=repo,
                settings=settings,
                candidate_version=version,
                champion_version=champion_version,
                logs=logs,
                judge_safety=judge_safety,
                tracking=tracking,
            )
            verdict, reason = result.verdict, result.reason
        if verdict is lineage.EvaluationVerdict.PASSED:
            return TrainingOutcome(version, verdict, reason, attempt)
    return TrainingOutcome(version, verdict, reason, attempts)
