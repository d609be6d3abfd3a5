"""The gateway's request log as a `LogSource` for training and evaluation.

The gateway stores the OpenAI-style request; the system prompt is its system message, the
prompt its last user message, and the earlier turns are the context. Blocked, failed and shadow
responses are left out by the reader, and so are outputs a `log_only` intervention let through
with violations recorded: every exchange read here is guardrail-clean, so none of it can teach
a model what its guardrails flag.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.settings import Settings
from reconciler.state_store.database import StateDatabase
from reconciler.training.logs import LoggedExchange


class RequestLogSource:
    def __init__(self, database: StateDatabase) -> None:
        self.database = database

    @classmethod
    def for_settings(cls, settings: Settings) -> RequestLogSource:
        return cls(StateDatabase.of(settings))

    def exchanges(self, use_case: str, *, since: float) -> Iterator[LoggedExchange]:
        from reconciler.gateway.log_queries import read_exchanges

        for logged in read_exchanges(self.database, use_case, since=since, without_violations=True):
            system, prompt, context = _turns(logged.request)
            yield LoggedExchange(
                use_case=logged.use_case,
                model_version=logged.model_version,
                system_prompt=system,
                prompt=prompt,
                context=context,
                output=logged.output,
                rating=logged.rating,
                corrected_output=logged.corrected_output,
                guardrail_flagged=False,  # flagged rows were left out above
                timestamp=logged.ts,
            )


def _turns(request: Mapping[str, Any]) -> tuple[str, str, str]:
    """(system prompt, prompt, earlier turns as context) of a chat or completion request."""
    if isinstance(request.get("prompt"), str):
        return "", str(request["prompt"]), ""
    messages = [m for m in request.get("messages") or [] if isinstance(m, Mapping)]
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    dialogue = [m for m in messages if m.get("role") != "system"]
    users = [i for i, m in enumerate(dialogue) if m.get("role") == "user"]
    if not users:
        return system, "", ""
    last = users[-1]
    context = "\n".join(
        f"{str(m.get('role', '')).capitalize()}: {m.get('content') or ''}" for m in dialogue[:last]
    )
    return system, str(dialogue[last].get("content") or ""), context
