"""Which runner the settings ask for: `RECONCILER_JOBS` = `local` (default) or `ray`.

Chosen before anything is applied, so a misspelt runner or a missing Ray extra is an error up
front, not a failure half-way through a plan. Ray itself is not imported here.
"""

from __future__ import annotations

import importlib.util

from reconciler.errors import ReconcilerError
from reconciler.jobs.interface import JobRunner
from reconciler.jobs.local import LocalJobRunner
from reconciler.settings import JOB_TIMEOUT_ENV, JOBS_ENV, Settings
from reconciler.spec.durations import duration_seconds

RUNNERS = ("local", "ray")


def job_runner(settings: Settings) -> JobRunner:
    if settings.jobs == "local":
        return LocalJobRunner()
    if settings.jobs != "ray":
        raise ReconcilerError(
            f"{JOBS_ENV}={settings.jobs!r} is not a job runner; use one of {', '.join(RUNNERS)}"
        )
    if importlib.util.find_spec("ray") is None:
        raise ReconcilerError(f"{JOBS_ENV}=ray needs Ray: pip install 'model-reconciler[ray]'")
    try:
        timeout = duration_seconds(settings.job_timeout)
    except ValueError as exc:
        raise ReconcilerError(f"{JOB_TIMEOUT_ENV}: {exc}") from None
    if timeout <= 0:
        raise ReconcilerError(f"{JOB_TIMEOUT_ENV} must be longer than 0")
    from reconciler.jobs.ray_runner import RayJobRunner

    return RayJobRunner(address=settings.ray_address, timeout_seconds=timeout)
