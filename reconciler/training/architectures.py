"""Which modules LoRA adapts, per architecture: the attention projections.

Adapting the query and value projections is the LoRA paper's default and what most recipes
use; GPT-2 fuses q, k and v into one `c_attn`, GPT-NeoX/Falcon/Bloom into `query_key_value`.
`spec.training.lora.targetModules` overrides the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn",),
    "gpt_bigcode": ("c_attn",),
    "llama": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "mixtral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "qwen3": ("q_proj", "v_proj"),
    "gemma": ("q_proj", "v_proj"),
    "gemma2": ("q_proj", "v_proj"),
    "phi3": ("qkv_proj",),
    "opt": ("q_proj", "v_proj"),
    "gpt_neox": ("query_key_value",),
    "falcon": ("query_key_value",),
    "bloom": ("query_key_value",),
    "gptj": ("q_proj", "v_proj"),
}


class UnknownArchitectureError(ValueError):
    """No default LoRA targets for this architecture and none were given."""


def lora_target_modules(model: Any, override: Sequence[str] | None) -> list[str]:
    if override:
        return list(override)
    model_type = str(getattr(model.config, "model_type", ""))
    targets = LORA_TARGETS.get(model_type)
    if targets is None:
        raise UnknownArchitectureError(
            f"no default LoRA target modules for architecture {model_type!r}; "
            "set spec.training.lora.targetModules"
        )
    return list(targets)
