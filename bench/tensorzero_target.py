"""TensorZero's Rust gateway as a peer in `gateway_overhead.py`: the same two weighted variants
(50/50) of the same echo backend, declared as a TensorZero function.

Both targets run the Rust gateway shipped in the `tensorzero` PyPI package (the `bench` extra):

- `tensorzero`: its HTTP server on a 127.0.0.1 port, called at its OpenAI-compatible endpoint
  (`/openai/v1/chat/completions`, model `tensorzero::function_name::echo_bench`) by the same
  kind of httpx client as our gateway, so each request crosses one HTTP hop in front of the
  backend, as through ours. The package starts that server inside this process
  (`_start_http_gateway`, what its `patch_openai_client` runs); the standalone gateway is a
  Docker image or a Rust build, neither of which installs from PyPI.
- `tensorzero_embedded`: `AsyncTensorZeroGateway.build_embedded`, the gateway inside this
  process behind its Python client, as LiteLLM's Router is. It calls the backend with its own
  Rust HTTP client instead of httpx, so its figure can fall below the direct one.

Observability is off (`gateway.observability.enabled = false`: no ClickHouse or Postgres here),
and so are pseudonymous usage analytics (no network here either).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

Call = Callable[[], Awaitable[None]]
FUNCTION = "echo_bench"
CONFIG = """\
[gateway]
observability.enabled = false
disable_pseudonymous_usage_analytics = true

[models.echo_large]
routing = ["echo"]

[models.echo_large.providers.echo]
type = "openai"
api_base = "{provider_url}"
model_name = "echo-large"
api_key_location = "none"

[functions.{function}]
type = "chat"

[functions.{function}.variants.v1]
type = "chat_completion"
model = "echo_large"
temperature = 0.5
max_tokens = 32

[functions.{function}.variants.v2]
type = "chat_completion"
model = "echo_large"
temperature = 0.5
max_tokens = 32

[functions.{function}.experimentation]
type = "static"
candidate_variants = {{"v1" = 50, "v2" = 50}}
"""


@dataclass
class TensorZeroTargets:
    """Calls ready to measure, why the others are not, and which variant served each answer."""

    calls: dict[str, Call] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    variants: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def _checked(answer: str, variant: str, variants: Counter[str]) -> None:
    """An answer that did not come from the echo backend means the gateway did not route."""
    if not answer.startswith("echo["):
        raise RuntimeError(f"TensorZero answered {answer!r}, not the echo backend's answer")
    variants[variant] += 1


@asynccontextmanager
async def tensorzero_targets(
    provider_url: str, messages: list[dict[str, str]], limits: httpx.Limits
) -> AsyncIterator[TensorZeroTargets]:
    """TensorZero's gateway, HTTP and embedded, routing to `provider_url` (an OpenAI-compatible
    base URL ending in /v1) until the block ends."""
    targets = TensorZeroTargets()
    os.environ.setdefault("RUST_LOG", "warn")  # its INFO lines would interleave with the figures
    try:
        import tensorzero
    except ImportError:
        reason = "the tensorzero package is not installed (`.venv/bin/pip install -e '.[bench]'`)"
        targets.unavailable = {"tensorzero": reason, "tensorzero_embedded": reason}
        yield targets
        return
    async with AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tensorzero-")))
        config = folder / "tensorzero.toml"
        config.write_text(CONFIG.format(provider_url=provider_url, function=FUNCTION))
        try:
            targets.calls["tensorzero"] = await _http_target(
                stack, tensorzero, config, messages, limits, targets.variants["tensorzero"]
            )
        except Exception as error:  # any failure is the reason reported
            targets.unavailable["tensorzero"] = f"its HTTP gateway failed: {error}"
        try:
            targets.calls["tensorzero_embedded"] = await _embedded_target(
                stack, tensorzero, config, messages, targets.variants["tensorzero_embedded"]
            )
        except Exception as error:  # any failure is the reason reported
            targets.unavailable["tensorzero_embedded"] = f"its embedded gateway failed: {error}"
        yield targets


async def _http_target(
    stack: AsyncExitStack,
    tensorzero: Any,
    config: Path,
    messages: list[dict[str, str]],
    limits: httpx.Limits,
    variants: Counter[str],
) -> Call:
    start = getattr(tensorzero.tensorzero, "_start_http_gateway", None)
    if start is None:
        raise RuntimeError(f"tensorzero {tensorzero.__version__} has no _start_http_gateway")
    gateway = await start(
        config_file=str(config),
        clickhouse_url=None,
        postgres_url=None,
        valkey_url=None,
        async_setup=True,
    )
    stack.callback(gateway.close)
    client = await stack.enter_async_context(
        httpx.AsyncClient(base_url=f"{gateway.base_url}/", limits=limits, timeout=30)
    )
    body = {"model": f"tensorzero::function_name::{FUNCTION}", "messages": messages}

    async def call() -> None:
        response = await client.post("chat/completions", json=body)
        response.raise_for_status()
        answer = response.json()
        _checked(
            answer["choices"][0]["message"]["content"],
            answer["model"].rsplit("::", 1)[-1],
            variants,
        )

    await call()
    return call


async def _embedded_target(
    stack: AsyncExitStack,
    tensorzero: Any,
    config: Path,
    messages: list[dict[str, str]],
    variants: Counter[str],
) -> Call:
    gateway = await stack.enter_async_context(
        await tensorzero.AsyncTensorZeroGateway.build_embedded(
            config_file=str(config), clickhouse_url=None, postgres_url=None, timeout=30
        )
    )
    payload = {"messages": messages}

    async def call() -> None:
        response = await gateway.inference(function_name=FUNCTION, input=payload)
        _checked(response.content[0].text, response.variant_name, variants)

    await call()
    return call
