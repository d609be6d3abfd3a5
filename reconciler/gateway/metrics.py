"""Prometheus metrics of this gateway process, rendered in the text exposition format.

Counters and histograms live in memory (they reset with the process, as Prometheus
expects); the request log is the durable record that canary analysis queries. All updates
happen on the event loop thread, so no locking is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


def _labels(**values: str) -> Labels:
    return tuple(values.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _render_labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = (*labels, *extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total: float = 0.0
    observations: int = 0

    def observe(self, value: float) -> None:
        index = bisect_left(LATENCY_BUCKETS, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.observations += 1


@dataclass
class GatewayMetrics:
    requests: dict[Labels, int] = field(default_factory=dict)
    errors: dict[Labels, int] = field(default_factory=dict)
    violations: dict[Labels, int] = field(default_factory=dict)
    rejected: dict[Labels, int] = field(default_factory=dict)
    tokens: dict[Labels, int] = field(default_factory=dict)
    latency: dict[Labels, _Histogram] = field(default_factory=dict)
    gauges: dict[str, tuple[str, Callable[[], Iterable[tuple[Labels, float]]]]] = field(
        default_factory=dict
    )
    read_counters: dict[str, tuple[str, Callable[[], Iterable[tuple[Labels, float]]]]] = field(
        default_factory=dict
    )

    def observe_request(
        self,
        *,
        use_case: str,
        version: str,
        shadow: bool,
        latency_seconds: float,
        error_kind: str | None = None,
        guardrail_action: str | None = None,
        violated: bool = False,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        base = _labels(use_case=use_case, version=version, shadow=str(shadow).lower())
        self.requests[base] = self.requests.get(base, 0) + 1
        self.latency.setdefault(base, _Histogram()).observe(latency_seconds)
        if error_kind is not None:
            key = (*base, ("kind", error_kind))
            self.errors[key] = self.errors.get(key, 0) + 1
        if violated:
            key = (*base, ("action", guardrail_action or "pass"))
            self.violations[key] = self.violations.get(key, 0) + 1
        for direction, count in (("prompt", prompt_tokens), ("completion", completion_tokens)):
            if count:
                key = (*base, ("direction", direction))
                self.tokens[key] = self.tokens.get(key, 0) + count

    def count_rejection(self, *, use_case: str, status: int, code: str) -> None:
        key = _labels(use_case=use_case, status=str(status), code=code)
        self.rejected[key] = self.rejected.get(key, 0) + 1

    def add_gauge(
        self, name: str, help_text: str, read: Callable[[], Iterable[tuple[Labels, float]]]
    ) -> None:
        """A gauge whose samples are read at scrape time."""
        self.gauges[name] = (help_text, read)

    def add_counter(
        self, name: str, help_text: str, read: Callable[[], Iterable[tuple[Labels, float]]]
    ) -> None:
        """A counter kept elsewhere (e.g. by the guard's thread), read at scrape time."""
        self.read_counters[name] = (help_text, read)

    def render(self) -> str:
        lines: list[str] = []
        counters = (
            (
                "gateway_requests_total",
                "Requests served, per use case and model version.",
                self.requests,
            ),
            ("gateway_request_errors_total", "Requests that failed after routing.", self.errors),
            (
                "gateway_guardrail_violations_total",
                "Outputs on which a guardrail check fired.",
                self.violations,
            ),
            (
                "gateway_rejected_requests_total",
                "Requests refused before routing (4xx, no routes).",
                self.rejected,
            ),
            ("gateway_tokens_total", "Tokens processed.", self.tokens),
        )
        for name, help_text, samples in counters:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines += [f"{name}{_render_labels(k)} {v}" for k, v in sorted(samples.items())]
        name = "gateway_request_latency_seconds"
        lines += [f"# HELP {name} Time to answer a request.", f"# TYPE {name} histogram"]
        for labels, histogram in sorted(self.latency.items()):
            cumulative = 0
            for bound, count in zip(LATENCY_BUCKETS, histogram.counts, strict=True):
                cumulative += count
                bucket = _render_labels(labels, (("le", _number(bound)),))
                lines.append(f"{name}_bucket{bucket} {cumulative}")
            inf = _render_labels(labels, (("le", "+Inf"),))
            lines.append(f"{name}_bucket{inf} {histogram.observations}")
            lines.append(f"{name}_sum{_render_labels(labels)} {_number(histogram.total)}")
            lines.append(f"{name}_count{_render_labels(labels)} {histogram.observations}")
        for counter, (help_text, read) in sorted(self.read_counters.items()):
            lines += [f"# HELP {counter} {help_text}", f"# TYPE {counter} counter"]
            lines += [f"{counter}{_render_labels(k)} {_number(v)}" for k, v in read()]
        for gauge, (help_text, read) in sorted(self.gauges.items()):
            lines += [f"# HELP {gauge} {help_text}", f"# TYPE {gauge} gauge"]
            lines += [f"{gauge}{_render_labels(k)} {_number(v)}" for k, v in read()]
        return "\n".join(lines) + "\n"
