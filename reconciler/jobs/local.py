"""Jobs in this process: today's behaviour, and the default (`RECONCILER_JOBS=local`).

Use cases are applied in parallel, but their model work is not: training and evaluation are
compute-bound, two at once on the same cores only make both slower, and a process holds one
accelerator. So one job runs at a time per process, while other use cases go on baking their
rollouts. A job's own errors reach the caller unchanged. There is no deadline here: a thread
cannot be stopped from outside, and the process itself is what an operator would stop.
"""

from __future__ import annotations

import threading
from typing import TypeVar

from reconciler.jobs.interface import Job, JobResult, Placement

T = TypeVar("T")

_IN_PROCESS = threading.Lock()


class LocalJobRunner:
    def run(self, job: Job[T]) -> JobResult[T]:
        with _IN_PROCESS:
            return JobResult(job(), Placement(runner="local"))
