"""load -> observe -> plan, wired to the configured adapters. The one place they meet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.observe.observer import observe
from reconciler.observe.readers import TrafficReader
from reconciler.observe.state import ObservedState
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.settings import Settings
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.loader import DesiredState, load_desired_state
from reconciler.state_store.database import StateDatabase
from reconciler.traffic.remote import GatewayTrafficReader
from reconciler.traffic.store import TrafficStore


@dataclass(frozen=True)
class PlanResult:
    plan: Plan | None
    diagnostics: tuple[Diagnostic, ...]
    desired: DesiredState | None = None
    observed: ObservedState | None = None


def make_plan(
    repo: Path,
    ref: str | None,
    settings: Settings,
    *,
    only: Sequence[str] | None = None,
    local_traffic: bool = False,
) -> PlanResult:
    """`local_traffic` reads the route table from the state folder even when
    `RECONCILER_GATEWAY_URL` is set (apply must see the table it is about to write)."""
    loaded = load_desired_state(repo, ref)
    if loaded.state is None:
        return PlanResult(None, loaded.diagnostics)
    desired = loaded.state
    if only:
        unknown = sorted(set(only) - {u.name for u in desired.use_cases})
        if unknown:
            known = ", ".join(u.name for u in desired.use_cases)
            raise ReconcilerError(f"unknown use case {', '.join(unknown)} (known: {known})")
    registry = MlflowRegistry(settings.tracking_uri, settings.registry_uri)
    observed = observe(desired, registry, traffic_reader(settings, local=local_traffic))
    return PlanResult(diff(desired, observed, only=only), loaded.diagnostics, desired, observed)


def traffic_reader(settings: Settings, *, local: bool = False) -> TrafficReader:
    """The gateway's route table over HTTP when one is configured, else the state folder's."""
    if settings.gateway_url and not local:
        return GatewayTrafficReader(settings.gateway_url, token=settings.gateway_token)
    return TrafficStore(StateDatabase.of(settings))
