"""The gateway's Prometheus metrics: calls answered, and what went wrong with instances."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4"


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "eas_gateway_requests",
            "Predict calls answered by the gateway",
            ["service", "code"],
            registry=self.registry,
        )
        self.upstream_failures = Counter(
            "eas_gateway_upstream_failures",
            "Calls an instance did not answer - connect, not_received, reset (it cannot have "
            "read the request), closed (it may have), malformed, timeout - or could not take: "
            "queue_full (450), unavailable (503)",
            ["service", "reason"],
            registry=self.registry,
        )
        self.upstream_retries = Counter(
            "eas_gateway_upstream_retries",
            "Calls sent to another instance, by why the previous one could not take them",
            ["service", "reason"],
            registry=self.registry,
        )
        self.shadow = Counter(
            "eas_gateway_shadow_calls",
            "Copies of calls mirrored to a shadow target, by outcome: agreed, disagreed (the "
            "target's answer differs from the live one), failed (no answer), dropped_in_flight, "
            "dropped_bytes (over the gateway's mirror bounds), dropped_no_target",
            ["service", "outcome"],
            registry=self.registry,
        )
        self._answered: dict[tuple[str, int], Any] = {}

    def answered(self, service: str, status: int) -> None:
        counter = self._answered.get((service, status))
        if counter is None:
            counter = self._answered[(service, status)] = self.requests.labels(service, str(status))
        counter.inc()

    def failed(self, service: str, reason: str) -> None:
        self.upstream_failures.labels(service, reason).inc()

    def retried(self, service: str, reason: str) -> None:
        self.upstream_retries.labels(service, reason).inc()

    def mirrored(self, service: str, outcome: str) -> None:
        self.shadow.labels(service, outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
