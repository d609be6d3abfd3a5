"""The gateway's inline hook: pass, block or replace each output before a player sees it.

The gateway defines the `OutputGuard` protocol it calls (`reconciler.gateway.guard`);
`PolicyOutputGuard` implements it with the use case's guardrail policies. Each violation is
reported as a label ``category:policy/check:severity``, which the request log keeps. An
output is stopped when one of its findings maps to ``block_output`` or ``rollback``. When
masking personal data is enough to make it pass, the masked text replaces it (the player still
gets an answer); otherwise a configured in-character fallback line replaces it, or it is
blocked. A finding mapped to ``adjust_parameters`` has the gateway generate the answer again
with conservative sampling (and judge that one). ``retrain`` and ``log_only`` findings let the
output through, recorded: they are the monitor's and the next training's business (flagged
outputs never become training data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.gateway.guard import GuardAction, GuardDecision, OutputGuard
from reconciler.guardrails.checks.pii import mask_pii
from reconciler.guardrails.embeddings import Embedder
from reconciler.guardrails.engine import GuardrailEngine, Stage, compile_policies
from reconciler.guardrails.store import ViolationStore
from reconciler.guardrails.verdicts import Finding, Verdict
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import Intervention

STOPPING_INTERVENTIONS = frozenset({Intervention.BLOCK_OUTPUT, Intervention.ROLLBACK})


__all__ = ["GuardAction", "GuardDecision", "OutputGuard", "PolicyOutputGuard", "violation_label"]


def violation_label(finding: Finding) -> str:
    return f"{finding.category}:{finding.policy}/{finding.check}:{finding.severity.value}"


def _stops(verdict: Verdict) -> bool:
    return any(f.intervention in STOPPING_INTERVENTIONS for f in verdict.findings)


class PolicyOutputGuard:
    """An `OutputGuard` from guardrail engines per use case; records violations if given a store.

    Use cases without an engine (no guardrails listed) pass unchecked.
    """

    def __init__(
        self,
        engines: Mapping[str, GuardrailEngine],
        *,
        store: ViolationStore | None = None,
        fallback: str | None = None,
    ) -> None:
        self.engines = dict(engines)
        self.store = store
        self.fallback = fallback

    @classmethod
    def from_desired_state(
        cls,
        state: DesiredState,
        *,
        store: ViolationStore | None = None,
        fallback: str | None = None,
        embedder: Embedder | None = None,
        base_path: Path = Path("."),
    ) -> PolicyOutputGuard:
        engines = {
            use_case.name: compile_policies(
                [state.policy(name) for name in use_case.spec.guardrails],
                embedder=embedder,
                base_path=base_path,
            )
            for use_case in state.use_cases
            if use_case.spec.guardrails
        }
        return cls(engines, store=store, fallback=fallback)

    def outputs_by_stage(self) -> dict[str, int]:
        """Outputs checked so far, by the last cascade stage they reached, over all engines."""
        totals = dict.fromkeys((s.value for s in Stage), 0)
        for engine in self.engines.values():
            for stage, count in engine.outputs_by_stage().items():
                totals[stage.value] += count
        return totals

    def inspect(self, use_case: str, version: str, text: str) -> GuardDecision:
        return self.inspect_batch(use_case, version, [text])[0]

    def inspect_batch(
        self, use_case: str, version: str, texts: Sequence[str]
    ) -> list[GuardDecision]:
        """One decision per text; the batch is checked (and embedded) in one pass."""
        engine = self.engines.get(use_case)
        if engine is None:
            return [GuardDecision(GuardAction.PASS) for _ in texts]
        verdicts = engine.check_batch(texts)
        decisions = []
        for text, verdict in zip(texts, verdicts, strict=True):
            if self.store is not None:
                self.store.record(use_case=use_case, version=version, text=text, verdict=verdict)
            decisions.append(self._decide(engine, text, verdict))
        return decisions

    def _decide(self, engine: GuardrailEngine, text: str, verdict: Verdict) -> GuardDecision:
        labels = tuple(violation_label(f) for f in verdict.findings)
        if not _stops(verdict):
            if any(f.intervention is Intervention.ADJUST_PARAMETERS for f in verdict.findings):
                return GuardDecision(GuardAction.REGENERATE, violations=labels)
            return GuardDecision(GuardAction.PASS, violations=labels)
        masked = mask_pii(text)
        if masked != text and not _stops(engine.check(masked)):
            return GuardDecision(GuardAction.REPLACE, masked, labels)
        if self.fallback is not None:
            return GuardDecision(GuardAction.REPLACE, self.fallback, labels)
        return GuardDecision(GuardAction.BLOCK, violations=labels)
