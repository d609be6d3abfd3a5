"""Discovery of one use case: scan its sources, check and rank what they offer.

The I/O (asking the sources) happens once in `scan_use_case`; `assess` is pure - the same
reports, rejections, ignores and clock give the same ranking - so `discover`, `propose`, the
controller and the tests all judge candidates the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.discovery.acceptable import (
    entry_for,
    identity_of,
    same_model,
    with_preferred,
)
from reconciler.discovery.candidate import Candidate, SourceKind, SourceReport
from reconciler.discovery.eligibility import EligibilityContext, reasons_against
from reconciler.discovery.memory import estimated_memory_gib
from reconciler.discovery.ranking import rank
from reconciler.discovery.retries import RetryPolicy
from reconciler.discovery.sources import build_source, scan
from reconciler.spec.discovery import RankingWeights
from reconciler.spec.durations import duration_seconds
from reconciler.spec.identity import base_model_descriptor
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase

Identity = tuple[str, str, str | None]


@dataclass(frozen=True)
class RankedCandidate:
    candidate: Candidate
    score: float
    breakdown: Mapping[str, float]
    unknown: tuple[str, ...]
    eligible: bool
    reasons: tuple[str, ...]
    better: bool
    memory_gib: float | None
    entry: Mapping[str, Any] | None  # the acceptable-model entry a proposal writes

    def as_json(self) -> dict[str, Any]:
        c = self.candidate
        return {
            "source": c.source.value,
            "id": c.id,
            "revision": c.revision,
            "license": c.license,
            "parameters": c.parameters,
            "released_at": c.released_at.isoformat() if c.released_at else None,
            "memory_gib": round(self.memory_gib, 3) if self.memory_gib is not None else None,
            "score": self.score,
            "breakdown": dict(self.breakdown),
            "unknown": list(self.unknown),
            "eligible": self.eligible,
            "reasons": list(self.reasons),
            "better": self.better,
        }


@dataclass(frozen=True)
class UseCaseDiscovery:
    name: str
    current: RankedCandidate
    candidates: tuple[RankedCandidate, ...]  # best first; eligible before ineligible
    sources: tuple[SourceReport, ...]

    @property
    def best(self) -> RankedCandidate | None:
        """The highest-ranked candidate that is eligible and better than the current base."""
        return next((c for c in self.candidates if c.better), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "current": self.current.as_json(),
            "candidates": [c.as_json() for c in self.candidates],
            "sources": [
                {
                    "source": r.source,
                    "candidates": len(r.candidates),
                    "skipped": r.skipped,
                    "passed_over": [p.line for p in r.passed_over],
                }
                for r in self.sources
            ],
        }


def current_candidate(use_case: UseCase) -> Candidate:
    model = use_case.spec.preferred_model
    descriptor = base_model_descriptor(use_case)
    return Candidate(
        source=SourceKind(model.source.value),
        id=model.reference,
        revision=descriptor.get("revision"),
        license=model.license,
        parameters=model.parameters,
        path=model.reference if model.source.value == "local" else None,
    )


def scan_use_case(
    use_case: UseCase,
    *,
    repo: Path,
    environ: Mapping[str, str],
    policy: RetryPolicy | None = None,
) -> list[SourceReport]:
    discovery = use_case.spec.discovery
    if discovery is None:
        return []
    policy = policy or RetryPolicy()
    sources = [
        build_source(entry, repo=repo, environ=environ, policy=policy)
        for entry in discovery.sources
    ]
    return scan(sources)


def assess(
    use_case: UseCase,
    desired: DesiredState,
    reports: Sequence[SourceReport],
    *,
    now: datetime,
    ignored: Mapping[Identity, str] | None = None,
) -> UseCaseDiscovery:
    """Check every candidate against the constraints and rank them with the current base."""
    discovery = use_case.spec.discovery
    weights = (discovery.weights if discovery else RankingWeights()).as_dict()
    soak = (
        timedelta(seconds=duration_seconds(discovery.minimum_release_age))
        if discovery and discovery.minimum_release_age
        else None
    )
    current = current_candidate(use_case)
    seen: dict[Identity, Candidate] = {}
    for report in reports:
        for candidate in report.candidates:
            if same_model(candidate, use_case):
                # The base itself, as a source describes it: rank the base with that data.
                current = _enriched(current, candidate)
                continue
            seen.setdefault(candidate.identity, candidate)
    found = list(seen.values())
    pool = [current, *found]
    scores = rank(pool, weights, now=now)
    context = EligibilityContext(
        constraints=use_case.spec.constraints,
        now=now,
        minimum_release_age=soak,
        rejected={r.key: r.reason for r in use_case.spec.rejected},
        ignored=ignored or {},
    )
    base_score = scores[0].total
    ranked = []
    for candidate, score in zip(found, scores[1:], strict=True):
        entry, unwritable = entry_for(candidate)
        keys = _keys(use_case, desired, entry) if entry is not None else frozenset()
        reasons = reasons_against(candidate, keys, context)
        if unwritable:
            reasons.append(unwritable)
        eligible = not reasons
        ranked.append(
            RankedCandidate(
                candidate=candidate,
                score=score.total,
                breakdown=score.breakdown,
                unknown=score.unknown,
                eligible=eligible,
                reasons=tuple(reasons),
                better=eligible and score.total > base_score,
                memory_gib=estimated_memory_gib(
                    candidate.parameters, candidate.bytes_per_parameter
                ),
                entry=entry,
            )
        )
    ranked.sort(key=lambda r: (not r.eligible, -r.score, r.candidate.label))
    base = RankedCandidate(
        candidate=current,
        score=base_score,
        breakdown=scores[0].breakdown,
        unknown=scores[0].unknown,
        eligible=True,
        reasons=(),
        better=False,
        memory_gib=estimated_memory_gib(current.parameters, current.bytes_per_parameter),
        entry=None,
    )
    return UseCaseDiscovery(use_case.name, base, tuple(ranked), tuple(reports))


def _keys(use_case: UseCase, desired: DesiredState, entry: Mapping[str, Any]) -> frozenset[str]:
    """The key tags the candidate would carry: as a base, and as the trained version."""
    proposed = with_preferred(use_case, entry)
    identity = identity_of(proposed, desired)
    return frozenset({identity.base_key, identity.target_key})


def _enriched(current: Candidate, seen: Candidate) -> Candidate:
    """The current base with what a source knows of it, keeping what the spec pins."""
    return replace(
        seen,
        source=current.source,
        id=current.id,
        revision=current.revision if current.revision is not None else seen.revision,
        license=current.license or seen.license,
        parameters=current.parameters if current.parameters is not None else seen.parameters,
        path=current.path,
    )


def discover_use_case(
    use_case: UseCase,
    desired: DesiredState,
    *,
    repo: Path,
    environ: Mapping[str, str],
    now: datetime,
    ignored: Mapping[Identity, str] | None = None,
    policy: RetryPolicy | None = None,
) -> UseCaseDiscovery:
    reports = scan_use_case(use_case, repo=repo, environ=environ, policy=policy)
    return assess(use_case, desired, reports, now=now, ignored=ignored)
