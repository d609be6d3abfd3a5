"""The Hugging Face Hub through `huggingface_hub`: `list_models` with the filters, then
`model_info` per model for what the listing does not carry.

Read from `model_info`: the commit sha (what would be pinned), its date, the license from the
card data (or the `license:` tag), the parameter count and dtypes from the Hub's safetensors
metadata, downloads, likes, gated, and benchmark results from the card's model-index. The
client's own settings apply: HF_ENDPOINT (a mirror or a stand-in), HF_TOKEN, HF_HUB_OFFLINE -
offline, the source is skipped with one line.
"""

from __future__ import annotations

from typing import Any

from reconciler.discovery.candidate import Candidate, SourceKind
from reconciler.discovery.memory import bytes_per_parameter_from_counts
from reconciler.discovery.sources import SourceUnavailableError
from reconciler.spec.discovery import HuggingFaceSource

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
    def __init__(self, config: HuggingFaceSource) -> None:
        self.config = config

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

    def candidates(self) -> list[Candidate]:
        from huggingface_hub import HfApi, constants

        if constants.is_offline_mode():
            raise SourceUnavailableError("HF_HUB_OFFLINE is set: the Hub is not asked")
        api = HfApi()
        config = self.config
        try:
            listed = list(
                api.list_models(
                    author=config.author,
                    search=config.search,
                    pipeline_tag=config.pipeline_tag,
                    sort="downloads",
                    limit=config.limit,
                )
            )
        except Exception as exc:
            raise SourceUnavailableError(_reason(exc, constants.ENDPOINT)) from None
        found = []
        for listed_model in listed:
            try:
                info = api.model_info(listed_model.id, expand=_INFO_FIELDS)  # type: ignore[arg-type]
            except Exception as exc:
                raise SourceUnavailableError(_reason(exc, constants.ENDPOINT)) from None
            found.append(_candidate(info, min_downloads=config.min_downloads))
        return found


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


def _reason(exc: Exception, endpoint: str) -> str:
    from reconciler.settings import redact_uri

    status = getattr(getattr(exc, "response", None), "status_code", None)
    what = f"HTTP {status}" if status else type(exc).__name__
    return f"cannot list models at {redact_uri(endpoint)}: {what}"
