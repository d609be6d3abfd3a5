"""Analysis windows read from the gateway's request log (the traffic it really served).

Live windows count the requests a version answered for players; mirrored windows count the
copies it answered in the shadow, and compare each of its answers with the champion's answer
to the same request (mean cosine similarity of all-MiniLM-L6-v2 embeddings).
"""

from __future__ import annotations

from reconciler.rollout.analysis import WindowMetrics
from reconciler.state_store.database import StateDatabase


class RequestLogMetrics:
    """`MetricsSource` over the gateway's request log (every replica's, on a shared store)."""

    def __init__(self, database: StateDatabase) -> None:
        self.database = database

    def window(
        self,
        use_case: str,
        version: str,
        *,
        since: float,
        until: float,
        mirrored: bool = False,
        compare_with: str | None = None,
    ) -> WindowMetrics:
        from reconciler.gateway.log_queries import mirrored_pairs, window_metrics

        found = window_metrics(
            self.database, use_case, since=since, until=until, shadow=mirrored
        ).get(version)
        if found is None:
            return WindowMetrics(requests=0)
        similarity, compared = None, 0
        if compare_with is not None:
            pairs = mirrored_pairs(
                self.database,
                use_case,
                version=version,
                against=compare_with,
                since=since,
                until=until,
            )
            if pairs:
                similarity, compared = _mean_similarity(pairs), len(pairs)
        return WindowMetrics(
            requests=found.requests,
            errors=found.errors,
            guardrail_violations=found.guardrail_violations,
            latency_p95_ms=found.p95_latency_ms,
            behavior_similarity=similarity,
            compared=compared,
        )


def _mean_similarity(pairs: list[tuple[str, str]]) -> float:
    from reconciler.evaluation.scoring import pairwise_similarity
    from reconciler.guardrails.embeddings import default_embedder

    scores = pairwise_similarity(
        default_embedder(), [left for left, _ in pairs], [right for _, right in pairs]
    )
    return sum(scores) / len(scores)
