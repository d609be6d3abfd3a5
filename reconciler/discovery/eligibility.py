"""Whether a candidate may be proposed: every constraint checked, each failure a stated reason.

Pure: the clock, the rejected keys and the ignored proposals come in as values. Unknown facts
fail a constraint that needs them ("parameter count unknown") - a limit is never assumed met.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.discovery.candidate import Candidate
from reconciler.discovery.memory import estimated_memory_gib
from reconciler.spec.model import Constraints


@dataclass(frozen=True)
class EligibilityContext:
    constraints: Constraints
    now: datetime
    minimum_release_age: timedelta | None = None
    # Key tag -> reason, from `spec.rejected`.
    rejected: Mapping[str, str] | None = None
    # Candidate identity -> why it is ignored (a proposal closed without merging).
    ignored: Mapping[tuple[str, str, str | None], str] | None = None


def reasons_against(
    candidate: Candidate, keys: frozenset[str], context: EligibilityContext
) -> list[str]:
    """Every reason `candidate` may not be proposed; empty when it is eligible.

    `keys` are the key tags the candidate would have (base, and trained when the use case
    trains), to find it in `spec.rejected`.
    """
    reasons: list[str] = []
    constraints = context.constraints
    if constraints.licenses is not None:
        if candidate.license is None:
            reasons.append(f"license unknown; constraints.licenses allows {constraints.licenses}")
        elif candidate.license not in constraints.licenses:
            reasons.append(
                f"license {candidate.license!r} is not in constraints.licenses "
                f"{constraints.licenses}"
            )
    if constraints.max_parameters is not None:
        if candidate.parameters is None:
            reasons.append("parameter count unknown; constraints.maxParameters needs it")
        elif candidate.parameters > constraints.max_parameters:
            reasons.append(
                f"{candidate.parameters:.3g} parameters exceed constraints.maxParameters "
                f"{constraints.max_parameters:.3g}"
            )
    if constraints.max_memory_gib is not None:
        memory = estimated_memory_gib(candidate.parameters, candidate.bytes_per_parameter)
        if memory is None:
            reasons.append("serving memory unknown (no parameter count); constraints.maxMemoryGiB")
        elif memory > constraints.max_memory_gib:
            reasons.append(
                f"estimated serving memory {memory:.2f} GiB exceeds constraints.maxMemoryGiB "
                f"{constraints.max_memory_gib:g}"
            )
    if constraints.pipeline_tags is not None:
        if candidate.pipeline_tag is None:
            reasons.append(
                f"pipeline tag unknown; constraints.pipelineTags allows {constraints.pipeline_tags}"
            )
        elif candidate.pipeline_tag not in constraints.pipeline_tags:
            reasons.append(
                f"pipeline tag {candidate.pipeline_tag!r} is not in constraints.pipelineTags "
                f"{constraints.pipeline_tags}"
            )
    if candidate.min_downloads and (candidate.downloads or 0) < candidate.min_downloads:
        reasons.append(
            f"{candidate.downloads or 0} downloads < minDownloads {candidate.min_downloads}"
        )
    if context.minimum_release_age is not None:
        if candidate.released_at is None:
            reasons.append("release time unknown; minimumReleaseAge needs it")
        else:
            age = context.now - candidate.released_at
            if age < context.minimum_release_age:
                reasons.append(
                    f"released {_human(age)} ago, younger than minimumReleaseAge "
                    f"{_human(context.minimum_release_age)} (soaking)"
                )
    if candidate.expires_at is not None and candidate.expires_at <= context.now:
        reasons.append(f"the provider retires it on {candidate.expires_at.date().isoformat()}")
    for key in sorted(keys):
        if context.rejected and key in context.rejected:
            reasons.append(f"rejected before: {context.rejected[key]}")
            break
    if context.ignored and candidate.identity in context.ignored:
        reasons.append(f"ignored: {context.ignored[candidate.identity]}")
    return reasons


def _human(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
