"""Evaluation throughput: batched generation + scoring vs one prompt at a time, 200 prompts.

Builds the tiny base model, generates for 200 prompts with the evaluation's batched generator
and scores candidate-vs-reference similarity in one embedding call; then does the same one
prompt (and one embedding pair) at a time. Prints figures and, last, a JSON line.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = 200


def main() -> None:
    from reconciler.evaluation.generation import LocalGenerator
    from reconciler.evaluation.scoring import pairwise_similarity
    from reconciler.guardrails.embeddings import default_embedder
    from reconciler.model_loading import load_causal_lm
    from reconciler.spec.model import Generation
    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    root = Path(__file__).resolve().parents[1]
    folder = Path(tempfile.mkdtemp()) / "tiny"
    build_tiny_model(folder, extra_texts=shipped_dataset_texts(root / "desired_state/datasets"))
    model, tokenizer = load_causal_lm(folder)
    generation = Generation(system_prompt="You are an NPC.", temperature=0.8, max_new_tokens=32)
    prompts = [f"Traveller {i} asks: where is the inn?" for i in range(PROMPTS)]
    references = ["The Glowing Coal, just down the lane."] * PROMPTS
    embedder = default_embedder()
    embedder.encode(["warm up"])

    batched = LocalGenerator(model, tokenizer, generation, batch_size=100)
    started = time.perf_counter()
    outputs = [g.text for g in batched.generate(prompts, seed=0)]
    pairwise_similarity(embedder, outputs, references)
    batched_seconds = time.perf_counter() - started

    single = LocalGenerator(model, tokenizer, generation, batch_size=1)
    started = time.perf_counter()
    for prompt, reference in zip(prompts, references, strict=True):
        text = single.generate([prompt], seed=0)[0].text
        pairwise_similarity(embedder, [text], [reference])
    single_seconds = time.perf_counter() - started

    speedup = single_seconds / batched_seconds
    print(f"batched:        {batched_seconds:7.2f} s  ({PROMPTS / batched_seconds:7.1f} prompts/s)")
    print(f"one at a time:  {single_seconds:7.2f} s  ({PROMPTS / single_seconds:7.1f} prompts/s)")
    print(f"speedup:        {speedup:7.2f}x")
    print(
        json.dumps(
            {
                "prompts": PROMPTS,
                "batched_seconds": round(batched_seconds, 3),
                "single_seconds": round(single_seconds, 3),
                "speedup": round(speedup, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
