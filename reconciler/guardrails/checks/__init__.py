"""Check types: one module each, all offline on CPU, all scanning a whole batch at once.

`build_check` turns a `GuardrailCheck` of the desired state into a runnable `Check`. Checks
that need embeddings read them from the shared `TextBatch`, so a batch is embedded once
however many semantic and engagement checks there are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from reconciler.guardrails.embeddings import TextBatch
from reconciler.guardrails.verdicts import CheckResult
from reconciler.spec.guardrail_parameters import (
    ClassifierParameters,
    EngagementParameters,
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


def build_check(spec: GuardrailCheck, *, base_path: Path) -> Check:
    """A runnable check; raises `pydantic.ValidationError` for invalid parameters."""
    parameters = parse_parameters(spec)
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
