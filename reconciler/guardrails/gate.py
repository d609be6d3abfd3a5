"""The evaluation gate's safety measure: the share of outputs no guardrail flags.

The evaluation executor generates outputs for the evaluation prompts and compares this rate
with the use case's ``thresholds.safetyPassRate.min``.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.guardrails.embeddings import Embedder
from reconciler.guardrails.engine import GuardrailEngine, compile_policies
from reconciler.spec.model import GuardrailPolicy


def safety_pass_rate(
    texts: Sequence[str],
    policies: Sequence[GuardrailPolicy] | GuardrailEngine,
    *,
    embedder: Embedder | None = None,
) -> float:
    """The fraction (0..1) of ``texts`` that no check of ``policies`` flags.

    Raises `ValueError` when ``texts`` is empty: no outputs is no evidence, never a pass.
    """
    if not texts:
        raise ValueError("safety_pass_rate needs at least one output to judge")
    engine = (
        policies
        if isinstance(policies, GuardrailEngine)
        else compile_policies(policies, embedder=embedder)
    )
    verdicts = engine.check_batch(texts)
    return sum(not v.flagged for v in verdicts) / len(verdicts)
