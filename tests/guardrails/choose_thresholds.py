"""Choose the hazard cascade's thresholds and uncertain bands by cross-validation.

Tuning data only: the shipped corpus (``policies/corpus/*.jsonl``) and the old labelled set
(``tests/guardrails/data/labelled_outputs.jsonl``). The held-out set is never read here.

* Corpus lines are scored out of fold: stratified 5-fold, the classifiers refitted on four
  folds, the fifth scored (whole text and clauses, the highest unit counts, as the check does).
* Labelled-set lines are scored by the classifiers fitted on the whole corpus — exactly the
  shipped model, which never trained on them.

Per category, on those out-of-sample probabilities:

* ``threshold`` (encoder stage): the value maximising F0.5 (ties: the higher threshold);
* ``bandHigh``: above every negative's static probability plus a safety margin, so a static
  decision to fire never adds a false positive on the tuning data (1.0: never fire statically);
* ``bandLow``: the static probability under which at most ``--recall-loss`` of the positives
  the encoder stage catches fall, so the cascade keeps the encoder's recall within that loss.

It prints per-category precision/recall for the encoder alone and for the cascade, the share
of outputs that reach the encoder, and last the YAML ``categories:`` block to paste into the
policies. Run from the repository root:

    python tests/guardrails/choose_thresholds.py [--recall-loss 0.02] [--c 4]
        [--min-precision 0.9] [--category violence ...]

``--min-precision`` picks, per category, the lowest threshold whose out-of-fold precision
reaches it (F0.5's choice where none does); ``--category`` limits the bands and figures to
the categories one check lists (the shipped policies' checks list two and one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from reconciler.guardrails.embeddings import default_embedder
from reconciler.guardrails.hazard_model import (
    REGULARISATION_C,
    LabelledText,
    fit_scorer,
    label_matrix,
    load_corpus,
)
from reconciler.guardrails.static_embeddings import load_static_embedder

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "policies" / "corpus"
LABELLED = ROOT / "tests" / "guardrails" / "data" / "labelled_outputs.jsonl"
FOLDS = 5
SEED = 20261202
HIGH_MARGIN = 0.05


def out_of_sample(
    corpus: list[LabelledText],
    labelled: list[LabelledText],
    categories: list[str],
    c: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static and encoder-stage probabilities (rows: corpus then labelled set), and labels."""
    rows = corpus + labelled
    texts = [r.text for r in rows]
    static_vectors = load_static_embedder().encode(texts)
    # The encoder stage reads both views side by side, as the shipped check does.
    both = np.hstack([static_vectors, default_embedder().encode(texts)])
    labels = label_matrix(rows, categories)
    corpus_rows = np.arange(len(corpus))
    # Stratify by each line's first label ("" for benign look-alikes).
    strata = np.array([(r.labels or ("",))[0] for r in corpus])
    rng = np.random.default_rng(SEED)
    fold_of = np.zeros(len(corpus), dtype=int)
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        fold_of[members] = np.arange(len(members)) % FOLDS
    static = np.zeros((len(rows), len(categories)), dtype=np.float32)
    encoder = np.zeros_like(static)
    splits = [(corpus_rows[fold_of != f], corpus_rows[fold_of == f]) for f in range(FOLDS)]
    # Last, the labelled set, scored by the classifiers of the whole corpus (the shipped ones).
    splits.append((corpus_rows, np.arange(len(corpus), len(rows))))
    for train, test in splits:
        for vectors, target in ((static_vectors, static), (both, encoder)):
            scorer = fit_scorer(vectors[train], labels[train], c=c)
            target[test] = scorer.probabilities(vectors[test])
    return static, encoder, labels


def precision_recall(predicted: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    tp = int((predicted & expected).sum())
    fp = int((predicted & ~expected).sum())
    fn = int((~predicted & expected).sum())
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)


def f1(predicted: np.ndarray, expected: np.ndarray) -> float:
    p, r = precision_recall(predicted, expected)
    return 2 * p * r / (p + r) if p + r else 0.0


def f_half(predicted: np.ndarray, expected: np.ndarray) -> float:
    """F0.5: precision weighs twice recall. A false positive blocks an honest game line
    (and fails a candidate in the evaluation gate); patterns and cues add recall."""
    p, r = precision_recall(predicted, expected)
    return 1.25 * p * r / (0.25 * p + r) if p + r else 0.0


def choose_threshold(
    encoder: np.ndarray,
    is_top: np.ndarray,
    expected: np.ndarray,
    min_precision: float | None = None,
) -> float:
    """The encoder stage's threshold maximising F0.5 (ties: the higher one); as in the check,
    only a text's most likely category may fire. With ``min_precision``: the lowest threshold
    whose precision reaches it (most recall at that precision), F0.5's where none does."""
    if min_precision is not None:
        for t in np.round(np.arange(0.05, 0.99, 0.025), 3):
            predicted = (encoder >= t) & is_top
            precision, recall = precision_recall(predicted, expected)
            if precision >= min_precision and recall > 0:
                return float(t)
    grid = np.round(np.arange(0.05, 0.96, 0.025), 3)
    return float(max(grid, key=lambda t: (f_half((encoder >= t) & is_top, expected), t)))


def choose_band(
    static: np.ndarray, encoder: np.ndarray, expected: np.ndarray, threshold: float, loss: float
) -> tuple[float, float]:
    """(bandLow, bandHigh): static decisions add no false positive on the tuning data, and at
    most ``loss`` of the positives the encoder stage catches fall below bandLow."""
    negatives = static[~expected]
    high = float(min(1.0, round(float(negatives.max(initial=0.0)) + HIGH_MARGIN, 3)))
    caught = static[expected & (encoder >= threshold)]
    low = keeping_all_but(caught, loss) if len(caught) else threshold
    return float(np.floor(min(low, high) * 1000) / 1000), high


def keeping_all_but(scores: np.ndarray, loss: float) -> float:
    """The score under which at most ``loss`` of these scores fall (unrounded)."""
    ordered = np.sort(scores)
    return float(ordered[min(int(np.floor(loss * len(ordered))), len(ordered) - 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recall-loss", type=float, default=0.02, help="Smallest loss tried.")
    parser.add_argument(
        "--encoder-share", type=float, default=0.4, help="Most benign lines sent to the encoder."
    )
    parser.add_argument("--c", type=float, default=REGULARISATION_C)
    parser.add_argument(
        "--min-precision",
        type=float,
        help="Per category the lowest threshold reaching this precision (F0.5 where none does).",
    )
    parser.add_argument(
        "--category",
        action="append",
        help="Only these categories (repeatable): bands and figures for a check that lists them.",
    )
    args = parser.parse_args()
    corpus = load_corpus([CORPUS])
    labelled = load_corpus([LABELLED])
    categories = sorted({label for row in corpus for label in row.labels})
    static, encoder, labels = out_of_sample(corpus, labelled, categories, args.c)
    expected = labels.astype(bool)
    benign = ~expected.any(axis=1)
    print(f"C={args.c}, corpus {len(corpus)} lines, labelled set {len(labelled)} lines")
    top = encoder.argmax(axis=1)
    thresholds = [
        choose_threshold(encoder[:, j], top == j, expected[:, j], args.min_precision)
        for j in range(len(categories))
    ]
    unknown = set(args.category or ()) - set(categories)
    if unknown:
        parser.error(f"no such category in the corpus: {', '.join(sorted(unknown))}")
    chosen = [j for j, c in enumerate(categories) if not args.category or c in args.category]
    # The smallest recall loss whose bands send at most --encoder-share of the benign lines
    # (what a game mostly emits) to the encoder.
    for loss in np.arange(args.recall_loss, 0.5, 0.01):
        bands = [
            choose_band(static[:, j], encoder[:, j], expected[:, j], thresholds[j], loss)
            for j in range(len(categories))
        ]
        low = np.array([b[0] for b in bands])
        high = np.array([b[1] for b in bands])
        in_band = (static >= low) & (static < high)
        # A check that lists only some categories sends a text on for those only.
        in_band[:, [j for j in range(len(categories)) if j not in chosen]] = False
        if in_band.any(axis=1)[benign].mean() <= args.encoder_share:
            break
    print(f"recall loss allowed per category: {loss:.2f}")
    columns = ("enc P", "enc R", "cas P", "cas R", "thr", "low", "high")
    print(f"{'category':<24} " + " ".join(f"{c:>6}" for c in columns))
    macro = []
    reached = in_band.any(axis=1)
    # Per text, the probabilities of the last stage it reached, and the most likely category.
    best = np.where(reached[:, None], encoder, static)
    static_top, best_top = static.argmax(axis=1), best.argmax(axis=1)
    for j in chosen:
        category = categories[j]
        cascade = ((static[:, j] >= high[j]) & (static_top == j)) | (
            in_band[:, j] & (best[:, j] >= thresholds[j]) & (best_top == j)
        )
        ep, er = precision_recall((encoder[:, j] >= thresholds[j]) & (top == j), expected[:, j])
        cp, cr = precision_recall(cascade, expected[:, j])
        macro.append(f1(cascade, expected[:, j]))
        print(
            f"{category:<24} {ep:>6.3f} {er:>6.3f} {cp:>6.3f} {cr:>6.3f}"
            f" {thresholds[j]:>6.3f} {low[j]:>6.3f} {high[j]:>6.3f}"
        )
    print(f"macro F1 (cascade): {np.mean(macro):.3f}")
    print(
        f"reach the encoder: {reached.mean():.3f} of all tuning lines, "
        f"{reached[benign].mean():.3f} of benign ones"
    )
    print("categories:")
    for j in chosen:
        category = categories[j]
        print(
            f"  {category}: {{threshold: {thresholds[j]}, bandLow: {low[j]}, bandHigh: {high[j]}}}"
        )
    summary = {
        "macro_f1": round(float(np.mean(macro)), 4),
        "encoder_fraction_benign": round(float(reached[benign].mean()), 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
