"""Choose ``staticPassBelow`` of semantic and engagement checks on the tuning data.

Tuning data only: the shipped corpus (``policies/corpus/*.jsonl``) and the old labelled set
(``tests/guardrails/data/labelled_outputs.jsonl``). The held-out set is never read here.

For every ``semantic`` and ``engagement`` check of the policies named (default: the shipped use
cases' ``player-safety`` and ``healthy-engagement``), each tuning
text is scored twice: by the check as it decides without a static stage (the full encoder on
every text) and by its static stage (the highest static-embedding similarity of the text or
one of its clauses to any of the check's exemplars). The texts the encoder stage *catches*
are those it flags (for an engagement check: those it sees any signal in, healthy ones too,
so the window's counts keep them). ``staticPassBelow`` is the static similarity under which
at most ``--loss`` of those fall, floored to three decimals: the cascade then keeps the
encoder's decisions on all the others, and a text below it passes without the encoder.

It prints, per check, the value, the share of caught texts kept, and the share of benign
tuning lines and of all tuning lines that still reach the encoder. Run from the repository
root:

    python tests/guardrails/choose_static_bands.py [--loss 0.02] [--policy NAME ...]

Measured on the shipped checks (2 December 2026) at ``--loss 0.02``: 40% of the benign
tuning lines (look-alikes by design) reach the encoder for healthy-engagement's engagement
check, which sets the value; 66% and 78% would for player-safety's nearest-exemplar checks
(self-harm, violence), which therefore do not set it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from choose_thresholds import keeping_all_but  # beside this script (run as a file)

from reconciler.guardrails.checks.engagement import EngagementCheck
from reconciler.guardrails.checks.semantic import SemanticCheck, static_similarity
from reconciler.guardrails.embeddings import TextBatch
from reconciler.guardrails.engine import compile_policies
from reconciler.guardrails.hazard_model import load_corpus
from reconciler.spec.loader import load_desired_state

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "policies" / "corpus"
LABELLED = ROOT / "tests" / "guardrails" / "data" / "labelled_outputs.jsonl"
SHIPPED_POLICIES = ("player-safety", "healthy-engagement")


def choose(static: np.ndarray, caught: np.ndarray, loss: float) -> float:
    """The static similarity under which at most ``loss`` of the caught texts fall."""
    if not caught.any():
        return 1.0
    return round(float(np.floor(keeping_all_but(static[caught], loss) * 1000)) / 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, default=0.02, help="Caught texts allowed below.")
    parser.add_argument("--policy", action="append", help="A policy in policies/ (repeatable).")
    args = parser.parse_args()
    rows = load_corpus([CORPUS]) + load_corpus([LABELLED])
    texts = [r.text for r in rows]
    benign = np.array([not r.labels for r in rows])
    loaded = load_desired_state(ROOT)
    assert loaded.state is not None, loaded.diagnostics
    wanted = set(args.policy or SHIPPED_POLICIES)
    policies = [p for p in loaded.state.policies if p.name in wanted]
    engine = compile_policies(policies, base_path=ROOT)
    batch = TextBatch(texts)
    reach = np.zeros(len(texts), dtype=bool)
    print(f"tuning lines: {len(texts)} ({int(benign.sum())} benign)")
    for compiled in engine.checks:
        check = compiled.check
        if not isinstance(check, SemanticCheck | EngagementCheck):
            continue
        configured = check.static_pass_below
        check.static_pass_below = None
        results = check.scan(batch)
        check.static_pass_below = configured
        if isinstance(check, SemanticCheck):
            caught = np.array([r.violated for r in results])
            sets = [check._harmful]
        else:
            caught = np.array([bool(r.signals) or r.violated for r in results])
            sets = list(check._exemplars.values())
        static = static_similarity(batch, sets)
        value = choose(static, caught, args.loss)
        above = static >= value
        reach |= above
        kept = (caught & above).sum() / max(1, caught.sum())
        print(
            f"{compiled.policy}/{check.spec.name}: staticPassBelow: {value}  "
            f"(caught {int(caught.sum())}, kept {kept:.3f}; reach the encoder: benign "
            f"{above[benign].mean():.3f}, all {above.mean():.3f}; configured {configured})"
        )
    print(
        f"with these values, lines reaching the encoder for some check: benign "
        f"{reach[benign].mean():.3f}, all {reach.mean():.3f}"
    )


if __name__ == "__main__":
    main()
