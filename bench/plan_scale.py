"""Plan at scale: N use cases x M versions in a real MLflow server.

Creates the registry through the REST API, then times `plan` (load desired state, observe
through a counting proxy, diff) and counts the requests it sends. As a baseline in the same
run it times the naive observation that reads every version separately (one request per
version), on a sample of the same models, so the figures compare on this machine as it is now.

Two points by default, each on a fresh server: 200 use cases and 2,000, 20 versions each.
Planning must stay about one registry request per use case at both, and its time grow no
faster than the number of use cases. Creating the 2,000-use-case registry through the REST
API is most of the run (about 20 minutes on two busy cores); `--points 200x20` skips it.

Usage: python bench/plan_scale.py [--points 200x20 2000x20] [--mlflow-backend sqlite]
The last line printed is one JSON object of the figures: the largest point's at the top
level, every point's under `points`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_counter import CountingProxy
from bench.mlflow_process import mlflow_server
from bench.postgres_process import postgres_server

USE_CASE = """---
apiVersion: reconciler/v1
kind: UseCase
metadata: {{name: bench-{i:04d}}}
spec:
  registeredModel: bench-{i:04d}
  acceptableModels:
    - {{source: local, path: models/tiny-base, revision: r{i}, license: mit}}
  evaluation: {{prompts: desired_state/eval.jsonl}}
"""


def write_repo(root: Path, use_cases: int) -> Path:
    folder = root / "desired_state"
    folder.mkdir(parents=True)
    (folder / "eval.jsonl").write_text('{"prompt": "hello"}\n')
    # A file per 100 use cases, as a team would split them (and within a file's parse budget).
    for first in range(0, use_cases, 100):
        last = min(use_cases, first + 100)
        text = "".join(USE_CASE.format(i=i) for i in range(first, last))
        (folder / f"use-cases-{first:04d}.yaml").write_text(text)
    return root


def populate(url: str, repo: Path, use_cases: int, versions: int) -> None:
    from mlflow import MlflowClient

    from reconciler import lineage
    from reconciler.spec.loader import load_desired_state

    state = load_desired_state(repo).state
    assert state is not None
    client = MlflowClient(tracking_uri=url, registry_uri=url)

    def one(i: int) -> None:
        name = f"bench-{i:04d}"
        client.create_registered_model(name)
        key = state.identities[name].base_key
        for v in range(versions):
            tags = {lineage.KEY: key if v == versions - 1 else f"sha256:old-{v}"}
            # No polling for READY: a version made from a source URI is ready at once.
            client.create_model_version(
                name, source=f"s3://bench/{name}/{v}", tags=tags, await_creation_for=0
            )
        client.set_registered_model_alias(name, "champion", str(versions))
        client.set_registered_model_alias(name, "previous", str(versions - 1))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(use_cases)))


def time_plan(url: str, repo: Path, state_dir: Path) -> dict[str, float]:
    """Seconds of each phase of one `plan`, as the CLI runs it (after interpreter start-up)."""
    from reconciler.observe.observer import observe
    from reconciler.plan.diff import diff
    from reconciler.registry.mlflow_registry import MlflowRegistry
    from reconciler.spec.loader import load_desired_state
    from reconciler.state_store.database import StateDatabase
    from reconciler.traffic.store import TrafficStore

    started = time.perf_counter()
    state = load_desired_state(repo).state
    assert state is not None
    loaded = time.perf_counter()
    observed = observe(
        state,
        MlflowRegistry(url),
        TrafficStore(StateDatabase(f"sqlite:///{state_dir / 'state.db'}")),
    )
    observed_at = time.perf_counter()
    plan = diff(state, observed)
    done = time.perf_counter()
    assert len(plan.changes) == len(state.use_cases)
    return {
        "total": done - started,
        "load": loaded - started,
        "observe": observed_at - loaded,
        "diff": done - observed_at,
    }


def count_plan_requests(url: str, repo: Path, state_dir: Path) -> int:
    """Requests one plan sends, counted by a proxy (timed separately: the proxy costs CPU)."""
    with CountingProxy(url) as proxy:
        time_plan(proxy.url, repo, state_dir)
        return proxy.total


def time_per_version_reads(url: str, sample: list[str]) -> tuple[float, int]:
    """The baseline: aliases from the model, then every version fetched on its own."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    requests = 0
    started = time.perf_counter()
    for name in sample:
        model = client.get_registered_model(name)
        requests += 1
        latest = max(int(v) for v in model.aliases.values())
        for number in range(1, latest + 1):
            client.get_model_version(name, str(number))
            requests += 1
    return time.perf_counter() - started, requests


def parse_point(text: str) -> tuple[int, int]:
    """`2000x20`: 2,000 use cases of 20 versions each."""
    use_cases, _, versions = text.partition("x")
    try:
        return int(use_cases), int(versions or 20)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected USE_CASESxVERSIONS") from None


def measure_point(
    root: Path, use_cases: int, versions: int, baseline_sample: int, backend: str | None
) -> dict[str, float]:
    """A fresh tracking server holding `use_cases` models of `versions` versions: one plan's
    time and requests, and the per-version baseline on a sample."""
    repo = write_repo(root / "repo", use_cases)
    with mlflow_server(root / "mlflow", backend_store_uri=backend) as url:
        started = time.perf_counter()
        populate(url, repo, use_cases, versions)
        print(
            f"populated {use_cases} models x {versions} versions "
            f"in {time.perf_counter() - started:.1f}s"
        )
        cold = time_plan(url, repo, root / "state")
        warm = time_plan(url, repo, root / "state")
        requests = count_plan_requests(url, repo, root / "state")
        cli_started = time.perf_counter()
        cli = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", "plan", "--repo", str(repo)],
            env={
                "MLFLOW_TRACKING_URI": url,
                "RECONCILER_STATE_DIR": str(root / "cli-state"),
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
            check=False,
        )
        cli_seconds = time.perf_counter() - cli_started
        assert cli.returncode == 0, cli.stderr[-2000:]
        sample = [f"bench-{i:04d}" for i in range(min(baseline_sample, use_cases))]
        ours_sample = time_observe_sample(url, sample)
        naive_seconds, naive_requests = time_per_version_reads(url, sample)

    print(
        f"plan of {use_cases} use cases (in process, first call): {cold['total']:.3f}s "
        f"(load {cold['load']:.3f}, observe {cold['observe']:.3f}, diff {cold['diff']:.3f}); "
        f"warm {warm['total']:.3f}s; CLI including interpreter and imports {cli_seconds:.3f}s"
    )
    print(f"requests: {requests} ({requests / use_cases:.2f} per use case)")
    print(
        f"baseline per-version reads on {len(sample)} models: {naive_seconds:.3f}s "
        f"({naive_requests / len(sample):.1f} requests per model) vs ours {ours_sample:.3f}s"
    )
    return {
        "use_cases": use_cases,
        "versions_per_use_case": versions,
        "plan_seconds": round(cold["total"], 3),
        "plan_seconds_warm": round(warm["total"], 3),
        "load_seconds": round(cold["load"], 3),
        "observe_seconds": round(cold["observe"], 3),
        "diff_seconds": round(cold["diff"], 3),
        "cli_plan_seconds": round(cli_seconds, 3),
        "requests": requests,
        "requests_per_use_case": round(requests / use_cases, 2),
        "baseline_requests_per_use_case": round(naive_requests / len(sample), 2),
        "observe_speedup_vs_per_version_reads": round(naive_seconds / ours_sample, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--points",
        type=parse_point,
        nargs="+",
        default=[(200, 20), (2000, 20)],
        help="USE_CASESxVERSIONS per point, each on a fresh tracking server",
    )
    parser.add_argument("--baseline-sample", type=int, default=20)
    parser.add_argument(
        "--mlflow-backend",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the tracking server's backend store (postgresql: a local server of its own)",
    )
    args = parser.parse_args()

    points: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="plan-scale-") as scratch, ExitStack() as stack:
        postgres = (
            stack.enter_context(postgres_server()) if args.mlflow_backend == "postgresql" else None
        )
        for index, (use_cases, versions) in enumerate(args.points):
            backend = postgres.create_database(f"mlflow_{index}") if postgres else None
            root = Path(scratch) / f"point-{index}"
            points.append(measure_point(root, use_cases, versions, args.baseline_sample, backend))

    # The largest point's figures at the top level; its growth against the smallest.
    smallest, largest = points[0], points[-1]
    figures: dict[str, object] = {**largest, "mlflow_backend": args.mlflow_backend}
    figures["plan_seconds_per_use_case_growth"] = round(
        (largest["plan_seconds"] / largest["use_cases"])
        / (smallest["plan_seconds"] / smallest["use_cases"]),
        3,
    )
    figures["points"] = points
    if len(points) > 1:
        print(
            f"{largest['use_cases']:.0f} vs {smallest['use_cases']:.0f} use cases: "
            f"{largest['requests_per_use_case']} vs {smallest['requests_per_use_case']} "
            f"requests per use case; plan time per use case x"
            f"{figures['plan_seconds_per_use_case_growth']}"
        )
    print(json.dumps(figures))


def time_observe_sample(url: str, sample: list[str]) -> float:
    """Our observation of just the sampled models, one at a time, like the baseline."""
    from reconciler.registry.mlflow_registry import MlflowRegistry

    registry = MlflowRegistry(url, workers=1)
    registry.snapshot(sample[:1])  # client set-up is not what the baseline measures
    started = time.perf_counter()
    registry.snapshot(sample)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
