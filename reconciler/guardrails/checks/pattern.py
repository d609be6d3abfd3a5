"""Pattern check: regular expressions and literal phrases, case-insensitive, with allow-lists.

An allow expression excuses only the matches it overlaps, not the whole text: "don't hurt
yourself" is excused, but a second, unexcused match elsewhere in the same text still counts.
"""

from __future__ import annotations

import re

from reconciler.guardrails.embeddings import TextBatch
from reconciler.guardrails.verdicts import PASSED, CheckResult
from reconciler.spec.guardrail_parameters import PatternParameters
from reconciler.spec.model import GuardrailCheck

EVIDENCE_CHARS = 80


def _phrase_expression(phrase: str) -> str:
    # Word boundaries only where the phrase starts or ends with a word character, so that
    # phrases such as "$49.99" still match.
    escaped = r"\s+".join(re.escape(word) for word in phrase.split())
    start = r"\b" if phrase[:1].isalnum() else ""
    end = r"\b" if phrase[-1:].isalnum() else ""
    return f"{start}{escaped}{end}"


class PatternCheck:
    def __init__(self, spec: GuardrailCheck, parameters: PatternParameters) -> None:
        self.spec = spec
        expressions = [*parameters.patterns, *map(_phrase_expression, parameters.phrases)]
        self._violations = [re.compile(e, re.IGNORECASE) for e in expressions]
        self._allowed = [re.compile(e, re.IGNORECASE) for e in parameters.allow]

    def first_violation(self, text: str) -> str | None:
        """The first matched span not excused by an allow expression."""
        excused = [m.span() for allow in self._allowed for m in allow.finditer(text)]
        for expression in self._violations:
            for match in expression.finditer(text):
                start, end = match.span()
                if not any(a_start < end and start < a_end for a_start, a_end in excused):
                    return match.group(0)
        return None

    def scan(self, batch: TextBatch) -> list[CheckResult]:
        results = []
        for text in batch.texts:
            matched = self.first_violation(text)
            results.append(
                PASSED
                if matched is None
                else CheckResult(violated=True, score=1.0, evidence=matched[:EVIDENCE_CHARS])
            )
        return results
