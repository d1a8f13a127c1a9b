from __future__ import annotations

from collections import Counter

from eas_core.http.balancer import WeightedRoundRobin


def test_weights_are_respected_and_spread_evenly() -> None:
    wrr = WeightedRoundRobin([("a", 80), ("b", 20)])
    picks = [wrr.pick()[1] for _ in range(100)]  # type: ignore[index]
    assert Counter(picks) == {"a": 80, "b": 20}
    # Smooth: no more than 4 a's in a row at 80/20.
    run = max(len(r) for r in "".join(picks).split("b"))
    assert run <= 4


def test_zero_weight_and_exclusion() -> None:
    wrr = WeightedRoundRobin([("a", 0), ("b", 1), ("c", 1)])
    assert len(wrr) == 2
    _, item = wrr.pick({0}) or (None, None)
    assert item == "c"
    assert wrr.pick({0, 1}) is None
