"""Logged exchanges as training and evaluation read them, and where they come from.

`LogSource` is the one thing training and evaluation need from a request log: the exchanges of
a use case since a time. The gateway's SQLite request log is one source
(`request_log_source.py`); a JSONL file of the same shape is another, for exports, fixtures
and logs collected elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class LoggedExchange:
    use_case: str
    model_version: str
    system_prompt: str
    prompt: str
    context: str
    output: str
    rating: float | None
    corrected_output: str | None
    guardrail_flagged: bool
    timestamp: float

    @property
    def best_output(self) -> str:
        """What the model should have said: the person's correction when there is one."""
        return self.corrected_output if self.corrected_output else self.output


class LogSource(Protocol):
    def exchanges(self, use_case: str, *, since: float) -> Iterator[LoggedExchange]:
        """Exchanges of `use_case` logged at or after `since` (seconds since the epoch)."""
        ...


class JsonlLogSource:
    """Exchanges from a JSONL file, one object per line with `LoggedExchange`'s fields."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exchanges(self, use_case: str, *, since: float) -> Iterator[LoggedExchange]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    exchange = exchange_from_json(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{self.path}:{number}: not a logged exchange: {exc}") from exc
                if exchange.use_case == use_case and exchange.timestamp >= since:
                    yield exchange


def exchange_from_json(record: dict[str, Any]) -> LoggedExchange:
    rating = record.get("rating")
    corrected = record.get("corrected_output")
    return LoggedExchange(
        use_case=str(record["use_case"]),
        model_version=str(record.get("model_version", "")),
        system_prompt=str(record.get("system_prompt") or ""),
        prompt=str(record["prompt"]),
        context=str(record.get("context") or ""),
        output=str(record.get("output") or ""),
        rating=float(rating) if rating is not None else None,
        corrected_output=str(corrected) if corrected else None,
        guardrail_flagged=bool(record.get("guardrail_flagged", False)),
        timestamp=float(record["timestamp"]),
    )


def exchange_to_json(exchange: LoggedExchange) -> dict[str, Any]:
    return {
        "use_case": exchange.use_case,
        "model_version": exchange.model_version,
        "system_prompt": exchange.system_prompt,
        "prompt": exchange.prompt,
        "context": exchange.context,
        "output": exchange.output,
        "rating": exchange.rating,
        "corrected_output": exchange.corrected_output,
        "guardrail_flagged": exchange.guardrail_flagged,
        "timestamp": exchange.timestamp,
    }
