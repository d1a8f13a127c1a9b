"""The health sensor's judgement of a live version from its real traffic (``judge: metrics``).

Over the last ``metrics_window_seconds`` — or since the version was created, if later, so the
previous version's traffic is not blamed on it — the service's whole-service series from the
metrics API give:

    5xx share   Σ 5xx answers / Σ answers (each point's rate × the collection step)
    latency     the declared percentile, read from the nearest collected one at or above it
                (p50, p90, p99), as the answer-weighted mean of the window's points

A window with fewer than ``min_requests`` answers is not judged: a service nobody calls has
not broken.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eas_core.sdk.control import ControlClient
from eas_pipelines.canary import read_side
from eas_pipelines.declaration import HealthSensor

PERCENTILES = ((50.0, "latency_p50_ms"), (90.0, "latency_p90_ms"), (99.0, "latency_p99_ms"))


def latency_metric(percentile: float) -> str:
    """The collected percentile at or above ``percentile`` (p99 beyond 99)."""
    for bound, metric in PERCENTILES:
        if percentile <= bound:
            return metric
    return PERCENTILES[-1][1]


@dataclass
class LiveHealth:
    """What the window showed: answers, 5xx answers, the latency read, what breaches."""

    answers: int
    errors: int
    latency_ms: float | None
    failures: list[str] = field(default_factory=list)
    judged: bool = True

    @property
    def healthy(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, object]:
        return {
            "answers": self.answers,
            "errors_5xx": self.errors,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "failures": self.failures,
        }


def judge_live(
    client: ControlClient, service: str, health: HealthSensor, start: float, now: float
) -> LiveHealth:
    """Judge ``service``'s traffic between ``start`` and ``now`` against ``health``."""
    latency = latency_metric(health.latency.percentile) if health.latency else None
    metrics = ("rps", "rps_5xx", *((latency,) if latency else ()))
    side = read_side(client, service, start, now, metrics)
    answers, errors = side.requests, min(side.errors, side.requests)
    weighted = [
        (rate, value)
        for (t, rate), (u, value) in _aligned(side.series("rps"), side.series(latency or ""))
        if rate > 0
    ]
    latency_ms = sum(r * v for r, v in weighted) / sum(r for r, _ in weighted) if weighted else None
    found = LiveHealth(answers, errors, latency_ms)
    if answers < health.min_requests:
        found.judged = False
        return found
    share = errors / answers
    if share > health.max_error_rate:
        found.failures.append(
            f"5xx share {share:.2%} ({errors}/{answers} answers) over {health.max_error_rate:.2%}"
        )
    budget = health.latency.budget_ms if health.latency else None
    over = budget is not None and latency_ms is not None and latency_ms > budget
    if over and latency is not None:
        found.failures.append(
            f"{latency.removeprefix('latency_').removesuffix('_ms')} latency "
            f"{latency_ms:.1f} ms over the budget of {budget:g} ms"
        )
    return found


def _aligned(
    rates: list[tuple[float, float]], values: list[tuple[float, float]]
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Pairs of points of two series taken in the same collection (same time)."""
    by_time = dict(values)
    return [((t, r), (t, by_time[t])) for t, r in rates if t in by_time]
