"""The one back-off rule every supervisor uses (parts, instances, worker processes)."""

from __future__ import annotations

import pytest

from eas_core.backoff import Backoff


def test_each_failure_doubles_the_wait_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=10.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_process_that_failed_for_years_still_gets_the_maximum() -> None:
    # An instance record counts every restart; 2 ** 10_000 must not end supervision.
    assert Backoff(initial=1.0, maximum=30.0).delay(10_000) == 30.0


def test_no_failure_yet_waits_the_initial_delay() -> None:
    assert Backoff(initial=1.0, maximum=30.0).delay(0) == 1.0


@pytest.mark.parametrize(
    ("initial", "maximum", "factor", "field"),
    [(0, 1, 2, "initial"), (1, -1, 2, "maximum"), (1, 2, 0.5, "factor")],
)
def test_a_wrong_setting_is_refused_naming_it(
    initial: float, maximum: float, factor: float, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        Backoff(initial, maximum, factor)
