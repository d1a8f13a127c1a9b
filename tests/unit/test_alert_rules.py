"""Alert rules: what they accept, and when they hold."""

from __future__ import annotations

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
