"""Prometheus metrics of one instance, served at ``/api/builtin/metrics``.

Every series carries the same stable labels — ``service``, ``version`` and ``instance`` (the
instance id), plus ``code`` on answers — so a Prometheus that discovers instances through
``/api/v1/prometheus/targets`` (whose target labels are the same) keeps them apart, and the
controller's own collection reads the same text.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
        self.requests = Counter(
            "eas_requests",
            "Predict requests answered, by status code",
            [*names, "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "eas_request_duration_seconds",
            "Time from admission to answer",
            names,
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        ).labels(**labels)
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
        # Body bytes, for the traffic in/out charts.
        self.received = Counter(
            "eas_request_bytes",
            "Bytes of request bodies admitted",
            names,
            registry=self.registry,
        ).labels(**labels)
        self.sent = Counter(
            "eas_response_bytes",
            "Bytes of response bodies answered",
            names,
            registry=self.registry,
        ).labels(**labels)
        self.labels = labels
        self._by_code: dict[int, Counter] = {}

    def answered(self, code: int, seconds: float, *, received: int = 0, sent: int = 0) -> None:
        if received:
            self.received.inc(received)
        if sent:
            self.sent.inc(sent)
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self.requests.labels(**self.labels, code=str(code))
        counter.inc()
        self.duration.observe(seconds)

    def batched(self, size: int) -> None:
        self.batch_size.observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
