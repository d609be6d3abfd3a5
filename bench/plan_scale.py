"""Plan at scale: N use cases x M versions in a real MLflow server.

Creates the registry through the REST API, then times `plan` (load desired state, observe
through a counting proxy, diff) and counts the requests it sends. As a baseline in the same
run it times the naive observation that reads every version separately (one request per
version), on a sample of the same models, so the figures compare on this machine as it is now.

Usage: python bench/plan_scale.py [--use-cases 200] [--versions 20]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_counter import CountingProxy
from bench.mlflow_process import mlflow_server

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
    (folder / "use-cases.yaml").write_text("".join(USE_CASE.format(i=i) for i in range(use_cases)))
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
            client.create_model_version(name, source=f"s3://bench/{name}/{v}", tags=tags)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--use-cases", type=int, default=200)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--baseline-sample", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="plan-scale-") as scratch:
        root = Path(scratch)
        repo = write_repo(root / "repo", args.use_cases)
        with mlflow_server(root / "mlflow") as url:
            started = time.perf_counter()
            populate(url, repo, args.use_cases, args.versions)
            print(
                f"populated {args.use_cases} models x {args.versions} versions "
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
            sample = [f"bench-{i:04d}" for i in range(min(args.baseline_sample, args.use_cases))]
            ours_sample = time_observe_sample(url, sample)
            naive_seconds, naive_requests = time_per_version_reads(url, sample)

    figures = {
        "use_cases": args.use_cases,
        "versions_per_use_case": args.versions,
        "plan_seconds": round(cold["total"], 3),
        "plan_seconds_warm": round(warm["total"], 3),
        "load_seconds": round(cold["load"], 3),
        "observe_seconds": round(cold["observe"], 3),
        "diff_seconds": round(cold["diff"], 3),
        "cli_plan_seconds": round(cli_seconds, 3),
        "requests": requests,
        "requests_per_use_case": round(requests / args.use_cases, 2),
        "baseline_requests_per_use_case": round(naive_requests / len(sample), 2),
        "observe_speedup_vs_per_version_reads": round(naive_seconds / ours_sample, 2),
    }
    print(
        f"plan (in process, first call): {cold['total']:.3f}s (load {cold['load']:.3f}, "
        f"observe {cold['observe']:.3f}, diff {cold['diff']:.3f}); warm {warm['total']:.3f}s; "
        f"CLI including interpreter and imports {cli_seconds:.3f}s"
    )
    print(f"requests: {requests} ({requests / args.use_cases:.2f} per use case)")
    print(
        f"baseline per-version reads on {len(sample)} models: {naive_seconds:.3f}s "
        f"({naive_requests / len(sample):.1f} requests per model) vs ours {ours_sample:.3f}s"
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
