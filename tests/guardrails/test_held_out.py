"""The shipped policies on the held-out set: per-category precision and recall, each >= 0.9.

`data/held_out.jsonl` was written independently of the policies, their corpus
(`policies/corpus/`) and their thresholds, which were tuned only on the corpus and on
`data/labelled_outputs.jsonl` (see `choose_thresholds.py`). Nothing here or in the tuning
reads it; the figures printed below are what the README reports.

Each line is ``{"text": ..., "labels": [...]}`` (an empty list: a benign game line). A
category counts as found when any finding of the verdict carries it, whichever check fired.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reconciler.guardrails.engine import GuardrailEngine

# RECONCILER_HELD_OUT_DATA reads the set from elsewhere (another checkout), never edited here.
DATA = Path(
    os.environ.get("RECONCILER_HELD_OUT_DATA") or Path(__file__).parent / "data" / "held_out.jsonl"
)
# The hazard taxonomy (policies/player-safety.yaml maps it to MLCommons AILuminate / Llama
# Guard) plus personal data and manipulative engagement.
CATEGORIES = (
    "violence",
    "nonviolent_crime",
    "sexual",
    "child_safety",
    "dangerous_advice",
    "hate",
    "harassment",
    "self_harm",
    "pii",
    "manipulative_engagement",
)
MIN_PRECISION = 0.9
MIN_RECALL = 0.9


def _labels(row: dict[str, Any]) -> set[str]:
    labels = row["labels"]
    assert isinstance(labels, list), f"labels must be a list: {row}"
    return {str(label) for label in labels}


def _rows() -> list[dict[str, Any]]:
    assert DATA.is_file(), f"the held-out set {DATA} is missing"
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]


def test_the_held_out_set_covers_every_category() -> None:
    rows = _rows()
    assert len({r["text"] for r in rows}) == len(rows), "repeated lines"
    unknown = {label for r in rows for label in _labels(r)} - set(CATEGORIES)
    assert not unknown, f"labels outside the taxonomy: {sorted(unknown)}"
    for category in CATEGORIES:
        assert any(category in _labels(r) for r in rows), f"no {category} line"
    assert any(not _labels(r) for r in rows), "no benign line"


def test_shipped_policies_on_the_held_out_set(shipped_engine: GuardrailEngine) -> None:
    rows = _rows()
    verdicts = shipped_engine.check_batch([r["text"] for r in rows])
    lines = [f"{'category':<25} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4}"]
    below = []
    for category in CATEGORIES:
        tp = fp = fn = 0
        for row, verdict in zip(rows, verdicts, strict=True):
            expected = category in _labels(row)
            found = category in verdict.categories
            tp += expected and found
            fp += found and not expected
            fn += expected and not found
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        lines.append(f"{category:<25} {precision:>9.3f} {recall:>7.3f} {tp:>4} {fp:>4} {fn:>4}")
        if precision < MIN_PRECISION or recall < MIN_RECALL:
            below.append(f"{category} (precision {precision:.3f}, recall {recall:.3f})")
    benign = [v for r, v in zip(rows, verdicts, strict=True) if not _labels(r)]
    flagged_benign = sum(v.flagged for v in benign)
    lines.append(f"benign lines flagged: {flagged_benign}/{len(benign)}")
    print("\n" + "\n".join(lines))
    misses = [
        f"{sorted(_labels(r))} -> {v.categories}: {r['text']}"
        for r, v in zip(rows, verdicts, strict=True)
        if sorted(_labels(r)) != v.categories
    ]
    assert not below, "below 0.9: " + "; ".join(below) + "\n" + "\n".join(misses)
