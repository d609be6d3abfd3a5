"""The gateway's real request log as training data: turns, feedback, and what never gets in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.gateway.request_log import Feedback, LoggedRequest, RequestLog, RequestStatus
from reconciler.state_store.database import StateDatabase
from reconciler.training.examples import Example, QualityFilter, examples_from_logs
from reconciler.training.request_log_source import RequestLogSource

NOW = time.time()
SYSTEM = "You are an NPC in Emberfall."


def chat(*turns: tuple[str, str]) -> dict[str, Any]:
    return {"model": "npc", "messages": [{"role": r, "content": c} for r, c in turns]}


def row(id: str, request: dict[str, Any], output: str, **fields: Any) -> LoggedRequest:
    values: dict[str, Any] = {
        "id": id,
        "ts": NOW - 60,
        "use_case": "npc",
        "model_version": "3",
        "endpoint": "chat",
        "request": request,
        "status": RequestStatus.OK,
        "latency_ms": 12.0,
        "guardrail": "pass",
        "route_generation": 1,
        "output": output,
    }
    values.update(fields)
    return LoggedRequest(**values)


@pytest.fixture
def request_log(tmp_path: Path) -> Iterator[StateDatabase]:
    database = StateDatabase(f"sqlite:///{tmp_path / 'state.db'}")
    log = RequestLog(database, retention_days=60)
    log.start()
    try:
        ask = chat(("system", SYSTEM), ("user", "Where is the inn?"))
        log.append(row("clean", ask, "Down the lane."))
        log.append(
            row(
                "dialogue",
                chat(
                    ("system", SYSTEM),
                    ("user", "Hello."),
                    ("assistant", "Well met."),
                    ("user", "Any work?"),
                ),
                "Try the guild board.",
            )
        )
        log.append(
            row("completion", {"model": "npc", "prompt": "Name a tavern."}, "The Glowing Coal.")
        )
        # Let through by a log_only intervention, with what it violated recorded.
        log.append(row("log-only", ask, "Go hurt your neighbour.", violations=("violence",)))
        log.append(row("blocked", ask, "I cannot say that.", guardrail="block"))
        log.append(row("failed", ask, None, status=RequestStatus.ERROR, guardrail="none"))
        log.append(row("shadow", ask, "Shadow answer.", shadow=True, mirror_of="clean"))
        log.append(row("other", ask, "Elsewhere.", use_case="story"))
        log.append(row("old", ask, "Long ago.", ts=NOW - 40 * 86_400))
        log.flush()
        for target in ("clean", "dialogue", "completion", "log-only"):
            assert log.record_feedback(Feedback(target, rating=0.9)).result(5)
        log.record_feedback(Feedback("dialogue", corrected_output="The guild board, by the well."))
        log.flush()
    finally:
        log.stop()
    return database


def test_exchanges_split_the_request_into_system_prompt_and_context(
    request_log: StateDatabase,
) -> None:
    found = {
        e.output: e for e in RequestLogSource(request_log).exchanges("npc", since=NOW - 30 * 86_400)
    }
    assert set(found) == {"Down the lane.", "Try the guild board.", "The Glowing Coal."}
    dialogue = found["Try the guild board."]
    assert (dialogue.system_prompt, dialogue.prompt) == (SYSTEM, "Any work?")
    assert dialogue.context == "User: Hello.\nAssistant: Well met."
    assert dialogue.best_output == "The guild board, by the well."
    assert dialogue.rating == 0.9 and dialogue.model_version == "3"
    completion = found["The Glowing Coal."]
    assert (completion.system_prompt, completion.prompt, completion.context) == (
        "",
        "Name a tavern.",
        "",
    )


def test_flagged_blocked_failed_and_shadow_outputs_never_become_examples(
    request_log: StateDatabase,
) -> None:
    exchanges = list(RequestLogSource(request_log).exchanges("npc", since=NOW - 30 * 86_400))
    assert all(not e.guardrail_flagged for e in exchanges)
    examples = examples_from_logs(
        exchanges, QualityFilter(min_rating=0.7), default_system_prompt="default"
    )
    responses = {e.response for e in examples}
    assert "Go hurt your neighbour." not in responses  # rated 0.9, but a guardrail flagged it
    assert responses == {"Down the lane.", "The guild board, by the well.", "The Glowing Coal."}
    assert Example(SYSTEM, "Where is the inn?", "Down the lane.", "logs") in examples
    assert Example("default", "Name a tavern.", "The Glowing Coal.", "logs") in examples


def test_exchanges_are_read_since_the_given_time(
    request_log: StateDatabase, tmp_path: Path
) -> None:
    source = RequestLogSource(request_log)
    assert "Long ago." in {e.output for e in source.exchanges("npc", since=NOW - 50 * 86_400)}
    assert list(source.exchanges("npc", since=NOW)) == []
    absent = StateDatabase(f"sqlite:///{tmp_path / 'absent' / 'state.db'}")
    assert list(RequestLogSource(absent).exchanges("npc", since=0)) == []
