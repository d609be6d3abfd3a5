"""Guardrail throughput: outputs checked per second with all shipped policies.

Compares one `check_batch` call over the whole set with one call per output (as a naive
gateway hook would make). The model is loaded and the exemplars embedded before timing.
Every output is made unique (numbered), because the embedder keeps the vectors of recent
texts: repeated lines would measure the cache, not the checks. The cache's own rate (the same
outputs checked again, as when NPCs repeat their lines) is reported beside.
The last line printed is one JSON object for machines.

    python bench/guardrail_throughput.py [--outputs 512]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from reconciler.guardrails.engine import compile_policies
from reconciler.spec.loader import load_desired_state

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "guardrails" / "data" / "labelled_outputs.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=int, default=512, help="How many outputs to check.")
    parser.add_argument("--single", type=int, default=64, help="How many to check one by one.")
    args = parser.parse_args()

    state = load_desired_state(ROOT).state
    assert state is not None, "the shipped desired state is invalid"
    engine = compile_policies(state.policies)
    samples = [json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()]
    texts = [f"{samples[i % len(samples)]} ({i})" for i in range(args.outputs)]
    engine.check_batch(["warm up: load the model, embed the exemplars"])

    start = time.perf_counter()
    engine.check_batch(texts)
    batched_s = time.perf_counter() - start
    single = [f"{samples[i % len(samples)]} (one {i})" for i in range(args.single)]
    start = time.perf_counter()
    for text in single:
        engine.check(text)
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    engine.check_batch(texts)
    cached_s = time.perf_counter() - start

    batched_rate = len(texts) / batched_s
    single_rate = len(single) / single_s
    print(f"policies: {', '.join(engine.policy_names)} ({len(engine.checks)} checks)")
    print(f"CPU threads: {os.cpu_count()}")
    print(f"batched:    {len(texts):>5} outputs in {batched_s:7.2f} s = {batched_rate:8.1f}/s")
    print(f"one by one: {len(single):>5} outputs in {single_s:7.2f} s = {single_rate:8.1f}/s")
    print(f"speedup:    {batched_rate / single_rate:.1f}x")
    print(f"repeated:   {len(texts):>5} outputs in {cached_s:7.2f} s (embeddings cached)")
    print(
        json.dumps(
            {
                "outputs_per_s": round(batched_rate, 1),
                "single_outputs_per_s": round(single_rate, 1),
                "speedup": round(batched_rate / single_rate, 2),
                "cached_outputs_per_s": round(len(texts) / cached_s, 1),
                "outputs": len(texts),
                "checks": len(engine.checks),
            }
        )
    )


if __name__ == "__main__":
    main()
