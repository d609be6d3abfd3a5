"""Recognisers of personal data, one module per family, each built on a well-kept library.

Each recogniser takes a text and returns the ``(start, end)`` spans it found; the PII check
(`reconciler.guardrails.checks.pii`) picks the kinds, resolves overlaps and masks.
"""

Span = tuple[int, int]
