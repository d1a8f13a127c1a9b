"""Counters to per-second points: deltas, restarts, percentiles from buckets."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from eas_core.controller.metrics.rates import (
    Totals,
    combined,
    gateway_totals,
    instance_totals,
    quantile,
    step_values,
)
from eas_core.runtime.metrics import RuntimeMetrics
from eas_core.spec.monitoring import parse_since


def _runtime_text(answers: list[tuple[int, float]], *, body: int = 100) -> str:
    metrics = RuntimeMetrics("svc", 4, queued=lambda: 3, busy=lambda: 1)
    for code, seconds in answers:
        metrics.answered(code, seconds, received=body, sent=body * 2)
    return metrics.render().decode()


def test_instance_totals_read_the_runtime_metrics() -> None:
    totals = instance_totals(_runtime_text([(200, 0.003), (200, 0.003), (500, 0.2)]))
    assert totals.codes == {"200": 2, "500": 1}
    assert totals.queue == 3
    assert totals.received == 300 and totals.sent == 600
    assert totals.buckets[0.005] == 2 and totals.buckets[math.inf] == 3


def test_a_step_is_the_change_divided_by_its_seconds() -> None:
    before = instance_totals(_runtime_text([(200, 0.003)] * 10))
    after = instance_totals(_runtime_text([(200, 0.003)] * 30 + [(404, 0.001)] * 10))
    values = step_values(after.delta(before), 2.0)
    assert values["rps"] == 15  # (40 - 10) / 2
    assert values["rps_2xx"] == 10 and values["rps_4xx"] == 5 and values["rps_5xx"] == 0
    assert values["in_kbps"] == pytest.approx(30 * 100 / 2 / 1024)
    assert values["queue"] == 3


def test_a_counter_that_went_down_means_a_restart_counting_from_zero() -> None:
    before = instance_totals(_runtime_text([(200, 0.003)] * 50))
    after = instance_totals(_runtime_text([(200, 0.003)] * 4))
    assert step_values(after.delta(before), 1.0)["rps"] == 4


def test_quantiles_interpolate_inside_the_bucket() -> None:
    # 100 answers: 50 at or below 10 ms, 100 at or below 20 ms.
    buckets = {0.01: 50.0, 0.02: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.9, buckets) == pytest.approx(0.018)
    assert quantile(0.5, {0.01: 0.0, math.inf: 0.0}) is None
    # Beyond the last finite bucket all that is known is that bound.
    assert quantile(0.99, {0.01: 10.0, math.inf: 100.0}) == 0.01


def test_a_service_percentile_comes_from_all_instances_buckets() -> None:
    fast = Totals(codes={"200": 90}, buckets={0.01: 90.0, math.inf: 90.0})
    slow = Totals(codes={"200": 10}, buckets={0.01: 0.0, 1.0: 10.0, math.inf: 10.0})
    values = step_values(combined([fast, slow]), 1.0)
    assert values["rps"] == 100
    assert values["latency_p50_ms"] == pytest.approx(5.0 / 0.9, rel=1e-6)
    assert values["latency_p99_ms"] > 900


def test_gateway_totals_are_per_service() -> None:
    registry = CollectorRegistry()
    counter = Counter("eas_gateway_requests", "x", ["service", "code"], registry=registry)
    counter.labels("a", "200").inc(5)
    counter.labels("a", "503").inc(2)
    counter.labels("b", "200").inc(1)
    Histogram("unrelated_seconds", "x", registry=registry).observe(1)
    totals = gateway_totals(generate_latest(registry).decode())
    assert totals["a"].codes == {"200": 5, "503": 2}
    assert totals["b"].answered == 1


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("90", 90)]
)
def test_since_durations(text: str, seconds: float) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "15 minutes", "-5m", "0s", "31d"])
def test_since_refuses_what_is_not_a_duration_in_range(text: str) -> None:
    with pytest.raises(ValueError, match="since:"):
        parse_since(text)
