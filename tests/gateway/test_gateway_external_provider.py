"""An external backend whose provider is a second, real `reconciler gateway` process.

The provider gateway serves a tiny self-hosted model registered in its own sqlite MLflow
store (the demo's stand-in for a paid provider, `reconciler.demo.provider`); the gateway under
test serves a use case whose openai-compatible acceptable model points at it through the
environment variable the spec names. Real text crosses two gateways; the provider going
down is a 502 counted against the version, a prompt too long for the provider's model a 400
that is not."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from reconciler.child_process import free_port
from reconciler.demo.provider import PROVIDER_MODEL, running_provider
from reconciler.gateway.log_queries import window_metrics
from reconciler.settings import DATABASE_FILE
from reconciler.state_store.database import StateDatabase
from tests.gateway.processes import ADMIN_TOKEN, World, gateway_process
from tests.gateway.tiny_model import build_tiny_gpt2

USE_CASE = "tale-teller"
TALE_TELLER_YAML = f"""\
apiVersion: reconciler/v1
kind: UseCase
metadata: {{name: {USE_CASE}}}
spec:
  registeredModel: {USE_CASE}
  acceptableModels:
    - source: openai-compatible
      id: {PROVIDER_MODEL}
      baseUrlEnv: TALE_PROVIDER_URL
      apiKeyEnv: TALE_PROVIDER_KEY
      license: proprietary
  generation: {{temperature: 0.0, maxNewTokens: 8}}
  evaluation: {{prompts: desired_state/datasets/eval.jsonl}}
"""
TOO_LONG = "Tell me everything about the dragons of the far north and their gold. " * 12


@pytest.fixture(scope="module")
def tale_version(world: World) -> str:
    """An external version of `tale-teller` in the test store, made for the provider's model."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=world.tracking_uri, registry_uri=world.tracking_uri)
    client.create_registered_model(USE_CASE)
    version = client.create_model_version(
        USE_CASE,
        source=str(world.root / "external-has-no-artifacts"),
        tags={"reconciler.role": "external", "reconciler.base_model": PROVIDER_MODEL},
    )
    return str(version.version)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "desired_state" / "datasets").mkdir(parents=True)
    (repo / "desired_state" / "datasets" / "eval.jsonl").write_text('{"prompt": "hello"}\n')
    (repo / "desired_state" / f"{USE_CASE}.yaml").write_text(TALE_TELLER_YAML)
    return repo


@dataclass
class Provider:
    url: str  # its OpenAI base URL, …/v1
    request_log: StateDatabase
    stop: Callable[[], None]


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    """The provider gateway process; `stop()` takes it down before the test ends."""
    tiny = build_tiny_gpt2(tmp_path / "tiny-model")
    root = tmp_path / "provider"
    with ExitStack() as running:
        url = running.enter_context(running_provider(root, tiny, free_port()))
        log = StateDatabase(f"sqlite:///{root / 'state' / DATABASE_FILE}")
        yield Provider(url, log, running.close)


def test_a_gateway_is_the_provider_of_another(
    tmp_path: Path, world: World, repo: Path, tale_version: str, provider: Provider
) -> None:
    state = tmp_path / "state"
    env = {"TALE_PROVIDER_URL": provider.url, "TALE_PROVIDER_KEY": "tale-key-for-tests"}
    with gateway_process(
        repo=repo, tracking_uri=world.tracking_uri, state_dir=state, cwd=tmp_path, env=env
    ) as url:
        routed = httpx.put(
            f"{url}/admin/routes/{USE_CASE}",
            params={"wait": "true"},
            json=[{"version": tale_version, "weight": 100}],
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=120,
        )
        assert routed.status_code == 200, routed.text
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        since = time.time()

        answered = client.chat.completions.with_raw_response.create(
            model=USE_CASE, messages=[{"role": "user", "content": "Tell me a tale."}]
        )
        completion = answered.parse()
        assert answered.headers["x-model-version"] == tale_version
        assert isinstance(completion.choices[0].message.content, str)
        # Token counts come from the provider's tokenizer: real generation happened there.
        assert completion.usage is not None and completion.usage.prompt_tokens > 0
        text = client.completions.create(model=USE_CASE, prompt="Once upon a time")
        assert isinstance(text.choices[0].text, str)

        # Too long for the provider's model: the provider says so, and so does this gateway.
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model=USE_CASE, messages=[{"role": "user", "content": TOO_LONG}]
            )
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["code"] == "context_length_exceeded"

        # The provider logged what it served (its usage endpoint flushes its log first);
        # the prompt it refused is no request of its model either.
        httpx.get(f"{provider.url.removesuffix('/v1')}/admin/usage", timeout=30)
        upstream = window_metrics(provider.request_log, PROVIDER_MODEL, since=since)
        assert sum(w.requests for w in upstream.values()) == 2

        provider.stop()
        down = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": USE_CASE, "messages": [{"role": "user", "content": "Still there?"}]},
            timeout=60,
        )
        assert down.status_code == 502, down.text
        assert down.json()["error"]["code"] == "upstream_error"
        assert "tale-key-for-tests" not in down.text

        window = httpx.get(
            f"{url}/admin/metrics", params={"use_case": USE_CASE, "since": since}, timeout=30
        ).json()["versions"][tale_version]
        # Two answers and the outage; the refused prompt is not the version's error.
        assert (window["requests"], window["errors"]) == (3, 1)
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert (
            f'gateway_request_errors_total{{use_case="{USE_CASE}",version="{tale_version}",'
            'shadow="false",kind="upstream_error"} 1' in metrics
        )
