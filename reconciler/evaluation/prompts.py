"""The prompts an evaluation runs: the use case's JSONL plus a sample of recent logged prompts."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.spec.datasets import DatasetKind, dataset_records
from reconciler.spec.model import UseCase
from reconciler.training.examples import user_text
from reconciler.training.logs import LogSource

# Logged prompts are sampled from this far back.
LOGGED_PROMPT_WINDOW_SECONDS = 7 * 86400.0


@dataclass(frozen=True)
class EvaluationPrompt:
    prompt: str
    reference: str | None
    origin: str  # "dataset" | "logs"


def dataset_prompts(raw: bytes, *, path: str) -> list[EvaluationPrompt]:
    """The prompts (and references) of an evaluation JSONL dataset, from its bytes."""
    return [
        EvaluationPrompt(r.values["prompt"], r.values.get("reference") or None, "dataset")
        for r in dataset_records(raw, DatasetKind.EVALUATION, path=path)
    ]


def read_evaluation_prompts(path: Path) -> list[EvaluationPrompt]:
    return dataset_prompts(path.read_bytes(), path=str(path))


def sample_logged_prompts(
    logs: LogSource,
    use_case: str,
    count: int,
    *,
    seed: int,
    now: float | None = None,
    exclude: Collection[str] = (),
) -> list[EvaluationPrompt]:
    """Up to `count` distinct recent prompts not in `exclude`, chosen by a seeded hash (same
    logs, same pick). Excluded before choosing, so a logged copy of a dataset prompt never
    takes a place in the sample."""
    if count <= 0:
        return []
    since = (time.time() if now is None else now) - LOGGED_PROMPT_WINDOW_SECONDS
    distinct = {
        user_text(e.prompt, e.context)
        for e in logs.exchanges(use_case, since=since)
        if not e.guardrail_flagged
    } - set(exclude)
    ranked = sorted(distinct, key=lambda p: hashlib.sha256(f"{seed}\0{p}".encode()).hexdigest())
    return [EvaluationPrompt(p, None, "logs") for p in ranked[:count]]


def evaluation_prompts(
    use_case: UseCase, *, datasets: Mapping[str, bytes], logs: LogSource | None, seed: int = 0
) -> list[EvaluationPrompt]:
    """The use case's dataset prompts (`datasets`: contents by path, as loaded with the
    desired state), then a sample of recent logged ones."""
    evaluation = use_case.spec.evaluation
    prompts = dataset_prompts(datasets[evaluation.prompts], path=evaluation.prompts)
    if logs is not None:
        prompts += sample_logged_prompts(
            logs,
            use_case.name,
            evaluation.sample_logged_prompts,
            seed=seed,
            exclude={p.prompt for p in prompts},
        )
    return prompts
