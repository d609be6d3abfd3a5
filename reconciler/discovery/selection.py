"""Which use cases a discovery command works on: those named, or all with `spec.discovery`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.spec.model import UseCase


def load_valid(repo: Path) -> DesiredState:
    loaded = load_desired_state(repo)
    if loaded.state is None:
        shown = "\n".join(d.render() for d in loaded.diagnostics[:20])
        raise ReconcilerError(f"the desired state is invalid; nothing was done:\n{shown}")
    return loaded.state


def discoverable_use_cases(repo: Path, names: Sequence[str]) -> tuple[DesiredState, list[UseCase]]:
    desired = load_valid(repo)
    known = {u.name: u for u in desired.use_cases}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ReconcilerError(
            f"unknown use case(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    chosen = [known[n] for n in names] if names else list(desired.use_cases)
    without = [u.name for u in chosen if u.spec.discovery is None]
    if names and without:
        raise ReconcilerError(
            f"no spec.discovery in: {', '.join(without)}; add sources to look for upgrades"
        )
    return desired, [u for u in chosen if u.spec.discovery is not None]
