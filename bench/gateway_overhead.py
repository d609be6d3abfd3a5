"""What routing through the gateway costs: requests/s and latency, against the same backend
called directly and against LiteLLM's Router with the same weighted deployments.

Everything runs on 127.0.0.1: one echo provider process (answers instantly, so the backend
costs next to nothing and routing is what is measured), one `reconciler gateway` process
routing 50/50 between two external versions backed by that provider, and this process as
the load generator. LiteLLM's Router is a library, so it routes inside this process.
TensorZero's Rust gateway routes the same 50/50 variants twice: its HTTP server (one hop in
front of the backend, as ours) and embedded in this process (see `tensorzero_target.py`).
Each target gets the same bounded load: a sequential pass (latency) and a concurrent pass
(throughput). The last line printed is one JSON object with the figures.

A second use case on the same gateway lists the shipped guardrail policies, so every answer
is checked inline before it is returned: its p50 minus the unguarded gateway's is what inline
guardrails add per response (`guardrails_p50_overhead_ms`, and `guardrails_p99_overhead_ms`).
Its messages are varied game lines, each request a different one, so no answer is a cached
repeat: the worst case. `encoder_fraction` is the share of guarded outputs the guardrails'
cascade sent on to the full MiniLM encoder (from the gateway's /metrics).

    .venv/bin/python bench/gateway_overhead.py [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tensorzero_target import tensorzero_targets
from reconciler.child_process import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": "Where is the blacksmith?"}]
USE_CASE_YAML = """\
apiVersion: reconciler/v1
kind: UseCase
metadata: {name: echo-bench}
spec:
  registeredModel: echo-bench
  acceptableModels:
    - {source: openai-compatible, id: echo-large, baseUrlEnv: ECHO_URL, license: proprietary}
  generation: {temperature: 0.5, maxNewTokens: 32}
  evaluation: {prompts: desired_state/eval.jsonl}
"""
GUARDED_YAML = USE_CASE_YAML.replace("echo-bench", "echo-guarded") + (
    "  guardrails: [player-safety, healthy-engagement]\n"
)
GAME_LINES = ROOT / "tests" / "guardrails" / "data" / "labelled_outputs.jsonl"


@contextmanager
def serving_process(
    command: list[str], ready_url: str, env: dict[str, str], log: Path | None = None
) -> Iterator[None]:
    """`command` serving until the block ends; its output to `log` (default: stdout dropped,
    stderr shown). The gateway loads torch and the guardrail encoder before it answers: on
    two busy cores that took 113 s, past `wait_until_serving`'s default of 90."""
    with open(log, "ab") if log else contextlib.nullcontext() as output:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if output else None,
        )
        try:
            wait_until_serving(ready_url, process, log=log, timeout=300)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _prepare_world(root: Path) -> dict[str, str]:
    """Registry with two external versions, a desired-state repo, routes 50/50."""
    from mlflow import MlflowClient

    from reconciler.observe.state import Route
    from reconciler.state_store.database import StateDatabase
    from reconciler.traffic.store import TrafficStore, Writer

    tracking = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    for name in ("echo-bench", "echo-guarded"):
        client.create_registered_model(name)
        for _ in range(2):
            client.create_model_version(
                name, source=str(root / "none"), tags={"reconciler.role": "external"}
            )
        TrafficStore(StateDatabase(f"sqlite:///{root / 'state' / 'state.db'}")).write(
            name, [Route("1", 50), Route("2", 50)], writer=Writer.RECONCILER
        )
    (root / "repo" / "desired_state").mkdir(parents=True)
    (root / "repo" / "desired_state" / "eval.jsonl").write_text('{"prompt": "hi"}\n')
    (root / "repo" / "desired_state" / "echo-bench.yaml").write_text(USE_CASE_YAML)
    (root / "repo" / "desired_state" / "echo-guarded.yaml").write_text(GUARDED_YAML)
    shutil.copytree(ROOT / "policies", root / "repo" / "policies")
    return {
        "MLFLOW_TRACKING_URI": tracking,
        "RECONCILER_STATE_DIR": str(root / "state"),
        # The distilled static embeddings and trained classifiers take minutes to build: keep
        # them in the repository's state folder, not in this run's temporary one.
        "RECONCILER_STATIC_EMBEDDINGS_DIR": os.environ.get(
            "RECONCILER_STATIC_EMBEDDINGS_DIR", str(ROOT / ".reconciler" / "static-embeddings")
        ),
    }


Call = Callable[[], Awaitable[None]]


async def measure(call: Call, *, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """(requests per second, per-request latencies in ms) of `requests` calls."""
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    return requests / (time.perf_counter() - started), latencies


def _guardrail_stages(metrics: str) -> dict[str, int]:
    """Outputs checked by the gateway's guardrails, by the cascade stage they reached."""
    pattern = r'reconciler_guardrail_outputs_total\{stage="(\w+)"\} (\d+)'
    return {stage: int(count) for stage, count in re.findall(pattern, metrics)}


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _bench_target(name: str, call: Call, args: argparse.Namespace) -> dict[str, float]:
    await measure(call, requests=min(200, args.requests), concurrency=args.concurrency)  # warm
    _, sequential = await measure(call, requests=args.sequential, concurrency=1)
    rps, _ = await measure(call, requests=args.requests, concurrency=args.concurrency)
    figures = {
        "rps": rps,
        "p50_ms": statistics.median(sequential),
        "p99_ms": _quantile(sequential, 0.99),
    }
    print(
        f"{name:<8} {rps:8.0f} req/s (concurrency {args.concurrency})   "
        f"p50 {figures['p50_ms']:6.2f} ms   p99 {figures['p99_ms']:6.2f} ms (sequential)"
    )
    return figures


def _http_call(client: httpx.AsyncClient, path: str, model: str) -> Call:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 32}

    async def call() -> None:
        response = await client.post(path, json=body)
        response.raise_for_status()

    return call


def _varied_call(client: httpx.AsyncClient, model: str) -> Call:
    """Each call a different benign game line, numbered so that none repeats."""
    lines = [
        json.loads(line)["text"]
        for line in GAME_LINES.read_text(encoding="utf-8").splitlines()
        if line.strip() and not json.loads(line)["labels"]
    ]
    counter = iter(range(10**9))

    async def call() -> None:
        n = next(counter)
        content = f"{lines[n % len(lines)]} ({n})"
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        response = await client.post("/v1/chat/completions", json=body)
        response.raise_for_status()

    return call


def _litellm_call(provider_url: str) -> Call | None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        from litellm import Router
    except ImportError:
        return None
    deployment = {"model": "openai/echo-large", "api_base": provider_url, "api_key": "none"}
    router = Router(
        model_list=[
            {"model_name": "echo-bench", "litellm_params": {**deployment, "weight": 50}},
            {"model_name": "echo-bench", "litellm_params": {**deployment, "weight": 50}},
        ],
        routing_strategy="simple-shuffle",
    )

    async def call() -> None:
        await router.acompletion(model="echo-bench", messages=MESSAGES, max_tokens=32)

    return call


async def _run(args: argparse.Namespace, provider: str, gateway: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    results: dict[str, dict[str, float]] = {}
    async with (
        httpx.AsyncClient(base_url=provider, limits=limits, timeout=30) as direct,
        httpx.AsyncClient(base_url=gateway, limits=limits, timeout=30) as routed,
    ):
        results["direct"] = await _bench_target(
            "direct", _http_call(direct, "/v1/chat/completions", "echo-large"), args
        )
        results["gateway"] = await _bench_target(
            "gateway", _http_call(routed, "/v1/chat/completions", "echo-bench"), args
        )
        results["unguarded"] = await _bench_target(
            "varied", _varied_call(routed, "echo-bench"), args
        )
        results["guarded"] = await _bench_target(
            "guarded", _varied_call(routed, "echo-guarded"), args
        )
        stages = _guardrail_stages((await routed.get("/metrics")).text)
    litellm = _litellm_call(f"{provider}/v1")
    if litellm is None:
        print("litellm not measured: not installed (`.venv/bin/pip install -e '.[bench]'`)")
    else:
        results["litellm"] = await _bench_target("litellm", litellm, args)
    async with tensorzero_targets(f"{provider}/v1", MESSAGES, limits) as tensorzero:
        for name, call in tensorzero.calls.items():
            results[name] = await _bench_target(name, call, args)
            print(f"{name} variants served: {dict(tensorzero.variants[name])}")
        for name, reason in tensorzero.unavailable.items():
            print(f"{name} not measured: {reason}")
    summary: dict[str, Any] = {
        f"{name}_{key}": round(value, 3) for name, r in results.items() for key, value in r.items()
    }
    summary["gateway_p50_overhead_ms"] = round(
        results["gateway"]["p50_ms"] - results["direct"]["p50_ms"], 3
    )
    summary["guardrails_p50_overhead_ms"] = round(
        results["guarded"]["p50_ms"] - results["unguarded"]["p50_ms"], 3
    )
    summary["guardrails_p99_overhead_ms"] = round(
        results["guarded"]["p99_ms"] - results["unguarded"]["p99_ms"], 3
    )
    # The share of guarded outputs the cascade sent on to the full MiniLM encoder.
    checked = sum(stages.values())
    summary["encoder_fraction"] = round(stages.get("encoder", 0) / checked, 4) if checked else None
    for peer in ("litellm", "tensorzero", "tensorzero_embedded"):  # null where not measured
        summary.setdefault(f"{peer}_rps", None)
        for quantile in ("p50", "p99"):
            summary[f"{peer}_{quantile}_overhead_ms"] = (
                round(results[peer][f"{quantile}_ms"] - results["direct"][f"{quantile}_ms"], 3)
                if peer in results
                else None
            )
    summary.update(requests=args.requests, concurrency=args.concurrency, cores=os.cpu_count())
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per target, concurrent pass")
    parser.add_argument("--sequential", type=int, default=300, help="per target, latency pass")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as folder:
        root = Path(folder)
        provider_port, gateway_port = free_port(), free_port()
        provider = f"http://127.0.0.1:{provider_port}"
        gateway = f"http://127.0.0.1:{gateway_port}"
        env = {**os.environ, **_prepare_world(root), "ECHO_URL": f"{provider}/v1"}
        echo = [sys.executable, str(ROOT / "bench" / "echo_provider.py"), "--port"]
        serve = [sys.executable, "-m", "reconciler.cli", "gateway", "--port", str(gateway_port)]
        with (
            serving_process([*echo, str(provider_port)], f"{provider}/v1/models", env),
            serving_process([*serve, "--repo", str(root / "repo")], f"{gateway}/healthz", env),
        ):
            summary = asyncio.run(_run(args, provider, gateway))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
