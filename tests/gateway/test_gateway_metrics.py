"""The Prometheus exposition the gateway renders."""

from __future__ import annotations

from reconciler.gateway.metrics import GatewayMetrics


def test_counters_and_cumulative_histograms_render() -> None:
    metrics = GatewayMetrics()
    for latency in (0.004, 0.02, 0.02, 3.0):
        metrics.observe_request(use_case="npc", version="2", shadow=False, latency_seconds=latency)
    metrics.observe_request(
        use_case="npc",
        version="2",
        shadow=False,
        latency_seconds=0.1,
        error_kind="upstream_error",
    )
    metrics.observe_request(
        use_case='we"ird',
        version="1",
        shadow=True,
        latency_seconds=0.1,
        guardrail_action="block",
        violated=True,
    )
    metrics.count_rejection(use_case="npc", status=404, code="model_not_found")
    metrics.add_gauge("gateway_loaded_models", "Loaded.", lambda: [((), 2.0)])
    text = metrics.render()
    labels = 'use_case="npc",version="2",shadow="false"'
    assert f"gateway_requests_total{{{labels}}} 5" in text
    assert f'gateway_request_errors_total{{{labels},kind="upstream_error"}} 1' in text
    assert f'gateway_request_latency_seconds_bucket{{{labels},le="0.005"}} 1' in text
    assert f'gateway_request_latency_seconds_bucket{{{labels},le="0.025"}} 3' in text
    assert f'gateway_request_latency_seconds_bucket{{{labels},le="+Inf"}} 5' in text
    assert f"gateway_request_latency_seconds_count{{{labels}}} 5" in text
    assert 'use_case="we\\"ird"' in text
    assert 'action="block"} 1' in text
    assert (
        'gateway_rejected_requests_total{use_case="npc",status="404",code="model_not_found"} 1'
        in text
    )
    assert "gateway_loaded_models 2" in text
    assert text.endswith("\n")


def test_counters_read_at_scrape_time_render_as_counters() -> None:
    metrics = GatewayMetrics()
    counts = {"static": 3, "encoder": 1}
    metrics.add_counter(
        "reconciler_guardrail_outputs_total",
        "Outputs by stage.",
        lambda: [((("stage", s),), float(n)) for s, n in counts.items()],
    )
    counts["static"] += 1
    text = metrics.render()
    assert "# TYPE reconciler_guardrail_outputs_total counter" in text
    assert 'reconciler_guardrail_outputs_total{stage="static"} 4' in text
    assert 'reconciler_guardrail_outputs_total{stage="encoder"} 1' in text
