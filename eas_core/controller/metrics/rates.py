"""From Prometheus text to the values of one step: pure functions, no I/O.

An instance's endpoint shows cumulative counters; a point is what changed between two scrapes
divided by the seconds between them. Deltas of several instances add up before they become
values, so a service's latency percentiles come from all of its instances' buckets together,
as Prometheus' ``histogram_quantile(sum(rate(...)))`` would compute them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

# The instance's metric names (eas_core/runtime/metrics.py), read here by name.
REQUESTS = "eas_requests_total"
DURATION_BUCKET = "eas_request_duration_seconds_bucket"
QUEUE = "eas_queue_length"
RECEIVED = "eas_request_bytes_total"
SENT = "eas_response_bytes_total"
# Exported by runtimes that batch requests: a histogram of requests per processor call.
BATCH_SUM = "eas_batch_size_sum"
BATCH_COUNT = "eas_batch_size_count"
GATEWAY_REQUESTS = "eas_gateway_requests_total"

PERCENTILES = {"latency_p50_ms": 0.5, "latency_p90_ms": 0.9, "latency_p99_ms": 0.99}


@dataclass
class Totals:
    """Cumulative counts as one scrape saw them (or, after ``delta``, what changed)."""

    codes: dict[str, float] = field(default_factory=dict)  # status code → answers
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound → answers ≤ it
    received: float = 0.0
    sent: float = 0.0
    batches: float = 0.0
    batched: float = 0.0
    queue: float = 0.0  # a gauge: kept as is, never differenced

    @property
    def answered(self) -> float:
        return sum(self.codes.values())

    def delta(self, before: Totals | None) -> Totals:
        """What changed since ``before``. A counter that went down means the process
        restarted and counted from zero: then all it shows is new."""
        if before is None or self.answered < before.answered or self.sent < before.sent:
            return self
        return Totals(
            codes={k: v - before.codes.get(k, 0.0) for k, v in self.codes.items()},
            buckets={k: v - before.buckets.get(k, 0.0) for k, v in self.buckets.items()},
            received=self.received - before.received,
            sent=self.sent - before.sent,
            batches=self.batches - before.batches,
            batched=self.batched - before.batched,
            queue=self.queue,
        )

    def add(self, other: Totals) -> None:
        for code, count in other.codes.items():
            self.codes[code] = self.codes.get(code, 0.0) + count
        for bound, below in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0.0) + below
        self.received += other.received
        self.sent += other.sent
        self.batches += other.batches
        self.batched += other.batched
        self.queue += other.queue


def instance_totals(text: str) -> Totals:
    """The counters of one instance's ``/api/builtin/metrics`` text."""
    totals = Totals()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, value = sample.name, sample.value
            if name == REQUESTS:
                code = sample.labels.get("code", "")
                totals.codes[code] = totals.codes.get(code, 0.0) + value
            elif name == DURATION_BUCKET:
                bound = float(sample.labels["le"])
                totals.buckets[bound] = totals.buckets.get(bound, 0.0) + value
            elif name == QUEUE:
                totals.queue += value
            elif name == RECEIVED:
                totals.received += value
            elif name == SENT:
                totals.sent += value
            elif name == BATCH_COUNT:
                totals.batches += value
            elif name == BATCH_SUM:
                totals.batched += value
    return totals


def gateway_totals(text: str) -> dict[str, Totals]:
    """Service name → the gateway's answers for it, from the gateway's metrics text."""
    by_service: dict[str, Totals] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != GATEWAY_REQUESTS:
                continue
            totals = by_service.setdefault(sample.labels.get("service", ""), Totals())
            code = sample.labels.get("code", "")
            totals.codes[code] = totals.codes.get(code, 0.0) + sample.value
    return by_service


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q`` quantile of cumulative ``buckets``, interpolated linearly inside the bucket
    it falls in (Prometheus' rule); None when nothing was observed."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _per_second(count: float, seconds: float) -> float:
    return max(count, 0.0) / seconds


def step_values(change: Totals, seconds: float) -> dict[str, float]:
    """The metrics of one step of ``seconds`` in which ``change`` happened."""
    by_class = {"2": 0.0, "4": 0.0, "5": 0.0}
    for code, count in change.codes.items():
        if code[:1] in by_class:
            by_class[code[:1]] += count
    values = {
        "rps": _per_second(change.answered, seconds),
        "rps_2xx": _per_second(by_class["2"], seconds),
        "rps_4xx": _per_second(by_class["4"], seconds),
        "rps_5xx": _per_second(by_class["5"], seconds),
        "queue": change.queue,
        "in_kbps": _per_second(change.received, seconds) / 1024,
        "out_kbps": _per_second(change.sent, seconds) / 1024,
    }
    if change.answered > 0:
        values["share_4xx"] = by_class["4"] / change.answered * 100
        values["share_5xx"] = by_class["5"] / change.answered * 100
    for metric, q in PERCENTILES.items():
        value = quantile(q, change.buckets)
        if value is not None:
            values[metric] = value * 1000
    if change.batches > 0:
        values["batch_size"] = change.batched / change.batches
    return values


def gateway_values(change: Totals, seconds: float) -> dict[str, float]:
    errors = sum(v for code, v in change.codes.items() if code.startswith("5"))
    return {
        "gateway_rps": _per_second(change.answered, seconds),
        "gateway_rps_5xx": _per_second(errors, seconds),
    }


def combined(changes: Iterable[Totals]) -> Totals:
    total = Totals()
    for change in changes:
        total.add(change)
    return total
