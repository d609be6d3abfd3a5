"""A provider that fails while a candidate is evaluated: retried, then recorded as incomplete.

The real httpx client against a stand-in OpenAI-compatible provider on 127.0.0.1 that fails
on demand (503, 429 with Retry-After, always). A failure that outlasts the retries leaves no
verdict on the version - `incomplete`, with a one-line cause - so the next plan evaluates it
again and the controller retries it later; a failed verdict would be final.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import lineage
from reconciler.apply.model_builder import MlflowModelBuilder
from reconciler.errors import is_temporary
from reconciler.evaluation.generation import (
    PROVIDER_ATTEMPTS,
    PROVIDER_BACKOFF_SECONDS,
    ExternalGenerator,
    GenerationError,
    ProviderUnavailableError,
)
from reconciler.registry.mlflow_registry import MlflowRegistry
from reconciler.settings import Settings
from reconciler.spec.loader import load_desired_state
from reconciler.spec.model import Generation
from reconciler.training.registration import register_base
from tests.evaluation.stand_in_provider import Provider, serve_provider

STORY = "story-generation"
PROMPTS = ["Tell of the drowned bell.", "Who guards the salt road?"]


@pytest.fixture
def provider() -> Iterator[Provider]:
    with serve_provider(lambda body: "The bell tolls under the marsh.") as provider:
        yield provider


def generator(provider: Provider, waits: list[float] | None = None) -> ExternalGenerator:
    async def recorded(seconds: float) -> None:
        # The retry's wait is recorded, not slept: the test never depends on the wall clock.
        if waits is not None:
            waits.append(seconds)

    return ExternalGenerator(
        model_id="narrator-large",
        base_url=provider.url,
        api_key="test-key-value",
        generation=Generation(),
        timeout_seconds=10,
        sleep=recorded,
    )


def test_a_provider_failing_twice_is_retried_with_backoff_and_the_evaluation_completes(
    provider: Provider,
) -> None:
    provider.fails(2, status=503)
    waits: list[float] = []
    generated = generator(provider, waits).generate(PROMPTS[:1], seed=1)
    assert [g.text for g in generated] == ["The bell tolls under the marsh."]
    assert len(provider.bodies) == 3
    assert waits == [PROVIDER_BACKOFF_SECONDS, PROVIDER_BACKOFF_SECONDS * 2]  # exponential


@pytest.mark.parametrize("retry_after", ["7", "0.5"])
def test_a_429_waits_what_its_retry_after_says(provider: Provider, retry_after: str) -> None:
    provider.fails(1, status=429, retry_after=retry_after)
    waits: list[float] = []
    generated = generator(provider, waits).generate(PROMPTS[:1], seed=1)
    assert len(generated) == 1 and len(provider.bodies) == 2
    assert waits == [float(retry_after)]


def test_a_provider_that_stays_down_is_a_temporary_error_in_one_line(provider: Provider) -> None:
    provider.fails(100, status=503)
    with pytest.raises(ProviderUnavailableError) as raised:
        generator(provider).generate(PROMPTS[:1], seed=1)
    message = str(raised.value)
    assert is_temporary(raised.value)
    assert "\n" not in message and "HTTP 503" in message
    assert f"failed {PROVIDER_ATTEMPTS} times" in message
    assert "sk-live-secret" not in message  # the provider's body is never echoed
    assert len(provider.bodies) == PROVIDER_ATTEMPTS


def test_a_request_the_provider_refuses_is_not_retried(provider: Provider) -> None:
    provider.fails(1, status=400)
    with pytest.raises(GenerationError, match="refused the request: HTTP 400") as raised:
        generator(provider).generate(PROMPTS[:1], seed=1)
    assert not is_temporary(raised.value)
    assert len(provider.bodies) == 1


def test_an_evaluation_that_cannot_complete_is_recorded_incomplete_not_failed(
    provider: Provider,
    shipped_repo: Path,
    tmp_path: Path,
    fresh_sqlite_store: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORY_PROVIDER_BASE_URL", provider.url)
    monkeypatch.setenv("STORY_PROVIDER_API_KEY", "test-key-value")
    settings = Settings.from_environment(
        {"MLFLOW_TRACKING_URI": fresh_sqlite_store, "RECONCILER_STATE_DIR": str(tmp_path)},
        cwd=tmp_path,
    )
    desired = load_desired_state(shipped_repo).state
    assert desired is not None
    use_case, identity = desired.use_case(STORY), desired.identities[STORY]
    version = register_base(use_case, identity, desired, repo=shipped_repo, settings=settings)
    registry = MlflowRegistry(settings.tracking_uri)
    builder = MlflowModelBuilder(
        repo=shipped_repo, desired=desired, settings=settings, registry=registry
    )
    provider.fails(10_000, status=502)

    with pytest.raises(ProviderUnavailableError):
        builder.evaluate(use_case, identity, version, None)

    model = registry.snapshot([STORY])[STORY]
    assert model is not None
    tags = model.version(version).tags  # type: ignore[union-attr]
    assert tags[lineage.EVALUATION_VERDICT] == "incomplete"
    assert tags[lineage.EVALUATION_DIGEST] == identity.digest
    assert tags[lineage.EVALUATION_REASON].startswith("could not complete: provider for")
    assert tags[lineage.EVALUATION_SAFETY_FINDINGS] == "[]"
    # The provider recovers: the next evaluation completes and gives a real verdict.
    provider.failures.clear()
    outcome = builder.evaluate(use_case, identity, version, None)
    assert outcome.passed, outcome.reason
    model = registry.snapshot([STORY])[STORY]
    assert model is not None
    assert model.version(version).tags[lineage.EVALUATION_VERDICT] == "passed"  # type: ignore[union-attr]
