"""The job-runner interface: a job, what it asks for, what comes back, and how it fails.

Jobs carry plain values (paths, a commit, settings, names), never live clients, so the same
job runs in this process or is pickled to a Ray worker on another machine. Idempotency lives
in the job, not the runner: a job finds what an earlier run of it made by key, so running it
again - after a crash, a timeout or on another runner - makes nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from reconciler.errors import ReconcilerError, TemporaryError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

GIB = 1024**3


@dataclass(frozen=True)
class ResourceRequest:
    """What a job asks of the machine that runs it (Ray's `num_cpus`, `num_gpus`, `memory`)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_bytes: int | None = None

    def describe(self) -> str:
        parts = [f"{self.cpus:g} CPU", f"{self.gpus:g} GPU"]
        if self.memory_bytes is not None:
            parts.append(f"{self.memory_bytes / GIB:g} GiB memory")
        return ", ".join(parts)


@dataclass(frozen=True)
class Placement:
    """Where a job ran and what it was granted there (empty in this process: all of it)."""

    runner: str
    node: str | None = None
    resources: Mapping[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        if self.runner == "local":
            return "in this process"
        granted = ", ".join(
            f"memory {amount / GIB:g} GiB" if name == "memory" else f"{name} {amount:g}"
            for name, amount in sorted(self.resources.items())
        )
        return f"on {self.runner} node {self.node or '?'} ({granted or 'no resources'})"


@dataclass(frozen=True)
class JobResult(Generic[T]):
    value: T
    placement: Placement


class Job(Protocol[T_co]):
    """A unit of model work: picklable, idempotent on `key`, run by calling it."""

    @property
    def name(self) -> str:
        """For people and for the cluster's task list, e.g. `train npc-dialogue`."""
        ...

    @property
    def key(self) -> str:
        """The key of what the job makes: a second run finds it instead of making another."""
        ...

    @property
    def resources(self) -> ResourceRequest: ...

    def __call__(self) -> T_co: ...


class JobRunner(Protocol):
    def run(self, job: Job[T]) -> JobResult[T]:
        """Run `job` to its end and return its value; raise a `ReconcilerError` naming the
        cause when it fails, and never wait past the runner's deadline."""
        ...


class JobFailedError(ReconcilerError):
    """A job ended without a value: its own error, or the machine it ran on gave out."""


class TemporaryJobError(JobFailedError, TemporaryError):
    """A job failed for a cause that may pass (a worker lost, a server unreachable)."""


class JobTimeoutError(TemporaryJobError):
    """A job did not finish within its deadline and was cancelled."""


class JobUnschedulableError(TemporaryJobError):
    """No machine of the cluster can hold what a job asks for."""


class RunnerUnavailableError(TemporaryJobError):
    """The runner itself cannot be used (the cluster unreachable)."""
