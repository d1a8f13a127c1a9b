"""The canary judges on given series: the statistics and the verdicts, no installation."""

from __future__ import annotations

from typing import Any

import pytest

from eas_pipelines.canary import (
    CanaryDeclaration,
    CanaryReport,
    CanaryStep,
    Side,
    judge_error_share,
    judge_latency,
)
from eas_pipelines.declaration import DeclarationError, parse_declaration


def side(name: str, rps: float, rps_5xx: float, latency_ms: list[float]) -> Side:
    """A side with one point per second: ``rps`` answers, ``rps_5xx`` of them 5xx."""
    times = [float(t) for t in range(len(latency_ms))]
    return Side(
        name,
        1.0,
        {
            "rps": [(t, rps) for t in times],
            "rps_5xx": [(t, rps_5xx) for t in times],
            "latency_p50_ms": list(zip(times, latency_ms, strict=True)),
        },
    )


DECLARED = CanaryDeclaration(min_requests=30, min_latency_points=5)


def test_a_significant_error_share_increase_fails_and_noise_passes() -> None:
    baseline = side("live", 100, 0.1, [10.0] * 10)
    assert judge_error_share(baseline, side("cand", 10, 0.5, [10.0] * 10), DECLARED).verdict == (
        "fail"
    )
    # The same share as the baseline's, or worse by less than the tolerance: pass.
    assert judge_error_share(baseline, side("cand", 10, 0.01, [10.0] * 10), DECLARED).verdict == (
        "pass"
    )
    tolerant = CanaryDeclaration(min_requests=30, max_error_share_increase=0.1)
    assert judge_error_share(baseline, side("cand", 10, 0.5, [10.0] * 10), tolerant).verdict == (
        "pass"
    )


def test_too_few_answers_on_either_side_is_no_data() -> None:
    judgement = judge_error_share(
        side("live", 100, 0, [10.0] * 10), side("cand", 2, 1, [10.0] * 10), DECLARED
    )
    assert judgement.verdict == "nodata"
    assert "min_requests is 30" in judgement.why


def test_a_slower_canary_fails_on_latency_and_an_equal_one_passes() -> None:
    baseline = side("live", 50, 0, [10.0, 11.0, 9.5, 10.2, 10.8, 9.9, 10.1, 10.4])
    slow = side("cand", 5, 0, [30.0, 31.0, 29.0, 32.0, 30.5, 29.5, 30.2, 31.1])
    same = side("cand", 5, 0, [10.1, 10.9, 9.7, 10.0, 10.6, 9.8, 10.3, 10.5])
    assert judge_latency(baseline, slow, DECLARED).verdict == "fail"
    assert judge_latency(baseline, same, DECLARED).verdict == "pass"
    assert judge_latency(baseline, side("cand", 5, 0, [30.0] * 3), DECLARED).verdict == "nodata"


def test_a_step_fails_on_any_failing_metric_and_passes_only_with_all_data() -> None:
    baseline = side("live", 50, 0, [10.0] * 8)
    canary = side("cand", 10, 1, [10.0] * 8)
    failing = CanaryStep(5, baseline, canary, [judge_error_share(baseline, canary, DECLARED)], 0, 8)
    assert failing.verdict == "fail" and failing.reason.startswith("at 5%: error share")
    report = CanaryReport([failing])
    metadata: dict[str, Any] = report.metadata()
    assert metadata["canary_verdict"] == "fail"
    assert "| error share | 0.00% | 10.00% |" in metadata["canary"].value
    assert "cand" in metadata["canary_chart"].value
    assert not report.passed


@pytest.mark.parametrize(
    ("rollout", "problem"),
    [
        ({"strategy": "all_at_once"}, "canary: needs rollout strategy blue_green"),
        ({"strategy": "blue_green", "steps": [100]}, "rollout.steps: a canary needs a step"),
    ],
)
def test_a_canary_needs_blue_green_steps_below_100(rollout: dict[str, Any], problem: str) -> None:
    document = {
        "service": {"name": "svc", "processor": "pmml", "metadata": {"instance": 1}},
        "train": "pkg.train:train",
        "store": {"kind": "installation"},
        "smoke_tests": {"requests": [{"body": "x"}]},
        "rollout": rollout,
        "canary": {"window_seconds": 30},
    }
    with pytest.raises(DeclarationError) as raised:
        parse_declaration(document)
    assert any(line.startswith(problem) for line in raised.value.errors), raised.value.errors
