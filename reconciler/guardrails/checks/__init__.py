"""Check types: one module each, all offline on CPU, all scanning a whole batch at once.

`build_check` turns a `GuardrailCheck` of the desired state into a runnable `Check`. Checks
that need embeddings read them from the shared `TextBatch`, so a batch is embedded once
however many semantic and engagement checks there are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from reconciler.guardrails.embeddings import Embedder, TextBatch
from reconciler.guardrails.verdicts import CheckResult
from reconciler.spec.guardrail_parameters import (
    ClassifierParameters,
    EngagementParameters,
    HazardParameters,
    PatternParameters,
    PiiParameters,
    SemanticParameters,
    parse_parameters,
)
from reconciler.spec.model import GuardrailCheck


class Check(Protocol):
    """One compiled check: a result per text of the batch, in order."""

    spec: GuardrailCheck

    def scan(self, batch: TextBatch) -> list[CheckResult]: ...


def build_check(
    spec: GuardrailCheck,
    *,
    base_path: Path,
    embedder: Embedder | None = None,
    static_embedder: Embedder | None = None,
) -> Check:
    """A runnable check; raises `pydantic.ValidationError` for invalid parameters.

    A hazard check trains its classifier here (or loads it from the cache), with these
    embedders (the process-wide defaults when None).
    """
    parameters = parse_parameters(spec)
    if isinstance(parameters, HazardParameters):
        from reconciler.guardrails.checks.hazard import HazardCheck

        return HazardCheck(
            spec,
            parameters,
            base_path=base_path,
            embedder=embedder,
            static_embedder=static_embedder,
        )
    if isinstance(parameters, PatternParameters):
        from reconciler.guardrails.checks.pattern import PatternCheck

        return PatternCheck(spec, parameters)
    if isinstance(parameters, SemanticParameters):
        from reconciler.guardrails.checks.semantic import SemanticCheck

        return SemanticCheck(spec, parameters)
    if isinstance(parameters, PiiParameters):
        from reconciler.guardrails.checks.pii import PiiCheck

        return PiiCheck(spec, parameters)
    if isinstance(parameters, EngagementParameters):
        from reconciler.guardrails.checks.engagement import EngagementCheck

        return EngagementCheck(spec, parameters)
    if isinstance(parameters, ClassifierParameters):
        from reconciler.guardrails.checks.classifier import ClassifierCheck

        model = Path(parameters.model)
        return ClassifierCheck(
            spec, parameters, model if model.is_absolute() else base_path / model
        )
    raise TypeError(f"no check implements {type(parameters).__name__}")
