"""Training throughput and memory: LoRA vs full fine-tuning of the tiny base on the same data.

Each method runs in its own subprocess so its peak RSS is its own. Prints figures and, last,
a JSON line.
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


def run_one(method: str) -> dict[str, float]:
    from reconciler.model_loading import load_causal_lm
    from reconciler.spec.model import Hyperparameters, LoraSettings, TrainingMethod
    from reconciler.training.examples import read_initial_examples
    from reconciler.training.fine_tune import FineTuneSettings, fine_tune
    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    folder = Path(tempfile.mkdtemp()) / "tiny"
    build_tiny_model(folder, extra_texts=shipped_dataset_texts(ROOT / "desired_state/datasets"))
    model, tokenizer = load_causal_lm(folder)
    examples = (
        read_initial_examples(
            ROOT / "desired_state/datasets/npc_dialogue/initial.jsonl", system_prompt="Be an NPC."
        )
        * 8
    )
    settings = FineTuneSettings(
        TrainingMethod(method),
        Hyperparameters(epochs=1, max_steps=40, batch_size=8, learning_rate=5e-4),
        LoraSettings(),
    )
    result = fine_tune(model, tokenizer, examples, examples[:8], settings, progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"tokens_per_s": result.tokens_per_second, "peak_rss_mb": peak_mb}


def main() -> None:
    figures: dict[str, float] = {}
    for method in ("lora", "full"):
        done = subprocess.run(
            [sys.executable, __file__, "--one", method],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{method:5}: {measured['tokens_per_s']:9.0f} tokens/s, "
            f"peak RSS {measured['peak_rss_mb']:7.1f} MB"
        )
        figures[f"{method}_tokens_per_s"] = round(measured["tokens_per_s"], 1)
        figures[f"{method}_peak_rss_mb"] = round(measured["peak_rss_mb"], 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        sys.path.insert(0, str(ROOT))
        print(json.dumps(run_one(sys.argv[2])))
    else:
        main()
