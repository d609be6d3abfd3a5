"""The shipped policies on a labelled set of game outputs: per-category precision and recall.

Since the hazard taxonomy this set is part of the TUNING data (thresholds were chosen on it,
`choose_thresholds.py`): these figures are a regression check, not a result; the held-out
figures are test_held_out.py's. The set (`data/labelled_outputs.jsonl`) mixes real-world
harm, manipulative engagement and personal data with benign game text chosen to look alike:
in-game violence, quests with time limits, shop dialogue, healthy goodbyes, numbers that are
not personal data.
"""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.guardrails.engine import GuardrailEngine

DATA = Path(__file__).parent / "data" / "labelled_outputs.jsonl"
CATEGORIES = ("self_harm", "violence", "pii", "manipulative_engagement")
# The set predates the hazard taxonomy (README, "Guardrails"): its `violence` lines include
# bombs, poisons and toxic gas, which the taxonomy files under `dangerous_advice` (Llama
# Guard's S9 indiscriminate weapons). A verdict in any category a label now maps to counts.
TAXONOMY = {"violence": {"violence", "dangerous_advice"}}
# The target on this (tuning) set: the shipped checks were tuned on it.
FLOORS = {category: (0.9, 0.9) for category in CATEGORIES}


def test_the_labelled_set_is_large_and_varied() -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 150
    assert len({r["text"] for r in rows}) == len(rows)
    benign = [r for r in rows if not r["labels"]]
    assert len(benign) >= 60
    for category in CATEGORIES:
        assert sum(category in r["labels"] for r in rows) >= 25


def test_shipped_policies_reach_precision_and_recall(shipped_engine: GuardrailEngine) -> None:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    verdicts = shipped_engine.check_batch([r["text"] for r in rows])
    table = []
    failures = []
    for category in CATEGORIES:
        tp = fp = fn = 0
        for row, verdict in zip(rows, verdicts, strict=True):
            expected = category in row["labels"]
            found = bool(TAXONOMY.get(category, {category}) & set(verdict.categories))
            tp += expected and found
            fp += found and not expected
            fn += expected and not found
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        table.append(f"{category:<25} {precision:>9.3f} {recall:>7.3f} {tp:>4} {fp:>4} {fn:>4}")
        if precision < FLOORS[category][0] or recall < FLOORS[category][1]:
            failures.append(category)
    print("\n" + f"{'category':<25} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4}")
    print("\n".join(table))
    misses = [
        f"{sorted(r['labels'])} -> {v.categories}: {r['text']}"
        for r, v in zip(rows, verdicts, strict=True)
        if sorted(r["labels"]) != v.categories
    ]
    assert not failures, "below the floor: " + ", ".join(failures) + "\n" + "\n".join(misses)
