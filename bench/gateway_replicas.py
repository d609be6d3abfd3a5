"""Gateway replicas on a shared PostgreSQL store: requests/s through 1 and 2 replicas, against
one gateway on the embedded SQLite store, and how long a route change takes to reach every
replica.

Everything runs on 127.0.0.1 in one run: one echo provider process (answers instantly, so
what is measured is the gateway and its request log), a real PostgreSQL server from the
system's binaries (its default durability settings: fsync and synchronous commit on), and
`reconciler gateway` processes started through the CLI:

- `sqlite_1`: one gateway on its state folder's SQLite store (the default);
- `pg_1`: one gateway with `RECONCILER_DATABASE_URL` naming the PostgreSQL database;
- `pg_2`: two such gateways on the same database, this process spreading the requests over
  both in turn, as a round-robin load balancer does.

Each gets the same concurrent load of chat requests routed 50/50 between two versions, every
request logged; after each pass the log is checked to hold every request served. The three
take turns, for `--rounds` rounds, and the best of each is reported. Then, on
the two replicas, the route table is rewritten many times (replicas poll it only once a
minute, so a change seen sooner came by LISTEN/NOTIFY), and for each change the time from
the write to both replicas serving the new generation is recorded.

Replicas share this machine's cores with each other, the database and the load generator, so
two replicas here cannot show a cluster's scaling: the figure says what the shared store
costs per request, and that a second replica does not make the whole slower.

    .venv/bin/python bench/gateway_replicas.py [--requests 2000] [--concurrency 16]
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gateway_overhead import measure, serving_process
from bench.postgres_process import postgres_server
from reconciler.child_process import free_port
from reconciler.settings import redact_uri

ROOT = Path(__file__).resolve().parents[1]
USE_CASE = "echo-replicas"
MESSAGES = [{"role": "user", "content": "Where is the blacksmith?"}]
USE_CASE_YAML = f"""\
apiVersion: reconciler/v1
kind: UseCase
metadata: {{name: {USE_CASE}}}
spec:
  registeredModel: {USE_CASE}
  acceptableModels:
    - {{source: openai-compatible, id: echo-large, baseUrlEnv: ECHO_URL, license: proprietary}}
  generation: {{temperature: 0.5, maxNewTokens: 32}}
  evaluation: {{prompts: desired_state/eval.jsonl}}
"""
# Longer than the whole propagation pass: a change seen in time came by NOTIFY.
POLL_SECONDS = "600"


def _prepare_registry_and_repo(root: Path) -> str:
    """Two external versions in an MLflow sqlite store, and a desired-state repo."""
    from mlflow import MlflowClient

    from reconciler import lineage

    tracking = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    client.create_registered_model(USE_CASE)
    for _ in range(2):
        client.create_model_version(
            USE_CASE, source=str(root / "none"), tags={lineage.ROLE: "external"}
        )
    folder = root / "repo" / "desired_state"
    folder.mkdir(parents=True)
    (folder / "eval.jsonl").write_text('{"prompt": "hi"}\n')
    (folder / f"{USE_CASE}.yaml").write_text(USE_CASE_YAML)
    return tracking


@contextmanager
def _route_table(database_url: str) -> Iterator[Callable[[tuple[int, int]], int]]:
    """Writes the use case's weights (version 1, version 2) as the reconciler does; returns
    the generation written."""
    from reconciler.observe.state import Route
    from reconciler.state_store.database import StateDatabase
    from reconciler.traffic.store import TrafficStore, Writer

    database = StateDatabase(database_url)
    store = TrafficStore(database)

    def write(weights: tuple[int, int]) -> int:
        routes = [Route("1", weights[0]), Route("2", weights[1])]
        return store.write(USE_CASE, routes, writer=Writer.RECONCILER)

    try:
        yield write
    finally:
        database.dispose()


def _logged_requests(database_url: str, since: float) -> int:
    from reconciler.gateway.log_queries import window_metrics
    from reconciler.state_store.database import StateDatabase

    database = StateDatabase(database_url)
    try:
        return sum(w.requests for w in window_metrics(database, USE_CASE, since=since).values())
    finally:
        database.dispose()


@contextmanager
def _gateways(
    count: int, root: Path, name: str, env: dict[str, str], database_url: str | None
) -> Iterator[list[str]]:
    """`count` gateway processes, each with its own state folder; on `database_url` if given."""
    urls: list[str] = []
    with ExitStack() as running:
        for index in range(count):
            port = free_port()
            replica_env = {**env, "RECONCILER_STATE_DIR": str(root / f"{name}-{index}")}
            if database_url:
                replica_env["RECONCILER_DATABASE_URL"] = database_url
            command = [
                sys.executable, "-m", "reconciler.cli", "gateway", "--port", str(port),
                "--repo", str(root / "repo"), "--route-poll-seconds", POLL_SECONDS,
            ]  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            log = root / f"{name}-{index}.log"
            running.enter_context(serving_process(command, f"{url}/healthz", replica_env, log))
            urls.append(url)
        yield urls


def _generation(client: httpx.Client, replica: str) -> int:
    served = client.get(f"{replica}/healthz").json()["use_cases"].get(USE_CASE)
    return -1 if served is None else int(served["generation"])


def _until_serving(replicas: Sequence[str], generation: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as client:
        while any(_generation(client, r) != generation for r in replicas):
            if time.monotonic() > deadline:
                raise RuntimeError(f"generation {generation} not served within {timeout:g}s")
            time.sleep(0.01)


async def _throughput(replicas: Sequence[str], args: argparse.Namespace) -> float:
    """Requests/s of `args.requests` chat requests, spread over the replicas in turn."""
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    clients = [httpx.AsyncClient(base_url=r, limits=limits, timeout=30) for r in replicas]
    turns = itertools.cycle(clients)
    body = {"model": USE_CASE, "messages": MESSAGES, "max_tokens": 32}

    async def call() -> None:
        response = await next(turns).post("/v1/chat/completions", json=body)
        response.raise_for_status()

    try:
        await measure(call, requests=min(200, args.requests), concurrency=args.concurrency)
        rps, _ = await measure(call, requests=args.requests, concurrency=args.concurrency)
    finally:
        for client in clients:
            await client.aclose()
    return rps


def _flush_logs(replicas: Sequence[str]) -> None:
    """Each replica writes its queued request-log rows out before answering /admin/usage."""
    for replica in replicas:
        httpx.get(f"{replica}/admin/usage", timeout=60).raise_for_status()


def _pass(name: str, replicas: Sequence[str], database_url: str, args: argparse.Namespace) -> float:
    since = time.time()
    rps = asyncio.run(_throughput(replicas, args))
    _flush_logs(replicas)
    logged = _logged_requests(database_url, since)
    sent = args.requests + min(200, args.requests)
    print(
        f"{name:<9} {rps:8.0f} req/s through {len(replicas)} gateway(s) "
        f"(concurrency {args.concurrency}); {logged}/{sent} requests in the shared log"
    )
    if logged != sent:
        raise RuntimeError(f"{name}: the request log holds {logged} of {sent} requests")
    return rps


def _propagation(replicas: Sequence[str], database_url: str, changes: int) -> list[float]:
    """Milliseconds from each route write to every replica serving its generation."""
    timings: list[float] = []
    with httpx.Client(timeout=10) as client, _route_table(database_url) as write_routes:
        _until_serving(replicas, write_routes((50, 50)))
        for n in range(changes):
            weights = (30, 70) if n % 2 else (70, 30)
            started = time.perf_counter()
            generation = write_routes(weights)
            waiting = set(replicas)
            while waiting:
                waiting = {r for r in waiting if _generation(client, r) != generation}
                if waiting and time.perf_counter() - started > 30:
                    raise RuntimeError(f"change {n} did not reach {sorted(waiting)} in 30 s")
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per configuration")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--route-changes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="best of this many, in turn")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gateway-replicas-") as folder:
        root = Path(folder)
        tracking = _prepare_registry_and_repo(root)
        provider_port = free_port()
        provider = f"http://127.0.0.1:{provider_port}"
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking,
            "ECHO_URL": f"{provider}/v1",
        }
        env.pop("MLFLOW_REGISTRY_URI", None)
        env.pop("RECONCILER_DATABASE_URL", None)
        echo = [sys.executable, str(ROOT / "bench" / "echo_provider.py"), "--port"]
        with (
            serving_process([*echo, str(provider_port)], f"{provider}/v1/models", env),
            postgres_server(settings=()) as postgres,
        ):
            shared = postgres.create_database("gateway_replicas")
            print(f"shared store: {redact_uri(shared)}")
            sqlite_url = f"sqlite:///{root / 'sqlite-0' / 'state.db'}"
            for url in (sqlite_url, shared):
                with _route_table(url) as write_routes:
                    write_routes((50, 50))

            # All four gateways up at once (an idle one costs next to nothing), and the three
            # configurations measured in turn, round after round: a machine busy with other
            # work slows them alike, and the best round of each is kept.
            with (
                _gateways(1, root, "sqlite", env, None) as sqlite_1,
                _gateways(1, root, "pg-single", env, shared) as pg_1,
                _gateways(2, root, "pg-pair", env, shared) as pg_2,
            ):
                configurations = {
                    "sqlite_1": (sqlite_1, sqlite_url),
                    "pg_1": (pg_1, shared),
                    "pg_2": (pg_2, shared),
                }
                best = dict.fromkeys(configurations, 0.0)
                for _ in range(args.rounds):
                    for name, (replicas, url) in configurations.items():
                        best[name] = max(best[name], _pass(name, replicas, url, args))
                timings = _propagation(pg_2, shared, args.route_changes)
            rps_sqlite_1, rps_pg_1, rps_pg_2 = best["sqlite_1"], best["pg_1"], best["pg_2"]

    p50, p99 = statistics.median(timings), _quantile(timings, 0.99)
    print(
        f"route change to every replica ({len(timings)} changes, by NOTIFY): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(timings):.1f} ms"
    )
    print(f"pg_1 / sqlite_1 {rps_pg_1 / rps_sqlite_1:.2f}x; pg_2 / pg_1 {rps_pg_2 / rps_pg_1:.2f}x")
    summary = {
        "rps_sqlite_1": round(rps_sqlite_1, 1),
        "rps_pg_1": round(rps_pg_1, 1),
        "rps_pg_2": round(rps_pg_2, 1),
        "pg_1_vs_sqlite_1": round(rps_pg_1 / rps_sqlite_1, 3),
        "pg_2_vs_pg_1": round(rps_pg_2 / rps_pg_1, 3),
        "route_propagation_ms_p50": round(p50, 2),
        "route_propagation_ms_p99": round(p99, 2),
        "route_changes": len(timings),
        "requests": args.requests,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "cores": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
