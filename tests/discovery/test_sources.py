"""Each source adapter against a stand-in speaking its service's protocol, through the real
client (huggingface_hub with HF_ENDPOINT, httpx): what is read, what is sent, and that a source
that is offline, refusing or unreachable is skipped with one line while the others still run."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from reconciler.discovery.candidate import SourceKind
from reconciler.discovery.retries import RetryPolicy, retry_after_seconds
from reconciler.discovery.sources import build_source, scan
from reconciler.spec.discovery import DiscoverySource
from tests.gateway.tiny_model import build_tiny_gpt2
from tests.stand_ins.hub import HubModel, point_client_at, serve_hub
from tests.stand_ins.providers import (
    APACHE_TEXT,
    ollama_model,
    openrouter_model,
    serve_ollama,
    serve_openai_compatible,
)

SHA_A = "a" * 40
SHA_B = "b" * 40
KEY = "sk-or-v1-stand-in-secret-0123456789"


class RecordedSleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def source(entry: dict[str, object], repo: Path, environ: dict[str, str], sleeps: RecordedSleeps):  # type: ignore[no-untyped-def]
    return build_source(
        DiscoverySource.model_validate(entry),
        repo=repo,
        environ=environ,
        policy=RetryPolicy(attempts=3, base_delay=0.5, max_wait=30, sleep=sleeps),
    )


def test_huggingface_lists_with_filters_and_reads_model_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [
        HubModel("acme/npc-small", SHA_A, downloads=5000, likes=50, benchmark=61.0),
        HubModel(
            "acme/npc-large",
            SHA_B,
            license="llama3",
            parameters={"BF16": 1_000_000_000, "F32": 1_000_000_000},
            gated="manual",
            downloads=300,
        ),
        HubModel("acme/other", "c" * 40),
        HubModel("elsewhere/npc-tiny", "d" * 40),
    ]
    with serve_hub(models, page_size=1) as hub:
        point_client_at(monkeypatch, hub.url, tmp_path / "hf-cache")
        sleeps = RecordedSleeps()
        hf = source(
            {"huggingface": {"author": "acme", "search": "npc", "minDownloads": 100}},
            tmp_path,
            {},
            sleeps,
        )
        found = {c.id: c for c in hf.candidates()}
    assert set(found) == {"acme/npc-small", "acme/npc-large"}
    small, large = found["acme/npc-small"], found["acme/npc-large"]
    assert small.source is SourceKind.HUGGINGFACE
    assert small.revision == SHA_A
    assert small.license == "apache-2.0"
    assert small.parameters == 135_000_000
    assert small.bytes_per_parameter == 2.0
    assert small.pipeline_tag == "text-generation"
    assert (small.downloads, small.likes) == (5000, 50)
    assert small.quality == pytest.approx(0.61)
    assert small.released_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert small.min_downloads == 100
    assert large.license == "llama3" and large.gated
    assert large.bytes_per_parameter == 3.0
    listing = [r for r in hub.requests if r.path == "/api/models"]
    assert listing[0].arg("author") == "acme" and listing[0].arg("search") == "npc"
    assert len(listing) == 2, "the second page (Link: rel=next) is followed"
    assert "/api/models/acme/npc-small" in hub.paths("GET")
    assert sleeps.waits == []


def test_offline_hub_is_skipped_with_one_line_and_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hub_constants

    with serve_hub([HubModel("acme/npc-small", SHA_A)]) as hub:
        point_client_at(monkeypatch, hub.url, tmp_path / "hf-cache")
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with serve_openai_compatible([openrouter_model("acme/story-1")]) as provider:
            sleeps = RecordedSleeps()
            sources = [
                source({"huggingface": {"author": "acme"}}, tmp_path, {}, sleeps),
                source(
                    {"openaiCompatible": {"baseUrl": provider.url + "/v1"}}, tmp_path, {}, sleeps
                ),
            ]
            reports = scan(sources)
    assert hub.requests == []
    assert reports[0].skipped == "HF_HUB_OFFLINE is set: the Hub is not asked"
    assert "\n" not in reports[0].skipped
    assert [c.id for c in reports[1].candidates] == ["acme/story-1"]


def test_a_failing_hub_is_skipped_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.stand_ins.http import Response, serve

    with serve(lambda request: Response(401, b'{"error": "Invalid credentials"}')) as broken:
        point_client_at(monkeypatch, broken.url, tmp_path / "hf-cache")
        reports = scan(
            [source({"huggingface": {"author": "acme"}}, tmp_path, {}, RecordedSleeps())]
        )
    assert reports[0].candidates == ()
    assert reports[0].skipped == f"cannot list models at {broken.url}: HTTP 401"


def test_hub_429_retry_after_is_honoured_through_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [
        HubModel("acme/npc-small", SHA_A, info_answers=[(429, {"Retry-After": "7"})]),
        HubModel("acme/npc-large", SHA_B, downloads=10),
    ]
    with serve_hub(models, listing_answers=[(429, {"Retry-After": "5"})]) as hub:
        point_client_at(monkeypatch, hub.url, tmp_path / "hf-cache")
        sleeps = RecordedSleeps()
        reports = scan([source({"huggingface": {"author": "acme"}}, tmp_path, {}, sleeps)])
    assert reports[0].skipped is None and reports[0].passed_over == ()
    assert [c.id for c in reports[0].candidates] == ["acme/npc-small", "acme/npc-large"]
    # Both waits went through the injected sleep, as the server asked: huggingface_hub's own
    # backoff (which would sleep Retry-After + 1 for real) never saw the 429s.
    assert sleeps.waits == [5.0, 7.0]
    assert hub.paths("GET").count("/api/models") == 2
    assert hub.paths("GET").count("/api/models/acme/npc-small") == 2


def test_a_model_the_hub_will_not_describe_is_passed_over_and_the_others_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gated = {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access is restricted"}
    gone = {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
    models = [
        HubModel("acme/npc-open", SHA_A, downloads=900),
        HubModel("acme/npc-gated", SHA_B, downloads=800, info_answers=[(403, gated)]),
        HubModel("acme/npc-gone", "c" * 40, downloads=700, info_answers=[(404, gone)]),
        HubModel("acme/npc-down", "d" * 40, downloads=600, info_answers=[(503, {})] * 3),
    ]
    with serve_hub(models) as hub:
        point_client_at(monkeypatch, hub.url, tmp_path / "hf-cache")
        sleeps = RecordedSleeps()
        reports = scan([source({"huggingface": {"author": "acme"}}, tmp_path, {}, sleeps)])
    report = reports[0]
    assert report.skipped is None
    assert [c.id for c in report.candidates] == ["acme/npc-open"]
    assert [p.line for p in report.passed_over] == [
        "acme/npc-gated: model info: HTTP 403 (GatedRepoError)",
        "acme/npc-gone: model info: HTTP 404 (RepositoryNotFoundError)",
        "acme/npc-down: model info: HTTP 503 after 3 attempts",
    ]
    assert sleeps.waits == [0.5, 1.0], "only the 503s are retried"


def test_a_hub_throttling_beyond_the_limit_is_skipped_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    throttled = [(429, {"Retry-After": "3600"})]
    with serve_hub([HubModel("acme/npc-small", SHA_A)], listing_answers=throttled) as hub:
        point_client_at(monkeypatch, hub.url, tmp_path / "hf-cache")
        sleeps = RecordedSleeps()
        reports = scan([source({"huggingface": {"author": "acme"}}, tmp_path, {}, sleeps)])
    assert reports[0].skipped == (
        f"cannot list models at {hub.url}: rate limited; the server asks to retry after 3600s"
    )
    assert sleeps.waits == []


def test_a_hub_that_never_answers_times_out_and_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """huggingface_hub sends without a timeout by itself: a stalled Hub would hang the job."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        point_client_at(monkeypatch, url, tmp_path / "hf-cache")
        sleeps = RecordedSleeps()
        policy = RetryPolicy(attempts=2, base_delay=0.5, sleep=sleeps, timeout=httpx.Timeout(0.2))
        hub = build_source(
            DiscoverySource.model_validate({"huggingface": {"author": "acme"}}),
            repo=tmp_path,
            environ={},
            policy=policy,
        )
        reports = scan([hub])
    assert reports[0].skipped == (
        f"cannot list models at {url}: no answer in time (ReadTimeout) after 2 attempts"
    )
    assert sleeps.waits == [0.5]


def test_openai_compatible_reads_openrouter_fields_and_sends_the_key(tmp_path: Path) -> None:
    models = [
        openrouter_model(
            "acme/story-1", prompt="0.000001", completion="0.000002", created=1_760_000_000
        ),
        openrouter_model(
            "acme/story-router", prompt="-1", completion="-1", expiration_date="2026-06-30"
        ),
        openrouter_model("other/chat"),
    ]
    with serve_openai_compatible(models, api_key=KEY) as provider:
        environ = {"PROVIDER_URL": provider.url + "/v1", "PROVIDER_KEY": KEY}
        found = source(
            {
                "openaiCompatible": {
                    "baseUrlEnv": "PROVIDER_URL",
                    "apiKeyEnv": "PROVIDER_KEY",
                    "match": "story",
                }
            },
            tmp_path,
            environ,
            RecordedSleeps(),
        ).candidates()
    assert [c.id for c in found] == ["acme/story-1", "acme/story-router"]
    story, router = found
    assert story.pricing is not None
    assert (story.pricing.prompt_per_token, story.pricing.completion_per_token) == (1e-6, 2e-6)
    assert story.context_length == 32768
    assert story.released_at == datetime.fromtimestamp(1_760_000_000, UTC)
    assert story.license == "proprietary"
    assert (story.base_url, story.base_url_env, story.api_key_env) == (
        None,
        "PROVIDER_URL",
        "PROVIDER_KEY",
    )
    assert router.pricing is None, "a router's '-1' price is not a price"
    assert router.expires_at == datetime(2026, 6, 30, tzinfo=UTC)
    assert provider.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_refused_key_is_one_line_without_the_key(tmp_path: Path) -> None:
    with serve_openai_compatible([openrouter_model("a/b")], api_key="the-right-key") as provider:
        reports = scan(
            [
                source(
                    {"openaiCompatible": {"baseUrl": provider.url + "/v1", "apiKeyEnv": "KEY"}},
                    tmp_path,
                    {"KEY": KEY},
                    RecordedSleeps(),
                )
            ]
        )
    skipped = reports[0].skipped
    assert skipped == f"{provider.url}/v1/models: refused (HTTP 401); check KEY"
    assert KEY not in skipped


def test_429_retry_after_is_honoured_then_succeeds(tmp_path: Path) -> None:
    sleeps = RecordedSleeps()
    with serve_openai_compatible([openrouter_model("acme/story-1")]) as provider:
        provider.interruptions += [(429, {"Retry-After": "7"}), (503, {})]
        found = source(
            {"openaiCompatible": {"baseUrl": provider.url + "/v1"}}, tmp_path, {}, sleeps
        ).candidates()
    assert [c.id for c in found] == ["acme/story-1"]
    assert sleeps.waits == [7.0, 1.0], "Retry-After first, then exponential backoff"
    assert len(provider.requests) == 3


def test_a_retry_after_beyond_the_limit_gives_up_at_once(tmp_path: Path) -> None:
    sleeps = RecordedSleeps()
    with serve_openai_compatible([openrouter_model("acme/story-1")]) as provider:
        provider.interruptions.append((429, {"Retry-After": "3600"}))
        reports = scan(
            [source({"openaiCompatible": {"baseUrl": provider.url + "/v1"}}, tmp_path, {}, sleeps)]
        )
    assert (
        reports[0].skipped
        == f"{provider.url}/v1/models: rate limited; the server asks to retry after 3600s"
    )
    assert sleeps.waits == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_source_is_skipped_after_retries(tmp_path: Path) -> None:
    sleeps = RecordedSleeps()
    port = _closed_port()
    reports = scan(
        [source({"ollama": {"baseUrl": f"http://127.0.0.1:{port}"}}, tmp_path, {}, sleeps)]
    )
    assert reports[0].skipped == (
        f"ollama at http://127.0.0.1:{port}: cannot connect (ConnectError) after 3 attempts"
    )
    assert sleeps.waits == [0.5, 1.0]


def test_retry_after_accepts_an_http_date() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Tue, 01 Dec 2026 12:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("soon", now=now) is None


def test_ollama_tags_and_show(tmp_path: Path) -> None:
    models = [
        ollama_model("npc-small:latest", digest="f" * 64, quantization="Q4_K_M"),
        ollama_model("mystery:7b", parameter_size="7B"),
    ]
    with serve_ollama(
        models,
        licenses={"npc-small:latest": APACHE_TEXT},
        parameter_counts={"npc-small:latest": 134_515_008},
    ) as ollama:
        found = source(
            {"ollama": {"baseUrl": ollama.url, "license": "other"}}, tmp_path, {}, RecordedSleeps()
        ).candidates()
    small, mystery = found
    assert (small.id, small.revision, small.license) == ("npc-small:latest", "f" * 64, "apache-2.0")
    assert small.parameters == 134_515_008
    assert small.bytes_per_parameter == pytest.approx(4.5 / 8)
    assert small.base_url == f"{ollama.url}/v1"
    assert small.released_at is not None and small.released_at.utcoffset() is not None
    assert (mystery.license, mystery.parameters) == ("other", 7e9)
    assert [r.path for r in ollama.requests] == ["/api/tags", "/api/show", "/api/show"]


def test_local_catalog_reads_card_and_safetensors(tmp_path: Path) -> None:
    catalog = tmp_path / "models" / "catalog"
    folder = build_tiny_gpt2(catalog / "npc-v2")
    (folder / "README.md").write_text(
        "---\nlicense: mit\npipeline_tag: text-generation\n---\n# v2\n"
    )
    (catalog / "not-a-model").mkdir()
    found = source(
        {"local": {"path": "models/catalog"}}, tmp_path, {}, RecordedSleeps()
    ).candidates()
    assert len(found) == 1
    model = found[0]
    assert (model.id, model.path, model.license) == (
        "models/catalog/npc-v2",
        "models/catalog/npc-v2",
        "mit",
    )
    assert model.pipeline_tag == "text-generation"
    assert model.parameters is not None and model.parameters > 1000
    assert model.bytes_per_parameter in (2.0, 4.0)
    assert model.revision is not None and len(model.revision) == 16
    before = model.revision
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# v2, edited\n")
    again = source(
        {"local": {"path": "models/catalog"}}, tmp_path, {}, RecordedSleeps()
    ).candidates()
    assert again[0].revision != before, "a changed folder is a new revision"


def test_a_missing_catalog_is_skipped(tmp_path: Path) -> None:
    reports = scan([source({"local": {"path": "models/none"}}, tmp_path, {}, RecordedSleeps())])
    assert reports[0].skipped == "models/none is not a folder"
