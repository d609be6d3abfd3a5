"""How a conversation is put in front of a causal LM: the same text in training, evaluation
and serving.

A model with a chat template gets it; a base model gets a plain transcript ("System: ...",
"User: ...", then "Assistant:"), so a model fine-tuned here sees at serving time exactly the
framing it was trained on. A base model continuing a transcript tends to write the next turn
too, so generation stops where a new turn would begin (`turn_stops`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_TRANSCRIPT_ROLES = ("System", "User", "Assistant")


def render_messages(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt text for chat `messages` (each with `role` and `content`)."""
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(
                [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
            )
        )
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


def render_prompt(tokenizer: Any, system_prompt: str, user: str) -> str:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": user})
    return render_messages(tokenizer, messages)


def response_text(response: str) -> str:
    """The completion as trained: after "Assistant:" comes a space, then the answer."""
    return f" {response}"


def turn_stops(tokenizer: Any) -> tuple[str, ...]:
    """Where a generated answer ends besides end-of-text: the start of another turn."""
    if getattr(tokenizer, "chat_template", None):
        return ()
    return tuple(f"\n{role}:" for role in _TRANSCRIPT_ROLES)
