"""Score the shipped policies' checks on the tuning data, at their settings and at candidates.

Tuning data only: the corpus (``policies/corpus/*.jsonl``) and the old labelled set
(``tests/guardrails/data/labelled_outputs.jsonl``). The held-out set is never read here.

The policies the shipped use cases list (player-safety, healthy-engagement) are compiled as
they are in ``policies/``. For each category the shipped checks report (self_harm, violence,
manipulative_engagement) it prints:

* each check's precision and recall at its current settings (a `hazard` check's per category
  it lists, as ``check:category``), and the category's (any check of the category fired: what
  the held-out test counts), on the corpus, the labelled set and both together. A `hazard`
  check's classifier is trained on the corpus, so its corpus figures are in-sample (the
  out-of-fold ones are ``choose_thresholds.py``'s); its labelled-set figures are not;
* for each `semantic` check and `engagement` check that matches exemplars, a grid of
  ``threshold`` x ``margin``: the category's precision and recall with that check at each
  candidate (the other checks unchanged), best first: candidates that keep the category's
  recall at the current settings on both parts of the tuning data, then by precision (ties:
  the higher recall, then the setting nearest the current one); ``--top`` says how many.
  After adding look-alikes, compare with the figures of the run before them: "keeps recall"
  is against the current settings;
* per engagement cue pattern, the lines it flags outside ``manipulative_engagement``;
* with ``--show`` the false positives and misses at the current settings (what to add as
  contrast exemplars or where a cue over-reaches).

The semantic scores are recomputed here from the checks' parameters the way the checks compute
them (whole text and clauses, best exemplar against best contrast look-alike); at the current
settings the decisions are asserted equal to the real checks' own. Labels are taken as they
are: a corpus `dangerous_advice` line flagged `violence` is a false positive, as on the
held-out set; the labelled set's `violence` lines (which predate the taxonomy and include
bombs) are positives. Run from the repository root:

    python tests/guardrails/score_shipped_checks.py [--show] [--top 8]
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from reconciler.guardrails.checks.engagement import EngagementCheck
from reconciler.guardrails.checks.engagement_signals import CUES, EXEMPLARS, FICTION
from reconciler.guardrails.checks.hazard import HazardCheck
from reconciler.guardrails.checks.semantic import SemanticCheck
from reconciler.guardrails.embeddings import TextBatch, default_embedder
from reconciler.guardrails.engine import GuardrailEngine, compile_policies
from reconciler.guardrails.hazard_model import LabelledText, load_corpus
from reconciler.spec.guardrail_parameters import (
    EngagementParameters,
    HealthySignal,
    SemanticParameters,
    UnhealthySignal,
    parse_parameters,
)
from reconciler.spec.loader import load_desired_state

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "policies" / "corpus"
LABELLED = ROOT / "tests" / "guardrails" / "data" / "labelled_outputs.jsonl"
CATEGORIES = ("self_harm", "violence", "manipulative_engagement")
THRESHOLDS = np.round(np.arange(0.30, 0.701, 0.02), 3)
MARGINS = np.round(np.arange(0.0, 0.161, 0.01), 3)

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Part:
    """The rows of one part of the tuning data (corpus or labelled set)."""

    name: str
    rows: Mask


@dataclass(frozen=True)
class UnitScores:
    """Per batch unit (texts, then clauses): best exemplar similarity, best contrast one."""

    score: npt.NDArray[np.float32]
    contrast: npt.NDArray[np.float32]

    def violated(self, unit_rows: npt.NDArray[np.int_], texts: int, t: float, m: float) -> Mask:
        hit = (self.score >= t) & (self.score - self.contrast >= m)
        per_text = np.zeros(texts, dtype=bool)
        np.logical_or.at(per_text, unit_rows, hit)
        return per_text


def precision_recall(found: Mask, expected: Mask) -> tuple[float, float, int, int, int]:
    tp = int((found & expected).sum())
    fp = int((found & ~expected).sum())
    fn = int((~found & expected).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def best_similarity(
    vectors: npt.NDArray[np.float32], sentences: Sequence[str]
) -> npt.NDArray[np.float32]:
    """Per unit, the cosine similarity to the closest of ``sentences`` (0 without any)."""
    if not sentences:
        return np.zeros(vectors.shape[0], dtype=np.float32)
    exemplars = default_embedder().encode(list(sentences))
    best: npt.NDArray[np.float32] = (vectors @ exemplars.T).max(axis=1)
    return best


def semantic_scores(parameters: SemanticParameters, vectors: np.ndarray) -> UnitScores:
    return UnitScores(
        best_similarity(vectors, list(parameters.exemplars)),
        best_similarity(vectors, list(parameters.contrast_exemplars)),
    )


def engagement_scores(
    parameters: EngagementParameters, vectors: np.ndarray
) -> dict[UnhealthySignal, UnitScores]:
    """Per configured unhealthy signal, as `EngagementCheck` scores it."""
    extra = {str(k): v for k, v in parameters.extra_exemplars.items()}
    healthy = [e for s in HealthySignal for e in EXEMPLARS[s]]
    contrast = best_similarity(vectors, [*FICTION, *healthy])
    return {
        signal: UnitScores(
            best_similarity(vectors, [*EXEMPLARS[signal], *extra.get(signal.value, [])]),
            contrast,
        )
        for signal in parameters.unhealthy
    }


def cue_hits(parameters: EngagementParameters, texts: Sequence[str]) -> dict[str, Mask]:
    """Per unhealthy cue pattern, the texts it matches."""
    return {
        f"{signal.value}: {cue}": np.array(
            [re.search(cue, t, re.IGNORECASE) is not None for t in texts]
        )
        for signal in parameters.unhealthy
        for cue in CUES.get(signal, ())
    }


def row_table(label: str, found: Mask, expected: Mask, parts: Sequence[Part]) -> str:
    cells = []
    for part in parts:
        p, r, tp, fp, fn = precision_recall(found[part.rows], expected[part.rows])
        cells.append(f"{p:.3f}/{r:.3f} ({tp:>3} {fp:>3} {fn:>3})")
    return f"  {label:<44} " + "  ".join(cells)


@dataclass(frozen=True)
class Tunable:
    """A semantic or engagement check: its parameters and its own decisions at them."""

    name: str
    parameters: SemanticParameters | EngagementParameters
    decisions: Mask


@dataclass(frozen=True)
class Tuning:
    """The tuning lines, their parts, one category's labels and the units' embeddings."""

    texts: Sequence[str]
    rows: Sequence[LabelledText]
    parts: Sequence[Part]
    expected: Mask
    unit_rows: npt.NDArray[np.int_]
    vectors: npt.NDArray[np.float32]


def decided(
    scores: Sequence[UnitScores], cues: Mask, data: Tuning, threshold: float, margin: float
) -> Mask:
    """The texts a check flags at ``threshold`` and ``margin``: a cue, or a unit's scores."""
    found = cues.copy()
    for unit_scores in scores:
        found |= unit_scores.violated(data.unit_rows, len(data.texts), threshold, margin)
    return found


def sweep(check: Tunable, data: Tuning, others: Mask, *, show: bool, top: int) -> None:
    """The category's figures with ``check`` at each candidate (its other checks as they are)."""
    parameters = check.parameters
    hits: dict[str, Mask] = {}
    if isinstance(parameters, SemanticParameters):
        scores = [semantic_scores(parameters, data.vectors)]
    else:
        scores = list(engagement_scores(parameters, data.vectors).values())
        hits = cue_hits(parameters, data.texts)
    cues = np.logical_or.reduce([*hits.values(), np.zeros(len(data.texts), dtype=bool)])
    current = decided(scores, cues, data, parameters.threshold, parameters.margin)
    mismatch = np.flatnonzero(current != check.decisions)
    assert not len(mismatch), f"{check.name}: recomputed decisions differ at rows {mismatch[:5]}"

    def figures(found: Mask) -> dict[str, tuple[float, float, int, int, int]]:
        return {p.name: precision_recall(found[p.rows], data.expected[p.rows]) for p in data.parts}

    base = figures(others | current)
    print(
        f"  -- {check.name}: threshold x margin (now {parameters.threshold} /"
        f" {parameters.margin}), the category's precision/recall (fp) with the check at each:"
    )
    candidates = []
    for threshold in THRESHOLDS:
        for margin in MARGINS:
            at = figures(others | decided(scores, cues, data, float(threshold), float(margin)))
            # No recall lost on either part of the tuning data.
            keeps = all(at[p][1] >= base[p][1] for p in ("corpus", "labelled"))
            distance = abs(threshold - parameters.threshold) + abs(margin - parameters.margin)
            rank = (keeps, at["both"][0], at["both"][1], -distance)
            candidates.append((rank, float(threshold), float(margin), at))
    candidates.sort(key=lambda c: c[0], reverse=True)
    for rank, threshold, margin, at in candidates[:top]:
        cells = "  ".join(
            f"{at[p.name][0]:.3f}/{at[p.name][1]:.3f} ({at[p.name][3]:>3})" for p in data.parts
        )
        print(f"    t={threshold:.2f} m={margin:.2f} keeps recall: {rank[0]!s:<5} {cells}")
    if hits:
        print("  -- cue patterns: lines flagged outside the category / inside it")
        for cue, hit in hits.items():
            wrong = hit & ~data.expected
            print(f"    {int(wrong.sum()):>3} / {int((hit & data.expected).sum()):>3}  {cue}")
            if show:
                for i in np.flatnonzero(wrong).tolist():
                    print(f"        {list(data.rows[i].labels)} {data.texts[i]}")


def check_decisions(
    engine: GuardrailEngine, batch: TextBatch
) -> tuple[dict[str, Mask], dict[str, str], dict[str, SemanticParameters | EngagementParameters]]:
    """Each check's own decisions at its current settings (a classifier's per category), the
    category of each, and the parameters of those a threshold and margin sweep applies to."""
    decisions: dict[str, Mask] = {}
    category_of: dict[str, str] = {}
    tunable: dict[str, SemanticParameters | EngagementParameters] = {}
    for compiled in engine.checks:
        spec = compiled.check.spec
        results = compiled.check.scan(batch)
        name = f"{compiled.policy}/{spec.name}"
        if isinstance(compiled.check, HazardCheck):
            # One decision per category the classifier check lists (its findings' categories).
            for category in compiled.check.categories:
                if category in CATEGORIES:
                    decisions[f"{name}:{category}"] = np.array(
                        [any(h.category == category for h in r.hits) for r in results]
                    )
                    category_of[f"{name}:{category}"] = category
            continue
        if spec.category not in CATEGORIES:
            continue
        decisions[name] = np.array([r.violated for r in results])
        category_of[name] = spec.category
        if isinstance(compiled.check, SemanticCheck) or (
            isinstance(compiled.check, EngagementCheck) and compiled.check.semantic_matching
        ):
            parameters = parse_parameters(spec)
            assert isinstance(parameters, SemanticParameters | EngagementParameters)
            tunable[name] = parameters
    return decisions, category_of, tunable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="List false positives and misses.")
    parser.add_argument("--top", type=int, default=8, help="Candidates listed per check.")
    args = parser.parse_args()
    rows: list[LabelledText] = load_corpus([CORPUS]) + load_corpus([LABELLED])
    corpus_size = len(load_corpus([CORPUS]))
    texts = [r.text for r in rows]
    in_corpus = np.arange(len(rows)) < corpus_size
    parts = (
        Part("corpus", in_corpus),
        Part("labelled", ~in_corpus),
        Part("both", np.ones(len(rows), dtype=bool)),
    )
    expected = {c: np.array([c in r.labels for r in rows]) for c in CATEGORIES}

    state = load_desired_state(ROOT).state
    assert state is not None, "the desired state does not load"
    used = {name for u in state.use_cases for name in u.spec.guardrails}
    policies = [p for p in state.policies if p.name in used]
    engine: GuardrailEngine = compile_policies(
        policies, embedder=default_embedder(), base_path=ROOT
    )
    batch = TextBatch(texts, default_embedder())
    vectors = batch.embeddings()
    unit_rows = np.array(batch.unit_rows)

    decisions, category_of, tunable = check_decisions(engine, batch)
    print(f"tuning lines: corpus {corpus_size}, labelled {len(rows) - corpus_size}")
    print("precision/recall (tp fp fn) on: " + ", ".join(p.name for p in parts))

    for category in CATEGORIES:
        names = [n for n in decisions if category_of[n] == category]
        union = np.logical_or.reduce([decisions[n] for n in names])
        print(f"\n== {category}")
        for name in names:
            print(row_table(name, decisions[name], expected[category], parts))
        print(row_table("category (any check)", union, expected[category], parts))

        for name in [n for n in names if n in tunable]:
            others = np.logical_or.reduce(
                [decisions[n] for n in names if n != name] or [np.zeros(len(rows), dtype=bool)]
            )
            sweep(
                Tunable(name, tunable[name], decisions[name]),
                Tuning(texts, rows, parts, expected[category], unit_rows, vectors),
                others,
                show=args.show,
                top=args.top,
            )
        if args.show:
            print("  -- false positives (labels, checks):")
            for i in np.flatnonzero(union & ~expected[category]):
                fired = [n.split("/")[1] for n in names if decisions[n][i]]
                print(f"    {list(rows[i].labels)} {fired} {texts[i]}")
            print("  -- misses:")
            for i in np.flatnonzero(~union & expected[category]):
                print(f"    {texts[i]}")


if __name__ == "__main__":
    main()
