"""Engagement check: healthy versus harmful engagement, per output and per window.

Per output, each configured signal is seen when one of its cue patterns matches or when the
text is close enough to the signal's exemplars (and closer to them than to the fiction
look-alikes by the margin). Any unhealthy signal makes the output a violation; healthy
signals are reported alongside, never to excuse an unhealthy one. `EngagementWindow`
aggregates outputs over a window and compares the share showing unhealthy signals with the
policy's ``windowViolationRate``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.guardrails.checks.engagement_signals import CUES, EXEMPLARS, FICTION, Signal
from reconciler.guardrails.checks.semantic import ExemplarSet, best_matches, rows_reaching_encoder
from reconciler.guardrails.embeddings import TextBatch
from reconciler.guardrails.verdicts import CheckResult, Verdict
from reconciler.spec.guardrail_parameters import (
    EngagementParameters,
    HealthySignal,
    UnhealthySignal,
)
from reconciler.spec.model import GuardrailCheck


class EngagementCheck:
    def __init__(self, spec: GuardrailCheck, parameters: EngagementParameters) -> None:
        self.spec = spec
        self.threshold = parameters.threshold
        self.margin = parameters.margin
        self.window_violation_rate = parameters.window_violation_rate
        self.semantic_matching = parameters.semantic_matching
        self.static_pass_below = parameters.static_pass_below
        extra = {str(k): v for k, v in parameters.extra_exemplars.items()}
        self._signals: list[Signal] = [*parameters.unhealthy, *parameters.healthy]
        self._exemplars = {
            s: ExemplarSet([*EXEMPLARS[s], *extra.get(s.value, [])]) for s in self._signals
        }
        self._cues = {
            s: [re.compile(c, re.IGNORECASE) for c in CUES.get(s, ())] for s in self._signals
        }
        # An unhealthy signal must stand out from the fiction and from healthy talk ("come
        # back whenever suits you" is close to "come back every day" in embedding space).
        healthy_sentences = [e for s in HealthySignal for e in EXEMPLARS[s]]
        unhealthy_sentences = [e for s in UnhealthySignal for e in EXEMPLARS[s]]
        self._contrast: dict[type, ExemplarSet] = {
            UnhealthySignal: ExemplarSet([*FICTION, *healthy_sentences]),
            HealthySignal: ExemplarSet(unhealthy_sentences),
        }

    def scan(self, batch: TextBatch) -> list[CheckResult]:
        if not batch.texts:
            return []
        seen: list[dict[Signal, float]] = [{} for _ in batch.texts]
        for signal in self._signals:
            for row, text in enumerate(batch.texts):
                if any(cue.search(text) for cue in self._cues[signal]):
                    seen[row][signal] = 1.0
        if self.semantic_matching:
            self._match_exemplars(batch, seen)
        return [self._result(signals) for signals in seen]

    def _match_exemplars(self, batch: TextBatch, seen: list[dict[Signal, float]]) -> None:
        # The static stage (when configured) passes the texts near no signal's exemplars,
        # healthy ones included, so the healthy signals of the window stay counted.
        rows = rows_reaching_encoder(batch, list(self._exemplars.values()), self.static_pass_below)
        if not rows:
            return
        units, vectors = batch.encoder_embeddings(rows)
        contrast = {
            kind: best_matches(vectors, sentences, batch.embedder)[0]
            for kind, sentences in self._contrast.items()
        }
        for signal in self._signals:
            scores, _ = best_matches(vectors, self._exemplars[signal], batch.embedder)
            contrast_scores = contrast[type(signal)]
            for position, unit in enumerate(units):
                score = scores[position]
                if score >= self.threshold and score - contrast_scores[position] >= self.margin:
                    row = batch.unit_rows[unit]
                    seen[row][signal] = max(seen[row].get(signal, 0.0), score)

    @staticmethod
    def _result(signals: dict[Signal, float]) -> CheckResult:
        unhealthy = {s: v for s, v in signals.items() if isinstance(s, UnhealthySignal)}
        names = tuple(s.value for s in sorted(signals, key=signals.__getitem__, reverse=True))
        return CheckResult(
            violated=bool(unhealthy),
            score=max(unhealthy.values(), default=0.0),
            evidence=", ".join(s.value for s in unhealthy),
            signals=names,
        )


@dataclass(frozen=True)
class EngagementWindow:
    """Engagement over a window of outputs: shares with unhealthy and with healthy signals."""

    outputs: int
    unhealthy: int
    healthy: int
    limit: float

    @classmethod
    def of(
        cls, verdicts: Iterable[Verdict], *, limit: float, category: str | None = None
    ) -> EngagementWindow:
        """The window of these verdicts. An output counts as unhealthy when it shows an
        unhealthy signal or, with ``category``, when any check found that category in it
        (a classifier catching the paraphrases the check's cues miss)."""
        unhealthy_names = {s.value for s in UnhealthySignal}
        healthy_names = {s.value for s in HealthySignal}
        outputs = unhealthy = healthy = 0
        for verdict in verdicts:
            outputs += 1
            unhealthy += any(s in unhealthy_names for s in verdict.signals) or any(
                f.category == category for f in verdict.findings
            )
            healthy += any(s in healthy_names for s in verdict.signals)
        return cls(outputs=outputs, unhealthy=unhealthy, healthy=healthy, limit=limit)

    @property
    def unhealthy_rate(self) -> float:
        return self.unhealthy / self.outputs if self.outputs else 0.0

    @property
    def healthy_rate(self) -> float:
        return self.healthy / self.outputs if self.outputs else 0.0

    @property
    def exceeded(self) -> bool:
        """True when more outputs than the policy allows showed an unhealthy signal."""
        return self.outputs > 0 and self.unhealthy_rate > self.limit
