"""Jobs as Ray tasks (`RECONCILER_JOBS=ray`): the same job, run where the cluster has room.

Each job is submitted as one task carrying the job's resource request (`num_cpus`,
`num_gpus`, `memory`), named after the job and its key so the cluster's task list says what
runs. The connection follows Ray's convention: `RAY_ADDRESS` names the cluster, and without
it `ray.init()` starts a local Ray for this process.

A job ends in one of three ways, never in a hang:
- a value, with where it ran and what Ray granted it;
- its own error, carried back as plain data (an exception class that could not be rebuilt on
  this side would otherwise arrive as Ray's wrapper) and raised here with the same message,
  temporary or not as it was there;
- the deadline (`RECONCILER_JOB_TIMEOUT`, queueing included): the task is cancelled and
  the failure is temporary, so the next reconcile resubmits it and, the job being idempotent
  on its key, finds whatever the cancelled run had finished.
On a local Ray (no `RAY_ADDRESS`) a request no node can hold is refused before it is
submitted, rather than left pending until the deadline: that Ray never grows. A named cluster
may have an autoscaler that adds a node for a pending request (a GPU node scaled to zero), so
there the task is submitted with a warning, and the deadline bounds the wait. Ray's own
retries are off: a retry is the reconciler's decision, made with backoff by the controller.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler.digest import short
from reconciler.errors import ReconcilerError, is_temporary
from reconciler.jobs.interface import (
    GIB,
    Job,
    JobFailedError,
    JobResult,
    JobTimeoutError,
    JobUnschedulableError,
    Placement,
    ResourceRequest,
    RunnerUnavailableError,
    TemporaryJobError,
)
from reconciler.redaction import redact_uri

log = logging.getLogger(__name__)

T = TypeVar("T")

_CONNECTING = threading.Lock()


@dataclass(frozen=True)
class _Failure:
    kind: str
    message: str
    temporary: bool
    ours: bool  # a ReconcilerError: its message is written for people
    traceback: str


@dataclass(frozen=True)
class _Ran:
    value: Any
    failure: _Failure | None
    node: str
    granted: Mapping[str, float]


def run_on_worker(job: Job[Any]) -> _Ran:
    """The body of the Ray task: the job's value or its failure, as plain data."""
    import ray

    context: Any = ray.get_runtime_context()  # partly typed
    granted = {str(k): float(v) for k, v in context.get_assigned_resources().items()}
    try:
        value = job()
    except Exception as exc:  # carried back whole; the caller decides what it means
        failure = _Failure(
            kind=type(exc).__name__,
            message=str(exc),
            temporary=is_temporary(exc),
            ours=isinstance(exc, ReconcilerError),
            traceback=traceback.format_exc(),
        )
        return _Ran(None, failure, context.get_node_id(), granted)
    return _Ran(value, None, context.get_node_id(), granted)


class RayJobRunner:
    def __init__(self, *, address: str | None, timeout_seconds: float) -> None:
        self.address = address
        self.timeout_seconds = timeout_seconds
        self._task: Any = None  # run_on_worker as a Ray remote function, made once

    @property
    def where(self) -> str:
        return f"the Ray cluster at {redact_uri(self.address)}" if self.address else "local Ray"

    def run(self, job: Job[T]) -> JobResult[T]:
        ray = self._connect()
        request = job.resources
        self._refuse_unschedulable(ray, job.name, request)
        options: dict[str, Any] = {
            "name": f"reconciler {job.name} {short(job.key)}",
            "num_cpus": request.cpus,
            "num_gpus": request.gpus,
            "max_retries": 0,
        }
        if request.memory_bytes is not None:
            options["memory"] = request.memory_bytes
        if self._task is None:
            self._task = ray.remote(run_on_worker)
        ref = self._task.options(**options).remote(job)
        try:
            ran: _Ran = ray.get(ref, timeout=self.timeout_seconds)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            raise JobTimeoutError(
                f"{job.name} did not finish within {self.timeout_seconds:g} s on {self.where} "
                "and was cancelled; applying again resubmits it and finds what it had finished "
                "(RECONCILER_JOB_TIMEOUT sets the limit)"
            ) from None
        except ray.exceptions.OutOfMemoryError as exc:
            raise JobFailedError(
                f"{job.name} ran out of memory on {self.where} ({_first_line(exc)}); ask for "
                "what it needs in spec.training.resources.memoryGiB so Ray places it where it fits"
            ) from None
        except ray.exceptions.RayError as exc:
            raise TemporaryJobError(
                f"{job.name} was lost on {self.where} before it finished "
                f"({type(exc).__name__}: {_first_line(exc)}); applying again resubmits it"
            ) from None
        except BaseException:
            # Interrupted while waiting: the task must not go on training for nobody.
            ray.cancel(ref, force=True)
            raise
        if ran.failure is not None:
            raise self._error(job.name, ran.failure)
        return JobResult(ran.value, Placement(runner="ray", node=ran.node, resources=ran.granted))

    def _connect(self) -> Any:
        import ray

        with _CONNECTING:
            if not ray.is_initialized():
                try:
                    ray.init(address=self.address, logging_level=logging.WARNING)
                except Exception as exc:  # Ray raises several kinds; all mean "not reachable"
                    raise RunnerUnavailableError(
                        f"cannot connect to {self.where}: {_first_line(exc)} "
                        "(RAY_ADDRESS names the cluster)"
                    ) from None
        return ray

    def _refuse_unschedulable(self, ray: Any, name: str, request: ResourceRequest) -> None:
        needs = {"CPU": request.cpus, "GPU": request.gpus, "memory": request.memory_bytes or 0}
        nodes = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
        if any(all(node.get(k, 0.0) >= v for k, v in needs.items() if v) for node in nodes):
            return
        described = "; ".join(sorted({_describe_node(node) for node in nodes})) or "none alive"
        cause = (
            f"no node of {self.where} can run {name}: it asks for {request.describe()}, and "
            f"the nodes have {described}"
        )
        if self.address is None:
            raise JobUnschedulableError(
                f"{cause}; add such a node or lower spec.training.resources"
            )
        log.warning(
            "%s; submitted anyway for an autoscaler to add one, failing after %g s "
            "(RECONCILER_JOB_TIMEOUT) if none does",
            cause,
            self.timeout_seconds,
        )

    def _error(self, name: str, failure: _Failure) -> JobFailedError:
        if failure.ours:
            message = f"{name} failed on {self.where}: {failure.message}"
            return TemporaryJobError(message) if failure.temporary else JobFailedError(message)
        log.error("%s failed on %s:\n%s", name, self.where, failure.traceback)
        first = (failure.message.strip().splitlines() or [""])[0][:300]
        return JobFailedError(
            f"{name} failed on {self.where}: internal error: {failure.kind}: {first} "
            "(this is a bug; please report it with the worker's traceback from the log)"
        )


def _describe_node(resources: Mapping[str, float]) -> str:
    return (
        f"{resources.get('CPU', 0.0):g} CPU, {resources.get('GPU', 0.0):g} GPU, "
        f"{resources.get('memory', 0.0) / GIB:.1f} GiB memory"
    )


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
