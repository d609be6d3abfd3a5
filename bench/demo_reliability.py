"""Does the main job converge every time? Run `make demo`'s job N times on fresh state.

Each run gets a new MLflow store and state folder (the tiny base model, a build output, is
built once and reused, as a second `make demo` would), runs `python -m reconciler.demo`, then
`reconciler plan --detailed-exitcode`: a run converged when both exit 0. With `--hog`, another
process keeps one of the machine's cores busy for the whole time, as a neighbour would.

Prints each run, then the figures, and last one JSON object with `runs`, `converged`,
`median_seconds` (the demo's wall time, without installation).

    python bench/demo_reliability.py --runs 5 --hog
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAN_EXIT = ("--detailed-exitcode",)


def _spin(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _one_run(index: int, timeout: float) -> tuple[bool, float, str]:
    with tempfile.TemporaryDirectory(prefix=f"demo-run-{index}-") as scratch:
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{Path(scratch) / 'mlruns' / 'mlflow.db'}",
            "RECONCILER_STATE_DIR": str(Path(scratch) / "state"),
        }
        for name in ("STORY_PROVIDER_BASE_URL", "STORY_PROVIDER_API_KEY"):
            env.pop(name, None)
        started = time.monotonic()
        try:
            demo = subprocess.run(
                [sys.executable, "-m", "reconciler.demo", "--repo", str(ROOT)],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False, time.monotonic() - started, f"timed out after {timeout:.0f}s"
        seconds = time.monotonic() - started
        plan = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", "plan", "--repo", str(ROOT), *PLAN_EXIT],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        players = next(
            (line for line in demo.stdout.splitlines() if line.startswith("players sent")), ""
        )
        converged = demo.returncode == 0 and plan.returncode == 0
        detail = players if converged else (demo.stdout[-1500:] + demo.stderr[-1500:])
        return converged, seconds, detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hog", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    args = parser.parse_args(argv)

    if not (ROOT / "models" / "tiny-base" / "config.json").exists():
        print("building the tiny base model once (reused by every run)", flush=True)
        subprocess.run(
            [sys.executable, "-m", "reconciler.cli", "tiny-model", "--out", "models/tiny-base"],
            cwd=ROOT,
            check=True,
        )
    stop = multiprocessing.Event()
    hog = multiprocessing.Process(target=_spin, args=(stop,), daemon=True) if args.hog else None
    if hog is not None:
        hog.start()
    results = []
    try:
        for index in range(1, args.runs + 1):
            converged, seconds, detail = _one_run(index, args.timeout)
            results.append((converged, seconds))
            verdict = "converged" if converged else "DID NOT CONVERGE"
            print(f"run {index}: {verdict} in {seconds:.0f}s  {detail}", flush=True)
    finally:
        stop.set()
        if hog is not None:
            hog.join(timeout=5)
    durations = [s for _, s in results]
    summary = {
        "runs": len(results),
        "converged": sum(1 for ok, _ in results if ok),
        "median_seconds": round(statistics.median(durations), 1) if durations else None,
        "max_seconds": round(max(durations), 1) if durations else None,
        "hog": args.hog,
        "cpus": os.cpu_count(),
    }
    print(
        f"{summary['converged']} of {summary['runs']} runs converged"
        f"{' with a CPU hog' if args.hog else ''}; median {summary['median_seconds']}s"
    )
    print(json.dumps(summary))
    return 0 if summary["converged"] == summary["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
