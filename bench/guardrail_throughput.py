"""Guardrail throughput: the shipped policies as a cascade versus the encoder-only path.

Both engines hold the same checks and the same trained classifiers; the encoder-only one has
every hazard category's uncertain band widened to [0, 1] and no ``staticPassBelow`` stage
before exemplar matching, so every output goes through the MiniLM encoder (what the
guardrails cost before the cascade). Measured in one run:

* outputs/s checking the whole set in one batch (a busy gateway) and one output per call
  (an idle one: p50 and p99 per output);
* the static stage alone (distilled embeddings + the classifiers' matrix product);
* the share of outputs that reached the encoder (`encoder_fraction`);
* the encoder itself on its two runtimes, PyTorch (sentence-transformers) and ONNX Runtime
  (the default): each output's units (the whole text and its clauses, as the checks embed
  them) one output per call (p50) and all at once (texts/s), on the same texts.

The outputs are the labelled set's lines (benign game text and harmful lines), each made unique
(numbered) so the encoder's cache of recent texts does not flatter either path. Models are
loaded and classifiers trained before timing. The last line printed is one JSON object.

    python bench/guardrail_throughput.py [--outputs 512] [--single 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from reconciler.guardrails.embeddings import (
    RUNTIME_ENV,
    SentenceTransformerEmbedder,
    TextBatch,
    encoder_threads,
    locate_embedding_model,
)
from reconciler.guardrails.engine import GuardrailEngine, Stage, compile_policies
from reconciler.guardrails.static_embeddings import load_static_embedder
from reconciler.spec.loader import load_desired_state
from reconciler.spec.model import CheckType, GuardrailPolicy

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "guardrails" / "data" / "labelled_outputs.jsonl"


def encoder_only(policy: GuardrailPolicy) -> GuardrailPolicy:
    """The same policy with every hazard category's band widened and no static stage before
    exemplar matching: all outputs are encoded."""
    data = policy.model_dump(mode="json", by_alias=True)
    for check in data["spec"]["checks"]:
        if check["type"] == CheckType.HAZARD.value:
            for settings in check["parameters"]["categories"].values():
                settings.update(bandLow=0.0, bandHigh=1.0)
        elif check["type"] in (CheckType.SEMANTIC.value, CheckType.ENGAGEMENT.value):
            check["parameters"].pop("staticPassBelow", None)
    return GuardrailPolicy.model_validate(data)


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(engine: GuardrailEngine, texts: list[str], single: list[str]) -> dict[str, float]:
    before = engine.outputs_by_stage()
    start = time.perf_counter()
    engine.check_batch(texts)
    batched_s = time.perf_counter() - start
    latencies = []
    for text in single:
        start = time.perf_counter()
        engine.check(text)
        latencies.append((time.perf_counter() - start) * 1000)
    after = engine.outputs_by_stage()
    encoded = after[Stage.ENCODER] - before[Stage.ENCODER]
    checked = sum(after.values()) - sum(before.values())
    return {
        "outputs_per_s": round(len(texts) / batched_s, 1),
        "single_p50_ms": round(statistics.median(latencies), 3),
        "single_p99_ms": round(_quantile(latencies, 0.99), 3),
        "encoder_fraction": round(encoded / checked, 4),
    }


def encoder_runtimes(samples: list[str], outputs: int, single: int) -> dict[str, float]:
    """PyTorch against ONNX Runtime: the same units, one output per call and all at once."""
    import torch

    torch.set_num_threads(encoder_threads())  # as the gateway would for PyTorch
    figures: dict[str, float] = {}
    for runtime in ("torch", "onnx"):
        os.environ[RUNTIME_ENV] = runtime
        embedder = SentenceTransformerEmbedder(locate_embedding_model(), cache_size=0)
        assert embedder.runtime == runtime
        embedder.encode(["warm-up line for the encoder"] * 8)
        units = [
            TextBatch([f"{samples[i % len(samples)]} ({runtime} {i})"]).units for i in range(single)
        ]
        latencies = []
        for per_output in units:
            start = time.perf_counter()
            embedder.encode(per_output)
            latencies.append((time.perf_counter() - start) * 1000)
        every = [
            u
            for i in range(outputs)
            for u in TextBatch([f"{samples[i % len(samples)]} ({runtime} all {i})"]).units
        ]
        start = time.perf_counter()
        embedder.encode(every)
        figures[f"encoder_{runtime}_single_p50_ms"] = round(statistics.median(latencies), 3)
        figures[f"encoder_{runtime}_single_p99_ms"] = round(_quantile(latencies, 0.99), 3)
        figures[f"encoder_{runtime}_texts_per_s"] = round(
            len(every) / (time.perf_counter() - start), 1
        )
    os.environ.pop(RUNTIME_ENV, None)
    figures["onnx_single_speedup"] = round(
        figures["encoder_torch_single_p50_ms"] / figures["encoder_onnx_single_p50_ms"], 2
    )
    figures["onnx_batched_speedup"] = round(
        figures["encoder_onnx_texts_per_s"] / figures["encoder_torch_texts_per_s"], 2
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=int, default=512, help="How many outputs to check.")
    parser.add_argument("--single", type=int, default=64, help="How many to check one by one.")
    args = parser.parse_args()

    state = load_desired_state(ROOT).state
    assert state is not None, "the shipped desired state is invalid"
    cascade = compile_policies(state.policies, base_path=ROOT)
    full = compile_policies([encoder_only(p) for p in state.policies], base_path=ROOT)
    for engine in (cascade, full):
        engine.warm_up()
    samples = [json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()]
    results = {}
    for name, engine in (("cascade", cascade), ("encoder_only", full)):
        texts = [f"{samples[i % len(samples)]} ({name} {i})" for i in range(args.outputs)]
        single = [f"{samples[i % len(samples)]} ({name} one {i})" for i in range(args.single)]
        results[name] = measure(engine, texts, single)

    static = load_static_embedder()
    texts = [f"{samples[i % len(samples)]} (static {i})" for i in range(args.outputs)]
    hazard_checks = [c.check for c in cascade.checks if c.check.spec.type is CheckType.HAZARD]
    start = time.perf_counter()
    for text in texts:
        vector = static.encode([text])
        for check in hazard_checks:
            check.model.static.probabilities(vector)  # type: ignore[attr-defined]
    static_us = (time.perf_counter() - start) / len(texts) * 1e6

    print(f"policies: {', '.join(cascade.policy_names)} ({len(cascade.checks)} checks)")
    print(f"CPU threads: {os.cpu_count()}")
    for name, figures in results.items():
        print(
            f"{name:<13} batched {figures['outputs_per_s']:>8.1f}/s, one by one p50 "
            f"{figures['single_p50_ms']:>7.2f} ms p99 {figures['single_p99_ms']:>7.2f} ms, "
            f"encoder fraction {figures['encoder_fraction']:.3f}"
        )
    print(f"static stage alone: {static_us:.1f} us per output (one at a time)")
    speedup = results["cascade"]["outputs_per_s"] / results["encoder_only"]["outputs_per_s"]
    print(f"cascade vs encoder-only: {speedup:.2f}x outputs/s")
    runtimes = encoder_runtimes(samples, args.outputs, args.single)
    for runtime in ("torch", "onnx"):
        print(
            f"encoder on {runtime:<5} one output per call p50 "
            f"{runtimes[f'encoder_{runtime}_single_p50_ms']:>6.2f} ms p99 "
            f"{runtimes[f'encoder_{runtime}_single_p99_ms']:>6.2f} ms, all at once "
            f"{runtimes[f'encoder_{runtime}_texts_per_s']:>7.1f} texts/s"
        )
    print(
        f"ONNX Runtime vs PyTorch: {runtimes['onnx_single_speedup']:.2f}x one at a time, "
        f"{runtimes['onnx_batched_speedup']:.2f}x batched"
    )
    print(
        json.dumps(
            {
                "cascade_outputs_per_s": results["cascade"]["outputs_per_s"],
                "encoder_only_outputs_per_s": results["encoder_only"]["outputs_per_s"],
                "speedup": round(speedup, 2),
                "cascade_single_p50_ms": results["cascade"]["single_p50_ms"],
                "encoder_only_single_p50_ms": results["encoder_only"]["single_p50_ms"],
                "encoder_fraction": results["cascade"]["encoder_fraction"],
                "static_stage_us_per_output": round(static_us, 1),
                **runtimes,
                "outputs": args.outputs,
            }
        )
    )


if __name__ == "__main__":
    main()
