"""Alert rules: what they accept, and when they hold."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from eas_core.controller.metrics.alerting import evaluate
from eas_core.spec.alerts import AlertRule

RULE: dict[str, Any] = {
    "Name": "errors",
    "Metric": "share_5xx",
    "Condition": ">",
    "Threshold": 10,
    "CallbackUrl": "http://127.0.0.1:9/hook",
}


def test_the_mean_over_the_window_meets_the_condition() -> None:
    rule = AlertRule.model_validate(RULE)
    assert evaluate(rule, [0, 30]) == (True, 15)
    assert evaluate(rule, [0, 10]) == (False, 5)
    assert evaluate(rule, []) is None
    below = AlertRule.model_validate({**RULE, "Condition": "<", "Threshold": 1})
    assert evaluate(below, [0.5]) == (True, 0.5)


def test_no_services_means_all() -> None:
    assert AlertRule.model_validate(RULE).covers("anything")
    only = AlertRule.model_validate({**RULE, "Services": ["a"]})
    assert only.covers("a") and not only.covers("b")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Metric": "qps"}, "Metric"),
        ({"Condition": ">="}, "Condition"),
        ({"CallbackUrl": "ftp://x"}, "CallbackUrl"),
        ({"Window": 0}, "Window"),
        ({"Name": "Has Spaces"}, "Name"),
        ({"Level": "loud"}, "Level"),
    ],
)
def test_a_wrong_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        AlertRule.model_validate({**RULE, **change})


def test_active_hours_limit_when_a_rule_is_checked() -> None:
    always = AlertRule.model_validate(RULE)
    assert always.is_active(datetime(2026, 1, 1, 3, 0))
    office = AlertRule.model_validate({**RULE, "ActiveHours": "09:00-18:00"})
    assert office.is_active(datetime(2026, 1, 1, 9, 0))
    assert office.is_active(datetime(2026, 1, 1, 17, 59))
    assert not office.is_active(datetime(2026, 1, 1, 18, 0))
    assert not office.is_active(datetime(2026, 1, 1, 8, 59))
    night = AlertRule.model_validate({**RULE, "ActiveHours": "22:00-06:00"})
    assert night.is_active(datetime(2026, 1, 1, 23, 30))
    assert night.is_active(datetime(2026, 1, 1, 5, 0))
    assert not night.is_active(datetime(2026, 1, 1, 12, 0))


@pytest.mark.parametrize("hours", ["9-18", "09:00-24:00", "09:00", "25:00-01:00"])
def test_malformed_active_hours_are_refused_naming_the_field(hours: str) -> None:
    with pytest.raises(ValidationError, match="ActiveHours"):
        AlertRule.model_validate({**RULE, "ActiveHours": hours})
