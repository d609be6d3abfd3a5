"""Evaluation throughput: batched generation + scoring vs one prompt at a time, 200 prompts.

Builds the tiny base (pretrained, as the demo's), then evaluates 200 prompts two ways:

- batched, as the evaluation gate does: the generator's batches of 32, then similarity to the
  references in one embedding call and the safety verdicts of the shipped guardrail policies
  in one batch;
- one at a time: per prompt a generate call (its own seed, as separate requests would have),
  a similarity call and a safety check.

Each way gets its own embedder and guardrail judge, so neither finds vectors the other
computed in the embedder's cache, and runs once untimed on a few prompts first, so model
loading, kernel set-up and the first embedding/guardrail calls are out of both figures.
Prints figures and, last, a JSON line.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = 200
BATCH_SIZE = 32  # the evaluation gate's default
WARM_UP = 4


Timing = tuple[float, float, int]  # generation seconds, scoring seconds, new tokens


def run_batched(
    generator: Any, embedder: Any, judge: Any, texts: list[str], refs: list[str]
) -> Timing:
    from reconciler.evaluation.scoring import pairwise_similarity

    started = time.perf_counter()
    generated = generator.generate(texts, seed=0)
    generated_at = time.perf_counter()
    outputs = [g.text for g in generated]
    pairwise_similarity(embedder, outputs, refs)
    judge.verdicts(outputs)
    return (
        generated_at - started,
        time.perf_counter() - generated_at,
        sum(g.new_tokens for g in generated),
    )


def run_single(
    generator: Any, embedder: Any, judge: Any, texts: list[str], refs: list[str]
) -> Timing:
    from reconciler.evaluation.scoring import pairwise_similarity

    generating = scoring = 0.0
    tokens = 0
    for index, (prompt, reference) in enumerate(zip(texts, refs, strict=True)):
        started = time.perf_counter()
        [one] = generator.generate([prompt], seed=index)
        generated_at = time.perf_counter()
        pairwise_similarity(embedder, [one.text], [reference])
        judge.verdicts([one.text])
        generating += generated_at - started
        scoring += time.perf_counter() - generated_at
        tokens += one.new_tokens
    return generating, scoring, tokens


def main() -> None:
    from reconciler.evaluation.generation import LocalGenerator
    from reconciler.evaluation.prompts import read_evaluation_prompts
    from reconciler.evaluation.safety import GuardrailsJudge
    from reconciler.guardrails.embeddings import (
        SentenceTransformerEmbedder,
        locate_embedding_model,
    )
    from reconciler.model_loading import load_causal_lm
    from reconciler.spec.loader import load_desired_state
    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    desired = load_desired_state(ROOT).state
    assert desired is not None, "the shipped desired state does not load"
    use_case = desired.use_case("npc-dialogue")
    dataset = read_evaluation_prompts(ROOT / use_case.spec.evaluation.prompts)
    prompts = [f"{dataset[i % len(dataset)].prompt} ({i})" for i in range(PROMPTS)]
    references = [dataset[i % len(dataset)].reference or "" for i in range(PROMPTS)]
    policies = [desired.policy(p) for p in use_case.spec.guardrails]
    with tempfile.TemporaryDirectory() as scratch:
        folder = build_tiny_model(
            Path(scratch) / "tiny",
            extra_texts=shipped_dataset_texts(ROOT / "desired_state/datasets"),
        )
        model, tokenizer = load_causal_lm(folder)

    timings: dict[str, Timing] = {}
    for way, run, batch_size in (("batched", run_batched, BATCH_SIZE), ("single", run_single, 1)):
        generator = LocalGenerator(
            model, tokenizer, use_case.spec.generation, batch_size=batch_size
        )
        embedder = SentenceTransformerEmbedder(locate_embedding_model())  # its own cache
        judge = GuardrailsJudge(policies, embedder)
        run(generator, embedder, judge, [f"warm up {i}" for i in range(WARM_UP)], ["hi"] * WARM_UP)
        timings[way] = run(generator, embedder, judge, prompts, references)
    report(timings)


def report(timings: dict[str, Timing]) -> None:
    (b_gen, b_score, b_tokens), (s_gen, s_score, s_tokens) = timings["batched"], timings["single"]
    batched_seconds, single_seconds = b_gen + b_score, s_gen + s_score
    speedup = single_seconds / batched_seconds
    figures = {
        "prompts": PROMPTS,
        "batch_size": BATCH_SIZE,
        "batched_seconds": round(batched_seconds, 3),
        "single_seconds": round(single_seconds, 3),
        "batched_prompts_per_s": round(PROMPTS / batched_seconds, 1),
        "single_prompts_per_s": round(PROMPTS / single_seconds, 1),
        "batched_tokens_per_s": round(b_tokens / b_gen, 1),
        "single_tokens_per_s": round(s_tokens / s_gen, 1),
        "generation_speedup": round(s_gen / b_gen, 2),
        "scoring_speedup": round(s_score / b_score, 2),
        "speedup": round(speedup, 2),
    }
    for label, (generating, scoring, tokens) in (
        (f"batched (x{BATCH_SIZE})", timings["batched"]),
        ("one at a time", timings["single"]),
    ):
        total = generating + scoring
        print(
            f"{label:<14} {total:6.2f} s = generation {generating:5.2f} s "
            f"({tokens / generating:6.0f} new tokens/s) + scoring {scoring:5.2f} s  "
            f"-> {PROMPTS / total:6.1f} prompts/s"
        )
    print(
        f"speedup        {speedup:6.2f}x  (generation {figures['generation_speedup']}x, "
        f"scoring {figures['scoring_speedup']}x)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
