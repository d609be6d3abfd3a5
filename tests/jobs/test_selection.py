"""Choosing a job runner from the settings, and the in-process runner."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.jobs.interface import ResourceRequest
from reconciler.jobs.local import LocalJobRunner
from reconciler.jobs.ray_runner import RayJobRunner
from reconciler.jobs.selection import job_runner
from reconciler.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_environment({}, cwd=tmp_path)


def test_jobs_run_in_this_process_unless_told_otherwise(settings: Settings) -> None:
    assert settings.jobs == "local"
    assert isinstance(job_runner(settings), LocalJobRunner)


def test_ray_is_chosen_by_setting_with_rays_address_and_a_deadline(tmp_path: Path) -> None:
    settings = Settings.from_environment(
        {
            "RECONCILER_JOBS": "Ray",
            "RAY_ADDRESS": "127.0.0.1:6379",
            "RECONCILER_JOB_TIMEOUT": "1h30m",
        },
        cwd=tmp_path,
    )
    runner = job_runner(settings)
    assert isinstance(runner, RayJobRunner)
    assert (runner.address, runner.timeout_seconds) == ("127.0.0.1:6379", 5400)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"jobs": "slurm"}, "RECONCILER_JOBS='slurm' is not a job runner; use one of local, ray"),
        ({"jobs": "ray", "job_timeout": "soon"}, "RECONCILER_JOB_TIMEOUT: 'soon' is not a"),
        ({"jobs": "ray", "job_timeout": "0s"}, "RECONCILER_JOB_TIMEOUT must be longer than 0"),
    ],
)
def test_a_bad_runner_setting_is_a_clear_error(
    settings: Settings, change: dict[str, str], message: str
) -> None:
    with pytest.raises(ReconcilerError) as raised:
        job_runner(replace(settings, **change))  # type: ignore[arg-type]
    assert str(raised.value).startswith(message)


def test_choosing_ray_does_not_import_it(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from reconciler.jobs.selection import job_runner\n"
        "from reconciler.settings import Settings\n"
        "job_runner(Settings.from_environment({'RECONCILER_JOBS': 'ray'}))\n"
        "print('ray' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"


@dataclass(frozen=True)
class _Overlap:
    """Counts how many of its kind run at once."""

    running: list[int]
    most: list[int]
    started: threading.Barrier

    name = "overlap"
    key = "sha256:overlap"
    resources = ResourceRequest()

    def __call__(self) -> int:
        self.running[0] += 1
        self.most[0] = max(self.most[0], self.running[0])
        with contextlib.suppress(threading.BrokenBarrierError):
            self.started.wait(timeout=0.5)  # a second job would arrive here if allowed in
        self.running[0] -= 1
        return self.most[0]


def test_in_process_jobs_run_one_at_a_time_and_say_where_they_ran() -> None:
    job = _Overlap([0], [0], threading.Barrier(2))
    runner = LocalJobRunner()
    results = []
    threads = [threading.Thread(target=lambda: results.append(runner.run(job))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.value for r in results] == [1, 1]
    assert results[0].placement.describe() == "in this process"
