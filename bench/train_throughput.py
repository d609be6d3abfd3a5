"""Training throughput and memory: LoRA vs full fine-tuning of one base on the same data.

The base is built once, here in the parent: a GPT-2 wider and deeper than the tests' tiny one
(512 wide, 6 layers, about 20M parameters) so that what full fine-tuning adds — a gradient and
two AdamW moments for every weight — is large enough to see beside the model itself. Each
method then runs in its own subprocess that loads that folder, so their memory never mixes.

Memory is the peak RSS of the training alone: after the model and data are loaded (and one
forward pass has warmed torch up), the process's high-water mark is reset to its current RSS
(Linux: `/proc/self/clear_refs`), and the reported figure is the new high-water mark minus
that baseline. Where the reset is not available, the whole process peak minus the post-load
RSS is reported instead (an upper bound).

Prints figures and, last, a JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]

EMBEDDING_SIZE = 512
LAYERS = 6
HEADS = 8
STEPS = 30
BATCH = 8


def build_base(folder: Path) -> Path:
    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    return build_tiny_model(
        folder,
        extra_texts=shipped_dataset_texts(ROOT / "desired_state/datasets"),
        pretrain_steps=0,  # throughput and memory do not depend on what the weights know
        embedding_size=EMBEDDING_SIZE,
        layers=LAYERS,
        heads=HEADS,
    )


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset the RSS high-water mark
    except OSError:
        return False
    return True


def run_one(method: str, folder: Path) -> dict[str, float]:
    from reconciler.model_loading import load_causal_lm
    from reconciler.spec.model import Hyperparameters, LoraSettings, TrainingMethod
    from reconciler.training.examples import read_initial_examples
    from reconciler.training.fine_tune import FineTuneSettings, collate, encode_examples, fine_tune

    model, tokenizer = load_causal_lm(folder)
    examples = (
        read_initial_examples(
            ROOT / "desired_state/datasets/npc_dialogue/initial.jsonl", system_prompt="Be an NPC."
        )
        * 8
    )
    settings = FineTuneSettings(
        TrainingMethod(method),
        Hyperparameters(
            epochs=1,
            max_steps=STEPS,
            batch_size=BATCH,
            learning_rate=5e-4,
            early_stopping_patience=100,  # every run trains all its steps
        ),
        LoraSettings(),
    )
    parameters = sum(p.numel() for p in model.parameters())
    # Loading, not training: what fine_tune imports on first use, and the first forward pass,
    # which sets up torch's CPU kernels and their buffers (over 100 MB here) once per process.
    import peft  # noqa: F401
    import torch
    import tqdm.auto  # noqa: F401

    warm_up = encode_examples(tokenizer, examples[:BATCH], 256)
    with torch.no_grad():
        model(**collate(warm_up, int(tokenizer.pad_token_id)))

    reset = _reset_peak()
    baseline_kb = _status_kb("VmRSS") or 0
    result = fine_tune(model, tokenizer, examples, examples[:8], settings, progress=False)
    if reset and (peak_kb := _status_kb("VmHWM")) is not None:
        peak_above_mb = (peak_kb - baseline_kb) / 1024.0
    else:
        peak_above_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kb) / 1024
    return {
        "tokens_per_s": result.tokens_per_second,
        "peak_rss_mb": peak_above_mb,
        "baseline_rss_mb": baseline_kb / 1024.0,
        "steps": float(result.steps),
        "parameters": float(parameters),
    }


def main() -> None:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = build_base(Path(scratch) / "base")
        for method in ("lora", "full"):
            done = subprocess.run(
                [sys.executable, __file__, "--one", method, str(folder)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{method:5}: {measured['tokens_per_s']:9.0f} tokens/s over "
                f"{measured['steps']:.0f} steps, peak RSS {measured['peak_rss_mb']:7.1f} MB above "
                f"the loaded model ({measured['baseline_rss_mb']:.0f} MB)"
            )
            figures[f"{method}_tokens_per_s"] = round(measured["tokens_per_s"], 1)
            figures[f"{method}_peak_rss_mb"] = round(measured["peak_rss_mb"], 1)
            figures["parameters"] = measured["parameters"]
    figures["full_over_lora_rss"] = round(
        figures["full_peak_rss_mb"] / max(figures["lora_peak_rss_mb"], 1e-9), 2
    )
    print(f"model: {figures['parameters'] / 1e6:.1f}M parameters")
    print(json.dumps(figures))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        sys.path.insert(0, str(ROOT))
        print(json.dumps(run_one(sys.argv[2], Path(sys.argv[3]))))
    else:
        main()
