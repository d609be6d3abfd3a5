"""Evaluation prompts: the use case's JSONL plus a seeded sample of recent logged prompts,
read from the gateway's real request log."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from reconciler.evaluation.prompts import (
    LOGGED_PROMPT_WINDOW_SECONDS,
    evaluation_prompts,
    read_evaluation_prompts,
)
from reconciler.gateway.request_log import LoggedRequest, RequestLog, RequestStatus
from reconciler.spec.loader import load_desired_state
from reconciler.spec.model import UseCase
from reconciler.state_store.database import StateDatabase
from reconciler.training.request_log_source import RequestLogSource

NOW = time.time()
RECENT = [f"Traveller {i}: which road leads to Varrow?" for i in range(12)]


def logged(id: str, prompt: str, ts: float, **fields: object) -> LoggedRequest:
    values: dict[str, object] = {
        "id": id,
        "ts": ts,
        "use_case": "npc-dialogue",
        "model_version": "1",
        "endpoint": "chat",
        "request": {"model": "npc-dialogue", "messages": [{"role": "user", "content": prompt}]},
        "status": RequestStatus.OK,
        "latency_ms": 5.0,
        "guardrail": "pass",
        "route_generation": 1,
        "output": "The east road.",
    }
    values.update(fields)
    return LoggedRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
def npc(shipped_repo: Path) -> UseCase:
    loaded = load_desired_state(shipped_repo)
    assert loaded.state is not None
    return loaded.state.use_case("npc-dialogue")


@pytest.fixture
def contents(shipped_repo: Path) -> Mapping[str, bytes]:
    """The datasets as the desired state loaded them."""
    loaded = load_desired_state(shipped_repo)
    assert loaded.state is not None
    return loaded.state.dataset_contents


@pytest.fixture
def source(tmp_path: Path, shipped_repo: Path, npc: UseCase) -> RequestLogSource:
    dataset_prompt = read_evaluation_prompts(shipped_repo / npc.spec.evaluation.prompts)[0].prompt
    database = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    log = RequestLog(database)
    log.start()
    try:
        for i, prompt in enumerate(RECENT):
            log.append(logged(f"r{i}", prompt, NOW - 3600 - i))
            log.append(logged(f"r{i}-again", prompt, NOW - 7200 - i))  # asked twice
        stale = NOW - LOGGED_PROMPT_WINDOW_SECONDS - 86_400
        log.append(logged("stale", "A prompt from last month?", stale))
        log.append(logged("known", dataset_prompt, NOW - 60))
        log.append(logged("other", "Another use case's prompt?", NOW, use_case="story"))
        log.flush()
    finally:
        log.stop()
    return RequestLogSource(database)


def with_sample(use_case: UseCase, count: int) -> UseCase:
    evaluation = use_case.spec.evaluation.model_copy(update={"sample_logged_prompts": count})
    return use_case.model_copy(
        update={"spec": use_case.spec.model_copy(update={"evaluation": evaluation})}
    )


def test_recent_distinct_logged_prompts_are_sampled_after_the_dataset(
    shipped_repo: Path, npc: UseCase, source: RequestLogSource, contents: Mapping[str, bytes]
) -> None:
    dataset = read_evaluation_prompts(shipped_repo / npc.spec.evaluation.prompts)
    prompts = evaluation_prompts(with_sample(npc, 5), datasets=contents, logs=source, seed=1)
    assert prompts[: len(dataset)] == dataset
    sampled = prompts[len(dataset) :]
    assert len(sampled) == 5
    assert all(p.origin == "logs" and p.reference is None for p in sampled)
    assert {p.prompt for p in sampled} <= set(RECENT)  # recent, this use case, not the dataset's
    assert len({p.prompt for p in sampled}) == 5  # a prompt asked twice is sampled once
    again = evaluation_prompts(with_sample(npc, 5), datasets=contents, logs=source, seed=1)
    assert again == prompts
    other_seed = evaluation_prompts(with_sample(npc, 5), datasets=contents, logs=source, seed=2)
    assert other_seed[len(dataset) :] != sampled
    # The logged copy of a dataset prompt never takes one of the places, whatever the seed.
    for seed in range(20):
        chosen = evaluation_prompts(with_sample(npc, 5), datasets=contents, logs=source, seed=seed)
        assert len(chosen) == len(dataset) + 5


def test_asking_for_more_than_there_is_takes_every_recent_prompt_once(
    shipped_repo: Path, npc: UseCase, source: RequestLogSource, contents: Mapping[str, bytes]
) -> None:
    dataset = read_evaluation_prompts(shipped_repo / npc.spec.evaluation.prompts)
    prompts = evaluation_prompts(with_sample(npc, 100), datasets=contents, logs=source, seed=0)
    sampled = [p.prompt for p in prompts[len(dataset) :]]
    assert sorted(sampled) == sorted(RECENT)
    assert evaluation_prompts(with_sample(npc, 0), datasets=contents, logs=source) == dataset
    assert evaluation_prompts(with_sample(npc, 5), datasets=contents, logs=None) == dataset
