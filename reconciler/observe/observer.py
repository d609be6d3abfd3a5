"""Observe: one snapshot of everything the plan depends on, for the use cases desired."""

from __future__ import annotations

from types import MappingProxyType

from reconciler.observe.readers import RegistryReader, TrafficReader
from reconciler.observe.state import ObservedState
from reconciler.spec.loader import DesiredState


def observe(
    desired: DesiredState, registry: RegistryReader, traffic: TrafficReader
) -> ObservedState:
    names = [use_case.spec.registered_model for use_case in desired.use_cases]
    models = registry.snapshot(names)
    routes = traffic.snapshot([use_case.name for use_case in desired.use_cases])
    return ObservedState(registry=MappingProxyType(dict(models)), traffic=routes)
