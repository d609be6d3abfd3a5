"""Discovery sources: one adapter per kind of place models are offered, behind `Source`.

Each adapter turns its service's answer into `Candidate` values and nothing else: no ranking,
no decisions. `scan` runs every source of a use case and never lets one break the others: an
offline or unreachable source, or one answering nonsense, becomes one line in its report.
SDKs (huggingface_hub, safetensors) are imported inside their adapter only, when it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from reconciler.discovery.candidate import Candidate, PassedOver, SourceReport
from reconciler.discovery.retries import RetryPolicy
from reconciler.errors import ReconcilerError
from reconciler.settings import redact_uri
from reconciler.spec.discovery import DiscoverySource

log = logging.getLogger(__name__)


class SourceUnavailableError(ReconcilerError):
    """The source cannot be asked now (offline, unreachable, refused); the message says why."""


class Source(Protocol):
    @property
    def description(self) -> str: ...

    def candidates(self) -> Sequence[Candidate | PassedOver]:
        """Everything the source offers that its filters let through; a model it lists but
        cannot describe is `PassedOver` with its reason, and the others are still returned."""
        ...


def build_source(
    entry: DiscoverySource,
    *,
    repo: Path,
    environ: Mapping[str, str],
    policy: RetryPolicy,
) -> Source:
    if entry.huggingface is not None:
        from reconciler.discovery.sources.huggingface import HuggingFaceHubSource

        return HuggingFaceHubSource(entry.huggingface, policy=policy)
    if entry.openai_compatible is not None:
        from reconciler.discovery.sources.openai_compatible import OpenAICompatibleModels

        return OpenAICompatibleModels(entry.openai_compatible, environ=environ, policy=policy)
    if entry.ollama is not None:
        from reconciler.discovery.sources.ollama import OllamaModels

        return OllamaModels(entry.ollama, environ=environ, policy=policy)
    if entry.local is not None:
        from reconciler.discovery.sources.local_catalog import LocalCatalog

        return LocalCatalog(entry.local, repo=repo)
    raise AssertionError("validated: a source names exactly one kind")


def scan(sources: Sequence[Source]) -> list[SourceReport]:
    """Ask every source; a failing one is skipped with one clear line, the others still run."""
    reports = []
    for source in sources:
        try:
            found = source.candidates()
        except ReconcilerError as exc:  # SourceUnavailableError, UnreachableError, ...
            reports.append(SourceReport(source.description, skipped=str(exc)))
            continue
        except Exception as exc:  # an adapter bug or a malformed answer: still only this source
            log.debug("source %s failed", source.description, exc_info=True)
            reports.append(SourceReport(source.description, skipped=_one_line(exc)))
            continue
        reports.append(
            SourceReport(
                source.description,
                candidates=tuple(c for c in found if isinstance(c, Candidate)),
                passed_over=tuple(c for c in found if isinstance(c, PassedOver)),
            )
        )
    return reports


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {redact_uri(lines[0][:300])}" if lines else type(exc).__name__
