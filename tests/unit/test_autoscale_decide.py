"""The autoscaling rule: up at once, down after the cool-down to what its peak needs, within
min and max."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eas_core.controller.metrics.autoscaler import decide, needed
from eas_core.controller.store import ScaleRuleRecord
from eas_core.spec.monitoring import AutoscaleRule


def rule(
    metric: str = "qps", target: float = 100, changed_at: float | None = 0.0
) -> ScaleRuleRecord:
    return ScaleRuleRecord("svc", 1, 8, metric, target, changed_at)


def test_up_at_once_to_what_the_latest_point_needs() -> None:
    decision = decide(
        rule(), 1, [(99.0, 50.0), (100.0, 350.0)], now=100, cooldown=60, cpu_per_instance=1
    )
    assert decision is not None and decision.count == 4
    assert "350.0 requests/s on 1 instance(s), target 100 per instance" in decision.reason


def test_never_above_max_nor_below_min() -> None:
    decision = decide(rule(), 2, [(100.0, 10_000.0)], now=100, cooldown=60, cpu_per_instance=1)
    assert decision is not None and decision.count == 8
    assert needed(rule(), 0.0, 1) == 1
    low = decide(
        ScaleRuleRecord("svc", 3, 8, "qps", 100, 0.0), 1, [], now=1, cooldown=60, cpu_per_instance=1
    )
    assert low is not None and low.count == 3


def test_down_only_after_the_cooldown_and_to_the_peak_of_it() -> None:
    points = [(50.0, 250.0), (90.0, 20.0), (100.0, 10.0)]
    assert decide(rule(changed_at=60), 5, points, now=100, cooldown=60, cpu_per_instance=1) is None
    decision = decide(rule(changed_at=30), 5, points, now=100, cooldown=60, cpu_per_instance=1)
    assert decision is not None and decision.count == 3  # the peak of 250 needs 3
    assert "over the last 60 s" in decision.reason


def test_no_points_no_decision() -> None:
    assert decide(rule(), 4, [], now=1000, cooldown=60, cpu_per_instance=1) is None


@pytest.mark.parametrize(
    ("metric", "target", "value", "cpu", "count"),
    [("cpu", 70, 2.0, 1.0, 3), ("cpu", 50, 1.0, 0.5, 4), ("queue", 4, 9, 1, 3)],
)
def test_cpu_and_queue_targets(
    metric: str, target: float, value: float, cpu: float, count: int
) -> None:
    assert needed(rule(metric, target), value, cpu) == count


def test_a_rule_names_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="Max: 1 is below Min"):
        AutoscaleRule.model_validate({"Min": 3, "Max": 1, "Metric": "qps", "Target": 5})
    with pytest.raises(ValidationError, match="Metric"):
        AutoscaleRule.model_validate({"Min": 1, "Max": 2, "Metric": "gpu", "Target": 5})
