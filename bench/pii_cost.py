"""PII check cost per output, next to the pattern checks that run inline beside it.

The PII check runs in the gateway on every response, so its cost per 1-3 sentence output
matters. Outputs are timed in groups: the labelled set's lines without personal data (most
traffic), those with it, and hand-picked game lines full of look-alike numbers (dates, quest
ids, versions), which are the slow path: they reach ``phonenumbers``. The baseline, in the
same run, is the shipped policy's regular-expression pattern checks on the same outputs.
The last line printed is one JSON object for machines.

    python bench/pii_cost.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.guardrails.checks.pattern import PatternCheck
from reconciler.guardrails.checks.pii import find_pii
from reconciler.guardrails.embeddings import TextBatch
from reconciler.spec.guardrail_parameters import PatternParameters
from reconciler.spec.loader import load_desired_state
from reconciler.spec.model import CheckType

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "guardrails" / "data" / "labelled_outputs.jsonl"
LOOK_ALIKES = [
    "Quest 2024-0815-7731 accepted on 2024-03-15. Your score is 9,450,120 points.",
    "Order 4155550132 has shipped; the vault combination is 4-8-15-16-23-42.",
    "Update to version 1.2.3.4 and meet me at 10:30 by the hearth on Mill Lane.",
    "The treasure lies at 51.5074, -0.1278; bring 12,500 gold and 3 potions.",
]


def _per_output_us(run: Callable[[str], object], texts: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            run(text)
        best = min(best, time.perf_counter() - start)
    return best / len(texts) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="Timed passes; the best counts.")
    args = parser.parse_args()

    state = load_desired_state(ROOT).state
    assert state is not None, "the shipped desired state is invalid"
    patterns = [
        PatternCheck(check, PatternParameters.model_validate(check.parameters))
        for policy in state.policies
        for check in policy.spec.checks
        if check.type is CheckType.PATTERN
    ]

    def pattern_checks(text: str) -> None:
        for check in patterns:
            check.scan(TextBatch([text]))

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    groups = {
        "without_pii": [r["text"] for r in rows if "pii" not in r["labels"]],
        "with_pii": [r["text"] for r in rows if "pii" in r["labels"]],
        "number_look_alikes": LOOK_ALIKES,
    }
    for texts in groups.values():  # warm up: phonenumbers loads region metadata lazily
        for text in texts:
            find_pii(text)
    figures: dict[str, float] = {}
    print(f"{'outputs':<20} {'n':>4} {'pii us':>9} {'patterns us':>12} {'ratio':>6}")
    for name, texts in groups.items():
        pii_us = _per_output_us(find_pii, texts, args.repeat)
        pattern_us = _per_output_us(pattern_checks, texts, args.repeat)
        figures[f"{name}_pii_us"] = round(pii_us, 1)
        ratio = pii_us / pattern_us
        figures[f"{name}_ratio_to_patterns"] = round(ratio, 2)
        print(f"{name:<20} {len(texts):>4} {pii_us:>9.1f} {pattern_us:>12.1f} {ratio:>6.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
