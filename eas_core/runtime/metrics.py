"""Prometheus metrics of one instance, served at ``/api/builtin/metrics``.

Every series carries the same stable labels — ``service``, ``version`` and ``instance`` (the
instance id), plus ``code`` on answers — so a Prometheus that discovers instances through
``/api/v1/prometheus/targets`` (whose target labels are the same) keeps them apart, and the
controller's own collection reads the same text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class RuntimeMetrics:
    def __init__(
        self,
        service: str,
        threads: int,
        *,
        version: int = 0,
        instance: str = "",
        queued: Callable[[], float],
        busy: Callable[[], float],
    ) -> None:
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total, process_resident_memory_bytes…: the CPU and memory
        # charts of a Prometheus that scrapes instances directly (worker processes not included;
        # the controller's own collection adds them).
        ProcessCollector(registry=self.registry)
        labels = {"service": service, "version": str(version), "instance": instance}
        names = list(labels)
        # Answers are counted in plain numbers on the predict path and turned into series
        # only when scraped (``_Answers``): a prometheus_client counter takes a lock and a
        # few calls per increment, a noticeable share of a call that takes microseconds.
        self.answers = _Answers(labels, DURATION_BUCKETS)
        self.registry.register(self.answers)
        # Gauges read when scraped: nothing to keep up to date on the predict path.
        Gauge(
            "eas_queue_length",
            "Requests admitted whose processor call has not ended yet",
            names,
            registry=self.registry,
        ).labels(**labels).set_function(queued)
        # A worker thread stays busy until the processor call really returns, even after
        # its caller was answered 408: busy == threads for long means a hung processor.
        Gauge(
            "eas_busy_workers",
            "Worker threads inside a processor call",
            names,
            registry=self.registry,
        ).labels(**labels).set_function(busy)
        Gauge(
            "eas_workers", "Worker threads of this process", names, registry=self.registry
        ).labels(**labels).set(threads)
        # Observed only by a batching instance: how many requests each processor call ran.
        self.batch_size = Histogram(
            "eas_batch_size",
            "Requests per processor call of a batching instance (rpc.batching)",
            names,
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536),
        ).labels(**labels)
        self.labels = labels
        self.answered = self.answers.add  # called once per predict call: no extra frame

    def batched(self, size: int) -> None:
        self.batch_size.observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Answers:
    """Predict answers by status code, their durations and body bytes, as plain numbers.

    ``add`` runs on the instance's event loop thread only (every answer is written from
    there), so the counts need no lock; a scrape reads them on the same thread.
    """

    def __init__(self, labels: dict[str, str], buckets: tuple[float, ...]) -> None:
        self.labels = labels
        self.buckets = buckets
        self.by_code: dict[int, int] = {}
        self.in_bucket = [0] * (len(buckets) + 1)  # the last one: over the largest bound
        self.seconds = 0.0
        self.received = 0
        self.sent = 0

    def add(self, code: int, seconds: float, *, received: int = 0, sent: int = 0) -> None:
        by_code = self.by_code
        by_code[code] = by_code.get(code, 0) + 1
        self.in_bucket[bisect_left(self.buckets, seconds)] += 1
        self.seconds += seconds
        self.received += received
        self.sent += sent

    def collect(self) -> Iterator[Metric]:
        names, values = list(self.labels), list(self.labels.values())
        requests = CounterMetricFamily(
            "eas_requests", "Predict requests answered, by status code", labels=[*names, "code"]
        )
        for code, count in sorted(self.by_code.items()):
            requests.add_metric([*values, str(code)], count)
        yield requests
        cumulative, total = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.in_bucket, strict=True):
            total += count
            cumulative.append((_bound(bound), total))
        duration = HistogramMetricFamily(
            "eas_request_duration_seconds", "Time from admission to answer", labels=names
        )
        duration.add_metric(values, cumulative, self.seconds)
        yield duration
        for name, documentation, value in (
            ("eas_request_bytes", "Bytes of request bodies admitted", self.received),
            ("eas_response_bytes", "Bytes of response bodies answered", self.sent),
        ):
            family = CounterMetricFamily(name, documentation, labels=names)
            family.add_metric(values, value)
            yield family


def _bound(value: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if value == float("inf") else repr(float(value))
