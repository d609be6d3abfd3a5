"""Evaluation: candidate against champion on behaviour, quality, latency, safety, assertions."""
