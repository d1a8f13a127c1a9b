"""Smoke tests and probes: the declared requests sent through the gateway, judged.

The same requests serve three moments: right after a new version is ready (smoke test), while
a blue-green step bakes (probe through the original endpoint, which the gateway splits by
weight), and while a service serves (health sensor). Judging is pure — (request, status, body,
latency) in, a list of failures out — so it is tested with plain values; only ``send`` does I/O.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from eas_pipelines.declaration import (
    BakeThresholds,
    Expectation,
    LatencyBudget,
    PathExpectation,
    SmokeRequest,
    SmokeTests,
)
from eas_pipelines.json_path import MISSING, lookup

_MAX_SHOWN = 2000  # characters of a body kept in metadata and logs


def differences(expected: Any, actual: Any, tolerance: float, where: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected``; numbers may differ by ``tolerance``."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        same = isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
        return [] if same else [f"{where}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if math.isclose(expected, actual, rel_tol=0.0, abs_tol=tolerance):
            return []
        return [f"{where}: expected {expected!r} ± {tolerance:g}, got {actual!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{where}.{k}: missing" for k in expected if k not in actual]
        out += [f"{where}.{k}: unexpected" for k in actual if k not in expected]
        for k in expected:
            if k in actual:
                out += differences(expected[k], actual[k], tolerance, f"{where}.{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: expected {len(expected)} items, got {len(actual)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += differences(e, a, tolerance, f"{where}[{i}]")
        return out
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def _check_path(document: Any, rule: PathExpectation) -> list[str]:
    value = lookup(document, rule.path)
    if value is MISSING:
        return [f"{rule.path}: missing"] if rule.exists else []
    if not rule.exists:
        return [f"{rule.path}: expected absent, got {value!r}"]
    out = []
    if rule.equals is not None and value != rule.equals:
        out.append(f"{rule.path}: expected {rule.equals!r}, got {value!r}")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if rule.approx is not None and not (
        numeric and math.isclose(value, rule.approx, rel_tol=0.0, abs_tol=rule.tolerance)
    ):
        out.append(f"{rule.path}: expected {rule.approx!r} ± {rule.tolerance:g}, got {value!r}")
    if rule.min is not None and not (numeric and value >= rule.min):
        out.append(f"{rule.path}: expected ≥ {rule.min:g}, got {value!r}")
    if rule.max is not None and not (numeric and value <= rule.max):
        out.append(f"{rule.path}: expected ≤ {rule.max:g}, got {value!r}")
    if rule.matches is not None and not re.search(rule.matches, str(value)):
        out.append(f"{rule.path}: {value!r} does not match /{rule.matches}/")
    return out


def judge(expect: Expectation, status: int, body: bytes) -> list[str]:
    """Everything wrong with one answer (empty: it is right)."""
    problems = []
    if status != expect.status:
        problems.append(f"status: expected {expect.status}, got {status}")
    text = body.decode("utf-8", "replace")
    if expect.body is not None and text != expect.body:
        problems.append(f"body: expected {expect.body!r}, got {_shorten(text)!r}")
    if expect.json_body is not None or expect.json_path:
        try:
            document = json.loads(text)
        except ValueError:
            return [*problems, f"body: not JSON: {_shorten(text)!r}"]
        if expect.json_body is not None:
            problems += differences(expect.json_body, document, expect.tolerance)
        for rule in expect.json_path:
            problems += _check_path(document, rule)
    return problems


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least pct% of values at or below."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


def encode_body(request: SmokeRequest) -> tuple[bytes, str]:
    if isinstance(request.body, str):
        return request.body.encode(), "text/plain; charset=utf-8"
    return json.dumps(request.body).encode(), "application/json"


@dataclass(frozen=True)
class Attempt:
    """One request sent and its answer (status 0: no answer at all)."""

    request: str
    status: int
    body: bytes
    latency_ms: float
    problems: tuple[str, ...]

    @property
    def is_ok(self) -> bool:
        return not self.problems

    @property
    def is_5xx(self) -> bool:
        return self.status >= 500 or self.status == 0

    def describe(self, sent: SmokeRequest | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request": self.request,
            "status": self.status,
            "response": _shorten(self.body.decode("utf-8", "replace")),
            "latency_ms": round(self.latency_ms, 2),
            "problems": list(self.problems),
        }
        if sent is not None:
            out["body"] = _shorten(encode_body(sent)[0].decode("utf-8", "replace"))
        return out


def label(request: SmokeRequest, index: int) -> str:
    return request.name or f"requests[{index}]"


class Prober:
    """Sends smoke requests to one service name through the gateway."""

    def __init__(self, gateway: str, service: str, token: str | None, timeout: float) -> None:
        self.url = f"{gateway.rstrip('/')}/api/predict/{service}"
        self.headers = {"Authorization": token} if token else {}
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, request: SmokeRequest, name: str) -> Attempt:
        body, content_type = encode_body(request)
        headers = {"content-type": content_type, **self.headers, **request.headers}
        started = time.perf_counter()
        try:
            answer = self.http.post(self.url + request.path, content=body, headers=headers)
            status, content = answer.status_code, answer.content
        except httpx.HTTPError as exc:
            status, content = 0, f"{type(exc).__name__}: {exc}".encode()
        latency = (time.perf_counter() - started) * 1000
        # A request's own latency budget is judged on the median of its attempts (in
        # run_smoke_tests), so one cold request cannot fail a deployment on its own.
        problems = judge(request.expect, status, content) if status else [content.decode()]
        return Attempt(name, status, content, latency, tuple(problems))


@dataclass
class Report:
    """What a smoke test or probe saw, and every budget it broke."""

    attempts: list[Attempt] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failing: Attempt | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def errors(self) -> int:
        return sum(1 for a in self.attempts if not a.is_ok)

    @property
    def share_5xx(self) -> float:
        return sum(1 for a in self.attempts if a.is_5xx) / max(len(self.attempts), 1)

    def latency(self, pct: float) -> float:
        return percentile([a.latency_ms for a in self.attempts], pct)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.attempts),
            "errors": self.errors,
            "5xx_share": round(self.share_5xx, 4),
            "latency_p50_ms": round(self.latency(50), 2),
            "latency_p95_ms": round(self.latency(95), 2),
            "failures": self.failures,
        }


def _first_failing(attempts: list[Attempt]) -> Attempt | None:
    return next((a for a in attempts if not a.is_ok), None)


def _latency_failure(report: Report, budget: LatencyBudget | None, what: str) -> list[str]:
    if budget is None or not report.attempts:
        return []
    seen = report.latency(budget.percentile)
    if seen <= budget.budget_ms:
        return []
    return [
        f"{what}: p{budget.percentile:g} latency {seen:.1f} ms over the budget of "
        f"{budget.budget_ms:g} ms"
    ]


def run_smoke_tests(prober: Prober, tests: SmokeTests) -> Report:
    """Send each request ``repeat`` times and judge answers, error rate and latencies."""
    report = Report()
    per_request: dict[str, list[Attempt]] = {}
    for _ in range(tests.repeat):
        for i, request in enumerate(tests.requests):
            attempt = prober.send(request, label(request, i))
            report.attempts.append(attempt)
            per_request.setdefault(attempt.request, []).append(attempt)
    report.failing = _first_failing(report.attempts)
    rate = report.errors / len(report.attempts)
    if rate > tests.max_error_rate:
        first = report.failing
        detail = f"; first: {first.request}: {'; '.join(first.problems)}" if first else ""
        report.failures.append(
            f"error rate {rate:.1%} over the budget of {tests.max_error_rate:.1%} "
            f"({report.errors} of {len(report.attempts)} requests){detail}"
        )
    for i, request in enumerate(tests.requests):
        if request.latency_ms is None:
            continue
        name = label(request, i)
        median = percentile([a.latency_ms for a in per_request[name]], 50)
        if median > request.latency_ms:
            report.failures.append(
                f"{name}: latency {median:.1f} ms over its budget of {request.latency_ms:g} ms"
            )
            report.failing = report.failing or per_request[name][0]
    report.failures += _latency_failure(report, tests.latency, "smoke tests")
    return report


def judge_bake(report: Report, thresholds: BakeThresholds) -> list[str]:
    """Which bake thresholds the probe traffic so far breaks."""
    out = []
    if thresholds.max_5xx_share is not None and report.share_5xx > thresholds.max_5xx_share:
        out.append(
            f"5xx share {report.share_5xx:.1%} over the threshold of "
            f"{thresholds.max_5xx_share:.1%} ({len(report.attempts)} requests)"
        )
    if thresholds.max_errors is not None and report.errors > thresholds.max_errors:
        out.append(f"{report.errors} errors, more than the threshold of {thresholds.max_errors}")
    out += _latency_failure(report, thresholds.latency, "bake")
    return out


def probe_for(
    prober: Prober,
    tests: SmokeTests,
    seconds: float,
    interval: float,
    thresholds: BakeThresholds,
) -> Report:
    """Send the smoke requests round-robin for ``seconds``; stop at the first breach.

    Error counts and 5xx share are judged as the probe goes (a broken side shows at once);
    the latency percentile only at the end, over the whole bake.
    """
    report = Report()
    deadline = time.monotonic() + seconds
    count_only = thresholds.model_copy(update={"latency": None})
    i = 0
    while time.monotonic() < deadline:
        request = tests.requests[i % len(tests.requests)]
        report.attempts.append(prober.send(request, label(request, i % len(tests.requests))))
        i += 1
        # The share of a handful of requests says little: judge it once a few are in.
        if len(report.attempts) >= 10 or not report.attempts[-1].is_ok:
            breaches = judge_bake(report, count_only)
            if thresholds.max_5xx_share is not None and len(report.attempts) < 10:
                breaches = [b for b in breaches if not b.startswith("5xx share")]
            if breaches:
                report.failures = breaches
                report.failing = _first_failing(report.attempts)
                return report
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    report.failures = judge_bake(report, thresholds)
    report.failing = _first_failing(report.attempts)
    return report
