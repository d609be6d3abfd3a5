"""Loading transformers models, one load at a time per process.

`from_pretrained` in transformers 5 changes process-wide state while it runs: it creates the
parameters under a meta-device context and swaps `torch.linspace` and the `torch.nn.init`
functions for the duration. Two loads on two threads - the gateway warming a canary while an
apply loads a base to fine-tune, or the guardrails loading their embedding model - can then
see each other's patches, and a model comes out with parameters on the meta device (or left
uninitialised). So every model this package creates is created under `LOAD_LOCK`; what runs
afterwards (generation, training, embedding) is unaffected and stays concurrent.

Importing transformers is also not thread-safe the first time (its names resolve lazily), so
the first import happens under the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOAD_LOCK = threading.RLock()


@contextmanager
def loading_models() -> Iterator[None]:
    """Hold the process-wide lock while creating or loading a model."""
    with LOAD_LOCK:
        yield


def load_causal_lm(folder: Path, tokenizer_folder: Path | None = None) -> tuple[Any, Any]:
    """A causal LM and its tokenizer (with a pad token) from Hugging Face-format folders."""
    with loading_models():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder or folder))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model: Any = AutoModelForCausalLM.from_pretrained(str(folder))
    model.eval()
    return model, tokenizer


def context_length(model: Any) -> int | None:
    """How many positions the model can attend to (None when its config does not say): no
    sequence it is given - a prompt plus new tokens, a training example - may be longer."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def fitting_length(model: Any, wanted: int) -> int:
    """`wanted`, or the model's context length when that is shorter."""
    limit = context_length(model)
    return wanted if limit is None else min(wanted, limit)
