"""The prompts an evaluation runs: the use case's JSONL plus a sample of recent logged prompts."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

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


def read_evaluation_prompts(path: Path) -> list[EvaluationPrompt]:
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record.get("prompt"), str):
            raise ValueError(f"{path}:{number}: an evaluation prompt needs 'prompt'")
        reference = record.get("reference")
        prompts.append(
            EvaluationPrompt(record["prompt"], str(reference) if reference else None, "dataset")
        )
    return prompts


def sample_logged_prompts(
    logs: LogSource, use_case: str, count: int, *, seed: int, now: float | None = None
) -> list[EvaluationPrompt]:
    """Up to `count` distinct recent prompts, chosen by a seeded hash (same logs, same pick)."""
    if count <= 0:
        return []
    since = (time.time() if now is None else now) - LOGGED_PROMPT_WINDOW_SECONDS
    distinct = {
        user_text(e.prompt, e.context)
        for e in logs.exchanges(use_case, since=since)
        if not e.guardrail_flagged
    }
    ranked = sorted(distinct, key=lambda p: hashlib.sha256(f"{seed}\0{p}".encode()).hexdigest())
    return [EvaluationPrompt(p, None, "logs") for p in ranked[:count]]


def evaluation_prompts(
    use_case: UseCase, *, repo: Path, logs: LogSource | None, seed: int = 0
) -> list[EvaluationPrompt]:
    evaluation = use_case.spec.evaluation
    prompts = read_evaluation_prompts(repo / evaluation.prompts)
    if logs is not None:
        known = {p.prompt for p in prompts}
        sampled = sample_logged_prompts(
            logs, use_case.name, evaluation.sample_logged_prompts, seed=seed
        )
        prompts += [p for p in sampled if p.prompt not in known]
    return prompts
