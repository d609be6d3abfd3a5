"""Evaluation throughput: the gate's batched generation + scoring vs one prompt at a time.

Builds the tiny base (pretrained, as the demo's) as the candidate and a second tiny model as
the champion, then evaluates 200 prompts (``--prompts N`` for a quicker run) three ways:

- batched, as the evaluation gate does after a first candidate: the candidate's generator in
  length-sorted batches of 32, the champion's outputs and their embeddings from the champion
  cache's files (written by the cold run), then one embedding pass over the other unique
  texts (candidate outputs, references, the guardrails' clauses), similarity to champion and
  references from it, and the safety verdicts of the shipped guardrail policies in one batch;
- batched, cold: the same, the champion generated and its outputs embedded too (the first
  candidate against a champion, or after its prompts or settings changed);
- one at a time: per prompt a generate call for candidate and for champion (each its own seed,
  as separate requests would have), a similarity call to each and a safety check.

Each way gets its own embedder and guardrail judge, so none finds vectors another computed in
the embedder's in-memory cache (the warm run reads the champion's vectors from the files the
cold run left, as after a restart), and runs once untimed on a few prompts first, so model
loading, kernel set-up and the first embedding/guardrail calls are out of the figures. Prints
figures and, last, a JSON line; ``speedup`` is warm batched vs one at a time, ``speedup_cold``
cold vs one at a time.
"""

from __future__ import annotations

import argparse
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
SEED = 0


Timing = tuple[float, float, int]  # generation seconds, scoring seconds, candidate new tokens


def run_batched(
    candidate: Any, champion: Any, cache: Any, embedder: Any, judge: Any, texts: list[str],
    refs: list[str],
) -> Timing:  # fmt: skip
    from reconciler.evaluation.champion_cache import champion_runs, keep_vectors, recall_vectors
    from reconciler.evaluation.embedding_pass import EmbeddingPass
    from reconciler.evaluation.scoring import pairwise_similarity

    vectors = EmbeddingPass(embedder)
    safety = judge(vectors)  # the gate compiles its policies before generating
    started = time.perf_counter()
    generated = candidate.generate(texts, seed=SEED)
    [champion_generated] = champion_runs(
        cache, champion.version, texts, champion.generator.generation, seeds=[SEED],
        batch_size=BATCH_SIZE, load=lambda: champion.generator,
    )  # fmt: skip
    generated_at = time.perf_counter()
    outputs = [g.text for g in generated]
    champion_outputs = [g.text for g in champion_generated]
    unstored = recall_vectors(cache, [champion_outputs], vectors)
    vectors.prepare([*outputs, *champion_outputs, *refs], guarded=outputs)
    keep_vectors(cache, unstored, vectors)
    pairwise_similarity(vectors, outputs, champion_outputs)
    pairwise_similarity(vectors, outputs, refs)
    safety.verdicts(outputs)
    return (
        generated_at - started,
        time.perf_counter() - generated_at,
        sum(g.new_tokens for g in generated),
    )


def run_single(
    candidate: Any, champion: Any, cache: Any, embedder: Any, judge: Any, texts: list[str],
    refs: list[str],
) -> Timing:  # fmt: skip
    from reconciler.evaluation.scoring import pairwise_similarity

    generating = scoring = 0.0
    tokens = 0
    safety = judge(embedder)
    for index, (prompt, reference) in enumerate(zip(texts, refs, strict=True)):
        started = time.perf_counter()
        [one] = candidate.generate([prompt], seed=index)
        [theirs] = champion.generator.generate([prompt], seed=index)
        generated_at = time.perf_counter()
        pairwise_similarity(embedder, [one.text], [theirs.text])
        pairwise_similarity(embedder, [one.text], [reference])
        safety.verdicts([one.text])
        generating += generated_at - started
        scoring += time.perf_counter() - generated_at
        tokens += one.new_tokens
    return generating, scoring, tokens


def main() -> None:
    from types import MappingProxyType

    from reconciler.evaluation.champion_cache import ChampionOutputs
    from reconciler.evaluation.generation import LocalGenerator
    from reconciler.evaluation.prompts import read_evaluation_prompts
    from reconciler.evaluation.safety import GuardrailsJudge
    from reconciler.guardrails.embeddings import (
        SentenceTransformerEmbedder,
        locate_embedding_model,
    )
    from reconciler.model_loading import load_causal_lm
    from reconciler.spec.loader import load_desired_state
    from reconciler.tracking.mlflow_tracking import RegisteredVersion
    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--prompts", type=int, default=PROMPTS, help="prompts (default 200)")
    count = parser.parse_args().prompts
    desired = load_desired_state(ROOT).state
    assert desired is not None, "the shipped desired state does not load"
    use_case = desired.use_case("npc-dialogue")
    dataset = read_evaluation_prompts(ROOT / use_case.spec.evaluation.prompts)
    prompts = [f"{dataset[i % len(dataset)].prompt} ({i})" for i in range(count)]
    references = [dataset[i % len(dataset)].reference or "" for i in range(count)]
    policies = [desired.policy(p) for p in use_case.spec.guardrails]
    settings = use_case.spec.generation
    with tempfile.TemporaryDirectory() as scratch:
        extra = shipped_dataset_texts(ROOT / "desired_state/datasets")
        model, tokenizer = load_causal_lm(build_tiny_model(Path(scratch) / "a", extra_texts=extra))
        other, other_tokenizer = load_causal_lm(
            build_tiny_model(Path(scratch) / "b", seed=7, extra_texts=extra, pretrain_steps=20)
        )
        cache = ChampionOutputs(Path(scratch) / "evaluation-cache")

        class Champion:
            def __init__(self, batch_size: int) -> None:
                self.generator = LocalGenerator(
                    other, other_tokenizer, settings, batch_size=batch_size
                )
                self.version = RegisteredVersion("bench", "1", "READY", MappingProxyType({}), "r")

        timings: dict[str, Timing] = {}
        ways = (("cold", run_batched, BATCH_SIZE), ("batched", run_batched, BATCH_SIZE),
                ("single", run_single, 1))  # fmt: skip
        for way, run, batch_size in ways:
            candidate = LocalGenerator(model, tokenizer, settings, batch_size=batch_size)
            champion = Champion(batch_size)
            embedder = SentenceTransformerEmbedder(locate_embedding_model())  # its own cache

            def judge(on: Any) -> Any:
                return GuardrailsJudge(policies, on)

            warm_up = [f"warm up {way} {i}" for i in range(WARM_UP)]
            run(candidate, champion, cache, embedder, judge, warm_up, ["hi"] * WARM_UP)
            timings[way] = run(candidate, champion, cache, embedder, judge, prompts, references)
    report(timings, count)


def report(timings: dict[str, Timing], prompts: int) -> None:
    (b_gen, b_score, b_tokens), (s_gen, s_score, s_tokens) = timings["batched"], timings["single"]
    batched_seconds, single_seconds = b_gen + b_score, s_gen + s_score
    cold_seconds = sum(timings["cold"][:2])
    speedup = single_seconds / batched_seconds
    figures = {
        "prompts": prompts,
        "batch_size": BATCH_SIZE,
        "batched_seconds": round(batched_seconds, 3),
        "single_seconds": round(single_seconds, 3),
        "batched_prompts_per_s": round(prompts / batched_seconds, 1),
        "single_prompts_per_s": round(prompts / single_seconds, 1),
        "batched_tokens_per_s": round(b_tokens / b_gen, 1),
        "single_tokens_per_s": round(s_tokens / s_gen, 1),
        "generation_speedup": round(s_gen / b_gen, 2),
        "scoring_speedup": round(s_score / b_score, 2),
        "speedup": round(speedup, 2),
        "cold_seconds": round(cold_seconds, 3),
        "cold_generation_speedup": round(s_gen / timings["cold"][0], 2),
        "cold_scoring_speedup": round(s_score / timings["cold"][1], 2),
        "speedup_cold": round(single_seconds / cold_seconds, 2),
    }
    for label, (generating, scoring, tokens) in (
        (f"batched (x{BATCH_SIZE})", timings["batched"]),
        ("batched, cold", timings["cold"]),
        ("one at a time", timings["single"]),
    ):
        total = generating + scoring
        print(
            f"{label:<14} {total:6.2f} s = generation {generating:5.2f} s "
            f"({tokens / generating:6.0f} new tokens/s) + scoring {scoring:5.2f} s  "
            f"-> {prompts / total:6.1f} prompts/s"
        )
    print(
        f"speedup        {speedup:6.2f}x  (generation {figures['generation_speedup']}x, "
        f"scoring {figures['scoring_speedup']}x); cold champion {figures['speedup_cold']}x"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
