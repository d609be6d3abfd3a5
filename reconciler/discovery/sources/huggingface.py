"""The Hugging Face Hub through `huggingface_hub`: `list_models` with the filters, then
`model_info` per model for what the listing does not carry.

Read from `model_info`: the commit sha (what would be pinned), its date, the license from the
card data (or the `license:` tag), the parameter count and dtypes from the Hub's safetensors
metadata, downloads, likes, gated, and benchmark results from the card's model-index. The
client's own settings apply: HF_ENDPOINT (a mirror or a stand-in), HF_TOKEN, HF_HUB_OFFLINE -
offline, the source is skipped with one line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from reconciler.discovery.candidate import Candidate, PassedOver, SourceKind
from reconciler.discovery.memory import bytes_per_parameter_from_counts
from reconciler.discovery.retries import RetryPolicy, UnreachableError
from reconciler.discovery.sources import SourceUnavailableError
from reconciler.discovery.sources.hub_client import call_hub, governed
from reconciler.settings import redact_uri
from reconciler.spec.discovery import HuggingFaceSource

log = logging.getLogger(__name__)

_INFO_FIELDS = [
    "sha",
    "lastModified",
    "createdAt",
    "cardData",
    "safetensors",
    "downloads",
    "likes",
    "gated",
    "pipeline_tag",
    "tags",
]


class HuggingFaceHubSource:
    def __init__(self, config: HuggingFaceSource, *, policy: RetryPolicy) -> None:
        self.config = config
        self.policy = policy

    @property
    def description(self) -> str:
        filters = [
            f"{name}={value}"
            for name, value in (
                ("author", self.config.author),
                ("search", self.config.search),
                ("pipelineTag", self.config.pipeline_tag),
            )
            if value
        ]
        return f"huggingface ({', '.join(filters) or 'all models'})"

    def candidates(self) -> Sequence[Candidate | PassedOver]:
        from huggingface_hub import HfApi, constants

        if constants.is_offline_mode():
            raise SourceUnavailableError("HF_HUB_OFFLINE is set: the Hub is not asked")
        api = HfApi()
        config = self.config
        endpoint = redact_uri(constants.ENDPOINT)
        with governed(self.policy.timeout):
            try:
                listed = call_hub(
                    lambda: list(
                        api.list_models(
                            author=config.author,
                            search=config.search,
                            pipeline_tag=config.pipeline_tag,
                            sort="downloads",
                            limit=config.limit,
                        )
                    ),
                    policy=self.policy,
                    what=f"cannot list models at {endpoint}",
                )
            except Exception as exc:
                raise SourceUnavailableError(
                    _problem(exc, f"cannot list models at {endpoint}")
                ) from None
            return [self._describe(api, model.id) for model in listed]

    def _describe(self, api: Any, model_id: str) -> Candidate | PassedOver:
        """One model's candidate, or why it is passed over: a refusal, a lasting failure or
        a malformed answer for this model does not cost the others their place."""
        try:
            info = call_hub(
                lambda: api.model_info(model_id, expand=_INFO_FIELDS),
                policy=self.policy,
                what="model info",
            )
            return _candidate(info, min_downloads=self.config.min_downloads)
        except Exception as exc:
            log.debug("model info for %s failed", model_id, exc_info=True)
            return PassedOver(model_id, _problem(exc, "model info"))


def _candidate(info: Any, *, min_downloads: int) -> Candidate:
    card = info.card_data
    license_ = getattr(card, "license", None) if card is not None else None
    if isinstance(license_, list):
        license_ = license_[0] if license_ else None
    if not license_:
        license_ = next(
            (t.removeprefix("license:") for t in info.tags or [] if t.startswith("license:")),
            None,
        )
    safetensors = info.safetensors
    parameters = float(safetensors.total) if safetensors is not None else None
    per_parameter = (
        bytes_per_parameter_from_counts(dict(safetensors.parameters))
        if safetensors is not None
        else None
    )
    return Candidate(
        source=SourceKind.HUGGINGFACE,
        id=str(info.id),
        revision=info.sha,
        license=str(license_) if license_ else None,
        parameters=parameters,
        bytes_per_parameter=per_parameter,
        pipeline_tag=info.pipeline_tag,
        downloads=info.downloads,
        likes=info.likes,
        released_at=info.last_modified or info.created_at,
        gated=info.gated not in (None, False),
        quality=card_quality(card),
        min_downloads=min_downloads,
    )


def card_quality(card: Any) -> float | None:
    """The mean of the card's reported benchmark values, as a fraction in [0, 1].

    Values above 1 are taken as percentages; anything outside 0-100 is not a score and is
    ignored. None when the card reports no results.
    """
    results = getattr(card, "eval_results", None) if card is not None else None
    values = []
    for result in results or []:
        value = getattr(result, "metric_value", None)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100:
            values.append(value / 100 if value > 1 else float(value))
    return sum(values) / len(values) if values else None


def _problem(exc: Exception, what: str) -> str:
    """One line: what failed and why (HTTP status and the library's error name), no URL's
    credentials; the retry policy's own message as it is."""
    if isinstance(exc, UnreachableError):  # "{what}: HTTP 429 after 4 attempts"
        return str(exc)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    name = type(exc).__name__
    if status:
        why = f"HTTP {status}" + (f" ({name})" if name != "HfHubHTTPError" else "")
    else:
        first = str(exc).strip().splitlines()
        why = redact_uri(first[0][:200]) if first else name
    return f"{what}: {why}"
