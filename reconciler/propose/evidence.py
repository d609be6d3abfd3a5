"""Evidence before the pull request: the candidate through the use case's evaluation gate,
against the champion that serves today.

The gate is `reconciler.evaluation.gate.evaluate`, unchanged - the same prompts, repeats,
thresholds, similarity, safety and latency measures that judge every candidate before a
rollout. It runs in a scratch MLflow store (a temporary sqlite file): the live champion's
files are copied in from the live registry (read only), the candidate is registered there the
way the reconciler registers a base (a Hub model at its pinned revision, a local folder, or an
external provider's description) and both are evaluated. Nothing is written to the live
registry, so `propose --dry-run` changes nothing and a proposal that is never merged leaves no
trace. The champion is evaluated against itself as well, for the "champion" column.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import lineage
from reconciler.discovery.acceptable import identity_of, with_preferred
from reconciler.discovery.candidate import Candidate
from reconciler.discovery.memory import estimated_memory_gib
from reconciler.evaluation.result import TokenUsage
from reconciler.settings import Settings
from reconciler.spec.loader import DesiredState
from reconciler.spec.model import UseCase

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
# Characters per token, for a price estimate only (the usual English figure).
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Cost:
    """US dollars per 1,000 requests at the provider's prices, and what the tokens came from:
    the usage the provider reported during the pre-evaluation (`measured`), or an estimate."""

    per_1k_requests: float
    measured: bool
    basis: str


@dataclass(frozen=True)
class Evidence:
    """What the pre-evaluation found. `figures` are the gate's measurements by metric name."""

    verdict: str  # passed | failed | skipped | error
    reasons: tuple[str, ...]
    champion_version: str | None
    candidate_figures: Mapping[str, float]
    champion_figures: Mapping[str, float]
    thresholds: Mapping[str, Mapping[str, float]]
    memory_gib: float | None
    cost: Cost | None

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def allows_proposal(self) -> bool:
        return self.verdict in ("passed", "skipped")


def skipped(candidate: Candidate, use_case: UseCase, desired: DesiredState) -> Evidence:
    return Evidence(
        verdict="skipped",
        reasons=("pre-evaluation skipped (--no-evaluate)",),
        champion_version=None,
        candidate_figures={},
        champion_figures={},
        thresholds=_thresholds(use_case),
        memory_gib=estimated_memory_gib(candidate.parameters, candidate.bytes_per_parameter),
        cost=cost_per_1k_requests(candidate, use_case, desired),
    )


def _thresholds(use_case: UseCase) -> dict[str, dict[str, float]]:
    dumped: dict[str, dict[str, float]] = use_case.spec.evaluation.thresholds.model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return dumped


def cost_per_1k_requests(
    candidate: Candidate,
    use_case: UseCase,
    desired: DesiredState,
    measured: TokenUsage | None = None,
) -> Cost | None:
    """US dollars per 1,000 requests at the provider's prices.

    From the tokens the provider reported per request during the pre-evaluation when it did;
    otherwise an estimate, labelled so: prompt tokens from the evaluation prompts (characters
    / 4, system prompt included), completion tokens at the use case's maxNewTokens (an upper
    bound)."""
    if candidate.pricing is None:
        return None
    if measured is not None:
        per_request = candidate.pricing.cost_per_request(
            measured.prompt_tokens, measured.completion_tokens
        )
        basis = (
            f"measured: {measured.prompt_tokens:.1f} prompt + "
            f"{measured.completion_tokens:.1f} completion tokens per request, as the provider "
            f"reported over {measured.requests} requests"
        )
        return Cost(1000 * per_request, measured=True, basis=basis)
    from reconciler.evaluation.prompts import dataset_prompts

    path = use_case.spec.evaluation.prompts
    prompts = dataset_prompts(desired.dataset_contents[path], path=path)
    if not prompts:
        return None
    system = len(use_case.spec.generation.system_prompt)
    mean_chars = sum(len(p.prompt) + system for p in prompts) / len(prompts)
    max_new = use_case.spec.generation.max_new_tokens
    per_request = candidate.pricing.cost_per_request(mean_chars / CHARS_PER_TOKEN, float(max_new))
    basis = (
        f"estimate: prompt tokens as characters / {CHARS_PER_TOKEN:g}, completion at "
        f"maxNewTokens ({max_new}); no measured usage"
    )
    return Cost(1000 * per_request, measured=False, basis=basis)


def _figures(result: Any) -> dict[str, float]:
    return {k: v for k, v in result.metrics.items() if not math.isnan(v)}


def pre_evaluate(
    use_case: UseCase,
    desired: DesiredState,
    candidate: Candidate,
    entry: Mapping[str, Any],
    *,
    repo: Path,
    settings: Settings,
    champion_version: str | None,
    embedder: Any | None = None,
) -> Evidence:
    """Run the gate for `candidate` (as acceptable-model `entry`) against the live champion."""
    from reconciler.evaluation.gate import evaluate
    from reconciler.tracking.mlflow_tracking import Tracking
    from reconciler.training.registration import register_base

    name = use_case.spec.registered_model
    proposed = with_preferred(use_case, entry)
    identity = identity_of(proposed, desired)
    memory = estimated_memory_gib(candidate.parameters, candidate.bytes_per_parameter)
    with (
        _mlflow_pointing_back(),
        tempfile.TemporaryDirectory(prefix="reconciler-pre-evaluation-") as tmp,
    ):
        scratch_root = Path(tmp)
        scratch = Settings(
            tracking_uri=f"sqlite:///{scratch_root / 'mlflow.db'}",
            registry_uri=f"sqlite:///{scratch_root / 'mlflow.db'}",
            artifact_root=scratch_root / "artifacts",
            state_dir=scratch_root / "state",
        )
        tracking = Tracking(scratch)
        champion = (
            _copy_champion(name, champion_version, settings, tracking, scratch_root)
            if champion_version
            else None
        )
        candidate_version = register_base(
            proposed, identity, desired, repo=repo, settings=scratch, tracking=tracking
        )
        result = evaluate(
            proposed,
            identity,
            desired,
            repo=repo,
            settings=scratch,
            candidate_version=candidate_version,
            champion_version=champion,
            tracking=tracking,
            embedder=embedder,
        )
        champion_result = (
            evaluate(
                use_case,
                desired.identities[use_case.name],
                desired,
                repo=repo,
                settings=scratch,
                candidate_version=champion,
                champion_version=champion,
                tracking=tracking,
                embedder=embedder,
            )
            if champion is not None
            else None
        )
    return Evidence(
        verdict=result.verdict.value,
        reasons=result.failures or ("all thresholds met",),
        champion_version=champion_version,
        candidate_figures=_figures(result),
        champion_figures=_figures(champion_result) if champion_result else {},
        thresholds=_thresholds(use_case),
        memory_gib=memory,
        cost=cost_per_1k_requests(candidate, use_case, desired, result.token_usage),
    )


@contextmanager
def _mlflow_pointing_back() -> Iterator[None]:
    """MLflow's process-wide URIs as they were: the scratch store is gone afterwards, and
    later code in this process (a controller's next cycle) must not reach for it."""
    import mlflow

    uris = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    exported = {name: os.environ.get(name) for name in _URI_VARIABLES}
    try:
        yield
    finally:
        mlflow.set_tracking_uri(uris[0])
        mlflow.set_registry_uri(uris[1])
        for name, value in exported.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _copy_champion(
    name: str, version: str, live: Settings, tracking: Any, scratch_root: Path
) -> str:
    """The live champion's files and role, registered in the scratch store (read-only live)."""
    from reconciler.registry.version_files import download_version_files
    from reconciler.tracking.mlflow_tracking import Tracking

    role = Tracking(live).get_version(name, version).tags.get(lineage.ROLE, "")
    files = download_version_files(
        registered_model=name,
        version=version,
        cache_dir=scratch_root / "live-cache",
        tracking_uri=live.tracking_uri,
        registry_uri=live.registry_uri,
    )
    with tracking.run(name, f"champion-v{version}-copy", tags={}) as run:
        run.log_folder(files, "model")
        uri = tracking.artifact_uri(run.run_id, "model")
        registered = tracking.register(
            name,
            model_uri=uri,
            run_id=run.run_id,
            tags={lineage.ROLE: role},
            description=f"Copy of the live champion v{version}, for a pre-evaluation.",
        )
    return str(registered.version)


def failed_to_run(
    problem: str, candidate: Candidate, use_case: UseCase, desired: DesiredState
) -> Evidence:
    return Evidence(
        verdict="error",
        reasons=(f"pre-evaluation could not run: {problem}",),
        champion_version=None,
        candidate_figures={},
        champion_figures={},
        thresholds=_thresholds(use_case),
        memory_gib=estimated_memory_gib(candidate.parameters, candidate.bytes_per_parameter),
        cost=cost_per_1k_requests(candidate, use_case, desired),
    )
